"""@tool: typed Python functions become pydantic action models and JSON schemas.

A tool is a plain function with type hints and a Google-style docstring. `@tool` builds
a frozen `ToolAction` model for it (tagged `action: Literal[name]`, one field per
parameter) and returns the function unchanged. A `ToolRegistry` joins those models to
the GUI action union, so the parser validates one schema and the model sees one list.

    @tool
    def search(query: str, limit: int = 5) -> list[str]:
        '''Search the web.

        Args:
            query: What to look for.
            limit: How many results to return.
        '''
"""

from __future__ import annotations

import inspect
import json
import logging
import re
import time
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Annotated, Any, Literal, TypeVar, Union, overload

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model
from pydantic.fields import FieldInfo

from tools.actions import ACTION_ADAPTER, GUI_ACTION_CLASSES, GUI_ACTION_NAMES, BaseAction
from tools.executor import ActionResult

__all__ = ["ToolAction", "ToolRegistry", "format_validation_error", "tool", "tool_model"]

logger = logging.getLogger(__name__)

# OpenAI's rule for function names, so every tool can be exported as-is.
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MODEL_ATTR = "__tool_model__"
_F = TypeVar("_F", bound=Callable[..., Any])

# GUI actions hold screenshot pixels, but the model writes InternVL's 0..1000 space and the
# parser converts; the exported schema describes what the model should write.
_COORD: dict[str, Any] = {"type": "integer", "minimum": 0, "maximum": 1000}
_MODEL_SPACE: dict[str, dict[str, Any]] = {
    "x": {**_COORD, "description": "0..1000 across the image width (0 left, 1000 right)"},
    "y": {**_COORD, "description": "0..1000 down the image height (0 top, 1000 bottom)"},
    **{
        end: {
            "anyOf": [
                {"type": "array", "items": _COORD, "minItems": 2, "maxItems": 2},
                {"type": "string", "minLength": 1},
            ],
            "description": "a point [x, y] in 0..1000 image coordinates, or the target described in words",
        }
        for end in ("start", "end")
    },
}
_SECTION_RE = re.compile(r"^(Args|Arguments|Parameters|Returns?|Raises|Yields?|Examples?|Notes?):\s*$")
_ARG_RE = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


class ToolAction(BaseAction):
    """Base of every registered tool's action model: frozen, unknown fields rejected.

    A parameter whose name would shadow a model attribute (`name`, `json`, `copy`...)
    is stored as `<name>_` with the parameter name as its alias; validation, schemas and
    `model_dump()` all use the parameter name.
    """

    model_config = ConfigDict(protected_namespaces=(), serialize_by_alias=True)


def _doc_parts(doc: str) -> tuple[str, dict[str, str]]:
    """(first paragraph as one line, {param: description}) from a Google-style docstring."""
    lines = doc.splitlines()
    summary: list[str] = []
    for line in lines:
        if not line.strip() or _SECTION_RE.match(line.strip()):
            break
        summary.append(line.strip())
    params: dict[str, str] = {}
    in_args, current, base_indent = False, None, None
    for line in lines:
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if _SECTION_RE.match(stripped) and indent == 0:
            in_args = stripped.split(":")[0] in ("Args", "Arguments", "Parameters")
            current, base_indent = None, None
            continue
        if not in_args or not stripped:
            continue
        if indent == 0:  # dedent back to the top level ends the section
            in_args = False
            continue
        if base_indent is None:
            base_indent = indent
        match = _ARG_RE.match(stripped)
        if indent <= base_indent and match:
            current = match.group(1)
            params[current] = match.group(2).strip()
        elif current is not None:  # a continuation line of the current parameter
            params[current] = f"{params[current]} {stripped}".strip()
    return " ".join(summary), params


