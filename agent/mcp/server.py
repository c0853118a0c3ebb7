"""The MCP tools over a `GuiSession`, on the `mcp` SDK's MCPServer (no protocol of our own).

Each tool's schema comes from its typed signature (pydantic, through the SDK), and each
validates into our action union (tools/actions.py) before anything runs. Every call runs on
one worker thread, the one that opened the executor (Playwright's sync API is bound to it),
one call at a time. A refused or failed call comes back as an error result (`isError`)
whose text says why.

Over streamable HTTP, `token` (when given) is a bearer token that every request must carry;
the SDK's own bearer middleware answers 401 without it.
"""

# No `from __future__ import annotations`: the SDK reads the tools' annotations at runtime.
import asyncio
import base64
import hmac
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any, TypeVar

from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, ImageContent, TextContent
from pydantic import Field

from agent.mcp.session import GuiSession
from tools.errors import AgentError

__all__ = ["Worker", "build_server", "serve_http", "serve_stdio"]

log = logging.getLogger(__name__)

T = TypeVar("T")

Coord = Annotated[int | None, Field(ge=0, le=1000, description="0..1000, relative to the current screenshot")]
Target = Annotated[str | None, Field(min_length=1, max_length=500,
                                     description="the element described in words, instead of x and y")]
Notches = Annotated[int, Field(ge=-50, le=50, description="wheel notches")]
INSTRUCTIONS = (
    "Operate one computer screen (a browser or a desktop). Points are integers 0..1000 relative to the "
    "latest screenshot; or name a target in words ('the Submit button'). Type a secret as "
    "<secret>name</secret>: its value is never shown. Calls off the allowed domains, or that need a "
    "person's approval, are refused with the reason."
)


