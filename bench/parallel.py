"""MiniWoB++ episodes per minute of the reference policy on 1 and 2 local workers and on Ray
(2 CPUs, 2 actors), in one run, with the ratios; and what Ray itself costs: its start-up and
the round trip of one call.

    one worker   bench miniwob as it runs by default: in this process, one Chromium
    2 workers    agent/parallel.py: two spawned processes, a Chromium each (--workers 2)
    ray, 2 CPUs  two Ray actors, a Chromium each (--ray auto --workers 2); ray.init is timed apart

Each run plays the same episodes (tasks x seeds) from nothing: its wall time includes starting
its workers and their browsers, so "episodes/min" is what a user of `--workers 2` gets. "start
s" is the time to the first episode back (mostly start-up), and "steady/min" the rate after it.
Rounds alternate the three modes, and the table quotes medians over rounds. "CPU ms/ep" is the
CPU time the run used per episode (this process and its descendants: not known for Ray's).
The per-episode results must match across modes (task, seed, utterance, success, raw reward,
steps), and the bench says whether they did. The machine is shared: the load average and CPU
pressure are printed before and after, and the ratio can only be read against them (with the
kernel's autogroup scheduling, a busy machine gives this session a share of the CPUs however
many processes it runs).

    python bench/parallel.py [--tasks click-button,enter-text,click-link,focus-text] [--seeds 200]
                             [--rounds 2]
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from agent.bench import EpisodeRecord, MiniWoBWorker
from agent.bench.miniwob import DEFAULT_MAX_STEPS
from agent.parallel import run_jobs

MODES = ("one worker", "2 workers", "ray, 2 CPUs")


@dataclass
class Run:
    wall: float  # seconds for the whole run, its workers and browsers started inside it
    first: float  # seconds until the first episode came back: mostly start-up
    last: float  # seconds until the last one did
    records: list[EpisodeRecord]
    cpu: float | None  # CPU seconds of this process and its (reaped) descendants; None on Ray

    @property
    def steady_per_minute(self) -> float:
        """Episodes per minute once the first one is back (start-up left out)."""
        return 60 * (len(self.records) - 1) / (self.last - self.first)


def play(mode: str, tasks: str, seeds: int) -> Run:
    """The episodes as `bench miniwob` plays them in `mode`."""
    workers, ray = {"one worker": (1, None), "2 workers": (2, None), "ray, 2 CPUs": (2, "auto")}[mode]
    jobs = [(task, seed) for task in tasks.split(",") for seed in range(seeds)]
    worker = MiniWoBWorker("reference", "task", DEFAULT_MAX_STEPS["reference"])
    arrivals: list[float] = []
    cpu = _cpu_seconds()
    start = time.perf_counter()
    batch = run_jobs(worker, jobs, workers=workers, ray=ray,
                     on_result=lambda record: arrivals.append(time.perf_counter() - start))
    wall = time.perf_counter() - start
    used = _cpu_seconds() - cpu if ray is None else None  # Ray's workers are not our children
    return Run(wall, arrivals[0], arrivals[-1], batch.results, used)


def _cpu_seconds() -> float:
    """User + system time of this process and every descendant reaped so far (the workers, their
    Playwright drivers and Chromiums are all reaped once a run has closed them)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def ray_costs() -> dict[str, float]:
    """ray.init of a local Ray (2 CPUs), one actor's start, and the median round trip of a call
    to it and of a task, in milliseconds; Ray stays up for the runs that follow."""
    import ray

    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    costs = {"ray.init (local, 2 CPUs)": (time.perf_counter() - start) * 1e3}

    @ray.remote(num_cpus=1)
    class Echo:
        def echo(self, value: int) -> int:
            return value

    @ray.remote(num_cpus=1)
    def echo(value: int) -> int:
        return value

    start = time.perf_counter()
    actor = Echo.remote()  # type: ignore[attr-defined]
    ray.get(actor.echo.remote(0))
    costs["an actor's start (first call)"] = (time.perf_counter() - start) * 1e3
    costs["actor call round trip (median)"] = _median_ms(lambda i: ray.get(actor.echo.remote(i)))
    ray.get(echo.remote(0))  # its worker process starts here
    costs["task round trip (median)"] = _median_ms(lambda i: ray.get(echo.remote(i)))
    ray.kill(actor)
    return costs


