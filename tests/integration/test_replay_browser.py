"""Record once, replay without the model: a run compiled into a script, replayed and healed in Chromium.

The recording is the agent driven by a scripted model (tests/helpers/replay_shop.py: canned
replies computed from the live page, standing in for InternVL3, whose weights cannot be
downloaded here) on a real multi-page app served on 127.0.0.1 (tests/pages/replay). The
replays use the embedded grounders (DOM, OCR) in a real Chromium; where a model heals a step,
a scripted model grounder answers the box InternVL3 would.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from agent.grounding.cascade import auto_grounder
from agent.replay import compile_run, crops_folder
from agent.report import write_report
from agent.script import Script, ScriptRunner
from agent.trajectory import Trajectory
from tasks.serve import serve_folder
from tests.helpers.cli import run_cli
from tests.helpers.replay_shop import (
    EMAIL,
    PASSWORD,
    change_app,
    copy_app,
    healing_model,
    record_shop_run,
)
from tools.browser import BrowserExecutor
from tools.errors import TaskError

pytestmark = pytest.mark.browser

EXPECTED_STEPS = [
    ("type", "the Email field"),
    ("type", "the Password field"),
    ("click", 'the "Sign in" button'),
    ("expect", 'the second "Open" button'),  # the run's wait, now on what it waited for
    ("click", 'the second "Open" button'),
    ("click", 'the "Add to cart" button'),
    ("click", 'the "Cart" button'),
    ("click", "the Place order button"),
]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Trajectory, Path]:
    """(the folder holding app/ and out/, the recorded run, its compiled script out/shop.yaml)."""
    root = tmp_path_factory.mktemp("replay")
    task = copy_app(root)
    with serve_folder(root / "app") as base:
        trajectory = record_shop_run(base, task, root / "runs")
    assert trajectory.outcome == "finished"
    compiled = compile_run(trajectory.run_dir, root / "out" / "shop.yaml", variables={"email": EMAIL})
    return root, trajectory, compiled.path


def _copy(recorded: tuple[Path, Trajectory, Path], into: Path) -> Path:
    """The app and the compiled script copied side by side into `into`; the script's new path."""
    root, _, script = recorded
    shutil.copytree(root / "app", into / "app")
    shutil.copytree(root / "out", into / "out")
    return into / "out" / script.name


def _replay(script_path: Path, runs: Path, *, scale: float = 1, heal: bool = False,
            write_back: bool = False) -> tuple[Trajectory, str]:
    """Replay the script on its served app; (the trajectory, the text of the last page's #msg)."""
    script = Script.load(script_path, variables={"email": EMAIL})
    assert script.start is not None and script.start.serve is not None
    with serve_folder(script.folder / script.start.serve) as base, BrowserExecutor(
            start_url=f"{base}/{script.start.path}", device_scale_factor=scale) as browser:
        healer = healing_model(browser, "#signin") if heal else None
        runner = ScriptRunner(browser, auto_grounder(browser), runs_dir=runs, secrets={"password": PASSWORD},
                              retry_every_s=0.2, heal_with=healer, write_back=write_back)
        trajectory = runner.run(script)
        message = browser.page.evaluate("document.querySelector('#msg')?.textContent || ''")
    return trajectory, message


def _found(trajectory: Trajectory) -> list[tuple[str, str | None]]:
    """Each step's (how its target was found, by which grounder or fallback)."""
    out = []
    for step in Trajectory.read_steps(trajectory.run_dir):
        ((_, record),) = (step.replay or {"": {"found": None}}).items()
        out.append((record["found"], record.get("by")))
    return out


def test_a_run_compiles_into_the_shortest_script_of_what_worked(recorded):
    root, trajectory, script_path = recorded
    script = Script.load(script_path, variables={"email": EMAIL})

    steps = [(s.name, getattr(s, "target", None)) for s in script.steps]
    assert steps == EXPECTED_STEPS
    # The failed step, the wrong turn and the step that took it back, and the repeated wait are gone.
    recorded_steps = Trajectory.read_steps(trajectory.run_dir)
    assert [s.ok for s in recorded_steps].count(False) == 1 and len(recorded_steps) == 13
    text = script_path.read_text(encoding="utf-8")
    assert "Forgot" not in text and "wait" not in text and "back" not in text.split("steps:")[1]
    # Typed text kept, the goal's value a variable, the secret a placeholder.
    assert script.steps[0].text == EMAIL and '"{{email}}"' in text
    assert script.steps[1].text == "<secret>password</secret>"
    # Each target keeps its crop (beside the script) and its point as a fraction of the screen.
    for step, fallback in zip(script.steps, script.fallbacks, strict=True):
        if step.name == "expect":
            assert fallback is None
            continue
        assert fallback is not None and fallback.crop is not None
        assert (script.folder / fallback.crop).is_file() and fallback.crop.startswith("shop.crops/")
        assert all(0 <= v <= 1 for v in fallback.at)
    # The task file's start (its served folder, relative to the new file), domains and checks.
    assert script.start.serve == "../app/" and (script.folder / script.start.serve).resolve() == root / "app"
    assert script.allowed_domains == ("127.0.0.1",) and script.success is not None


def test_a_compiled_script_holds_no_step_that_failed_while_recording(recorded):
    _, trajectory, script_path = recorded
    failed = [s for s in Trajectory.read_steps(trajectory.run_dir) if not s.ok]
    assert failed and failed[0].action["target"] == "the Forgot password link"
    script = Script.load(script_path, variables={"email": EMAIL})
    assert all(getattr(step, "target", None) != "the Forgot password link" for step in script.steps)


