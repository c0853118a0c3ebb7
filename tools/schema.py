"""Action models -> OpenAI function-calling entries, the JSON schemas the model reads.

Each entry is `{"type": "function", "function": {"name", "description", "parameters"}}`,
with the `action` tag left out (the name carries it) and pydantic's automatic titles
dropped (prompt tokens with no information). GUI actions hold screenshot pixels, but the
model writes model space, so their points are described by
`tools.coordinates.MODEL_SPACE_SCHEMA` instead of their own field schemas.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from tools.coordinates import MODEL_SPACE_SCHEMA

__all__ = ["openai_function"]


def openai_function(model: type[BaseModel], description: str, *, model_space_points: bool) -> dict[str, Any]:
    """The OpenAI function entry for an action model tagged by `action`.

    With `model_space_points`, the fields x, y, start and end are described in the model's
    0..1000 space (GUI actions); without it (registered tools), as the model declares them.
    """
    schema = model.model_json_schema()
    schema.get("properties", {}).pop("action", None)
    required = [name for name in schema.get("required", []) if name != "action"]
    properties = _strip_titles(schema.get("properties", {}), names=True)
    if model_space_points:
        properties.update({name: point for name, point in MODEL_SPACE_SCHEMA.items() if name in properties})
    parameters: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        parameters["required"] = required
    parameters["additionalProperties"] = False
    if "$defs" in schema:
        parameters["$defs"] = _strip_titles(schema["$defs"], names=True)
    name = model.model_fields["action"].default
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": parameters},
    }


def _strip_titles(node: Any, *, names: bool = False) -> Any:
    """Drop pydantic's auto "title" keys; keep field names.

    With `names`, `node` maps field or definition names to schemas: its keys are names,
    not schema keywords, so a field called "title" stays.
    """
    if isinstance(node, dict):
        if names:
            return {name: _strip_titles(value) for name, value in node.items()}
        return {
            key: _strip_titles(value, names=key in ("properties", "$defs"))
            for key, value in node.items()
            if key != "title"
        }
    if isinstance(node, list):
        return [_strip_titles(item) for item in node]
    return node
