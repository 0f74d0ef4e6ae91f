"""lockstep.tabular for a project's evaluate stage: quality metrics and plot data for each task type."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lockstep.config import DataConfig, ModelConfig, StageError
from lockstep.io import file_md5, write_csv, write_json
from lockstep.tabular import (
    build_estimator,
    curve,
    features_and_labels,
    fit,
    latency,
    plots,
    predict,
    quality,
    scores,
)

BINARY = DataConfig(path="x.csv", target="label", positive_class="yes", test_size=0.2, seed=0)
MULTICLASS = DataConfig(path="x.csv", target="label", task="multiclass", test_size=0.2, seed=0)
REGRESSION = DataConfig(path="x.csv", target="price", task="regression", test_size=0.2, seed=0)
LOGISTIC = ModelConfig(name="lr", estimator="sklearn.linear_model.LogisticRegression")
RIDGE = ModelConfig(name="ridge", estimator="sklearn.linear_model.Ridge")


def fitted(frame: pd.DataFrame, data: DataConfig, model: ModelConfig):
    features, labels = features_and_labels(frame, data)
    return fit(build_estimator(model), features, labels, model.name), features, labels


def measured(frame: pd.DataFrame, data: DataConfig, model: ModelConfig):
    """The predictions of a model fitted on frame, and the labels, as quality() takes them."""
    fitted_model, features, labels = fitted(frame, data, model)
    return predict(data.task, fitted_model, features), labels


def test_evaluate_predicts_and_scores_the_test_split_once(tiny_frame: pd.DataFrame) -> None:
    model, features, labels = fitted(tiny_frame, BINARY, LOGISTIC)
    calls = []

    class Counting:
        def predict(self, rows):
            calls.append("predict")
            return model.predict(rows)

        def predict_proba(self, rows):
            calls.append("predict_proba")
            return model.predict_proba(rows)

    predictions = predict("binary", Counting(), features)
    quality("binary", predictions, labels)
    plots(BINARY, predictions, labels)
    assert calls == ["predict", "predict_proba"]


def test_metrics_and_plots_of_the_pipeline(pipeline, params: dict) -> None:
    # prepare -> train -> evaluate as a baked project's stages run them, into the files DVC reads
    metrics = pipeline()
    assert json.loads(Path(params["paths"]["metrics"]).read_text()) == metrics
    assert {"accuracy", "f1", "roc_auc", "latency_p50_ms", "latency_p95_ms", "model_size_bytes"} <= set(metrics)
    assert 0.5 < metrics["accuracy"] <= 1 and 0.5 < metrics["roc_auc"] <= 1
    assert 0 < metrics["latency_p50_ms"] <= metrics["latency_p95_ms"]
    assert metrics["model_size_bytes"] == Path(params["paths"]["model"]).stat().st_size
    plots_dir = Path(params["paths"]["plots"])
    files = sorted(p.name for p in plots_dir.iterdir())
    assert files == ["confusion.csv", "precision_recall.csv", "residuals.csv", "roc.csv"]  # every file dvc.yaml draws
    assert (plots_dir / "residuals.csv").read_text().splitlines() == ["actual,predicted,residual,id"]  # not binary's
    confusion = pd.read_csv(plots_dir / "confusion.csv")
    assert list(confusion.columns) == ["actual", "predicted", "id"] and set(confusion["actual"]) == {"yes", "not_yes"}
    assert len(confusion) == 12 and confusion["id"].is_unique  # one row per test case, with the id the gate pairs by
    roc = pd.read_csv(plots_dir / "roc.csv")
    assert roc["fpr"].iloc[0] == 0 and roc["tpr"].iloc[-1] == 1
    curve = pd.read_csv(plots_dir / "precision_recall.csv")
    assert list(curve.columns) == ["recall", "precision"] and curve["recall"].between(0, 1).all()


def test_binary_quality_and_plots(tiny_frame: pd.DataFrame) -> None:
    model, features, labels = fitted(tiny_frame, BINARY, LOGISTIC)
    predictions = predict("binary", model, features)
    result = quality("binary", predictions, labels)
    assert list(result) == ["accuracy", "precision", "recall", "f1", "roc_auc"]
    assert all(0.8 < value <= 1 for value in result.values())
    tables = plots(BINARY, predictions, labels)
    assert [name for name, table in tables.items() if len(table)] == ["confusion", "roc", "precision_recall"]
    assert list(tables["residuals"]) == ["actual", "predicted", "residual", "id"] and tables["residuals"].empty
    confusion = tables["confusion"]
    assert len(confusion) == 60 and set(confusion["predicted"]) == {"yes", "not_yes"}
    assert (confusion["actual"] == "yes").sum() == labels.sum()  # one row per test row, labels named
    assert list(tables["roc"]) == ["fpr", "tpr"] and list(tables["precision_recall"]) == ["recall", "precision"]


def test_multiclass_quality_and_plots(multiclass_frame: pd.DataFrame) -> None:
    model, features, labels = fitted(multiclass_frame, MULTICLASS, LOGISTIC)
    predictions = predict("multiclass", model, features)
    result = quality("multiclass", predictions, labels)
    assert list(result) == ["accuracy", "f1_macro", "f1_weighted"]
    assert all(0.9 < value <= 1 for value in result.values())
    tables = plots(MULTICLASS, predictions, labels)
    assert [name for name, table in tables.items() if len(table)] == ["confusion"]
    assert sorted(tables) == ["confusion", "precision_recall", "residuals", "roc"]
    confusion = tables["confusion"]
    assert len(confusion) == 90 and set(confusion["actual"]) == {"red", "green", "blue"}
    assert (confusion["actual"] == confusion["predicted"]).mean() == pytest.approx(result["accuracy"])


def test_regression_quality_and_plots(regression_frame: pd.DataFrame) -> None:
    model, features, labels = fitted(regression_frame, REGRESSION, RIDGE)
    predictions = predict("regression", model, features)
    result = quality("regression", predictions, labels)
    assert list(result) == ["mae", "rmse", "r2"]
    assert 0 < result["mae"] <= result["rmse"] < 1 and 0.95 < result["r2"] <= 1
    tables = plots(REGRESSION, predictions, labels)
    assert [name for name, table in tables.items() if len(table)] == ["residuals"] and len(tables["residuals"]) == 80
    first = tables["residuals"].iloc[0]
    assert list(first.index) == ["actual", "predicted", "residual", "id"]
    assert first["residual"] == pytest.approx(first["actual"] - first["predicted"])
    assert first["actual"] == pytest.approx(regression_frame["price"].iloc[0])


def test_row_ids_follow_the_rows_not_their_order(tiny_frame: pd.DataFrame) -> None:
    # The gate pairs the test rows of the base and the head by id: a reordered split keeps each
    # row's id, a repeated row gets its own, and ids do not depend on the model's predictions.
    model, features, labels = fitted(tiny_frame, BINARY, LOGISTIC)
    ids = plots(BINARY, predict("binary", model, features), labels)["confusion"]["id"]
    order = np.arange(len(features))[::-1]
    shuffled, shuffled_labels = features.iloc[order], labels.iloc[order]
    again = plots(BINARY, predict("binary", model, shuffled), shuffled_labels)["confusion"]["id"]
    assert list(again) == list(ids.iloc[order]) and ids.is_unique
    doubled, doubled_labels = pd.concat([features, features.iloc[:2]]), pd.concat([labels, labels.iloc[:2]])
    twice = plots(BINARY, predict("binary", model, doubled), doubled_labels)["confusion"]["id"]
    assert twice.is_unique and list(twice.iloc[-2:]) == [f"{ids.iloc[0]}-2", f"{ids.iloc[1]}-2"]


def test_a_worse_model_scores_worse(regression_frame: pd.DataFrame) -> None:
    # The metrics measure the model, not the data: a model that ignores the features is worse
    dummy = ModelConfig(name="mean", estimator="sklearn.dummy.DummyRegressor")
    good = quality("regression", *measured(regression_frame, REGRESSION, RIDGE))
    bad = quality("regression", *measured(regression_frame, REGRESSION, dummy))
    assert bad["r2"] == pytest.approx(0.0, abs=1e-9) and bad["rmse"] > good["rmse"] and bad["mae"] > good["mae"]


@pytest.mark.parametrize("rows", [1, 7])
def test_latency_percentiles(tiny_frame: pd.DataFrame, rows: int) -> None:
    model, features, _ = fitted(tiny_frame, BINARY, LOGISTIC)
    result = latency(model, features, rows=rows)
    assert 0 < result["latency_p50_ms"] <= result["latency_p95_ms"]


def test_a_model_without_scores_fails_clearly(tiny_frame: pd.DataFrame) -> None:
    class Voter:
        def predict(self, features):
            return [1] * len(features)

    features = tiny_frame.drop(columns=["label"])
    with pytest.raises(StageError, match=r"model Voter has neither predict_proba nor decision_function"):
        predict("binary", Voter(), features)
    assert list(quality("multiclass", predict("multiclass", Voter(), features), pd.Series([1, 0] * 30))) == [
        "accuracy",
        "f1_macro",
        "f1_weighted",
    ]  # multiclass needs no scores


def test_margin_classifiers_are_scored_by_decision_function(tiny_frame: pd.DataFrame) -> None:
    model, features, labels = fitted(tiny_frame, BINARY, ModelConfig(name="svm", estimator="sklearn.svm.LinearSVC"))
    assert scores(model, features).ndim == 1
    assert quality("binary", predict("binary", model, features), labels)["roc_auc"] > 0.8
    roc = plots(BINARY, predict("binary", model, features), labels)["roc"]
    assert roc.iloc[-1].to_dict() == {"fpr": 1.0, "tpr": 1.0}


def test_a_curve_keeps_at_most_its_points_and_both_ends() -> None:
    # A curve of 200,000 test rows has tens of thousands of thresholds; the plot needs far fewer
    x = np.linspace(0, 1, 50_001)
    thinned = curve("fpr", x, "tpr", np.sqrt(x), points=1000)
    assert len(thinned) == 1000 and thinned["fpr"].is_monotonic_increasing
    assert thinned.iloc[0].to_dict() == {"fpr": 0.0, "tpr": 0.0} and thinned.iloc[-1].to_dict() == {
        "fpr": 1.0,
        "tpr": 1.0,
    }
    assert np.allclose(thinned["tpr"], np.sqrt(thinned["fpr"]))  # points of the curve, not made up
    short = curve("recall", x[:10], "precision", x[:10], points=1000)
    assert short["recall"].tolist() == x[:10].tolist()  # a short curve is kept whole


def test_outputs_are_plain_json_and_csv(tmp_path: Path) -> None:
    write_json(tmp_path / "m" / "metrics.json", {"accuracy": 0.9, "n": 3})
    assert (tmp_path / "m" / "metrics.json").read_text() == '{\n  "accuracy": 0.9,\n  "n": 3\n}\n'
    write_csv(tmp_path / "p.csv", [{"actual": "yes", "predicted": "no"}, {"actual": "no", "predicted": "no"}])
    assert (tmp_path / "p.csv").read_text() == "actual,predicted\nyes,no\nno,no\n"
    write_csv(tmp_path / "p.csv", pd.DataFrame({"fpr": [0.0, 0.25, 1.0], "tpr": [0.0, 0.7, 1.0]}))
    assert (tmp_path / "p.csv").read_text() == "fpr,tpr\n0,0\n0.25,0.7\n1,1\n"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["m", "metrics.json", "p.csv"]  # no temporary files
    assert file_md5(tmp_path / "p.csv") == hashlib.md5((tmp_path / "p.csv").read_bytes()).hexdigest()
