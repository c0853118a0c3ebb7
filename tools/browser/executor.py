"""BrowserExecutor: observe and drive Chromium through Playwright's sync API.

Lifecycle: the browser starts lazily, on the first `observe()`, `execute()` or `page`,
or eagerly in `__enter__`, so constructing an executor is free and `import tools.browser`
never imports Playwright. `close()` ends everything and is idempotent; a closed executor
raises ExecutorError instead of starting a second browser behind the caller's back.

Playwright's sync API is bound to the thread that started it and cannot run inside a
running asyncio event loop: use one executor per thread.

After each action the executor waits for the page to settle (tools/browser/settle.py)
instead of sleeping a fixed time, and takes the screenshot during that wait; the next
observe() uses it if the page has not changed since (else it takes a fresh one), and
its Observation says how long the settle took.

Failures of the page (a navigation that times out, an unreachable URL) come back as
`ActionResult(ok=False)`. A crashed tab or a dead browser process is recovered once per
executor: it relaunches (or reopens the tab) at the last URL. A second crash, or a
browser that cannot start, raises ExecutorError.

With `allowed_domains`, Chromium itself refuses to take a tab off those domains, whatever
the model does (tools/browser/guard.py): the action that led there fails, saying what was
refused, and the tab stays on the allowed page it was on (or shows a block page in place of
a redirect that was not followed). `strict=True` holds every request of the page to them.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from tools.actions import Back, BaseAction, Navigate
from tools.browser.dom import ElementInfo, element_at
from tools.browser.domains import DomainAllowlist
from tools.browser.guard import NavigationGuard
from tools.browser.input import NOTCH_PX, PageInput
from tools.browser.runtime import CHROMIUM_ENV, DEFAULT_CHROMIUM, BrowserRuntime, first_line
from tools.browser.session import CHROMIUM_ARGS, LaunchOptions, sandbox_default
from tools.browser.settle import Settler
from tools.browser.tabs import DownloadKeeper, TabInfo, open_pages, pick_tab, tab_infos
from tools.browser.text import page_text
from tools.dispatch import DRAG_STEPS, ActionFailed, Dispatcher, refuse_ungrounded
from tools.errors import ExecutorError
from tools.executor import ActionResult, Geometry, Observation

if TYPE_CHECKING:
    from playwright.sync_api import Page

__all__ = [
    "CHROMIUM_ARGS",
    "DEFAULT_CHROMIUM",
    "DRAG_STEPS",
    "NOTCH_PX",
    "BrowserExecutor",
    "ElementInfo",
    "TabInfo",
]

log = logging.getLogger(__name__)

# Quiet window and bound of the settle after each action. The timers, frames, requests and
# animations that the action started are waited for apart from it (tools/browser/settle.py),
# so the window only covers work no hook sees (a posted message): 20 ms, about one frame at
# 60 Hz. It was 40 ms when it also had to cover short timers (see bench/step_overhead.py).
SETTLE_QUIET_MS = 20.0
SETTLE_MAX_MS = 3_000.0
# JPEG at quality 85 looks the same to a VLM as PNG, and Chromium encodes and PIL
# decodes it faster: bench/step_overhead.py measured observe() at 4 ms against 10 ms.
JPEG_QUALITY = 85
CaptureFormat = Literal["png", "jpeg"]


class BrowserExecutor:
    """An Executor for Chromium. Points are screenshot pixels; clicks go in CSS pixels.

    start_url         opened when the browser starts
    viewport          CSS pixels; the screenshot is viewport x device_scale_factor
    executable_path   Chromium to run (default $INTERNVL_AGENT_CHROMIUM or /usr/bin/chromium)
    user_data_dir     a persistent profile (cookies, storage) kept across executors
    downloads_dir     where downloads are saved, under their suggested names
    settle_quiet_ms   how long the page must stay quiet after an action
    settle_max_ms     the most an action waits for that (a page that never stops)
    capture           "jpeg" (quality 85, the default) or "png" (lossless) screenshots
    sandbox           Chromium's sandbox: None (default) keeps it on unless running as root,
                      where Chromium cannot start it; True or False force it on or off
    allowed_domains   the only sites a tab may show (as in tools/browser/domains.py; None: any): Chromium
                      refuses top-level navigations elsewhere (links, scripts, meta refresh,
                      popups, each redirect hop) before any request or preconnect (network
                      prediction is turned off, in user_data_dir's Preferences if given), and
                      the action fails saying so. start_url must be allowed, so a file: one is
                      refused (file: has no domain: serve the page over http)
    strict            with allowed_domains: every request of the page too (images, scripts,
                      styles, fetch, beacons, iframes, websockets; service workers are off).
                      Default False: subresources and iframes are not restricted
    """

    def __init__(
        self,
        *,
        start_url: str | None = None,
        viewport: tuple[int, int] = (1280, 720),
        device_scale_factor: float = 1,
        headless: bool = True,
        executable_path: str | None = None,
        user_data_dir: str | os.PathLike[str] | None = None,
        downloads_dir: str | os.PathLike[str] | None = None,
        settle_quiet_ms: float = SETTLE_QUIET_MS,
        settle_max_ms: float = SETTLE_MAX_MS,
        capture: CaptureFormat = "jpeg",
        launch_timeout_s: float = 30,
        sandbox: bool | None = None,
        allowed_domains: Iterable[str] | None = None,
        strict: bool = False,
    ) -> None:
        if viewport[0] <= 0 or viewport[1] <= 0 or device_scale_factor <= 0:
            raise ValueError("viewport sizes and device_scale_factor must be positive")
        if capture not in ("png", "jpeg"):
            raise ValueError(f"capture must be 'png' or 'jpeg', not {capture!r}")
        self.allowlist = DomainAllowlist(allowed_domains) if allowed_domains is not None else None
        if strict and self.allowlist is None:
            raise ValueError("strict=True holds requests to allowed_domains: pass allowed_domains too")
        if self.allowlist is not None and start_url and (why := self.allowlist.refusal(start_url)):
            raise ExecutorError(f"start_url {start_url!r} is off the allowed domains: {why}")
        self.viewport = (int(viewport[0]), int(viewport[1]))
        self.capture: CaptureFormat = capture
        self._downloads = DownloadKeeper(Path(downloads_dir)) if downloads_dir is not None else None
        width, height = self.viewport
        # Until the first observation, assume the screenshot Chromium will produce.
        self._geometry = Geometry(
            (round(width * device_scale_factor), round(height * device_scale_factor)), self.viewport
        )
        guard = NavigationGuard(self.allowlist, strict=strict) if self.allowlist is not None else None
        self._input = PageInput(
            lambda x, y: self._geometry.to_device(x, y),
            allow_file=start_url is not None and urlsplit(start_url).scheme.lower() == "file",
            goto=functools.partial(guard.open, send_back=True) if guard is not None else None,
        )
        self._dispatcher = Dispatcher("BrowserExecutor", self._input)
        launch = LaunchOptions(
            executable_path=executable_path or os.environ.get(CHROMIUM_ENV) or DEFAULT_CHROMIUM,
            headless=headless,
            viewport=self.viewport,
            device_scale_factor=device_scale_factor,
            user_data_dir=Path(user_data_dir) if user_data_dir is not None else None,
            timeout_s=launch_timeout_s,
            sandbox=sandbox_default() if sandbox is None else sandbox,
            network_prediction=self.allowlist is None,  # no preconnect to a refused host
            block_service_workers=strict,
        )
        self._runtime = BrowserRuntime(
            launch,
            start_url=start_url,
            settler=Settler(quiet_ms=settle_quiet_ms, max_ms=settle_max_ms),
            downloads=self._downloads,
            capture=self._screenshot,
            guard=guard,
        )

    # -- lifecycle ------------------------------------------------------------------

    def __enter__(self) -> BrowserExecutor:
        self._runtime.live_page()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the browser and release Playwright. Safe to call more than once."""
        self._runtime.close()

    @property
    def page(self) -> Page:
        """The Playwright page being driven (starts the browser if needed)."""
        return self._runtime.live_page()

    @property
    def browser_pid(self) -> int | None:
        """The PID of the Chromium browser process, where /proc shows it (Linux)."""
        return self._runtime.browser_pid

    @property
    def sandboxed(self) -> bool:
        """Whether Chromium runs (or will run, once started) inside its sandbox."""
        return self._runtime.launch.sandbox

    @property
    def downloads(self) -> list[Path]:
        """Files saved to `downloads_dir` so far, oldest first."""
        if self._downloads is None:
            return []
        if self._runtime.alive:
            self._downloads.save_pending()
        return list(self._downloads.saved)

    # -- observe --------------------------------------------------------------------

    def observe(self) -> Observation:
        """Screenshot the viewport; the geometry maps its pixels to CSS pixels.

        `settle_ms` is how long the page took to settle after the action before it, and
        `settle_reason` why the settle ended ("quiet", "bound" or "error"; None if none ran)."""
        from PIL import Image
        from playwright.sync_api import Error

        page = self._runtime.live_page()
        try:
            shot = self._runtime.take_prefetch(page) or self._screenshot(page)
        except Error as exc:
            reason = self._runtime.why_lost(exc)
            if reason is not None:
                page = self._runtime.recover(f"{reason} during a screenshot")
            elif page.is_closed():  # the tab closed itself meanwhile: take the next one
                page = self._runtime.live_page()
            else:
                raise ExecutorError(f"could not screenshot {page.url} ({first_line(exc)})") from exc
            try:
                shot = self._screenshot(page)
            except Error as again:
                raise ExecutorError(f"could not screenshot {page.url} ({first_line(again)})") from again
        # The page may have left the allowed domains on its own since the last action (a
        # timer, a redirect): the screenshot let that news in. Show the page it was sent back to.
        if self._runtime.enforce_allowlist():
            page = self._runtime.live_page()
            try:
                shot = self._screenshot(page)
            except Error as exc:
                raise ExecutorError(f"could not screenshot {page.url} ({first_line(exc)})") from exc
        try:
            title: str | None = page.title()
        except Error:
            title = None  # the page is mid-navigation; the next observation will have it
        image = Image.open(io.BytesIO(shot))
        if image.mode == "RGB":
            image.load()  # decode now, so capture time is paid here; convert() would also copy
        else:
            image = image.convert("RGB")
        self._geometry = Geometry(image.size, self.viewport)
        self._runtime.remember()
        settled = self._runtime.take_settle()
        return Observation(
            image=image,
            geometry=self._geometry,
            url=page.url,
            title=title,
            settle_ms=settled.ms,
            settle_reason=settled.reason,
        )

    def _screenshot(self, page: Page) -> bytes:
        # caret="initial": hiding the caret makes Playwright inject a style and wait one
        # more frame (about 17 ms); a person sees the blinking caret too.
        if self.capture == "jpeg":
            return page.screenshot(type="jpeg", quality=JPEG_QUALITY, caret="initial")
        return page.screenshot(type="png", caret="initial")

    def element_at(self, x: float, y: float) -> ElementInfo | None:
        """The element under screenshot pixel (x, y) in the last observation's geometry."""
        from playwright.sync_api import Error

        page = self._runtime.live_page()
        try:
            return element_at(page, self._geometry, x, y)
        except Error as exc:
            reason = self._runtime.why_lost(exc)
            if reason is not None:
                raise ExecutorError(f"{reason} while reading the page: observe() again to recover") from exc
            log.debug("element_at(%s, %s) on %s: %s", x, y, page.url, first_line(exc))
            return None  # mid-navigation: there is no document to ask yet

    def visible_text(self) -> str:
        """The text the page shows (rendered text of the page and its frames, whitespace collapsed)."""
        return page_text(self._runtime.live_page())

    # -- tabs -----------------------------------------------------------------------

    def tabs(self) -> list[TabInfo]:
        """The open tabs, oldest first; `active` marks the one being driven."""
        page = self._runtime.live_page()
        return tab_infos(self._runtime.context, page)

    def switch_tab(self, index: int) -> TabInfo:
        """Make tab `index` (from `tabs()`) the one observe() and execute() drive."""
        from playwright.sync_api import Error

        self._runtime.live_page()
        page = pick_tab(self._runtime.context, index)
        with contextlib.suppress(Error):  # a crashed tab cannot come forward; live_page reopens it
            page.bring_to_front()
        self._runtime.activate(page)
        return tab_infos(self._runtime.context, page)[index]

    def close_tab(self, index: int | None = None) -> None:
        """Close tab `index` (default: the active one). If it was active, its right-hand
        neighbour (else the left) becomes active; closing the only tab leaves a blank one."""
        active = self._runtime.live_page()
        context = self._runtime.context
        pages = open_pages(context)
        page = active if index is None else pick_tab(context, index)
        if page is active:
            position = pages.index(page)
            others = pages[position + 1 :] + pages[:position][::-1]
            # Open the blank tab first: a persistent profile's browser ends with its last tab.
            self._runtime.activate(others[0] if others else context.new_page())
        page.close()
        self._runtime.remember()

    # -- execute --------------------------------------------------------------------

    def execute(self, action: BaseAction) -> ActionResult:
        """Run one action and wait for the page to settle. Page failures are an unsuccessful
        result; a browser that dies a second time raises ExecutorError."""
        handler = self._dispatcher.handler_for(action)
        if (ungrounded := refuse_ungrounded(action)) is not None:
            return ungrounded
        refusal = None
        if isinstance(action, Navigate) and self.allowlist is not None:
            refusal = self.allowlist.refusal(action.url)

        def run(page: Page) -> str | None:
            if refusal is not None:
                raise ActionFailed(refusal)  # before any request, in the allowlist's words
            return handler(page, action)

        return self._perform(action.name, run)

    def back(self) -> ActionResult:
        """Go back in the active tab's history (the `back` action)."""
        return self.execute(Back())

    def forward(self) -> ActionResult:
        """Go forward in the active tab's history."""
        return self._perform("forward", self._input.forward)

    def _perform(self, name: str, run: Callable[[Page], str | None]) -> ActionResult:
        from playwright.sync_api import Error

        page = self._runtime.live_page()
        start = time.perf_counter()
        # What the guard refused while no action ran (the page's own timers) is only noted.
        lines = [f"before this action, {refused}" for refused in self._runtime.refusals()]

        def result(error: str | None = None) -> ActionResult:
            text = "\n".join(lines) or None
            return ActionResult(ok=error is None, error=error, output=text, elapsed_ms=_since(start))

        try:
            output = run(page)
        except ActionFailed as exc:
            return result(f"{name} failed: {exc}")
        except Error as exc:
            reason = self._runtime.why_lost(exc)
            if reason is None:
                # A navigation the guard stopped fails in Playwright too (net::ERR_ABORTED);
                # the guard's words say why, and the tab is put back.
                self._runtime.enforce_allowlist()
                return result(f"{name} failed: " + (" ".join(self._runtime.refusals()) or first_line(exc)))
            self._runtime.recover(f"{reason} during {name}")
            where = self._runtime.last_url or "a blank page"
            return result(
                f"{name} was interrupted: {reason}, and Chromium was restarted at {where}; "
                "look at the screen again before the next action"
            )
        lines += [output] if output else []
        # The active tab may have changed: a link that opened a tab settles in the new tab.
        settled = self._runtime.settle()
        if self._downloads is not None:
            lines += self._downloads.save_pending()
        self._runtime.remember()
        if refused := self._runtime.refusals():
            return result(f"{name} failed: " + " ".join(refused))
        log.debug("%s ok in %.0f ms (settle %.0f ms)", name, _since(start), settled.ms)
        return result()


def _since(start: float) -> float:
    return (time.perf_counter() - start) * 1000
