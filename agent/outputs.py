"""Typed outputs: `Agent(..., output_type=Invoice)` makes `finish`'s answer that type.

The model sees the type's JSON schema as the `answer` of `finish` in its tool list. A
finish whose answer does not validate is a reply that could not be used: the parser words
the error with the fields that were wrong, the model is told, and it tries again (bounded by
the agent's max_retries). The validated object becomes `trajectory.output`, and its JSON
goes to run.json as `output`; a run resumed after its finish was written gets it back the same way.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pydantic import Field, TypeAdapter, ValidationError, create_model

from tools.actions import Finish
from tools.errors import AgentError
from tools.validation import format_validation_error

if TYPE_CHECKING:
    from agent.trajectory import Step, Trajectory

__all__ = ["OutputSpec", "finish_answer", "recorded_answer"]


class OutputSpec:
    """One output type: the finish model whose answer it is, and the adapter that dumps it."""

    def __init__(self, output_type: Any) -> None:
        self.output_type = output_type
        self.adapter: TypeAdapter[Any] = TypeAdapter(output_type)
        self.finish: type[Finish] = create_model(  # type: ignore[call-overload]
            "FinishWithOutput",
            __base__=Finish,
            __doc__=(Finish.__doc__ or "") + " The answer must match the schema of `answer`.",
            __module__=__name__,
            answer=(output_type, Field(description="The result the goal asks for.")),
        )

    def dump(self, answer: Any) -> Any:
        """The answer as JSON-ready data (what run.json holds as `output`)."""
        return self.adapter.dump_python(answer, mode="json")

    def text(self, answer: Any) -> str | None:
        """The answer as the run's `answer` text: a string as it is, anything else as JSON."""
        if answer is None or isinstance(answer, str):
            return answer
        return json.dumps(self.dump(answer), ensure_ascii=False)


def recorded_answer(spec: OutputSpec, step: Step, trajectory: Trajectory) -> str | None:
    """`finish_answer` of a finish on disk (a run resumed after its finish was written, before
    its end was): the answer validated again, so `trajectory.output` is the object once more."""
    try:
        action = spec.finish.model_validate(step.action or {})
    except ValidationError as exc:
        raise AgentError(f"the finish of step {step.index} does not match this agent's output_type "
                         f"({format_validation_error(exc, model=spec.finish)}): resume it with the "
                         "output_type it ran with") from None
    return finish_answer(spec, action, trajectory)


def finish_answer(spec: OutputSpec | None, action: Finish, trajectory: Trajectory) -> str | None:
    """The run's answer text; with an output type, also `trajectory.output` and run.json's `output`."""
    if spec is None:
        return action.answer
    trajectory.output = action.answer
    trajectory.record(output=spec.dump(action.answer))
    return spec.text(action.answer)
