"""Which arm answers a request, and the faults a rehearsal injects into the canary's arm.

Routing: bucket = sha256(f"{deploy_id}:{key}") mod 10000, canary when bucket < weight * 100. The
key is the X-Request-Key header (a user or session id keeps its cohort), else random; a cohort
that is on the canary at 10 % stays on it at 25 %.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
import time
from dataclasses import dataclass, field

from lockstep.config import StageError

BUCKETS = 10000


def bucket(deploy_id: str, key: str) -> int:
    """The request key's cohort, 0..9999: the same in every process (never Python's hash())."""
    return int.from_bytes(hashlib.sha256(f"{deploy_id}:{key}".encode()).digest()[:8], "big") % BUCKETS


def route(deploy_id: str, key: str, weight: float) -> str:
    """stable or canary; monotone: raising the weight only moves cohorts from stable to canary."""
    return "canary" if bucket(deploy_id, key) < weight * BUCKETS / 100 else "stable"


@dataclass
class Faults:
    """Faults injected into one arm for rehearsals: added latency, and a share of failed requests."""

    latency_s: float = 0.0
    error_rate: float = 0.0
    _count: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def parse(cls, spec: str | None) -> Faults:
        faults = cls()
        for part in filter(None, (p.strip() for p in (spec or "").split(","))):
            key, _, value = part.partition("=")
            if key == "latency" and (m := re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s)", value)):
                faults.latency_s = float(m[1]) / (1000 if m[2] == "ms" else 1)
            elif key == "errors" and (m := re.fullmatch(r"(\d+(?:\.\d+)?)%", value)):
                faults.error_rate = float(m[1]) / 100
            else:
                raise StageError(f"inject: '{part}' is not latency=<N>ms or errors=<N>%")
        return faults

    def apply(self) -> None:
        """Sleep and/or fail; failures are spread evenly: exactly 5 % of requests at errors=5%."""
        if self.latency_s:
            time.sleep(self.latency_s)
        if self.error_rate:
            with self._lock:
                n, self._count = self._count, self._count + 1
            if math.floor((n + 1) * self.error_rate) > math.floor(n * self.error_rate):
                raise RuntimeError("injected fault")
