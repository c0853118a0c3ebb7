"""`internvl-agent mcp`: one browser (or this desktop) offered to an MCP client as tools.

stdio by default (a client starts this command); `--http PORT` serves streamable HTTP at
http://HOST:PORT/mcp instead. Off loopback, a bearer token is required (`--token-env NAME`).
"""

from __future__ import annotations

import ipaddress
import os
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from agent.cli.app import app
from agent.cli.common import MODEL_HELP, BaseUrl, RunsDir, check_url, load_model, secrets_from_environment
from tools.errors import AgentError

__all__ = ["mcp"]

INSTALL_HINT = "the MCP server needs the `mcp` SDK: pip install 'internvl-agent[mcp]'"


@app.command()
def mcp(
    url: Annotated[str | None, typer.Option(
        help="Serve a browser that starts here. Without it, this desktop (needs a display).")] = None,
    allow_domain: Annotated[list[str] | None, typer.Option(
        help="Keep the browser on this domain and its subdomains; repeatable. Default: any site.")] = None,
    strict: Annotated[bool, typer.Option(
        help="Hold every request of the page to --allow-domain, not only where its tabs go.")] = False,
    display: Annotated[str | None, typer.Option(
        help="The X display of the desktop (default: $DISPLAY).")] = None,
    headed: Annotated[bool, typer.Option(help="Show the browser window.")] = False,
    secret: Annotated[list[str] | None, typer.Option(
        help="The name of an environment variable holding a secret that the client types as "
        "<secret>NAME</secret> without ever seeing it; never written to disk. Repeatable.")] = None,
    runs_dir: RunsDir = Path("runs"),
    model: Annotated[str | None, typer.Option(
        help=MODEL_HELP + " Offers the run_task tool, and grounds what the page's markup cannot.")] = None,
    base_url: BaseUrl = None,
    http: Annotated[int | None, typer.Option(
        help="Serve streamable HTTP on this port (at /mcp) instead of stdio.", min=1, max=65535)] = None,
    host: Annotated[str, typer.Option(help="The address --http listens on.")] = "127.0.0.1",
    token_env: Annotated[str | None, typer.Option(
        help="An environment variable holding the bearer token every HTTP request must carry; required "
        "when --host is not loopback.")] = None,
) -> None:
    """Serve one executor as MCP tools (screenshot, click, type, ground, ...), each call checked by
    the same safety policy as `run` and recorded as a run."""
    token = _token(http, host, token_env)
    secrets = secrets_from_environment(secret or [])
    if url is not None:
        check_url(url)
    if strict and not allow_domain:
        raise AgentError("--strict applies the allowed domains to every request: give --allow-domain too")
    if base_url is not None and model is None:
        raise AgentError("--base-url serves a model: name it with --model")
    try:
        from agent.mcp.server import Worker, build_server, serve_http, serve_stdio
    except ImportError as exc:
        raise AgentError(f"{INSTALL_HINT} ({exc})") from None

    from agent.safety import SafetyPolicy

    safety = SafetyPolicy(allowed_domains=allow_domain, strict=strict, loop_limit=None)
    if url is not None and safety.allowlist is not None and (why := safety.allowlist.refusal(url)):
        raise AgentError(f"--url {url}: {why}: start on an allowed domain")
    # SIGTERM ends the session like the client leaving: its trajectory closed and its report
    # written (uvicorn re-raises the signal once it has shut down; this turns it into an exit).
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    worker = Worker()
    try:
        session = worker.call(_open_session, url, display, headed, safety, runs_dir, secrets, model, base_url)
        try:
            server = build_server(session, worker, token=token,
                                  issuer_url=f"http://{_url_host(host)}:{http}" if http else "http://127.0.0.1")
            if http is None:
                serve_stdio(server)
            else:
                print(f"internvl-agent: MCP at http://{_url_host(host)}:{http}/mcp; trajectory: "
                      f"{session.trajectory.run_dir}", file=sys.stderr, flush=True)
                serve_http(server, host=host, port=http)
        finally:
            report = worker.call(_close, session)
            print(f"internvl-agent: session recorded in {session.trajectory.run_dir} (report: {report})",
                  file=sys.stderr)
    finally:
        worker.shutdown()


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _token(http: int | None, host: str, token_env: str | None) -> str | None:
    """The bearer token HTTP requests must carry, or None; AgentError where one is needed and missing."""
    if http is None:
        if token_env is not None:
            raise AgentError("--token-env guards --http: over stdio only the client that started this "
                             "command can reach it")
        return None
    if token_env is not None:
        token = os.environ.get(token_env, "")
        if len(token) < 16:
            raise AgentError(f"--token-env {token_env}: the environment variable is empty, unset or shorter "
                             "than 16 characters: export a long random token")
        return token
    if not _loopback(host):
        raise AgentError(f"--host {host} is reachable from other machines: give --token-env NAME, an "
                         "environment variable holding a bearer token that clients must send")
    return None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _open_session(url: str | None, display: str | None, headed: bool, safety: object, runs_dir: Path,
                  secrets: dict[str, str], model_name: str | None, base_url: str | None) -> object:
    """On the worker thread, which every later executor call uses."""
    from agent.mcp.session import GuiSession
    from agent.safety import SafetyPolicy

    assert isinstance(safety, SafetyPolicy)
    vlm = load_model(model_name, base_url) if model_name is not None else None
    if url is not None:
        from tools.browser import BrowserExecutor

        executor = BrowserExecutor(start_url=url, headless=not headed,
                                   allowed_domains=safety.allowlist.domains if safety.allowlist else None,
                                   strict=safety.strict)
        start = {"url": url}
    else:
        from tools.desktop import DesktopExecutor

        executor = DesktopExecutor(display=display)
        start = {"display": display or os.environ.get("DISPLAY", "")}
    executor.__enter__()
    try:
        return GuiSession(executor, _grounder(executor, vlm), safety=safety, runs_dir=runs_dir,
                          secrets=secrets, model=vlm, start=start)
    except BaseException:
        executor.close()
        raise


def _grounder(executor: object, vlm: object) -> object:
    try:
        from agent.grounding.cascade import auto_grounder
    except ImportError:
        from agent.grounding.dom import DOMGrounder

        return DOMGrounder(executor)  # type: ignore[arg-type]
    return auto_grounder(executor, vlm)  # type: ignore[arg-type]


def _close(session: object) -> Path:
    from agent.mcp.session import GuiSession

    assert isinstance(session, GuiSession)
    try:
        return session.close()
    finally:
        session.executor.close()
