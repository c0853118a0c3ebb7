"""A run directory as one HTML page: each step's screenshot, what the model said, what ran.

The page is static (no script) and sits beside the screenshots it shows, so a run can be
zipped or served as it is. Everything from the model is escaped: its text is untrusted.
The records it reads were redacted as they were written; given the run's secrets, it
redacts them again, before anything is escaped. The images a step's tools returned are shown
with it; the runs of agents called as tools (run.json's `children`) get reports of their own,
linked from the step that called them.
"""

from __future__ import annotations

import html
import json
import re
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
.candidates td { padding: 0 .5em; vertical-align: top; } .candidates .picked { font-weight: bold; }
.returned img { max-width: 100%; display: block; margin: .4em 0; border: 1px solid #dadce0; }
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
    children = _child_reports(run_dir, run, secrets)
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
        _script_link(run_dir, run.get("script")),
        *(_step(step, children.get(step.index, "")) for step in steps),
        "</body></html>",
    ]
    path = run_dir / "report.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def _e(text: str) -> str:
    return html.escape(text, quote=True)


_CHILD_DIR = re.compile(r"children/[A-Za-z0-9_-][A-Za-z0-9_.-]*")  # never `..`, nor this run itself


def _script_link(run_dir: Path, script: object) -> str:
    """A link to the run compiled into a script (agent/replay), when it is beside the report."""
    if not isinstance(script, str) or Path(script).name != script or not (run_dir / script).is_file():
        return ""
    return (f"<p>Replay it without the model: <a href='{_e(script)}'>{_e(script)}</a> "
            f"(<code>internvl-agent script {_e(script)}</code>)</p>")


def _child_reports(run_dir: Path, run: dict[str, object],
                   secrets: Mapping[str, str] | Iterable[str]) -> dict[int, str]:
    """Write the report of each child run (an agent called as a tool) that is on disk; the
    links to them, by the step that called them."""
    links: dict[int, str] = {}
    listed = run.get("children")
    for child in listed if isinstance(listed, list) else ():
        where = child.get("dir") if isinstance(child, dict) else None
        if not isinstance(where, str) or not _CHILD_DIR.fullmatch(where):
            continue  # only a child run's directory inside this one's
        try:
            write_report(run_dir / where, secrets=secrets)
        except AgentError:
            continue
        step = child.get("step")
        text = f"{child.get('tool', 'agent')}: run {child.get('id', where)} ({child.get('outcome', '?')})"
        link = f"<p>Called an agent: <a href='{_e(where)}/report.html'>{_e(text)}</a></p>"
        if isinstance(step, int):
            links[step] = links.get(step, "") + link
    return links


def _candidates(step: Step) -> str:
    """Best-of-N: each sampled reply's action, group, critic score, and which one was picked."""
    if not step.candidates:
        return ""
    rows = []
    for c in step.candidates:
        did = json.dumps(c["action"], ensure_ascii=False) if c.get("action") else str(c.get("parse_error"))
        score = "" if c.get("score") is None else format(c["score"], ".3f")
        rows.append(f"<tr{' class=picked' if c.get('picked') else ''}><td>{_e(str(c.get('group', '')))}</td>"
                    f"<td>{_e(score)}</td><td>{'picked' if c.get('picked') else ''}</td>"
                    f"<td><code>{_e(did)}</code></td></tr>")
    return (f"<p>{len(step.candidates)} candidates:</p><table class='candidates'><tr><th>group</th>"
            f"<th>score</th><th></th><th>action</th></tr>{''.join(rows)}</table>")


def _step(step: Step, children: str = "") -> str:
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
    returned = "".join(f"<img src='{_e(name)}' alt='returned by a tool in step {step.index}'>"
                       for name in step.tool_images or ())
    if returned:
        returned = f"<div class='returned'><p>The tools returned:</p>{returned}</div>"
    return (
        f"<section class='step' id='step-{step.index}'><div class='shot'>{image}{marks}</div><div>"
        f"<h2>Step {step.index}</h2>"
        + (f"<p>{_e(str(url))}</p>" if url else "")
        + f"<p>Action:</p><pre>{_e(action)}</pre><p>{status}</p>{returned}{children}"
        f"<p>Model reply:</p><pre>{_e(step.model_text)}</pre>{_candidates(step)}"
        f"<p><small>{_e(timings)}</small></p>"
        "</div></section>"
    )
