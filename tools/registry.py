"""@tool: typed Python functions become pydantic action models and JSON schemas.

A tool is a plain function with type hints and a Google-style docstring. `@tool` builds
a frozen `ToolAction` model for it (tagged `action: Literal[name]`, one field per
parameter) and returns the function unchanged. A `ToolRegistry` joins those models to
the GUI action union, so the parser validates one schema and the model sees one list.
The docstring is read by `tools.docstrings`, the schemas are written by `tools.schema`,
and bad arguments are worded by `tools.validation`.

    @tool
    def search(query: str, limit: int = 5) -> list[str]:
        '''Search the web.

        Args:
            query: What to look for.
            limit: How many results to return.
        '''
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import time
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar, Union, overload

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model
from pydantic.fields import FieldInfo

from tools.actions import ACTION_ADAPTER, GUI_ACTION_CLASSES, GUI_ACTION_NAMES, BaseAction, Fail, Finish
from tools.context import RunContext, ToolRetry, is_context_type
from tools.docstrings import parse_docstring
from tools.errors import AgentError
from tools.executor import ActionResult
from tools.schema import openai_function
from tools.tool_output import ToolResult, split_output
from tools.validation import format_validation_error

__all__ = ["ToolAction", "ToolRegistry", "tool", "tool_model"]

logger = logging.getLogger(__name__)

# OpenAI's rule for function names, so every tool can be exported as-is.
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MODEL_ATTR = "__tool_model__"
_PARALLEL_ATTR = "__tool_parallel__"
_SECRETS_ATTR = "__tool_fills_secrets__"
_CONTEXT_PARAM: dict[type[BaseModel], str] = {}  # tool model -> its RunContext parameter, if any
_Function = TypeVar("_Function", bound=Callable[..., Any])


class ToolAction(BaseAction):
    """Base of every registered tool's action model: frozen, unknown fields rejected.

    A parameter whose name would shadow a model attribute (`name`, `json`, `copy`...)
    is stored as `<name>_` with the parameter name as its alias; validation, schemas and
    `model_dump()` all use the parameter name.
    """

    model_config = ConfigDict(protected_namespaces=(), serialize_by_alias=True)


def _class_name(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[_-]+", name) if part) + "Tool"


def _build_model(fn: Callable[..., Any], name: str | None) -> type[ToolAction]:
    name = name if name is not None else getattr(fn, "__name__", "")
    if not _NAME_RE.match(name):
        raise TypeError(f"tool name {name!r} must match [A-Za-z0-9_-]{{1,64}}; pass @tool(name=...)")
    doc = inspect.getdoc(fn)
    description, param_docs = parse_docstring(doc or "")
    if not description:
        raise TypeError(f"tool {name!r} needs a docstring: its first paragraph is the model's description")
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as exc:  # unresolvable forward references and the like
        raise TypeError(f"tool {name!r}: cannot resolve its type hints ({exc})") from exc
    fields: dict[str, Any] = {}
    context: str | None = None
    params = inspect.signature(fn).parameters.values()
    for param in params:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"tool {name!r}: *{param.name} is not supported; list each parameter")
        if param.name not in hints:
            raise TypeError(f"tool {name!r}: parameter {param.name!r} needs a type annotation")
        if is_context_type(hints[param.name]):  # filled by the agent, never shown to the model
            context = param.name
            continue
        if param.name == "action" or param.name.startswith("_"):
            raise TypeError(f"tool {name!r}: rename parameter {param.name!r} (reserved or private)")
        if isinstance(param.default, FieldInfo):
            raise TypeError(f"tool {name!r}: put Field(...) in Annotated[...] for {param.name!r}")
        field_name = param.name
        if hasattr(ToolAction, field_name):  # would shadow a model attribute: store under an alias
            while field_name in hints or hasattr(ToolAction, field_name):
                field_name += "_"
        info = Field(
            default=... if param.default is param.empty else param.default,
            description=param_docs.get(param.name),
            alias=param.name if field_name != param.name else None,
        )
        fields[field_name] = (hints[param.name], info)
    try:
        model: type[ToolAction] = create_model(  # type: ignore[call-overload]
            _class_name(name),
            __base__=ToolAction,
            __doc__=description,
            __module__=getattr(fn, "__module__", None) or __name__,
            action=(Literal[name], name),
            **fields,
        )
    except Exception as exc:  # a type pydantic cannot validate is a developer bug
        raise TypeError(f"tool {name!r}: cannot build its argument model ({exc})") from exc
    if context is not None:
        _CONTEXT_PARAM[model] = context
    return model


def tool_model(fn: Callable[..., Any]) -> type[ToolAction] | None:
    """The model that `@tool` attached to `fn`, or None if it was not decorated."""
    return getattr(fn, _MODEL_ATTR, None)


@overload
def tool(fn: _Function, *, name: str | None = None, parallel: bool = False,
         fill_secrets: bool = True) -> _Function: ...
@overload
def tool(
    fn: None = None, *, name: str | None = None, parallel: bool = False, fill_secrets: bool = True
) -> Callable[[_Function], _Function]: ...
def tool(fn: Callable[..., Any] | None = None, *, name: str | None = None, parallel: bool = False,
         fill_secrets: bool = True) -> Any:
    """Attach a pydantic model to `fn` and return `fn` unchanged. Use as `@tool` or `@tool(name=...)`.

    `fn` may be `async def`. With `parallel=True`, calls of it in one reply may run at the same
    time (threads for a plain function, the event loop for an async one). With
    `fill_secrets=False`, a `<secret>name</secret>` in its arguments reaches it as it is, not
    as the value (for an agent called as a tool, which fills its own)."""

    def wrap(function: Callable[..., Any]) -> Callable[..., Any]:
        setattr(function, _MODEL_ATTR, _build_model(function, name))
        setattr(function, _PARALLEL_ATTR, parallel)
        setattr(function, _SECRETS_ATTR, fill_secrets)
        return function

    return wrap(fn) if fn is not None else wrap


def _arguments(model: type[ToolAction]) -> list[tuple[str, str]]:
    """(field name, parameter name) for every argument field of a tool model."""
    return [(field, info.alias or field) for field, info in model.model_fields.items() if field != "action"]


class ToolRegistry:
    """The registered tools, and the union of their models with the GUI actions."""

    def __init__(self, tools: Iterable[Callable[..., Any]] = ()) -> None:
        self._tools: dict[str, tuple[Callable[..., Any], type[ToolAction]]] = {}
        self._adapter: TypeAdapter[Any] | None = None
        self._screenless: TypeAdapter[Any] | None = None
        self._positional: dict[str, frozenset[str]] = {}  # each tool's positional-only parameters
        self.finish: type[Finish] = Finish  # replaced by a typed finish (agent.outputs)
        for fn in tools:
            self.add(fn)

    def add(self, fn: Callable[..., Any], *, name: str | None = None) -> Callable[..., Any]:
        """Register `fn` (decorated with @tool or not, or a bound method) and return it unchanged."""
        model = tool_model(fn) if name is None else None
        if model is None:
            model = _build_model(fn, name)
        name = model.model_fields["action"].default
        if name in GUI_ACTION_NAMES:
            raise ValueError(f"tool name {name!r} collides with the GUI action {name!r}; use @tool(name=...)")
        if name in self._tools:
            raise ValueError(f"a tool named {name!r} is already registered; use @tool(name=...)")
        self._tools[name] = (fn, model)
        self._adapter = self._screenless = None  # the union changed
        return fn

    def derive(self, *, finish: type[Finish] | None = None) -> ToolRegistry:
        """A copy with the same tools, whose `finish` is `finish` (a typed answer) if given."""
        copy = ToolRegistry()
        copy._tools = dict(self._tools)
        copy.finish = finish if finish is not None else self.finish
        return copy

    def is_parallel(self, name: str) -> bool:
        """Whether calls of the tool `name` may run at the same time as others (@tool(parallel=True))."""
        fn = self._tools[name][0] if name in self._tools else None
        return bool(getattr(fn, _PARALLEL_ATTR, False))

    def fills_secrets(self, name: str) -> bool:
        """Whether the tool `name` gets secrets' values for their placeholders (the default), or
        the placeholders themselves (@tool(fill_secrets=False): an agent that has the secrets)."""
        fn = self._tools[name][0] if name in self._tools else None
        return bool(getattr(fn, _SECRETS_ATTR, True))

    def is_async(self, name: str) -> bool:
        """Whether the tool `name` is an `async def` function."""
        fn = self._tools[name][0] if name in self._tools else None
        return inspect.iscoroutinefunction(fn)

    @overload
    def tool(self, fn: _Function, *, name: str | None = None) -> _Function: ...
    @overload
    def tool(self, fn: None = None, *, name: str | None = None) -> Callable[[_Function], _Function]: ...
    def tool(self, fn: Callable[..., Any] | None = None, *, name: str | None = None) -> Any:
        """Decorator: `@registry.tool` or `@registry.tool(name=...)`; returns the function unchanged."""

        def wrap(function: Callable[..., Any]) -> Callable[..., Any]:
            return self.add(tool(function, name=name))  # attach the model too, as @tool does

        return wrap(fn) if fn is not None else wrap

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __len__(self) -> int:
        return len(self._tools)

    def __repr__(self) -> str:
        return f"ToolRegistry({list(self._tools)})"

    @property
    def names(self) -> tuple[str, ...]:
        """Registered tool names, in registration order (GUI actions not included)."""
        return tuple(self._tools)

    def model_for(self, name: str) -> type[ToolAction]:
        if name not in self._tools:
            raise KeyError(f"no tool named {name!r}; registered: {', '.join(self._tools) or 'none'}")
        return self._tools[name][1]

    def union_adapter(self, *, gui: bool = True) -> TypeAdapter[Any]:
        """A TypeAdapter over the GUI actions (or, with `gui=False`, only finish and fail) and
        every tool model, tagged by `action`."""
        if gui and not self._tools and self.finish is Finish:
            return ACTION_ADAPTER
        cached = self._adapter if gui else self._screenless
        if cached is None:
            gui_classes = [self.finish if cls is Finish else cls for cls in GUI_ACTION_CLASSES]
            base = gui_classes if gui else [self.finish, Fail]
            members = (*base, *(model for _, model in self._tools.values()))
            cached = TypeAdapter(Annotated[Union[members], Field(discriminator="action")])  # noqa: UP007
            if gui:
                self._adapter = cached
            else:
                self._screenless = cached
        return cached

    def validate(self, data: Mapping[str, Any]) -> BaseAction:
        """Validate `{"action": name, ...}` into a GUI action or tool action (raises ValidationError)."""
        return self.union_adapter().validate_python(data)  # type: ignore[no-any-return]

    def call(self, action: ToolAction | Mapping[str, Any], ctx: RunContext[Any] | None = None,
             ) -> ActionResult:
        """Run a tool (an async one on a new event loop). Bad arguments, `ToolRetry` and other
        exceptions in the tool come back as a failed result. `ctx` goes to a RunContext parameter."""
        call = self._prepare(action, ctx)
        if isinstance(call, ActionResult):
            return call
        try:
            output = call.fn(*call.args, **call.kwargs)
            if inspect.isawaitable(output):
                output = asyncio.run(_awaited(output))
        except Exception as exc:  # a tool's failure is an observation for the model, not a crash
            return call.raised(exc)
        return call.returned(output)

    async def acall(self, action: ToolAction | Mapping[str, Any], ctx: RunContext[Any] | None = None,
                    ) -> ActionResult:
        """`call` on the running event loop: an async tool is awaited, a plain one runs in a thread."""
        call = self._prepare(action, ctx)
        if isinstance(call, ActionResult):
            return call
        try:
            if inspect.iscoroutinefunction(call.fn):
                output = await call.fn(*call.args, **call.kwargs)
            else:
                output = await asyncio.to_thread(call.fn, *call.args, **call.kwargs)
                if inspect.isawaitable(output):
                    output = await output
        except Exception as exc:
            return call.raised(exc)
        return call.returned(output)

    def _prepare(
        self, action: ToolAction | Mapping[str, Any], ctx: RunContext[Any] | None
    ) -> ActionResult | _Call:
        """The call to make, or the failed result of bad arguments."""
        started = time.perf_counter()
        if isinstance(action, Mapping):  # raw model output: validate before anything runs
            name = str(action.get("action", "?"))[:64]
            try:
                action = self.validate(action)  # type: ignore[assignment]
            except ValidationError as exc:
                return ActionResult.failure(f"{name}: {format_validation_error(exc, action=name)}")
            if not isinstance(action, ToolAction):
                return ActionResult.failure(f"{name!r} is a GUI action, not a tool; an executor runs it")
        name = action.name
        fn, model = self._tools.get(name, (None, None))
        if fn is None or model is None:
            raise KeyError(f"no tool named {name!r}; registered: {', '.join(self._tools) or 'none'}")
        if type(action) is not model:  # same name, another model (another registry): re-check
            try:
                action = model.model_validate(action.model_dump(by_alias=True))
            except ValidationError as exc:
                return ActionResult.failure(f"{name}: {format_validation_error(exc, model=model)}")
        if (positional := self._positional.get(name)) is None:  # inspect.signature: 30 us a call
            positional = self._positional[name] = frozenset(
                param.name for param in inspect.signature(fn).parameters.values()
                if param.kind is inspect.Parameter.POSITIONAL_ONLY)
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for field, param in _arguments(model):
            value = getattr(action, field)
            if param in positional:
                args.append(value)
            else:
                kwargs[param] = value
        if (context := _CONTEXT_PARAM.get(model)) is not None:
            kwargs[context] = ctx if ctx is not None else RunContext(None)
        return _Call(name, fn, args, kwargs, started)

    def openai_tools(self, include_gui: bool = True, *, endings: bool | None = None) -> list[dict[str, Any]]:
        """Every action as an OpenAI function-calling entry: GUI actions first, then tools.
        `endings` (finish and fail; by default as `include_gui`) without the other GUI actions:
        the list for an agent with no screen."""
        endings = include_gui if endings is None else endings
        entries = []
        for cls in GUI_ACTION_CLASSES:
            ending = cls is Finish or cls is Fail
            if include_gui or (endings and ending):
                cls = self.finish if cls is Finish else cls
                description = inspect.cleandoc(cls.__doc__ or "")
                entries.append(openai_function(cls, description, model_space_points=True))
        for _, model in self._tools.values():
            entries.append(openai_function(model, model.__doc__ or "", model_space_points=False))
        return entries


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


@dataclass(frozen=True)
class _Call:
    """A tool call with its arguments checked, and what came of it as the model reads it."""

    name: str
    fn: Callable[..., Any]
    args: list[Any]
    kwargs: dict[str, Any]
    started: float  # perf_counter when the call was asked for: its elapsed_ms counts from here

    def raised(self, exc: Exception) -> ActionResult:
        """The tool's exception as a failed result: a ToolRetry's reason as it is."""
        if isinstance(exc, ToolRetry):
            return ActionResult.failure(f"{self.name} asks you to call again: {exc.message}", self._elapsed())
        logger.debug("tool %s raised", self.name, exc_info=True)
        return ActionResult.failure(f"{self.name} raised {type(exc).__name__}: {exc}", self._elapsed())

    def returned(self, output: Any) -> ActionResult:
        """The tool's return value as its result: the text, and the images (tools.tool_output)."""
        elapsed = self._elapsed()
        try:
            text, images = split_output(output)
        except AgentError as exc:  # PNG bytes that do not decode: the tool's failure, told to the model
            return ActionResult.failure(exc.message, elapsed)
        if not images:
            return ActionResult(ok=True, output=text, elapsed_ms=elapsed)
        return ToolResult(ok=True, output=text, elapsed_ms=elapsed, images=images)

    def _elapsed(self) -> float:
        return (time.perf_counter() - self.started) * 1000
