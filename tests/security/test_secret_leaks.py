"""Issue #16: where a secret's value leaked, partly or in another spelling, and that it no longer does.

An attacker read everything a run leaves behind (steps.jsonl, run.json, report.html, the
logs) and everything the model was shown. Each test reproduces a leak against real things:
a real Chromium submits a GET form (the URL then holds the value form-encoded), the Agent
runs it, and every file is searched for the value in each spelling. The scripted model
stands in for weights that cannot be downloaded here; it records what it was shown.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from urllib.parse import quote, quote_plus, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.loop import Agent
from agent.redaction import REDACTED, Redactor
from agent.report import write_report
from model.base import Message
from model.scripted import ScriptedModel
from tests.helpers.http import serving_folder

# `~` and `*`: Chromium's form encoding sends "%7E*", encodeURIComponent "~*", quote "~%2A";
# a space: "+" or "%20"; quotes, & and <: JSON and HTML escape them. The form's page declares
# no charset, so Chromium encodes it in windows-1252: ö as %F6 (not %C3%B6), € as %80, and ł,
# which windows-1252 lacks, as an HTML reference, percent-encoded (%26%23322%3B).
PASSWORD = "hunter2~*pass wörd€ł!'(\"&<)"
KEY = "sk-Zq8Wv3Lr6Tn1Px4Jm7Bd2Hf5Ks9Yc0Ga3Ue6Io8Rb1Nt4"  # 48 characters
FORM = """<!doctype html><title>Search</title>
<form action="done.html" method="get"><input id="q" name="q" autofocus><button>Go</button></form>
<script>document.getElementById('q').focus()</script>"""
# The result page puts what was sent into its title, as many sites do.
DONE = """<!doctype html><title>Results</title><p>Sent.</p>
<script>document.title = 'Results for ' + new URLSearchParams(location.search).get('q')</script>"""


def _lower_hex(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)


def _form(value: str) -> str:
    """application/x-www-form-urlencoded as Chromium writes it: alphanumerics and *-._ kept."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "*-._") else "+" if c == " " else
                   "".join(f"%{b:02X}" for b in c.encode()) for c in value)


SPELLINGS: dict[str, Callable[[str], str]] = {
    "raw": lambda v: v,
    "upper": str.upper,
    "lower": str.lower,
    "quote": lambda v: quote(v, safe=""),
    "quote, lower hex": lambda v: _lower_hex(quote(v, safe="")),
    "quote_plus": quote_plus,
    "encodeURIComponent": lambda v: quote(v, safe="-_.!~*'()"),
    "form (Chromium)": _form,
    "form, lower hex": lambda v: _lower_hex(_form(v)),
    "form, upper-cased value": lambda v: _form(v.upper()),
    "html.escape": html.escape,
    "HTML decimal": lambda v: "".join(f"&#{ord(c)};" for c in v),
    "HTML hex": lambda v: "".join(f"&#x{ord(c):X};" for c in v),
    "HTML named": lambda v: "".join(f"&{html.entities.codepoint2name[ord(c)]};"
                                    if ord(c) in html.entities.codepoint2name else c for c in v),
    "JSON": lambda v: json.dumps(v)[1:-1],
    "JSON, raw Unicode": lambda v: json.dumps(v, ensure_ascii=False)[1:-1],
    "JSON in JSON": lambda v: json.dumps(json.dumps(v))[3:-3],
    "Python repr": lambda v: repr(v)[1:-1],
    "base64": lambda v: base64.b64encode(v.encode()).decode(),
    "base64, no padding": lambda v: base64.b64encode(v.encode()).decode().rstrip("="),
    "base64 urlsafe": lambda v: base64.urlsafe_b64encode(v.encode()).decode(),
    "base64 urlsafe, no padding": lambda v: base64.urlsafe_b64encode(v.encode()).decode().rstrip("="),
    "base64 of the upper-cased value": lambda v: base64.b64encode(v.upper().encode()).decode(),
}


def _found(text: str, values: Sequence[str], extra: Sequence[str] = ()) -> list[str]:
    """Which spellings of `values` (and which `extra` strings) are in `text`; case is ignored
    except in base64, where it is part of the spelling."""
    found = []
    for value in values:
        for name, spell in SPELLINGS.items():
            spelled = spell(value)
            if (spelled in text) if name.startswith("base64") else (spelled.casefold() in text.casefold()):
                found.append(f"{name} of {value[:3]}..")
        if len(value) > 16 and value[:12].casefold() in text.casefold():
            found.append(f"a prefix of {value[:3]}..")
    return found + [f"extra {s!r}" for s in extra if s in text]


def _shown(calls: Sequence[Sequence[Message]]) -> list[str]:
    return ["\n".join(part for part in message.content if isinstance(part, str))
            for call in calls for message in call]


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "form.html").write_text(FORM, encoding="utf-8")
    (folder / "done.html").write_text(DONE, encoding="utf-8")
    with serving_folder(folder) as url:
        yield url


def _call(name: str, arguments: dict[str, object]) -> str:
    return "<tool_call>" + json.dumps({"name": name, "arguments": arguments}) + "</tool_call>"


