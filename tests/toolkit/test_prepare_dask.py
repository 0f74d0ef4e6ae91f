"""lockstep.tabular_dask: the prepare stage on Dask, on a small data set cut into several files."""

from __future__ import annotations

import sys
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import pytest

from lockstep.config import DataConfig, PathsConfig, StageError, run
from lockstep.tabular import read_table, split
from lockstep.tabular_dask import prepare

ROWS, FILES = 400, 4


@pytest.fixture
def frame() -> pd.DataFrame:
    """400 distinct rows: two features, an integer column and a text column, classes 'yes' / 'no'."""
    rng = np.random.default_rng(3)
    labels = rng.choice(["yes", "no"], ROWS)
    return pd.DataFrame(
        {
            "f1": np.where(labels == "yes", 1.0, -1.0) + rng.normal(0, 1, ROWS),
            "f2": rng.normal(0, 1, ROWS),
            "count": rng.integers(0, 50, ROWS),
            "city": rng.choice(["Lyon", "Oslo", "Porto"], ROWS),
            "label": labels,
        }
    )


def write_files(frame: pd.DataFrame, folder: Path, files: int = FILES, kind: str = "csv") -> Path:
    folder.mkdir(parents=True)
    for i, part in enumerate(np.array_split(np.arange(len(frame)), files)):
        rows = frame.iloc[part]
        if kind == "csv":
            rows.to_csv(folder / f"part-{i:02d}.csv", index=False)
        else:
            rows.to_parquet(folder / f"part-{i:02d}.parquet", index=False)
    return folder


def configs(tmp_path: Path, path: Path, **changes: object) -> tuple[DataConfig, PathsConfig]:
    data = {"path": path, "target": "label", "positive_class": "yes", "test_size": 0.25, "seed": 7, "engine": "dask"}
    out = tmp_path / "out"
    paths = PathsConfig(prepared=out, model=out / "m", metrics=out / "x", plots=out / "p", registration=out / "r")
    return DataConfig.model_validate(data | changes), paths


def keep(frame: pd.DataFrame, data: DataConfig) -> pd.DataFrame:
    return frame


