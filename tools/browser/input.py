"""How each GUI action becomes Playwright input on one page.

`PageInput` is the browser's `tools.dispatch.ActionHandlers`: the executor's Dispatcher
finds the method for an action. Points arrive in screenshot pixels and are mapped to CSS
pixels by the function the executor passes in (its current Geometry).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from tools.actions import MAX_WAIT_SECONDS, BaseAction, Click, Drag, Key, Move, Navigate, Scroll, Type, Wait
from tools.dispatch import DRAG_STEPS, ActionFailed
from tools.keys import to_playwright

if TYPE_CHECKING:
    from playwright.sync_api import Page, Response

__all__ = ["NOTCH_PX", "PageInput"]

NOTCH_PX = 100  # one wheel notch, in CSS pixels
NAVIGATION_COMMIT_MS = 2_000
WEB_SCHEMES = frozenset({"http", "https"})  # what navigate opens (plus about:blank)

ToCss = Callable[[int, int], tuple[float, float]]
# NavigationGuard.open: goto that stops at once when the guard refuses where the page went.
GuardedGoto = Callable[["Page", str], tuple["Response | None", "str | None"]]


class PageInput:
    """The action handlers. Each returns an optional output line, or raises."""

    def __init__(self, to_css: ToCss, *, allow_file: bool = False, goto: GuardedGoto | None = None) -> None:
        self._to_css = to_css
        self._goto = goto
        # file: pages only where the executor itself started on one (a local test page).
        self._schemes = WEB_SCHEMES | ({"file"} if allow_file else set())

    @contextlib.contextmanager
    def _held(self, page: Page, keys: tuple[str, ...]) -> Iterator[None]:
        from playwright.sync_api import Error

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
                with contextlib.suppress(Error):
                    page.keyboard.up(name)

    def click(self, page: Page, action: Click) -> None:
        assert action.x is not None and action.y is not None
        x, y = self._to_css(action.x, action.y)
        with self._held(page, action.modifiers):
            page.mouse.click(x, y, button=action.button, click_count=action.clicks)

    def move(self, page: Page, action: Move) -> None:
        assert action.x is not None and action.y is not None
        page.mouse.move(*self._to_css(action.x, action.y))

    def drag(self, page: Page, action: Drag) -> None:
        from playwright.sync_api import Error

        assert not isinstance(action.start, str) and not isinstance(action.end, str)
        page.mouse.move(*self._to_css(*action.start))
        page.mouse.down()
        released = False
        try:
            page.mouse.move(*self._to_css(*action.end), steps=DRAG_STEPS)
            page.mouse.up()
            released = True
        finally:
            if not released:
                # Never leave the button held; on a dead page the up fails too, and the
                # move's error is the one to report.
                with contextlib.suppress(Error):
                    page.mouse.up()

    def scroll(self, page: Page, action: Scroll) -> None:
        if action.x is not None and action.y is not None:
            page.mouse.move(*self._to_css(action.x, action.y))
        page.mouse.wheel(action.dx * NOTCH_PX, action.dy * NOTCH_PX)

    def type(self, page: Page, action: Type) -> None:
        if action.clear:
            page.keyboard.press("ControlOrMeta+a")  # selects the focused field's text only
        page.keyboard.type(action.text)
        if action.submit:
            page.keyboard.press("Enter")

    def key(self, page: Page, action: Key) -> None:
        page.keyboard.press("+".join(to_playwright(k) for k in action.keys))

    def wait(self, page: Page, action: Wait) -> None:
        # wait_for_timeout, not time.sleep: the sync API keeps dispatching page events meanwhile.
        page.wait_for_timeout(min(action.seconds, MAX_WAIT_SECONDS) * 1000)

    def navigate(self, page: Page, action: Navigate) -> str | None:
        from playwright.sync_api import Error

        self._check_url(action.url)
        try:
            if self._goto is None:
                response = page.goto(action.url, wait_until="domcontentloaded")
            elif (guarded := self._goto(page, action.url))[1] is not None:
                raise ActionFailed(guarded[1])  # the page left for a refused address as it loaded
            else:
                response = guarded[0]
        except Error as exc:
            if "invalid URL" in str(exc):
                raise ActionFailed(
                    f"{action.url!r} is not a URL: give a full one, such as https://example.com"
                ) from exc
            if "net::ERR_" in str(exc) and "ERR_ABORTED" not in str(exc):
                # Chromium commits its error page after goto has failed; wait for it, or the
                # next navigation would be "interrupted by another navigation".
                with contextlib.suppress(Error):
                    page.wait_for_url("chrome-error://**", wait_until="commit", timeout=NAVIGATION_COMMIT_MS)
            raise
        if response is not None and response.status >= 400:
            return f"HTTP {response.status} from {page.url}"
        return None

    def _check_url(self, url: str) -> None:
        """The model may open web pages (and about:blank), not file:, chrome: or javascript: ones."""
        scheme = urlsplit(url.strip()).scheme.lower()
        if scheme in self._schemes or url.strip().lower() == "about:blank":
            return
        if not scheme:
            raise ActionFailed(f"{url!r} is not a URL: give a full one, such as https://example.com")
        allowed = ", ".join(f"{name}:" for name in sorted(self._schemes)) + " and about:blank"
        raise ActionFailed(f"{scheme}: URLs are not allowed here; navigate opens only {allowed}")

    def back(self, page: Page, action: BaseAction | None = None) -> None:
        before = page.url
        # None means no history *or* a same-document move (an anchor); the URL tells them apart.
        if page.go_back(wait_until="domcontentloaded") is None and page.url == before:
            raise ActionFailed("there is no earlier page in this tab's history")

    def forward(self, page: Page, action: BaseAction | None = None) -> None:
        before = page.url
        if page.go_forward(wait_until="domcontentloaded") is None and page.url == before:
            raise ActionFailed("there is no later page in this tab's history")

    def nothing(self, page: Page, action: BaseAction) -> None:
        return None
