"""A recorded run on the replay test app (tests/pages/replay): an agent, a scripted model.

The scripted model stands in for InternVL3 (weights cannot be downloaded here): each reply is
what a model would answer, computed from the live page, in the model's 0..1000 space. The run
does what a real one does: a failed step (a link that is not there), a wrong turn taken back,
a repeated wait, pixel clicks (the element under each is noted as it acts), targets in words,
and a secret typed by name. Used by the replay tests and bench/replay.py.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from agent.grounding.dom import DOMGrounder
from agent.grounding.model import ModelGrounder
from agent.loop import Agent
from agent.trajectory import Trajectory
from model.scripted import ScriptedModel
from tools.browser import BrowserExecutor

PAGES = Path(__file__).resolve().parents[1] / "pages" / "replay"
GOAL = "Sign in as ada@example.org and order the chair"
EMAIL = "ada@example.org"
PASSWORD = "s3cret-Pässword"  # never written beside a compiled script


def copy_app(into: Path) -> Path:
    """The app (app/) and its task file (shop.yaml) copied into `into`; the task file's path."""
    shutil.copytree(PAGES / "app", into / "app")
    shutil.copy(PAGES / "shop.yaml", into / "shop.yaml")
    return into / "shop.yaml"


def change_app(app: Path) -> None:
    """The app as a redesign leaves it: moved, resized, restyled, "Sign in" now "Log in", the
    cart button now "Basket" at the other side of the page."""
    for page in (PAGES / "changed").iterdir():
        shutil.copy(page, app / page.name)


def _call(name: str, arguments: str) -> str:
    return f'<tool_call>{{"name": "{name}", "arguments": {arguments}}}</tool_call>'


def click_on(browser: BrowserExecutor, selector: str, nth: int = 0) -> Callable[[object], str]:
    """A reply that clicks the centre of `selector` (its nth match), in the model's 0..1000 space."""

    def reply(_messages: object) -> str:
        rect = browser.page.evaluate(
            "([s, n]) => document.querySelectorAll(s)[n].getBoundingClientRect().toJSON()", [selector, nth])
        width, height = browser.viewport
        x = (rect["left"] + rect["width"] / 2) * 1000 / (width - 1)
        y = (rect["top"] + rect["height"] / 2) * 1000 / (height - 1)
        return _call("click", f'{{"x": {round(x)}, "y": {round(y)}}}')

    return reply


def shop_replies(browser: BrowserExecutor) -> list[object]:
    return [
        _call("type", f'{{"text": "{EMAIL}", "target": "the Email field"}}'),
        _call("type", '{"text": "<secret>password</secret>", "target": "the Password field"}'),
        _call("click", '{"target": "the Forgot password link"}'),  # not on the page: fails
        click_on(browser, "#signin"),
        click_on(browser, "button[data-id]", 0),  # the lamp: a wrong turn...
        _call("back", "{}"),  # ...taken back
        _call("wait", '{"seconds": 0.3}'),
        _call("wait", '{"seconds": 0.3}'),  # the same, on the same screen: one step
        click_on(browser, "button[data-id]", 1),  # the second "Open": the chair
        click_on(browser, "#add"),
        click_on(browser, "#cart"),
        _call("click", '{"target": "the Place order button"}'),
        _call("finish", '{"answer": "ordered"}'),
    ]


def record_shop_run(base_url: str, task_file: Path, runs_dir: Path, *,
                    browser: BrowserExecutor | None = None) -> Trajectory:
    """Run the agent with the scripted model on the app served at `base_url`; its trajectory."""
    url = f"{base_url}/login.html"
    own = browser is None
    browser = browser or BrowserExecutor(start_url=url)
    try:
        if not own:
            browser.page.goto(url)
        model = ScriptedModel(shop_replies(browser))
        agent = Agent(model, browser, max_steps=20, runs_dir=runs_dir, grounder=DOMGrounder(browser),
                      secrets={"password": PASSWORD})
        return agent.run(GOAL, start={"url": url, "task": str(task_file)})
    finally:
        if own:
            browser.close()


def healing_model(browser: BrowserExecutor, selector: str, calls: int = 4) -> ModelGrounder:
    """A model grounder that answers, as InternVL3 would, the box of `selector` on the live page
    (in 0..1000 of the screenshot, at any device scale); it answers `calls` times at most."""

    def answer(_messages: object) -> str:
        rect = browser.page.evaluate(f"document.querySelector({selector!r}).getBoundingClientRect().toJSON()")
        scale = browser.page.evaluate("window.devicePixelRatio")
        width, height = browser.observe().size
        corners = (rect["left"] * scale / (width - 1), rect["top"] * scale / (height - 1),
                   rect["right"] * scale / (width - 1), rect["bottom"] * scale / (height - 1))
        return "<box>[[" + ", ".join(str(round(c * 1000)) for c in corners) + "]]</box>"

    return ModelGrounder(ScriptedModel([answer] * calls), zoom=False)
