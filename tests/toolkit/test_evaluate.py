"""Stage evaluate: metrics, plot data and the floors that stop the pipeline."""

import json
from pathlib import Path

import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.stages import evaluate, prepare, train


def test_metrics_and_plots_from_the_stage(params_file: Path, params: dict) -> None:
    for stage in (prepare, train, evaluate):
        assert stage.main(["--params", str(params_file)]) == 0
    metrics = json.loads(Path(params["paths"]["metrics"]).read_text())
    assert {"accuracy", "f1", "roc_auc", "latency_p50_ms", "latency_p95_ms", "model_size_bytes"} <= set(metrics)
    assert 0.5 < metrics["accuracy"] <= 1 and 0.5 < metrics["roc_auc"] <= 1
    assert 0 < metrics["latency_p50_ms"] <= metrics["latency_p95_ms"]
    assert metrics["model_size_bytes"] == Path(params["paths"]["model"]).stat().st_size
    plots = Path(params["paths"]["plots"])
    confusion = pd.read_csv(plots / "confusion.csv")
    assert set(confusion.columns) == {"actual", "predicted"} and set(confusion["actual"]) == {"yes", "not_yes"}
    roc = pd.read_csv(plots / "roc.csv")
    assert roc["fpr"].iloc[0] == 0 and roc["tpr"].iloc[-1] == 1


def test_broken_limits_are_listed() -> None:
    metrics = {"accuracy": 0.8, "f1": 0.95, "latency": 7.0, "nan": float("nan")}
    broken = evaluate.broken_limits(metrics, {"accuracy": 0.9, "f1": 0.9, "auc": 0.5}, {"latency": 5, "nan": 1})
    assert broken == [
        "accuracy 0.800 < 0.900",
        "auc missing from metrics (limit 0.5)",
        "latency 7.000 > 5.000",
        "nan nan > 1.000",
    ]


def test_a_floor_fails_the_stage_after_writing_metrics(params_file: Path, params: dict, capsys) -> None:
    import yaml

    for stage in (prepare, train):
        assert stage.main(["--params", str(params_file)]) == 0
    params["evaluate"]["floors"] = {"accuracy": 1.01}
    params_file.write_text(yaml.safe_dump(params))
    assert evaluate.main(["--params", str(params_file)]) == 1
    assert "metrics under their floors in conf/evaluate: accuracy" in capsys.readouterr().err
    assert Path(params["paths"]["metrics"]).exists()


@pytest.mark.parametrize("rows", [1, 7])
def test_latency_percentiles(tiny_frame: pd.DataFrame, rows: int) -> None:
    model = train.fit(tiny_frame, *_configs())
    features = tiny_frame.drop(columns=["label"])
    result = evaluate.latency(model, features, rows=rows)
    assert 0 < result["latency_p50_ms"] <= result["latency_p95_ms"]


def _configs():
    from {{ cookiecutter.package_name }}.config import DataConfig, ModelConfig

    return (
        DataConfig(path="x.csv", target="label", positive_class="yes", test_size=0.2, seed=0),
        ModelConfig(name="lr", estimator="sklearn.linear_model.LogisticRegression"),
    )


def test_a_model_without_scores_fails_clearly(tiny_frame: pd.DataFrame) -> None:
    from {{ cookiecutter.package_name }}.config import StageError

    class Voter:
        def predict(self, features):
            return [1] * len(features)

    with pytest.raises(StageError, match=r"model Voter has neither predict_proba nor decision_function"):
        evaluate.quality(Voter(), tiny_frame.drop(columns=["label"]), [1, 0] * 30)


def test_margin_classifiers_are_scored_by_decision_function(tiny_frame: pd.DataFrame) -> None:
    from {{ cookiecutter.package_name }}.config import DataConfig, ModelConfig

    data = DataConfig(path="x.csv", target="label", positive_class="yes", test_size=0.2, seed=0)
    model = train.fit(tiny_frame, data, ModelConfig(name="svm", estimator="sklearn.svm.LinearSVC"))
    features, labels = train.features_and_labels(tiny_frame, data)
    assert evaluate.quality(model, features, labels)["roc_auc"] > 0.8
