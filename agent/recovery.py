"""Reading a run directory that a kill may have cut short, for `Trajectory.resume`.

A kill (SIGKILL, a crash, a power cut) can interrupt a run anywhere in a step's write:
after its screenshot and before its line, or in the middle of the line. These helpers find
the part of steps.jsonl that is whole, check that the steps in it follow one another, and
deal with screenshots left without a line. They also hold the writer's lock, so that a
resume never appends to a run that another process is still writing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, TypeVar

from tools.errors import AgentError

try:  # a lock that the kernel drops when its process dies, however it dies (not on Windows)
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = ["check_indices", "check_screenshots", "lock", "whole_lines"]

log = logging.getLogger(__name__)

T = TypeVar("T")


def lock(file: IO[bytes], run_dir: Path) -> None:
    """Hold `file` (steps.jsonl) for this process until it is closed. The kernel lets go when
    the process dies, SIGKILL included, so only a live writer keeps a resume out."""
    if fcntl is None:  # pragma: no cover
        return
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        file.close()
        raise AgentError(f"{run_dir} is being written by a process that is still running: let it end "
                         "(or stop it) before resuming") from None


def whole_lines(data: bytes, parse: Callable[[bytes], T], *, where: Path) -> tuple[list[T], int]:
    """(each line of `data` parsed, the length of the part that holds them). Only the last line
    can be cut short: by a kill during its write (no newline yet: the newline is written last),
    or by a power cut (zeros in place of some of its bytes). It is left out. Any other bad line
    is damage that no kill causes: an error."""
    records: list[T] = []
    start = 0
    while start < len(data):
        end = data.find(b"\n", start)
        if end == -1:
            return records, start  # no newline: incomplete, even if it happens to parse
        last = data[end + 1:].strip(b"\x00 \n\r\t") == b""
        line = data[start:end]
        if line.strip(b"\x00 \r\t"):
            try:
                records.append(parse(line))
            except ValueError:
                if not (last and b"\x00" in line):
                    raise AgentError(f"cannot read the steps in {where}: line {len(records) + 1} is not a "
                                     "step record (damage that a kill does not cause)") from None
                return records, start
        start = end + 1
    return records, start


def check_indices(indices: Sequence[int], where: Path) -> None:
    """The steps of a run go 1, 2, 3...: a resume goes on from the next, with no gap or repeat."""
    for expected, index in enumerate(indices, start=1):
        if index != expected:
            raise AgentError(f"{where}: step {index} where step {expected} should be: only a run whose "
                             "steps go 1, 2, 3... can be resumed")


def check_screenshots(run_dir: Path, screenshots: Iterable[tuple[int, str | None]], last_index: int) -> None:
    """Warn about the screenshot of a recorded step that a power cut lost (only the line is
    fsynced; the step is kept: its action happened, and the model's history is text), and
    remove the screenshot of a step whose line was never written: that step runs again."""
    from PIL import Image, UnidentifiedImageError

    for index, name in screenshots:
        if name is None:
            continue
        try:
            with Image.open(run_dir / name) as image:
                image.verify()
        except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
            log.warning("%s: the screenshot of step %d is lost (%s); the step is kept", run_dir, index, exc)
    for png in run_dir.glob("step-*.png"):
        number = png.stem.removeprefix("step-")
        if number.isdigit() and int(number) > last_index:
            png.unlink(missing_ok=True)
