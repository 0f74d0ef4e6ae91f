"""`lockstep monitor`: judge the last M windows of the inference log against the training reference,
write reports/monitor/{metrics.json, report.html}, tag the serving versions in the registry, and
request retraining (reports/monitor/retrain.json, exit status 4) when at least N of the last M
windows breach and the latest does."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RETRAIN_EXIT = 4  # a retraining request was written: CI reproduces and opens a pull request


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def logged_rows(log: Path) -> tuple[Any, Any]:
    """The logged predict requests, one row per input row: (inputs with ts, predictions)."""
    import pandas as pd

    from lockstep.monitor.log import read_log

    inputs, predictions, stamps = [], [], []
    for record in read_log(log):
        if record["endpoint"] != "predict" or record["variant"] == "shadow" or record["error"]:
            continue
        inputs.extend(record["inputs"])
        predictions.extend(record["outputs"])
        stamps.extend([record["ts"]] * len(record["inputs"]))
    frame = pd.DataFrame(inputs)
    frame["_ts"] = stamps
    return frame, pd.Series(predictions, name="prediction")


def reference_predictions(params_file: Path, lock: dict[str, Any], features: Any) -> Any:
    """The stable model's predictions on the reference, through the project's prepare_rows hook."""
    import importlib

    import mlflow
    import pandas as pd

    from lockstep.serve.config import deploy_config
    from lockstep.tracking import mlflow_client

    deploy = deploy_config(params_file)
    hooks = importlib.import_module(deploy.app) if deploy.app else None
    prepare = getattr(hooks, "prepare_rows", None)
    ref = lock["variants"]["stable"]["model"]
    with mlflow_client():
        model = mlflow.pyfunc.load_model(f"models:/{ref['name']}/{ref['version']}")
    out = model.predict(prepare(features) if prepare else features)
    return pd.Series(out.tolist() if hasattr(out, "tolist") else list(out), name="prediction")


def prompt_checks(cfg: Any, params: dict[str, Any], since: float, until: float) -> dict[str, Any]:
    """Each prompt's logged answers in [since, until) against its golden-set baseline."""
    from lockstep.monitor.checks import prompt_quality
    from lockstep.monitor.log import read_log

    paths = params.get("paths", {})
    reports = Path(paths.get("prompt_reports", "reports/prompts"))
    outputs = Path(paths.get("prompt_outputs", "data/prompt_outputs"))
    by_name: dict[str, list[dict[str, Any]]] = {}
    for record in read_log(cfg.log, since, until):
        if record["endpoint"] == "prompt" and record["variant"] != "shadow" and not record["error"]:
            by_name.setdefault(record["prompt_name"], []).append(record)
    results = {}
    for name, answers in sorted(by_name.items()):
        if len(answers) < cfg.prompts.min_answers:
            continue
        metrics_file, golden = reports / name / "metrics.json", outputs / f"{name}.jsonl"
        baseline = json.loads(metrics_file.read_text(encoding="utf-8")) if metrics_file.exists() else {}
        lines = golden.read_text(encoding="utf-8").splitlines() if golden.exists() else []
        golden_outputs = [str(json.loads(line).get("output", "")) for line in lines if line.strip()]
        results[name] = prompt_quality(answers, baseline, golden_outputs, cfg.prompts)
    return results


def tag_versions(lock: dict[str, Any], tags: dict[str, str]) -> list[str]:
    """The monitor's tags on every model version the lock serves; the versions tagged."""
    from lockstep.tracking import mlflow_client

    versions = sorted({(v["model"]["name"], int(v["model"]["version"])) for v in lock["variants"].values()})
    with mlflow_client() as client:
        for name, version in versions:
            for key, value in tags.items():
                client.set_model_version_tag(name, str(version), key, value)
    return [f"{name}/{version}" for name, version in versions]