def _class_name(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[_-]+", name) if part) + "Tool"


def _build_model(fn: Callable[..., Any], name: str | None) -> type[ToolAction]:
    name = name if name is not None else getattr(fn, "__name__", "")
    if not _NAME_RE.match(name):
        raise TypeError(f"tool name {name!r} must match [A-Za-z0-9_-]{{1,64}}; pass @tool(name=...)")
    if inspect.iscoroutinefunction(fn):
        raise TypeError(f"tool {name!r} is async; tools are plain functions (wrap it with asyncio.run)")
    doc = inspect.getdoc(fn)
    description, param_docs = _doc_parts(doc or "")
    if not description:
        raise TypeError(f"tool {name!r} needs a docstring: its first paragraph is the model's description")
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as exc:  # unresolvable forward references and the like
        raise TypeError(f"tool {name!r}: cannot resolve its type hints ({exc})") from exc
    fields: dict[str, Any] = {}
    params = inspect.signature(fn).parameters.values()
    for param in params:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"tool {name!r}: *{param.name} is not supported; list each parameter")
        if param.name not in hints:
            raise TypeError(f"tool {name!r}: parameter {param.name!r} needs a type annotation")
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
        return create_model(  # type: ignore[call-overload, no-any-return]
            _class_name(name),
            __base__=ToolAction,
            __doc__=description,
            __module__=getattr(fn, "__module__", None) or __name__,
            action=(Literal[name], name),
            **fields,
        )
    except Exception as exc:  # a type pydantic cannot validate is a developer bug
        raise TypeError(f"tool {name!r}: cannot build its argument model ({exc})") from exc


def tool_model(fn: Callable[..., Any]) -> type[ToolAction] | None:
    """The model that `@tool` attached to `fn`, or None if it was not decorated."""
    return getattr(fn, _MODEL_ATTR, None)


@overload
def tool(fn: _F, *, name: str | None = None) -> _F: ...
@overload
def tool(fn: None = None, *, name: str | None = None) -> Callable[[_F], _F]: ...
def tool(fn: Callable[..., Any] | None = None, *, name: str | None = None) -> Any:
    """Attach a pydantic model to `fn` and return `fn` unchanged. Use as `@tool` or `@tool(name=...)`."""

    def wrap(f: Callable[..., Any]) -> Callable[..., Any]:
        setattr(f, _MODEL_ATTR, _build_model(f, name))
        return f

    return wrap(fn) if fn is not None else wrap


def _arguments(model: type[ToolAction]) -> list[tuple[str, str]]:
    """(field name, parameter name) for every argument field of a tool model."""
    return [(field, info.alias or field) for field, info in model.model_fields.items() if field != "action"]


def _show(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    if isinstance(value, dict | list | tuple):
        try:
            return json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError):  # circular or non-string keys: fall back to str()
            pass
    return str(value)


