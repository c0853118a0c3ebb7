"""BrowserRuntime: keeps one live tab for BrowserExecutor.

It launches Chromium on demand, makes a newly opened tab the active one, notices a
crashed tab or a dead browser process (from Playwright's events), and recovers from
one such failure per executor by reopening the last URL, in a new tab or a relaunched
browser. A second failure, or a browser that cannot start, raises ExecutorError.

With a NavigationGuard (tools/browser/guard.py), every context it launches (a relaunch
too) refuses navigations off the allowlist, and each settle ends by enforcing it.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from tools.browser.guard import NavigationGuard
from tools.browser.session import BrowserSession, Driver, launch_session, sandbox_failure, thread_driver
from tools.browser.settle import Capture, NetworkTracker, Settler
from tools.browser.tabs import DownloadKeeper, open_pages
from tools.errors import ExecutorError

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page

__all__ = ["CHROMIUM_ENV", "DEFAULT_CHROMIUM", "MAX_RECOVERIES", "BrowserRuntime", "first_line"]

log = logging.getLogger(__name__)

DEFAULT_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ENV = "INTERNVL_AGENT_CHROMIUM"
MAX_RECOVERIES = 1
# How long a capture taken while settling may stand in for a fresh one: the agent's next
# observe() comes right after it records the step.
CAPTURE_TTL_S = 0.25
# Pages worth returning to after a crash; about:blank or a chrome:// page are not.
_UNREMEMBERED = ("about:", "chrome:", "chrome-error:", "devtools:")


class BrowserRuntime:
    """The running browser behind an executor, and the tab it drives (`page`)."""

    def __init__(
        self,
        *,
        executable_path: str,
        headless: bool,
        viewport: tuple[int, int],
        device_scale_factor: float,
        user_data_dir: Path | None,
        launch_timeout_s: float,
        sandbox: bool,
        start_url: str | None,
        settler: Settler,
        downloads: DownloadKeeper | None,
        capture: Callable[[Page], bytes],
        guard: NavigationGuard | None = None,
    ) -> None:
        self.executable_path = executable_path
        self.headless = headless
        self.viewport = viewport
        self.device_scale_factor = device_scale_factor
        self.user_data_dir = user_data_dir
        self.launch_timeout_s = launch_timeout_s
        self.sandbox = sandbox
        self.start_url = start_url
        self.settler = settler
        self.downloads = downloads
        self.capture = capture
        self.guard = guard
        self.prefetch: Capture | None = None  # taken while settling, for the next observation
        self.session: BrowserSession | None = None
        self.network: NetworkTracker | None = None
        self.page: Page | None = None
        self.last_url: str | None = None
        self.settle_ms = 0.0  # the latest settle, until an observation takes it
        self.settle_reason: str | None = None  # why it ended: "quiet", "bound" or "error"
        self._driver: Driver | None = None
        self._binary = executable_path
        self._crashed: list[Page] = []
        self._closed = False
        self._broken: str | None = None  # why this runtime gave up, once it has
        self._recoveries = 0

    @property
    def started(self) -> bool:
        return self.session is not None

    @property
    def context(self) -> BrowserContext:
        assert self.session is not None
        return self.session.context

    def live_page(self) -> Page:
        """The active tab, starting the browser or recovering from a crash if needed."""
        if self._closed:
            raise ExecutorError("this BrowserExecutor is closed: create a new one")
        if self._broken is not None:
            raise ExecutorError(self._broken)
        if self.session is None:
            self._start()
        assert self.session is not None and self.page is not None
        reason = self._death()
        if reason is not None:
            return self.recover(reason)
        if self.page.is_closed():
            # Fall back to the newest open tab (a popup closed itself); with none, open one.
            pages = open_pages(self.session.context)
            self.page = pages[-1] if pages else self.session.context.new_page()
        return self.page

    def death(self, error: BaseException | None = None) -> str | None:
        """Why the active tab cannot be driven any more ("the tab crashed", "the browser
        process exited"), or None while it can. Pass the Playwright error just raised.

        Playwright reports a crash or an exit as an event that can arrive just after the
        call that failed because of it, so an error is a reason to look again: a call to
        the browser process (not the tab, which may be busy) lets pending events in.
        """
        reason = self._death()
        if reason is None and error is not None:
            from playwright.sync_api import Error

            if "Target crashed" in str(error) and self.page is not None:
                self._crashed.append(self.page)
            else:
                with contextlib.suppress(Error):
                    self.context.cookies()
            reason = self._death()
        return reason

    def _death(self) -> str | None:
        if self.session is None or not self.session.is_alive():
            return "the browser process exited"
        if self.page is not None and self.page in self._crashed:
            return "the tab crashed"
        return None

    def settle(self) -> float:
        """Wait for the active tab to be quiet, then hold the tabs to the allowlist;
        remember and return how long the wait took."""
        self.prefetch = None
        if self.page is not None and self.network is not None and not self.page.is_closed():
            self.settle_ms, self.settle_reason, self.prefetch = self.settler.settle(
                self.page, self.network, self.capture
            )
        self.enforce_allowlist()
        return self.settle_ms

    def enforce_allowlist(self) -> bool:
        """Close refused popups and send back tabs that a redirect took off the allowlist;
        True if a tab changed. If the active tab was closed, its opener (else the newest
        tab) becomes the active one."""
        if self.guard is None or self.session is None or not self.session.is_alive():
            return False
        active = self.page
        if not self.guard.enforce(self.session.context):
            return False
        self.prefetch = None  # it may show what the guard just undid
        if active is not None and active.is_closed():
            opener = active.opener()
            pages = open_pages(self.session.context)
            if opener in pages:
                self.page = opener
            else:
                self.page = pages[-1] if pages else self.session.context.new_page()
        return True

    def refusals(self) -> list[str]:
        """What the guard refused since the last call (nothing without one)."""
        return self.guard.take_refusals() if self.guard is not None else []

    def take_prefetch(self, page: Page) -> bytes | None:
        """The capture taken while settling, if `page` has not changed since (and it is recent:
        a canvas or a video changes without telling us, so the capture must not grow old)."""
        from playwright.sync_api import Error

        shot, self.prefetch = self.prefetch, None
        if shot is None or self.network is None or time.perf_counter() - shot.started > CAPTURE_TTL_S:
            return None
        with contextlib.suppress(Error):
            if Settler.unchanged_since(shot, page, self.network):
                return shot.data
        return None

    def remember(self) -> None:
        """Note the active tab's URL as the place to return to after a crash."""
        if self.page is None:
            return
        url = self.page.url
        # A refused address is never one to return to (the guard is sending the tab back).
        if not url.startswith(_UNREMEMBERED) and (self.guard is None or self.guard.allowlist.allows(url)):
            self.last_url = url

    def _start(self) -> None:
        try:
            from playwright.sync_api import Error
        except ImportError as exc:
            raise ExecutorError("Playwright is not installed: pip install 'internvl-agent[browser]'") from exc
        binary = shutil.which(self.executable_path)
        if binary is None:
            raise ExecutorError(
                f"no Chromium executable at {self.executable_path!r}: install Debian's chromium "
                f"(apt-get install chromium) or pass executable_path= (or set {CHROMIUM_ENV})"
            )
        self._binary = binary
        try:
            self._driver = thread_driver()
        except Error as exc:
            raise ExecutorError(
                f"Playwright could not start ({first_line(exc)}): BrowserExecutor uses the sync "
                "API, so run it outside any asyncio event loop (e.g. in a worker thread)"
            ) from exc
        # Whatever goes wrong from here on (an ExecutorError, a KeyboardInterrupt), close,
        # so the thread's Playwright driver is released and the next executor can start.
        try:
            try:
                self._launch()
            except Error as exc:
                why = sandbox_failure(exc) if self.sandbox else None
                if why is not None:
                    raise ExecutorError(
                        f"Chromium could not start its sandbox ({why}): run as a non-root user with user "
                        "namespaces enabled (or Debian's chromium-sandbox installed), or pass "
                        "sandbox=False if this machine is already isolated (a container)"
                    ) from exc
                raise ExecutorError(
                    f"Chromium at {binary} failed to start ({first_line(exc)}): install Debian's "
                    f"chromium or pass executable_path= to a working Chromium"
                    + ("" if self.headless else "; headless=False also needs a display ($DISPLAY)")
                    + (f"; is {self.user_data_dir} in use by another Chromium?" if self.user_data_dir else "")
                ) from exc
            if self.start_url:
                try:
                    self._open(self.start_url)
                except Error as exc:
                    raise ExecutorError(
                        f"could not open start_url {self.start_url!r} ({first_line(exc)}): "
                        "check the URL and that its server is running"
                    ) from exc
                if self.guard is not None and self.page is not None and self.page.url == "about:blank":
                    # The guard emptied the tab: start_url redirected off the allowed domains.
                    why = " ".join(self.refusals())
                    raise ExecutorError(f"start_url {self.start_url!r} led off the allowed domains: {why}")
        except BaseException:
            self.close()
            raise
        log.debug("started Chromium %s, viewport %s @%sx", binary, self.viewport, self.device_scale_factor)

    def _launch(self) -> None:
        assert self._driver is not None
        session = launch_session(
            self._driver.playwright,
            binary=self._binary,
            headless=self.headless,
            viewport=self.viewport,
            device_scale_factor=self.device_scale_factor,
            user_data_dir=self.user_data_dir,
            timeout_s=self.launch_timeout_s,
            sandbox=self.sandbox,
        )
        self.session = session
        self.network = self.settler.install(session.context)
        if self.guard is not None:
            self.guard.install(session.context)  # before any tab navigates
        # A link that opens a new tab moves the agent there, as it would a person.
        session.context.on("page", self._adopt)
        existing = open_pages(session.context)  # a persistent profile opens with a tab
        for page in existing:
            self._watch(page)
        self.page = existing[0] if existing else session.context.new_page()

    def _watch(self, page: Page) -> None:
        page.on("crash", self._on_crash)
        if self.downloads is not None:
            self.downloads.watch(page)

    def _on_crash(self, page: Page) -> None:
        self._crashed.append(page)

    def _adopt(self, page: Page) -> None:
        self._watch(page)
        if self.guard is None or self.guard.admits(page):
            self.page = page

    def _open(self, url: str) -> None:
        assert self.page is not None
        self.page.goto(url, wait_until="domcontentloaded")
        self.settle()
        self.remember()

    def recover(self, reason: str) -> Page:
        """Reopen the last URL in a new tab (a tab crash) or a new browser (a dead one)."""
        from playwright.sync_api import Error

        assert self.session is not None
        where = self.last_url or "about:blank"
        if self._recoveries >= MAX_RECOVERIES:
            self._broken = (
                f"Chromium failed again ({reason}) after it had already been restarted once, at "
                f"{where}: create a new BrowserExecutor (and check the page or the machine's memory)"
            )
            self.session.close()
            raise ExecutorError(self._broken)
        self._recoveries += 1
        log.warning("%s; restarting at %s", reason, where)
        try:
            if self.session.is_alive():
                crashed = self.page
                self.page = self.session.context.new_page()
                if crashed is not None:
                    with contextlib.suppress(Error):
                        crashed.close()
            else:
                self.session.close()
                self._launch()
            self._crashed.clear()
            if self.last_url is not None:
                self._open(self.last_url)
        except Error as exc:
            self._broken = (
                f"Chromium could not be restarted after {reason} ({first_line(exc)}): "
                "create a new BrowserExecutor"
            )
            raise ExecutorError(self._broken) from exc
        assert self.page is not None
        return self.page

    def close(self) -> None:
        self._closed = True
        if self.session is not None:
            self.session.close()
        if self._driver is not None:
            self._driver.release()
        self.page = self.session = self._driver = self.network = None


def first_line(exc: BaseException) -> str:
    """Playwright's messages carry a multi-line call log; the first line says what happened."""
    text = str(getattr(exc, "message", None) or exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if len(line) <= 300 else line[:297] + "..."
