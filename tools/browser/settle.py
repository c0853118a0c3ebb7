"""Settle detection: after an action, wait until the page is done with what the action started.

The settle ends as soon as it can be sure: nothing the action started is still to come (no
timer, animation frame, idle callback, fetch or XHR of its own), no CSS animation or
transition runs, no network request is in flight, and there has been no DOM mutation, input
or animation event for `quiet_ms` (a short window, for the work no hook sees: a posted
message, a worker's reply). The wait is bounded by `max_ms`, so a page that never stops (a
ticking clock, a spinner that mutates) costs at most `max_ms` a step.

- The DOM side is an init script that every document runs before its own scripts: a
  MutationObserver (and a few event listeners) stamp the time of the last activity, and
  wrappers of setTimeout, requestAnimationFrame, requestIdleCallback, fetch (and reading a
  response's body) and XMLHttpRequest count the work the action started. That is the work
  asked for while the action's input events are handled, or while a document loads, and,
  transitively, by the callbacks of such work (a timer that sets the next one), as long as
  it is due within `ACTION_WORK_MS` of the action: an endless chain, or a toast's hiding in
  5 s, is the page's own life, not the action's effect. Intervals are not counted: one
  that changes the page keeps it busy anyway, and one that does not would hold every step.
- The network side is Playwright's request events on the context (every tab, every
  frame, service workers included), which see more than in-page fetch/XHR wrappers.
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page, Request

__all__ = [
    "NO_SETTLE",
    "SETTLE_SCRIPT",
    "Capture",
    "NetworkTracker",
    "SettleReason",
    "SettleResult",
    "Settler",
]

SettleReason = Literal["quiet", "bound", "error"]

# Work due later than this after the action (the input event, or the document's start) is
# not waited for: a chain of timers, or an animation loop, holds a settle at most this long.
ACTION_WORK_MS = 1000

# Runs in every frame of every page before the page's own scripts. `document` exists
# then even though `documentElement` may not, and observing it sees everything parsed.
# `quietFor()`: ms since the last activity; -1 (never quiet enough) while work the action
# started is pending or a CSS transition or finite animation runs (an endless spinner would
# hold every step).
SETTLE_SCRIPT = """
(() => {
  if (window.__agentSettle) return;
  const win = window, now = performance.now.bind(performance);
  const state = { last: now(), action: now(), inAction: false };
  const touch = () => { state.last = now(); };
  const timeouts = new Set(), frames = new Set(), idles = new Set();
  // In the action's context: its input events' tasks, a loading document, and the callbacks
  // of work it started; the mark lasts until the current task ends (a posted message).
  const channel = new MessageChannel();
  let marked = false;
  channel.port1.onmessage = () => { marked = false; state.inAction = false; };
  const enter = () => {
    state.inAction = true;
    if (!marked) { marked = true; channel.port2.postMessage(0); }
  };
  const inContext = () => state.inAction || document.readyState !== "complete";
  const tracks = (delay) => inContext() && now() + Math.max(0, Number(delay) || 0) - state.action <= LATEST;
  const run = (callback, args) => {
    enter();
    try { return callback.apply(win, args); } finally { touch(); }
  };
  const wrap = (set, clear, ids, takesDelay) => {
    const original = win[set], cancel = win[clear];
    if (!original) return;
    win[set] = function (callback, delay, ...rest) {
      if (typeof callback !== "function" || !tracks(takesDelay ? delay : 0)) {
        return original.call(win, callback, delay, ...rest);
      }
      const id = original.call(win, (...args) => {
        if (ids.delete(id)) return run(callback, takesDelay ? rest : args);
      }, delay, ...rest);
      ids.add(id);
      return id;
    };
    win[clear] = function (id) { ids.delete(id); return cancel.call(win, id); };
  };
  wrap("setTimeout", "clearTimeout", timeouts, true);
  wrap("requestAnimationFrame", "cancelAnimationFrame", frames, false);
  wrap("requestIdleCallback", "cancelIdleCallback", idles, false);
  // Requests the action made: pending until done (or LATEST ms old: a long poll), then their
  // callbacks run in context.
  const busy = new Map();
  let serial = 0;
  const hold = () => { busy.set(++serial, now() + LATEST); return serial; };
  const release = (token) => { if (busy.delete(token)) { enter(); touch(); } };
  const waiting = () => {
    const at = now();
    for (const until of busy.values()) if (until > at) return true;
    return false;
  };
  const held = (promise) => {
    const token = hold();
    return promise.then((value) => { release(token); return value; },
                        (error) => { release(token); throw error; });
  };
  const holding = (owner, name, self) => {
    const original = owner && owner[name];
    if (!original) return;
    owner[name] = function (...args) {
      const promise = original.apply(self || this, args);
      return inContext() ? held(promise) : promise;
    };
  };
  holding(win, "fetch", win);
  for (const name of ["arrayBuffer", "blob", "formData", "json", "text"]) {
    holding(win.Response && win.Response.prototype, name);
  }
  const xhr = win.XMLHttpRequest && win.XMLHttpRequest.prototype;
  if (xhr) {
    const open = xhr.open, send = xhr.send;
    const sent = new WeakSet();
    xhr.open = function (...args) {
      // Done (readyState 4) comes first in the task that runs the load handlers; listening from
      // open on puts this listener before the handlers set after it (onload, as usual).
      this.addEventListener("readystatechange", () => {
        if (this.readyState === 4 && sent.has(this)) enter();
      });
      return open.apply(this, args);
    };
    xhr.send = function (...args) {
      if (inContext()) {
        const token = hold();
        sent.add(this);
        this.addEventListener("loadend", () => release(token));
      }
      return send.apply(this, args);
    };
  }
  const animating = () => document.getAnimations().some((a) =>
    a.playState === "running" && Number.isFinite(a.effect ? a.effect.getComputedTiming().endTime : 0));
  // Asked by the settle, in a task of its own: the action's mark ends there, so the timers of
  // Playwright's own polling (which calls the page's setTimeout) are never counted.
  state.quietFor = () => {
    state.inAction = false;
    return timeouts.size || frames.size || idles.size || waiting() || animating() ? -1 : now() - state.last;
  };
  Object.defineProperty(window, "__agentSettle", { value: state });
  new MutationObserver(touch).observe(document,
    { subtree: true, childList: true, attributes: true, characterData: true });
  const act = () => { state.action = now(); touch(); enter(); };
  for (const type of ["pointerdown", "pointerup", "pointermove", "mousedown", "mouseup", "click",
                      "keydown", "keyup", "beforeinput", "input", "change", "wheel"]) {
    window.addEventListener(type, act, { capture: true, passive: true });
  }
  for (const type of ["scroll", "transitionrun", "transitionend", "animationstart", "animationend"]) {
    window.addEventListener(type, touch, { capture: true, passive: true });
  }
  window.addEventListener("load", enter);
})();
""".replace("LATEST", str(ACTION_WORK_MS))

# True once the document has parsed and the page has been quiet (see quietFor) for `quiet`
# ms. A frame without the script (an error page) counts as quiet.
DOM_QUIET = """(quiet) => {
  const s = window.__agentSettle;
  return !s || (document.readyState !== "loading" && s.quietFor() >= quiet);
}"""

# Milliseconds the page has been quiet (huge where the script is missing).
QUIET_FOR = "() => window.__agentSettle ? window.__agentSettle.quietFor() : 1e9"

POLL_MS = 5  # how often the page re-checks its quiet window
# The share of the quiet window that a capture-ahead may overlap. All of it: the capture
# starts once nothing the action started is pending, which is when pages are done; one that
# is still busy wastes one capture (the settle then goes on without capturing ahead).
LEAD_SHARE = 1.0
# Streams that stay open by design; waiting on them would always cost `max_ms`.
ENDLESS_TYPES = frozenset({"websocket", "eventsource", "media"})


class NetworkTracker:
    """Requests in flight on a context, from Playwright's request events."""

    def __init__(self, context: BrowserContext, *, max_age_ms: float) -> None:
        self._started: dict[Request, float] = {}
        self.last_activity = time.perf_counter()  # when a request last started or ended
        # A request older than one whole settle is background traffic (a long poll), not
        # the response to this action; counting it would make every step cost the maximum.
        self._max_age_s = max_age_ms / 1000
        context.on("request", self._on_request)
        context.on("requestfinished", self._on_done)
        context.on("requestfailed", self._on_done)

    def _on_request(self, request: Request) -> None:
        self.last_activity = time.perf_counter()
        if request.resource_type not in ENDLESS_TYPES:
            self._started[request] = self.last_activity

    def _on_done(self, request: Request) -> None:
        self.last_activity = time.perf_counter()
        self._started.pop(request, None)

    def in_flight(self) -> int:
        oldest = time.perf_counter() - self._max_age_s
        for request in [r for r, t in self._started.items() if t < oldest]:
            del self._started[request]  # a long poll (or a lost event): stop counting it
        return len(self._started)

    def quiet_ms(self) -> float:
        """Milliseconds since the last request started or ended; -1 while one is in flight."""
        if self.in_flight():
            return -1.0
        return (time.perf_counter() - self.last_activity) * 1000


