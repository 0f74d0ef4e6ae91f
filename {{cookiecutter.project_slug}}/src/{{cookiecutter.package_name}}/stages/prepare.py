"""Stage prepare: check the raw CSV and split it into stratified train and test sets."""

from __future__ import annotations

from typing import TYPE_CHECKING

from {{ cookiecutter.package_name }}.config import (
    DataConfig,
    StageError,
    load,
    run_stage,
    write_atomic,
)

if TYPE_CHECKING:
    import argparse

    import pandas as pd


def check_frame(frame: pd.DataFrame, cfg: DataConfig) -> list[str]:
    """Validate the raw table against conf/data and return the feature columns to use."""
    where = f"{cfg.path}"
    if frame.empty:
        raise StageError(f"{where}: has no rows; point data.path in conf/data at a CSV with data")
    if cfg.target not in frame.columns:
        raise StageError(
            f"{where}: target column '{cfg.target}' not found (columns: {', '.join(map(str, frame.columns))});"
            " set data.target in conf/data"
        )
    features = cfg.features if cfg.features is not None else [c for c in frame.columns if c != cfg.target]
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise StageError(f"{where}: feature columns not found: {', '.join(missing)}; fix data.features in conf/data")
    if not features:
        raise StageError(f"{where}: no feature columns besides '{cfg.target}'; add columns or set data.features")
    with_nan = [c for c in [cfg.target, *features] if frame[c].isna().any()]
    if with_nan:
        raise StageError(
            f"{where}: missing values in column(s) {', '.join(with_nan)}; clean the data and `dvc add` it again"
        )
    classes = sorted(frame[cfg.target].astype(str).unique())
    if len(classes) != 2:
        raise StageError(
            f"{where}: target '{cfg.target}' has {len(classes)} class(es) {classes}; a binary target needs exactly 2"
        )
    if cfg.positive_class not in classes:
        raise StageError(
            f"{where}: positive class '{cfg.positive_class}' not in target values {classes};"
            " set data.positive_class in conf/data"
        )
    return features


def split(frame: pd.DataFrame, cfg: DataConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Keep the configured columns and split them, stratified on the target, reproducibly."""
    from sklearn.model_selection import train_test_split

    features = check_frame(frame, cfg)
    columns = [*features, cfg.target]
    train, test = train_test_split(
        frame[columns], test_size=cfg.test_size, random_state=cfg.seed, stratify=frame[cfg.target]
    )
    return train, test


def _main(args: argparse.Namespace) -> None:
    import pandas as pd

    data, paths = load("data", "paths", path=args.params)
    try:
        frame = pd.read_csv(data.path)
    except FileNotFoundError:
        raise StageError(f"{data.path}: not found; run `dvc pull` or fix data.path in conf/data") from None
    except pd.errors.EmptyDataError:
        raise StageError(f"{data.path}: file is empty; point data.path in conf/data at a CSV with data") from None
    train, test = split(frame, data)
    write_atomic(paths.train, train.to_csv(index=False))
    write_atomic(paths.test, test.to_csv(index=False))
    print(f"prepare: {len(train)} train rows, {len(test)} test rows -> {paths.train}, {paths.test}")


def main(argv: list[str] | None = None) -> int:
    return run_stage("prepare", __doc__, _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
