"""Stage prepare: validation of the raw table and a reproducible stratified split."""

from pathlib import Path

import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.config import DataConfig, StageError
from {{ cookiecutter.package_name }}.stages import prepare


def data_config(**changes: object) -> DataConfig:
    base = {"path": "raw.csv", "target": "label", "positive_class": "yes", "test_size": 0.25, "seed": 1}
    return DataConfig.model_validate(base | changes)


def test_split_is_stratified_and_reproducible(tiny_frame: pd.DataFrame) -> None:
    train, test = prepare.split(tiny_frame, data_config())
    again, _ = prepare.split(tiny_frame, data_config())
    assert (len(train), len(test)) == (45, 15)
    assert train.equals(again)
    assert test["label"].value_counts().to_dict() in ({"yes": 8, "no": 7}, {"yes": 7, "no": 8})


def test_selected_features_only(tiny_frame: pd.DataFrame) -> None:
    train, _ = prepare.split(tiny_frame, data_config(features=["f1"]))
    assert list(train.columns) == ["f1", "label"]


@pytest.mark.parametrize(
    ("change", "frame_edit", "message"),
    [
        ({"target": "outcome"}, None, r"target column 'outcome' not found"),
        ({"features": ["f1", "f9"]}, None, r"feature columns not found: f9"),
        ({"positive_class": "maybe"}, None, r"positive class 'maybe' not in target values"),
        ({}, lambda f: f.assign(label="yes"), r"has 1 class\(es\)"),
        ({}, lambda f: f.assign(f2=f["f2"].where(f.index != 3)), r"missing values in column\(s\) f2"),
        ({}, lambda f: f.iloc[0:0], r"has no rows"),
    ],
)
def test_bad_tables_fail_with_the_fix(tiny_frame, change, frame_edit, message) -> None:
    frame = frame_edit(tiny_frame) if frame_edit else tiny_frame
    with pytest.raises(StageError, match=message):
        prepare.split(frame, data_config(**change))


def test_main_writes_both_splits(params_file: Path, params: dict, capsys) -> None:
    assert prepare.main(["--params", str(params_file)]) == 0
    prepared = Path(params["paths"]["prepared"])
    assert len(pd.read_csv(prepared / "train.csv")) + len(pd.read_csv(prepared / "test.csv")) == 60


def test_main_reports_a_missing_file_in_one_line(params_file: Path, params: dict, capsys) -> None:
    Path(params["data"]["path"]).unlink()
    assert prepare.main(["--params", str(params_file)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: prepare: ") and "not found; run `dvc pull`" in err
    assert len(err.splitlines()) == 1
