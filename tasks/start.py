"""Starting a task where its file says, and stopping all of it at the end.

    with started(task) as start:
        start.executor.observe()      # a browser on the start page, or the desktop

`serve` serves the folder on 127.0.0.1 (tasks/serve.py) and opens `path` on it; `url` opens
the address; both in a BrowserExecutor that keeps to `allowed_domains`. `command` starts a
program and waits for its window (tasks/launch.py), then drives the desktop, as a task with
no `start` does. On exit the executor closes first, then the program and the server stop.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from urllib.parse import quote

from tasks.launch import launched
from tasks.serve import serve_folder
from tasks.spec import Task
from tools.executor import Executor

__all__ = ["Started", "started"]


@dataclass(frozen=True)
class Started:
    """A task under way: the executor to drive, the start URL in a browser, the program on a desktop."""

    executor: Executor
    url: str | None = None
    process: subprocess.Popen[bytes] | None = None


@contextmanager
def started(task: Task, *, headless: bool = True) -> Iterator[Started]:
    """Start what `task.start` names; stop it all when the block ends, however it ends."""
    start = task.start
    with ExitStack() as stack:
        url = None
        if start is not None and start.serve is not None:
            base = stack.enter_context(serve_folder(task.folder / start.serve))
            url = f"{base}/{quote(start.path, safe='/?&=#%+')}"
        elif start is not None and start.url is not None:
            url = start.url
        if url is not None:
            from tools.browser import BrowserExecutor

            browser = BrowserExecutor(start_url=url, headless=headless,
                                      allowed_domains=task.allowed_domains, strict=task.strict)
            yield Started(stack.enter_context(browser), url)
            return
        process = None
        if start is not None and start.command is not None:
            program = launched(start.command, cwd=task.folder, window_timeout=task.timeout)
            process = stack.enter_context(program)
        from tools.desktop import DesktopExecutor

        yield Started(stack.enter_context(DesktopExecutor()), None, process)
