"""`lockstep monitor`: windows of logged traffic against the training reference. Traffic drawn
like the training data raises no retraining request over many windows (the false-alarm rate is
measured and printed); shifted traffic raises one within the configured windows; the tags land
on the served versions; the HTML report names the drifted feature and its statistic."""

# ruff: noqa: F811  (the shared fixtures are imported by name)

from __future__ import annotations

import json
import re
import time

import numpy as np
import pandas as pd
import pytest
import yaml

from lockstep import cli
from lockstep.commands import ExitCode
from lockstep.config import load_params
from lockstep.inference_log import InferenceLog
from lockstep.monitor.checks import feature_drift, psi_test, retrain_due, window_drift
from lockstep.serve.server import build
from lockstep.settings import DriftThresholds

from .serving import MODEL, Deployed, deployed, registry_dir  # noqa: F401

WINDOW_S = 3600.0
ROWS_PER_WINDOW = 1000  # normed Wasserstein's sampling noise at 200 rows is ~0.07, near its 0.1 threshold


def draw(n: int, seed: int, shift: float = 0.0, noise: int = 1) -> pd.DataFrame:
    """The training data's process: f1 separates the classes, f2.. are noise; shift moves f1 by that many sd."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    f1 = labels * 3 - 1.5 + rng.normal(0, 1, n)
    columns = {"f1": f1 + shift * f1.std()} | {f"f{i + 2}": rng.normal(0, 1, n) for i in range(noise)}
    return pd.DataFrame(columns | {"y": labels})


def test_statistics_follow_the_reference_size() -> None:
    t = DriftThresholds()
    small, large = draw(500, 1), draw(5000, 2)
    assert feature_drift(small["f1"], draw(200, 3)["f1"], t)["statistic"] == "Kolmogorov-Smirnov p-value"
    assert feature_drift(small["y"], draw(200, 3)["y"], t)["statistic"] == "chi-square p-value"
    assert feature_drift(large["f1"], draw(200, 3)["f1"], t)["statistic"] == "normed Wasserstein distance"
    assert feature_drift(large["y"], draw(200, 3)["y"], t)["statistic"] == "Jensen-Shannon distance"
    assert feature_drift(large["f1"], draw(200, 3, shift=2)["f1"], t)["drifted"]
    assert psi_test(large["y"], large["y"], 5)[0] == pytest.approx(0)
    assert psi_test(large["y"], pd.Series([1] * 90 + [0] * 10), 5)[0] > 0.2
    cases = ([True], [True, False], [False, True, True], [True, False, False, False, False, False, True])
    assert [retrain_due(list(b), 2, 5) for b in cases] == [False, False, True, False]


@pytest.mark.parametrize(("reference_rows", "noise"), [(800, 9), (5000, 1)])
def test_unshifted_traffic_raises_no_retraining_and_shifted_traffic_does(reference_rows: int, noise: int, capsys):
    """200 windows unshifted, then f1 moved by +2 sd: retraining requests before and after the shift.
    800 rows: K-S on 10 features (each false-alarms 5 % of windows; dataset drift needs half of them);
    5000 rows: normed Wasserstein on 2 features."""
    t = DriftThresholds()
    reference = draw(reference_rows, 0, noise=noise)
    features, ref_pred = reference.drop(columns="y"), (reference["f1"] > 0).astype(int)
    breaches, requests, first, shifted_at, windows = [], 0, None, 200, 210
    for w in range(windows):
        window = draw(ROWS_PER_WINDOW, 1000 + w, 2.0 if w >= shifted_at else 0.0, noise=noise)
        result = window_drift(features, ref_pred, window.drop(columns="y"), (window["f1"] > 0).astype(int), t)
        breaches.append(result["breach"])
        if retrain_due(breaches, 2, 5):
            requests += w < shifted_at
            first = w if first is None and w >= shifted_at else first
    breach_rate = sum(breaches[:shifted_at]) / shifted_at
    with capsys.disabled():
        print(f"\nreference {reference_rows} rows, {noise + 1} features, windows of {ROWS_PER_WINDOW}: unshifted"
              f" windows breaching {breach_rate:.1%}, retraining requests {requests} in {shifted_at} windows;"
              f" f1 +2 sd: first request {first - shifted_at + 1} window(s) after the shift")  # fmt: skip
    assert requests == 0
    assert first is not None and first - shifted_at < 5  # within M windows of the shift


def wide(n: int, seed: int, shift: dict[int, float] | None = None) -> pd.DataFrame:
    """30 correlated-free features as on the default bake's table (455 reference rows, windows of 114)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f"x{i}": rng.normal(0, 1, n) for i in range(30)})
    for i, amount in (shift or {}).items():
        frame[f"x{i}"] += amount
    return frame


