"""Building blocks for a tabular project's own stages: check and split data, build a model, measure it.

The stages in a baked project (prepare, train, evaluate) are the team's code and call these.
Every function takes the typed config (conf/data, conf/model) and plain pandas objects, and
works for the three task types conf/data can declare: binary, multiclass and regression.
"""

from __future__ import annotations

import importlib
import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lockstep.config import DataConfig, ModelConfig, StageError, first_line
from lockstep.io import write_atomic

LATENCY_ROWS = 100  # rows timed one by one for the per-row latency percentiles: enough for a p95
CURVE_POINTS = 1000  # most points a ROC or precision-recall plot keeps: a smooth curve, a small file
MAX_CLASSES = 100  # a "multiclass" target with more distinct values is more likely a regression target


def read_table(path: Path) -> pd.DataFrame:
    """A CSV or Parquet file (the raw data, or a split that prepare wrote) as a table, with errors
    that say what to do."""
    import pyarrow

    parquet = path.suffix == ".parquet"
    if path.is_dir() and not parquet:  # a Parquet split is a directory when prepare ran on Dask
        raise StageError(
            f"{path}: is a directory; set data.engine: dask in conf/data to read a directory of CSV or Parquet"
            " files, or point data.path at one file"
        )
    try:  # Arrow's multithreaded C++ readers for both: several times faster than pandas' own
        frame = pd.read_parquet(path) if parquet else pd.read_csv(path, engine="pyarrow")
    except FileNotFoundError:
        fix = "`dvc repro` or `dvc pull`" if parquet else "`dvc pull` or fix data.path in conf/data"
        raise StageError(f"{path}: not found; run {fix}") from None
    except (pd.errors.EmptyDataError, pd.errors.ParserError, ValueError, OSError) as exc:
        if path.exists() and path.stat().st_size == 0:
            raise StageError(f"{path}: file is empty; point data.path in conf/data at a CSV with data") from None
        raise StageError(f"{path}: cannot be read as a table ({first_line(exc)}); fix the file or data.path") from None
    # Arrow keeps the memory it decoded the file in for reuse; hand it back, so that what the stage
    # does next (fit, predict) adds to the table alone, not to the table and the reader's buffers.
    pyarrow.default_memory_pool().release_unused()
    return frame


def check_frame(frame: pd.DataFrame, cfg: DataConfig) -> list[str]:
    """Validate the raw table against conf/data and return the feature columns to use."""
    if frame.empty:
        raise no_rows(cfg)
    features = feature_columns(list(frame.columns), cfg)
    used = [cfg.target, *features]
    classes = None if cfg.task == "regression" else frame[cfg.target].astype(str).unique()
    check_values(cfg, [c for c in used if frame[c].isna().any()], frame[cfg.target].dtype, classes)
    return features


def no_rows(cfg: DataConfig) -> StageError:
    return StageError(f"{cfg.path}: has no rows; point data.path in conf/data at a CSV with data")


def feature_columns(columns: list[str], cfg: DataConfig) -> list[str]:
    """The feature columns conf/data asks for, checked against the table's columns."""
    where = f"{cfg.path}"
    if cfg.target not in columns:
        raise StageError(
            f"{where}: target column '{cfg.target}' not found (columns: {', '.join(map(str, columns))});"
            " set data.target in conf/data"
        )
    features = cfg.features if cfg.features is not None else [c for c in columns if c != cfg.target]
    missing = [c for c in features if c not in columns]
    if missing:
        raise StageError(f"{where}: feature columns not found: {', '.join(missing)}; fix data.features in conf/data")
    if not features:
        raise StageError(f"{where}: no feature columns besides '{cfg.target}'; add columns or set data.features")
    return features


def check_values(cfg: DataConfig, with_nan: list[str], target_dtype: Any, classes: Any) -> None:
    """Check what the values hold against the task: no missing values, and a target that fits
    (numbers for regression; for classification, `classes` are its distinct values as text)."""
    where = f"{cfg.path}"
    if with_nan:
        raise StageError(
            f"{where}: missing values in column(s) {', '.join(with_nan)}; clean the data and `dvc add` it again"
        )
    if cfg.task == "regression":
        if not pd.api.types.is_numeric_dtype(target_dtype):
            raise StageError(f"{where}: target '{cfg.target}' is not numeric; task regression needs numbers")
        return
    classes = sorted(classes)
    if cfg.task == "binary" and len(classes) != 2:
        raise StageError(
            f"{where}: target '{cfg.target}' has {len(classes)} class(es) {classes[:10]}; a binary target needs"
            " exactly 2 (or set data.task: multiclass)"
        )
    if cfg.task == "binary" and cfg.positive_class not in classes:
        raise StageError(
            f"{where}: positive class '{cfg.positive_class}' not in target values {classes};"
            " set data.positive_class in conf/data"
        )
    if cfg.task == "multiclass" and not 2 < len(classes) <= MAX_CLASSES:
        raise StageError(
            f"{where}: target '{cfg.target}' has {len(classes)} classes; task multiclass needs 3 to {MAX_CLASSES}"
            " (use binary for 2, regression for a numeric target)"
        )


