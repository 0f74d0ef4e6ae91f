"""Stage prepare: check the raw table and split it into train and test sets (Parquet)."""

import pandas as pd
from lockstep.config import DataConfig, load, run
from lockstep.io import write_atomic
from lockstep.tabular import read_table, split


def clean(frame: pd.DataFrame, data: DataConfig) -> pd.DataFrame:
    """Your cleaning and feature engineering go here; it runs on the whole table, before the split."""
    return frame


def main() -> None:
    data, paths = load("data", "paths")  # conf/data and the paths of conf/config.yaml, validated
    frame = clean(read_table(data.path), data)
    train, test = split(frame, data)  # checks the columns against conf/data first
    write_atomic(paths.train, train.to_parquet(index=False))
    write_atomic(paths.test, test.to_parquet(index=False))
    print(f"prepare: {len(train)} train rows, {len(test)} test rows -> {paths.prepared}")


if __name__ == "__main__":
    raise SystemExit(run(main))
