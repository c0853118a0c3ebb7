"""What the agent may do: checked between the model's decision and the executor.

`SafetyPolicy.check(action, observation)` says allow, confirm or block:

- block: the action is not run and the model is told why (an address off the allowed
  domains, any action but going back while the page is off them). The run goes on.
- confirm: a rule (`confirm_when`) asks for a person's OK; the agent's `confirm` callback
  gives it. Refused, or with no one to ask, the action is not run and the run ends.

`LoopDetector` ends a run whose model repeats one action on a screen that does not change.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from tools.actions import Back, BaseAction, Fail, Finish, Navigate
from tools.browser.domains import DomainAllowlist
from tools.executor import Observation

__all__ = ["ConfirmRule", "LoopDetector", "SafetyPolicy", "Verdict"]

# A rule that returns why `action` needs a person's OK, or None when it does not.
ConfirmRule = Callable[[BaseAction, Observation], "str | None"]


@dataclass(frozen=True)
class Verdict:
    kind: Literal["allow", "confirm", "block"]
    reason: str = ""


ALLOW = Verdict("allow")


class SafetyPolicy:
    """`allowed_domains`: the only sites the run may visit (None: any). `strict`: hold every
    request of a page to them too, not only the pages themselves; the policy carries it so
    that one setting reaches the browser (`BrowserExecutor(strict=policy.strict)`), which
    enforces it. `confirm_when`: a rule for actions that need a person's OK. `loop_limit`:
    repeats of one action on an unchanged screen that end the run (None: never)."""

    def __init__(
        self,
        *,
        allowed_domains: Iterable[str] | None = None,
        strict: bool = False,
        confirm_when: ConfirmRule | None = None,
        loop_limit: int | None = 3,
    ) -> None:
        if loop_limit is not None and loop_limit < 2:
            raise ValueError("loop_limit must be at least 2 (or None to turn the loop detector off)")
        if strict and allowed_domains is None:
            raise ValueError("strict=True holds requests to allowed_domains: pass allowed_domains too")
        self.allowlist = DomainAllowlist(allowed_domains) if allowed_domains is not None else None
        self.strict = strict
        self.confirm_when = confirm_when
        self.loop_limit = loop_limit

    def check(self, action: BaseAction, observation: Observation) -> Verdict:
        if isinstance(action, Finish | Fail):
            return ALLOW
        if self.allowlist is not None:
            if isinstance(action, Navigate) and (refusal := self.allowlist.refusal(action.url)):
                return Verdict("block", f"navigate refused: {refusal}")
            # A link, a redirect or a script took the page elsewhere: only the way back is open.
            here = observation.url
            if here is not None and not isinstance(action, Back | Navigate) and self.allowlist.refusal(here):
                return Verdict("block", f"the page left the allowed domains ({here}): go back, or "
                                        "navigate to an allowed address")
        if self.confirm_when is not None and (reason := self.confirm_when(action, observation)):
            return Verdict("confirm", reason)
        return ALLOW


class LoopDetector:
    """One per run: notices the same action taken `limit` times in a row on the same screen."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._last: tuple[str, bytes] | None = None
        self._repeats = 0

    def see(self, action: BaseAction, observation: Observation) -> str | None:
        """Record this step's action; the reason to stop when it closes a loop."""
        # A 4x4-averaged copy: 0.6 ms for 720p against 4 ms for the full image, and any
        # visible change still shows in it.
        screen = hashlib.blake2b(observation.image.reduce(4).tobytes(), digest_size=16).digest()
        key = (action.model_dump_json(), screen)
        self._repeats = self._repeats + 1 if key == self._last else 1
        self._last = key
        if self._repeats >= self.limit:
            return f"{action.name!r} came {self._repeats} times in a row, and the screen did not change"
        return None
