"""lockstep.tabular for a project's prepare stage: read the raw table, check it against conf/data, split it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from lockstep.config import DataConfig, StageError, run
from lockstep.tabular import check_frame, read_table, split


def data_config(**changes: object) -> DataConfig:
    base = {"path": "raw.csv", "target": "label", "positive_class": "yes", "test_size": 0.25, "seed": 1}
    if changes.get("task", "binary") != "binary":
        base.pop("positive_class")
    return DataConfig.model_validate(base | changes)


def test_split_is_stratified_and_reproducible(tiny_frame: pd.DataFrame) -> None:
    train, test = split(tiny_frame, data_config())
    again, _ = split(tiny_frame, data_config())
    assert (len(train), len(test)) == (45, 15)
    assert train.equals(again)
    assert test["label"].value_counts().to_dict() in ({"yes": 8, "no": 7}, {"yes": 7, "no": 8})
    other_seed, _ = split(tiny_frame, data_config(seed=2))
    assert not train.equals(other_seed)


def test_selected_features_only(tiny_frame: pd.DataFrame) -> None:
    train, _ = split(tiny_frame, data_config(features=["f1"]))
    assert list(train.columns) == ["f1", "label"]
    assert check_frame(tiny_frame, data_config()) == ["f1", "f2", "noise"]


def test_multiclass_split_is_stratified(multiclass_frame: pd.DataFrame) -> None:
    train, test = split(multiclass_frame, data_config(task="multiclass", test_size=0.2))
    assert (len(train), len(test)) == (72, 18)
    assert test["label"].value_counts().to_dict() == {"red": 6, "green": 6, "blue": 6}


def test_regression_split_takes_a_numeric_target(regression_frame: pd.DataFrame) -> None:
    train, test = split(regression_frame, data_config(task="regression", target="price", test_size=0.25))
    assert (len(train), len(test)) == (60, 20)
    assert list(test.columns) == ["f1", "f2", "price"]


@pytest.mark.parametrize(
    ("change", "frame_edit", "message"),
    [
        ({"target": "outcome"}, None, r"target column 'outcome' not found \(columns: f1, f2, noise, label\)"),
        ({"features": ["f1", "f9"]}, None, r"feature columns not found: f9"),
        ({"features": []}, None, r"no feature columns besides 'label'"),
        ({"positive_class": "maybe"}, None, r"positive class 'maybe' not in target values \['no', 'yes'\]"),
        ({}, lambda f: f.assign(label="yes"), r"has 1 class\(es\)"),
        (
            {},
            lambda f: f.assign(label=["yes", "no", "maybe"] * 20),
            r"target 'label' has 3 class\(es\) \['maybe', 'no', 'yes'\]; a binary target needs exactly 2 "
            r"\(or set data.task: multiclass\)",
        ),
        ({"task": "multiclass"}, None, r"target 'label' has 2 classes; task multiclass needs 3 to 100"),
        ({"task": "regression"}, None, r"target 'label' is not numeric; task regression needs numbers"),
        ({}, lambda f: f.assign(f2=f["f2"].where(f.index != 3)), r"missing values in column\(s\) f2"),
        ({}, lambda f: f.iloc[0:0], r"has no rows"),
    ],
)
def test_bad_tables_fail_with_the_fix(tiny_frame, change, frame_edit, message) -> None:
    frame = frame_edit(tiny_frame) if frame_edit else tiny_frame
    with pytest.raises(StageError, match=message):
        split(frame, data_config(**change))


def test_multiclass_with_too_many_classes(tiny_frame: pd.DataFrame) -> None:
    frame = pd.concat([tiny_frame] * 2, ignore_index=True).assign(label=[f"c{i}" for i in range(120)])
    with pytest.raises(StageError, match=r"has 120 classes; task multiclass needs 3 to 100 .*regression"):
        check_frame(frame, data_config(task="multiclass"))


def test_read_table_reads_csv_and_parquet(tmp_path: Path, tiny_frame: pd.DataFrame) -> None:
    tiny_frame.to_csv(tmp_path / "raw.csv", index=False)
    tiny_frame.to_parquet(tmp_path / "raw.parquet", index=False)
    pd.testing.assert_frame_equal(read_table(tmp_path / "raw.csv"), tiny_frame)
    pd.testing.assert_frame_equal(read_table(tmp_path / "raw.parquet"), tiny_frame)


def test_unreadable_tables_fail_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(StageError, match=r"absent.csv: not found; run `dvc pull` or fix data.path in conf/data"):
        read_table(tmp_path / "absent.csv")
    with pytest.raises(StageError, match=r"test.parquet: not found; run `dvc repro` or `dvc pull`$"):
        read_table(tmp_path / "prepared" / "test.parquet")  # a split prepare has not written yet
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(StageError, match=r"empty.csv: file is empty; point data.path in conf/data at a CSV"):
        read_table(tmp_path / "empty.csv")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(StageError, match=r"bad.parquet: cannot be read as a table \(.+\); fix the file or data.path"):
        read_table(tmp_path / "bad.parquet")


def test_a_missing_file_is_reported_in_one_line(params: dict, capsys: pytest.CaptureFixture[str]) -> None:
    # What a project's prepare stage does, run as `python -m <package>.stages.prepare` runs it
    data = DataConfig.model_validate(params["data"])
    data.path.unlink()
    assert run(lambda: split(read_table(data.path), data), "prepare") == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: prepare: ") and "not found; run `dvc pull`" in err
    assert len(err.splitlines()) == 1
