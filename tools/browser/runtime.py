"""BrowserRuntime: keeps one live tab for BrowserExecutor.

It launches Chromium on demand, makes a newly opened tab the active one, notices a
crashed tab or a dead browser process (from Playwright's events), and recovers from
one such failure per executor by reopening the last URL, in a new tab or a relaunched
browser. A second failure, or a browser that cannot start, raises ExecutorError.

With a NavigationGuard (tools/browser/guard.py), every context it launches (a relaunch
too) refuses requests off the allowlist, and each settle ends by enforcing it. A start_url
that the guard stops from loading (a redirect hop or a script that leaves the allowed
domains) fails at once, naming the refused address, instead of waiting for a load that never
comes.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from tools.browser.guard import NavigationGuard
from tools.browser.session import (
    BrowserSession,
    Driver,
    LaunchOptions,
    launch_session,
    sandbox_failure,
    thread_driver,
)
from tools.browser.settle import NO_SETTLE, Capture, NetworkTracker, Settler, SettleResult
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
    """The running browser behind an executor, and the tab it drives (the active tab).

    The executor reads it through properties and changes it through methods: `live_page()`,
    `activate(page)`, `settle()` and `take_settle()`, `recover(reason)`.
    """

    def __init__(
        self,
        launch: LaunchOptions,
        *,
        start_url: str | None,
        settler: Settler,
        downloads: DownloadKeeper | None,
        capture: Callable[[Page], bytes],
        guard: NavigationGuard | None = None,
    ) -> None:
        self.launch = launch
        self._start_url = start_url
        self._settler = settler
        self._guard = guard
        self._downloads = downloads
        self._capture = capture
        self._prefetch: Capture | None = None  # taken while settling, for the next observation
        self._settled = NO_SETTLE  # the latest settle, until an observation takes it
        self._session: BrowserSession | None = None
        self._network: NetworkTracker | None = None
        self._page: Page | None = None
        self._last_url: str | None = None
        self._driver: Driver | None = None
        self._binary = launch.executable_path
        self._crashed: list[Page] = []
        self._closed = False
        self._broken: str | None = None  # why this runtime gave up, once it has
        self._recoveries = 0

    @property
    def started(self) -> bool:
        return self._session is not None

    @property
    def alive(self) -> bool:
        """Whether the browser has started and its process is still running."""
        return self._session is not None and self._session.is_alive()

    @property
    def browser_pid(self) -> int | None:
        return self._session.pid if self._session is not None else None

    @property
    def context(self) -> BrowserContext:
        assert self._session is not None
        return self._session.context

    @property
    def last_url(self) -> str | None:
        """Where a recovery reopens the browser: the last allowed web page the tab showed."""
        return self._last_url

    def live_page(self) -> Page:
        """The active tab, starting the browser or recovering from a crash if needed."""
        if self._closed:
            raise ExecutorError("this BrowserExecutor is closed: create a new one")
        if self._broken is not None:
            raise ExecutorError(self._broken)
        if self._session is None:
            self._start()
        assert self._session is not None and self._page is not None
        reason = self._why_lost()
        if reason is not None:
            return self.recover(reason)
        if self._page.is_closed():
            # Fall back to the newest open tab (a popup closed itself); with none, open one.
            pages = open_pages(self._session.context)
            self._page = pages[-1] if pages else self._session.context.new_page()
        return self._page

    def activate(self, page: Page) -> None:
        """Make `page` the active tab, and remember its URL as the place to return to."""
        self._page = page
        self.remember()

    def why_lost(self, error: BaseException | None = None) -> str | None:
        """Why the active tab cannot be driven any more ("the tab crashed", "the browser
        process exited"), or None while it can. Pass the Playwright error just raised.

        Playwright reports a crash or an exit as an event that can arrive just after the
        call that failed because of it, so an error is a reason to look again: a call to
        the browser process (not the tab, which may be busy) lets pending events in.
        """
        reason = self._why_lost()
        if reason is None and error is not None:
            from playwright.sync_api import Error

            if "Target crashed" in str(error) and self._page is not None:
                self._crashed.append(self._page)
            else:
                with contextlib.suppress(Error):
                    self.context.cookies()
            reason = self._why_lost()
        return reason

    def _why_lost(self) -> str | None:
        if self._session is None or not self._session.is_alive():
            return "the browser process exited"
        if self._page is not None and self._page in self._crashed:
            return "the tab crashed"
        return None

    def settle(self) -> SettleResult:
        """Wait for the active tab to be quiet, then hold the tabs to the allowlist; keep
        the result for the next observation (`take_settle`), and return it."""
        self._prefetch = None
        if self._page is not None and self._network is not None and not self._page.is_closed():
            self._settled, self._prefetch = self._settler.settle(self._page, self._network, self._capture)
        self.enforce_allowlist()
        return self._settled

    def take_settle(self) -> SettleResult:
        """The latest settle, once: the next call returns NO_SETTLE unless another ran."""
        settled, self._settled = self._settled, NO_SETTLE
        return settled

    def enforce_allowlist(self) -> bool:
        """Close refused popups and send back tabs that a redirect took off the allowlist;
        True if a tab changed. If the active tab was closed, its opener (else the newest
        tab) becomes the active one."""
        if self._guard is None or self._session is None or not self._session.is_alive():
            return False
        active = self._page
        if not self._guard.enforce(self._session.context):
            return False
        self._prefetch = None  # it may show what the guard just undid
        if active is not None and active.is_closed():
            opener = active.opener()
            pages = open_pages(self._session.context)
            if opener in pages:
                self._page = opener
            else:
                self._page = pages[-1] if pages else self._session.context.new_page()
        return True

    def refusals(self) -> list[str]:
        """What the guard refused since the last call (nothing without one)."""
        return self._guard.take_refusals() if self._guard is not None else []

    def take_prefetch(self, page: Page) -> bytes | None:
        """The capture taken while settling, if `page` has not changed since (and it is recent:
        a canvas or a video changes without telling us, so the capture must not grow old)."""
        from playwright.sync_api import Error

        shot, self._prefetch = self._prefetch, None
        if shot is None or self._network is None or time.perf_counter() - shot.started > CAPTURE_TTL_S:
            return None
        with contextlib.suppress(Error):
            if Settler.unchanged_since(shot, page, self._network):
                return shot.data
        return None

    def remember(self) -> None:
        """Note the active tab's URL as the place to return to after a crash."""
        if self._page is None:
            return
        url = self._page.url
        # A refused address is never one to return to (the guard is sending the tab back).
        if not url.startswith(_UNREMEMBERED) and (self._guard is None or self._guard.allowlist.allows(url)):
            self._last_url = url

    def _start(self) -> None:
        launch = self.launch
        try:
            from playwright.sync_api import Error
        except ImportError as exc:
            raise ExecutorError("Playwright is not installed: pip install 'internvl-agent[browser]'") from exc
        binary = shutil.which(launch.executable_path)
        if binary is None:
            raise ExecutorError(
                f"no Chromium executable at {launch.executable_path!r}: install Debian's chromium "
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
                why = sandbox_failure(exc) if launch.sandbox else None
                if why is not None:
                    raise ExecutorError(
                        f"Chromium could not start its sandbox ({why}): run as a non-root user with user "
                        "namespaces enabled (or Debian's chromium-sandbox installed), or pass "
                        "sandbox=False if this machine is already isolated (a container)"
                    ) from exc
                profile = launch.user_data_dir
                raise ExecutorError(
                    f"Chromium at {binary} failed to start ({first_line(exc)}): install Debian's "
                    f"chromium or pass executable_path= to a working Chromium"
                    + ("" if launch.headless else "; headless=False also needs a display ($DISPLAY)")
                    + (f"; is {profile} in use by another Chromium?" if profile else "")
                ) from exc
            if self._start_url:
                try:
                    stopped = self._open(self._start_url)
                except Error as exc:
                    raise ExecutorError(
                        f"could not open start_url {self._start_url!r} ({first_line(exc)}): "
                        "check the URL and that its server is running"
                    ) from exc
                if stopped is not None:
                    # A redirect hop, or the page's own script while it loaded, led off the
                    # allowed domains: the start page never loaded as itself.
                    raise ExecutorError(
                        f"start_url {self._start_url!r} led off the allowed domains: {stopped}"
                    )
        except BaseException:
            self.close()
            raise
        log.debug(
            "started Chromium %s, viewport %s @%sx", binary, launch.viewport, launch.device_scale_factor
        )

    def _launch(self) -> None:
        assert self._driver is not None
        session = launch_session(self._driver.playwright, self.launch, binary=self._binary)
        self._session = session
        self._network = self._settler.install(session.context)
        if self._guard is not None:
            self._guard.install(session.context)  # before any tab navigates
        # A link that opens a new tab moves the agent there, as it would a person.
        session.context.on("page", self._adopt)
        existing = open_pages(session.context)  # a persistent profile opens with a tab
        for page in existing:
            self._watch(page)
        self._page = existing[0] if existing else session.context.new_page()

    def _watch(self, page: Page) -> None:
        page.on("crash", self._on_crash)
        if self._downloads is not None:
            self._downloads.watch(page)

    def _on_crash(self, page: Page) -> None:
        self._crashed.append(page)

    def _adopt(self, page: Page) -> None:
        self._watch(page)
        if self._guard is None or self._guard.admits(page):
            self._page = page

    def _open(self, url: str) -> str | None:
        """Open `url` in the active tab and settle; what the guard refused, if that stopped
        the page from loading (see NavigationGuard.open)."""
        assert self._page is not None
        stopped = None
        if self._guard is not None:
            _, stopped = self._guard.open(self._page, url)
        else:
            self._page.goto(url, wait_until="domcontentloaded")
        if stopped is None:
            self.settle()
            self.remember()
        return stopped

    def recover(self, reason: str) -> Page:
        """Reopen the last URL in a new tab (a tab crash) or a new browser (a dead one)."""
        from playwright.sync_api import Error

        assert self._session is not None
        where = self._last_url or "about:blank"
        if self._recoveries >= MAX_RECOVERIES:
            self._broken = (
                f"Chromium failed again ({reason}) after it had already been restarted once, at "
                f"{where}: create a new BrowserExecutor (and check the page or the machine's memory)"
            )
            self._session.close()
            raise ExecutorError(self._broken)
        self._recoveries += 1
        log.warning("%s; restarting at %s", reason, where)
        try:
            if self._session.is_alive():
                crashed = self._page
                self._page = self._session.context.new_page()
                if crashed is not None:
                    with contextlib.suppress(Error):
                        crashed.close()
            else:
                self._session.close()
                self._launch()
            self._crashed.clear()
            if self._last_url is not None:
                self._open(self._last_url)
        except Error as exc:
            self._broken = (
                f"Chromium could not be restarted after {reason} ({first_line(exc)}): "
                "create a new BrowserExecutor"
            )
            raise ExecutorError(self._broken) from exc
        assert self._page is not None
        return self._page

    def close(self) -> None:
        self._closed = True
        if self._session is not None:
            self._session.close()
        if self._driver is not None:
            self._driver.release()
        self._page = self._session = self._driver = self._network = None


def first_line(exc: BaseException) -> str:
    """Playwright's messages carry a multi-line call log; the first line says what happened."""
    text = str(getattr(exc, "message", None) or exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if len(line) <= 300 else line[:297] + "..."
