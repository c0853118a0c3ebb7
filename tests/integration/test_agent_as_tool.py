"""Agents as tools: a child run inside the caller's, linked both ways and from the report.

The scripted models (canned replies) are the only doubles: they stand in for weights that
cannot be downloaded here. Agents, tools, trajectories and reports are real.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest
from pydantic import BaseModel

from agent.loop import Agent
from agent.report import write_report
from agent.trajectory import Trajectory
from model.base import Message
from model.scripted import ScriptedModel
from tools.registry import tool


def _call(name: str, arguments: dict[str, object]) -> str:
    return f"<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>"


class Weather(BaseModel):
    city: str
    celsius: int


@tool
def thermometer(city: str) -> int:
    """Read a city's thermometer.

    Args:
        city: The city.
    """
    return {"Oslo": -3, "Rome": 14}[city]


def _weather_agent(tmp_path, replies: list[str]) -> Agent:
    return Agent(ScriptedModel(replies), tools=[thermometer], output_type=Weather, max_steps=3,
                 runs_dir=tmp_path / "elsewhere")


def test_an_agent_called_as_a_tool_runs_as_a_child_run_linked_both_ways(tmp_path):
    child = _weather_agent(tmp_path, [_call("thermometer", {"city": "Oslo"}),
                                      _call("finish", {"answer": {"city": "Oslo", "celsius": -3}})])
    weather = child.as_tool("weather", "Find the temperature of a city.")

    def read(messages: Sequence[Message]) -> str:
        assert '-> ok: {"city": "Oslo", "celsius": -3}' in messages[1].text  # the child's typed answer
        return _call("finish", {"answer": "-3 in Oslo"})

    model = ScriptedModel([_call("weather", {"task": "How cold is Oslo?"}), read])
    parent = Agent(model, tools=[weather], max_steps=3, runs_dir=tmp_path)
    trajectory = parent.run("Is it freezing in Oslo?")

    assert trajectory.outcome == "finished" and trajectory.answer == "-3 in Oslo"
    assert '"weather"' in model.calls[0][0].text and '"task"' in model.calls[0][0].text
    run = Trajectory.read_run(trajectory.run_dir)
    [link] = run["children"]
    assert link["step"] == 1 and link["tool"] == "weather" and link["outcome"] == "finished"
    child_dir = trajectory.run_dir / link["dir"]
    assert child_dir.parent == trajectory.run_dir / "children" and child_dir.name == link["id"]
    child_run = Trajectory.read_run(child_dir)
    assert child_run["goal"] == "How cold is Oslo?" and child_run["output"] == {"city": "Oslo", "celsius": -3}
    assert child_run["parent"] == {"run": trajectory.run_dir.name, "step": 1, "tool": "weather"}
    assert [step.action["action"] for step in Trajectory.read_steps(child_dir)] == ["thermometer", "finish"]
    assert not (tmp_path / "elsewhere").exists()  # the child's run is the parent's, not the agent's

    report = write_report(trajectory.run_dir).read_text(encoding="utf-8")
    assert f"<a href='{link['dir']}/report.html'>" in report
    assert "Find the temperature" not in report  # the link, not the child's steps
    assert "thermometer" in (child_dir / "report.html").read_text(encoding="utf-8")


def test_a_child_run_that_does_not_finish_fails_the_call_and_is_still_linked(tmp_path):
    child = _weather_agent(tmp_path, [_call("fail", {"reason": "no thermometer in Paris"})])

    def after(messages: Sequence[Message]) -> str:
        assert "weather ended as failed: no thermometer in Paris" in messages[1].text
        return _call("fail", {"reason": "unknown"})

    model = ScriptedModel([_call("weather", {"task": "Paris?"}), after])
    trajectory = Agent(model, tools=[child.as_tool("weather", "Find the temperature.")], max_steps=3,
                       runs_dir=tmp_path).run("Paris?")
    assert not trajectory.steps[0].ok and trajectory.outcome == "failed"
    [link] = Trajectory.read_run(trajectory.run_dir)["children"]
    assert link["outcome"] == "failed"


def test_stopping_the_calling_run_stops_its_child_run_after_the_childs_step(tmp_path):
    calling: list[Agent] = []

    def first(messages: Sequence[Message]) -> str:
        calling[0].stop()  # the calling run is stopped (Ctrl-C, say) while its child works
        return _call("thermometer", {"city": "Oslo"})

    child = _weather_agent(tmp_path, [first, _call("finish", {"answer": {"city": "Oslo", "celsius": -3}})])
    model = ScriptedModel([_call("weather", {"task": "How cold is Oslo?"}), _call("finish", {"answer": "?"})])
    parent = Agent(model, tools=[child.as_tool("weather", "Find the temperature.")], max_steps=3,
                   runs_dir=tmp_path)
    calling.append(parent)
    trajectory = parent.run("Is it freezing in Oslo?")

    assert trajectory.outcome == "stopped" and len(trajectory.steps) == 1
    assert "weather ended as stopped" in (trajectory.steps[0].result.error or "")
    [link] = Trajectory.read_run(trajectory.run_dir)["children"]
    assert link["outcome"] == "stopped"
    child_steps = Trajectory.read_steps(trajectory.run_dir / link["dir"])
    assert [step.action["action"] for step in child_steps if step.action] == ["thermometer"]


def test_each_call_is_a_run_of_its_own_and_two_calls_in_a_reply_link_each(tmp_path):
    child = Agent(ScriptedModel([_call("finish", {"answer": "one"}), _call("finish", {"answer": "two"})]),
                  max_steps=2, runs_dir=tmp_path)
    ask = child.as_tool("ask", "Ask a helper.")
    model = ScriptedModel([_call("ask", {"task": "first"}) + _call("ask", {"task": "second"}),
                           _call("finish", {})])
    trajectory = Agent(model, tools=[ask], max_steps=3, runs_dir=tmp_path).run("Ask twice.")
    assert [call["result"]["output"] for call in trajectory.steps[0].calls] == ["one", "two"]
    links = Trajectory.read_run(trajectory.run_dir)["children"]
    assert len({link["id"] for link in links}) == 2
    goals = [Trajectory.read_run(trajectory.run_dir / link["dir"])["goal"] for link in links]
    assert goals == ["first", "second"]


def test_an_agent_cannot_be_its_own_tool_while_it_runs(tmp_path):
    model = ScriptedModel([_call("me", {"task": "again"}), _call("finish", {})])
    agent = Agent(model, max_steps=3, runs_dir=tmp_path)
    agent.registry.add(agent.as_tool("me", "Myself."))
    trajectory = agent.run("Recurse.")
    assert "in a run already" in trajectory.steps[0].result.error


@pytest.mark.browser
def test_a_gui_agent_is_a_tool_of_a_screenless_one(playground, tmp_path):
    clicker = Agent(ScriptedModel([_call("finish", {"answer": playground.observe().title})]), playground,
                    max_steps=2, runs_dir=tmp_path)
    model = ScriptedModel([_call("browse", {"task": "Read the page's title."}), _call("finish", {})])
    trajectory = Agent(model, tools=[clicker.as_tool("browse", "Use the browser.")], max_steps=3,
                       runs_dir=tmp_path).run("Title?")
    assert trajectory.steps[0].result.output == playground.observe().title
    [link] = Trajectory.read_run(trajectory.run_dir)["children"]
    assert (trajectory.run_dir / link["dir"] / "step-001.png").is_file()  # the child's screenshot


def test_a_secret_passed_to_an_agent_tool_stays_a_placeholder_until_the_child_fills_it(tmp_path):
    received: list[str] = []

    @tool
    def login(password: str) -> str:
        """Log in.

        Args:
            password: The password.
        """
        received.append(password)
        return "in"

    def child_reply(messages: Sequence[Message]) -> str:
        assert "<secret>pw</secret>" in messages[1].text  # the child's goal, as its model sees it
        return _call("login", {"password": "<secret>pw</secret>"})

    child = Agent(ScriptedModel([child_reply, _call("finish", {"answer": "logged in"})]), tools=[login],
                  secrets={"pw": "s3cr3t-Value"}, max_steps=3, runs_dir=tmp_path)
    ask = _call("helper", {"task": "Log in with <secret>pw</secret>."})
    model = ScriptedModel([ask, _call("finish", {})])
    trajectory = Agent(model, tools=[child.as_tool("helper", "Logs in.")], secrets={"pw": "s3cr3t-Value"},
                       max_steps=3, runs_dir=tmp_path).run("Log in.")
    assert trajectory.outcome == "finished" and received == ["s3cr3t-Value"]
    written = [path.read_bytes() for path in trajectory.run_dir.rglob("*") if path.is_file()]
    assert len(written) == 4 and not any(b"s3cr3t" in data for data in written)


def test_the_report_follows_only_child_runs_inside_the_run(tmp_path):
    trajectory = Agent(ScriptedModel([_call("finish", {})]), max_steps=2, runs_dir=tmp_path).run("Nothing.")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    trajectory.record(children=[{"dir": ".", "step": 1}, {"dir": "children/..", "step": 1},
                                {"dir": "../elsewhere", "step": 1}, {"dir": str(outside), "step": 1}])
    report = write_report(trajectory.run_dir).read_text(encoding="utf-8")  # no recursion into itself
    assert "Called an agent" not in report and not (outside / "report.html").exists()
