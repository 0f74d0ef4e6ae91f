"""Stage train: fit the classifier chosen in conf/model on the training split."""

from __future__ import annotations

import importlib
import io
from typing import TYPE_CHECKING, Any

from {{ cookiecutter.package_name }}.config import (
    DataConfig,
    ModelConfig,
    StageError,
    load,
    run_stage,
    write_atomic,
)

if TYPE_CHECKING:
    import argparse

    import pandas as pd


def features_and_labels(frame: pd.DataFrame, data: DataConfig) -> tuple[pd.DataFrame, Any]:
    """Split a prepared table into features and 0/1 labels (1 is the positive class)."""
    if data.target not in frame.columns:
        raise StageError(f"prepared data has no column '{data.target}'; re-run the prepare stage")
    labels = (frame[data.target].astype(str) == data.positive_class).astype(int)
    return frame.drop(columns=[data.target]), labels


def build_estimator(model: ModelConfig) -> Any:
    """Instantiate the configured estimator, optionally behind a standard scaler."""
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


def fit(frame: pd.DataFrame, data: DataConfig, model: ModelConfig) -> Any:
    """Fit the configured estimator on a prepared table."""
    features, labels = features_and_labels(frame, data)
    estimator = build_estimator(model)
    try:
        return estimator.fit(features, labels)
    except ValueError as exc:
        raise StageError(f"model '{model.name}' cannot be fitted: {exc}") from None


def _main(args: argparse.Namespace) -> None:
    import joblib
    import pandas as pd

    data, model, paths = load("data", "model", "paths", path=args.params)
    estimator = fit(pd.read_csv(paths.train), data, model)
    buffer = io.BytesIO()
    joblib.dump(estimator, buffer)
    write_atomic(paths.model, buffer.getvalue())
    print(f"train: {model.name} fitted -> {paths.model}")


def main(argv: list[str] | None = None) -> int:
    return run_stage("train", __doc__, _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