def pool_round_trip() -> float:
    """The same for a local worker: one call to a warm spawned process (concurrent.futures)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        pool.submit(abs, 0).result()
        return _median_ms(lambda i: pool.submit(abs, i).result())


def _median_ms(call: object, times: int = 200) -> float:
    samples = []
    for i in range(times):
        start = time.perf_counter()
        call(i)  # type: ignore[operator]
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


def _same(records: list[EpisodeRecord]) -> list[tuple[object, ...]]:
    return [(r.task, r.seed, r.utterance, r.success, r.raw_reward, r.steps) for r in records]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="click-button,enter-text,click-link,focus-text")
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    episodes = len(args.tasks.split(",")) * args.seeds
    print(f"{os.cpu_count()} CPUs; load average {_load()} before; {episodes} episodes a run "
          f"({args.tasks}, {args.seeds} seeds each), {args.rounds} rounds\n")

    costs = ray_costs()
    costs["local process call round trip (median)"] = pool_round_trip()
    runs: dict[str, list[Run]] = {mode: [] for mode in MODES}
    for _ in range(args.rounds):
        for mode in MODES:
            runs[mode].append(play(mode, args.tasks, args.seeds))
    import ray

    ray.shutdown()

    base = statistics.median(run.wall for run in runs["one worker"])
    base_steady = statistics.median(run.steady_per_minute for run in runs["one worker"])
    print(f"{'mode':12s} {'episodes':>8s} {'success':>7s} {'wall s':>7s} {'rounds s':>12s} {'start s':>8s} "
          f"{'episodes/min':>12s} {'vs one':>7s} {'steady/min':>11s} {'vs one':>7s} {'CPU ms/ep':>10s}")
    for mode in MODES:
        wall = statistics.median(run.wall for run in runs[mode])
        steady = statistics.median(run.steady_per_minute for run in runs[mode])
        rounds = " ".join(f"{run.wall:.1f}" for run in runs[mode])
        first = statistics.median(run.first for run in runs[mode])
        successes = sum(r.success for r in runs[mode][0].records)
        cpus = [run.cpu for run in runs[mode] if run.cpu is not None]
        cpu = f"{1000 * statistics.median(cpus) / episodes:10.0f}" if cpus else f"{'-':>10s}"
        print(f"{mode:12s} {episodes:8d} {successes:7d} {wall:7.1f} {rounds:>12s} {first:8.1f} "
              f"{60 * episodes / wall:12.0f} {base / wall:6.2f}x {steady:11.0f} {steady / base_steady:6.2f}x "
              f"{cpu}")
    played = [_same(run.records) for mode in MODES for run in runs[mode]]
    same = all(each == played[0] for each in played)
    print(f"\nthe same per-episode results in every mode: {'yes' if same else 'NO'}")
    print("\nRay's own costs (ms):")
    for what, ms in costs.items():
        print(f"  {what:42s} {ms:9.2f}")
    print(f"\nload average {_load()} after")


def _load() -> str:
    """The load average, and the share of time some task waited for a CPU (Linux's PSI)."""
    load = " ".join(f"{value:.2f}" for value in os.getloadavg()) + " (1, 5, 15 min)"
    try:
        some = Path("/proc/pressure/cpu").read_text().splitlines()[0].split()
        return load + f", CPU pressure {some[2].split('=')[1]}% (avg60)"
    except (OSError, IndexError):
        return load


if __name__ == "__main__":
    main()