def test_a_secret_typed_while_recording_is_not_in_the_script_nor_beside_it(recorded):
    _, _, script_path = recorded
    spellings = [PASSWORD, json.dumps(PASSWORD)[1:-1], PASSWORD.encode("unicode_escape").decode()]
    beside = [p for p in script_path.parent.rglob("*") if p.is_file()]
    assert len(beside) >= 8  # the script and its crops
    for path in beside:
        data = path.read_bytes()
        assert not any(s.encode() in data for s in spellings) and PASSWORD not in str(path)
    assert "<secret>password</secret>" in script_path.read_text(encoding="utf-8")


def test_the_agent_writes_runs_script_yaml_after_a_finished_run_and_the_report_links_it(recorded):
    _, trajectory, _ = recorded
    own = trajectory.run_dir / "script.yaml"
    assert own.is_file() and (trajectory.run_dir / "script.crops").is_dir()
    assert Trajectory.read_run(trajectory.run_dir)["script"] == "script.yaml"
    assert [(s.name, getattr(s, "target", None)) for s in Script.load(own).steps] == EXPECTED_STEPS
    report = write_report(trajectory.run_dir).read_text(encoding="utf-8")
    assert "href='script.yaml'" in report


def test_the_script_replays_with_no_model(recorded, tmp_path):
    script_path = _copy(recorded, tmp_path)
    trajectory, message = _replay(script_path, tmp_path / "runs")

    assert trajectory.outcome == "finished" and message == f"Order placed for Chair by {EMAIL}"
    assert set(_found(trajectory)) == {("as written", "dom")}


def test_a_changed_app_heals_by_crop_and_model_and_write_back_makes_the_next_replay_clean(recorded, tmp_path):
    script_path = _copy(recorded, tmp_path)
    change_app(tmp_path / "app")  # moved, resized, restyled, relabelled; replayed at device scale 2
    before = script_path.read_text(encoding="utf-8")

    healed, message = _replay(script_path, tmp_path / "runs", scale=2, heal=True, write_back=True)

    assert healed.outcome == "finished" and message == f"Order placed for Chair by {EMAIL}"
    found = _found(healed)
    assert found[2] == ("healed", "model")  # "Sign in" is "Log in" now, restyled: its crop is not enough
    assert found[6] == ("healed", "crop")  # the cart button, renamed and moved, looks the same
    assert all(f == ("as written", "dom") for n, f in enumerate(found) if n not in (2, 6))
    steps = Trajectory.read_steps(healed.run_dir)
    assert "best match 0." in steps[2].replay['the "Sign in" button']["tried"]["crop"]
    assert steps[6].replay['the "Cart" button']["score"] >= 0.93
    assert Trajectory.read_run(healed.run_dir)["written_back"] == [3, 7]

    after = script_path.read_text(encoding="utf-8")
    assert after != before and after.count("# healed ") == 2
    assert '"the \\"Log in\\" button"' in after and '"the \\"Basket\\" button"' in after
    assert "by model" in after and "by crop" in after and '"{{email}}"' in after  # variables stay

    clean, message = _replay(script_path, tmp_path / "runs", scale=2)
    assert clean.outcome == "finished" and message == f"Order placed for Chair by {EMAIL}"
    assert set(_found(clean)) == {("as written", "dom")}


def test_with_no_fallback_left_the_step_fails_saying_what_each_one_saw(recorded, tmp_path):
    script_path = _copy(recorded, tmp_path)
    change_app(tmp_path / "app")
    text = script_path.read_text(encoding="utf-8").replace('timeout: 4', 'timeout: 1')
    script_path.write_text(text, encoding="utf-8")

    trajectory, _ = _replay(script_path, tmp_path / "runs")

    assert trajectory.outcome == "failed" and len(trajectory) == 3
    step = Trajectory.read_steps(trajectory.run_dir)[2]
    assert step.screenshot and (trajectory.run_dir / step.screenshot).is_file()
    error = step.result.error
    assert "no element on the page matches" in error and "crop: best match" in error
    assert "below the 0.93 a match needs" in error and "model: none given (--heal-with MODEL)" in error
    assert step.replay['the "Sign in" button']["found"] == "no"


def test_a_variable_not_given_at_replay_is_one_line_that_names_it(recorded):
    _, _, script_path = recorded
    with pytest.raises(TaskError, match=r"variable\(s\) email: give each with --var NAME=VALUE"):
        Script.load(script_path)


def test_the_cli_compiles_a_run_and_replays_it(recorded, tmp_path):
    _, trajectory, _ = recorded
    out = tmp_path / "scripts" / "shop.yaml"  # its start.serve: the recorded app, from here

    compiled = run_cli("compile", str(trajectory.run_dir), "-o", str(out), "--var", f"email={EMAIL}",
                    cwd=tmp_path)
    assert compiled.returncode == 0, compiled.stderr
    assert "8 steps, 3 left out" in compiled.stdout and crops_folder(out).is_dir()

    replayed = run_cli("script", str(out), "--var", f"email={EMAIL}", "--secret", "password", "--json",
                    "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path, env={"password": PASSWORD})
    assert replayed.returncode == 0, replayed.stderr
    result = json.loads(replayed.stdout.strip().splitlines()[-1])
    assert result["success"] and result["steps"] == 8

    bad = run_cli("compile", str(tmp_path), cwd=tmp_path)
    assert bad.returncode == 2 and "holds no run" in bad.stderr and "Traceback" not in bad.stderr
