"""Several calls in one reply: tools run in order, `@tool(parallel=True)` ones together.

A reply may hold up to `max_calls_per_step` calls (agent.parse_many). The tool calls at its
start run first: a run of consecutive parallel tools at the same time (plain functions in
threads, async ones on one event loop), any other tool alone; results keep the order of
the calls. The first action that is not a tool call (a GUI action, finish or fail) ends the
batch: it runs alone, after the tools, and only if they all succeeded; calls after it are
recorded as not run. Every call and its result goes into the step (`Step.calls`). A call that
needed a person's approval and did not get it ends the run (`blocked`), as it does alone: then
no call of the reply runs. The images tools return stay on their results (tools.tool_output).
Placeholders `<secret>name</secret>` in a tool's text arguments are filled for the tool
only: the step records the placeholder.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from agent.parse_many import MAX_CALLS_PER_STEP
from agent.trajectory import Outcome
from agent.vault import PLACEHOLDER, Secrets, UnknownSecret
from tools.actions import BaseAction
from tools.context import RunContext
from tools.executor import ActionResult
from tools.registry import ToolAction, ToolRegistry

__all__ = ["NOT_APPROVED", "Batch", "BatchOutcome", "Refusal", "call_tool", "call_tools", "fill_secrets",
           "join_results", "run_tools"]

_T = TypeVar("_T")


@dataclass(frozen=True)
class Batch:
    """A reply's calls split for running: the tool calls first, then the action that ends the
    batch (if any), then the calls that will not run."""

    tools: tuple[ToolAction, ...]
    last: BaseAction | None
    dropped: tuple[BaseAction, ...]

    @classmethod
    def of(cls, actions: Sequence[BaseAction]) -> Batch:
        for index, action in enumerate(actions):
            if not isinstance(action, ToolAction):
                return cls(tuple(actions[:index]), action, tuple(actions[index + 1:]))  # type: ignore[arg-type]
        return cls(tuple(actions), None, ())  # type: ignore[arg-type]


# Why a call may not run, and the outcome that ends the run there (a call no one approved).
Refusal = tuple[str | None, Outcome | None]
NOT_APPROVED = "not run: another call of this reply was not approved, which ends the run"


@dataclass(frozen=True)
class BatchOutcome:
    """What came of a reply's tool calls: each call with its result, for the step's record."""

    calls: list[dict[str, Any]]
    result: ActionResult  # all the tool calls' results joined (join_results)
    ok: bool
    results: tuple[ActionResult, ...] = ()  # each tool call's, in call order (with its images)
    ending: Outcome | None = None  # a call's refusal ended the run: none of the reply ran


def call_tools(registry: ToolRegistry, batch: Batch, ctx: RunContext[Any], secrets: Secrets,
               refusal: Callable[[BaseAction], Refusal]) -> BatchOutcome:
    """Run the batch's tool calls (those `refusal` names a reason for are not run; one that
    also names an ending stops the whole batch) and record them, with the calls after the
    batch's end as not run."""
    results: list[ActionResult | None] = []
    runnable: list[ToolAction] = []
    ending: Outcome | None = None
    for action in batch.tools:
        reason, ending = refusal(action)
        if ending is not None:  # no one approved it: the run ends, and nothing of the reply runs
            results = [ActionResult.failure(NOT_APPROVED)] * len(results)
            results += [ActionResult.failure(reason or NOT_APPROVED)]
            results += [ActionResult.failure(NOT_APPROVED)] * (len(batch.tools) - len(results))
            runnable = []
            break
        filled = _filled_for(registry, action, secrets) if reason is None else ActionResult.failure(reason)
        if isinstance(filled, ActionResult):
            results.append(filled)
        else:
            results.append(None)
            runnable.append(filled)
    ran = iter(run_tools(registry, runnable, ctx))
    done = [result if result is not None else next(ran) for result in results]
    joined = join_results(done, [action.name for action in batch.tools])
    calls = [{"action": action.model_dump(mode="json"), "result": result.model_dump(mode="json")}
             for action, result in zip(batch.tools, done, strict=True)]
    skipped = ActionResult.failure("not run: the action before it ends the reply's calls")
    calls += [{"action": action.model_dump(mode="json"), "result": skipped.model_dump(mode="json")}
              for action in batch.dropped]
    return BatchOutcome(calls, joined, joined.ok, tuple(done), ending)


def call_tool(registry: ToolRegistry, action: ToolAction, secrets: Secrets,
              ctx: RunContext[Any]) -> ActionResult:
    """Run one tool call, its placeholders filled for the tool only."""
    filled = _filled_for(registry, action, secrets)
    return filled if isinstance(filled, ActionResult) else run_tools(registry, [filled], ctx)[0]


