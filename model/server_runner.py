"""One model call at a time, a bounded line of requests waiting for it, and a time limit on each.

    runner = ModelRunner(max_queue=4, timeout_s=300)
    ticket = runner.admit()                # RequestRefused(503, Retry-After) when the line is full
    outbox = runner.submit(ticket, work)   # work(outbox.put) runs on the model thread
    result = await outbox.get(request)     # RequestRefused(504) past the deadline

A ticket holds its place in the line from admission until its model call has ended, so
work whose client left, or whose time ran out, still counts until the model has let go
of it. `ticket.should_stop` goes into GenerationConfig.should_stop: a model that honours
it stops decoding at the next token once the client has left, the time has run out or
the server is shutting down. The model thread is a daemon, so a model call that never
returns cannot keep the process alive after SIGTERM; it does keep its place, so later
requests get 503 or 504, never silence.
"""

from __future__ import annotations

import asyncio
import collections
import math
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from model.server_limits import RequestRefused

__all__ = ["ModelRunner", "Outbox", "Ticket"]

Reason = Literal["timeout", "disconnect", "shutdown"]
Work = Callable[[Callable[[Any], None]], Any]  # work(put) -> the result; put(item) hands over a piece
_POLL_S = 0.05  # how often a waiting request looks at its deadline and its client


class Ticket:
    """One admitted request: its deadline, and whether (and why) its work should stop."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.reason: Reason | None = None
        self.submitted = False
        self._stopped = threading.Event()

    def stop(self, reason: Reason) -> None:
        if self.reason is None:
            self.reason = reason
        self._stopped.set()

    def should_stop(self) -> bool:
        """True once stopped or past the deadline; asked by the model between tokens."""
        if not self._stopped.is_set() and time.monotonic() >= self.deadline:
            self.stop("timeout")
        return self._stopped.is_set()


class Outbox:
    """What the model thread hands one request: pieces, then its result or its error."""

    def __init__(self, runner: ModelRunner, ticket: Ticket) -> None:
        self._runner = runner
        self._ticket = ticket
        self._loop = asyncio.get_running_loop()
        self._items: asyncio.Queue[Any] = asyncio.Queue()

    def put(self, item: Any) -> None:
        """From the model thread: hand `item` (an exception is raised at the reader) over."""
        try:
            self._loop.call_soon_threadsafe(self._items.put_nowait, item)
        except RuntimeError:  # the loop has closed: the server is gone, and the reader with it
            pass

    async def get(self, request: Any = None) -> Any:
        """The next item. Raises the ticket's refusal once it is stopped (504 past its deadline),
        and stops it when `request`'s client disconnects."""
        while True:
            try:
                item = self._items.get_nowait()
            except asyncio.QueueEmpty:
                if self._ticket.should_stop():
                    raise self._runner.refusal(self._ticket.reason or "shutdown") from None
                try:
                    item = await asyncio.wait_for(self._items.get(), _POLL_S)
                except TimeoutError:
                    if request is not None and await request.is_disconnected():
                        self._ticket.stop("disconnect")
                    continue
            if isinstance(item, BaseException):
                raise item
            return item


class ModelRunner:
    """Runs model calls in order on one thread; at most `max_queue` requests wait for it."""

    def __init__(self, *, max_queue: int, timeout_s: float) -> None:
        self.max_queue = max_queue
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._tickets: set[Ticket] = set()
        self._running: Ticket | None = None
        self._closed = False
        self._jobs: queue.SimpleQueue[tuple[Ticket, Work, Outbox] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._durations: collections.deque[float] = collections.deque(maxlen=16)

    @property
    def admitted(self) -> int:
        """Requests holding a place: the one running and those waiting or being prepared."""
        with self._lock:
            return len(self._tickets)

    def admit(self) -> Ticket:
        """A place in line, or RequestRefused(503) with a Retry-After when there is none."""
        with self._lock:
            if self._closed:
                raise RequestRefused(
                    "the server is shutting down: send the request again once it is back, or elsewhere",
                    503,
                    kind="server_error",
                    retry_after_s=5,
                )
            if len(self._tickets) > self.max_queue:
                wait = self._retry_after()
                raise RequestRefused(
                    f"the server is busy: {len(self._tickets)} requests are running or waiting, the most it "
                    f"holds: send it again in {wait} s (Retry-After)",
                    503,
                    kind="server_error",
                    retry_after_s=wait,
                )
            ticket = Ticket(time.monotonic() + self.timeout_s)
            self._tickets.add(ticket)
            return ticket

    def release(self, ticket: Ticket) -> None:
        """Give a ticket's place back; the model thread does so itself for submitted work."""
        with self._lock:
            self._tickets.discard(ticket)

    def submit(self, ticket: Ticket, work: Work) -> Outbox:
        """Queue `work` for the model thread (call from the event loop); its items come through the outbox."""
        outbox = Outbox(self, ticket)
        ticket.submitted = True
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="vlm-server", daemon=True)
                self._thread.start()
        self._jobs.put((ticket, work, outbox))
        return outbox

    def close(self) -> None:
        """Refuse new requests and stop those not yet running; the running one goes on (stop_all ends it)."""
        with self._lock:
            self._closed = True
            waiting = [t for t in self._tickets if t is not self._running]
        for ticket in waiting:
            ticket.stop("shutdown")
        self._jobs.put(None)  # the thread ends once the work already queued has been passed over

    def stop_all(self) -> None:
        """Stop every request, the running one included."""
        with self._lock:
            tickets = list(self._tickets)
        for ticket in tickets:
            ticket.stop("shutdown")

    def refusal(self, reason: Reason) -> RequestRefused:
        if reason == "timeout":
            return RequestRefused(
                f"the request did not finish within this server's limit of {self.timeout_s:g} s, waiting "
                "in line included: ask for fewer new tokens (max_tokens) or send fewer images, or try again "
                "when the server is less busy",
                504,
                kind="server_error",
            )
        if reason == "shutdown":
            return RequestRefused(
                "the server is shutting down and stopped this request: send it again once the server is "
                "back, or elsewhere",
                503,
                kind="server_error",
                retry_after_s=5,
            )
        return RequestRefused("the client disconnected before the reply was ready")

    def _retry_after(self) -> int:
        """Seconds until a place is likely free: the running call's end, guessed from recent calls."""
        mean = sum(self._durations) / len(self._durations) if self._durations else 1.0
        return min(60, max(1, math.ceil(mean)))

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            ticket, work, outbox = job
            started = time.monotonic()
            with self._lock:
                self._running = ticket
            try:
                if ticket.should_stop():  # it left, ran out of time or was shut down while waiting
                    outbox.put(self.refusal(ticket.reason or "shutdown"))
                    continue
                result = work(outbox.put)
                # A model that saw should_stop returns early, with a partial reply: not an answer.
                outbox.put(self.refusal(ticket.reason) if ticket.reason is not None else result)
                self._durations.append(time.monotonic() - started)
            except BaseException as exc:  # handed to the request, whose handlers answer it
                outbox.put(exc)
            finally:
                with self._lock:
                    self._running = None
                    self._tickets.discard(ticket)
