"""`lockstep monitor-rehearsal [--shift FEATURE:+2sd]`: serve the locked versions on loopback with
an inference log of its own, send windows_m windows of traffic drawn from the test split (each
window min_rows rows or the whole split, whichever is larger; shifted when asked), then judge
them as `lockstep monitor` would. Time is virtual: each window's requests are stamped inside that
window, so the rehearsal takes seconds. Nothing is tagged in the registry; the outputs go to
reports/monitor/rehearsal/ and the log to monitor/rehearsal.db (both replaced each run)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from lockstep.config import StageError

SHIFT = re.compile(r"(?P<feature>[^:]+):(?P<amount>[+-]\d+(?:\.\d+)?)sd")
BATCH = 50  # rows per request


def parse_shift(spec: str | None) -> tuple[str, float] | None:
    if not spec:
        return None
    m = SHIFT.fullmatch(spec.strip())
    if not m:
        raise StageError(f"shift '{spec}': expected FEATURE:+Nsd, e.g. radius_mean:+2sd")
    return m["feature"], float(m["amount"])


def rehearsal(params_file: Path, shift_spec: str | None = None, lock_file: Path | None = None) -> int:
    import pandas as pd

    from lockstep.config import read_params
    from lockstep.monitor.command import monitor
    from lockstep.monitor.config import MonitorConfig, monitor_config
    from lockstep.monitor.log import InferenceLog, is_postgres
    from lockstep.serve.app import Running, build
    from lockstep.serve.client import Client

    shift = parse_shift(shift_spec)
    base = monitor_config(params_file) or MonitorConfig()
    # a SQLite file of its own beside production's (or in monitor/ when production's is PostgreSQL)
    local = Path("monitor/inference.db") if is_postgres(base.store) else Path(base.store)
    log = local.with_name("rehearsal.db")
    cfg = base.model_copy(update={"log": str(log), "log_url_env": "", "out": base.out / "rehearsal"})
    test_file = base.reference.with_name("test.parquet")
    if not test_file.exists():
        raise StageError(f"no test split at {test_file}: run the pipeline first (make repro)")
    params = read_params(params_file)
    target = base.target or params.get("data", {}).get("target")
    test = pd.read_parquet(test_file).drop(columns=[target] if target else [], errors="ignore")
    if shift:
        feature, amount = shift
        if feature not in test.columns:
            raise StageError(f"shift: no feature '{feature}' (features: {', '.join(map(str, test.columns))})")
        scale = float(pd.read_parquet(base.reference)[feature].std())
        test[feature] = test[feature] + amount * scale
    for path in (log, log.with_name(log.name + "-wal"), log.with_name(log.name + "-shm")):
        path.unlink(missing_ok=True)
    app, service = build(params_file, lock_file, log=False)
    service.log = InferenceLog(log, 1.0, cfg.queue_size, service.metrics.log_dropped.inc)
    rows = max(cfg.min_rows, len(test))
    clock: dict[str, Any] = {"now": 0.0}
    service.clock = lambda: clock["now"]
    start = (pd.Timestamp.now(tz="UTC").timestamp() // cfg.window_s - cfg.windows_m) * cfg.window_s
    failed = 0
    with Running(app) as running:
        http = Client(running.url)
        for w in range(cfg.windows_m):
            sample = test.sample(n=rows, replace=rows > len(test), random_state=w)
            records = sample.to_dict(orient="records")
            for i in range(0, rows, BATCH):
                clock["now"] = start + w * cfg.window_s + cfg.window_s * i / rows
                status, _, _ = http.post("/v1/predict", {"rows": records[i : i + BATCH]}, key=f"rehearsal-{i}")
                failed += status != 200
    service.close()
    what = f"{shift[0]} shifted by {shift[1]:+g} sd" if shift else "the test split, unshifted"
    print(f"monitor-rehearsal: {cfg.windows_m} windows of {rows} rows from {what}; {failed} failed request(s)")
    return monitor(params_file, now=clock["now"], registry=False, cfg=cfg)