@dataclass(frozen=True)
class SettleResult:
    """How one settle went: the milliseconds it waited, and why it ended ("quiet"; "bound":
    `max_ms` ran out; "error": the page closed or crashed). `NO_SETTLE` where none ran."""

    ms: float = 0.0
    reason: SettleReason | None = None


NO_SETTLE = SettleResult()


@dataclass(frozen=True)
class Capture:
    """A screenshot taken while the page settled; `started` is its perf_counter request time."""

    page: Page
    data: bytes
    started: float


class Settler:
    """Waits for the page to settle (see the module's docstring), and captures it meanwhile.

    Capture-ahead: the screenshot is requested `lead` ms before the quiet window closes
    (lead = the recent captures' median duration, at most the whole window), so the
    screenshot's frame wait and encoding overlap the wait instead of following it. The
    capture counts only if nothing happened from its request on; otherwise the settle
    goes on without it, and the next observation takes a fresh screenshot.
    """

    def __init__(self, *, quiet_ms: float, max_ms: float) -> None:
        if quiet_ms < 0 or max_ms < 0:
            raise ValueError("settle_quiet_ms and settle_max_ms must be >= 0")
        self.quiet_ms = quiet_ms
        self.max_ms = max_ms
        self._capture_ms: deque[float] = deque(maxlen=5)

    def install(self, context: BrowserContext) -> NetworkTracker:
        context.add_init_script(SETTLE_SCRIPT)
        return NetworkTracker(context, max_age_ms=self.max_ms)

    def settle(
        self, page: Page, network: NetworkTracker, capture: Callable[[Page], bytes] | None = None
    ) -> tuple[SettleResult, Capture | None]:
        """Wait until quiet (or `max_ms`); return how the wait went, and a capture of the
        quiet page, if `capture` was given and the page stayed quiet after it."""
        from playwright.sync_api import Error, TimeoutError

        start = time.perf_counter()
        deadline = start + self.max_ms / 1000
        lead = 0.0
        if capture is not None and self._capture_ms:
            lead = min(self.quiet_ms * LEAD_SHARE, statistics.median(self._capture_ms))
        shot: Capture | None = None
        reason: SettleReason = "bound"
        try:
            while (left_ms := (deadline - time.perf_counter()) * 1000) > 0:
                # Playwright re-runs the predicate across navigations and enforces the
                # timeout in the driver, so neither a new document nor a busy page hangs us.
                page.wait_for_function(DOM_QUIET, arg=self.quiet_ms - lead, polling=POLL_MS, timeout=left_ms)
                net_quiet = network.quiet_ms()
                if net_quiet >= self.quiet_ms - lead:
                    if capture is not None and shot is None:
                        requested = time.perf_counter()
                        shot = Capture(page, capture(page), requested)
                        self._capture_ms.append((time.perf_counter() - requested) * 1000)
                    asked = time.perf_counter()
                    dom_quiet = _dom_quiet_ms(page)
                    if shot is not None and not _fresh(shot, network, dom_quiet, asked):
                        # The page moved during the capture. Settle on without capturing ahead:
                        # a busy page would otherwise cost a screenshot every few milliseconds.
                        shot, capture, lead = None, None, 0.0
                        continue
                    quiet = min(dom_quiet, network.quiet_ms())
                    if quiet >= self.quiet_ms:
                        reason = "quiet"
                        break
                    wait_ms = self.quiet_ms - quiet
                else:
                    wait_ms = self.quiet_ms - net_quiet
                left_ms = (deadline - time.perf_counter()) * 1000
                if left_ms > 0:
                    # Requests may finish and change the DOM meanwhile: then the loop waits again.
                    page.wait_for_timeout(min(max(wait_ms, 1.0), left_ms))
        except TimeoutError:
            shot = None  # the bound ran out inside Playwright's wait
        except Error:
            # A page that closed or crashed: settling is over, and the next observation
            # shows (or reports) where the page got to.
            shot, reason = None, "error"
        if shot is not None and reason != "quiet":
            shot = None  # stopped by the bound, not by quiet: the capture may be mid-change
        return SettleResult((time.perf_counter() - start) * 1000, reason), shot

    @staticmethod
    def unchanged_since(shot: Capture, page: Page, network: NetworkTracker) -> bool:
        """True if neither the page nor the network has done anything since `shot` was requested."""
        if page is not shot.page:
            return False
        asked = time.perf_counter()
        return _fresh(shot, network, _dom_quiet_ms(page), asked)


def _dom_quiet_ms(page: Page) -> float:
    return float(page.evaluate(QUIET_FOR))


def _fresh(shot: Capture, network: NetworkTracker, dom_quiet_ms: float, asked: float) -> bool:
    """The page's quiet time was read after `asked`, so a page idle since before the capture's
    request always passes; activity in the moment between our request and the browser taking
    it is in the captured frame anyway."""
    return network.last_activity <= shot.started and dom_quiet_ms >= (asked - shot.started) * 1000
