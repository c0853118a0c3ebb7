"""Redaction: every spelling of a secret value, replaced before text leaves the agent.

A value comes back in more spellings than it was given in: a browser sends a form with
GET and the URL holds it percent-encoded (`hunter2%7E*pass`); a record holds it escaped
for JSON, a report escaped for HTML; a model writes it upper-cased or in base64. One
`Redactor`, built from the values, finds them all:

- Per character, any of: the character in any case; percent-encoded (its UTF-8 bytes in
  upper or lower hex, `+` for a space, `%25` for an encoding encoded again, JavaScript
  escape()'s `%FC` and `%uXXXX`, windows-1252 as a form on a page with no charset sends
  it); an HTML reference (named, decimal or hex, with or without its `;`, itself escaped
  as `&amp;` or percent-encoded as a form sends it); a backslash escape (JSON, Python,
  JavaScript: `\\"`, `\\u00fc`, `\\xfc`, `\\U0001f600`, a surrogate pair), the backslash
  doubled or percent-encoded. The characters of one value may mix spellings, which covers
  every form encoding at once: encodeURIComponent, Chromium's x-www-form-urlencoded (`*`
  kept, `~` encoded), `quote` and `quote_plus`. A character that is not ASCII may also have
  been decoded in the wrong charset (U+FFFD, or its UTF-8 bytes read as windows-1252: "Ã¶").
- Base64 of the value's UTF-8 bytes, as given, upper- and lower-cased: standard and
  URL-safe, padded or not, alone or at any of the three alignments inside a longer stream.
- A prefix of at least MIN_FRAGMENT characters followed by an ellipsis ("..." or "…"):
  text cut short before it was redacted. Code must still redact before it cuts (a cut
  without a mark cannot be recognised); this is the backstop.

Matching ignores case. A value becomes REDACTED, or with `placeholders=True` its own
`<secret>name</secret>` when it has a name (what the model is shown).

`redacting_logs(redactor)` redacts every log record made while it is active.
"""

from __future__ import annotations

import base64
import html.entities
import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any

__all__ = ["MIN_FRAGMENT", "REDACTED", "Redactor", "redacting_logs"]

REDACTED = "[secret]"
MIN_FRAGMENT = 8  # characters of a value, cut short, that are still redacted
_MIN_BASE64 = 6  # base64 shorter than this is as likely to be anything else

_BACKSLASH = r"(?:\\|%5c)+"  # one or more: JSON inside JSON, or inside a URL
_AMP = r"(?:&|%26)(?:amp;|amp%3b)*"  # an HTML reference's &, maybe escaped again or percent-encoded
_SEMI = r"(?:;|%3b)?"
_SHORT_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "/": "/", "\b": "b", "\f": "f", "\n": "n", "\r": "r",
                  "\t": "t", "\v": "v", "\0": "0"}
_CUT = re.compile(r"\s*(?:\.\.\.|…)")


@cache
def _html_names() -> dict[str, tuple[str, ...]]:
    """Each character's HTML5 entity names, lower-cased and without `;` (matching ignores case)."""
    names: dict[str, set[str]] = {}
    for name, char in html.entities.html5.items():
        if len(char) == 1:
            names.setdefault(char, set()).add(name.rstrip(";").lower())
    return {char: tuple(sorted(found, key=len, reverse=True)) for char, found in names.items()}


def _group(alternatives: Iterable[str]) -> str:
    return "(?:" + "|".join(dict.fromkeys(alternatives)) + ")"


def _html(chars: Iterable[str]) -> str:
    """An HTML reference to any of `chars`: decimal, hex or named."""
    chars = list(chars)
    numbers = [f"x0*{ord(c):x}" for c in chars] + [f"0*{ord(c)}" for c in chars]
    names = [re.escape(name) for c in chars for name in _html_names().get(c, ())]
    return _AMP + _group([r"(?:#|%23)" + _group(numbers), *names]) + _SEMI


