"""The prepare stage on Dask, for raw data larger than memory (conf/data `engine: dask`).

The raw data (one CSV or Parquet file, or a directory of them) is read lazily in partitions,
cleaned partition by partition with the project's own clean(), checked with the same rules as
the pandas path (lockstep.tabular) and split into the same outputs: train.parquet and
test.parquet under paths.prepared, written by Dask as directories of part files, which pandas
(and so the train and evaluate stages) read as one table each.

The split is not the pandas one. A row goes to the test set when a seeded hash of its values
falls below test_size, so it does not depend on how the data is cut into partitions (Dask's own
random_split does, and Dask's default CSV block size depends on the machine's memory and cores):
the same data and seed give the same split on a laptop, in CI and on a cluster, and rows keep
their side when files are added. The price: the test share is test_size only approximately,
identical rows always land on the same side, and the split is not stratified.

Dask runs on this machine (threads by default), or on a dask.distributed cluster when
DASK_SCHEDULER_ADDRESS (Dask's own variable) or data.scheduler names a scheduler's address.
Needs the toolkit's `dask` extra; imported only by projects that choose this engine.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from lockstep.config import DataConfig, PathsConfig, StageError, first_line
from lockstep.tabular import check_values, feature_columns, no_rows

Clean = Callable[[pd.DataFrame, DataConfig], pd.DataFrame]
# Errors of Dask's readers met while computing (a bad line, files that disagree), as opposed to
# errors of the project's own clean(), which keep their traceback.
READ_ERRORS = ("Mismatched dtypes", "The columns in the computed data do not match", "Metadata mismatch")


def _dask() -> Any:
    try:
        import dask
        import dask.dataframe
    except ImportError:
        raise StageError(
            "data.engine dask needs Dask: install the toolkit's dask extra (`make setup EXTRAS=dev,dask`,"
            " or set EXTRAS ?= dev,dask in the Makefile)"
        ) from None
    return dask


def data_files(path: Path) -> list[Path]:
    """The files to read: path itself, or every Parquet (else CSV) file under a directory, in name order."""
    if not path.exists():
        raise StageError(f"{path}: not found; run `dvc pull` or fix data.path in conf/data")
    if not path.is_dir():
        return [path]
    parquet, csv = sorted(path.rglob("*.parquet")), sorted(path.rglob("*.csv"))
    if parquet and csv:
        raise StageError(f"{path}: holds both CSV and Parquet files; keep one format in the directory")
    if not parquet and not csv:
        raise StageError(f"{path}: no *.csv or *.parquet files in this directory; add data files or fix data.path")
    return parquet or csv


def read(path: Path) -> Any:
    """The raw data as a lazy Dask DataFrame: only the CSV headers and the first block are read now."""
    import dask.dataframe as dd

    files = data_files(path)
    absolute = [str(f.resolve()) for f in files]  # a cluster's workers have their own working directory
    try:
        if files[0].suffix == ".parquet":
            return dd.read_parquet(absolute)
        header = list(pd.read_csv(files[0], nrows=0).columns)
        for other in files[1:]:  # Dask would take later files' columns by position, whatever their header
            if list(pd.read_csv(other, nrows=0).columns) != header:
                raise StageError(f"{other}: its header differs from {files[0].name}'s; give every file the same header")
        return dd.read_csv(absolute)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, ValueError, OSError) as exc:
        reason = first_line(exc)
        raise StageError(f"{path}: cannot be read as a table ({reason}); fix the file(s) or data.path") from None


def split_key(seed: int) -> str:
    """The 16-character key of pandas' row hash, derived from the split's seed."""
    return hashlib.sha256(f"lockstep-split:{seed}".encode()).hexdigest()[:16]


def is_test(part: pd.DataFrame, test_size: float, key: str) -> pd.Series:
    """True for the rows of a partition that go to the test set: their hash, scaled to [0, 1), < test_size."""
    hashes = pd.util.hash_pandas_object(part, index=False, hash_key=key)
    return hashes.astype("float64") / 2.0**64 < test_size


@contextmanager
def scheduler(data: DataConfig) -> Iterator[str]:
    """Run Dask's computations on a cluster when an address is given, else on this machine; says which."""
    dask = _dask()
    address = dask.config.get("scheduler-address", None)  # DASK_SCHEDULER_ADDRESS or Dask's config files
    address = address or (data.scheduler if data.scheduler and "://" in data.scheduler else None)
    if not address:
        local = data.scheduler or "threads"
        with dask.config.set(scheduler=local):
            yield f"Dask's local {local} scheduler"
        return
    try:
        from distributed import Client
    except ImportError:
        raise StageError(
            f"Dask scheduler {address}: dask.distributed is not installed; install the dask extra"
        ) from None
    try:
        client = Client(address, set_as_default=True)
    except (OSError, TimeoutError) as exc:
        raise StageError(
            f"Dask scheduler {address}: cannot connect ({first_line(exc)}); start the cluster, or fix"
            " DASK_SCHEDULER_ADDRESS / data.scheduler in conf/data"
        ) from None
    with client:
        workers = len(client.scheduler_info(n_workers=-1)["workers"])
        yield f"the Dask cluster at {address} ({workers} worker{'s' * (workers != 1)})"


