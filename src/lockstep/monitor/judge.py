"""`lockstep monitor`: judge the last M windows of the inference log against the training reference,
write reports/monitor/{metrics.json, report.html}, tag the serving versions in the registry, and
request retraining (reports/monitor/retrain.json) when at least N of the last M windows breach and
the latest does, or (with delayed labels, conf/monitor quality) when at least N of the windows with
enough labels fail on quality and the latest of them does."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lockstep import importance
from lockstep.classes import named, of_version
from lockstep.config import Params
from lockstep.deploy_lock import DeployLock, ModelRef
from lockstep.inference_log import describe, is_postgres
from lockstep.settings import MonitorConfig


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


META = ["_ts", "_request_id", "_row"]  # what logged_rows adds to the inputs: when, which request, which row


def logged_rows(store: str | Path) -> dict[str, tuple[Any, Any]]:
    """The logged predict requests of each serving variant (stable, canary; the shadow arm's are left
    out), one row per input row: {variant: (inputs with ts, request id and row, predictions)}."""
    import pandas as pd

    from lockstep.inference_log import read_log

    by_variant: dict[str, tuple[list[Any], list[Any], list[tuple[float, Any, int]]]] = {}
    for record in read_log(store):
        if record["endpoint"] != "predict" or record["variant"] == "shadow" or record["error"]:
            continue
        inputs, predictions, meta = by_variant.setdefault(record["variant"], ([], [], []))
        inputs.extend(record["inputs"])
        predictions.extend(record["outputs"])
        meta.extend((record["ts"], record["request_id"], row) for row in range(len(record["inputs"])))
    result = {}
    for variant, (inputs, predictions, meta) in by_variant.items():
        frame = pd.DataFrame(inputs)
        frame[META] = pd.DataFrame(meta, columns=META, index=frame.index)
        result[variant] = (frame, pd.Series(predictions, name="prediction"))
    return result


def reference_predictions(params: Params, model_ref: ModelRef, features: Any) -> Any:
    """A variant's model's predictions on the reference, through the project's prepare_rows hook."""
    import mlflow
    import pandas as pd

    from lockstep.hooks import load_hooks
    from lockstep.tracking import mlflow_client

    prepare = load_hooks(params.deploy.hooks).prepare_rows
    with mlflow_client():
        model = mlflow.pyfunc.load_model(model_ref.uri)
    out = model.predict(prepare(features) if prepare else features)
    values = out.tolist() if hasattr(out, "tolist") else list(out)
    # as the service answered them: a binary model's 0/1 as class names (lockstep.classes)
    return pd.Series(named(values, of_version(model_ref.name, model_ref.version)), name="prediction")


def prompt_checks(cfg: MonitorConfig, params: Params, variant: str, since: float, until: float) -> dict[str, Any]:
    """Each prompt's answers logged by one variant in [since, until) against its golden-set baseline."""
    from lockstep.inference_log import read_log
    from lockstep.monitor.checks import prompt_quality

    paths = params.paths
    reports = (paths and paths.prompt_reports) or Path("reports/prompts")
    outputs = (paths and paths.prompt_outputs) or Path("data/prompt_outputs")
    by_name: dict[str, list[dict[str, Any]]] = {}
    for record in read_log(cfg.store, since, until):
        if record["endpoint"] == "prompt" and record["variant"] == variant and not record["error"]:
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


def tag_versions(lock: DeployLock, tags_by_variant: dict[str, dict[str, str]]) -> list[str]:
    """Each variant's tags on the model version it serves (the stable variant's last, so it wins
    when both serve the same version); the versions tagged, as name/version."""
    from lockstep.tracking import mlflow_client

    order = sorted(tags_by_variant, key=lambda v: v == "stable")
    tagged = set()
    with mlflow_client() as client:
        for variant in order:
            model = lock.variants[variant].model
            for key, value in tags_by_variant[variant].items():
                client.set_model_version_tag(model.name, str(model.version), key, value)
            tagged.add((model.name, model.version))
    return [f"{name}/{version}" for name, version in sorted(tagged)]


