"""Settle detection: execute() returns once the page is done with what the action started.

A test-local HTTP server serves tests/pages plus `/api/slow?ms=N`, a response delayed
by N ms, so the network side is real. The tests never sleep: each checks that what
the page does after a click is already in the next observation.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.http import QuietFiles, serving_folder
from tools.actions import Click, Wait
from tools.browser import BrowserExecutor
from tools.executor import Observation

pytestmark = pytest.mark.browser

PAGES = Path(__file__).resolve().parent.parent / "pages"
MUTATE, FETCH, FOREVER, NOOP, LOAD_SLOW = (100, 40), (300, 40), (500, 40), (700, 40), (900, 40)
STATUS = (200, 200)
GREEN = (0x22, 0xAA, 0x22)
# A 1x1 transparent GIF, for /api/slow?gif=1.
GIF = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")
QUIET_MS = 100  # wider than the default, so a loaded machine's late timers cannot split a burst


class _Handler(QuietFiles):
    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        if url.path != "/api/slow":
            return super().do_GET()
        query = urllib.parse.parse_qs(url.query)
        time.sleep(int(query.get("ms", ["0"])[0]) / 1000)
        gif = "gif" in query
        body = GIF if gif else b"done"
        try:
            self.send_response(200)
            self.send_header("Content-Type", "image/gif" if gif else "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the browser gave up on a long poll
            pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serving_folder(PAGES, _Handler) as url:  # daemon request threads: a long poll cannot hold the end
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[BrowserExecutor]:
    with BrowserExecutor(settle_quiet_ms=QUIET_MS) as executor:
        yield executor


@pytest.fixture
def settle_page(browser: BrowserExecutor, server: str) -> BrowserExecutor:
    browser.page.goto(f"{server}/settle.html")
    browser.observe()  # take the settle of the setup, so each test sees only its own
    return browser


def is_green(observation: Observation, point: tuple[int, int]) -> bool:
    pixel = observation.image.getpixel(point)
    return all(abs(a - b) <= 8 for a, b in zip(pixel, GREEN, strict=True))


def test_dom_changes_after_a_click_are_waited_for(settle_page: BrowserExecutor) -> None:
    result = settle_page.execute(Click(x=MUTATE[0], y=MUTATE[1]))

    observation = settle_page.observe()
    assert result.ok
    assert is_green(observation, STATUS)
    assert settle_page.page.evaluate("document.getElementById('status').textContent") == "done"
    # The page kept changing after the click; the settle waited until it went quiet.
    assert observation.settle_reason == "quiet" and observation.settle_ms > 0


def test_a_delayed_fetch_is_waited_for(settle_page: BrowserExecutor) -> None:
    settle_page.execute(Click(x=FETCH[0], y=FETCH[1]))

    observation = settle_page.observe()
    assert is_green(observation, STATUS)
    assert observation.settle_reason == "quiet"


def test_a_subresource_of_the_next_page_is_waited_for(settle_page: BrowserExecutor) -> None:
    settle_page.execute(Click(x=LOAD_SLOW[0], y=LOAD_SLOW[1]))

    observation = settle_page.observe()
    assert observation.title == "Slow image" and observation.settle_reason == "quiet"
    assert settle_page.page.evaluate("document.getElementById('slow').complete") is True


def test_a_page_that_never_stops_is_bounded_by_settle_max_ms(server: str) -> None:
    with BrowserExecutor(start_url=f"{server}/settle.html", settle_max_ms=500) as executor:
        result = executor.execute(Click(x=FOREVER[0], y=FOREVER[1]))
        observation = executor.observe()

    assert result.ok
    # The page never went quiet: the settle ended at the bound (and did end).
    assert observation.settle_reason == "bound" and observation.settle_ms > 0


def test_a_quiet_click_waits_one_quiet_window_and_observe_resets_it(settle_page: BrowserExecutor) -> None:
    settle_page.execute(Click(x=NOOP[0], y=NOOP[1]))

    first, second = settle_page.observe(), settle_page.observe()
    # The click's own pointer events open the window, so the settle waits it out; the
    # second observation follows no action, so it reports no settle.
    assert first.settle_reason == "quiet" and first.settle_ms > 0
    assert second.settle_ms == 0.0 and second.settle_reason is None


def test_a_long_poll_older_than_the_bound_does_not_hold_every_step(server: str) -> None:
    with BrowserExecutor(start_url=f"{server}/longpoll.html", settle_max_ms=800) as executor:
        executor.execute(Wait(seconds=0.9))  # the poll is now older than one whole settle
        executor.observe()
        executor.execute(Click(x=100, y=30))
        observation = executor.observe()

    # Counted as in flight, the poll would keep the settle waiting until the bound.
    assert observation.settle_reason == "quiet"


def test_settle_parameters_and_capture_are_checked() -> None:
    with pytest.raises(ValueError, match="settle_quiet_ms"):
        BrowserExecutor(settle_quiet_ms=-1)
    with pytest.raises(ValueError, match="capture"):
        BrowserExecutor(capture="gif")  # type: ignore[arg-type]


def test_the_capture_taken_while_settling_serves_the_next_observation_only_while_quiet(
    settle_page: BrowserExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = settle_page.page
    shots: list[object] = []
    real = page.screenshot

    def counted(**kwargs: object) -> bytes:
        shots.append(kwargs)
        return real(**kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(page, "screenshot", counted)

    settle_page.execute(Click(x=NOOP[0], y=NOOP[1]))
    taken = len(shots)
    settle_page.observe()
    assert taken >= 1 and len(shots) == taken  # captured ahead, during the settle: reused

    settle_page.execute(Click(x=NOOP[0], y=NOOP[1]))
    page.evaluate("document.getElementById('status').classList.add('done')")  # after the settle
    taken = len(shots)
    observation = settle_page.observe()
    assert len(shots) == taken + 1  # the page changed since: a fresh screenshot
    assert is_green(observation, STATUS)


def _on_nothing_click(browser: BrowserExecutor, handler: str) -> None:
    """Give the Nothing button a click handler of the page's own (page code, run by the page)."""
    browser.page.evaluate(f"document.getElementById('noop').addEventListener('click', {handler})")