class Worker:
    """One thread for every executor call, in order."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mcp-executor")

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """From synchronous code (startup and shutdown)."""
        return self._pool.submit(fn, *args).result()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.wrap_future(self._pool.submit(fn, *args))

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)


def build_server(session: GuiSession, worker: Worker, *, token: str | None = None,
                 issuer_url: str = "http://127.0.0.1") -> MCPServer:
    """The MCP server over `session`; `token`: the bearer token HTTP requests must carry."""
    auth: dict[str, Any] = {}
    if token is not None:
        auth = {"token_verifier": _BearerToken(token),
                "auth": AuthSettings(issuer_url=issuer_url, resource_server_url=f"{issuer_url}/mcp",
                                     validate_token_resource=False)}
    server = MCPServer("internvl-agent", instructions=INSTRUCTIONS, log_level="WARNING", **auth)

    def text(message: str, *, error: bool = False) -> CallToolResult:
        return CallToolResult(content=[TextContent(type="text", text=message)], is_error=error)

    async def guarded(fn: Callable[..., Any], *args: Any) -> CallToolResult:
        try:
            answer = await worker.run(fn, *args)
        except AgentError as exc:  # a refusal, or the executor failing (a browser that crashed)
            return text(session.redact(exc.message), error=True)
        return text(answer if isinstance(answer, str) else json.dumps(answer))

    async def act(tool: str, **arguments: Any) -> CallToolResult:
        return await guarded(session.act, tool, arguments)

    @server.tool()
    async def screenshot() -> CallToolResult:
        """The screen now, as a PNG image."""
        try:
            shot = await worker.run(session.screenshot)
        except AgentError as exc:
            return text(session.redact(exc.message), error=True)
        where = f" of {shot.url}" if shot.url else ""
        return CallToolResult(content=[
            ImageContent(type="image", data=base64.b64encode(shot.png).decode("ascii"),
                         mime_type="image/png"),
            TextContent(type="text", text=session.redact(f"screenshot{where}, {shot.size[0]}x{shot.size[1]} "
                                                         "pixels (points are 0..1000 of it)")),
        ])

    @server.tool()
    async def click(x: Coord = None, y: Coord = None, target: Target = None,
                    button: Annotated[str, Field(pattern="^(left|right|middle)$")] = "left",
                    clicks: Annotated[int, Field(ge=1, le=3)] = 1) -> CallToolResult:
        """Click at x, y (0..1000 of the screenshot), or on a target described in words."""
        return await act("click", x=x, y=y, target=target, button=button, clicks=clicks)

    @server.tool(name="type")
    async def type_(text: Annotated[str, Field(max_length=10_000)], target: Target = None,
                    clear: bool = False, submit: bool = False) -> CallToolResult:
        """Type text, clicking a target described in words first if given; `clear` replaces what
        the field holds; `submit` presses Enter after. Write a secret as <secret>name</secret>."""
        return await act("type", text=text, target=target, clear=clear, submit=submit)

    @server.tool()
    async def key(keys: Annotated[list[str], Field(min_length=1, max_length=6)]) -> CallToolResult:
        """Press a key combination, modifiers first: ["ctrl", "s"], ["Enter"]."""
        return await act("key", keys=keys)

    @server.tool()
    async def scroll(dy: Notches = 0, dx: Notches = 0, x: Coord = None, y: Coord = None,
                     target: Target = None) -> CallToolResult:
        """Scroll by wheel notches (dy > 0 scrolls down), at a point or a target if given."""
        return await act("scroll", dx=dx, dy=dy, x=x, y=y, target=target)

    @server.tool()
    async def drag(start: Annotated[list[int] | str, Field(description="[x, y] in 0..1000, or a target")],
                   end: Annotated[list[int] | str, Field(description="[x, y] in 0..1000, or a target")],
                   ) -> CallToolResult:
        """Press at start, move to end, release; each a point [x, y] in 0..1000 or a target in words."""
        return await act("drag", start=start, end=end)

    @server.tool()
    async def navigate(url: Annotated[str, Field(min_length=1, max_length=4096)]) -> CallToolResult:
        """Open a URL in the current tab (browser only; the allowed domains apply)."""
        return await act("navigate", url=url)

    @server.tool()
    async def ground(description: Annotated[str, Field(min_length=1, max_length=500)]) -> CallToolResult:
        """Where an element described in words is: its box and point (pixels and 0..1000), and
        which grounder found it."""
        return await guarded(session.ground, description)

    @server.tool()
    async def run_script(yaml: Annotated[str, Field(min_length=1, max_length=100_000)]) -> CallToolResult:
        """Run a script: YAML with `steps:` (click: the Save button, type: {text: .., target: ..},
        expect_text: Saved, ...), each target grounded when its step runs."""
        return await guarded(session.run_script, yaml)

    if session.model is not None:
        @server.tool()
        async def run_task(goal: Annotated[str, Field(min_length=1, max_length=10_000)],
                           max_steps: Annotated[int, Field(ge=1, le=200)] = 20,
                           ctx: Context | None = None) -> CallToolResult:
            """The agent works towards the goal on its own, up to max_steps; progress per step."""
            try:
                steps = await worker.run(session.run_task, goal, max_steps)
                lines: list[str] = []
                while (line := await worker.run(next, steps, None)) is not None:
                    lines.append(line)
                    if ctx is not None and line.startswith("step "):
                        await ctx.report_progress(len(lines), max_steps, line)
            except AgentError as exc:
                return text(session.redact(exc.message), error=True)
            return text("\n".join(lines))

    return server


class _BearerToken:
    """The SDK's TokenVerifier for one shared token, compared in constant time."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def verify_token(self, token: str) -> AccessToken | None:
        if hmac.compare_digest(token.encode(), self._token.encode()):
            return AccessToken(token=token, client_id="internvl-agent", scopes=[])
        return None


def serve_stdio(server: MCPServer) -> None:
    server.run("stdio")


def serve_http(server: MCPServer, *, host: str, port: int) -> None:
    """Streamable HTTP at http://HOST:PORT/mcp."""
    server.run("streamable-http", host=host, port=port)

