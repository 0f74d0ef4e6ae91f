"""Delayed labels: the true outcomes of served predictions, appended later by the team to a CSV or
JSONL file (or a directory of them) with columns request_id, label and optionally row (the 0-based
row of a request of several rows; 0 by default). `lockstep monitor` joins them by request id to
the predictions the inference log holds, and judges each window with at least `min_labels`
labelled rows on quality (accuracy, MAE or RMSE) against the served version's offline metric,
the one evaluate wrote and register logged on the version's run."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lockstep.config import StageError
from lockstep.deploy_lock import ModelRef
from lockstep.settings import QualityConfig

KEYS = ["request_id", "row"]
FORMAT = (
    "one label a line: request_id,label[,row] (CSV with that header; row: 0, 1, ... of a request of several rows)"
    ' or {"request_id": ..., "label": ..., "row": ...} (JSONL)'
)
HIGHER_IS_BETTER = {"accuracy": True, "mae": False, "rmse": False}


def metric_of(q: QualityConfig, task: str | None) -> str:
    """The quality metric: conf/monitor's, else accuracy for classification and RMSE for regression."""
    return q.metric or ("rmse" if task == "regression" else "accuracy")


def _csv(file: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(file, dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        return pd.DataFrame(columns=[*KEYS, "label", "line"])
    except pd.errors.ParserError as exc:
        found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        if not found:
            raise StageError(f"labels {file}: not CSV ({exc}); {FORMAT}") from None
        expected, line, saw = found.groups()
        raise StageError(f"labels {file}:{line}: {saw} fields where the header has {expected}; {FORMAT}") from None
    missing = sorted({"request_id", "label"} - set(frame.columns))
    if missing:
        raise StageError(f"labels {file}:1: the header has no {' or '.join(missing)} column; {FORMAT}")
    return frame.assign(line=frame.index + 2)


def _jsonl(file: Path) -> pd.DataFrame:
    records = []
    for n, text in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except ValueError:
            raise StageError(f"labels {file}:{n}: not JSON; {FORMAT}") from None
        if not isinstance(record, dict) or not {"request_id", "label"} <= record.keys():
            raise StageError(f"labels {file}:{n}: needs request_id and label; {FORMAT}")
        records.append({k: record.get(k, "") for k in ("request_id", "label", "row")} | {"line": n})
    return pd.DataFrame(records, columns=[*KEYS, "label", "line"])


def _checked(frame: pd.DataFrame, file: Path, numeric: bool) -> pd.DataFrame:
    """Each label with its request id, row (an integer, 0 when not given) and, for a regression, a number."""
    frame = frame.assign(row=frame["row"] if "row" in frame.columns else "")
    blank = lambda v: pd.isna(v) or str(v).strip() == ""  # noqa: E731
    for record in frame.itertuples():
        where = f"labels {file}:{record.line}"
        if blank(record.request_id) or blank(record.label):
            raise StageError(f"{where}: an empty request_id or label; {FORMAT}")
        if not blank(record.row) and not re.fullmatch(r"\d+", str(record.row).strip()):
            raise StageError(f"{where}: row {record.row!r} is not a row number; {FORMAT}")
        if numeric:
            try:
                float(record.label)
            except ValueError:
                raise StageError(f"{where}: label {record.label!r} is not a number; {FORMAT}") from None
    row = frame["row"].fillna("").astype(str).str.strip().replace({"": "0"}).astype(int)
    label = frame["label"].astype(float) if numeric else frame["label"].astype(str).str.strip()
    return pd.DataFrame({"request_id": frame["request_id"].astype(str).str.strip(), "row": row, "label": label})


def read_labels(path: Path, numeric: bool) -> pd.DataFrame:
    """Every label of the file, or of the directory's *.csv and *.jsonl files (by name); a later label of
    the same request row replaces an earlier one. No file yet: no labels."""
    files = sorted(f for f in path.iterdir() if f.suffix in (".csv", ".jsonl")) if path.is_dir() else [path]
    frames = [_checked(_jsonl(f) if f.suffix == ".jsonl" else _csv(f), f, numeric) for f in files if f.is_file()]
    if not frames:
        return pd.DataFrame({"request_id": pd.Series(dtype=str), "row": pd.Series(dtype=int), "label": []})
    return pd.concat(frames, ignore_index=True).drop_duplicates(KEYS, keep="last")


def joined(served: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """The served rows (request_id, row, prediction, window) that have a label."""
    return served.merge(labels, on=KEYS, how="inner")


def unknown(labels: pd.DataFrame, served: pd.DataFrame) -> int:
    """Labels of request rows the log does not hold (never served, not sampled, or past retention)."""
    found = labels[KEYS].merge(served[KEYS].drop_duplicates(), on=KEYS, how="left", indicator=True)
    return int((found["_merge"] == "left_only").sum())


def score(metric: str, predictions: pd.Series, labels: pd.Series) -> float:
    if metric == "accuracy":
        return float((predictions.astype(str).to_numpy() == labels.astype(str).to_numpy()).mean())
    errors = pd.to_numeric(predictions, errors="coerce").to_numpy(float) - labels.to_numpy(float)
    return float(np.abs(errors).mean() if metric == "mae" else np.sqrt((errors**2).mean()))


def window_quality(rows: pd.DataFrame, metric: str, baseline: float | None, q: QualityConfig) -> dict[str, Any]:
    """One window's labelled rows judged: its metric against the offline one, worse by more than
    max_drop fails; fewer than min_labels rows are too few labels to judge (never a breach)."""
    result: dict[str, Any] = {"labelled": len(rows), "metric": metric, "offline": baseline, "failing": []}
    if len(rows) < q.min_labels:
        return result | {
            "judged": False,
            "value": None,
            "note": f"too few labels to judge ({len(rows)} of {q.min_labels})",
        }
    value = score(metric, rows["prediction"], rows["label"])
    result |= {"judged": True, "value": round(value, 4)}
    if baseline is None:
        return result | {"note": f"no offline {metric} on the served version to compare with"}
    worse = baseline - value if HIGHER_IS_BETTER[metric] else value - baseline
    result["note"] = f"{metric} {value:.4g} on {len(rows)} labelled rows, offline {baseline:.4g}"
    return result | {"failing": ["quality"] if worse > q.max_drop else []}


def offline_metric(model: ModelRef, metric: str) -> float | None:
    """The served version's metric on the test split, as evaluate wrote it and register logged it on
    the version's run; None when the run has none."""
    from lockstep.tracking import mlflow_client

    with mlflow_client() as client:
        version = client.get_model_version(model.name, str(model.version))
        try:
            return client.get_run(version.run_id).data.metrics.get(metric) if version.run_id else None
        except Exception:  # a run deleted, or out of reach: nothing to compare with
            return None
