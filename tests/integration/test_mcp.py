"""`internvl-agent mcp`, driven by the `mcp` SDK's own client over stdio and streamable HTTP,
the server a real subprocess with a real headless Chromium on a local page."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import anyio
import pytest

from tests.helpers.http import QuietFiles, serving_folder

pytest.importorskip("mcp")

from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

pytestmark = pytest.mark.browser

PAGES = Path(__file__).parents[1] / "pages"
CLI = ["-c", "from agent.cli import main; main()", "mcp"]
SECRET = "hunter2-very-secret"


class RecordingFiles(QuietFiles):
    """Serves the pages, and records each POST's path (the page reports its clicks so)."""

    posts: ClassVar[list[str]] = []
    lock = threading.Lock()

    def do_POST(self) -> None:
        with self.lock:
            self.posts.append(self.path)
        self.send_response(204)
        self.end_headers()


@pytest.fixture
def site() -> Iterator[str]:
    RecordingFiles.posts = []
    with serving_folder(PAGES, RecordingFiles) as url:
        yield url


def _env(**extra: str) -> dict[str, str]:
    return {"HF_HUB_OFFLINE": "1", "PYTHONPATH": str(Path.cwd()), **extra}


def _text(result: Any) -> str:
    return "\n".join(block.text for block in result.content if block.type == "text")


async def _session_checks(session: ClientSession, site: str) -> None:
    """What both transports must do: tools listed, a screenshot, a grounded click, a refusal."""
    await session.initialize()
    names = {tool.name for tool in (await session.list_tools()).tools}
    assert names >= {"screenshot", "click", "type", "key", "scroll", "drag", "navigate", "ground",
                     "run_script"}
    assert "run_task" not in names  # no --model

    shot = await session.call_tool("screenshot", {})
    assert not shot.is_error
    assert [block.type for block in shot.content] == ["image", "text"]
    assert shot.content[0].mime_type == "image/png"

    grounded = await session.call_tool("ground", {"description": "the Save button"})
    assert not grounded.is_error, _text(grounded)
    where = json.loads(_text(grounded))
    assert where["source"] == "dom"
    x, y = where["point_1000"]

    clicked = await session.call_tool("click", {"x": x, "y": y})
    assert not clicked.is_error, _text(clicked)
    for _ in range(50):  # the page's fetch may land just after the click returns
        if "/clicked" in RecordingFiles.posts:
            break
        await anyio.sleep(0.1)
    assert RecordingFiles.posts == ["/clicked"]
    status = await session.call_tool("ground", {"description": "the text 'clicked'"})
    assert not status.is_error, _text(status)

    refused = await session.call_tool("navigate", {"url": "https://example.org/"})
    assert refused.is_error
    assert "example.org" in _text(refused) and "allowed" in _text(refused)

    bad = await session.call_tool("click", {"x": 1200, "y": 10})
    assert bad.is_error


