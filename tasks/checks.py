"""Success checks: how we know a task was done, judged on the live executor after the run.

    success:
      all:                                         # `any` too; both nest
        - url_matches: '.*/welcome\\.html'          # a regex, searched in the page's URL
        - title_matches: Welcome
        - element_text: {selector: '#msg', contains: Account created}   # or equals:
        - element_exists: '#logout'
        - js: document.cookie.includes('session')  # an expression that must be truthy
        - file_exists: out/notes.txt                # relative to the task file (desktop too)
        - file_contains: {path: out/notes.txt, text: Buy milk}
        - answer_matches: '\\b42\\b'                 # a regex, searched in the run's answer
        - screen_text: Saved                        # OCR on the screen (rapidocr)

Each check returns a frozen `CheckResult(ok, why, check)`; `why` says what was seen ("url was
http://127.0.0.1:41233/signup.html"). `run_checks` returns every result, each `all`/`any`
after its members, so the last one is the verdict. A page check on the desktop, or a page
that cannot be read, is a failed check, not an exception.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tasks.yamlfile import Source
from tools.errors import AgentError, TaskError
from tools.validation import format_validation_error

if TYPE_CHECKING:
    from PIL.Image import Image
    from playwright.sync_api import Page

    from tools.executor import Executor, Observation

__all__ = [
    "All", "AnswerMatches", "AnyOf", "Check", "CheckResult", "ElementExists", "ElementText", "FileContains",
    "FileExists", "Js", "ScreenText", "TitleMatches", "UrlMatches", "parse_check", "run_checks",
]

SHOWN = 160  # characters of what was seen that a `why` quotes


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict: `why` says what was seen; `check` is the check, as written."""

    ok: bool
    why: str
    check: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"check": self.check, "ok": self.ok, "why": self.why}


@dataclass
class _Context:
    """What the checks look at; the observation is taken once, when a check first needs it."""

    executor: Executor
    answer: str | None
    screenshot: Image | None
    base_dir: Path
    read_text: Callable[[Image], str] | None = None  # OCR, given by the caller (tasks imports no engine)
    _observation: Observation | None = field(default=None, repr=False)

    def observation(self) -> Observation:
        if self._observation is None:
            self._observation = self.executor.observe()
        return self._observation

    def page(self) -> Page | None:
        from tools.browser import BrowserExecutor

        return self.executor.page if isinstance(self.executor, BrowserExecutor) else None


def _shown(text: str | None) -> str:
    text = " ".join((text or "").split())
    return repr(text if len(text) <= SHOWN else text[: SHOWN - 1] + "…")


class Check(BaseModel):
    """A success check. `kind` is its YAML key; `main` the field a bare value stands for."""

    model_config = ConfigDict(frozen=True, extra="forbid", coerce_numbers_to_str=True)
    kind: ClassVar[str] = ""
    main: ClassVar[str | None] = None

    def label(self) -> str:
        value = getattr(self, self.main) if self.main else ""
        return f"{self.kind}: {value}"

    def judge(self, ctx: _Context) -> tuple[bool, str]:
        raise NotImplementedError


class _Pattern(Check):
    main: ClassVar[str | None] = "pattern"
    pattern: str = Field(min_length=1)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"{value!r} is not a regular expression ({exc})") from None
        return value

    def judge(self, ctx: _Context) -> tuple[bool, str]:
        text, missing = self.read(ctx)
        if text is None:
            return False, missing
        return re.search(self.pattern, text) is not None, f"{self.subject} was {self.show(text)}"

    # What the pattern is searched in: `read` gives (its text, or None and why there is none).
    subject: ClassVar[str] = ""

    def read(self, ctx: _Context) -> tuple[str | None, str]:
        raise NotImplementedError

    def show(self, text: str) -> str:
        return _shown(text)


class UrlMatches(_Pattern):
    kind: ClassVar[str] = "url_matches"
    subject: ClassVar[str] = "url"

    def read(self, ctx: _Context) -> tuple[str | None, str]:
        return ctx.observation().url, "there is no URL: this task runs on the desktop, not in a browser"

    def show(self, text: str) -> str:
        return text  # a URL reads best unquoted, and in full