def prepare(data: DataConfig, paths: PathsConfig, clean: Clean) -> tuple[int, int]:
    """Read, clean, check and split the raw data in partitions; write paths.train and paths.test.

    One pass over the data: the statistics the checks need are computed with the writes, into
    temporary directories that replace the outputs only when every check passes.
    Returns the number of train and test rows.
    """
    dask = _dask()
    with dask.config.set({"dataframe.convert-string": False}), scheduler(data) as where:
        frame = read(data.path).map_partitions(clean, data)  # the project's clean(), partition by partition
        used = [*feature_columns(list(frame.columns), data), data.target]  # as the pandas split orders them
        frame = frame[used]
        test = frame.map_partitions(is_test, data.test_size, split_key(data.seed), meta=(None, bool))
        outputs = {paths.train: frame[~test], paths.test: frame[test]}
        classes = frame[data.target].astype(str).drop_duplicates() if data.task != "regression" else None
        partial = {out: out.with_name(f".{out.name}.partial").resolve() for out in outputs}
        paths.prepared.mkdir(parents=True, exist_ok=True)
        try:
            writes = [  # schema=None: each part's schema from its own rows, as pandas' to_parquet does
                part.to_parquet(partial[out], write_index=False, schema=None, compute=False)
                for out, part in outputs.items()
            ]
            counts = [part.shape[0] for part in outputs.values()]
            try:
                nan, classes, train_rows, test_rows, *_ = dask.compute(frame.isna().any(), classes, *counts, *writes)
            except (pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
                reason = first_line(exc)
                raise StageError(f"{data.path}: cannot be read as a table ({reason}); fix the file(s)") from None
            except ValueError as exc:
                if not str(exc).startswith(READ_ERRORS):
                    raise
                raise StageError(_mismatch(data.path, exc)) from None
            if train_rows + test_rows == 0:
                raise no_rows(data)
            check_values(data, [c for c in used if nan[c]], frame[data.target].dtype, classes)
            for out, tmp in partial.items():
                _replace(tmp, out)
        finally:
            for tmp in partial.values():
                shutil.rmtree(tmp, ignore_errors=True)
        print(f"prepare: {frame.npartitions} partition(s) on {where}")
    return int(train_rows), int(test_rows)


def _replace(new: Path, old: Path) -> None:
    """Put a finished output directory in place of the previous output (a file or a directory)."""
    if old.is_dir():
        shutil.rmtree(old)
    elif old.exists():
        old.unlink()
    new.rename(old)


def _mismatch(path: Path, exc: ValueError) -> str:
    """One line for files or blocks that disagree: the columns concerned, when Dask names them."""
    columns = [
        cells[1]
        for line in str(exc).splitlines()
        if len(cells := [c.strip() for c in line.split("|")]) > 3 and cells[1] not in ("Column", "")
    ]
    named = f" in column(s) {', '.join(columns)}" if columns else f" ({first_line(exc)})"
    return (
        f"{path}: the files or blocks disagree on their columns or types{named}; give every file the same"
        " header and every column one type (no text among numbers, no missing values in an integer column)"
    )
