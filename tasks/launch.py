"""A task's `start.command`: start a program on the desktop, wait for its window, stop it after.

The program runs without a shell (its argv as written), in the task file's folder, in a
session of its own, so that stopping it reaches whatever it started too: SIGTERM to the
group, then SIGKILL after `STOP_GRACE_S`. Its window is a new top-level window that X
shows (viewable) after the start, found by polling the root window's children with
python-xlib, for at most `window_timeout` seconds.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from tools.desktop.x11 import NO_DISPLAY, open_display
from tools.errors import ExecutorError, TaskError

__all__ = ["STOP_GRACE_S", "launched"]

POLL_S = 0.1
STOP_GRACE_S = 5.0


@contextlib.contextmanager
def launched(argv: Sequence[str], *, cwd: Path,
             window_timeout: float = 10.0) -> Iterator[subprocess.Popen[bytes]]:
    """Run `argv` until the block ends, once its window is shown. ExecutorError when it exits or
    shows no window in time; TaskError when it cannot be started at all."""
    display = os.environ.get("DISPLAY", "")
    if not display:
        raise ExecutorError(NO_DISPLAY.format(detail=" ($DISPLAY is not set) to start the task's command on"))
    xdisplay = open_display(display)
    try:
        before = _shown_windows(xdisplay)
        with tempfile.TemporaryFile() as stderr:
            process = _start(argv, cwd, stderr)
            try:
                _wait_for_window(process, xdisplay, before, window_timeout, stderr, argv[0])
                yield process
            finally:
                _stop(process)
    finally:
        xdisplay.close()


def _start(argv: Sequence[str], cwd: Path, stderr: IO[bytes]) -> subprocess.Popen[bytes]:
    try:
        return subprocess.Popen(list(argv), cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=stderr, start_new_session=True)
    except FileNotFoundError:
        raise TaskError(f"start.command: {argv[0]!r} was not found: give a program on PATH, or a path "
                        f"relative to {cwd}") from None
    except OSError as exc:
        raise TaskError(f"start.command: {argv[0]!r} cannot be run ({exc.strerror or exc})") from None


def _shown_windows(xdisplay: Any) -> set[int]:
    """The ids of the root window's children that X shows now."""
    from Xlib import X
    from Xlib.error import XError

    shown = set()
    for window in xdisplay.screen().root.query_tree().children:
        with contextlib.suppress(XError):  # it may vanish between the two requests
            if window.get_attributes().map_state == X.IsViewable:
                shown.add(window.id)
    return shown


def _wait_for_window(process: subprocess.Popen[bytes], xdisplay: Any, before: set[int], timeout: float,
                     stderr: IO[bytes], program: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if _shown_windows(xdisplay) - before:
            return
        if process.poll() is not None:
            raise ExecutorError(f"start.command {program!r} exited with code {process.returncode} before "
                                f"showing a window{_tail(stderr)}")
        if time.monotonic() >= deadline:
            raise ExecutorError(f"start.command {program!r} showed no window within {timeout:g} s: does it "
                                "open one on $DISPLAY?")
        time.sleep(POLL_S)


def _tail(stderr: IO[bytes]) -> str:
    stderr.seek(0)
    lines = stderr.read().decode("utf-8", "replace").strip().splitlines()
    return f" ({lines[-1][:200]})" if lines else ""


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the program's process group, SIGKILL when it lingers; reaped either way."""
    for sig, grace in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, STOP_GRACE_S)):
        if process.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # what the program left behind in its group
