"""The agent with no screen, and tools beside a screen: typed outputs, several calls in one
reply, parallel and async tools, ToolRetry, a RunContext, secrets in tool arguments.

The scripted model (canned replies, some written from what it was shown) is the only
double: it stands in for weights that cannot be downloaded here. Tools, trajectories and
the browser are real.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from pydantic import BaseModel

from agent.loop import Agent
from agent.trajectory import Trajectory
from model.base import Message
from model.scripted import ScriptedModel
from tools.context import RunContext, ToolRetry
from tools.registry import tool


def _call(name: str, arguments: dict[str, object]) -> str:
    return f"<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>"


def _shown(messages: Sequence[Message]) -> str:
    return "\n".join(message.text for message in messages)


class Invoice(BaseModel):
    customer: str
    total: float
    paid: bool


@tool
def lookup_invoice(number: int) -> dict[str, object]:
    """Look up an invoice.

    Args:
        number: The invoice number.
    """
    return {"number": number, "customer": "ACME", "amount": 41.5}


def test_a_screenless_run_calls_a_tool_reads_its_result_and_finishes_typed(tmp_path):
    def answer(messages: Sequence[Message]) -> str:
        assert '"amount": 41.5' in _shown(messages)  # the tool's result is the observation
        return _call("finish", {"answer": {"customer": "ACME", "total": 41.5, "paid": False}})

    model = ScriptedModel([_call("lookup_invoice", {"number": 7}), answer])
    agent = Agent(model, tools=[lookup_invoice], output_type=Invoice, max_steps=4, runs_dir=tmp_path)
    trajectory = agent.run("What does invoice 7 say?")

    assert trajectory.outcome == "finished"
    assert trajectory.output == Invoice(customer="ACME", total=41.5, paid=False)
    run = Trajectory.read_run(trajectory.run_dir)
    assert run["output"] == {"customer": "ACME", "total": 41.5, "paid": False}
    assert json.loads(run["answer"])["total"] == 41.5
    assert not list(trajectory.run_dir.glob("*.png"))  # no screen, no screenshots
    first = model.calls[0]
    assert not first[1].images  # the prompt holds no image
    system = first[0].text
    assert '"lookup_invoice"' in system and '"finish"' in system and '"click"' not in system
    assert '"paid"' in system  # the output type's schema is finish's answer


def test_an_answer_that_fails_validation_is_sent_back_and_the_retry_passes(tmp_path):
    def retry(messages: Sequence[Message]) -> str:
        shown = _shown(messages)
        assert "answer.total" in shown and "answer.paid is required" in shown
        return _call("finish", {"answer": {"customer": "ACME", "total": 3, "paid": True}})

    model = ScriptedModel([_call("finish", {"answer": {"customer": "ACME", "total": "lots"}}), retry])
    trajectory = Agent(model, output_type=Invoice, max_steps=3, runs_dir=tmp_path).run("Make an invoice.")

    assert trajectory.outcome == "finished"
    assert trajectory.output == Invoice(customer="ACME", total=3, paid=True)
    assert [step.ok for step in trajectory.steps] == [False, True]


def test_a_list_output_type_is_validated(tmp_path):
    model = ScriptedModel([_call("finish", {"answer": [1, 2, 3]})])
    trajectory = Agent(model, output_type=list[int], max_steps=2, runs_dir=tmp_path).run("Count to 3.")
    assert trajectory.output == [1, 2, 3]


@tool(parallel=True)
def slow_square(n: int) -> int:
    """Square a number, slowly.

    Args:
        n: The number.
    """
    time.sleep(0.3)
    return n * n


@tool(parallel=True)
async def slow_cube(n: int) -> int:
    """Cube a number, slowly.

    Args:
        n: The number.
    """
    await asyncio.sleep(0.3)
    return n**3


@pytest.mark.parametrize("name", ["slow_square", "slow_cube"])
def test_parallel_tools_run_together_and_results_keep_the_order_of_the_calls(tmp_path, name):
    calls = "".join(_call(name, {"n": n}) for n in (4, 1, 3, 2))
    model = ScriptedModel([calls, _call("finish", {"answer": "done"})])
    agent = Agent(model, tools=[slow_square, slow_cube], max_steps=3, runs_dir=tmp_path)
    started = time.perf_counter()
    trajectory = agent.run("Compute.")
    # Generous: one at a time would take 1.2 s; the point is that they overlap.
    assert time.perf_counter() - started < 1.0
    step = trajectory.steps[0]
    power = 2 if name == "slow_square" else 3
    assert [call["result"]["output"] for call in step.calls] == [str(n**power) for n in (4, 1, 3, 2)]
    assert [call["action"]["n"] for call in step.calls] == [4, 1, 3, 2]
    assert step.ok and trajectory.outcome == "finished"
    assert f"{4**power}" in _shown(model.calls[1])  # every result reaches the model


def test_a_reply_of_tool_calls_and_finish_runs_the_tools_then_ends(tmp_path):
    model = ScriptedModel(['[{"name": "lookup_invoice", "arguments": {"number": 1}}, '
                           '{"name": "finish", "arguments": {"answer": "ok"}}]'])
    trajectory = Agent(model, tools=[lookup_invoice], max_steps=2, runs_dir=tmp_path).run("Check.")
    assert trajectory.outcome == "finished" and trajectory.answer == "ok"
    assert [call["action"]["action"] for call in trajectory.steps[0].calls] == ["lookup_invoice", "finish"]


def test_more_calls_than_max_calls_per_step_is_feedback(tmp_path):
    model = ScriptedModel([_call("lookup_invoice", {"number": 1}) * 3, _call("finish", {})])
    agent = Agent(model, tools=[lookup_invoice], max_steps=3, runs_dir=tmp_path, max_calls_per_step=2)
    trajectory = agent.run("Check.")
    assert "3 calls in one reply; at most 2" in trajectory.steps[0].parse_error


def test_tool_retry_reaches_the_model_and_other_errors_fail_the_step(tmp_path):
    @tool
    def book(day: str) -> str:
        """Book a day.

        Args:
            day: A weekday.
        """
        if day == "sunday":
            raise ToolRetry("we are closed on sunday: pick a weekday")
        if day == "never":
            raise RuntimeError("the calendar is gone")
        return f"booked {day}"

    def after_retry(messages: Sequence[Message]) -> str:
        assert "we are closed on sunday: pick a weekday" in _shown(messages)
        return _call("book", {"day": "never"})

    def after_error(messages: Sequence[Message]) -> str:
        assert "RuntimeError: the calendar is gone" in _shown(messages)
        return _call("book", {"day": "monday"})

    model = ScriptedModel([_call("book", {"day": "sunday"}), after_retry, after_error, _call("finish", {})])
    trajectory = Agent(model, tools=[book], max_steps=5, runs_dir=tmp_path).run("Book a day.")
    assert [step.ok for step in trajectory.steps] == [False, False, True, True]
    assert "the calendar is gone" in trajectory.steps[1].result.error
    assert trajectory.steps[2].result.output == "booked monday"


def test_retries_are_bounded_by_max_retries(tmp_path):
    @tool
    def never(x: int) -> str:
        """Never works.

        Args:
            x: Anything.
        """
        raise ToolRetry("try again")

    model = ScriptedModel([_call("never", {"x": 1})] * 3)
    trajectory = Agent(model, tools=[never], max_steps=9, max_retries=2, runs_dir=tmp_path).run("Go.")
    assert trajectory.outcome == "too_many_errors" and len(trajectory) == 3


@dataclass(frozen=True)
class Shop:
    prices: dict[str, float]


@tool
def price(ctx: RunContext[Shop], item: str) -> float:
    """The price of an item.

    Args:
        item: What to price.
    """
    assert ctx.step >= 1 and ctx.run_id
    return ctx.deps.prices[item]


def test_a_tool_reads_its_context_which_the_model_never_sees(tmp_path):
    model = ScriptedModel([_call("price", {"item": "tea"}), _call("finish", {"answer": "2.5"})])
    agent = Agent(model, tools=[price], deps=Shop({"tea": 2.5}), max_steps=3, runs_dir=tmp_path)
    trajectory = agent.run("How much is tea?")
    assert trajectory.steps[0].result.output == "2.5"
    assert trajectory.steps[0].action == {"action": "price", "item": "tea"}
    assert "ctx" not in model.calls[0][0].text


def test_secrets_in_tool_arguments_reach_the_tool_and_never_the_disk(tmp_path):
    received: list[str] = []

    @tool
    def login(user: str, password: str) -> str:
        """Log in.

        Args:
            user: The user name.
            password: The password.
        """
        received.append(password)
        return f"welcome {user} ({password})"  # a careless tool echoes it

    model = ScriptedModel([
        _call("login", {"user": "ann", "password": "<secret>pw</secret>"}) * 2,
        _call("finish", {"answer": "in"}),
    ])
    agent = Agent(model, tools=[login], secrets={"pw": "s3cr3t-Value"}, max_steps=3, runs_dir=tmp_path)
    trajectory = agent.run("Log in.")
    assert received == ["s3cr3t-Value", "s3cr3t-Value"]
    assert trajectory.outcome == "finished"
    written = "".join(path.read_text(encoding="utf-8") for path in trajectory.run_dir.iterdir())
    assert "s3cr3t" not in written and "<secret>pw</secret>" in written
    assert not any("s3cr3t" in _shown(call) for call in model.calls)


def test_async_tools_run_from_inside_a_running_event_loop(tmp_path):
    model = ScriptedModel([_call("slow_cube", {"n": 2}), _call("finish", {})])
    agent = Agent(model, tools=[slow_cube], max_steps=3, runs_dir=tmp_path)

    async def main() -> Trajectory:
        return agent.run("Cube 2.")

    trajectory = asyncio.run(main())
    assert trajectory.steps[0].result.output == "8" and threading.active_count() >= 1


@pytest.mark.browser
def test_a_tool_value_is_typed_into_a_real_page(playground, tmp_path):
    @tool
    def coupon() -> str:
        """Today's coupon code."""
        return "XK-42"

    box = playground.page.evaluate(
        "() => { const r = document.getElementById('text').getBoundingClientRect();"
        " return [r.x + r.width / 2, r.y + r.height / 2]; }")
    width, height = playground.observe().size
    x, y = round(box[0] * 1000 / (width - 1)), round(box[1] * 1000 / (height - 1))

    def type_it(messages: Sequence[Message]) -> str:
        found = re.search(r'"action":"coupon"\} -> ok: ([^;\s]+)', _shown(messages))
        assert found is not None  # the code is read from the tool's result, as the model sees it
        code = found.group(1)
        return _call("type", {"text": code})

    model = ScriptedModel([_call("coupon", {}) + _call("click", {"x": x, "y": y}), type_it,
                           _call("finish", {"answer": "typed"})])
    agent = Agent(model, playground, tools=[coupon], max_steps=4, runs_dir=tmp_path)
    trajectory = agent.run("Type the coupon.")
    assert playground.page.input_value("#text") == "XK-42"
    assert trajectory.outcome == "finished"
    first = trajectory.steps[0]
    assert [call["action"]["action"] for call in first.calls] == ["coupon", "click"]
    assert first.screenshot is not None and model.calls[0][1].images  # a screen: screenshots as before