def monitor(params_file: Path, now: float | None = None, registry: bool = True, cfg: Any = None) -> int:
    import time

    import pandas as pd

    from lockstep.config import StageError, read_params
    from lockstep.monitor.checks import retrain_due, window_drift
    from lockstep.monitor.config import MonitorConfig, monitor_config
    from lockstep.monitor.report import write_report
    from lockstep.serve.config import deploy_config
    from lockstep.serve.lock import read_lock

    cfg = cfg or monitor_config(params_file) or MonitorConfig()
    params = read_params(params_file)
    if not cfg.log.exists():
        raise StageError(f"no inference log at {cfg.log}: serve with conf/monitor (make serve) first")
    if not cfg.reference.exists():
        raise StageError(f"no reference at {cfg.reference}: run the pipeline first (make repro)")
    target = cfg.target or params.get("data", {}).get("target")
    reference = pd.read_parquet(cfg.reference).drop(columns=[target] if target else [], errors="ignore")
    lock = read_lock(deploy_config(params_file).lock_file)
    ref_predictions = reference_predictions(params_file, lock, reference)
    current, predictions = logged_rows(cfg.log)
    now = time.time() if now is None else now
    if current.empty:
        raise StageError(f"{cfg.log} holds no predictions yet")
    index = (current["_ts"] // cfg.window_s).astype(int)
    latest = int(index.max())
    windows = []
    for i in range(latest - cfg.windows_m + 1, latest + 1):
        mask = (index == i).to_numpy()
        rows = int(mask.sum())
        window: dict[str, Any] = {"start": _iso(i * cfg.window_s), "rows": rows, "judged": rows >= cfg.min_rows}
        if window["judged"]:
            window |= window_drift(
                reference, ref_predictions, current[mask].drop(columns="_ts"), predictions[mask], cfg.drift
            )
        else:
            window["breach"] = False
        windows.append(window)
    prompts = prompt_checks(cfg, params, latest * cfg.window_s, (latest + 1) * cfg.window_s)
    prompt_failing = [f"prompt:{name}:{signal}" for name, r in prompts.items() for signal in r["failing"]]
    if prompt_failing:
        windows[-1]["failing"] = [*windows[-1].get("failing", []), *prompt_failing]
        windows[-1]["breach"] = True
    breaches = [w["breach"] for w in windows]
    retrain = retrain_due(breaches, cfg.breaches_n, cfg.windows_m)
    judged = [w for w in windows if w["judged"]]
    last = judged[-1] if judged else {"drift_share": 0.0, "prediction_psi": 0.0, "failing": [], "rows": 0}
    summary = {
        "last_check": _iso(now), "windows": len(windows), "windows_judged": len(judged), "breaches": sum(breaches),
        "breaches_n": cfg.breaches_n, "retrain": retrain, "drift_share": last["drift_share"],
        "prediction_psi": last["prediction_psi"], "rows": last["rows"], "failing": windows[-1].get("failing", []),
        "drifted_features": last.get("drifted_features", []),
    }  # fmt: skip
    cfg.out.mkdir(parents=True, exist_ok=True)
    metrics = {k: v for k, v in summary.items() if k not in ("last_check",)}
    metrics["prompts"] = prompts
    metrics["features"] = {n: {"statistic": f["statistic"], "value": round(f["value"], 6), "drifted": f["drifted"]}
                           for n, f in last.get("features", {}).items()}  # fmt: skip
    (cfg.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    latest_mask = (index == latest).to_numpy()
    write_report(
        cfg.out / "report.html", summary, windows, reference, ref_predictions,
        current[latest_mask].drop(columns="_ts"), predictions[latest_mask], cfg.drift.categorical_max_unique,
    )  # fmt: skip
    failing = ",".join(summary["failing"]) or "none"
    tagged = []
    if registry:
        tags = {"monitor.drift_share": str(last["drift_share"]), "monitor.last_check": summary["last_check"],
                "monitor.failing": failing}  # fmt: skip
        tagged = tag_versions(lock, tags)
    request = cfg.out / "retrain.json"
    if retrain:
        reason = f"{sum(breaches)} of the last {len(windows)} windows breach ({failing} in the latest)"
        record = {"requested_at": summary["last_check"], "reason": reason, "deploy_id": lock["deploy_id"],
                  "versions": tagged, "windows": [{k: w.get(k) for k in ("start", "rows", "breach", "failing")}
                                                  for w in windows]}  # fmt: skip
        request.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    else:
        request.unlink(missing_ok=True)
    psi = last["prediction_psi"]
    print(f"monitor: {len(judged)} of {len(windows)} windows judged; latest drift share {last['drift_share']:.2f}, "
          f"prediction PSI {psi:.3f}, failing: {failing}; {sum(breaches)} breach(es)"
          f"{'; tagged ' + ', '.join(tagged) if tagged else ''}")  # fmt: skip
    if retrain:
        print(f"monitor: retraining requested ({request}); exit {RETRAIN_EXIT}")
        return RETRAIN_EXIT
    return 0 if math.isfinite(psi) else 1
