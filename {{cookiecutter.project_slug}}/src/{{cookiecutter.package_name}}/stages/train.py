"""Stage train: fit the model on the training split and save it."""

from typing import Any

from lockstep.config import ModelConfig, load, run
from lockstep.tabular import build_estimator, features_and_labels, fit, read_table, save_model


def make_model(model: ModelConfig) -> Any:
    """The unfitted model. Any scikit-learn estimator needs only a YAML file in conf/model."""
    # --- Your model: replace this line with your own (docs: "Your own data and model") ---
    return build_estimator(model)  # the estimator conf/model names, behind a scaler if `scale: true`
    # --- It needs fit(features, labels) and predict(features); evaluate scores what it predicts.


def main() -> None:
    data, model, paths = load("data", "model", "paths")
    features, labels = features_and_labels(read_table(paths.train), data)
    fitted = fit(make_model(model), features, labels, model.name)
    save_model(fitted, paths.model)
    print(f"train: {model.name} fitted on {len(features)} rows -> {paths.model}")


if __name__ == "__main__":
    raise SystemExit(run(main))