def _one_of(chars: list[str]) -> str:
    """Any one spelling of any of `chars` (one character, in its case variants), encoded
    spellings first, so that a value's last character takes the longest ("&amp;", not "&")."""
    percent, escapes = [], []
    for c in chars:
        cp = ord(c)
        percent.append("%(?:25)*".join(f"{byte:02x}" for byte in c.encode("utf-8", "surrogatepass")))
        if 0x80 <= cp < 0x100:
            percent.append(f"{cp:02x}")  # escape(): Latin-1
        if cp >= 0x80 and len(legacy := c.encode("cp1252", "ignore")) == 1:
            percent.append(f"{legacy[0]:02x}")  # a form on a page with no charset: windows-1252
        if cp < 0x10000:
            percent.append(f"u{cp:04x}")  # escape(): the rest
        units = [cp] if cp < 0x10000 else [0xD800 + ((cp - 0x10000) >> 10), 0xDC00 + ((cp - 0x10000) & 0x3FF)]
        escapes += [_BACKSLASH.join(f"u{unit:04x}" for unit in units), rf"u\{{0*{cp:x}\}}"]
        escapes += [f"U{cp:08x}"] if cp >= 0x10000 else []
        escapes += [f"x{cp:02x}"] if cp < 0x100 else []
        if (short := _SHORT_ESCAPES.get(c)) is not None:
            escapes += [re.escape(short)] + ([_html(short)] if short in "\"'/" else [])
    spellings = ["%(?:25)*" + _group(percent), _html(chars), _BACKSLASH + _group(escapes)]
    for c in chars:
        if ord(c) >= 0x80:  # decoded in the wrong charset: as U+FFFD, or UTF-8 read as windows-1252
            utf8 = c.encode("utf-8", "surrogatepass")
            misread = (re.escape(utf8.decode(charset, "replace")) for charset in ("cp1252", "latin-1"))
            spellings += ["\ufffd{1,4}", *misread]
    if " " in chars:
        spellings += [r"\+", "%(?:25)*2b"]
    return _group(spellings + [re.escape(c) for c in chars])


@cache
def _char(c: str) -> str:
    """A regex for `c` in any case and any one spelling."""
    variants = list(dict.fromkeys((c, c.lower(), c.upper(), c.casefold())))
    single = [v for v in variants if len(v) == 1]
    longer = ["".join(_one_of([ch]) for ch in v) for v in variants if len(v) > 1]  # "ß".upper() == "SS"
    return _group([_one_of(single), *longer]) if longer else _one_of(single)


def _first_chars(c: str) -> set[str]:
    """The characters that a spelling of `c` can begin with."""
    firsts = {v[0] for v in (c, c.lower(), c.upper(), c.casefold())} | {"%", "&", "\\"}
    return firsts | ({"+"} if c == " " else set())


