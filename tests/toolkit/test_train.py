"""lockstep.tabular for a project's train stage: any configured scikit-learn estimator, clear errors."""

from __future__ import annotations

from pathlib import Path

import joblib
import pandas as pd
import pytest

from lockstep.config import DataConfig, ModelConfig, StageError
from lockstep.tabular import build_estimator, features_and_labels, fit, save_model

DATA = DataConfig(path="raw.csv", target="label", positive_class="yes", test_size=0.2, seed=0)
MULTICLASS = DataConfig(path="raw.csv", target="label", task="multiclass", test_size=0.2, seed=0)
REGRESSION = DataConfig(path="raw.csv", target="price", task="regression", test_size=0.2, seed=0)
LOGISTIC = ModelConfig(name="lr", estimator="sklearn.linear_model.LogisticRegression", scale=True, params={"C": 1.0})


def train(frame: pd.DataFrame, data: DataConfig, model: ModelConfig):
    features, labels = features_and_labels(frame, data)
    return fit(build_estimator(model), features, labels, model.name), features, labels


@pytest.mark.parametrize(
    "model",
    [
        LOGISTIC,
        ModelConfig(
            name="rf",
            estimator="sklearn.ensemble.RandomForestClassifier",
            params={"n_estimators": 10, "random_state": 0},
        ),
    ],
)
def test_fitted_model_separates_the_classes(tiny_frame: pd.DataFrame, model: ModelConfig) -> None:
    fitted, features, labels = train(tiny_frame, DATA, model)
    assert (fitted.predict(features) == labels).mean() > 0.8


def test_scale_puts_a_standard_scaler_in_front() -> None:
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    scaled = build_estimator(LOGISTIC)
    assert isinstance(scaled, Pipeline) and isinstance(scaled.steps[0][1], StandardScaler)
    assert scaled.steps[-1][1].C == 1.0
    plain = build_estimator(LOGISTIC.model_copy(update={"scale": False}))
    assert type(plain).__name__ == "LogisticRegression"


def test_labels_by_task(tiny_frame, multiclass_frame, regression_frame) -> None:
    features, labels = features_and_labels(tiny_frame, DATA)
    assert "label" not in features.columns and list(features.columns) == ["f1", "f2", "noise"]
    assert labels.tolist()[:2] == [1, 0]  # 1 marks the positive class, 'yes'
    _, names = features_and_labels(multiclass_frame, MULTICLASS)
    assert names.tolist()[:3] == ["red", "green", "blue"]
    _, numbers = features_and_labels(regression_frame, REGRESSION)
    assert numbers.dtype == float and numbers.iloc[0] == pytest.approx(regression_frame["price"].iloc[0])
    with pytest.raises(StageError, match=r"prepared data has no column 'price'; re-run the prepare stage"):
        features_and_labels(tiny_frame, REGRESSION)


def test_multiclass_and_regression_models(multiclass_frame, regression_frame) -> None:
    fitted, features, labels = train(multiclass_frame, MULTICLASS, LOGISTIC)
    assert (fitted.predict(features) == labels).mean() > 0.9
    ridge = ModelConfig(name="ridge", estimator="sklearn.linear_model.Ridge", scale=True, params={"alpha": 1.0})
    fitted, features, labels = train(regression_frame, REGRESSION, ridge)
    assert abs(fitted.predict(features) - labels).mean() < 0.5


def test_unknown_estimator_and_bad_argument() -> None:
    missing = ModelConfig(name="x", estimator="sklearn.linear_model.NoSuchModel")
    with pytest.raises(StageError, match=r"cannot import 'sklearn.linear_model.NoSuchModel'; fix it in conf/model"):
        build_estimator(missing)
    no_module = ModelConfig(name="x", estimator="nosuchpackage.Model")
    with pytest.raises(StageError, match=r"cannot import 'nosuchpackage.Model'"):
        build_estimator(no_module)
    bad_arg = ModelConfig(name="lr", estimator="sklearn.linear_model.LogisticRegression", params={"Cee": 1})
    with pytest.raises(StageError, match=r"model.params: .*'Cee'.*conf/model/lr.yaml"):
        build_estimator(bad_arg)


def test_an_estimator_path_must_name_a_class() -> None:
    with pytest.raises(ValueError, match=r"estimator"):
        ModelConfig(name="x", estimator="LogisticRegression")


def test_a_model_that_cannot_fit_the_data_fails_in_one_line(regression_frame: pd.DataFrame) -> None:
    # A classifier given a continuous target: scikit-learn's ValueError becomes one actionable line
    features, labels = features_and_labels(regression_frame, REGRESSION)
    with pytest.raises(StageError, match=r"model 'lr' cannot be fitted: .*; check conf/model and conf/data") as err:
        fit(build_estimator(LOGISTIC), features, labels, "lr")
    assert "\n" not in str(err.value)


def test_saved_model_loads_and_predicts_the_same(tmp_path: Path, tiny_frame: pd.DataFrame) -> None:
    fitted, features, _ = train(tiny_frame, DATA, LOGISTIC)
    path = tmp_path / "models" / "model.joblib"
    save_model(fitted, path)
    assert list(path.parent.iterdir()) == [path]  # written whole, no temporary file left behind
    assert (joblib.load(path).predict(features) == fitted.predict(features)).all()