def test_drift_is_weighed_by_what_the_model_uses() -> None:
    """On 30 features: 200 unshifted windows raise no request; +2 sd on the feature the model uses most
    raises one within 2 windows; +2 sd on one it does not use, none (the plain share, 1 of 30, would
    have missed the first as it misses the second)."""
    t = DriftThresholds()
    weights = {f"x{i}": w for i, w in enumerate([0.3, 0.2, 0.15, 0.1, 0.05] + [0.2 / 20] * 20 + [0.0] * 5)}
    reference = wide(455, 0)
    ref_pred = pd.Series((reference["x0"] > 0).astype(int))

    def requests(shift: dict[int, float] | None, windows: int, seed: int) -> tuple[int, int | None]:
        breaches, count, first = [], 0, None
        for w in range(windows):
            window = wide(114, seed + w, shift)
            result = window_drift(reference, ref_pred, window, (window["x0"] > 0).astype(int), t, weights)
            breaches.append(result["breach"])
            if retrain_due(breaches, 2, 5):
                count += 1
                first = w if first is None else first
        return count, first

    assert requests(None, 200, 1000) == (0, None)
    _, first = requests({0: 2.0}, 5, 2000)
    assert first is not None and first <= 1  # the second window: 2 of the last 5 breach
    assert requests({29: 2.0}, 20, 3000) == (0, None)
    plain = window_drift(reference, ref_pred, wide(114, 7, {0: 2.0}), ref_pred[:114], t)
    assert plain["failing"] == [] and plain["drift_share"] < t.drift_share  # unweighted: unseen


def project(d: Deployed, reference_rows: int = 5000) -> None:
    params = yaml.safe_load(d.params_file.read_text())
    params["monitor"] = {"log": "monitor/inference.db", "target": "y", "window_s": WINDOW_S, "min_rows": 100}
    d.params_file.write_text(yaml.safe_dump(params))
    (d.root / "data" / "prepared").mkdir(parents=True)
    draw(reference_rows, 0).to_parquet(d.root / "data" / "prepared" / "train.parquet")
    assert cli.main(["deploy", "lock", "--params", str(d.params_file)]) == 0


