"""Task files: one YAML schema for a goal that a model works towards, and for a script.

    name: signup
    goal: Create an account for Ada Lovelace     # what a model-driven run is asked to do
    start:
      serve: pages/            # a folder served on 127.0.0.1 at a free port (relative to this file)
      path: signup.html        # the page to open on it
      # or  url: https://example.org/
      # or  command: [python3, app.py]   the desktop: start a program, wait for its window
    allowed_domains: [127.0.0.1]   # for the SafetyPolicy and the browser both
    strict: false              # true: every request of the page too (images, scripts, fetch, ...)
    max_steps: 15              # a model-driven run's limit
    timeout: 10                # seconds a script step may wait for its target
    steps:                     # optional; with steps, the file is a script (tasks/steps.py)
      - click: the Create account button
      - expect_text: Account created
    success:                   # checked after the run, whatever its outcome (tasks/checks.py)
      url_matches: '.*/welcome\\.html'

A task needs a goal, steps, or both. Without `start` (and without `--url` on the command
line) it runs on this desktop. A bad file is one TaskError line, "file:line: what is wrong:
what to write instead", raised before anything starts.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tasks.checks import Check, parse_check
from tasks.steps import ScriptStep, parse_step
from tasks.yamlfile import Source, read_yaml
from tools.browser.domains import DomainAllowlist
from tools.errors import AgentError, TaskError
from tools.validation import format_validation_error

__all__ = ["KEYS", "Start", "Task"]

KEYS = ("name", "goal", "start", "allowed_domains", "strict", "max_steps", "timeout", "steps", "success")
SERVED_HOST = "127.0.0.1"


class Start(BaseModel):
    """Where a task starts: one of `serve` (with `path`), `url` or `command`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    serve: str | None = None
    path: str = ""
    url: str | None = None
    command: tuple[str, ...] | None = None

    @field_validator("path")
    @classmethod
    def _inside(cls, path: str) -> str:
        page = PurePosixPath(path.split("?", 1)[0].split("#", 1)[0])
        if page.is_absolute() or ".." in page.parts or "\\" in path:
            raise ValueError(f"{path!r} must stay inside the served folder: give it relative, without '..'")
        return path

    @field_validator("url")
    @classmethod
    def _a_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://", "file://")):
            raise ValueError(f"{url!r} is not a URL: give one that starts with http://, https:// or file://")
        return url

    @field_validator("command")
    @classmethod
    def _a_program(cls, command: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if command is not None and (not command or not all(command)):
            raise ValueError("give a program and its arguments, such as [python3, app.py]")
        return command

    @model_validator(mode="after")
    def _one_start(self) -> Start:
        given = [key for key in ("serve", "url", "command") if getattr(self, key) is not None]
        if len(given) != 1:
            raise ValueError("give one of serve (a folder, with path), url, or command (a program and "
                             f"its arguments), not {' and '.join(given) or 'none'}")
        if self.path and self.serve is None:
            raise ValueError("path is the page to open in a served folder: use it with serve")
        return self

    @property
    def browser(self) -> bool:
        """Whether the task runs in a browser (serve or url) rather than on the desktop."""
        return self.command is None


class Task(BaseModel):
    """A validated task file. `source` is the file, which relative paths are resolved against."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True,
                              coerce_numbers_to_str=True)
    noun: ClassVar[str] = "task file"

    name: str = Field(default="task", min_length=1, max_length=200)
    goal: str | None = Field(default=None, min_length=1, max_length=10_000)
    start: Start | None = None
    allowed_domains: tuple[str, ...] | None = None
    strict: bool = False  # hold every request of the page to allowed_domains, not only navigations
    max_steps: int = Field(default=15, ge=1, le=10_000)
    timeout: float = Field(default=10.0, gt=0, le=600)
    steps: tuple[ScriptStep, ...] | None = None
    success: Check | None = None
    source: Path | None = None

    @property
    def folder(self) -> Path:
        """The folder that the task's relative paths start from: its file's, or the current one."""
        return self.source.parent if self.source is not None else Path.cwd()

    @property
    def browser(self) -> bool:
        """Whether the task runs in a browser (it starts at a URL or a served folder)."""
        return self.start is not None and self.start.browser

    def replace(self, **changes: Any) -> Task:
        """This task with `changes` (from the command line, say), checked as a file's would be."""
        source = Source(str(self.source or self.noun))
        task: Task = _validated(type(self), {**dict(self), **changes}, source, ())
        task._check(source)
        return task

    def starting_at(self, url: str) -> Task:
        """This task, started at `url` instead (the command line's --url)."""
        _check_allowed(url, self.allowed_domains, f"--url {url}")
        return self.replace(start=_validated(Start, {"url": url}, Source("--url"), ()))

    @classmethod
    def load(cls, path: Path | str) -> Task:
        """Read a task file; TaskError (one line, with the line number) says what is wrong."""
        path = Path(path)
        data, source = read_yaml(path, noun=cls.noun)
        return cls.parse(data, source=source, path=path)

    @classmethod
    def parse(cls, data: Any, *, source: Source | str | None = None, path: Path | None = None) -> Task:
        """A Task from data as a YAML file holds it; `source` names it in errors."""
        if not isinstance(source, Source):
            source = Source(source or str(path or cls.noun))
        if not isinstance(data, dict):
            raise TaskError(f"{source.at()}: a {cls.noun} is a mapping of {', '.join(KEYS)} "
                            "(see tasks/spec.py)")
        unknown = [key for key in data if key not in KEYS]
        if unknown:
            names = [str(key) for key in unknown]
            raise TaskError(f"{source.at(unknown[0])}: unknown key(s) {names}: the keys are "
                            f"{', '.join(KEYS)}")
        fields = dict(data)
        if path is not None:
            fields.setdefault("name", path.stem)
        if fields.get("steps") is not None:
            fields["steps"] = _parse_steps(fields["steps"], source)
        if fields.get("success") is not None:
            fields["success"] = parse_check(fields["success"], source)
        if isinstance(fields.get("start"), dict):
            fields["start"] = _validated(Start, fields["start"], source, ("start",))
        task = _validated(cls, {**fields, "source": path}, source, ())
        task._check(source)
        return task

    def _check(self, source: Source) -> None:
        """What the fields cannot say alone: a goal or steps; a start on the allowed domains."""
        if self.goal is None and self.steps is None:
            raise TaskError(f"{source.at()}: give `goal:` (what a model should do), `steps:` (a script), "
                            "or both")
        if self.strict and self.allowed_domains is None:
            raise TaskError(f"{source.at('strict')}: strict holds every request to allowed_domains: "
                            "give allowed_domains too")
        if self.allowed_domains is not None:
            try:
                DomainAllowlist(self.allowed_domains)
            except AgentError as exc:
                raise TaskError(f"{source.at('allowed_domains')}: {exc.message}") from None
        start = self.start
        if start is None:
            return
        if start.serve is not None:
            folder = self.folder / start.serve
            if not folder.is_dir():
                raise TaskError(f"{source.at('start', 'serve')}: serve {start.serve!r} is not a folder "
                                f"(looked for {folder}): give a folder relative to the task file")
            url, what = f"http://{SERVED_HOST}/", f"start.serve (pages served on {SERVED_HOST})"
        else:
            url, what = start.url or "", f"start.url {start.url}"
        if start.browser:
            try:
                _check_allowed(url, self.allowed_domains, what)
            except TaskError as exc:
                raise TaskError(f"{source.at('start')}: {exc.message}") from None


def _parse_steps(raw: Any, source: Source) -> tuple[ScriptStep, ...]:
    if not isinstance(raw, list) or not raw:
        raise TaskError(f"{source.at('steps')}: steps is a non-empty list of `action: value` pairs, "
                        "such as `- click: the OK button` (or leave steps out)")
    return tuple(parse_step(step, f"{source.at('steps', n)}: step {n + 1}") for n, step in enumerate(raw))


def _validated(model: type[Any], fields: dict[str, Any], source: Source, loc: tuple[Any, ...]) -> Any:
    """`model(**fields)`, or a TaskError that names the line of the first field at fault."""
    try:
        return model(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]["loc"] if exc.errors() else ()
        raise TaskError(f"{source.at(*loc, *first)}: {format_validation_error(exc, model=model)}") from None
    except TypeError as exc:  # a key that is not a string
        raise TaskError(f"{source.at(*loc)}: {exc}") from None


def _check_allowed(url: str, domains: tuple[str, ...] | None, what: str) -> None:
    """TaskError when `url` (`what` names it) is off `domains`."""
    if domains is not None and DomainAllowlist(domains).refusal(url) is not None:
        raise TaskError(f"{what} is off allowed_domains ({', '.join(domains)}): add its host to them, or "
                        "start on one of them")
