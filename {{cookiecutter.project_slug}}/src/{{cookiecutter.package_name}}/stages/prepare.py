"""Stage prepare: check the raw table and split it into train and test sets (Parquet)."""

import pandas as pd
from lockstep import tabular_dask
from lockstep.config import DataConfig, load, run
from lockstep.io import write_atomic
from lockstep.tabular import read_table, split


def clean(frame: pd.DataFrame, data: DataConfig) -> pd.DataFrame:
    """Your cleaning and feature engineering go here; it runs on the whole table, before the split
    (with `engine: dask` in conf/data, on one partition of the table at a time: keep it row by row)."""
    return frame


def main() -> None:
    data, paths = load("data", "paths")  # conf/data and the paths of conf/config.yaml, validated
    if data.engine == "dask":  # data larger than memory: read, checked and split in partitions
        train_rows, test_rows = tabular_dask.prepare(data, paths, clean)
    else:
        train, test = split(clean(read_table(data.path), data), data)  # checks the columns against conf/data first
        write_atomic(paths.train, train.to_parquet(index=False))
        write_atomic(paths.test, test.to_parquet(index=False))
        train_rows, test_rows = len(train), len(test)
    print(f"prepare: {train_rows} train rows, {test_rows} test rows -> {paths.prepared}")


if __name__ == "__main__":
    raise SystemExit(run(main))
