"""Chromium's sandbox: on wherever it can start, off as root, and a clear error when forced
on where it cannot start. Against the real Chromium; the unprivileged case runs a child
Python as `nobody` (through setpriv) when the tests run as root.

Whether a process is really sandboxed is read from /proc: Chromium's sandboxed processes
run under a seccomp-bpf filter ("Seccomp: 2" in /proc/PID/status); unsandboxed, none does.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.browser import BrowserExecutor
from tools.errors import ExecutorError

pytestmark = pytest.mark.browser

IS_ROOT = os.geteuid() == 0
NOBODY = 65534
REPO = Path(__file__).resolve().parents[2]


def chromium_seccomp(ancestor: int) -> dict[int, int]:
    """The Chromium processes below `ancestor` (its whole process tree, not other tests'),
    each with its seccomp mode: 2 for a filtered (sandboxed) process, 0 for none."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:  # ended while we looked
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found: dict[int, int] = {}
    stack = list(children.get(ancestor, []))
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        if comm.startswith("chrom"):
            seccomp = next(line for line in status.splitlines() if line.startswith("Seccomp:"))
            found[pid] = int(seccomp.split()[1])
    return found


# -- as root --------------------------------------------------------------------------

root_only = pytest.mark.skipif(not IS_ROOT, reason="checks what happens when the tests run as root")


@pytest.fixture(scope="module")
def root_default() -> Iterator[BrowserExecutor]:
    with BrowserExecutor() as executor:
        yield executor


@root_only
def test_default_as_root_runs_without_sandbox_and_loads_pages(
    root_default: BrowserExecutor, page_server: str
) -> None:
    assert root_default.sandboxed is False
    root_default.page.goto(f"{page_server}/playground.html")
    observation = root_default.observe()
    assert observation.url.endswith("/playground.html") and observation.image.size == (1280, 720)
    modes = chromium_seccomp(os.getpid())
    assert modes and set(modes.values()) == {0}, "sandboxed reports False, so no process may be filtered"


@root_only
def test_forced_sandbox_as_root_raises_actionable_error_and_leaves_no_process(
    root_default: BrowserExecutor,
) -> None:
    before = set(chromium_seccomp(os.getpid()))  # root_default's browser stays up
    executor = BrowserExecutor(sandbox=True)
    assert executor.sandboxed is True
    with pytest.raises(ExecutorError) as caught:
        executor.observe()
    message = str(caught.value)
    assert message.startswith("Chromium could not start its sandbox (Running as root")
    assert "pass sandbox=False" in message and "Call log" not in message and "\n" not in message
    # Playwright reports the failure after the process exited; its children may take a moment.
    deadline = time.monotonic() + 5
    while (left := set(chromium_seccomp(os.getpid())) - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left, f"Chromium processes left behind: {sorted(left)}"
    with pytest.raises(ExecutorError, match="closed"):
        executor.observe()  # a failed start leaves the executor closed, not half-started


# -- as an unprivileged user ------------------------------------------------------------

CHILD = """
import json, sys
from tools.browser import BrowserExecutor
from tools.errors import ExecutorError
try:
    with BrowserExecutor(start_url="data:text/html,<title>loaded</title>") as browser:
        title = browser.observe().title
        print(json.dumps({"sandboxed": browser.sandboxed, "title": title}), flush=True)
        sys.stdin.read()  # keep the browser up while the parent inspects its processes
except ExecutorError as exc:
    print(json.dumps({"error": str(exc)}), flush=True)
"""


def _as_unprivileged(argv: list[str]) -> list[str]:
    if not IS_ROOT:
        return argv  # we already are an unprivileged user
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root and setpriv (util-linux) is not installed to drop to nobody")
    return [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv]


def _runs(argv: list[str], env: dict[str, str]) -> bool:
    return subprocess.run(argv, env=env, capture_output=True, timeout=60).returncode == 0


@pytest.fixture(scope="module")
def unprivileged() -> Iterator[tuple[list[str], dict[str, str]]]:
    """How to run Python as an unprivileged user (argv prefix, environment), with the
    project and its dependencies importable and a HOME it can write."""
    home = tempfile.mkdtemp(prefix="sandbox-home-")
    if IS_ROOT:
        os.chown(home, NOBODY, NOBODY)
    env = {"PATH": "/usr/bin:/bin", "HOME": home}
    # The venv's interpreter may sit under /root, which nobody cannot enter; Debian's
    # python of the same version can import the venv's packages instead.
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    paths = os.pathsep.join([str(REPO), *site.getsitepackages()])
    try:
        for python in (sys.executable, f"/usr/bin/{version}"):
            argv = _as_unprivileged([python])
            if _runs([*argv, "-c", "import playwright, PIL, pydantic"], {**env, "PYTHONPATH": paths}):
                yield argv, {**env, "PYTHONPATH": paths}
                return
        pytest.skip(f"no {version} that user {NOBODY} can run with this venv's packages")
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_default_as_unprivileged_user_is_sandboxed_where_user_namespaces_allow(
    unprivileged: tuple[list[str], dict[str, str]],
) -> None:
    argv, env = unprivileged
    # Debian's Chromium has no setuid helper, so its sandbox needs user namespaces.
    userns = _runs(_as_unprivileged(["unshare", "--user", "true"]), env)
    with subprocess.Popen(
        [*argv, "-c", CHILD], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as child:
        killer = threading.Timer(90, child.kill)  # a hung child fails the test instead of hanging it
        killer.start()
        try:
            assert child.stdout is not None and child.stdin is not None
            line = child.stdout.readline()
            assert line, "the child Python ended without a report"
            report = json.loads(line)
            modes = chromium_seccomp(child.pid)
            child.stdin.close()  # the child closes its browser and exits
            assert child.wait() == 0
        finally:
            killer.cancel()
            child.kill()  # a no-op once it has exited
    if userns:
        assert report == {"sandboxed": True, "title": "loaded"}
        assert 2 in modes.values(), f"no sandboxed (seccomp-filtered) Chromium process: {modes}"
    else:
        assert report["error"].startswith("Chromium could not start its sandbox (")
        assert "pass sandbox=False" in report["error"]