class TitleMatches(_Pattern):
    kind: ClassVar[str] = "title_matches"
    subject: ClassVar[str] = "title"

    def read(self, ctx: _Context) -> tuple[str | None, str]:
        return ctx.observation().title, ("there is no page title: this task runs on the desktop, "
                                         "not in a browser")


class AnswerMatches(_Pattern):
    kind: ClassVar[str] = "answer_matches"
    subject: ClassVar[str] = "answer"

    def read(self, ctx: _Context) -> tuple[str | None, str]:
        return ctx.answer, "the run gave no answer"


class _PageCheck(Check):
    """A check that reads the web page: on the desktop, or where the page cannot be read, it
    fails with the reason."""

    def judge(self, ctx: _Context) -> tuple[bool, str]:
        from playwright.sync_api import Error

        from tools.browser.runtime import first_line

        page = ctx.page()
        if page is None:
            return False, f"{self.kind} reads a web page, and this task runs on the desktop"
        try:
            return self.read_page(page)
        except Error as exc:  # a bad selector, a script that throws, a page gone
            said = re.sub(r"^\w+\.\w+: ", "", first_line(exc))  # without "Page.evaluate: "
            return False, f"{self.kind} failed on the page: {said}"

    def read_page(self, page: Page) -> tuple[bool, str]:
        raise NotImplementedError


class ElementText(_PageCheck):
    kind: ClassVar[str] = "element_text"
    selector: str = Field(min_length=1)
    equals: str | None = None
    contains: str | None = None

    @model_validator(mode="after")
    def _one_test(self) -> ElementText:
        if (self.equals is None) == (self.contains is None):
            raise ValueError("give either equals or contains (the text to compare with)")
        return self

    def label(self) -> str:
        test = "equals" if self.equals is not None else "contains"
        return f"{self.kind}: {self.selector} {test} {getattr(self, test)!r}"

    def read_page(self, page: Page) -> tuple[bool, str]:
        found = page.locator(self.selector)
        if found.count() == 0:
            return False, f"no element matches {self.selector!r}"
        text = " ".join(found.first.inner_text(timeout=5_000).split())
        if self.equals is not None:
            ok = text == " ".join(self.equals.split())
        else:
            ok = " ".join((self.contains or "").split()) in text
        return ok, f"the text of {self.selector} was {_shown(text)}"


class ElementExists(_PageCheck):
    kind: ClassVar[str] = "element_exists"
    main: ClassVar[str | None] = "selector"
    selector: str = Field(min_length=1)

    def read_page(self, page: Page) -> tuple[bool, str]:
        count = page.locator(self.selector).count()
        return count > 0, f"{count} element(s) matched {self.selector!r}"


class Js(_PageCheck):
    kind: ClassVar[str] = "js"
    main: ClassVar[str | None] = "expression"
    expression: str = Field(min_length=1)

    def read_page(self, page: Page) -> tuple[bool, str]:
        value = page.evaluate(self.expression)  # an expression, or a function that Playwright calls
        return bool(value), f"it gave {json.dumps(value, default=str)[:SHOWN]}"


class FileExists(Check):
    kind: ClassVar[str] = "file_exists"
    main: ClassVar[str | None] = "path"
    path: str = Field(min_length=1)

    def judge(self, ctx: _Context) -> tuple[bool, str]:
        where = ctx.base_dir / self.path
        return where.exists(), f"{where} {'exists' if where.exists() else 'does not exist'}"


class FileContains(Check):
    kind: ClassVar[str] = "file_contains"
    path: str = Field(min_length=1)
    text: str = Field(min_length=1)

    def label(self) -> str:
        return f"{self.kind}: {self.path} holds {self.text!r}"

    def judge(self, ctx: _Context) -> tuple[bool, str]:
        where = ctx.base_dir / self.path
        try:
            content = where.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            return False, f"{where} could not be read ({exc.strerror or exc})"
        return self.text in content, f"{where} held {_shown(content)}"


