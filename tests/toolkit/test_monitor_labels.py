"""Delayed labels: the team appends the true outcomes later (CSV or JSONL, by request id); `lockstep
monitor` joins them to the logged predictions of each window and judges the windows with enough
labels on quality against the served version's offline metric."""

# ruff: noqa: F811  (the shared fixtures are imported by name)

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from lockstep import cli
from lockstep.commands import ExitCode
from lockstep.config import StageError
from lockstep.inference_log import InferenceLog
from lockstep.monitor.labels import read_labels, score, window_quality
from lockstep.settings import QualityConfig

from .serving import MODEL, Deployed, deployed, registry_dir  # noqa: F401
from .test_monitor import WINDOW_S, draw, project


def labelled_project(d: Deployed, offline: float = 0.9) -> Path:
    """A project whose monitor reads delayed labels from labels/ (min 50 a window, a drop of 0.05
    allowed), the served version (1, always predicting 0) measured offline at `offline` accuracy."""
    import mlflow

    project(d)
    params = yaml.safe_load(d.params_file.read_text())
    params["monitor"]["quality"] = {"labels": "labels", "min_labels": 50, "max_drop": 0.05}
    d.params_file.write_text(yaml.safe_dump(params))
    client = mlflow.MlflowClient(d.uri)
    client.log_metric(client.get_model_version(MODEL, "1").run_id, "accuracy", offline)
    return d.root / "labels"


