"""Stage evaluate: score the model on the test split, write metrics and plots, enforce floors."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from {{ cookiecutter.package_name }}.config import (
    StageError,
    load,
    run_stage,
    write_atomic,
)
from {{ cookiecutter.package_name }}.stages.train import features_and_labels

if TYPE_CHECKING:
    import argparse

    import pandas as pd

LATENCY_ROWS = 200  # rows timed one by one for the per-row latency percentiles


def positive_scores(model: Any, features: pd.DataFrame) -> Any:
    """A score per row that ranks the positive class higher, for ROC AUC and the curves."""
    if hasattr(model, "predict_proba"):
        return model.predict_proba(features)[:, 1]
    if hasattr(model, "decision_function"):
        return model.decision_function(features)
    raise StageError(
        f"model {type(model).__name__} has neither predict_proba nor decision_function;"
        " choose a classifier that scores its predictions in conf/model"
    )


def quality(model: Any, features: pd.DataFrame, labels: Any) -> dict[str, float]:
    """Classification metrics on held-out data (the positive class is label 1)."""
    from sklearn import metrics

    predicted = model.predict(features)
    scores = positive_scores(model, features)
    return {
        "accuracy": float(metrics.accuracy_score(labels, predicted)),
        "precision": float(metrics.precision_score(labels, predicted, zero_division=0)),
        "recall": float(metrics.recall_score(labels, predicted, zero_division=0)),
        "f1": float(metrics.f1_score(labels, predicted, zero_division=0)),
        "roc_auc": float(metrics.roc_auc_score(labels, scores)),
    }


def latency(model: Any, features: pd.DataFrame, rows: int = LATENCY_ROWS) -> dict[str, float]:
    """Per-row prediction latency in milliseconds (p50 and p95), as a single request would see it."""
    import numpy as np

    timings = []
    for i in range(min(rows, len(features))):
        row = features.iloc[[i]]
        start = time.perf_counter()
        model.predict(row)
        timings.append((time.perf_counter() - start) * 1000)
    return {
        "latency_p50_ms": float(np.percentile(timings, 50)),
        "latency_p95_ms": float(np.percentile(timings, 95)),
    }


def plot_data(model: Any, features: pd.DataFrame, labels: Any, positive: str) -> dict[str, list[dict[str, Any]]]:
    """Rows for DVC's plot templates: confusion matrix, ROC and precision-recall curves."""
    from sklearn import metrics

    names = {1: positive, 0: f"not_{positive}"}
    predicted = model.predict(features)
    scores = positive_scores(model, features)
    fpr, tpr, _ = metrics.roc_curve(labels, scores)
    precision, recall, _ = metrics.precision_recall_curve(labels, scores)
    return {
        "confusion": [
            {"actual": names[int(a)], "predicted": names[int(p)]} for a, p in zip(labels, predicted, strict=True)
        ],
        "roc": [{"fpr": float(f), "tpr": float(t)} for f, t in zip(fpr, tpr, strict=True)],
        "precision_recall": [
            {"recall": float(r), "precision": float(p)} for r, p in zip(recall, precision, strict=True)
        ],
    }


def broken_limits(
    metrics: dict[str, float], floors: dict[str, float], ceilings: dict[str, float] | None = None
) -> list[str]:
    """Describe each metric under its floor, over its ceiling, or missing: e.g. 'f1 0.810 < 0.850'."""
    broken = []
    for limits, fails, sign in ((floors, lambda v, x: not v >= x, "<"), (ceilings or {}, lambda v, x: not v <= x, ">")):
        for name, limit in limits.items():
            if name not in metrics:
                broken.append(f"{name} missing from metrics (limit {limit})")
            elif fails(metrics[name], limit):
                broken.append(f"{name} {metrics[name]:.3f} {sign} {limit:.3f}")
    return broken


def write_csv(path: Any, rows: list[dict[str, Any]]) -> None:
    """A plain CSV for DVC's plot templates (header from the first row)."""
    header = list(rows[0])
    lines = [",".join(header), *(",".join(str(row[k]) for k in header) for row in rows)]
    write_atomic(path, "\n".join(lines) + "\n")


def _main(args: argparse.Namespace) -> None:
    import joblib
    import pandas as pd

    data, evaluate, paths = load("data", "evaluate", "paths", path=args.params)
    model = joblib.load(paths.model)
    features, labels = features_and_labels(pd.read_csv(paths.test), data)

    metrics = quality(model, features, labels) | latency(model, features)
    metrics["model_size_bytes"] = paths.model.stat().st_size
    write_atomic(paths.metrics, json.dumps(metrics, indent=2) + "\n")
    for name, rows in plot_data(model, features, labels, data.positive_class).items():
        write_csv(paths.plots / f"{name}.csv", rows)
    print("evaluate: " + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))

    broken = broken_limits(metrics, evaluate.floors)
    if broken:
        raise StageError(f"metrics under their floors in conf/evaluate: {'; '.join(broken)}")


def main(argv: list[str] | None = None) -> int:
    return run_stage("evaluate", __doc__, _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
