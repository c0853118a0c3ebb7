"""Tool pipelines, second part: tools that return images, agents as tools, a confirm rule in a
reply of several calls, and a typed output after a resume.

The scripted model (canned replies, some written from what it was shown) is the only double:
it stands in for weights that cannot be downloaded here. Tools, images, trajectories, reports
and the browser are real.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence

import pytest
from PIL import Image, ImageDraw
from pydantic import BaseModel

from agent.loop import Agent
from agent.report import write_report
from agent.safety import SafetyPolicy
from agent.trajectory import Trajectory
from model.base import Message
from model.prompting import OMITTED_IMAGE, keep_latest_images
from model.scripted import ScriptedModel
from tools.actions import BaseAction
from tools.registry import tool


def _call(name: str, arguments: dict[str, object]) -> str:
    return f"<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>"


def _chart(color: str = "red", size: tuple[int, int] = (64, 40)) -> Image.Image:
    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).rectangle((8, 8, 30, 32), fill=color)
    return image


@tool
def chart(color: str) -> Image.Image:
    """Draw a chart.

    Args:
        color: The bar's colour.
    """
    return _chart(color)


@tool
def chart_png(color: str) -> bytes:
    """Draw a chart as PNG bytes.

    Args:
        color: The bar's colour.
    """
    buffer = io.BytesIO()
    _chart(color, (50, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


@tool
def captioned(color: str) -> list[object]:
    """A caption, two charts, and a note.

    Args:
        color: The first bar's colour.
    """
    return ["two charts:", _chart(color), _chart("blue"), {"note": "blue is last year"}]


def test_an_image_a_tool_returns_reaches_the_model_and_is_saved_beside_the_step(tmp_path):
    seen: list[Image.Image] = []

    def look(messages: Sequence[Message]) -> str:
        seen.extend(messages[1].images)
        assert "Returned by chart in step 1:" in messages[1].text
        assert "1 image returned, shown above" in messages[1].text
        return _call("finish", {"answer": "a red bar"})

    model = ScriptedModel([_call("chart", {"color": "red"}), look])
    trajectory = Agent(model, tools=[chart], max_steps=3, runs_dir=tmp_path).run("What colour is the bar?")

    assert trajectory.outcome == "finished"
    assert len(seen) == 1 and seen[0].tobytes() == _chart("red").tobytes()  # the very pixels
    step = trajectory.steps[0]
    assert step.tool_images == ["step-001-tool-1.png"] and step.ok and step.result.output is None
    with Image.open(trajectory.run_dir / "step-001-tool-1.png") as saved:
        assert saved.convert("RGB").tobytes() == _chart("red").tobytes()
    assert Trajectory.read_steps(trajectory.run_dir)[0].tool_images == ["step-001-tool-1.png"]
    report = write_report(trajectory.run_dir).read_text(encoding="utf-8")
    assert "<img src='step-001-tool-1.png'" in report


def test_png_bytes_and_a_list_of_text_and_images_from_two_calls_keep_their_order(tmp_path):
    def look(messages: Sequence[Message]) -> str:
        user = messages[1]
        images = user.images
        assert [image.size for image in images] == [(50, 30), (64, 40), (64, 40)]
        assert images[0].convert("RGB").tobytes() == _chart("green", (50, 30)).tobytes()
        assert [image.tobytes() for image in images[1:]] == [_chart(c).tobytes() for c in ("red", "blue")]
        captions = [part for part in user.content if isinstance(part, str) and part.startswith("Returned by")]
        assert captions == ["Returned by call 1 (chart_png) in step 1:\n",
                            *["Returned by call 2 (captioned) in step 1:\n"] * 2]
        assert 'two charts:\n{"note": "blue is last year"}' in user.text  # the text parts, in order
        return _call("finish", {})

    both = _call("chart_png", {"color": "green"}) + _call("captioned", {"color": "red"})
    model = ScriptedModel([both, look])
    trajectory = Agent(model, tools=[chart_png, captioned], max_steps=3, runs_dir=tmp_path).run("Compare.")

    step = trajectory.steps[0]
    assert step.tool_images == [f"step-001-tool-{k}.png" for k in (1, 2, 3)]
    assert [call.get("images") for call in step.calls] == [["step-001-tool-1.png"],
                                                          ["step-001-tool-2.png", "step-001-tool-3.png"]]
    assert all((trajectory.run_dir / name).is_file() for name in step.tool_images)


def test_tool_images_go_under_the_same_keep_images_budget_as_screenshots_oldest_first(tmp_path):
    model = ScriptedModel([_call("chart", {"color": "red"}), _call("chart", {"color": "blue"}),
                           _call("finish", {})])
    Agent(model, tools=[chart], max_steps=4, runs_dir=tmp_path).run("Draw twice.")
    shown = model.calls[2]
    red, blue = _chart("red").tobytes(), _chart("blue").tobytes()
    assert [image.tobytes() for image in shown[1].images] == [red, blue]
    kept = keep_latest_images(shown, 1)  # what every backend applies for GenerationConfig(keep_images=1)
    assert [image.tobytes() for image in kept[1].images] == [blue]
    assert OMITTED_IMAGE in kept[1].text


def test_a_broken_png_fails_the_call_with_a_message_for_the_model(tmp_path):
    @tool
    def broken() -> bytes:
        """Return a cut PNG."""
        buffer = io.BytesIO()
        _chart().save(buffer, format="PNG")
        return buffer.getvalue()[:40]

    model = ScriptedModel([_call("broken", {}), _call("finish", {})])
    trajectory = Agent(model, tools=[broken], max_steps=3, runs_dir=tmp_path).run("Break.")
    assert not trajectory.steps[0].ok and "do not decode" in trajectory.steps[0].result.error
    assert trajectory.steps[0].tool_images is None


def test_a_resumed_run_shows_the_model_the_images_read_back_from_disk(tmp_path):
    first = Agent(ScriptedModel([_call("chart", {"color": "red"})]), tools=[chart], max_steps=4,
                  runs_dir=tmp_path)
    steps = first.steps("Draw, then say.")
    next(steps)
    steps.close()  # stopped after step 1: resumable
    seen: list[Image.Image] = []

    def look(messages: Sequence[Message]) -> str:
        seen.extend(messages[1].images)
        return _call("finish", {})

    again = Agent(ScriptedModel([look]), tools=[chart], max_steps=4, runs_dir=tmp_path)
    trajectory = again.drive(again.resume(first.trajectory.run_dir))
    assert trajectory.outcome == "finished"
    assert [image.tobytes() for image in seen] == [_chart("red").tobytes()]


class Invoice(BaseModel):
    customer: str
    total: float


def test_a_typed_output_comes_back_after_a_resume(tmp_path):
    answer = {"customer": "ACME", "total": 12.5}
    agent = Agent(ScriptedModel([_call("finish", {"answer": answer})]), output_type=Invoice, max_steps=3,
                  runs_dir=tmp_path)
    steps = agent.steps("Read the invoice.")
    next(steps)
    steps.close()  # killed after the finish step was written, before the run's end was
    run_dir = agent.trajectory.run_dir
    assert Trajectory.read_run(run_dir)["outcome"] == "stopped"

    again = Agent(ScriptedModel([]), output_type=Invoice, max_steps=3, runs_dir=tmp_path)
    trajectory = again.drive(again.resume(run_dir))
    assert trajectory.outcome == "finished" and trajectory.output == Invoice(**answer)
    assert Trajectory.read_run(run_dir)["output"] == answer and json.loads(trajectory.answer) == answer


def test_a_typed_output_after_a_resume_that_goes_on_to_finish(tmp_path):
    agent = Agent(ScriptedModel([_call("chart", {"color": "red"})]), tools=[chart], output_type=Invoice,
                  max_steps=4, runs_dir=tmp_path)
    steps = agent.steps("Read the invoice.")
    next(steps)
    steps.close()
    again = Agent(ScriptedModel([_call("finish", {"answer": {"customer": "B", "total": 1}})]), tools=[chart],
                  output_type=Invoice, max_steps=4, runs_dir=tmp_path)
    trajectory = again.drive(again.resume(agent.trajectory.run_dir))
    assert trajectory.output == Invoice(customer="B", total=1.0)


def _pay_needs_approval(action: BaseAction, observation: object) -> str | None:
    return "it pays money" if action.name == "pay" else None


@pytest.mark.parametrize("confirm", [None, lambda action, reason: False], ids=["no one asked", "refused"])
def test_a_call_no_one_approves_in_a_reply_of_several_ends_the_run_blocked_and_runs_none_of_it(
        tmp_path, confirm):
    ran: list[str] = []

    @tool
    def quote(item: str) -> str:
        """Quote a price.

        Args:
            item: What to price.
        """
        ran.append(f"quote {item}")
        return "3 EUR"

    @tool
    def pay(amount: int) -> str:
        """Pay.

        Args:
            amount: Euros.
        """
        ran.append(f"pay {amount}")
        return "paid"

    reply = "".join([_call("quote", {"item": "tea"}), _call("pay", {"amount": 3}), _call("finish", {})])
    model = ScriptedModel([reply, _call("finish", {})])
    agent = Agent(model, tools=[quote, pay], safety=SafetyPolicy(confirm_when=_pay_needs_approval),
                  confirm=confirm, max_steps=3, runs_dir=tmp_path)
    trajectory = agent.run("Buy tea.")

    assert trajectory.outcome == "blocked" and len(trajectory) == 1 and ran == []
    calls = trajectory.steps[0].calls
    assert [call["action"]["action"] for call in calls] == ["quote", "pay", "finish"]
    assert not any(call["result"]["ok"] for call in calls)
    assert "it pays money" in calls[1]["result"]["error"]
    # the same as one call alone
    alone = Agent(ScriptedModel([_call("pay", {"amount": 3})]), tools=[pay], confirm=confirm,
                  safety=SafetyPolicy(confirm_when=_pay_needs_approval), max_steps=3, runs_dir=tmp_path)
    assert alone.run("Pay.").outcome == "blocked" and ran == []


def test_an_approved_call_in_a_reply_of_several_runs(tmp_path):
    asked: list[str] = []

    @tool
    def pay(amount: int) -> str:
        """Pay.

        Args:
            amount: Euros.
        """
        return f"paid {amount}"

    def approve(action: BaseAction, reason: str) -> bool:
        asked.append(reason)
        return True

    model = ScriptedModel([_call("pay", {"amount": 1}) + _call("pay", {"amount": 2}), _call("finish", {})])
    agent = Agent(model, tools=[pay], safety=SafetyPolicy(confirm_when=_pay_needs_approval), confirm=approve,
                  max_steps=3, runs_dir=tmp_path)
    trajectory = agent.run("Pay twice.")
    assert trajectory.outcome == "finished" and asked == ["it pays money"] * 2
    assert [call["result"]["output"] for call in trajectory.steps[0].calls] == ["paid 1", "paid 2"]


def test_a_plain_tool_runs_on_the_loops_thread_so_it_may_hold_a_connection(tmp_path):
    import sqlite3

    connection = sqlite3.connect(":memory:")  # sqlite refuses a connection used from another thread
    connection.execute("create table stock (item text, count int)")
    connection.execute("insert into stock values ('tea', 7)")

    @tool
    def stock(item: str) -> int:
        """Count an item in stock.

        Args:
            item: The item.
        """
        return connection.execute("select count from stock where item = ?", (item,)).fetchone()[0]

    model = ScriptedModel([_call("stock", {"item": "tea"}), _call("finish", {})])
    trajectory = Agent(model, tools=[stock], max_steps=3, runs_dir=tmp_path).run("How much tea?")
    connection.close()
    assert trajectory.steps[0].ok and trajectory.steps[0].result.output == "7"


@pytest.mark.browser
def test_with_a_screen_tool_images_come_before_the_screenshot_which_the_budget_keeps(playground, tmp_path):
    def look(messages: Sequence[Message]) -> str:
        user = messages[1]
        chart_image, screenshot = user.images
        assert chart_image.tobytes() == _chart("red").tobytes()
        assert screenshot.size == playground.observe().size
        assert user.content.index("Current screen:\n") == user.content.index(screenshot) - 1
        assert keep_latest_images(messages, 1)[1].images == [screenshot]
        return _call("finish", {})

    model = ScriptedModel([_call("chart", {"color": "red"}), look])
    trajectory = Agent(model, playground, tools=[chart], max_steps=3, runs_dir=tmp_path).run("Look.")
    assert trajectory.outcome == "finished"
    assert {"step-001.png", "step-001-tool-1.png"} <= {path.name for path in trajectory.run_dir.iterdir()}


def test_an_image_name_that_is_not_a_tool_image_of_the_run_is_never_read(tmp_path):
    from types import SimpleNamespace

    from agent.tool_images import ToolImages

    _chart().save(tmp_path / "elsewhere.png")
    run = tmp_path / "run"
    run.mkdir()
    _chart().save(run / "step-001-tool-1.png")
    images, trajectory = ToolImages(), SimpleNamespace(run_dir=run)
    assert images.load(trajectory, "step-001-tool-1.png") is not None  # type: ignore[arg-type]
    assert images.load(trajectory, "../elsewhere.png") is None  # type: ignore[arg-type]
    assert images.load(trajectory, "step-002-tool-1.png") is None  # type: ignore[arg-type]
