"""Benchmarks that run tasks through the agent's own path and report per task: MiniWoB++
(`run_miniwob`, `print_table`; the CLI's `bench miniwob`, on N workers with agent/parallel.py),
task files (agent/bench/task_files.py; `bench tasks DIR`) and grounding (`run_grounding_bench`,
`print_grounding_table`; the CLI's `bench grounding`)."""

from agent.bench.episodes import POLICIES, STAGES, EpisodeRecord, run_episode
from agent.bench.grounding import GROUNDERS, GroundingBench, print_grounding_table, run_grounding_bench
from agent.bench.miniwob import (
    MiniWoBWorker,
    miniwob_batch,
    miniwob_tasks,
    parse_time_limit,
    run_miniwob,
    write_json,
)
from agent.bench.table import print_table

__all__ = ["GROUNDERS", "POLICIES", "STAGES", "EpisodeRecord", "GroundingBench", "MiniWoBWorker",
           "miniwob_batch", "miniwob_tasks", "parse_time_limit", "print_grounding_table", "print_table",
           "run_episode", "run_grounding_bench", "run_miniwob", "write_json"]
