"""Google-style docstrings -> a tool's description and one description per parameter.

A tool's docstring is the prompt text the model reads: its first paragraph describes the
tool, and its `Args:` section describes each parameter.

    '''Search the web.

    Args:
        query: What to look for.
        limit: How many results
            to return.
    '''

reads as ("Search the web.", {"query": "What to look for.", "limit": "How many results to return."}).
"""

from __future__ import annotations

import re

__all__ = ["parse_docstring"]

_SECTION_RE = re.compile(r"^(Args|Arguments|Parameters|Returns?|Raises|Yields?|Examples?|Notes?):\s*$")
_ARGUMENT_SECTIONS = ("Args", "Arguments", "Parameters")
_PARAMETER_RE = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


def parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """(first paragraph as one line, {parameter: description}) from a Google-style docstring."""
    return _summary(doc.splitlines()), _parameters(doc.splitlines())


def _summary(lines: list[str]) -> str:
    """The first paragraph, joined into one line; it ends at a blank line or a section header."""
    summary: list[str] = []
    for line in lines:
        if not line.strip() or _SECTION_RE.match(line.strip()):
            break
        summary.append(line.strip())
    return " ".join(summary)


def _parameters(lines: list[str]) -> dict[str, str]:
    """{parameter: description} from the `Args:` section, continuation lines joined."""
    params: dict[str, str] = {}
    in_args, current, base_indent = False, None, None
    for line in lines:
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if _SECTION_RE.match(stripped) and indent == 0:
            in_args = stripped.split(":")[0] in _ARGUMENT_SECTIONS
            current, base_indent = None, None
            continue
        if not in_args or not stripped:
            continue
        if indent == 0:  # dedent back to the top level ends the section
            in_args = False
            continue
        if base_indent is None:
            base_indent = indent
        match = _PARAMETER_RE.match(stripped)
        if indent <= base_indent and match:
            current = match.group(1)
            params[current] = match.group(2).strip()
        elif current is not None:  # a continuation line of the current parameter
            params[current] = f"{params[current]} {stripped}".strip()
    return params