def _filled_for(registry: ToolRegistry, action: ToolAction, secrets: Secrets) -> ToolAction | ActionResult:
    """The call as its tool gets it: placeholders filled, unless it fills them itself."""
    return fill_secrets(action, secrets) if registry.fills_secrets(action.name) else action


def fill_secrets(action: ToolAction, secrets: Secrets) -> ToolAction | ActionResult:
    """`action` with each placeholder in its text arguments replaced by the value (for the tool
    only), or the failed result of a placeholder that names no secret."""
    data = action.model_dump(by_alias=True)
    if not any(_has_placeholder(value) for value in data.values()):
        return action
    try:
        return type(action).model_validate(_filled(data, secrets))
    except UnknownSecret as exc:
        return ActionResult.failure(str(exc))


def run_tools(registry: ToolRegistry, actions: Sequence[ToolAction],
              ctx: RunContext[Any]) -> list[ActionResult]:
    """Run the calls, consecutive parallel tools together, and return results in call order. A
    plain function alone runs on the caller's thread, plain parallel ones in a pool of threads
    kept for the process, and a group with an async tool on an event loop."""
    results: list[ActionResult] = []
    index = 0
    while index < len(actions):
        end = index + 1
        if registry.is_parallel(actions[index].name):
            while end < len(actions) and registry.is_parallel(actions[end].name):
                end += 1
        group = actions[index:end]
        if any(registry.is_async(action.name) for action in group):
            results.extend(_run(_gather(registry, group, ctx)))
        elif len(group) == 1:  # on this thread: a tool may hold what is bound to it (a browser, a database)
            results.append(registry.call(group[0], ctx))
        else:
            results.extend(_in_threads(registry, group, ctx))
        index = end
    return results


def join_results(results: Sequence[ActionResult], names: Sequence[str]) -> ActionResult:
    """One result for the step: ok when every call was, with each output and error by call."""
    outputs = [f"{n}. {name}: {r.output}" for n, (name, r) in enumerate(zip(names, results, strict=True), 1)
               if r.ok and r.output is not None]
    errors = [f"{n}. {name}: {r.error}" for n, (name, r) in enumerate(zip(names, results, strict=True), 1)
              if not r.ok]
    return ActionResult(ok=not errors, error="; ".join(errors) or None, output="\n".join(outputs) or None,
                        elapsed_ms=sum(r.elapsed_ms for r in results))


def _in_threads(registry: ToolRegistry, group: Sequence[ToolAction],
                ctx: RunContext[Any]) -> list[ActionResult]:
    """Plain parallel tools at the same time, each in a thread of the shared pool (with the
    caller's context variables, as asyncio.to_thread would). From a thread of that pool (a tool
    that runs an agent whose tools are parallel), a pool of its own: waiting on the shared one
    from inside it could wait for ever."""
    nested = threading.current_thread().name.startswith(_POOL_PREFIX)
    pool = concurrent.futures.ThreadPoolExecutor(len(group)) if nested else _shared_pool()
    try:
        futures = [pool.submit(contextvars.copy_context().run, registry.call, action, ctx)
                   for action in group]
        return [future.result() for future in futures]
    finally:
        if nested:
            pool.shutdown()


_POOL_PREFIX = "parallel-tool"
_POOL: concurrent.futures.ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _shared_pool() -> concurrent.futures.ThreadPoolExecutor:
    """Threads started once, not per step (starting and joining them cost milliseconds a step)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = concurrent.futures.ThreadPoolExecutor(4 * MAX_CALLS_PER_STEP,
                                                          thread_name_prefix=_POOL_PREFIX)
        return _POOL


async def _gather(registry: ToolRegistry, group: Sequence[ToolAction],
                  ctx: RunContext[Any]) -> list[ActionResult]:
    return list(await asyncio.gather(*(registry.acall(action, ctx) for action in group)))


def _run(coroutine: Awaitable[_T]) -> _T:
    """Run on a new event loop; from inside a running one (an async caller), in a helper thread."""
    async def main() -> _T:
        return await coroutine

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result()


def _has_placeholder(value: object) -> bool:
    if isinstance(value, str):
        return PLACEHOLDER.search(value) is not None
    if isinstance(value, dict):
        return any(_has_placeholder(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(_has_placeholder(item) for item in value)
    return False


def _filled(value: Any, secrets: Secrets) -> Any:
    fill: Callable[[Any], Any] = lambda item: _filled(item, secrets)  # noqa: E731
    if isinstance(value, str):
        return secrets.fill(value) if PLACEHOLDER.search(value) else value
    if isinstance(value, dict):
        return {key: fill(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [fill(item) for item in value]
    return value