def _base64(value: str) -> list[str]:
    """The value's base64 spellings, longest first."""
    found: set[str] = set()
    for variant in dict.fromkeys((value, value.upper(), value.lower())):
        data = variant.encode("utf-8", "surrogatepass")
        for shift in range(3):  # bytes before the value in the stream, modulo 3
            encoded = base64.b64encode(bytes(shift) + data).decode("ascii")
            # The characters made of the value's bits alone: from ceil(8*shift/6) to floor(8*end/6).
            core = encoded[-(-8 * shift // 6): 8 * (shift + len(data)) // 6]
            for spelling in ([encoded, encoded.rstrip("="), core] if shift == 0 else [core]):
                if len(spelling.rstrip("=")) >= _MIN_BASE64:
                    found |= {spelling, spelling.translate(str.maketrans("+/", "-_"))}
    return sorted(found, key=len, reverse=True)


@cache
def _char_pattern(c: str) -> re.Pattern[str]:
    return re.compile(_char(c), re.IGNORECASE)


@dataclass(frozen=True)
class _Secret:
    value: str
    name: str | None


@dataclass(frozen=True)
class _Compiled:
    """A Redactor's values as patterns. Scanning for `first`, then trying `pattern` only
    there, is what keeps redaction fast: most characters cannot begin a spelling."""

    first: re.Pattern[str]  # a character that a spelling of some value can begin with
    pattern: re.Pattern[str]  # the spellings, each value its own group s<i>: secrets[i]
    secrets: list[_Secret]  # the longest first: where one value holds another, all of it goes
    base64: list[tuple[str, _Secret]]  # exact and case-sensitive, the longest first
    written: re.Pattern[str]  # what redaction writes: REDACTED and the placeholders of these names
    heads: list[tuple[re.Pattern[str], str]]  # the first MIN_FRAGMENT characters of a longer value


class Redactor:
    """Secret values, and the means to remove every spelling of them from text.

    `secrets`: values, or a mapping of names to values. With `placeholders=True`, a named
    value becomes `<secret>name</secret>` instead of REDACTED. `add` registers more values
    as they become known.
    """

    def __init__(self, secrets: Mapping[str, str] | Iterable[str] = (), *,
                 placeholders: bool = False) -> None:
        self.placeholders = placeholders
        self._secrets: list[_Secret] = []
        self._compiled: _Compiled | None = None
        pairs = secrets.items() if isinstance(secrets, Mapping) else ((None, value) for value in secrets)
        for name, value in pairs:
            self.add(value, name)

    def add(self, value: str, name: str | None = None) -> bool:
        """Redact `value` from now on; False if it is empty or already known."""
        if not value or any(secret.value == value for secret in self._secrets):
            return False
        self._secrets.append(_Secret(value, name))
        self._compiled = None
        return True

    @property
    def values(self) -> tuple[str, ...]:
        return tuple(secret.value for secret in self._secrets)

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def __repr__(self) -> str:  # never the values: a repr ends up in logs and tracebacks
        return f"Redactor({len(self._secrets)} values, placeholders={self.placeholders})"

    def text(self, text: str) -> str:
        """`text` with every spelling of every value replaced (see the module docstring).
        What redaction wrote (REDACTED, a known placeholder) is left as it is, so redacting
        twice changes nothing."""
        if not self._secrets or not text:
            return text
        compiled = self._patterns()
        out: list[str] = []
        copied = 0
        for start, end, shown in self._spans(text, compiled):
            out += [text[copied:start], shown]
            copied = end
        return "".join(out) + text[copied:] if out else text

    def _spans(self, text: str, compiled: _Compiled) -> Iterator[tuple[int, int, str]]:
        """(start, end, replacement) of each spelling in `text`, in order, none overlapping."""
        fixed = [(m.start(), m.end(), m.group(0)) for m in compiled.written.finditer(text)]
        for spelling, secret in compiled.base64:  # exact strings: str.find is the fast way
            at = text.find(spelling)
            while at >= 0:
                if not any(start < at + len(spelling) and at < end for start, end, _ in fixed):
                    fixed.append((at, at + len(spelling), self._replacement(secret)))
                at = text.find(spelling, at + 1)
        fixed.sort()
        pos = 0
        for gap_end, after, shown in [*fixed, (len(text), len(text), "")]:
            while (hit := compiled.first.search(text, pos, gap_end)) is not None:
                start = hit.start()
                if (match := compiled.pattern.match(text, start, gap_end)) is not None:
                    end, secret = match.end(), compiled.secrets[int(str(match.lastgroup)[1:])]
                    yield start, end, self._replacement(secret)
                elif (cut := _cut_prefix(text, start, gap_end, compiled.heads)) is not None:
                    end = cut
                    yield start, end, REDACTED
                else:
                    end = start + 1
                pos = end
            if after > gap_end:
                yield gap_end, after, shown
            pos = after

    def value(self, value: Any) -> Any:
        """`value` (JSON-like: str, dict, list, tuple, scalars) with `text` applied to every
        string in it, dictionary keys included."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.value(k): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.value(v) for v in value)
        return value

    def _replacement(self, secret: _Secret) -> str:
        return f"<secret>{secret.name}</secret>" if self.placeholders and secret.name else REDACTED

    def _patterns(self) -> _Compiled:
        compiled = self._compiled
        if compiled is None:
            secrets = sorted(self._secrets, key=lambda secret: len(secret.value), reverse=True)
            spelled = ["".join(_char(c) for c in secret.value) for secret in secrets]
            firsts = set().union(*(_first_chars(secret.value[0]) for secret in secrets))
            base64 = [(spelling, secret) for secret in secrets for spelling in _base64(secret.value)]
            compiled = _Compiled(
                first=re.compile(_group(re.escape(c) for c in sorted(firsts)), re.IGNORECASE),
                pattern=re.compile("|".join(f"(?P<s{i}>{p})" for i, p in enumerate(spelled)), re.IGNORECASE),
                secrets=secrets,
                base64=sorted(base64, key=lambda pair: len(pair[0]), reverse=True),
                written=re.compile("|".join(re.escape(shown) for shown in {
                    REDACTED, *(f"<secret>{s.name}</secret>" for s in secrets if s.name)})),
                heads=[(re.compile("".join(map(_char, s.value[:MIN_FRAGMENT])), re.IGNORECASE),
                        s.value[MIN_FRAGMENT:]) for s in secrets if len(s.value) > MIN_FRAGMENT],
            )
            self._compiled = compiled
        return compiled


def _cut_prefix(text: str, start: int, stop: int, heads: list[tuple[re.Pattern[str], str]]) -> int | None:
    """Where a prefix of a value (MIN_FRAGMENT characters or more) that starts at `start`
    and ends in an ellipsis ends, if one does: text cut short before it was redacted."""
    for head, rest in heads:
        if (match := head.match(text, start, stop)) is None:
            continue
        end = match.end()
        for c in rest:
            if (more := _char_pattern(c).match(text, end, stop)) is None:
                break
            end = more.end()
        if _CUT.match(text, end):
            return end
    return None


# -- logs -----------------------------------------------------------------------------------

_active: tuple[Redactor, ...] = ()
_lock = threading.Lock()


@contextmanager
def redacting_logs(redactor: Redactor) -> Iterator[None]:
    """While active, every log record has the values redacted as it is made: its message
    (arguments merged in), its traceback and its stack, whatever logger, handler or thread.

    A record factory, not a logging.Filter: a filter on a logger sees only that logger's own
    records (not its children's), and one on handlers misses handlers added later and
    loggers that do not propagate; redacting at each call site misses the libraries'
    (Playwright's, the browser executor's) and any added later. Every record is made by the
    factory, so none is missed."""
    global _active
    with _lock:
        _install()
        _active = (*_active, redactor)
    try:
        yield
    finally:
        with _lock:
            remaining = list(_active)
            remaining.remove(redactor)
            _active = tuple(remaining)
            current = logging.getLogRecordFactory()
            if not _active and getattr(current, "_redacts", False):
                logging.setLogRecordFactory(current._previous)  # type: ignore[attr-defined]


def _install() -> None:
    """Wrap the current record factory, unless it is already ours."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "_redacts", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        for redactor in _active:
            _redact_record(record, redactor.text)
        return record

    factory._redacts = True  # type: ignore[attr-defined]
    factory._previous = previous  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def _redact_record(record: logging.LogRecord, redact: Callable[[str], str]) -> None:
    try:
        message = record.getMessage()
    except Exception:  # arguments that do not fit the message: logging reports it on emit
        return
    if (clean := redact(message)) != message:
        record.msg, record.args = clean, None
    if record.exc_info and record.exc_info[0] is not None:
        trace = logging.Formatter().formatException(record.exc_info)
        if (clean := redact(trace)) != trace:
            record.exc_info, record.exc_text = None, clean  # a Formatter prints exc_text as it is
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
