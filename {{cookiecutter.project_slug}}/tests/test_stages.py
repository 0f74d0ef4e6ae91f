"""The project's stages run end to end on a tiny table: prepare -> train -> evaluate."""

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import set_params
from lockstep.config import ModelConfig
from lockstep.tabular import build_estimator
from sklearn.base import is_regressor

from {{ cookiecutter.package_name }}.stages import evaluate, prepare, train


def run_pipeline() -> dict:
    prepare.main()
    train.main()
    evaluate.main()
    return json.loads(Path("reports/metrics.json").read_text(encoding="utf-8"))


def test_binary_pipeline_writes_metrics_and_plots(workdir: Path) -> None:
    metrics = run_pipeline()
    assert len(pd.read_parquet("data/prepared/train.parquet")) == 48
    assert metrics["accuracy"] > 0.8
    assert {"f1", "roc_auc", "latency_p95_ms", "model_size_bytes"} <= set(metrics)
    with_rows = [p.name for p in sorted(Path("reports/plots").iterdir()) if len(p.read_text().splitlines()) > 1]
    assert with_rows == ["confusion.csv", "precision_recall.csv", "roc.csv"]  # the other tasks' hold a header only


def test_every_classifier_in_conf_trains(workdir: Path) -> None:
    for config in sorted(Path("conf/model").glob("*.yaml")):
        model = yaml.safe_load(config.read_text(encoding="utf-8"))
        if is_regressor(build_estimator(ModelConfig(**model))):
            continue  # regressors are exercised by the regression test below
        set_params(workdir, model=model)
        assert run_pipeline()["accuracy"] > 0.7, config.name


def test_regression_task(workdir: Path, tiny_frame: pd.DataFrame) -> None:
    tiny_frame.assign(label=tiny_frame["f1"] * 3 + 1).to_csv("raw.csv", index=False)
    ridge = yaml.safe_load(Path("conf/model/ridge.yaml").read_text(encoding="utf-8"))
    set_params(workdir, data={"task": "regression", "positive_class": None}, model=ridge)
    metrics = run_pipeline()
    assert metrics["r2"] > 0.9
    residuals = pd.read_csv("reports/plots/residuals.csv")
    assert list(residuals.columns) == ["actual", "predicted", "residual", "id"]
    assert len(residuals) == len(pd.read_parquet("data/prepared/test.parquet"))  # one row per test row
    assert residuals["residual"].to_numpy() == pytest.approx((residuals["actual"] - residuals["predicted"]).to_numpy())
    assert residuals["id"].is_unique  # the gate pairs base and head rows by it
    assert pd.read_csv("reports/plots/confusion.csv").empty  # a classification plot holds its header only


def test_a_bad_target_fails_in_one_line(workdir: Path, capsys: pytest.CaptureFixture) -> None:
    from lockstep.config import run

    set_params(workdir, data={"target": "nope"})
    assert run(prepare.main) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: prepare: raw.csv: target column 'nope' not found")
    assert len(err.splitlines()) == 1
