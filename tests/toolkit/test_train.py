"""Stage train: any configured scikit-learn classifier, with clear errors for bad config."""

import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.config import DataConfig, ModelConfig, StageError
from {{ cookiecutter.package_name }}.stages import train

DATA = DataConfig(path="raw.csv", target="label", positive_class="yes", test_size=0.2, seed=0)


@pytest.mark.parametrize(
    "model",
    [
        ModelConfig(name="lr", estimator="sklearn.linear_model.LogisticRegression", scale=True, params={"C": 1.0}),
        ModelConfig(
            name="rf",
            estimator="sklearn.ensemble.RandomForestClassifier",
            params={"n_estimators": 10, "random_state": 0},
        ),
    ],
)
def test_fitted_model_separates_the_classes(tiny_frame: pd.DataFrame, model: ModelConfig) -> None:
    fitted = train.fit(tiny_frame, DATA, model)
    features, labels = train.features_and_labels(tiny_frame, DATA)
    assert (fitted.predict(features) == labels).mean() > 0.8


def test_labels_mark_the_positive_class(tiny_frame: pd.DataFrame) -> None:
    features, labels = train.features_and_labels(tiny_frame, DATA)
    assert "label" not in features.columns
    assert labels.tolist()[:2] == [1, 0]


def test_unknown_estimator_and_bad_argument(tiny_frame: pd.DataFrame) -> None:
    missing = ModelConfig(name="x", estimator="sklearn.linear_model.NoSuchModel")
    with pytest.raises(StageError, match=r"cannot import 'sklearn.linear_model.NoSuchModel'"):
        train.fit(tiny_frame, DATA, missing)
    bad_arg = ModelConfig(name="lr", estimator="sklearn.linear_model.LogisticRegression", params={"Cee": 1})
    with pytest.raises(StageError, match=r"model.params: .*'Cee'.*conf/model/lr.yaml"):
        train.fit(tiny_frame, DATA, bad_arg)
