"""Fixed-window request limits per key (upstream: 100 requests / 10 s per client on read APIs)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import msgspec


class Verdict(msgspec.Struct, frozen=True):
    allowed: bool
    limit: int
    remaining: int
    reset_s: int

    def headers(self) -> dict[str, str]:
        out = {
            "x-ratelimit-limit": str(self.limit),
            "x-ratelimit-remaining": str(self.remaining),
            "x-ratelimit-reset": str(self.reset_s),
        }
        if not self.allowed:
            out["retry-after"] = str(self.reset_s)
        return out


class RateLimiter:
    def __init__(self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._windows: dict[str, tuple[float, int]] = {}

    def hit(self, key: str) -> Verdict:
        now = self._clock()
        if len(self._windows) > 10_000:
            self._windows = {k: w for k, w in self._windows.items() if now - w[0] < self.window_s}
        started, count = self._windows.get(key, (now, 0))
        if now - started >= self.window_s:
            started, count = now, 0
        count += 1
        self._windows[key] = (started, count)
        reset = max(1, math.ceil(started + self.window_s - now))
        return Verdict(count <= self.limit, self.limit, max(0, self.limit - count), reset)