def log_requests(d: Deployed, windows: int) -> None:
    """`windows` windows of 10 requests of 100 rows each, request ids w<window>-r<request>, all predicted 0."""
    log = InferenceLog(d.root / "monitor" / "inference.db")
    start = (time.time() // WINDOW_S - windows) * WINDOW_S
    for w in range(windows):
        frame = draw(1000, 100 + w)[["f1", "f2"]]
        for r in range(10):
            rows = frame.iloc[r * 100 : (r + 1) * 100].to_dict(orient="records")
            log.record(ts=start + w * WINDOW_S + r, request_id=f"w{w}-r{r}", variant="stable", endpoint="predict",
                       model_name=MODEL, model_version=1, inputs=rows, outputs=[0] * 100, quality=[])  # fmt: skip
    log.close()


def monitor(d: Deployed) -> tuple[int, dict]:
    status = cli.main(["monitor", "--params", str(d.params_file), "--no-registry"])
    return status, json.loads((d.root / "reports" / "monitor" / "metrics.json").read_text())


def test_labels_arriving_after_the_window_are_joined_by_request_id(deployed: Deployed, capsys) -> None:
    labels = labelled_project(deployed)
    log_requests(deployed, 3)
    status, metrics = monitor(deployed)  # no labels yet: nothing to judge, never a breach
    assert status == 0 and metrics["labels"] == {"path": "labels", "read": 0, "unknown": 0}
    assert metrics["quality"]["note"] == "too few labels to judge (0 of 50)" and metrics["breaches"] == 0
    # later: the outcomes of the oldest window's first request (100 rows), 30 rows of the next window's,
    # and 3 labels for requests the log never saw
    labels.mkdir()
    lines = ["request_id,row,label"] + [f"w0-r0,{i},0" for i in range(100)] + [f"w1-r4,{i},0" for i in range(30)]
    (labels / "2026-01.csv").write_text("\n".join([*lines, "nope-1,0,1", "nope-2,0,0", "w0-r0,100,1"]) + "\n")
    status, metrics = monitor(deployed)
    assert status == 0 and metrics["labels"] == {"path": "labels", "read": 133, "unknown": 3}
    stable = metrics["variants"]["stable"]
    assert stable["quality"]["value"] == 1.0 and stable["quality"]["labelled"] == 100
    assert stable["quality"]["note"] == "accuracy 1 on 100 labelled rows, offline 0.9"
    assert stable["quality_windows_judged"] == 1 and metrics["breaches"] == 0
    out = capsys.readouterr().out
    assert "133 label(s) in labels, 3 for unknown request ids; quality: stable accuracy 1 on 100 labelled rows" in out
    page = (deployed.root / "reports" / "monitor" / "report.html").read_text()
    assert "too few labels to judge (30 of 50)" in page and "3 for request ids the log does not hold" in page


def test_a_quality_drop_on_labelled_windows_requests_retraining_naming_quality(deployed: Deployed) -> None:
    labels = labelled_project(deployed)
    log_requests(deployed, 4)
    labels.mkdir()
    # windows 1 and 2 labelled (JSONL, 100 rows each, 60 of them 1: accuracy 0.4); the latest has no labels yet
    records = [{"request_id": f"w{w}-r0", "row": i, "label": int(i < 60)} for w in (1, 2) for i in range(100)]
    (labels / "outcomes.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    status, metrics = monitor(deployed)
    assert status == ExitCode.RETRAIN and metrics["retrain"] is True
    assert metrics["failing"] == []  # the latest window: no drift, too few labels (not a breach)
    assert metrics["quality"]["value"] == 0.4 and metrics["quality"]["failing"] == ["quality"]
    request = json.loads((deployed.root / "reports" / "monitor" / "retrain.json").read_text())
    assert request["signals"] == ["quality"]
    assert request["reason"] == (
        "quality: 2 of 2 windows with enough labels fail (accuracy 0.4 on 100 labelled rows, offline 0.9,"
        " allowed drop 0.05)"
    )
    assert [w["failing"] for w in request["windows"]] == [[], [], ["quality"], ["quality"], []]  # 5: windows_m


def test_malformed_label_files_are_named_with_the_line_and_the_fix(tmp_path: Path) -> None:
    cases = {
        "extra.csv": ("request_id,label\na,1\nb,1,7\n", r"extra.csv:3: 3 fields where the header has 2"),
        "header.csv": ("request_id,outcome\na,1\n", r"header.csv:1: the header has no label column"),
        "row.csv": ("request_id,row,label\na,0,1\na,x,1\n", r"row.csv:3: row 'x' is not a row number"),
        "empty.csv": ("request_id,label\na,1\n,1\n", r"empty.csv:3: an empty request_id or label"),
        "bad.jsonl": ('{"request_id": "a", "label": 1}\n{"request_id": "b", "label"\n', r"bad.jsonl:2: not JSON"),
        "keys.jsonl": ('{"request_id": "a"}\n', r"keys.jsonl:1: needs request_id and label"),
    }
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(StageError, match=message) as caught:
            read_labels(tmp_path / name, numeric=False)
        assert "\n" not in str(caught.value) and "request_id,label" in str(caught.value)  # one line, the format
    (tmp_path / "numbers.csv").write_text("request_id,label\na,1.5\nb,high\n")
    with pytest.raises(StageError, match=r"numbers.csv:3: label 'high' is not a number"):
        read_labels(tmp_path / "numbers.csv", numeric=True)


def test_a_bad_label_file_stops_the_monitor_in_one_line(deployed: Deployed, capsys) -> None:
    labels = labelled_project(deployed)
    log_requests(deployed, 1)
    labels.mkdir()
    (labels / "a.csv").write_text("request_id,label\nw0-r0,0\nw0-r1\n")
    assert cli.main(["monitor", "--params", str(deployed.params_file), "--no-registry"]) == 1
    err = capsys.readouterr().err.strip()
    assert "labels/a.csv:3: an empty request_id or label" in err and len(err.splitlines()) == 1


def test_regression_quality_is_rmse_or_mae_against_the_offline_value() -> None:
    rows = pd.DataFrame({"prediction": [1.0, 2.0, 3.0, 4.0], "label": [1.0, 2.0, 3.0, 8.0]})
    assert score("mae", rows["prediction"], rows["label"]) == 1.0
    assert score("rmse", rows["prediction"], rows["label"]) == 2.0
    q = QualityConfig(min_labels=4, max_drop=0.5)
    assert window_quality(rows, "rmse", 1.8, q)["failing"] == []  # 0.2 worse: allowed
    assert window_quality(rows, "rmse", 1.0, q)["failing"] == ["quality"]  # 1.0 worse
    assert window_quality(rows.head(3), "rmse", 1.0, q)["note"] == "too few labels to judge (3 of 4)"


def test_labels_join_the_ids_the_service_returned(deployed: Deployed) -> None:
    """Through the service in process: the ids it returns are the ones the labels name."""
    from lockstep.config import load_params
    from lockstep.serve.server import build

    labels = labelled_project(deployed)
    _app, service = build(load_params(deployed.params_file))
    service.clock = lambda: (time.time() // WINDOW_S - 1) * WINDOW_S + 5
    frame = draw(1000, 5)[["f1", "f2"]]
    ids = [service.predict("stable", frame.iloc[r * 100 : (r + 1) * 100].to_dict(orient="records"),
                           request=None if r else "client-0")["request_id"] for r in range(10)]  # fmt: skip
    service.close()
    assert ids[0] == "client-0" and len(set(ids)) == 10
    labels.mkdir()
    (labels / "a.csv").write_text(
        "request_id,row,label\n" + "".join(f"{i},{n},0\n" for i in ids[:6] for n in range(10))
    )
    status, metrics = monitor(deployed)
    assert status == 0 and metrics["labels"]["unknown"] == 0
    assert metrics["quality"]["labelled"] == 60 and metrics["quality"]["value"] == 1.0