def _loc(parts: Iterable[Any]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and re.fullmatch(r"\w+", part):
            out += f".{part}" if out else part
        # other parts are pydantic's union-member labels ("constrained-str"): noise to a model
    return out


def format_validation_error(
    exc: ValidationError, *, action: str | None = None, model: type[BaseModel] | None = None, limit: int = 3
) -> str:
    """A short, model-readable summary of a pydantic error ("clicks must be at most 3")."""
    errors = exc.errors(include_url=False, include_input=False)
    # An error whose location a deeper error extends is its echo ("keys: too short" after
    # "keys[0]: unknown key"); the deeper one says what to fix.
    locs = [tuple(err["loc"]) for err in errors]
    errors = [e for e, loc in zip(errors, locs, strict=True) if not any(
        len(other) > len(loc) and other[: len(loc)] == loc for other in locs
    )]
    parts: list[str] = []
    for err in errors[:limit]:
        loc = list(err["loc"])
        if action is not None and loc[:1] == [action]:
            loc = loc[1:]
        field, kind, ctx = _loc(loc) or "arguments", err["type"], err.get("ctx") or {}
        if kind == "missing":
            text = f"{field} is required"
        elif kind == "extra_forbidden":
            fields = model.model_fields if model else {}
            known = ", ".join(info.alias or f for f, info in fields.items() if f != "action")
            text = f"unknown field {str(loc[-1] if loc else field)[:40]!r}"
            text += f" (fields: {known})" if known else ""
        elif kind in ("less_than_equal", "greater_than_equal", "less_than", "greater_than"):
            bound = {"less_than_equal": ("at most", "le"), "greater_than_equal": ("at least", "ge"),
                     "less_than": ("less than", "lt"), "greater_than": ("greater than", "gt")}[kind]
            text = f"{field} must be {bound[0]} {ctx.get(bound[1])}"
        elif kind == "value_error":
            msg = err["msg"].removeprefix("Value error, ")
            text = msg if field == "arguments" else f"{field}: {msg}"
        else:
            text = f"{field}: {err['msg']}"
        parts.append(text[:200])
    if len(errors) > limit:
        parts.append(f"and {len(errors) - limit} more")
    return "; ".join(parts)


def _function_entry(model: type[BaseModel], description: str, *, gui: bool) -> dict[str, Any]:
    schema = model.model_json_schema()
    schema.get("properties", {}).pop("action", None)
    required = [r for r in schema.get("required", []) if r != "action"]
    properties = _strip_titles(schema.get("properties", {}), True)
    if gui:
        properties.update({k: v for k, v in _MODEL_SPACE.items() if k in properties})
    params: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        params["required"] = required
    params["additionalProperties"] = False
    if "$defs" in schema:
        params["$defs"] = _strip_titles(schema["$defs"], True)
    name = model.model_fields["action"].default
    return {"type": "function", "function": {"name": name, "description": description, "parameters": params}}


def _strip_titles(node: Any, mapping: bool = False) -> Any:
    """Drop pydantic's auto "title" keys (prompt tokens with no information); keep field names."""
    if isinstance(node, dict):
        if mapping:  # {field or def name: schema}: the keys are names, not schema keywords
            return {k: _strip_titles(v) for k, v in node.items()}
        return {
            k: _strip_titles(v, k in ("properties", "$defs")) for k, v in node.items() if k != "title"
        }
    if isinstance(node, list):
        return [_strip_titles(v) for v in node]
    return node


class ToolRegistry:
    """The registered tools, and the union of their models with the GUI actions."""

    def __init__(self, tools: Iterable[Callable[..., Any]] = ()) -> None:
        self._tools: dict[str, tuple[Callable[..., Any], type[ToolAction]]] = {}
        self._adapter: TypeAdapter[Any] | None = None
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
        self._adapter = None  # the union changed
        return fn

    @overload
    def tool(self, fn: _F, *, name: str | None = None) -> _F: ...
    @overload
    def tool(self, fn: None = None, *, name: str | None = None) -> Callable[[_F], _F]: ...
    def tool(self, fn: Callable[..., Any] | None = None, *, name: str | None = None) -> Any:
        """Decorator: `@registry.tool` or `@registry.tool(name=...)`; returns the function unchanged."""

        def wrap(f: Callable[..., Any]) -> Callable[..., Any]:
            return self.add(tool(f, name=name))  # attach the model too, as @tool does

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

    def union_adapter(self) -> TypeAdapter[Any]:
        """A TypeAdapter over the GUI actions and every tool model, tagged by `action`."""
        if not self._tools:
            return ACTION_ADAPTER
        if self._adapter is None:
            members = (*GUI_ACTION_CLASSES, *(model for _, model in self._tools.values()))
            self._adapter = TypeAdapter(Annotated[Union[members], Field(discriminator="action")])  # noqa: UP007
        return self._adapter

    def validate(self, data: Mapping[str, Any]) -> BaseAction:
        """Validate `{"action": name, ...}` into a GUI action or tool action (raises ValidationError)."""
        return self.union_adapter().validate_python(data)  # type: ignore[no-any-return]

    def call(self, action: ToolAction | Mapping[str, Any]) -> ActionResult:
        """Run a tool. Bad arguments and exceptions in the tool come back as a failed result."""
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
        params = inspect.signature(fn).parameters
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for field, param in _arguments(model):
            value = getattr(action, field)
            if params[param].kind is inspect.Parameter.POSITIONAL_ONLY:
                args.append(value)
            else:
                kwargs[param] = value
        try:
            output = _show(fn(*args, **kwargs))
        except Exception as exc:  # a tool's failure is an observation for the model, not a crash
            logger.debug("tool %s raised", name, exc_info=True)
            elapsed = (time.perf_counter() - started) * 1000
            return ActionResult.failure(f"{name} raised {type(exc).__name__}: {exc}", elapsed)
        return ActionResult(ok=True, output=output, elapsed_ms=(time.perf_counter() - started) * 1000)

    def openai_tools(self, include_gui: bool = True) -> list[dict[str, Any]]:
        """Every action as an OpenAI function-calling entry: GUI actions first, then tools."""
        entries = []
        if include_gui:
            for cls in GUI_ACTION_CLASSES:
                entries.append(_function_entry(cls, inspect.cleandoc(cls.__doc__ or ""), gui=True))
        for _, model in self._tools.values():
            entries.append(_function_entry(model, model.__doc__ or "", gui=False))
        return entries
