"""A run directory as one HTML page: each step's screenshot, what the model said, what ran.

The page is static (no script) and sits beside the screenshots it shows, so a run can be
zipped or served as it is. Everything from the model is escaped: its text is untrusted.
The records it reads were redacted as they were written; given the run's secrets, it
redacts them again, before anything is escaped.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from agent.redaction import Redactor
from agent.trajectory import Step, Trajectory, redact
from tools.errors import AgentError

__all__ = ["write_report"]

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #202124; }
.step { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 1.5em;
        border-top: 1px solid #dadce0; padding: 1em 0; }
.shot { position: relative; align-self: start; }
.shot img { width: 100%; display: block; border: 1px solid #dadce0; }
.mark { position: absolute; width: 14px; height: 14px; margin: -8px 0 0 -8px; border-radius: 50%;
        border: 2px solid #d93025; background: rgba(217, 48, 37, .25); }
pre { white-space: pre-wrap; word-break: break-word; background: #f8f9fa; padding: .6em; }
.ok { color: #188038; } .failed { color: #d93025; }
"""


def write_report(run_dir: Path | str, *, secrets: Mapping[str, str] | Iterable[str] = ()) -> Path:
    """Write `run_dir/report.html` from the run's records; return its path. AgentError when
    the steps cannot be read. `secrets`: values (or names to values) to redact, in every
    spelling, from what the records hold."""
    run_dir = Path(run_dir)
    redactor = Redactor(secrets)
    try:
        run = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        run = {}
    try:
        steps = Trajectory.read_steps(run_dir)
    except (OSError, ValueError) as exc:  # ValueError: pydantic's, for a line cut short by a kill
        raise AgentError(f"cannot read the steps of {run_dir}: {str(exc).splitlines()[0]}") from None
    run, steps = redactor.value(run), [redact(step, redactor) for step in steps]
    title = f"{run.get('goal', run_dir.name)}: {run.get('outcome', 'unknown')} after {len(steps)} steps"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        # No script may run here, whatever a model wrote into the records.
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; img-src 'self'; "
        "style-src 'unsafe-inline'\">",
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{_e(str(run.get('goal', run_dir.name)))}</h1>",
        f"<p>Outcome: <b>{_e(str(run.get('outcome', 'unknown')))}</b>",
        f"{'; answer: ' + _e(str(run['answer'])) if run.get('answer') else ''}; {len(steps)} steps; "
        f"model {_e(str(run.get('model', '?')))}</p>",
        *(_step(step) for step in steps),
        "</body></html>",
    ]
    path = run_dir / "report.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _step(step: Step) -> str:
    marks = ""
    size = step.observation.get("size")
    if step.grounded and isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size):
        width, height = max(size[0], 1), max(size[1], 1)
        marks = "".join(
            f"<div class='mark' title='{_e(label)}' "
            f"style='left:{100 * x / width:.2f}%;top:{100 * y / height:.2f}%'></div>"
            for label, (x, y) in step.grounded.items()
        )
    image = f"<img src='{_e(step.screenshot)}' alt='step {step.index}'>" if step.screenshot else ""
    if step.ok:
        output = step.result.output if step.result is not None else None
        status = "<span class='ok'>ok</span>" + (f": {_e(output)}" if output else "")
    else:
        status = f"<span class='failed'>{_e(step.feedback() or 'failed')}</span>"
    action = json.dumps(step.action, ensure_ascii=False) if step.action is not None else "no action"
    timings = ", ".join(f"{k} {v:.0f} ms" for k, v in step.timings_ms.items())
    url = step.observation.get("url")
    return (
        f"<section class='step' id='step-{step.index}'><div class='shot'>{image}{marks}</div><div>"
        f"<h2>Step {step.index}</h2>"
        + (f"<p>{_e(str(url))}</p>" if url else "")
        + f"<p>Action:</p><pre>{_e(action)}</pre><p>{status}</p>"
        f"<p>Model reply:</p><pre>{_e(step.model_text)}</pre><p><small>{_e(timings)}</small></p>"
        "</div></section>"
    )