def test_stdio_session_grounds_clicks_refuses_and_keeps_the_secret(site, tmp_path):
    runs = tmp_path / "runs"
    params = StdioServerParameters(
        command=sys.executable, cwd=str(Path.cwd()),
        args=[*CLI, "--url", f"{site}/mcp.html", "--allow-domain", "127.0.0.1", "--secret", "MCP_PASSWORD",
              "--runs-dir", str(runs)],
        env=_env(MCP_PASSWORD=SECRET))

    async def scenario() -> None:
        with (tmp_path / "server.log").open("w") as errlog:
            async with (stdio_client(params, errlog=errlog) as (read, write),
                        ClientSession(read, write) as session):
                await _session_checks(session, site)
                typed = await session.call_tool("type", {"text": "<secret>MCP_PASSWORD</secret>",
                                                         "target": "the Password field"})
                assert not typed.is_error, _text(typed)
                assert SECRET not in _text(typed)
                length = await session.call_tool("ground", {"description": f"the text 'typed {len(SECRET)} "
                                                            "characters'"})
                assert not length.is_error, _text(length)
                unknown = await session.call_tool("type", {"text": "<secret>nope</secret>"})
                assert unknown.is_error and "nope" in _text(unknown)
                script = await session.call_tool("run_script", {"yaml": "steps:\n  - expect_text: clicked\n"})
                assert not script.is_error, _text(script)

    anyio.run(scenario)
    run_dirs = sorted(path for path in runs.iterdir() if path.is_dir())
    assert run_dirs, "no run directory"
    session_dir = next(path for path in run_dirs
                       if json.loads((path / "run.json").read_text())["kind"] == "mcp")
    record = json.loads((session_dir / "run.json").read_text())
    assert record["outcome"] == "finished"
    steps = [json.loads(line) for line in (session_dir / "steps.jsonl").read_text().splitlines()]
    assert len(steps) >= 9
    assert any((step["grounding"] or {}).get("the Save button", {}).get("source") == "dom" for step in steps)
    assert (session_dir / "report.html").exists()
    for path in runs.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_http(site: str, tmp_path: Path, port: int, *extra: str, env: dict[str, str] | None = None
                ) -> subprocess.Popen[bytes]:
    with (tmp_path / "http.log").open("w") as log:  # the child keeps its own copy
        proc = subprocess.Popen(
            [sys.executable, *CLI, "--url", f"{site}/mcp.html", "--allow-domain", "127.0.0.1",
             "--runs-dir", str(tmp_path / "runs"), "--http", str(port), *extra],
            env={**os.environ, **_env(), **(env or {})}, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, (tmp_path / "http.log").read_text()
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("the MCP server did not start listening")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_http_session_with_a_token_needs_the_bearer(site, tmp_path):
    import httpx2

    token = "t0ken-" + "x" * 20
    port = _free_port()
    proc = _start_http(site, tmp_path, port, "--token-env", "MCP_TOKEN", env={"MCP_TOKEN": token})
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        request = urllib.request.Request(url, method="POST", data=b"{}",
                                         headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code == 401

        async def scenario() -> None:
            async with (httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60) as http,
                        streamable_http_client(url, http_client=http) as (read, write),
                        ClientSession(read, write) as session):
                await _session_checks(session, site)

        anyio.run(scenario)
    finally:
        _stop(proc)
    assert proc.returncode == 0, (tmp_path / "http.log").read_text()
    (run_dir,) = (tmp_path / "runs").iterdir()  # SIGTERM ends the session's run, report and all
    assert json.loads((run_dir / "run.json").read_text())["outcome"] == "finished"
    assert (run_dir / "report.html").exists()


def test_http_off_loopback_without_a_token_refuses_to_start(tmp_path):
    proc = subprocess.run([sys.executable, *CLI, "--url", "http://127.0.0.1:9/", "--http", "8765",
                           "--host", "0.0.0.0"], env={**os.environ, **_env()}, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--token-env" in lines[0], proc.stderr


def test_in_process_an_action_needing_approval_is_refused_and_run_task_reports_each_step(site, tmp_path):
    from mcp.client import Client

    from agent.grounding.dom import DOMGrounder
    from agent.mcp.server import Worker, build_server
    from agent.mcp.session import GuiSession
    from agent.safety import SafetyPolicy
    from model.scripted import ScriptedModel
    from tools.actions import Type
    from tools.browser import BrowserExecutor

    def typing_needs_approval(action: Any, observation: Any) -> str | None:
        return "typing into a page needs a person's OK" if isinstance(action, Type) else None

    # The Save button's centre, (120, 65) CSS pixels of 1280x720, in 0..1000.
    model = ScriptedModel([
        '<tool_call>{"name": "click", "arguments": {"x": 94, "y": 90}}</tool_call>',
        '<tool_call>{"name": "finish", "arguments": {"answer": "saved"}}</tool_call>',
    ])
    safety = SafetyPolicy(allowed_domains=["127.0.0.1"], confirm_when=typing_needs_approval, loop_limit=None)
    worker = Worker()

    def open_session() -> GuiSession:
        executor = BrowserExecutor(start_url=f"{site}/mcp.html", allowed_domains=["127.0.0.1"]).__enter__()
        return GuiSession(executor, DOMGrounder(executor), safety=safety, runs_dir=tmp_path, model=model)

    def close(session: GuiSession) -> None:
        session.close()
        session.executor.close()

    session = worker.call(open_session)
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total, message))

    async def scenario() -> None:
        async with Client(build_server(session, worker)) as client:
            refused = await client.call_tool("type", {"text": "hello", "target": "the Password field"})
            assert refused.is_error
            assert "approval" in _text(refused) and "typing into a page" in _text(refused)
            done = await client.call_tool("run_task", {"goal": "Save", "max_steps": 4},
                                          progress_callback=on_progress)
            assert not done.is_error, _text(done)
            assert "finished after 2 steps: saved" in _text(done)

    try:
        anyio.run(scenario)
    finally:
        worker.call(close, session)
        worker.shutdown()
    assert [message.split(":")[0] for _, _, message in progress if message] == ["step 1", "step 2"]
    assert all(total == 4 for _, total, _ in progress)
    assert RecordingFiles.posts == ["/clicked"]
