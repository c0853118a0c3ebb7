"""What the agent is asked to do, and how we know it did it.

    spec      Task: one YAML file for a goal and for a script (name, goal, start, limits, steps, success)
    steps     the step syntax of scripts: `click: the OK button`, `expect_text: Saved`
    checks    success checks, each returning CheckResult(ok, why)
    start     starting a task (a served folder, a URL, a program) and stopping it
    serve     a folder over HTTP on 127.0.0.1 that cannot be escaped
    launch    a program on the desktop, its window waited for
    yamlfile  reading YAML with the line of every key, for errors
    examples/ the bundled pages and tasks

`tasks` imports `tools`, never `agent`: running a task with a model is agent/task_run.py.
"""

from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent / "examples"

__all__ = ["EXAMPLES"]
