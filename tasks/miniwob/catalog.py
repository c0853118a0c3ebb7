"""Where MiniWoB++'s task pages are, which tasks exist, and the address of each.

The pages come from the `miniwob` package on PyPI (`pip install 'internvl-agent[miniwob]'`):
`miniwob/html/miniwob/<name>.html`, one page a task, opened as `file://`, and the four
FlightWoB tasks `flight.<site>` (`miniwob/html/flight/<site>/wrapper.html`), which only work
over HTTP. The package is found without importing it: its own `__init__` pulls in
gymnasium and Selenium, which running the pages does not need.
"""

from __future__ import annotations

import difflib
import importlib.util
from collections.abc import Iterable
from functools import cache
from pathlib import Path

from tools.errors import TaskError

__all__ = ["FLIGHT_PREFIX", "html_root", "is_flight", "resolve_tasks", "task_names", "task_path"]

FLIGHT_PREFIX = "flight."
INSTALL_HINT = "pip install 'internvl-agent[miniwob]' (or: pip install miniwob)"


@cache
def html_root() -> Path:
    """The `html/` folder of the installed miniwob package (core/, common/, miniwob/, flight/)."""
    spec = importlib.util.find_spec("miniwob")  # a top-level find_spec does not run the package
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        root = Path(location) / "html"
        if (root / "miniwob").is_dir() and (root / "core" / "core.js").is_file():
            return root
    raise TaskError(f"MiniWoB++'s task pages are not installed: {INSTALL_HINT}")


@cache
def task_names() -> tuple[str, ...]:
    """Every task, sorted: the MiniWoB pages by file name, then `flight.<site>`."""
    root = html_root()
    pages = sorted(path.stem for path in (root / "miniwob").glob("*.html"))
    flights = sorted(FLIGHT_PREFIX + path.parent.name for path in (root / "flight").glob("*/wrapper.html"))
    return (*pages, *flights)


def is_flight(name: str) -> bool:
    return name.startswith(FLIGHT_PREFIX)


def task_path(name: str) -> Path:
    """The page file of task `name` (TaskError for an unknown name)."""
    resolve_tasks([name])
    root = html_root()
    if is_flight(name):
        return root / "flight" / name.removeprefix(FLIGHT_PREFIX) / "wrapper.html"
    return root / "miniwob" / f"{name}.html"


def resolve_tasks(names: str | Iterable[str]) -> list[str]:
    """Task names as given, checked: "all" (or ["all"]) is every task; a comma-separated
    string is split. An unknown name raises TaskError naming the nearest ones that exist."""
    if isinstance(names, str):
        names = [part for part in names.split(",")]
    wanted = [name.strip() for name in names if name.strip()]
    known = task_names()
    if not wanted:
        raise TaskError(f"no MiniWoB task given: name some ({_some(known)}) or 'all'")
    if wanted == ["all"]:
        return list(known)
    unknown = [name for name in wanted if name not in known]
    if unknown:
        near = sorted({match for name in unknown for match in difflib.get_close_matches(name, known, n=4)})
        hint = f"did you mean {', '.join(near)}? " if near else ""
        raise TaskError(
            f"unknown MiniWoB task{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}: {hint}"
            f"the {len(known)} tasks include {_some(known)}; pass 'all' for every one"
        )
    return list(dict.fromkeys(wanted))  # in the order given, once each


def _some(known: tuple[str, ...], count: int = 8) -> str:
    step = max(1, len(known) // count)
    return ", ".join(known[::step][:count]) + ", ..."