def log_windows(d: Deployed, shifts: list[float], seed: int = 100) -> None:
    """One window of traffic per shift, as 10 requests of 100 rows each, logged as the service would."""
    log = InferenceLog(d.root / "monitor" / "inference.db")
    start = (time.time() // WINDOW_S - len(shifts)) * WINDOW_S
    for w, shift in enumerate(shifts):
        frame = draw(ROWS_PER_WINDOW, seed + w, shift)[["f1", "f2"]]
        for r in range(10):
            rows = frame.iloc[r * 100 : (r + 1) * 100].to_dict(orient="records")
            log.record(ts=start + w * WINDOW_S + r, variant="stable", endpoint="predict", model_name=MODEL,
                       model_version=1, inputs=rows, outputs=[0] * 100, quality=[])  # fmt: skip
    log.close()


def serve_windows(d: Deployed, shifts: dict[str, list[float]], seed: int = 100) -> None:
    """Through the service in process: each variant's windows of traffic (one per shift, 1000 rows in
    requests of 100), answered by that variant's model, stamped inside its window by the service's clock."""
    _app, service = build(load_params(d.params_file))
    clock = {"now": 0.0}
    service.clock = lambda: clock["now"]
    for variant, variant_shifts in shifts.items():
        start = (time.time() // WINDOW_S - len(variant_shifts)) * WINDOW_S
        for w, shift in enumerate(variant_shifts):
            frame = draw(ROWS_PER_WINDOW, seed + w + (variant == "canary") * 50, shift)[["f1", "f2"]]
            for r in range(10):
                clock["now"] = start + w * WINDOW_S + r
                service.predict(variant, frame.iloc[r * 100 : (r + 1) * 100].to_dict(orient="records"))
    service.close()
    assert service.log.dropped == 0


def test_monitor_command_tags_the_served_versions_and_requests_retraining(deployed: Deployed, capsys) -> None:
    """Stable (version 1) and canary (version 2) are judged each on its own traffic, the canary's
    predictions against its own model's on the reference; each version gets its own variant's tags."""
    import mlflow

    project(deployed)
    serve_windows(deployed, {"stable": [0, 0, 0], "canary": [0, 0, 0]})
    assert cli.main(["monitor", "--params", str(deployed.params_file)]) == 0
    out = capsys.readouterr().out
    assert "0 breach(es)" in out and "tagged serve_test/1, serve_test/2" in out
    assert "stable (serve_test/1): drift share 0.00" in out and "canary (serve_test/2): drift share 0.00" in out
    metrics = json.loads((deployed.root / "reports" / "monitor" / "metrics.json").read_text())
    assert metrics["retrain"] is False and metrics["features"]["f1"]["statistic"] == "normed Wasserstein distance"
    assert metrics["variants"]["canary"]["prediction_psi"] < 0.2  # version 2 against its own reference predictions
    assert not (deployed.root / "reports" / "monitor" / "retrain.json").exists()
    # the canary's traffic shifts (the stable's does not): two breaching windows of the last five -> retraining
    serve_windows(deployed, {"stable": [0, 0], "canary": [2, 2]}, seed=200)
    assert cli.main(["monitor", "--params", str(deployed.params_file)]) == ExitCode.RETRAIN
    request = json.loads((deployed.root / "reports" / "monitor" / "retrain.json").read_text())
    assert "canary:dataset_drift" in request["reason"] and request["versions"] == ["serve_test/1", "serve_test/2"]
    metrics = json.loads((deployed.root / "reports" / "monitor" / "metrics.json").read_text())
    assert metrics["breaches"] == 2 and metrics["failing"][0] == "canary:dataset_drift"
    stable, canary = metrics["variants"]["stable"], metrics["variants"]["canary"]
    assert stable["drifted_features"] == [] and stable["failing"] == [] and stable["breaches"] == 0
    assert canary["drifted_features"] == ["f1"] and canary["failing"][0] == "dataset_drift"
    assert canary["model"] == "serve_test/2" and canary["breaches"] == 2
    page = (deployed.root / "reports" / "monitor" / "report.html").read_text()
    assert "Variant canary: serve_test/2" in page and "f1: normed Wasserstein distance" in page
    assert page.index("f1: normed") > page.index("Variant canary") and "f2: normed" not in page
    mlflow.set_tracking_uri(deployed.uri)
    client = mlflow.MlflowClient()
    tags = {version: client.get_model_version(MODEL, version).tags for version in ("1", "2")}
    assert tags["1"]["monitor.failing"] == "none" and float(tags["1"]["monitor.drift_share"]) == 0.0
    assert tags["2"]["monitor.failing"].startswith("dataset_drift") and float(tags["2"]["monitor.drift_share"]) == 0.5
    for version in ("1", "2"):
        assert tags[version]["monitor.last_check"].startswith(time.strftime("%Y-", time.gmtime()))


def test_checks_time_for_100k_logged_rows(deployed: Deployed, capsys) -> None:
    project(deployed)
    log = InferenceLog(deployed.root / "monitor" / "inference.db", queue_size=1000)
    start = (time.time() // WINDOW_S - 5) * WINDOW_S
    frame = draw(100_000, 7)[["f1", "f2"]]
    for r in range(1000):  # 1000 requests of 100 rows over 5 windows
        rows = frame.iloc[r * 100 : (r + 1) * 100].to_dict(orient="records")
        log.record(ts=start + r * 5 * WINDOW_S / 1000, variant="stable", endpoint="predict", inputs=rows,
                   outputs=[0] * 100)  # fmt: skip
        if log.queue.full():
            log.flush()
    log.close()
    assert log.dropped == 0
    started = time.perf_counter()
    assert cli.main(["monitor", "--params", str(deployed.params_file), "--no-registry"]) == 0
    elapsed = time.perf_counter() - started
    with capsys.disabled():
        print(f"\nmonitor: 100k logged rows in 5 windows checked in {elapsed:.2f} s (model load and report included)")
    assert json.loads((deployed.root / "reports" / "monitor" / "metrics.json").read_text())["rows"] == 20_000


def test_prediction_drift_needs_a_psi_beyond_what_a_small_window_reaches_by_chance() -> None:
    rng = np.random.default_rng(5)
    reference = pd.Series(rng.normal(size=331))
    t = DriftThresholds()
    over = counted = 0
    for _ in range(400):  # windows of 111 unshifted predictions: PSI's noise floor is about 0.1 here
        value, p = psi_test(reference, pd.Series(rng.normal(size=111)), t.categorical_max_unique)
        over += value >= t.psi
        counted += value >= t.psi and p < t.psi_p_value
    assert over >= 8 and counted <= over // 4  # most chance PSIs above 0.2 are not counted
    value, p = psi_test(reference, pd.Series(rng.normal(0.8, 1.0, 111)), t.categorical_max_unique)
    assert value >= t.psi and p < 1e-4  # a real shift of the predictions is
    categories = pd.Series(["a"] * 300 + ["b"] * 31)
    assert psi_test(categories, pd.Series(["a"] * 60 + ["b"] * 51), t.categorical_max_unique)[1] < 1e-6


def test_calibration_windows_are_a_smoothed_bootstrap_of_the_test_split() -> None:
    from scipy.stats import ks_2samp

    from lockstep.monitor.calibrate import fresh

    rng = np.random.default_rng(0)
    split = pd.DataFrame({"x": rng.normal(5.0, 2.0, 114), "count": rng.integers(0, 4, 114)})
    window = fresh(split, 1000, seed=1)
    assert window["x"].nunique() == 1000  # no value repeated, as fresh traffic would bring them
    assert abs(window["x"].mean() - split["x"].mean()) < 0.2 and abs(window["x"].std() / split["x"].std() - 1) < 0.1
    assert set(window["count"]) <= set(split["count"])  # few distinct values: resampled as they are
    assert fresh(split, 50, seed=3).equals(fresh(split, 50, seed=3))
    # K-S against the reference alarms less often on smoothed windows than on plain resamples (ties)
    plain = smoothed = 0
    for trial in range(300):
        reference, test = rng.normal(size=455), pd.DataFrame({"x": rng.normal(size=114)})
        plain += ks_2samp(reference, test.sample(n=114, replace=True, random_state=trial)["x"]).pvalue < 0.05
        smoothed += ks_2samp(reference, fresh(test, 114, seed=trial)["x"]).pvalue < 0.05
    assert smoothed < plain


def test_calibrate_reports_false_alarms_and_proposes_thresholds(deployed: Deployed, capsys) -> None:
    project(deployed)
    draw(1000, 9).to_parquet(deployed.root / "data" / "prepared" / "test.parquet")
    args = ["monitor", "calibrate", "--params", str(deployed.params_file), "--windows", "40", "--target", "0.05"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "monitor calibrate: 40 unshifted windows of 1000 rows (the test split, resampled)" in out
    assert "retraining requests by the rule as configured: 0" in out
    proposed = dict(re.findall(r"  (\w+): now [\d.]+, proposed ([\d.]+)", out))
    assert set(proposed) == {"weighted_drift_share", "top_effect", "psi", "drift_share"}
    assert 0 <= float(proposed["drift_share"]) < 0.5  # unshifted: well below the rule's share
    assert cli.main([*args[:-1], "2"]) == 1  # a rate, not a percentage
    assert "--target 2.0: a false-alarm rate between 0 and 1" in capsys.readouterr().err


def test_rehearsal_raises_retraining_only_for_shifted_traffic(deployed: Deployed, capsys) -> None:
    project(deployed)
    draw(1000, 9).to_parquet(deployed.root / "data" / "prepared" / "test.parquet")
    assert cli.main(["monitor-rehearsal", "--params", str(deployed.params_file)]) == 0
    out = capsys.readouterr().out
    assert "5 windows of 1000 rows from the test split, unshifted; 0 failed" in out and "0 breach(es)" in out
    assert (
        cli.main(["monitor-rehearsal", "--params", str(deployed.params_file), "--shift", "f1:+2sd"]) == ExitCode.RETRAIN
    )
    out = capsys.readouterr().out
    assert "f1 shifted by +2 sd" in out and "5 breach(es)" in out and "tagged" not in out
    page = (deployed.root / "reports" / "monitor" / "rehearsal" / "report.html").read_text()
    assert "f1: normed Wasserstein distance" in page
    assert not (deployed.root / "reports" / "monitor" / "metrics.json").exists()  # production reports untouched
    assert cli.main(["monitor-rehearsal", "--params", str(deployed.params_file), "--shift", "nope:+2sd"]) == 1


def test_prompt_answers_are_judged_against_the_golden_set_baseline(deployed: Deployed, capsys) -> None:
    project(deployed)
    log_windows(deployed, [0])
    report = deployed.root / "reports" / "prompts" / "summarize_ticket"
    report.mkdir(parents=True)
    (report / "metrics.json").write_text(json.dumps({"pii_leak_rate": 0.0}))
    golden = deployed.root / "data" / "prompt_outputs"
    golden.mkdir(parents=True)
    lines = [json.dumps({"id": i, "output": "The parcel never arrived and the customer asks where it is."})
             for i in range(10)]  # fmt: skip
    (golden / "summarize_ticket.jsonl").write_text("\n".join(lines))
    log = InferenceLog(deployed.root / "monitor" / "inference.db")
    latest = (time.time() // WINDOW_S - 1) * WINDOW_S
    for i in range(40):
        pii = i % 4 == 0  # 25 % of the answers leak PII; the golden set leaks none
        answer = "Call 555-123-4567 about the parcel that never arrived." if pii else "The parcel never arrived, ask."
        quality = ["pii"] if pii else []
        log.record(ts=latest + 100 + i, variant="stable", endpoint="prompt", prompt_name="summarize_ticket",
                   prompt_version=1, inputs={"ticket": "t"}, outputs=answer, quality=quality)  # fmt: skip
    log.close()
    assert cli.main(["monitor", "--params", str(deployed.params_file), "--no-registry"]) == 0  # 1 breach of 2 needed
    metrics = json.loads((deployed.root / "reports" / "monitor" / "metrics.json").read_text())
    summary = metrics["prompts"]["summarize_ticket"]
    assert summary["answers"] == 40 and summary["pii_rate"] == 0.25 and summary["failing"] == ["pii_rate"]
    assert summary["answer_words_baseline"] == 11 and summary["refusal_rate"] == 0
    assert metrics["failing"] == ["prompt:summarize_ticket:pii_rate"] and metrics["breaches"] == 1
    assert "[PII:phone]" in (deployed.root / "monitor" / "inference.db").read_bytes().decode(errors="replace")
