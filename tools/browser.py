"""BrowserExecutor: observe and drive one Chromium tab through Playwright's sync API.

Lifecycle: the browser starts lazily, on the first `observe()`, `execute()` or `page`,
or eagerly in `__enter__`, so constructing an executor is free and `import tools.browser`
never imports Playwright. `close()` ends everything and is idempotent; a closed executor
raises ExecutorError instead of starting a second browser behind the caller's back.

Playwright's sync API is bound to the thread that started it and cannot run inside a
running asyncio event loop: use one executor per thread.

Failures of the page (a navigation that times out, an unreachable URL) come back as
`ActionResult(ok=False)`; a browser that cannot start or has died raises ExecutorError.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from tools.actions import (
    MAX_WAIT_SECONDS,
    Back,
    BaseAction,
    Click,
    Drag,
    Fail,
    Finish,
    Key,
    Move,
    Navigate,
    Scroll,
    Type,
    Wait,
    is_ungrounded,
)
from tools.errors import ExecutorError
from tools.executor import ActionResult, Geometry, Observation
from tools.keys import to_playwright

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, Playwright

__all__ = ["BrowserExecutor", "CHROMIUM_ARGS", "DEFAULT_CHROMIUM"]

log = logging.getLogger(__name__)

DEFAULT_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ENV = "INTERNVL_AGENT_CHROMIUM"
# Quiet, reproducible Chromium: no sandbox (containers), no GPU (headless servers), and
# no background traffic that would make runs depend on the network.
CHROMIUM_ARGS: tuple[str, ...] = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
)
NOTCH_PX = 100  # one wheel notch, in CSS pixels
DRAG_STEPS = 10  # intermediate mousemove events, so pages see a real drag
ACTION_TIMEOUT_MS = 30_000
SETTLE_LOAD_TIMEOUT_MS = 2_000
SETTLE_PAUSE_MS = 50  # a fixed pause until settle detection replaces it

Handler = Callable[["Page", Any], "str | None"]


class BrowserExecutor:
    """An Executor for one Chromium tab. Points are screenshot pixels; clicks go in CSS pixels."""

    def __init__(
        self,
        *,
        start_url: str | None = None,
        viewport: tuple[int, int] = (1280, 720),
        device_scale_factor: float = 1,
        headless: bool = True,
        executable_path: str | None = None,
        launch_timeout_s: float = 30,
    ) -> None:
        if viewport[0] <= 0 or viewport[1] <= 0 or device_scale_factor <= 0:
            raise ValueError("viewport sizes and device_scale_factor must be positive")
        self.start_url = start_url
        self.viewport = (int(viewport[0]), int(viewport[1]))
        self.device_scale_factor = device_scale_factor
        self.headless = headless
        self.executable_path = executable_path or os.environ.get(CHROMIUM_ENV) or DEFAULT_CHROMIUM
        self.launch_timeout_s = launch_timeout_s
        w, h = self.viewport
        # Until the first observation, assume the screenshot Chromium will produce.
        self._geometry = Geometry(
            (round(w * device_scale_factor), round(h * device_scale_factor)), self.viewport
        )
        self._driver: _Driver | None = None
        self._browser: Browser | None = None
        self._context: BrowserContext | None = None
        self._page: Page | None = None
        self._error_type: type[Exception] = Exception
        self._closed = False
        self._handlers: dict[type[BaseAction], Handler] = {
            Click: self._click,
            Move: self._move,
            Drag: self._drag,
            Scroll: self._scroll,
            Type: self._type,
            Key: self._key,
            Wait: self._wait,
            Navigate: self._navigate,
            Back: self._back,
            Finish: self._nothing,
            Fail: self._nothing,
        }

    # -- lifecycle ------------------------------------------------------------------

    def __enter__(self) -> BrowserExecutor:
        self._live_page()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def page(self) -> Page:
        """The Playwright page being driven (starts the browser if needed)."""
        return self._live_page()

    def _start(self) -> None:
        try:
            from playwright.sync_api import Error, sync_playwright
        except ImportError as exc:
            raise ExecutorError("Playwright is not installed: pip install 'internvl-agent[browser]'") from exc
        self._error_type = Error
        binary = shutil.which(self.executable_path)
        if binary is None:
            raise ExecutorError(
                f"no Chromium executable at {self.executable_path!r}: install Debian's chromium "
                f"(apt-get install chromium) or pass executable_path= (or set {CHROMIUM_ENV})"
            )
        driver = getattr(_thread, "driver", None)
        if driver is None:
            try:
                driver = _Driver(sync_playwright().start())
            except Error as exc:
                raise ExecutorError(
                    f"Playwright could not start ({_first_line(exc)}): BrowserExecutor uses the sync "
                    "API, so run it outside any asyncio event loop (e.g. in a worker thread)"
                ) from exc
            _thread.driver = driver
        driver.users += 1
        self._driver = driver
        try:
            self._browser = driver.playwright.chromium.launch(
                executable_path=binary,
                headless=self.headless,
                args=list(CHROMIUM_ARGS),
                timeout=self.launch_timeout_s * 1000,
            )
            w, h = self.viewport
            self._context = self._browser.new_context(
                viewport={"width": w, "height": h}, device_scale_factor=self.device_scale_factor
            )
            self._context.set_default_timeout(ACTION_TIMEOUT_MS)
            # A link that opens a new tab moves the agent there, as it would a person.
            self._context.on("page", self._adopt)
            self._page = self._context.new_page()
        except Error as exc:
            self.close()
            raise ExecutorError(
                f"Chromium at {binary} failed to start ({_first_line(exc)}): install Debian's "
                f"chromium or pass executable_path= to a working Chromium"
                + ("" if self.headless else "; headless=False also needs a display ($DISPLAY)")
            ) from exc
        if self.start_url:
            try:
                self._page.goto(self.start_url, wait_until="domcontentloaded")
            except Error as exc:
                self.close()
                raise ExecutorError(
                    f"could not open start_url {self.start_url!r} ({_first_line(exc)}): "
                    "check the URL and that its server is running"
                ) from exc
        log.debug("started Chromium %s, viewport %s @%sx", binary, self.viewport, self.device_scale_factor)

    def _adopt(self, page: Page) -> None:
        self._page = page

    def _live_page(self) -> Page:
        if self._closed:
            raise ExecutorError("this BrowserExecutor is closed: create a new one")
        if self._page is None:
            self._start()
        assert self._page is not None and self._context is not None and self._browser is not None
        if self._page.is_closed() or not self._browser.is_connected():
            # Fall back to another open tab (a closed popup); with none left, the browser is gone.
            pages = (
                [p for p in self._context.pages if not p.is_closed()] if self._browser.is_connected() else []
            )
            if not pages:
                raise ExecutorError("the browser or its page has closed: create a new BrowserExecutor")
            self._page = pages[-1]
        return self._page

    def _is_dead(self) -> bool:
        return (
            self._browser is None
            or not self._browser.is_connected()
            or self._page is None
            or self._page.is_closed()
        )

    def close(self) -> None:
        """Close page, context, browser and Playwright. Safe to call more than once."""
        self._closed = True
        for closer in (
            self._context.close if self._context else None,
            self._browser.close if self._browser else None,
        ):
            if closer is not None:
                # A dead browser cannot be closed politely; we are tearing down anyway.
                with contextlib.suppress(Exception):
                    closer()
        if self._driver is not None:
            self._driver.release()
        self._page = self._context = self._browser = self._driver = None

    # -- observe --------------------------------------------------------------------

    def observe(self) -> Observation:
        """Screenshot the viewport; the geometry maps its pixels to CSS pixels."""
        from PIL import Image

        page = self._live_page()
        try:
            png = page.screenshot(type="png")
        except self._error_type as exc:
            if self._is_dead():
                raise ExecutorError(
                    "the browser closed while taking a screenshot: create a new BrowserExecutor"
                ) from exc
            raise ExecutorError(f"could not screenshot {page.url} ({_first_line(exc)})") from exc
        try:
            title: str | None = page.title()
        except self._error_type:
            title = None  # the page is mid-navigation; the next observation will have it
        image = Image.open(io.BytesIO(png)).convert("RGB")
        self._geometry = Geometry(image.size, self.viewport)
        return Observation(image=image, geometry=self._geometry, url=page.url, title=title)

    # -- execute --------------------------------------------------------------------

    def execute(self, action: BaseAction) -> ActionResult:
        """Run one action. Page failures are an unsuccessful result; a dead browser raises."""
        handler = next((self._handlers[c] for c in type(action).__mro__ if c in self._handlers), None)
        if handler is None:
            supported = ", ".join(sorted(c.__name__.lower() for c in self._handlers))
            raise ExecutorError(f"BrowserExecutor cannot run {type(action).__name__}; it runs {supported}")
        if is_ungrounded(action):
            return ActionResult.failure(
                f"{action.name} names a target described in words; it must be grounded to x and y first"
            )
        page = self._live_page()
        start = time.perf_counter()
        try:
            output = handler(page, action)
            self._settle(page)
        except _ActionFailed as exc:
            return ActionResult.failure(f"{action.name} failed: {exc}", (time.perf_counter() - start) * 1000)
        except self._error_type as exc:
            elapsed = (time.perf_counter() - start) * 1000
            if self._is_dead():
                raise ExecutorError(
                    f"the browser closed during {action.name}: create a new BrowserExecutor"
                ) from exc
            return ActionResult.failure(f"{action.name} failed: {_first_line(exc)}", elapsed)
        elapsed = (time.perf_counter() - start) * 1000
        log.debug("%s ok in %.0f ms", action.name, elapsed)
        return ActionResult(ok=True, output=output, elapsed_ms=elapsed)

    def _settle(self, page: Page) -> None:
        if page.is_closed():
            return
        with contextlib.suppress(self._error_type):
            # A slow page is not a failed action; the next observation shows where it got to.
            page.wait_for_load_state("domcontentloaded", timeout=SETTLE_LOAD_TIMEOUT_MS)
        page.wait_for_timeout(SETTLE_PAUSE_MS)

    def _point(self, x: int, y: int) -> tuple[float, float]:
        return self._geometry.to_device(x, y)

    @contextlib.contextmanager
    def _held(self, page: Page, keys: tuple[str, ...]) -> Iterator[None]:
        names = [to_playwright(k) for k in keys]
        pressed: list[str] = []
        try:
            for name in names:
                page.keyboard.down(name)
                pressed.append(name)
            yield
        finally:
            for name in reversed(pressed):
                # Releasing on a dead page fails too; the original error is the one to report.
                with contextlib.suppress(self._error_type):
                    page.keyboard.up(name)

    def _click(self, page: Page, action: Click) -> None:
        assert action.x is not None and action.y is not None
        x, y = self._point(action.x, action.y)
        with self._held(page, action.modifiers):
            page.mouse.click(x, y, button=action.button, click_count=action.clicks)

    def _move(self, page: Page, action: Move) -> None:
        assert action.x is not None and action.y is not None
        page.mouse.move(*self._point(action.x, action.y))

    def _drag(self, page: Page, action: Drag) -> None:
        assert not isinstance(action.start, str) and not isinstance(action.end, str)
        page.mouse.move(*self._point(*action.start))
        page.mouse.down()
        page.mouse.move(*self._point(*action.end), steps=DRAG_STEPS)
        page.mouse.up()

    def _scroll(self, page: Page, action: Scroll) -> None:
        if action.x is not None and action.y is not None:
            page.mouse.move(*self._point(action.x, action.y))
        page.mouse.wheel(action.dx * NOTCH_PX, action.dy * NOTCH_PX)

    def _type(self, page: Page, action: Type) -> None:
        page.keyboard.type(action.text)
        if action.submit:
            page.keyboard.press("Enter")

    def _key(self, page: Page, action: Key) -> None:
        page.keyboard.press("+".join(to_playwright(k) for k in action.keys))

    def _wait(self, page: Page, action: Wait) -> None:
        # wait_for_timeout, not time.sleep: the sync API keeps dispatching page events meanwhile.
        page.wait_for_timeout(min(action.seconds, MAX_WAIT_SECONDS) * 1000)

    def _navigate(self, page: Page, action: Navigate) -> str | None:
        try:
            response = page.goto(action.url, wait_until="domcontentloaded")
        except self._error_type as exc:
            if "invalid URL" in str(exc):
                raise _ActionFailed(
                    f"{action.url!r} is not a URL: give a full one, such as https://example.com"
                ) from exc
            if "net::ERR_" in str(exc) and "ERR_ABORTED" not in str(exc):
                # Chromium commits its error page after goto has failed; wait for it, or the
                # next navigation would be "interrupted by another navigation".
                with contextlib.suppress(self._error_type):
                    page.wait_for_url(
                        "chrome-error://**", wait_until="commit", timeout=SETTLE_LOAD_TIMEOUT_MS
                    )
            raise
        if response is not None and response.status >= 400:
            return f"HTTP {response.status} from {page.url}"
        return None

    def _back(self, page: Page, action: Back) -> None:
        before = page.url
        # None means no history *or* a same-document move (an anchor); the URL tells them apart.
        if page.go_back(wait_until="domcontentloaded") is None and page.url == before:
            raise _ActionFailed("there is no earlier page in this tab's history")

    def _nothing(self, page: Page, action: BaseAction) -> None:
        return None


class _Driver:
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


class _ActionFailed(Exception):
    """A handler's way to report a failure of the world that Playwright does not raise."""


def _first_line(exc: BaseException) -> str:
    """Playwright's messages carry a multi-line call log; the first line says what happened."""
    text = str(getattr(exc, "message", None) or exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if len(line) <= 300 else line[:297] + "..."
