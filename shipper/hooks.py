"""Time and randomness, injectable so tests neither sleep nor depend on luck."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Hooks:
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    wallclock: Callable[[], float] = time.time
    rng: random.Random | None = None

    def for_session(self) -> dict[str, Any]:
        injected: dict[str, Any] = {"clock": self.clock, "sleep": self.sleep,
                                    "wallclock": self.wallclock}
        if self.rng is not None:
            injected["rng"] = self.rng
        return injected
