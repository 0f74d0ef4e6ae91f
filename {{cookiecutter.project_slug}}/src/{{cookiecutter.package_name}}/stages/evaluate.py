"""Stage evaluate: measure the model on the test split and write its metrics and plots.

It only measures: the limits every metric must meet are the CI gate's rules (conf/gates), so
an experiment that misses one is still recorded and comparable in `dvc exp show`.
"""

import joblib
from lockstep.config import load, run
from lockstep.io import write_csv, write_json
from lockstep.tabular import features_and_labels, latency, plots, predict, quality, read_table


def main() -> None:
    data, paths = load("data", "paths")
    model = joblib.load(paths.model)
    features, labels = features_and_labels(read_table(paths.test), data)

    predictions = predict(data.task, model, features)  # once, for the metrics and the plots
    metrics = quality(data.task, predictions, labels)  # by conf/data's task: binary, multiclass, regression
    metrics |= latency(model, features)  # per-row prediction time, p50 and p95
    metrics["model_size_bytes"] = paths.model.stat().st_size
    # Your own metrics go here, e.g. metrics["my_metric"] = ...; then give them a rule in conf/gates.
    write_json(paths.metrics, metrics)
    for name, table in plots(data, predictions, labels).items():
        write_csv(paths.plots / f"{name}.csv", table)
    print("evaluate: " + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))


if __name__ == "__main__":
    raise SystemExit(run(main))