def judge(
    cfg: Any, reference: Any, ref_predictions: Any, current: Any, predictions: Any, first: int, latest: int,
    weights: dict[str, float] | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """One variant's windows first..latest (window numbers), each judged against the reference when it
    holds at least min_rows rows."""
    from lockstep.monitor.checks import window_drift

    index = (current["_ts"] // cfg.window_s).astype(int)
    windows = []
    for i in range(first, latest + 1):
        mask = (index == i).to_numpy()
        rows = int(mask.sum())
        window: dict[str, Any] = {"start": _iso(i * cfg.window_s), "rows": rows, "judged": rows >= cfg.min_rows}
        if window["judged"]:
            features = current[mask].drop(columns=META)
            window |= window_drift(reference, ref_predictions, features, predictions[mask], cfg.drift, weights)
        else:
            window |= {"breach": False, "failing": []}
        windows.append(window)
    return windows


def quality_checks(
    windows: list[dict[str, Any]], labelled: Any, first: int, metric: str, offline: float | None, q: Any
) -> None:  # fmt: skip
    """Each window's labelled rows judged on quality (lockstep.monitor.labels); a failing window breaches."""
    from lockstep.monitor.labels import window_quality

    for i, window in enumerate(windows, first):
        window["quality"] = window_quality(labelled[labelled["window"] == i], metric, offline, q)
        if window["quality"]["failing"]:
            window["failing"] = [*window["failing"], "quality"]
            window["breach"] = True


def quality_fails(windows: list[dict[str, Any]]) -> list[bool]:
    """Whether each window with enough labels to judge fails on quality, oldest first."""
    return [bool(w["quality"]["failing"]) for w in windows if w.get("quality", {}).get("judged")]


def variant_summary(windows: list[dict[str, Any]], model: ModelRef) -> dict[str, Any]:
    """A variant's result: its latest judged window's figures, the latest window's failing signals, and
    the quality of its latest window with enough labels (else of its latest window)."""
    judged = [w for w in windows if w["judged"]]
    rated = [w["quality"] for w in windows if w.get("quality", {}).get("judged")]
    last = judged[-1] if judged else {"drift_share": 0.0, "weighted_drift_share": 0.0, "prediction_psi": 0.0, "rows": 0}
    return {
        "model": f"{model.name}/{model.version}", "windows_judged": len(judged),
        "breaches": sum(w["breach"] for w in windows), "drift_share": last["drift_share"],
        "weighted_drift_share": last.get("weighted_drift_share", 0.0),
        "prediction_psi": last["prediction_psi"], "rows": last["rows"], "failing": windows[-1]["failing"],
        "drifted_features": last.get("drifted_features", []),
        "quality": rated[-1] if rated else windows[-1].get("quality"), "quality_windows_judged": len(rated),
        "features": {n: {"statistic": f["statistic"], "value": round(f["value"], 6), "drifted": f["drifted"]}
                     for n, f in last.get("features", {}).items()},
    }  # fmt: skip


def combine(by_variant: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The service's windows: one breaches when any variant's does; failing signals of a variant
    other than stable are prefixed with its name (canary:dataset_drift)."""
    combined = []
    for parts in zip(*by_variant.values(), strict=True):
        named = zip(by_variant, parts, strict=True)
        failing = [f"{'' if v == 'stable' else v + ':'}{s}" for v, w in named for s in w["failing"]]
        combined.append({"start": parts[0]["start"], "rows": sum(w["rows"] for w in parts),
                         "judged": any(w["judged"] for w in parts), "breach": any(w["breach"] for w in parts),
                         "failing": failing})  # fmt: skip
    return combined


@dataclass
class Verdict:
    """What `lockstep monitor` found: the summary written to metrics.json, each variant's, the
    versions tagged, and the retraining request when one was written."""

    summary: dict[str, Any]
    variants: dict[str, dict[str, Any]]
    tagged: list[str]
    request: Path | None


def monitor(
    params: Params, now: float | None = None, registry: bool = True, cfg: MonitorConfig | None = None
) -> Verdict:
    """The last windows_m windows judged, the reports written, the versions tagged (unless registry is
    False), retrain.json written when retraining is due (removed when it is not)."""
    import time

    import pandas as pd

    from lockstep.config import StageError
    from lockstep.deploy_lock import read_lock
    from lockstep.monitor import labels as labels_module
    from lockstep.monitor.checks import retrain_due
    from lockstep.monitor.report import write_report

    cfg = cfg or params.monitor or MonitorConfig()
    if not is_postgres(cfg.store) and not Path(cfg.store).exists():
        raise StageError(f"no inference log at {cfg.store}: serve with conf/monitor (make serve) first")
    if not cfg.reference.exists():
        raise StageError(f"no reference at {cfg.reference}: run the pipeline first (make repro)")
    target = cfg.target or (params.data.target if params.data else None)
    reference = pd.read_parquet(cfg.reference).drop(columns=[target] if target else [], errors="ignore")
    lock = read_lock(params.deploy.lock_file)
    every = logged_rows(cfg.store)
    logged = {v: rows for v, rows in every.items() if v in lock.variants}
    if not logged:
        raise StageError(f"{describe(cfg.store)} holds no predictions of deployment {lock.deploy_id}'s variants yet")
    now = time.time() if now is None else now
    latest = max(int(frame["_ts"].max() // cfg.window_s) for frame, _ in logged.values())
    first = latest - cfg.windows_m + 1
    labels, metric, unknown_labels = None, "", 0
    if cfg.quality.labels is not None:  # delayed labels, joined by request id
        metric = labels_module.metric_of(cfg.quality, params.data.task if params.data else None)
        labels = labels_module.read_labels(cfg.quality.labels, numeric=metric != "accuracy")
        served_keys = pd.concat(
            [pd.DataFrame({"request_id": f["_request_id"], "row": f["_row"]}) for f, _ in every.values()]
        )
        unknown_labels = labels_module.unknown(labels, served_keys)
    variants: dict[str, dict[str, Any]] = {}
    for name in sorted(logged, key=lambda v: (v != "stable", v)):  # stable first
        current, predictions = logged[name]
        model = lock.variants[name].model
        ref_predictions = reference_predictions(params, model, reference)
        weights = importance.of_version(model.name, model.version)  # what the model uses (register time)
        windows = judge(cfg, reference, ref_predictions, current, predictions, first, latest, weights)
        if labels is not None:
            served = pd.DataFrame({"request_id": current["_request_id"], "row": current["_row"],
                                   "prediction": predictions.to_numpy(),
                                   "window": (current["_ts"] // cfg.window_s).astype(int)})  # fmt: skip
            offline = labels_module.offline_metric(model, metric)
            quality_checks(windows, labels_module.joined(served, labels), first, metric, offline, cfg.quality)
        prompts = prompt_checks(cfg, params, name, latest * cfg.window_s, (latest + 1) * cfg.window_s)
        prompt_failing = [f"prompt:{p}:{signal}" for p, r in prompts.items() for signal in r["failing"]]
        if prompt_failing:
            windows[-1]["failing"] = [*windows[-1]["failing"], *prompt_failing]
            windows[-1]["breach"] = True
        latest_rows = (current["_ts"] // cfg.window_s).astype(int).to_numpy() == latest
        variants[name] = {
            "summary": variant_summary(windows, model) | {"prompts": prompts}, "windows": windows,
            "ref_predictions": ref_predictions, "current": current[latest_rows].drop(columns=META),
            "predictions": predictions[latest_rows],
        }  # fmt: skip
    windows = combine({name: v["windows"] for name, v in variants.items()})
    breaches = [w["breach"] for w in windows]
    drift_due = retrain_due(breaches, cfg.breaches_n, cfg.windows_m)
    # quality: at least N of the windows with enough labels fail, the latest of them included
    quality_due = [
        name for name, v in variants.items() if retrain_due(quality_fails(v["windows"]), cfg.breaches_n, cfg.windows_m)
    ]
    retrain = drift_due or bool(quality_due)
    main = next(iter(variants.values()))["summary"]  # stable's figures at the top, when it has traffic
    summary = {
        "last_check": _iso(now), "windows": len(windows), "windows_judged": sum(w["judged"] for w in windows),
        "breaches": sum(breaches), "breaches_n": cfg.breaches_n, "retrain": retrain,
        "drift_share": main["drift_share"], "weighted_drift_share": main["weighted_drift_share"],
        "prediction_psi": main["prediction_psi"], "rows": main["rows"],
        "failing": windows[-1]["failing"], "drifted_features": main["drifted_features"],
        "quality": main["quality"],
    }  # fmt: skip
    if labels is not None:
        summary["labels"] = {"path": str(cfg.quality.labels), "read": len(labels), "unknown": unknown_labels}
    cfg.out.mkdir(parents=True, exist_ok=True)
    metrics = {k: v for k, v in summary.items() if k != "last_check"}
    metrics["prompts"] = main["prompts"]
    metrics["features"] = main["features"]
    metrics["variants"] = {name: v["summary"] for name, v in variants.items()}
    (cfg.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    write_report(cfg.out / "report.html", summary, windows, variants, reference, cfg.drift.categorical_max_unique)
    tagged = []
    if registry:
        tags = {
            name: {"monitor.drift_share": str(v["summary"]["drift_share"]), "monitor.last_check": summary["last_check"],
                   "monitor.failing": ",".join(v["summary"]["failing"]) or "none"}
            | ({"monitor.quality": v["summary"]["quality"]["note"]} if v["summary"]["quality"] else {})
            for name, v in variants.items()
        }  # fmt: skip
        tagged = tag_versions(lock, tags)
    failing = ",".join(summary["failing"]) or "none"
    request = cfg.out / "retrain.json"
    if retrain:
        reasons, signals = [], []
        if drift_due:
            reasons.append(f"{sum(breaches)} of the last {len(windows)} windows breach ({failing} in the latest)")
            signals += summary["failing"]
        for name in quality_due:
            signal = "quality" if name == "stable" else f"{name}:quality"
            fails, q = quality_fails(variants[name]["windows"]), variants[name]["summary"]["quality"]
            reasons.append(f"{signal}: {sum(fails)} of {len(fails)} windows with enough labels fail ({q['note']},"
                           f" allowed drop {cfg.quality.max_drop:g})")  # fmt: skip
            signals += [] if signal in signals else [signal]
        reason = "; ".join(reasons)
        record = {"requested_at": summary["last_check"], "reason": reason, "signals": signals,
                  "deploy_id": lock.deploy_id, "versions": tagged,
                  "windows": [{k: w.get(k) for k in ("start", "rows", "breach", "failing")}
                              for w in windows]}  # fmt: skip
        request.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    else:
        request.unlink(missing_ok=True)
    return Verdict(summary, {name: v["summary"] for name, v in variants.items()}, tagged, request if retrain else None)