class ScreenText(Check):
    kind: ClassVar[str] = "screen_text"
    main: ClassVar[str | None] = "text"
    text: str = Field(min_length=1)

    def judge(self, ctx: _Context) -> tuple[bool, str]:
        if ctx.read_text is None:
            return False, ("screen_text needs OCR on the screenshot, and none was given: in a browser, "
                           "check the page with element_text or js instead")
        image = ctx.screenshot if ctx.screenshot is not None else ctx.observation().image
        shown = " ".join(ctx.read_text(image).split())
        return " ".join(self.text.split()) in shown, f"the screen read {_shown(shown)}"


class _Group(Check):
    checks: tuple[Check, ...] = Field(min_length=1)

    def label(self) -> str:
        return f"{self.kind} of {len(self.checks)}"


class All(_Group):
    kind: ClassVar[str] = "all"


class AnyOf(_Group):
    kind: ClassVar[str] = "any"


KINDS: dict[str, type[Check]] = {c.kind: c for c in (UrlMatches, TitleMatches, AnswerMatches, ElementText,
                                                     ElementExists, Js, FileExists, FileContains, ScreenText,
                                                     All, AnyOf)}


def parse_check(raw: Any, source: Source, loc: tuple[Any, ...] = ("success",)) -> Check:
    """A check as a task file writes it (`kind: value`, or `kind: {fields}`); TaskError names its line."""
    if not isinstance(raw, dict) or len(raw) != 1:
        raise TaskError(f"{source.at(*loc)}: write one `check: value` pair, such as "
                        "`url_matches: '.*/done'`, or `all:` / `any:` with a list of them")
    ((kind, value),) = raw.items()
    where = source.at(*loc, kind)  # the line of the check's own key
    cls = KINDS.get(kind)
    if cls is None:
        raise TaskError(f"{where}: unknown check {kind!r}; the checks are {', '.join(KINDS)}")
    if issubclass(cls, _Group):
        if not isinstance(value, list) or not value:
            raise TaskError(f"{where}: {kind} takes a non-empty list of checks")
        members = tuple(parse_check(item, source, (*loc, kind, n)) for n, item in enumerate(value))
        return cls(checks=members)
    if isinstance(value, dict):
        fields = dict(value)
    elif cls.main is not None and value is not None:
        fields = {cls.main: value}
    else:
        fields_of = ", ".join(name for name in cls.model_fields)
        raise TaskError(f"{where}: {kind} takes a mapping: {{{fields_of}}}")
    try:
        return cls(**fields)
    except (ValidationError, TypeError) as exc:
        problem = format_validation_error(exc, model=cls) if isinstance(exc, ValidationError) else str(exc)
        raise TaskError(f"{where}: {kind}: {problem}") from None


def run_checks(check: Check, executor: Executor, *, answer: str | None = None,
               screenshot: Image | None = None, base_dir: Path | str = ".",
               read_text: Callable[[Image], str] | None = None) -> list[CheckResult]:
    """Every check's result, each `all`/`any` right after its members: the last is the verdict.

    `answer` is the run's finish answer; `screenshot` the screen that OCR would read (default:
    a fresh observation); `base_dir` the folder file paths are relative to (the task file's);
    `read_text` the OCR that `screen_text` reads the screenshot with."""
    results: list[CheckResult] = []
    _run(check, _Context(executor, answer, screenshot, Path(base_dir), read_text), results)
    return results


def _run(check: Check, ctx: _Context, results: list[CheckResult]) -> CheckResult:
    if isinstance(check, _Group):
        members = [_run(member, ctx, results) for member in check.checks]
        passed = sum(r.ok for r in members)
        ok = passed == len(members) if isinstance(check, All) else passed > 0
        failed = "; ".join(f"{r.check} ({r.why})" for r in members if not r.ok)
        why = f"{passed} of {len(members)} passed" + (f"; failed: {failed}" if failed and not ok else "")
        result = CheckResult(ok, why, check.label())
    else:
        try:
            ok, why = check.judge(ctx)
        except AgentError as exc:  # the executor could not observe: a failure of the world
            ok, why = False, exc.message
        result = CheckResult(ok, why, check.label())
    results.append(result)
    return result
