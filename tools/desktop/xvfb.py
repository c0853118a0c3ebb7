"""XvfbDisplay: a private virtual X display for tests, benchmarks and headless runs.

    with XvfbDisplay(1920, 1080) as xvfb:
        executor = DesktopExecutor(display=xvfb.display)

Xvfb chooses a free display number itself (`-displayfd`) and writes it once it accepts
connections, so two processes starting displays at the same time cannot race for one
number, and no polling is needed to know that the server is up.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import subprocess
import tempfile
import time
from typing import IO

from tools.errors import ExecutorError

__all__ = ["XvfbDisplay"]

INSTALL_HINT = "install it with `apt-get install xvfb` (Debian/Ubuntu)"


class XvfbDisplay:
    """Start `Xvfb` on a free display number; stop it on exit. `.display` is ":N"."""

    def __init__(
        self,
        width: int = 1920,
        height: int = 1080,
        depth: int = 24,
        *,
        number: int | None = None,
        timeout_s: float = 15.0,
    ) -> None:
        if width <= 0 or height <= 0 or depth not in (8, 16, 24, 32):
            raise ValueError("width and height must be positive and depth one of 8, 16, 24, 32")
        self.width, self.height, self.depth = width, height, depth
        self.number = self._requested = number
        self.timeout_s = timeout_s
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def display(self) -> str:
        """The DISPLAY string, such as ":99" (only while running)."""
        if self._process is None or self.number is None:
            raise ExecutorError("this XvfbDisplay is not running: use it in a `with` block, or call start()")
        return f":{self.number}"

    @property
    def env(self) -> dict[str, str]:
        """A copy of os.environ with DISPLAY pointing here, for subprocesses."""
        return {**os.environ, "DISPLAY": self.display}

    def start(self) -> XvfbDisplay:
        if self._process is not None:
            return self
        binary = shutil.which("Xvfb")
        if binary is None:
            raise ExecutorError(f"Xvfb is not installed: {INSTALL_HINT}")
        read_fd, write_fd = os.pipe()
        command = [binary]
        if self.number is not None:
            command.append(f":{self.number}")
        command += [
            "-displayfd", str(write_fd),
            "-screen", "0", f"{self.width}x{self.height}x{self.depth}",
            "-nolisten", "tcp",
            # Without -noreset the server resets whenever its last client leaves, and a
            # client connecting during that reset fails at random.
            "-noreset",
        ]
        # Xvfb's messages go to a file, not a pipe: a full pipe would block the server.
        log = tempfile.TemporaryFile()
        try:
            self._process = subprocess.Popen(
                command, pass_fds=(write_fd,), stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        except BaseException as exc:
            os.close(read_fd)
            log.close()
            if isinstance(exc, FileNotFoundError):  # removed since shutil.which found it
                raise ExecutorError(f"Xvfb is not installed: {INSTALL_HINT}") from exc
            raise
        finally:
            os.close(write_fd)
        try:
            self.number = self._read_number(read_fd, log)
        except BaseException:
            self.stop()
            raise
        finally:
            os.close(read_fd)
            log.close()
        return self

    def _read_number(self, read_fd: int, log: IO[bytes]) -> int:
        assert self._process is not None
        deadline = time.monotonic() + self.timeout_s
        data = b""
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                raise ExecutorError(f"Xvfb did not start within {self.timeout_s:.0f} s")
            ready, _, _ = select.select([read_fd], [], [], min(left, 0.2))
            chunk = os.read(read_fd, 64) if ready else b""
            if ready and not chunk:  # Xvfb closed its end: it has exited
                self._process.wait(timeout=5)
                break
            data += chunk
        if not data.strip().isdigit():
            log.seek(0)
            text = log.read().decode(errors="replace")
            lines = (line.replace("(EE)", "").strip() for line in text.splitlines())
            tail = [line for line in lines if line][-2:]
            raise ExecutorError(
                f"Xvfb exited with status {self._process.poll()} before accepting connections: "
                + (" | ".join(tail) or "no output")
                + ("; pick another number or leave number=None" if self.number is not None else "")
            )
        return int(data)

    def stop(self) -> None:
        """Stop the server. Safe to call more than once."""
        process, self._process = self._process, None
        self.number = self._requested  # a number Xvfb chose is not ours to reuse
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)

    def __enter__(self) -> XvfbDisplay:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
