"""BrowserExecutor against a real headless Chromium and tests/pages/playground.html.

The playground records every event in `window.log` and `window.state`, so each test acts
through the executor and then reads what the page saw. One browser serves the module;
each test starts from a fresh load of the playground.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any, Literal

import pytest

from tools.actions import Back, BaseAction, Click, Drag, Finish, Key, Move, Navigate, Scroll, Type, Wait
from tools.browser import DRAG_STEPS, BrowserExecutor
from tools.errors import ExecutorError
from tools.executor import Executor, Geometry

pytestmark = pytest.mark.browser

# Centres of the playground's elements, in CSS pixels (see the comment in playground.html).
BUTTON = (120, 50)
TEXT = (170, 135)
HOVER = (475, 50)
DRAG_SOURCE = (450, 170)
DROP = (750, 170)
SCROLLBOX = (1000, 120)
LINK = (60, 215)
POPUP_LINK = (160, 215)




def state(executor: BrowserExecutor) -> dict[str, Any]:
    return executor.page.evaluate("window.state")


def events(executor: BrowserExecutor, type_: str) -> list[dict[str, Any]]:
    return [e for e in executor.page.evaluate("window.log") if e["type"] == type_]


def run(executor: BrowserExecutor, action: Any) -> None:
    result = executor.execute(action)
    assert result.ok, result.error


def test_executor_satisfies_the_protocol(browser: BrowserExecutor) -> None:
    assert isinstance(browser, Executor)


def test_observe_returns_a_viewport_screenshot_with_url_and_title(playground: BrowserExecutor) -> None:
    observation = playground.observe()

    assert observation.image.mode == "RGB"
    assert observation.size == (1280, 720)
    assert observation.geometry == Geometry.identity(1280, 720)
    assert observation.url is not None and observation.url.endswith("/playground.html")
    assert observation.title == "Playground"
    # The screenshot shows the page: the button's green (#4a7) near its top-left corner,
    # within JPEG's error (the default capture).
    pixel = observation.image.getpixel((30, 25))
    assert all(abs(a - b) <= 6 for a, b in zip(pixel, (0x44, 0xAA, 0x77), strict=True)), pixel


def test_left_click_lands_on_the_button(playground: BrowserExecutor) -> None:
    result = playground.execute(Click(x=BUTTON[0], y=BUTTON[1]))

    assert result.ok and result.error is None and result.elapsed_ms > 0
    s = state(playground)
    assert s["clicks"] == 1
    assert s["lastClick"] == {
        "type": "click",
        "target": "button",
        "button": 0,
        "detail": 1,
        "ctrl": False,
        "shift": False,
        "alt": False,
        "meta": False,
        "x": 120,
        "y": 50,
    }


def test_right_click_opens_the_context_menu_event(playground: BrowserExecutor) -> None:
    run(playground, Click(x=BUTTON[0], y=BUTTON[1], button="right"))

    assert [e["button"] for e in events(playground, "contextmenu")] == [2]
    assert [e["button"] for e in events(playground, "mousedown")] == [2]
    assert events(playground, "click") == []


def test_double_click_fires_dblclick_with_click_counts_one_and_two(playground: BrowserExecutor) -> None:
    run(playground, Click(x=BUTTON[0], y=BUTTON[1], clicks=2))

    assert [e["detail"] for e in events(playground, "click")] == [1, 2]
    assert len(events(playground, "dblclick")) == 1


def test_modifiers_are_held_during_the_click_and_released_after(playground: BrowserExecutor) -> None:
    run(playground, Click(x=BUTTON[0], y=BUTTON[1], modifiers=("ctrl", "shift")))
    run(playground, Click(x=BUTTON[0], y=BUTTON[1]))

    first, second = events(playground, "click")
    assert (first["ctrl"], first["shift"], first["alt"]) == (True, True, False)
    assert (second["ctrl"], second["shift"]) == (False, False)


def test_click_at_scale_2_maps_screenshot_pixels_to_the_same_css_point(page_server: str) -> None:
    with BrowserExecutor(start_url=f"{page_server}/playground.html", device_scale_factor=2) as executor:
        observation = executor.observe()
        assert observation.size == (2560, 1440)
        assert observation.geometry.to_device(240, 100) == BUTTON

        run(executor, Click(x=2 * BUTTON[0], y=2 * BUTTON[1]))

        last = state(executor)["lastClick"]
        assert (last["target"], last["x"], last["y"]) == ("button", *BUTTON)


def test_typing_capitals_and_symbols_then_submit(playground: BrowserExecutor) -> None:
    text = 'Hello, World! @#$%^&*()_+ {}|:"<>?~ 123'
    run(playground, Click(x=TEXT[0], y=TEXT[1]))
    run(playground, Type(text=text, submit=True))

    s = state(playground)
    assert s["value"] == text
    assert s["submitted"] == 1
    assert [k["key"] for k in s["keys"]][:2] == ["H", "e"]


def test_type_with_clear_replaces_what_the_field_held(playground: BrowserExecutor) -> None:
    run(playground, Click(x=TEXT[0], y=TEXT[1]))
    run(playground, Type(text="old text"))
    run(playground, Type(text="new", clear=True))
    assert playground.page.evaluate("document.getElementById('text').value") == "new"

    run(playground, Type(text=" and more"))  # without clear, typing adds to it
    assert playground.page.evaluate("document.getElementById('text').value") == "new and more"


def test_ctrl_a_then_backspace_clears_the_input(playground: BrowserExecutor) -> None:
    run(playground, Click(x=TEXT[0], y=TEXT[1]))
    run(playground, Type(text="some text"))
    run(playground, Key(keys=("ctrl", "a")))
    run(playground, Key(keys=("backspace",)))

    assert playground.page.evaluate("document.getElementById('text').value") == ""
    keys = state(playground)["keys"]
    assert any(k["key"] == "a" and k["ctrl"] for k in keys)
    assert keys[-1]["key"] == "Backspace" and not keys[-1]["ctrl"]


def test_scroll_moves_the_window_by_notches_down_and_right(playground: BrowserExecutor) -> None:
    run(playground, Scroll(x=640, y=400, dy=3))
    playground.page.wait_for_function("window.scrollY === 300")
    run(playground, Scroll(x=640, y=400, dy=-1, dx=2))
    playground.page.wait_for_function("window.scrollY === 200 && window.scrollX === 200")


def test_scroll_at_a_point_scrolls_the_element_under_it(playground: BrowserExecutor) -> None:
    run(playground, Scroll(x=SCROLLBOX[0], y=SCROLLBOX[1], dy=2))

    playground.page.wait_for_function("document.getElementById('scrollbox').scrollTop === 200")
    assert playground.page.evaluate("window.scrollY") == 0


def test_move_hovers_without_clicking(playground: BrowserExecutor) -> None:
    run(playground, Move(x=HOVER[0], y=HOVER[1]))

    s = state(playground)
    assert s["hovered"] is True
    assert s["clicks"] == 0
    assert events(playground, "mouseover")[-1]["target"] == "hover"


def test_drag_presses_moves_and_releases_at_the_end(playground: BrowserExecutor) -> None:
    run(playground, Drag(start=DRAG_SOURCE, end=DROP))

    s = state(playground)
    assert s["drag"] == {"start": list(DRAG_SOURCE), "end": list(DROP), "dropTarget": "drop"}
    assert s["dragMoves"] >= DRAG_STEPS


def test_navigate_then_back_returns_to_the_first_url(playground: BrowserExecutor, page_server: str) -> None:
    first = playground.observe().url

    run(playground, Navigate(url=f"{page_server}/second.html"))
    assert playground.observe().title == "Second page"
    run(playground, Back())

    assert playground.observe().url == first


def test_clicking_a_link_waits_for_the_next_page(playground: BrowserExecutor) -> None:
    run(playground, Click(x=LINK[0], y=LINK[1]))

    playground.page.wait_for_url("**/second.html")
    assert playground.observe().title == "Second page"


def test_a_new_tab_becomes_the_observed_page_until_it_closes(playground: BrowserExecutor) -> None:
    first = playground.page
    run(playground, Click(x=POPUP_LINK[0], y=POPUP_LINK[1]))

    popup = playground.page
    assert popup is not first
    popup.wait_for_load_state()
    assert playground.observe().title == "Second page"
    popup.close()
    assert playground.page is first
    assert playground.observe().title == "Playground"


def test_an_unreachable_url_is_a_failed_result_not_an_exception(playground: BrowserExecutor) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    result = playground.execute(Navigate(url=f"http://127.0.0.1:{port}/"))

    assert not result.ok
    assert result.error is not None and "ERR_CONNECTION_REFUSED" in result.error
    assert "\n" not in result.error


@pytest.mark.parametrize(
    ("url", "scheme"),
    [("javascript:alert(1)", "javascript"), ("chrome://settings", "chrome"), ("file:///etc/passwd", "file")],
)
def test_navigate_opens_only_web_pages(playground: BrowserExecutor, url: str, scheme: str) -> None:
    before = playground.page.url

    result = playground.execute(Navigate(url=url))

    assert not result.ok and result.error is not None
    assert f"{scheme}: URLs are not allowed" in result.error
    assert "http:, https: and about:blank" in result.error
    assert playground.page.url == before


def test_navigate_to_a_bare_host_says_to_give_a_full_url(playground: BrowserExecutor) -> None:
    result = playground.execute(Navigate(url="example.com"))

    assert not result.ok and result.error is not None and "is not a URL" in result.error


def test_navigate_opens_about_blank(playground: BrowserExecutor) -> None:
    run(playground, Navigate(url="about:blank"))
    assert playground.observe().url == "about:blank"


def test_file_urls_are_allowed_when_the_executor_started_on_one() -> None:
    pages = Path(__file__).resolve().parent.parent / "pages"
    with BrowserExecutor(start_url=(pages / "playground.html").as_uri()) as executor:
        run(executor, Navigate(url=(pages / "second.html").as_uri()))
        assert executor.observe().title == "Second page"
        result = executor.execute(Navigate(url="chrome://settings"))
        assert not result.ok and result.error is not None and "file:, http:, https:" in result.error


def test_an_ungrounded_target_is_a_failed_result(playground: BrowserExecutor) -> None:
    for action in (
        Click(target="the green button"),
        Type(text="hi", target="the text box"),
        Drag(start="the blue square", end=DROP),
    ):
        result = playground.execute(action)
        assert not result.ok
        assert result.error is not None and "grounded" in result.error
    assert state(playground)["clicks"] == 0


def test_an_action_the_browser_does_not_know_is_a_programming_error(playground: BrowserExecutor) -> None:
    class Teleport(BaseAction):
        action: Literal["teleport"] = "teleport"

    with pytest.raises(ExecutorError, match="cannot run Teleport; it runs back, click"):
        playground.execute(Teleport())


def test_wait_and_finish_succeed(playground: BrowserExecutor) -> None:
    waited = playground.execute(Wait(seconds=0.2))
    assert waited.ok
    assert playground.execute(Finish(answer="done")).ok


def test_back_with_no_history_fails_and_start_is_lazy() -> None:
    executor = BrowserExecutor()
    try:
        assert executor.browser_pid is None and not executor._runtime.started  # nothing started yet
        result = executor.execute(Back())
        assert not result.ok and result.error is not None and "history" in result.error
        assert executor.observe().url == "about:blank"
    finally:
        executor.close()


def test_a_browser_closed_twice_raises_executor_error_and_close_is_idempotent() -> None:
    executor = BrowserExecutor()
    for _ in range(2):  # the first loss is recovered (see test_browser_recovery.py)
        browser = executor.page.context.browser
        assert browser is not None
        browser.close()

    with pytest.raises(ExecutorError, match="new BrowserExecutor"):
        executor.execute(Click(x=10, y=10))
    with pytest.raises(ExecutorError):
        executor.observe()
    executor.close()
    executor.close()
    with pytest.raises(ExecutorError, match="closed"):
        executor.observe()


def test_png_capture_is_lossless(page_server: str) -> None:
    with BrowserExecutor(start_url=f"{page_server}/playground.html", capture="png") as executor:
        assert executor.observe().image.getpixel((30, 25)) == (0x44, 0xAA, 0x77)
