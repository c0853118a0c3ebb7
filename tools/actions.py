"""The GUI action space: one pydantic union, tagged by `action`.

Points are pixels of the observation's screenshot (`Observation.image`). The parser
converts the model's 0..1000 coordinates into this space; executors map it on to their
device through `Geometry`. A point may be replaced by `target`, a description that a
grounder resolves on the live screen before the action runs.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from tools.keys import canonical_key

__all__ = [
    "Action",
    "ACTION_ADAPTER",
    "BROWSER_ONLY",
    "BaseAction",
    "Back",
    "Click",
    "Drag",
    "Fail",
    "Finish",
    "Key",
    "KeyName",
    "Move",
    "Navigate",
    "Point",
    "Scroll",
    "Type",
    "Wait",
    "is_ungrounded",
    "GUI_ACTION_CLASSES",
    "GUI_ACTION_NAMES",
]

MAX_TEXT = 10_000
MAX_WAIT_SECONDS = 60.0

KeyName = Annotated[str, AfterValidator(canonical_key)]
Coordinate = Annotated[int, Field(ge=0, le=100_000)]
Point = tuple[Coordinate, Coordinate]
Target = Annotated[str, Field(min_length=1, max_length=500)]


class BaseAction(BaseModel):
    """Common configuration: immutable, and unknown fields are an error the model sees."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @property
    def name(self) -> str:
        return self.action


class _Placed(BaseAction):
    """An action at a point (`x`, `y`) or at a `target` in words, never both; `place_required`
    says whether it may have neither (scroll: where the pointer is)."""

    place_required: ClassVar[bool] = True

    @model_validator(mode="after")
    def _where(self) -> Self:
        # the fields are the subclasses': declared there, so that `action` leads each schema
        x, y, target = self.x, self.y, self.target  # type: ignore[attr-defined]
        has_point = x is not None or y is not None
        if has_point and (x is None or y is None):
            raise ValueError("give both x and y")
        if has_point and target is not None:
            raise ValueError("give either x and y or target, not both")
        if self.place_required and not has_point and target is None:
            raise ValueError("give x and y, or a target description")
        return self


class Click(_Placed):
    """Click at a point, or on a target described in words."""

    action: Literal["click"] = "click"
    x: Coordinate | None = None
    y: Coordinate | None = None
    target: Target | None = None
    button: Literal["left", "right", "middle"] = "left"
    clicks: int = Field(default=1, ge=1, le=3)
    modifiers: tuple[KeyName, ...] = ()


class Move(_Placed):
    """Move the pointer to a point or target without clicking (hover)."""

    action: Literal["move"] = "move"
    x: Coordinate | None = None
    y: Coordinate | None = None
    target: Target | None = None


class Drag(BaseAction):
    """Press at `start`, move to `end`, release. Each end is a point or a target."""

    action: Literal["drag"] = "drag"
    start: Point | Target
    end: Point | Target


class Scroll(_Placed):
    """Scroll by wheel notches, at a point or target if given (else where the pointer is)."""

    place_required: ClassVar[bool] = False
    action: Literal["scroll"] = "scroll"
    x: Coordinate | None = None
    y: Coordinate | None = None
    target: Target | None = None
    dx: int = Field(default=0, ge=-50, le=50)
    dy: int = Field(default=0, ge=-50, le=50)

    @model_validator(mode="after")
    def _notches(self) -> Scroll:
        if self.dx == 0 and self.dy == 0:
            raise ValueError("scroll needs a non-zero dx or dy (wheel notches; dy > 0 scrolls down)")
        return self


class Type(BaseAction):
    """Type text, optionally clicking a target first and pressing Enter after. `clear`
    selects what the field holds first, so that the text replaces it."""

    action: Literal["type"] = "type"
    text: str = Field(max_length=MAX_TEXT)
    target: Target | None = None
    clear: bool = False
    submit: bool = False
    secret: bool = False


class Key(BaseAction):
    """Press a key combination, such as ["ctrl", "s"]; modifiers first."""

    action: Literal["key"] = "key"
    keys: tuple[KeyName, ...] = Field(min_length=1, max_length=6)


class Wait(BaseAction):
    """Wait for the screen to change, at most 60 seconds."""

    action: Literal["wait"] = "wait"
    seconds: float = Field(default=1.0, gt=0, le=MAX_WAIT_SECONDS)


class Navigate(BaseAction):
    """Open a URL in the current tab (browser only)."""

    action: Literal["navigate"] = "navigate"
    url: str = Field(min_length=1, max_length=4096)


class Back(BaseAction):
    """Go back one page in history (browser only)."""

    action: Literal["back"] = "back"


class Finish(BaseAction):
    """The goal is done; `answer` carries any answer the goal asked for."""

    action: Literal["finish"] = "finish"
    answer: str | None = Field(default=None, max_length=MAX_TEXT)


class Fail(BaseAction):
    """The goal cannot be done; say why."""

    action: Literal["fail"] = "fail"
    reason: str = Field(min_length=1, max_length=MAX_TEXT)


Action = Annotated[
    Click | Move | Drag | Scroll | Type | Key | Wait | Navigate | Back | Finish | Fail,
    Field(discriminator="action"),
]
ACTION_ADAPTER: TypeAdapter[Action] = TypeAdapter(Action)

GUI_ACTION_CLASSES: tuple[type[BaseAction], ...] = (
    Click, Move, Drag, Scroll, Type, Key, Wait, Navigate, Back, Finish, Fail,
)
GUI_ACTION_NAMES: frozenset[str] = frozenset(
    cls.model_fields["action"].default for cls in GUI_ACTION_CLASSES
)
BROWSER_ONLY: frozenset[str] = frozenset({"navigate", "back"})


def is_ungrounded(action: BaseAction) -> bool:
    """True if the action still names a target in words instead of screenshot pixels."""
    if getattr(action, "target", None) is not None:
        return True
    return any(isinstance(getattr(action, end, None), str) for end in ("start", "end"))