def split(frame: pd.DataFrame, cfg: DataConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Keep the configured columns and split them reproducibly (stratified for classification)."""
    from sklearn.model_selection import train_test_split

    columns = [*check_frame(frame, cfg), cfg.target]
    stratify = frame[cfg.target] if cfg.task != "regression" else None
    train, test = train_test_split(frame[columns], test_size=cfg.test_size, random_state=cfg.seed, stratify=stratify)
    return train, test


def features_and_labels(frame: pd.DataFrame, data: DataConfig) -> tuple[pd.DataFrame, pd.Series]:
    """Split a prepared table into features and labels: 0/1 for binary (1 is the positive class),
    class names as text for multiclass, numbers for regression."""
    if data.target not in frame.columns:
        raise StageError(f"prepared data has no column '{data.target}'; re-run the prepare stage")
    target = frame[data.target]
    if data.task == "binary":
        labels = (target.astype(str) == data.positive_class).astype(int)
    elif data.task == "multiclass":
        labels = target.astype(str)
    else:
        labels = target.astype(float)
    return frame.drop(columns=[data.target]), labels


def build_estimator(model: ModelConfig) -> Any:
    """Instantiate the estimator conf/model names by import path, optionally behind a standard scaler."""
    module_name, _, class_name = model.estimator.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError):
        raise StageError(f"model.estimator: cannot import '{model.estimator}'; fix it in conf/model") from None
    try:
        estimator = cls(**model.params)
    except TypeError as exc:
        raise StageError(f"model.params: {exc}; fix it in conf/model/{model.name}.yaml") from None
    if not model.scale:
        return estimator
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), estimator)


def fit(estimator: Any, features: pd.DataFrame, labels: pd.Series, name: str) -> Any:
    """Fit an estimator, turning the library's complaint about the data into one actionable line."""
    try:
        return estimator.fit(features, labels)
    except ValueError as exc:
        first = str(exc).splitlines()[0]
        raise StageError(f"model '{name}' cannot be fitted: {first}; check conf/model and conf/data") from None


def save_model(model: Any, path: Path) -> None:
    """Save a fitted model with joblib, whole or not at all."""
    import joblib

    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    write_atomic(path, buffer.getvalue())


def scores(model: Any, features: pd.DataFrame) -> np.ndarray:
    """Class scores per row (probabilities or decision values), for ROC AUC and the curves."""
    if hasattr(model, "predict_proba"):
        return np.asarray(model.predict_proba(features))
    if hasattr(model, "decision_function"):
        return np.asarray(model.decision_function(features))
    raise StageError(
        f"model {type(model).__name__} has neither predict_proba nor decision_function;"
        " choose a classifier that scores its predictions in conf/model"
    )


@dataclass(frozen=True)
class Predictions:
    """What a model says about every row of held-out data: computed once by predict(), read by
    quality() and plots(), so evaluate predicts the test split once (and scores it once)."""

    predicted: np.ndarray  # a class (classification) or a value (regression) per row
    positive: np.ndarray | None = None  # binary only: the positive class's score per row
    rows: np.ndarray | None = None  # a hash of each row's features: with the label, the row's id in the plots


def predict(task: str, model: Any, features: pd.DataFrame) -> Predictions:
    """The model's predictions on features, with the positive-class scores a binary task's metrics need."""
    predicted = np.asarray(model.predict(features))
    rows = pd.util.hash_pandas_object(features, index=False).to_numpy()
    numbers = np.issubdtype(predicted.dtype, np.floating)
    if task != "regression" and numbers and not np.all(np.mod(predicted, 1) == 0):
        raise StageError(
            f"model {type(model).__name__} predicts numbers, not classes; task {task} needs a classifier"
            " (conf/model), or set data.task: regression"
        )
    if task != "binary":
        return Predictions(predicted, rows=rows)
    positive = scores(model, features)
    return Predictions(predicted, positive[:, 1] if positive.ndim == 2 else positive, rows)


def quality(task: str, predictions: Predictions, labels: pd.Series) -> dict[str, float]:
    """The quality metrics of a task type on held-out data."""
    from sklearn import metrics

    predicted = predictions.predicted
    if task == "regression":
        return {
            "mae": float(metrics.mean_absolute_error(labels, predicted)),
            "rmse": float(np.sqrt(metrics.mean_squared_error(labels, predicted))),
            "r2": float(metrics.r2_score(labels, predicted)),
        }
    result = {"accuracy": float(metrics.accuracy_score(labels, predicted))}
    if task == "multiclass":
        result["f1_macro"] = float(metrics.f1_score(labels, predicted, average="macro", zero_division=0))
        result["f1_weighted"] = float(metrics.f1_score(labels, predicted, average="weighted", zero_division=0))
        return result
    # one pass for the three (the positive class is 1), not one each
    precision, recall, f1, _ = metrics.precision_recall_fscore_support(
        labels, predicted, average="binary", zero_division=0
    )
    result |= {"precision": float(precision), "recall": float(recall), "f1": float(f1)}
    result["roc_auc"] = float(metrics.roc_auc_score(labels, predictions.positive))
    return result


def latency(model: Any, features: pd.DataFrame, rows: int = LATENCY_ROWS) -> dict[str, float]:
    """Per-row prediction latency in milliseconds (p50 and p95), as a single request would see it."""
    timings = []
    for i in range(min(rows, len(features))):
        row = features.iloc[[i]]
        start = time.perf_counter()
        model.predict(row)
        timings.append((time.perf_counter() - start) * 1000)
    return {"latency_p50_ms": float(np.percentile(timings, 50)), "latency_p95_ms": float(np.percentile(timings, 95))}


PLOT_COLUMNS = {  # the files dvc.yaml's plots draw, and their columns
    "confusion": ["actual", "predicted", "id"],
    "roc": ["fpr", "tpr"],
    "precision_recall": ["recall", "precision"],
    "residuals": ["actual", "predicted", "residual", "id"],
}


def plots(data: DataConfig, predictions: Predictions, labels: pd.Series) -> dict[str, pd.DataFrame]:
    """Tables for DVC's plot templates, by task: confusion matrix (classification), ROC and
    precision-recall curves (binary), actual against predicted with residuals (regression).

    The confusion matrix and the residuals keep one row per test row (DVC's templates count and
    scatter them), with the row's `id`: the gate pairs the rows of the base and the head by it for
    its paired statistics. A curve keeps at most CURVE_POINTS of its thresholds, enough to draw it."""
    from sklearn import metrics

    predicted = predictions.predicted
    # Every task writes every file dvc.yaml draws; the other tasks' hold only their header, so
    # `dvc plots show` finds each file and warns about none (an empty chart instead).
    empty = {name: pd.DataFrame(columns=columns) for name, columns in PLOT_COLUMNS.items()}
    ids = {} if predictions.rows is None else {"id": row_ids(predictions.rows, labels)}
    if data.task == "regression":
        actual = labels.to_numpy(dtype=float)
        residuals = {"actual": actual, "predicted": predicted, "residual": actual - predicted}
        return empty | {"residuals": pd.DataFrame(residuals | ids)}
    if data.task == "multiclass":
        confusion = {"actual": labels.to_numpy(), "predicted": predicted.astype(str)} | ids
        return empty | {"confusion": pd.DataFrame(confusion)}
    names = [f"not_{data.positive_class}", data.positive_class]  # the class of 0 and of 1
    fpr, tpr, _ = metrics.roc_curve(labels, predictions.positive)
    precision, recall, _ = metrics.precision_recall_curve(labels, predictions.positive, drop_intermediate=True)
    return empty | {
        "confusion": pd.DataFrame(
            {
                "actual": pd.Categorical.from_codes(labels, categories=names),
                "predicted": pd.Categorical.from_codes(predicted.astype(int), categories=names),
            }
            | ids
        ),
        "roc": curve("fpr", fpr, "tpr", tpr),
        "precision_recall": curve("recall", recall, "precision", precision),
    }


def row_ids(rows: np.ndarray, labels: pd.Series) -> np.ndarray:
    """A stable id per test row, from its features' hash and its label, so that the same row pairs
    up whatever order a split comes in; a row that occurs again gets "-2", "-3", ..."""
    keys = pd.util.hash_pandas_object(pd.DataFrame({"row": rows, "label": labels.to_numpy()}), index=False)
    ids = pd.Series([f"{key:016x}" for key in keys.to_numpy()])
    repeat = ids.groupby(ids).cumcount().to_numpy()
    return np.where(repeat == 0, ids, ids + "-" + (repeat + 1).astype(str))


def curve(x_name: str, x: np.ndarray, y_name: str, y: np.ndarray, points: int = CURVE_POINTS) -> pd.DataFrame:
    """A curve's points, thinned to at most `points` evenly spaced thresholds, both ends kept."""
    keep = np.unique(np.linspace(0, len(x) - 1, points).round().astype(int))
    return pd.DataFrame({x_name: x[keep], y_name: y[keep]})