def outputs(paths: PathsConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    return pd.read_parquet(paths.train), pd.read_parquet(paths.test)


def by_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows in a canonical order, to compare splits whatever order the partitions came in."""
    return frame.sort_values(list(frame.columns), ignore_index=True)


def test_split_in_partitions_keeps_every_row_once_with_the_pandas_columns_and_types(
    tmp_path: Path, frame: pd.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    data, paths = configs(tmp_path, write_files(frame, tmp_path / "raw"))
    counts = prepare(data, paths, keep)
    assert "prepare: 4 partition(s) on Dask's local threads scheduler" in capsys.readouterr().out
    train, test = outputs(paths)
    assert counts == (len(train), len(test))
    assert len(train) + len(test) == ROWS
    assert 0.2 < len(test) / ROWS < 0.3  # test_size 0.25, by hash: close to it, not exactly
    both = pd.concat([train, test], ignore_index=True)
    pd.testing.assert_frame_equal(by_rows(both), by_rows(frame))  # every row once, values as read
    assert set(test["label"]) == {"yes", "no"}
    # The same columns, in the same order, with the same types as the pandas path writes
    pandas_train, _ = split(read_table(write_one(frame, tmp_path)), data)
    pandas_train.to_parquet(tmp_path / "pandas.parquet", index=False)
    written = pd.read_parquet(tmp_path / "pandas.parquet")
    assert list(train.columns) == list(written.columns) == ["f1", "f2", "count", "city", "label"]
    assert train.dtypes.to_dict() == written.dtypes.to_dict()
    assert sorted(p.name for p in paths.prepared.iterdir()) == ["test.parquet", "train.parquet"]  # nothing left over


def write_one(frame: pd.DataFrame, tmp_path: Path) -> Path:
    frame.to_csv(tmp_path / "one.csv", index=False)
    return tmp_path / "one.csv"


def test_the_split_depends_on_the_seed_only_not_on_files_format_or_scheduler(
    tmp_path: Path, frame: pd.DataFrame
) -> None:
    def test_rows(path: Path, **changes: object) -> pd.DataFrame:
        data, paths = configs(tmp_path, path, **changes)
        prepare(data, paths, keep)
        return by_rows(outputs(paths)[1])

    four_csv = test_rows(write_files(frame, tmp_path / "csv"))
    pd.testing.assert_frame_equal(test_rows(tmp_path / "csv", scheduler="synchronous"), four_csv)
    pd.testing.assert_frame_equal(test_rows(write_one(frame, tmp_path)), four_csv)
    pd.testing.assert_frame_equal(test_rows(write_files(frame, tmp_path / "pq", files=3, kind="parquet")), four_csv)
    other_seed = test_rows(tmp_path / "csv", seed=8)
    assert not other_seed.equals(four_csv)
    # Appending a file moves no row between train and test
    more = write_files(pd.concat([frame, frame.assign(count=frame["count"] + 100)]), tmp_path / "more", files=8)
    grown = test_rows(more)
    pd.testing.assert_frame_equal(by_rows(grown[grown["count"] < 100]), four_csv)


def test_clean_runs_on_each_partition(tmp_path: Path, frame: pd.DataFrame) -> None:
    seen: list[int] = []

    def clean(part: pd.DataFrame, data: DataConfig) -> pd.DataFrame:
        seen.append(len(part))
        return part[part["count"] >= 10].assign(double=part["f1"] * 2)

    data, paths = configs(tmp_path, write_files(frame, tmp_path / "raw"))
    train_rows, test_rows = prepare(data, paths, clean)
    train, test = outputs(paths)
    assert train_rows + test_rows == (frame["count"] >= 10).sum()
    assert "double" in train.columns and (test["count"] >= 10).all()
    assert sorted(n for n in seen if n >= 100) == [100] * FILES  # once per file: one pass over the data


def test_a_distributed_scheduler_from_the_config(tmp_path: Path, frame: pd.DataFrame) -> None:
    from distributed import LocalCluster

    data, paths = configs(tmp_path, write_files(frame, tmp_path / "raw"))
    local = prepare(data, paths, keep)
    expected = by_rows(outputs(paths)[1])
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, host="127.0.0.1", protocol="tcp",
                      dashboard_address=None) as cluster:  # fmt: skip
        before = cluster.scheduler.transition_counter
        data, paths = configs(tmp_path, tmp_path / "raw", scheduler=cluster.scheduler_address)
        assert prepare(data, paths, keep) == local
        assert cluster.scheduler.transition_counter > before  # the cluster ran the tasks
    pd.testing.assert_frame_equal(by_rows(outputs(paths)[1]), expected)


def test_an_unreachable_scheduler_is_one_line(tmp_path: Path, frame: pd.DataFrame, refused_port: int) -> None:
    import distributed  # noqa: F401  (its config defaults first: leaving dask.config.set below must not drop them)

    data, paths = configs(tmp_path, write_files(frame, tmp_path / "raw"))
    address = f"tcp://127.0.0.1:{refused_port}"
    unreachable = {"scheduler-address": address, "distributed.comm.timeouts.connect": "1s"}
    with dask.config.set(unreachable), pytest.raises(StageError, match=rf"Dask scheduler {address}: cannot connect"):
        prepare(data, paths, keep)


def test_bad_input_fails_in_one_line_and_keeps_the_previous_outputs(tmp_path: Path, frame: pd.DataFrame) -> None:
    raw = write_files(frame, tmp_path / "raw")
    data, paths = configs(tmp_path, raw)
    prepare(data, paths, keep)
    before = outputs(paths)

    def fails(path: Path, message: str, **changes: object) -> None:
        data, paths = configs(tmp_path, path, **changes)
        with pytest.raises(StageError, match=message):
            prepare(data, paths, keep)
        pd.testing.assert_frame_equal(outputs(paths)[0], before[0])
        assert sorted(p.name for p in paths.prepared.iterdir()) == ["test.parquet", "train.parquet"]

    fails(raw, r"target column 'outcome' not found \(columns: f1, f2, count, city, label\)", target="outcome")
    fails(raw, r"feature columns not found: f9; fix data.features", features=["f1", "f9"])
    fails(raw, r"target 'label' has 2 classes; task multiclass needs 3", task="multiclass", positive_class=None)
    fails(tmp_path / "absent", r"absent: not found; run `dvc pull` or fix data.path")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "README.md").write_text("no data yet")
    fails(tmp_path / "empty", r"empty: no \*.csv or \*.parquet files in this directory; add data files")
    frame.to_parquet(raw / "extra.parquet")
    fails(raw, r"raw: holds both CSV and Parquet files; keep one format")
    (raw / "extra.parquet").unlink()
    gap = frame.assign(f2=frame["f2"].where(frame.index != 350))
    fails(write_files(gap, tmp_path / "gap"), r"gap: missing values in column\(s\) f2; clean the data")
    text = frame.astype({"count": object})
    text.loc[390, "count"] = "many"  # in the last file: the first block said integers
    fails(write_files(text, tmp_path / "text"), r"text: the files or blocks disagree .* in column\(s\) count; give")
    header = tmp_path / "header"
    write_files(frame, header)
    frame.rename(columns={"f2": "g2"}).iloc[:5].to_csv(header / "part-99.csv", index=False)
    fails(header, r"header/part-99.csv: its header differs from part-00.csv's; give every file the same header")
    no_rows = tmp_path / "no_rows"
    write_files(frame.iloc[:0], no_rows, files=1)
    fails(no_rows, r"no_rows: has no rows")


def test_without_dask_installed_the_fix_is_named(
    tmp_path: Path, frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data, paths = configs(tmp_path, write_files(frame, tmp_path / "raw"))
    monkeypatch.setitem(sys.modules, "dask", None)
    assert run(lambda: prepare(data, paths, keep), "prepare") == 1
    err = capsys.readouterr().err.strip()
    assert err == (
        "error: prepare: data.engine dask needs Dask: install the toolkit's dask extra"
        " (`make setup EXTRAS=dev,dask`, or set EXTRAS ?= dev,dask in the Makefile)"
    )


def test_the_pandas_engine_points_a_directory_at_dask(tmp_path: Path, frame: pd.DataFrame) -> None:
    with pytest.raises(StageError, match=r"raw: is a directory; set data.engine: dask in conf/data"):
        read_table(write_files(frame, tmp_path / "raw"))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"engine": "pandas", "scheduler": "threads"}, "scheduler applies to engine dask only"),
        ({"scheduler": "thread"}, "scheduler must be threads, processes, synchronous or a scheduler's address"),
        ({"engine": "spark"}, "Input should be 'pandas' or 'dask'"),
    ],
)
def test_engine_and_scheduler_are_validated(tmp_path: Path, changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        configs(tmp_path, tmp_path / "raw", **changes)
