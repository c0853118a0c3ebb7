"""Starting Chromium for BrowserExecutor: the per-thread Playwright driver, one launched
browser (fresh or on a persistent profile), and the PID of its process.

Nothing here imports Playwright at module level; the executor calls in lazily.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
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
    "quiet_profile",
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
# Chromium preconnects to a link's origin when a navigation starts (before any route sees the
# request), and on hover and pointer-down: a TCP connection, and on a real network a DNS
# lookup, to a host the allowlist then refuses. No command-line switch turns that off in
# Chromium 156; the profile preference behind "Preload pages" (2: never) does, DNS prefetch
# included. So a launch with `network_prediction=False` runs on a profile that sets it.
QUIET_PREFERENCES: dict[str, dict[str, object]] = {"net": {"network_prediction_options": 2}}


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
    scratch_profile: Path | None = None  # a profile made for this launch, removed on close

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
        if self.scratch_profile is not None:
            # A killed browser's utility processes may still write into it for a moment:
            # what they leave is removed again when Python exits.
            shutil.rmtree(self.scratch_profile, ignore_errors=True)


@dataclass(frozen=True)
class LaunchOptions:
    """How to launch Chromium: the executable (a name or a path), the window, the profile.

    `user_data_dir` is a persistent profile (None: a fresh one each launch); `timeout_s`
    bounds the launch; `sandbox` keeps Chromium's sandbox on (see `sandbox_default`).
    `network_prediction=False` turns off preconnect and DNS prefetch (QUIET_PREFERENCES,
    written into the profile: a scratch one when `user_data_dir` is None), and
    `block_service_workers` keeps pages from registering service workers.
    """

    executable_path: str
    headless: bool
    viewport: tuple[int, int]
    device_scale_factor: float
    user_data_dir: Path | None
    timeout_s: float
    sandbox: bool
    network_prediction: bool = True
    block_service_workers: bool = False


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
        "service_workers": "block" if launch.block_service_workers else "allow",
    }
    before = chromium_pids()
    scratch = None
    if user_data_dir is None and not launch.network_prediction:
        # Preferences live in a profile, and Playwright's own fresh profile cannot be
        # written before launch: use a scratch one, removed with the session.
        user_data_dir = scratch = Path(tempfile.mkdtemp(prefix="internvl-agent-profile-"))
        _scratch_profiles.append(scratch)
    if user_data_dir is not None:
        try:
            user_data_dir.mkdir(parents=True, exist_ok=True)
            if not launch.network_prediction:
                quiet_profile(user_data_dir)
        except OSError as exc:
            raise ExecutorError(
                f"cannot use user_data_dir {str(user_data_dir)!r} as the Chromium profile "
                f"({exc.strerror or exc}): pass a directory you can write to"
            ) from exc
        try:
            context = playwright.chromium.launch_persistent_context(
                str(user_data_dir), **options, **context_options  # type: ignore[arg-type]
            )
        except BaseException:
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
            raise
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
    session = BrowserSession(
        context=context, browser=browser, pid=new.pop() if len(new) == 1 else None, scratch_profile=scratch
    )
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    context.on("close", session._lost)
    if browser is not None:
        browser.on("disconnected", session._lost)
    return session


_scratch_profiles: list[Path] = []


@atexit.register
def _remove_scratch_profiles() -> None:
    for path in _scratch_profiles:
        shutil.rmtree(path, ignore_errors=True)


def quiet_profile(user_data_dir: Path) -> None:
    """Merge QUIET_PREFERENCES into the profile's Preferences (kept if it has others)."""
    path = user_data_dir / "Default" / "Preferences"
    try:
        prefs = json.loads(path.read_text())
    except (OSError, ValueError):
        prefs = {}
    if not isinstance(prefs, dict):
        prefs = {}
    for section, values in QUIET_PREFERENCES.items():
        if not isinstance(prefs.get(section), dict):
            prefs[section] = {}
        prefs[section].update(values)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(prefs))


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
