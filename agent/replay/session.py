"""One replay's healing: a HealingGrounder per step, and the healed steps written back.

`--write-back` rewrites a healed step in the script's file once the run has finished (a run
that failed later proves nothing about its healing): the target's new words, read off the live
screen, its new crop (over the old one's file) and point, under a comment that says when, how
and why. The step's other fields are taken from the file as written, so a `{{variable}}` or a
`<secret>` placeholder stays one. The next replay finds the target as written.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.grounding import Grounder
from agent.replay.heal import Healed, HealingGrounder
from agent.replay.write import ScriptStepOut, rewrite_steps
from agent.trajectory import Trajectory
from tasks.spec import Task
from tasks.steps import FALLBACK_KEYS, MAIN_FIELD, Fallback
from tasks.yamlfile import read_yaml
from tools.errors import AgentError
from tools.executor import Executor

__all__ = ["Healing"]

log = logging.getLogger(__name__)


class Healing:
    """The fallbacks of `script`'s steps, and the steps healed so far in this run (by index, from 1)."""

    def __init__(self, script: Task) -> None:
        self.script = script
        self.fallbacks: tuple[Fallback | None, ...] = getattr(script, "fallbacks", ())
        self.healed: dict[int, Healed] = {}

    def grounder(self, index: int, grounder: Grounder, executor: Executor,
                 heal_with: Grounder | None) -> HealingGrounder:
        fallback = self.fallbacks[index - 1] if index - 1 < len(self.fallbacks) else None
        return HealingGrounder(grounder, executor, fallback, folder=self.script.folder, heal_with=heal_with)

    def write_back(self, trajectory: Trajectory, *, enabled: bool) -> list[int]:
        """Rewrite the healed steps in the script's file, if `enabled` and the run finished; the
        indices rewritten (also recorded in run.json as `written_back`)."""
        path = self.script.source
        if not enabled or not self.healed or trajectory.outcome != "finished" or path is None:
            return []
        data, _ = read_yaml(path, noun="script")
        raw_steps = data.get("steps") if isinstance(data, dict) else None
        if not isinstance(raw_steps, list):
            raise AgentError(f"{path} changed during the run: it has no steps to write back to")
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        changes: dict[int, tuple[ScriptStepOut, str]] = {}
        for index, healed in sorted(self.healed.items()):
            step = self._rewritten(path, index, raw_steps[index - 1], healed)
            comment = f"healed {now} by {healed.by} ({healed.score:.2f}): {healed.why}"
            changes[index - 1] = (step, comment)
        rewrite_steps(path, changes)
        trajectory.record(written_back=sorted(self.healed))
        log.info("wrote %d healed step(s) back to %s", len(changes), path)
        return sorted(self.healed)

    def _rewritten(self, path: Path, index: int, raw: Any, healed: Healed) -> ScriptStepOut:
        """The step at `index` as the file has it, with the healed target's words, crop and point."""
        action = {k: v for k, v in raw.items() if k not in FALLBACK_KEYS}
        ((name, value),) = action.items()
        fields = dict(value) if isinstance(value, dict) else {MAIN_FIELD.get(name, "target"): value}
        if healed.words:
            fields["target"] = healed.words
        fallback = self.fallbacks[index - 1] if index - 1 < len(self.fallbacks) else None
        crop = fallback.crop if fallback is not None and fallback.crop else \
            f"{path.stem}.crops/{index:02d}-{name}.png"
        healed.crop.save(self.script.folder / crop)
        return ScriptStepOut(name, fields, crop, healed.at)
