"""`lockstep monitor-rehearsal [--shift FEATURE:+2sd]` (make monitor-rehearsal): serve the locked
versions on loopback with an inference log of its own, send windows_m windows of traffic drawn
from the test split (each window min_rows rows or the whole split, whichever is larger; a split
smaller than a window drawn as `monitor calibrate` draws it; shifted when asked), then judge
them as `lockstep monitor` would. Time is virtual: each window's requests are stamped inside that
window, so the rehearsal takes seconds. Nothing is tagged in the registry; the outputs go to
reports/monitor/rehearsal/ and the log to monitor/rehearsal.db (both replaced each run)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lockstep.config import Params, StageError
from lockstep.monitor.judge import Verdict
from lockstep.settings import MonitorConfig

SHIFT = re.compile(r"(?:(?P<rank>top|bottom):(?P<n>\d+)|(?P<feature>[^:,]+)):(?P<amount>[+-]\d+(?:\.\d+)?)sd")
BATCH = 50  # rows per request


def parse_shift(spec: str | None) -> list[tuple[str, float]]:
    """FEATURE:+Nsd, several comma-separated, or top:N:+Nsd / bottom:N:+Nsd (the N features the model
    uses most or least, by the locked stable version's permutation importance: `@top:N`, `@bottom:N`)."""
    shifts = []
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        m = SHIFT.fullmatch(part.strip())
        if not m:
            raise StageError(
                f"shift '{part.strip()}': expected FEATURE:+Nsd or top:N:+Nsd, e.g. mean_radius:+2sd,top:1:-1sd"
            )
        name = f"@{m['rank']}:{m['n']}" if m["rank"] else m["feature"]
        shifts.append((name, float(m["amount"])))
    return shifts


def resolve(
    shifts: list[tuple[str, float]], columns: list[str], weights: dict[str, float] | None
) -> list[tuple[str, float]]:
    """The features a shift names: `@top:N` and `@bottom:N` by the model's importance."""
    resolved = []
    for name, amount in shifts:
        if name.startswith("@"):
            if not weights:
                raise StageError("shift: top:N and bottom:N need the model's feature importance; register again")
            rank, n = name[1:].split(":")
            ordered = sorted((c for c in columns if c in weights), key=lambda c: (-weights[c], c))
            chosen = ordered[: int(n)] if rank == "top" else ordered[::-1][: int(n)]
            resolved += [(c, amount) for c in chosen]
        elif name not in columns:
            raise StageError(f"shift: no feature '{name}' (features: {', '.join(map(str, columns))})")
        else:
            resolved.append((name, amount))
    return resolved


@dataclass
class Outcome:
    """The traffic a rehearsal sent, and the monitor's verdict on it."""

    windows: int
    rows: int
    shifted: str  # what was sent: the test split, unshifted, or which feature shifted by how much
    failed: int  # requests that did not answer 200
    verdict: Verdict


def rehearsal(params: Params, shift_spec: str | None = None, lock_file: Path | None = None) -> Outcome:
    import pandas as pd

    from lockstep.inference_log import InferenceLog, is_postgres
    from lockstep.monitor.calibrate import fresh
    from lockstep.monitor.judge import monitor
    from lockstep.serve.client import Client
    from lockstep.serve.server import Running, build

    shift = parse_shift(shift_spec)
    base = params.monitor or MonitorConfig()
    # a SQLite file of its own beside production's (or in monitor/ when production's is PostgreSQL)
    local = Path("monitor/inference.db") if is_postgres(base.store) else Path(base.store)
    log = local.with_name("rehearsal.db")
    cfg = base.model_copy(update={"log": str(log), "log_url_env": "", "out": base.out / "rehearsal",
                                  "quality": base.quality.model_copy(update={"labels": None})})  # fmt: skip
    test_file = base.reference.with_name("test.parquet")
    if not test_file.exists():
        raise StageError(f"no test split at {test_file}: run the pipeline first (make repro)")
    target = base.target or (params.data.target if params.data else None)
    test = pd.read_parquet(test_file).drop(columns=[target] if target else [], errors="ignore")
    if shift:
        from lockstep.deploy_lock import read_lock
        from lockstep.importance import of_version

        stable = read_lock(lock_file or params.deploy.lock_file).stable.model
        weights = of_version(stable.name, stable.version) if any(n.startswith("@") for n, _ in shift) else None
        shift = resolve(shift, [str(c) for c in test.columns], weights)
        reference = pd.read_parquet(base.reference)
        for feature, amount in shift:
            test[feature] = test[feature] + amount * float(reference[feature].std())
    for path in (log, log.with_name(log.name + "-wal"), log.with_name(log.name + "-shm")):
        path.unlink(missing_ok=True)
    app, service = build(params, lock_file, log=False)
    service.log = InferenceLog(log, 1.0, cfg.queue_size, service.metrics.log_dropped.inc)
    rows = max(cfg.min_rows, len(test))
    clock: dict[str, Any] = {"now": 0.0}
    service.clock = lambda: clock["now"]
    start = (pd.Timestamp.now(tz="UTC").timestamp() // cfg.window_s - cfg.windows_m) * cfg.window_s
    failed = 0
    with Running(app) as running:
        http = Client(running.url)
        for w in range(cfg.windows_m):
            # a split smaller than a window: drawn again as calibrate draws it (no repeated values)
            sample = fresh(test, rows, seed=w) if rows > len(test) else test.sample(n=rows, random_state=w)
            records = sample.to_dict(orient="records")
            for i in range(0, rows, BATCH):
                clock["now"] = start + w * cfg.window_s + cfg.window_s * i / rows
                status, _, _ = http.post("/v1/predict", {"rows": records[i : i + BATCH]}, key=f"rehearsal-{i}")
                failed += status != 200
    service.close()
    what = ", ".join(f"{f} shifted by {a:+g} sd" for f, a in shift) if shift else "the test split, unshifted"
    verdict = monitor(params, now=clock["now"], registry=False, cfg=cfg)
    return Outcome(cfg.windows_m, rows, what, failed, verdict)
