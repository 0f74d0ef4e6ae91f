"""What a registered model uses: each feature's permutation importance, stored with the version.

At register time the model's score on the test split (log loss for a classifier with
probabilities, else accuracy; R² for a regression) is measured with each feature's values
shuffled in turn (scikit-learn's `permutation_importance`, 10 repeats, a fixed seed): the drop
in score is how much the model relies on that feature. The drops, floored at 0 and scaled to sum to
1, go on the model version as the tag `feature_importance` (JSON, feature -> weight). The monitor
weighs each feature's drift by it (lockstep.monitor.checks), so a shift of a feature the model
ignores does not count as much as one of a feature it leans on.
"""

from __future__ import annotations

import json
from typing import Any

TAG = "feature_importance"
REPEATS = 10


def compute(model: Any, features: Any, labels: Any, task: str) -> dict[str, float]:
    """Each feature's share of the model's permutation importance on these rows (sums to 1; all
    equal when shuffling no feature changes the score)."""
    from sklearn.inspection import permutation_importance

    # Log loss where the model gives probabilities: it moves with every row's confidence, where
    # accuracy on a small test split moves in steps of one row
    scoring = "r2" if task == "regression" else "neg_log_loss" if hasattr(model, "predict_proba") else "accuracy"
    if not hasattr(model, "fit"):  # a model of its own with predict() only: scikit-learn needs the method
        model = predicting(model)
    found = permutation_importance(model, features, labels, scoring=scoring, n_repeats=REPEATS, random_state=0)
    drops = [max(float(d), 0.0) for d in found.importances_mean]
    total = sum(drops)
    columns = [str(c) for c in features.columns]
    if total <= 0:
        return {c: round(1 / len(columns), 6) for c in columns}
    return {c: round(d / total, 6) for c, d in zip(columns, drops, strict=True)}


def predicting(model: Any) -> Any:
    """A model that only predicts, as scikit-learn's scorers take it (fit is never called)."""
    from sklearn.base import BaseEstimator

    class Predicting(BaseEstimator):
        def __init__(self, model: Any = None) -> None:
            self.model = model

        def fit(self, *args: Any) -> Any:
            return self

        def predict(self, features: Any) -> Any:
            return self.model.predict(features)

    return Predicting(model)


def tag(weights: dict[str, float]) -> dict[str, str]:
    return {TAG: json.dumps(weights, separators=(",", ":"))}


def weights(tags: dict[str, str]) -> dict[str, float] | None:
    """A version's feature weights from its tags, or None (registered before, or not tabular)."""
    try:
        found = json.loads(tags[TAG])
    except (KeyError, ValueError):
        return None
    if not isinstance(found, dict) or not all(isinstance(v, int | float) for v in found.values()):
        return None
    return {str(k): float(v) for k, v in found.items()}


def of_version(model_name: str, version: int) -> dict[str, float] | None:
    from lockstep.tracking import mlflow_client

    with mlflow_client() as client:
        return weights(dict(client.get_model_version(model_name, str(version)).tags))
