"""Starting Chromium for BrowserExecutor: the per-thread Playwright driver, one launched
browser (fresh or on a persistent profile), and the PID of its process.

Nothing here imports Playwright at module level; the executor calls in lazily.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tools.errors import ExecutorError

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Playwright

__all__ = [
    "CHROMIUM_ARGS",
    "BrowserSession",
    "Driver",
    "LaunchOptions",
    "chromium_pids",
    "launch_session",
    "sandbox_default",
    "sandbox_failure",
    "thread_driver",
]

log = logging.getLogger(__name__)

# Quiet, reproducible Chromium: no GPU (headless servers) and no background traffic that
# would make runs depend on the network. The sandbox is not here: see `sandbox_default`.
CHROMIUM_ARGS: tuple[str, ...] = (
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
)
ACTION_TIMEOUT_MS = 30_000


def sandbox_default() -> bool:
    """Whether Chromium should keep its sandbox when the caller does not say.

    The model steers the browser to arbitrary pages, so the sandbox stays on wherever it
    can; Chromium refuses to start it as root, which in practice means a container.
    """
    return not (hasattr(os, "geteuid") and os.geteuid() == 0)


def sandbox_failure(exc: BaseException) -> str | None:
    """Chromium's own line on why its sandbox did not start, if that is why a launch failed.

    Playwright's first line only says the browser closed; Chromium's reason ("Running as
    root without --no-sandbox", "No usable sandbox!") is in the call log that follows.
    """
    text = str(getattr(exc, "message", None) or exc)
    if "Chromium sandboxing failed" not in text:  # Playwright's banner for exactly this
        return None
    for line in text.splitlines():
        if "[err]" in line and "sandbox" in line.lower():
            # "  - [pid=1][err] [1:1:1126/121537.443631:ERROR:zygote_host_impl_linux.cc:103] Running as..."
            reason = line.split("[err]", 1)[1].strip()
            if reason.startswith("["):
                reason = reason.split("] ", 1)[-1]
            # Its first sentence is the reason; the rest is advice for Chromium's developers.
            return re.split(r"(?<=[.!])\s", reason, maxsplit=1)[0][:300]
    return "Chromium gave no reason"


class Driver:
    """One Playwright driver per thread, shared by that thread's executors.

    Playwright's sync API allows only one running instance per thread, so a second
    executor in the same thread must reuse the first one's driver; the last to close stops it.
    """

    def __init__(self, playwright: Playwright) -> None:
        self.playwright = playwright
        self.users = 0

    def release(self) -> None:
        self.users -= 1
        if self.users <= 0:
            if getattr(_thread, "driver", None) is self:
                _thread.driver = None
            with contextlib.suppress(Exception):
                self.playwright.stop()


_thread = threading.local()


def thread_driver() -> Driver:
    """This thread's driver, started on first use. Raises Playwright's Error if it cannot start."""
    from playwright.sync_api import sync_playwright

    driver: Driver | None = getattr(_thread, "driver", None)
    if driver is None:
        driver = Driver(sync_playwright().start())
        _thread.driver = driver
    driver.users += 1
    return driver


@dataclass
class BrowserSession:
    """One running Chromium and the context the executor drives.

    `connected` turns False when Playwright reports the browser or context gone (a crash,
    a kill, or a close); Playwright delivers that event during the next call into it.
    """

    context: BrowserContext
    browser: Browser | None
    pid: int | None
    connected: bool = field(default=True)

    def _lost(self, *_: object) -> None:
        self.connected = False

    def is_alive(self) -> bool:
        return self.connected and (self.browser is None or self.browser.is_connected())

    def close(self) -> None:
        # A dead browser cannot be closed politely; we are tearing down anyway.
        with contextlib.suppress(Exception):
            self.context.close()
        if self.browser is not None:
            with contextlib.suppress(Exception):
                self.browser.close()
        self.connected = False


@dataclass(frozen=True)
class LaunchOptions:
    """How to launch Chromium: the executable (a name or a path), the window, the profile.

    `user_data_dir` is a persistent profile (None: a fresh one each launch); `timeout_s`
    bounds the launch; `sandbox` keeps Chromium's sandbox on (see `sandbox_default`).
    """

    executable_path: str
    headless: bool
    viewport: tuple[int, int]
    device_scale_factor: float
    user_data_dir: Path | None
    timeout_s: float
    sandbox: bool


def launch_session(playwright: Playwright, launch: LaunchOptions, *, binary: str) -> BrowserSession:
    """Launch Chromium at `binary` (`launch.executable_path` resolved); with
    `launch.user_data_dir`, on that persistent profile."""
    width, height = launch.viewport
    user_data_dir = launch.user_data_dir
    options: dict[str, object] = {
        "executable_path": binary,
        "headless": launch.headless,
        "args": list(CHROMIUM_ARGS),
        # Playwright adds --no-sandbox itself unless this is True.
        "chromium_sandbox": launch.sandbox,
        "timeout": launch.timeout_s * 1000,
    }
    context_options: dict[str, object] = {
        "viewport": {"width": width, "height": height},
        "device_scale_factor": launch.device_scale_factor,
        "accept_downloads": True,
    }
    before = chromium_pids()
    if user_data_dir is not None:
        try:
            user_data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ExecutorError(
                f"cannot use user_data_dir {str(user_data_dir)!r} as the Chromium profile "
                f"({exc.strerror or exc}): pass a directory you can write to"
            ) from exc
        context = playwright.chromium.launch_persistent_context(
            str(user_data_dir), **options, **context_options  # type: ignore[arg-type]
        )
        browser = context.browser
    else:
        browser = playwright.chromium.launch(**options)  # type: ignore[arg-type]
        try:
            context = browser.new_context(**context_options)  # type: ignore[arg-type]
        except Exception:
            with contextlib.suppress(Exception):
                browser.close()
            raise
    # Launches in one thread are sequential, so the one new browser process is ours. With
    # several threads launching at once the diff is ambiguous, and the PID stays unknown.
    new = chromium_pids() - before
    session = BrowserSession(context=context, browser=browser, pid=new.pop() if len(new) == 1 else None)
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    context.on("close", session._lost)
    if browser is not None:
        browser.on("disconnected", session._lost)
    return session


def chromium_pids() -> set[int]:
    """PIDs of the Chromium browser processes this Python process started (Linux /proc).

    Playwright's driver is our child and Chromium its child; the browser process (not a
    renderer, which has `--type=`) is the one launched with `--remote-debugging-pipe`.
    Playwright's Python API does not expose this PID, and /proc needs no extra package.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        return set()
    parent: dict[int, int] = {}
    children: dict[int, list[int]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # the process ended while we looked
            continue
        # The command name may contain spaces and parentheses; the fields after the last ")" do not.
        pid, ppid = int(entry.name), int(stat.rsplit(")", 1)[1].split()[1])
        parent[pid] = ppid
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    stack = list(children.get(os.getpid(), []))
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            argv = (proc / str(pid) / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--remote-debugging-pipe" in argv and not any(arg.startswith(b"--type=") for arg in argv):
            found.add(pid)
    # Between fork and exec, a child of the browser still shows the browser's command line.
    return {pid for pid in found if parent.get(pid) not in found}
