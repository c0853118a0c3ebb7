"""@tool and ToolRegistry: schemas from hints and docstrings, validation, calls, export."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

import pytest
from pydantic import Field, ValidationError, create_model

from tools.actions import GUI_ACTION_NAMES, Click, Finish
from tools.context import RunContext, ToolRetry
from tools.coordinates import MODEL_SPACE_MAX, MODEL_SPACE_SCHEMA
from tools.docstrings import parse_docstring
from tools.registry import ToolAction, ToolRegistry, tool, tool_model


@tool
def search(
    query: str, limit: Annotated[int, Field(ge=1, le=20)] = 5, lang: Literal["en", "de"] = "en"
) -> list[str]:
    """Search the web for pages.

    Returns titles only.

    Args:
        query: What to look for.
        limit (int): How many results
            to return at most.
    """
    return [f"{query} {i}" for i in range(limit)]


def make_registry(*fns) -> ToolRegistry:
    return ToolRegistry([search, *fns])


def test_decorator_returns_the_function_unchanged():
    def add(a: int, b: int = 2) -> int:
        """Add two numbers."""
        return a + b

    assert tool(add) is add
    assert tool(name="plus")(add) is add
    assert add(1) == 3
    assert search("x", 2) == ["x 0", "x 1"]


def test_model_is_a_frozen_strict_tool_action_named_after_the_function():
    model = tool_model(search)
    assert model is not None and issubclass(model, ToolAction)
    action = model(query="cats")
    assert (action.action, action.name, action.limit, action.lang) == ("search", "search", 5, "en")
    with pytest.raises(ValidationError):
        action.limit = 3  # frozen
    with pytest.raises(ValidationError):
        model(query="cats", colour="red")  # unknown fields are errors


def test_schema_takes_description_and_parameters_from_the_docstring():
    entry = ToolRegistry([search]).openai_tools(include_gui=False)[0]
    function = entry["function"]
    assert entry["type"] == "function"
    assert function["name"] == "search"
    assert function["description"] == "Search the web for pages."
    params = function["parameters"]
    assert params["type"] == "object"
    assert params["required"] == ["query"]
    assert params["additionalProperties"] is False
    assert "action" not in params["properties"]
    props = params["properties"]
    assert props["query"] == {"type": "string", "description": "What to look for."}
    assert props["limit"]["description"] == "How many results to return at most."
    assert (props["limit"]["default"], props["limit"]["minimum"], props["limit"]["maximum"]) == (5, 1, 20)
    assert props["lang"]["enum"] == ["en", "de"]


def test_docstrings_give_the_first_paragraph_and_the_args_section_only():
    doc = "Find a page.\nQuickly.\n\nArgs:\n    url: Where.\n      Absolute.\n    *rest: Ignored?\n"
    doc += "Returns:\n    x: not a parameter"
    assert parse_docstring(doc) == ("Find a page. Quickly.", {"url": "Where. Absolute.", "rest": "Ignored?"})
    assert parse_docstring("") == ("", {})


def test_openai_tools_lists_every_gui_action_then_the_tools():
    entries = ToolRegistry([search]).openai_tools()
    names = [e["function"]["name"] for e in entries]
    assert set(names[:-1]) == GUI_ACTION_NAMES and names[-1] == "search"
    click = next(e["function"] for e in entries if e["function"]["name"] == "click")
    assert click["description"] == Click.__doc__
    # The model writes InternVL's 0..1000 space, so that is what the schema promises.
    assert click["parameters"]["properties"]["x"]["maximum"] == MODEL_SPACE_MAX == 1000
    assert click["parameters"]["properties"]["y"] == MODEL_SPACE_SCHEMA["y"]
    assert "action" not in click["parameters"]["properties"]
    drag = next(e["function"] for e in entries if e["function"]["name"] == "drag")
    assert drag["parameters"]["required"] == ["start", "end"]
    assert all(set(e) == {"type", "function"} for e in entries)
    assert all(set(e["function"]) == {"name", "description", "parameters"} for e in entries)
    assert ToolRegistry().openai_tools(include_gui=False) == []


def test_registry_validates_tools_and_gui_actions_in_one_union():
    registry = make_registry()
    assert isinstance(registry.validate({"action": "click", "x": 1, "y": 2}), Click)
    action = registry.validate({"action": "search", "query": "cats", "limit": 3})
    assert isinstance(action, registry.model_for("search"))
    with pytest.raises(ValidationError):
        registry.validate({"action": "search", "query": "cats", "limit": 99})


def test_union_adapter_is_cached_and_rebuilt_when_a_tool_is_added():
    registry = make_registry()
    first = registry.union_adapter()
    assert registry.union_adapter() is first

    @registry.tool
    def ping() -> str:
        """Answer pong."""
        return "pong"

    assert registry.union_adapter() is not first
    assert registry.validate({"action": "ping"}).name == "ping"
    assert "ping" in registry and len(registry) == 2 and registry.names == ("search", "ping")


def test_call_runs_the_tool_with_validated_arguments_and_shows_json():
    result = make_registry().call(tool_model(search)(query="cats", limit=2))
    assert result.ok and result.error is None
    assert result.output == '["cats 0", "cats 1"]'


def test_call_rejects_bad_arguments_before_the_function_runs():
    calls = []

    @tool
    def record(count: int) -> str:
        """Record a count."""
        calls.append(count)
        return "done"

    registry = make_registry(record)
    result = registry.call({"action": "record", "count": "many"})
    assert not result.ok and "count" in result.error
    result = registry.call({"action": "record", "count": 1, "extra": True})
    assert not result.ok and "unknown field 'extra'" in result.error
    with pytest.raises(ValidationError):
        registry.validate({"action": "record"})
    assert calls == []
    assert registry.call({"action": "record", "count": 4}).output == "done"
    assert calls == [4]


def test_a_raising_tool_becomes_a_failed_result():
    @tool
    def divide(a: float, b: float) -> float:
        """Divide a by b."""
        return a / b

    registry = make_registry(divide)
    result = registry.call(registry.validate({"action": "divide", "a": 1, "b": 0}))
    assert not result.ok
    assert result.error == "divide raised ZeroDivisionError: float division by zero"
    assert registry.call(registry.validate({"action": "divide", "a": 1, "b": 4})).output == "0.25"


def test_call_refuses_a_gui_action():
    result = make_registry().call({"action": "click", "x": 1, "y": 2})
    assert not result.ok and "GUI action" in result.error


def test_parameter_names_that_shadow_model_attributes_keep_their_names():
    @tool
    def greet(name: str, json: bool = False, /) -> str:
        """Greet someone."""
        return f"hello {name}" + (" {}" if json else "")

    registry = make_registry(greet)
    action = registry.validate({"action": "greet", "name": "Ada", "json": True})
    assert action.name == "greet"  # the action name, as on every action
    assert action.model_dump() == {"action": "greet", "name": "Ada", "json": True}
    assert registry.validate(action.model_dump()) == action
    assert registry.call(action).output == "hello Ada {}"
    props = registry.openai_tools(include_gui=False)[-1]["function"]["parameters"]["properties"]
    assert list(props) == ["name", "json"]


def test_undocumented_or_unannotated_functions_are_rejected():
    def no_doc(a: int) -> int:
        return a

    def untyped(a) -> int:
        """Has a docstring."""
        return a

    def star(*args: int) -> int:
        """Variadic."""
        return 0

    for fn, words in ((no_doc, "docstring"), (untyped, "annotation"), (star, r"\*args")):
        with pytest.raises(TypeError, match=words):
            tool(fn)
    with pytest.raises(TypeError, match="name"):
        tool(lambda: None)  # "<lambda>" is not a usable tool name


@pytest.mark.parametrize("name", ["click", "search"])
def test_a_name_collision_is_rejected_at_registration(name):
    @tool(name=name)
    def other(text: str) -> str:
        """Another tool."""
        return text

    with pytest.raises(ValueError, match=f"{name!r}"):
        make_registry(other)


def test_undecorated_functions_can_be_registered_and_keep_their_identity():
    def shout(text: str) -> str:
        """Shout the text."""
        return text.upper()

    registry = ToolRegistry()
    assert registry.add(shout) is shout
    assert registry.call({"action": "shout", "text": "hi"}).output == "HI"


def test_bound_methods_register_under_their_own_or_a_given_name():
    class Counter:
        def __init__(self) -> None:
            self.total = 0

        def bump(self, by: int = 1) -> int:
            """Add to the counter."""
            self.total += by
            return self.total

    counter = Counter()
    registry = ToolRegistry()
    registry.add(counter.bump)
    registry.add(counter.bump, name="bump_again")
    assert registry.names == ("bump", "bump_again")
    assert registry.call({"action": "bump_again", "by": 3}).output == "3"
    assert counter.total == 3


def test_async_tools_are_run_and_their_return_value_is_the_output():
    @tool
    async def fetch(key: str) -> dict[str, str]:
        """Fetch a value."""
        await asyncio.sleep(0)
        return {"key": key}

    registry = ToolRegistry([fetch])
    assert registry.call({"action": "fetch", "key": "k"}).output == '{"key": "k"}'
    assert asyncio.run(registry.acall({"action": "fetch", "key": "k"})).output == '{"key": "k"}'


def test_a_run_context_parameter_is_filled_by_the_caller_and_left_out_of_the_schema():
    @tool(parallel=True)
    def greet(ctx: RunContext[str], name: str) -> str:
        """Greet someone."""
        return f"{ctx.deps} {name} (step {ctx.step})"

    registry = ToolRegistry([greet])
    parameters = registry.openai_tools(include_gui=False)[0]["function"]["parameters"]
    assert list(parameters["properties"]) == ["name"] and parameters["required"] == ["name"]
    context = RunContext("hello", run_id="r", step=2)
    assert registry.call({"action": "greet", "name": "Ann"}, context).output == "hello Ann (step 2)"
    assert registry.is_parallel("greet")
    assert not ToolRegistry([lambda_free_tool]).is_parallel("lambda_free_tool")


@tool
def lambda_free_tool(x: int) -> int:
    """Return x."""
    return x


def test_tool_retry_is_worded_for_the_model_and_other_exceptions_name_their_type():
    @tool
    def pick(day: str) -> str:
        """Pick a day."""
        if day == "sun":
            raise ToolRetry("closed on sunday")
        raise ValueError("bad day")

    registry = ToolRegistry([pick])
    retry = registry.call({"action": "pick", "day": "sun"})
    assert retry.error == "pick asks you to call again: closed on sunday"
    assert registry.call({"action": "pick", "day": "mon"}).error == "pick raised ValueError: bad day"


def test_a_derived_registry_has_the_same_tools_and_its_own_finish():
    typed = create_model("TypedFinish", __base__=Finish, answer=(int, ...))
    base = ToolRegistry([lambda_free_tool])
    derived = base.derive(finish=typed)
    assert derived.names == base.names and base.finish is Finish
    assert isinstance(derived.validate({"action": "finish", "answer": 3}), typed)
    with pytest.raises(ValidationError):
        derived.validate({"action": "finish", "answer": "three"})
    names = [entry["function"]["name"] for entry in derived.openai_tools(include_gui=False, endings=True)]
    assert names == ["finish", "fail", "lambda_free_tool"]
