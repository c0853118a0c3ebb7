"""The server's connections: uvicorn with timeouts and a cap that uvicorn lacks, and a quick SIGTERM.

uvicorn times out idle kept-alive connections (`timeout_keep_alive`) but not a request
that arrives slowly: a client that sends one header byte every few seconds (slow-loris)
holds its connection forever. `guarded_protocol` is uvicorn's h11 protocol with two
timers more, one for the request line and headers, one for the body, and a cap on open
connections that answers a request on one past it with a JSON 503 (uvicorn's own
`limit_concurrency` answers in plain text). `build_server` puts them together with
uvicorn's keep-alive and header-size settings, and a shutdown that stops the model
call in flight once `shutdown_grace_s` has passed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from typing import Any

from model.server_limits import ServerLimits, error_response, header_message
from model.server_runner import ModelRunner

__all__ = ["build_server", "guarded_protocol"]

log = logging.getLogger(__name__)


def guarded_protocol(limits: ServerLimits) -> type:
    """uvicorn's H11Protocol with header and body timeouts, and the connection cap."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    async def too_many(scope: Any, receive: Any, send: Any) -> None:
        message = (
            f"the server has {limits.max_connections} connections open, the most it keeps: "
            "send the request again in a moment, and reuse one connection for several requests"
        )
        await error_response(503, message, "server_error", retry_after_s=1, close=True)(scope, receive, send)

    class GuardedH11Protocol(H11Protocol):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._timer: asyncio.TimerHandle | None = None
            self._timed: Any = None  # the request whose body the body timer waits for

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            if len(self.connections) > limits.max_connections:
                self.app = too_many
            self._arm(limits.header_timeout_s)

        def data_received(self, data: bytes) -> None:
            if self._timer is None and (self.cycle is None or self.cycle.response_complete):
                self._arm(limits.header_timeout_s)  # the first bytes of the next request on this connection
            super().data_received(data)
            cycle = self.cycle
            if cycle is None or cycle.response_complete:
                return  # its headers are not all in yet
            if cycle is not self._timed:  # the headers are in
                self._timed = cycle
                if cycle.more_body:
                    self._arm(limits.body_timeout_s)
                else:
                    self._disarm()
            elif not cycle.more_body:
                self._disarm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def send_400_response(self, msg: str) -> None:
            # h11 could not parse the request; uvicorn would answer in plain text.
            self._raw_answer(400, "Bad Request", error_body(header_message(limits.max_header_bytes)))

        def _arm(self, seconds: float) -> None:
            self._disarm()
            self._timer = self.loop.call_later(seconds, self._expire)

        def _disarm(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _expire(self) -> None:
            self._timer = None
            if self.transport.is_closing():
                return
            if self.cycle is None or self.cycle.response_complete:  # no app runs: we may answer
                log.info("closing a connection whose request headers did not arrive in time")
                message = (
                    f"the request's headers did not arrive within {limits.header_timeout_s:g} s: "
                    "send the whole request at once"
                )
                self._raw_answer(408, "Request Timeout", error_body(message))
            else:  # the app is waiting for the body: it sees a disconnect
                log.info("closing a connection whose request body did not arrive in time")
                self.transport.close()

        def _raw_answer(self, status: int, phrase: str, body: bytes) -> None:
            head = (
                f"HTTP/1.1 {status} {phrase}\r\ncontent-type: application/json\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
            )
            self.transport.write(head.encode() + body)
            self.transport.close()

    return GuardedH11Protocol


def error_body(message: str) -> bytes:
    return json.dumps(
        {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
    ).encode()


def build_server(
    app: Any, *, host: str, port: int, limits: ServerLimits, log_level: str = "info"
) -> Any:
    """A uvicorn.Server for `app` (from model.server.create_app) that holds to `limits`.

    On SIGTERM or Ctrl-C it stops taking requests, refuses those waiting (503), lets the
    one running go on for `shutdown_grace_s`, then stops it, and cancels what is left a
    second later: the process ends within about grace + 1.5 s.
    """
    import uvicorn

    runner: ModelRunner = app.state.runner
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        http=guarded_protocol(limits),
        timeout_keep_alive=limits.keep_alive_s,  # type: ignore[arg-type]  # a float works too
        timeout_graceful_shutdown=math.ceil(limits.shutdown_grace_s) + 1,
        h11_max_incomplete_event_size=limits.max_header_bytes,
    )

    class Server(uvicorn.Server):  # type: ignore[misc]
        async def shutdown(self, sockets: Any = None) -> None:
            runner.close()
            asyncio.get_running_loop().call_later(limits.shutdown_grace_s, runner.stop_all)
            await super().shutdown(sockets)

    return Server(config)