@pytest.mark.parametrize("handler", [
    # one timer, longer than the quiet window, with no change before it fires
    f"() => setTimeout(() => finish('done'), {3 * QUIET_MS})",
    # a request, then its body, then a timer: the timer comes from the reply's callbacks
    "() => fetch('/api/slow?ms=50').then((r) => r.text()).then((t) => setTimeout(() => finish(t), 250))",
    # a chain of animation frames (about a third of a second) that changes nothing until its end
    "() => { let n = 0; const f = () => (++n < 20 ? requestAnimationFrame(f) : finish('done'));"
    " requestAnimationFrame(f); }",
    # an XHR whose load handler sets a timer
    "() => { const x = new XMLHttpRequest(); x.open('GET', '/api/slow?ms=50');"
    " x.onload = () => setTimeout(() => finish('done'), 250); x.send(); }",
], ids=["timer", "fetch-then-timer", "animation-frames", "xhr-then-timer"])
def test_work_the_action_started_is_waited_for_past_the_quiet_window(settle_page: BrowserExecutor,
                                                                     handler: str) -> None:
    _on_nothing_click(settle_page, handler)
    settle_page.execute(Click(x=NOOP[0], y=NOOP[1]))

    observation = settle_page.observe()
    assert is_green(observation, STATUS) and observation.settle_reason == "quiet"


def test_work_due_long_after_the_action_is_the_pages_own(settle_page: BrowserExecutor) -> None:
    _on_nothing_click(settle_page, "() => setTimeout(() => finish('late'), 10000)")  # as a toast's hiding
    settle_page.execute(Click(x=NOOP[0], y=NOOP[1]))

    observation = settle_page.observe()
    assert observation.settle_reason == "quiet" and not is_green(observation, STATUS)
