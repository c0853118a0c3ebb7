"""Per-step overhead of a tool-only step: our Agent against pydantic-ai and smolagents, same run.

Each framework runs the same scripted replies with no model behind them, so a step's time is
the framework's own work around a model call: building the prompt, parsing the reply, calling
the tools, and recording the step. Two workloads, each `--steps` steps and then a finish:

    trivial   one call per step of a tool that adds two numbers
    parallel  four calls per step of a tool that sleeps 50 ms (run together: near 50 ms a step)

A step's time is the interval between two successive model calls, so every framework is
timed at the same point; the table gives the median and the 90th percentile of those
intervals, and each median's ratio to ours. The baselines:

- pydantic-ai: `Agent(FunctionModel(...))`, the function returning `ToolCallPart`s; its sync
  tools run in threads, several calls of one response at the same time.
- smolagents: `ToolCallingAgent` with a `Model` whose `generate` returns the same calls as
  `ChatMessage.tool_calls`; several calls of one message run in a thread pool.
- ours: `Agent(ScriptedModel(...), executor=None, tools=[...])`, the tool `@tool(parallel=True)`
  for the second workload. It records every step (steps.jsonl, fsynced; run.json), which the
  others do not do; `--no-fsync` shows what the fsync costs on this disk (os.fsync is made a
  no-op for that row only).

    python bench/tool_step.py              # 200 steps per workload, about a minute
    python bench/tool_step.py --steps 50
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.loop import Agent
from model.scripted import ScriptedModel
from tools.registry import tool

SLEEP_S = 0.05
PARALLEL_CALLS = 4


@dataclass(frozen=True)
class Workload:
    name: str
    tool: str
    calls: int  # per step
    arguments: dict[str, int]


WORKLOADS = (Workload("trivial", "add", 1, {"a": 2, "b": 3}),
             Workload("parallel", "nap", PARALLEL_CALLS, {"ms": int(SLEEP_S * 1000)}))


class Clock:
    """The times of the model calls of one run: a step is the interval between two."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def tick(self) -> None:
        self.calls.append(time.perf_counter())

    def steps_ms(self) -> list[float]:
        return [(b - a) * 1e3 for a, b in zip(self.calls, self.calls[1:], strict=False)]


def add(a: int, b: int) -> int:
    """Add two numbers.

    Args:
        a: The first number.
        b: The second number.
    """
    return a + b


def nap(ms: int) -> str:
    """Sleep a while.

    Args:
        ms: Milliseconds to sleep.
    """
    time.sleep(ms / 1000)
    return "rested"


TOOLS: dict[str, Callable[..., object]] = {"add": add, "nap": nap}


def run_ours(work: Workload, steps: int, runs_dir: Path) -> Clock:
    clock = Clock()
    call = "".join(f"<tool_call>{json.dumps({'name': work.tool, 'arguments': work.arguments})}</tool_call>"
                   for _ in range(work.calls))
    finish = '<tool_call>{"name": "finish", "arguments": {"answer": "done"}}</tool_call>'

    def reply(text: str) -> Callable[[object], str]:
        def answer(_messages: object) -> str:
            clock.tick()
            return text
        return answer

    model = ScriptedModel([reply(call)] * steps + [reply(finish)])
    function = tool(TOOLS[work.tool], parallel=work.calls > 1)
    agent = Agent(model, tools=[function], max_steps=steps + 1, runs_dir=runs_dir,
                  max_calls_per_step=max(work.calls, 8))
    trajectory = agent.run(f"Call {work.tool} {steps} times.")
    assert trajectory.outcome == "finished" and len(trajectory) == steps + 1, trajectory.outcome
    return clock


def run_pydantic_ai(work: Workload, steps: int) -> Clock:
    from pydantic_ai import Agent as PydanticAgent
    from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart
    from pydantic_ai.models.function import AgentInfo, FunctionModel
    from pydantic_ai.usage import UsageLimits

    clock = Clock()
    done = [0]

    def respond(_messages: list[object], _info: AgentInfo) -> ModelResponse:
        clock.tick()
        done[0] += 1
        if done[0] > steps:
            return ModelResponse(parts=[TextPart("done")])
        return ModelResponse(parts=[ToolCallPart(work.tool, dict(work.arguments),
                                                 tool_call_id=f"c{done[0]}-{k}") for k in range(work.calls)])

    agent = PydanticAgent(FunctionModel(respond), tools=[TOOLS[work.tool]])
    result = agent.run_sync(f"Call {work.tool} {steps} times.", usage_limits=UsageLimits(request_limit=None))
    assert result.output == "done" and done[0] == steps + 1
    return clock