@pytest.mark.browser
def test_a_secret_sent_by_a_get_form_reaches_neither_the_model_nor_the_disk_nor_the_logs(
        site: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from tools.browser import BrowserExecutor

    log = logging.getLogger("tests.security.leaks")
    seen: dict[str, str] = {}

    def after_the_form(messages: Sequence[Message]) -> str:
        # What a library may log mid-run: the page's URL, and an error that quotes the key.
        seen["url"] = browser.page.url
        log.warning("on %s", browser.page.url)
        try:
            raise ValueError(f"rejected key {KEY}")
        except ValueError:
            log.exception("a call failed")
        # A model that learnt the values writes them, encoded, into its thought; and an action
        # whose name is the 48-character key (a parse error quotes it, cut at 40 characters).
        thought = (f"Base64 {base64.b64encode(PASSWORD.encode()).decode()}, loud {PASSWORD.upper()}, "
                   f"urlsafe {base64.urlsafe_b64encode(KEY.encode()).decode().rstrip('=')}.")
        return thought + _call(KEY, {})

    with BrowserExecutor(start_url=f"{site}/form.html") as browser:
        seen["encodeURIComponent"] = browser.page.evaluate("v => encodeURIComponent(v)", PASSWORD)
        seen["URLSearchParams"] = browser.page.evaluate("v => new URLSearchParams({q: v}).toString()",
                                                        PASSWORD)
        model = ScriptedModel([
            _call("type", {"text": "<secret>password</secret>", "secret": True, "submit": True}),
            after_the_form,
            "Sent with " + quote(PASSWORD) + _call("finish", {"answer": f"searched for {_form(PASSWORD)}"}),
        ])
        agent = Agent(model, browser, max_steps=5, runs_dir=tmp_path / "runs",
                      secrets={"password": PASSWORD, "api_key": KEY})
        with caplog.at_level(logging.WARNING):
            trajectory = agent.run(f"Search the form for {PASSWORD}, then check the key {KEY}.")

    # The leak is real: Chromium sent the value form-encoded, in the URL.
    query = urlsplit(seen["url"]).query
    assert query.startswith("q=hunter2%7E*pass+w%F6rd%80%26%23322%3B%21")
    extra = [query[2:], seen["encodeURIComponent"], seen["URLSearchParams"]]
    assert trajectory.outcome == "finished"

    # What the model was shown: placeholders, never a value, a spelling or a prefix.
    shown = _shown(model.calls)
    assert not [(i, found) for i, text in enumerate(shown) if (found := _found(text, [PASSWORD, KEY], extra))]
    users = [text for text in shown if text.startswith("Goal:")]
    assert all(text.startswith("Goal: Search the form for <secret>password</secret>, then check the key "
                               "<secret>api_key</secret>.") for text in users)
    assert f"Current URL: {site}/done.html?q=<secret>password</secret>" in users[1]
    assert "unknown action '<secret>api_key</secret>'" in users[2]

    # What the run left on disk, and the report made from it.
    report = write_report(trajectory.run_dir)
    for path in (trajectory.run_dir / "steps.jsonl", trajectory.run_dir / "run.json", report):
        text = path.read_text(encoding="utf-8")
        assert _found(text, [PASSWORD, KEY], extra) == [], path.name
    steps = (trajectory.run_dir / "steps.jsonl").read_text(encoding="utf-8")
    assert "done.html?q=[secret]" in steps and "Results for [secret]" in steps
    assert f"Base64 {REDACTED}, loud {REDACTED}, urlsafe {REDACTED}." in steps

    # The logs of the run.
    logged = caplog.text + "".join(record.getMessage() for record in caplog.records)
    assert _found(logged, [PASSWORD, KEY], extra) == []
    assert f"on {site}/done.html?q={REDACTED}" in logged and f"rejected key {REDACTED}" in logged


@pytest.mark.browser
def test_a_goal_holding_a_value_is_shown_to_the_model_with_the_placeholder(site: str, tmp_path: Path) -> None:
    from tools.browser import BrowserExecutor

    model = ScriptedModel([_call("type", {"text": "<secret>password</secret>", "submit": True}),
                           _call("finish", {})])
    with BrowserExecutor(start_url=f"{site}/form.html") as browser:
        goal = f"Type {html.escape(PASSWORD)} (that is, {PASSWORD.upper()}) into the form."
        agent = Agent(model, browser, max_steps=3, runs_dir=tmp_path, secrets={"password": PASSWORD})
        trajectory = agent.run(goal)
        typed = urlsplit(browser.page.url).query
    assert typed.startswith("q=hunter2%7E*pass")  # the value itself was typed
    shown = _shown(model.calls)
    assert all(_found(text, [PASSWORD]) == [] for text in shown)
    assert "Goal: Type <secret>password</secret> (that is, <secret>password</secret>)" in shown[1]
    run = json.loads((trajectory.run_dir / "run.json").read_text(encoding="utf-8"))
    # Recorded as the model saw it, so that a resumed run shows it the same.
    assert run["goal"] == "Type <secret>password</secret> (that is, <secret>password</secret>) into the form."


@settings(max_examples=150, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cs",)), min_size=4, max_size=24))
def test_every_spelling_of_any_value_is_redacted_whole(value: str) -> None:
    redactor = Redactor([value])
    for name, spell in SPELLINGS.items():
        assert redactor.text(f"<<{spell(value)}>>") == f"<<{REDACTED}>>", name


@pytest.mark.parametrize("before", [b"", b"x", b"xy"])
def test_base64_of_a_value_inside_a_longer_stream_is_redacted_at_every_alignment(before: bytes) -> None:
    stream = base64.b64encode(before + PASSWORD.encode() + b" and more").decode()
    redacted = Redactor([PASSWORD]).text(stream)
    assert REDACTED in redacted and len(redacted) < len(stream) - 20
