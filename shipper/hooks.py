"""Time and randomness, injectable so tests neither sleep nor depend on luck."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypedDict


class SessionHooks(TypedDict, total=False):
    """The hooks a retrying session takes (`shipper.http.RetryingSession`), by keyword."""

    clock: Callable[[], float]
    sleep: Callable[[float], None]
    wallclock: Callable[[], float]
    rng: random.Random


@dataclass(frozen=True)
class Hooks:
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    wallclock: Callable[[], float] = time.time
    rng: random.Random | None = None

    def for_session(self) -> SessionHooks:
        injected: SessionHooks = {"clock": self.clock, "sleep": self.sleep,
                                  "wallclock": self.wallclock}
        if self.rng is not None:
            injected["rng"] = self.rng
        return injected