def run_smolagents(work: Workload, steps: int) -> Clock:
    from smolagents import ChatMessage, Model, ToolCallingAgent
    from smolagents import tool as smol_tool
    from smolagents.models import ChatMessageToolCall, ChatMessageToolCallFunction, MessageRole
    from smolagents.monitoring import LogLevel

    clock = Clock()
    done = [0]

    class Scripted(Model):
        def generate(self, messages: list[ChatMessage], stop_sequences: list[str] | None = None,
                     response_format: dict[str, str] | None = None,
                     tools_to_call_from: list[object] | None = None, **kwargs: object) -> ChatMessage:
            clock.tick()
            done[0] += 1
            if done[0] > steps:
                calls = [("final_answer", {"answer": "done"})]
            else:
                calls = [(work.tool, dict(work.arguments))] * work.calls
            return ChatMessage(role=MessageRole.ASSISTANT, content="", tool_calls=[
                ChatMessageToolCall(function=ChatMessageToolCallFunction(name=name, arguments=arguments),
                                    id=f"c{done[0]}-{k}", type="function")
                for k, (name, arguments) in enumerate(calls)])

    agent = ToolCallingAgent(tools=[smol_tool(TOOLS[work.tool])], model=Scripted(model_id="scripted"),
                             max_steps=steps + 2, verbosity_level=LogLevel.OFF)
    output = agent.run(f"Call {work.tool} {steps} times.")
    assert output == "done" and done[0] == steps + 1, (output, done[0])
    return clock


@contextlib.contextmanager
def no_fsync() -> Iterator[None]:
    real = os.fsync
    os.fsync = lambda fd: None
    try:
        yield
    finally:
        os.fsync = real


def _row(name: str, work: Workload, clock: Clock, ours_median: float | None) -> tuple[str, float]:
    steps = clock.steps_ms()
    median = statistics.median(steps)
    p90 = statistics.quantiles(steps, n=10)[-1]
    floor = SLEEP_S * 1e3 if work.calls > 1 else 0.0
    ratio = f"{median / ours_median:.2f}" if ours_median else "1.00"
    return (f"| {work.name:<8} | {name:<25} | {len(steps):>5} | {median:>9.2f} | {p90:>9.2f} | "
            f"{median - floor:>12.2f} | {ratio:>11} |"), median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--runs-dir", type=Path, default=None,
                        help="where our runs are written (default: a temporary folder, removed after)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # smolagents and pydantic-ai log nothing we need here
    load = os.getloadavg()[0]
    print(f"{args.steps} steps per workload; load average {load:.2f} on {os.cpu_count()} CPUs; "
          f"runs on {args.runs_dir or tempfile.gettempdir()}")
    print("| workload | framework                 | steps | median ms | p90 ms    | overhead ms* "
          "| ratio/ours |\n|----------|---------------------------|-------|-----------|-----------|"
          "--------------|------------|")
    with tempfile.TemporaryDirectory(dir=args.runs_dir) as runs:
        for work in WORKLOADS:
            ours = run_ours(work, args.steps, Path(runs))
            line, median = _row("ours", work, ours, None)
            print(line, flush=True)
            with no_fsync():
                unsynced = run_ours(work, args.steps, Path(runs))
            for name, clock in (("ours, no fsync", unsynced),
                                ("pydantic-ai FunctionModel", run_pydantic_ai(work, args.steps)),
                                ("smolagents ToolCalling", run_smolagents(work, args.steps))):
                print(_row(name, work, clock, median)[0], flush=True)
    print(f"* median less the {SLEEP_S * 1e3:.0f} ms the parallel tools must sleep (none for trivial); "
          "ratio/ours > 1: slower than ours.")


if __name__ == "__main__":
    main()
