"""The canary controller against a live service on loopback. A window's "wait" sends a fixed
batch of requests (deterministic keys, so the same cohorts every run) instead of sleeping, so each
window has exactly the traffic the test means it to have. The registry is a private copy."""

# ruff: noqa: F811  (the shared fixtures are imported by name)

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import pytest

from conftest import readline
from lockstep.config import StageError, load_params
from lockstep.serve.canary import Controller, judge, quantile, read_record
from lockstep.serve.client import Client
from lockstep.serve.http import create_app
from lockstep.serve.resolve import make_lock
from lockstep.serve.server import Running
from lockstep.serve.service import Service
from lockstep.settings import DeployConfig, Thresholds

from .serving import MODEL, Deployed, deployed, registry_dir  # noqa: F401

TOKEN = "canary-test-token"  # pragma: allowlist secret


@pytest.fixture
def private(deployed: Deployed, monkeypatch: pytest.MonkeyPatch) -> Deployed:
    """The shared registry copied, so promotion and rollback here change no other test's."""
    db = deployed.root / "mlflow.db"
    shutil.copy(deployed.uri.removeprefix("sqlite:///"), db)
    deployed.uri = f"sqlite:///{db}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", deployed.uri)
    return deployed


def config(**changes) -> DeployConfig:
    thresholds = Thresholds(min_samples=5, sla_p95_ms=80, p95_slack_ms=20, max_error_rate=0.5)
    base = {"steps": [20, 50, 100], "window_s": 1, "failure_limit": 2, "max_windows": 8, "thresholds": thresholds}
    return DeployConfig(**{**base, **changes})


@contextmanager
def live(d: Deployed, inject: str | None = None) -> Iterator[tuple[Service, Client, dict]]:
    lock = make_lock(load_params(d.params_file))
    service = Service(lock, inject=inject, check_pii=False)
    with Running(create_app(service, TOKEN)) as running:
        client = Client(running.url)
        yield service, client, lock
        client.close()


def batches(client: Client, rows: list[dict], per_window: int, counts: list[int]) -> Callable[[float], None]:
    """A window's traffic: per_window predict requests, each from its own user; counts non-200s."""
    windows = iter(range(1000))

    def wait(seconds: float) -> None:
        w = next(windows)
        for i in range(per_window):
            status, _, _ = client.post("/v1/predict", {"rows": rows[:1]}, key=f"w{w}-u{i}")
            counts.append(status)

    return wait


# Another client in its own process: it sends requests one after another until the stop file
# appears, and reports every request's HTTP status, or the error that lost it.
LOADER = """
import json, sys
from pathlib import Path
from lockstep.serve.client import Client

url, rows, stop = sys.argv[1], json.loads(sys.argv[2]), Path(sys.argv[3])
client, outcomes = Client(url), []
while not stop.exists():
    try:
        outcomes.append(client.post("/v1/predict", {"rows": rows}, key=f"b{len(outcomes)}")[0])
    except OSError as exc:
        outcomes.append(type(exc).__name__)
    if len(outcomes) == 1:
        print("started", flush=True)
print(json.dumps(outcomes), flush=True)
"""


@contextmanager
def second_process_load(url: str, rows: list[dict], stop: Path) -> Iterator[list]:
    """Bounded load from a second process while the block runs; the list holds every request's
    outcome (status or error) once the block ends."""
    stop.unlink(missing_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-c", LOADER, url, json.dumps(rows, default=str), str(stop)], stdout=subprocess.PIPE, text=True
    )
    outcomes: list = []
    try:
        assert readline(process.stdout, 60).strip() == "started"  # one answered request before the rollout starts
        yield outcomes
    finally:
        stop.touch()
        out, _ = process.communicate(timeout=120)
        outcomes.extend(json.loads(out.strip().splitlines()[-1]))


def run(
    d: Deployed,
    deploy: DeployConfig,
    inject: str | None = None,
    per_window: int = 40,
    background_load: bool = True,
    **kw,
) -> tuple[str, list]:
    """A rollout with per_window requests in each window, and (background_load) another process's
    requests all the while, whose number per window depends on the machine's speed."""
    record = d.root / "decisions.jsonl"
    statuses: list[int] = []
    with live(d, inject) as (service, client, lock):
        url = f"http://{client.host}:{client.port}"
        load = second_process_load(url, d.rows[:1], d.root / "stop-load") if background_load else nullcontext([])
        with load as background:
            outcome = Controller(
                deploy, lock, Client(url), TOKEN, record,
                wait=kw.get("wait") or batches(client, d.rows, per_window, statuses), say=lambda _: None,
            ).run()  # fmt: skip
        weight = service.weight
    entries = read_record(record, lock.deploy_id)
    return outcome, [*entries, {"weight_after": weight, "statuses": statuses, "background": background, "lock": lock}]


def test_quantile_interpolates_like_prometheus() -> None:
    buckets = {0.1: 50.0, 0.2: 90.0, 0.5: 100.0, float("inf"): 100.0}
    assert quantile(0.5, buckets) == pytest.approx(0.1)
    assert quantile(0.95, buckets) == pytest.approx(0.35)
    assert quantile(0.95, {0.1: 0.0, float("inf"): 0.0}) is None


def test_a_failing_stable_halts_the_rollout_naming_stable_not_the_canary() -> None:
    th = Thresholds(min_samples=5, sla_p95_ms=500, max_error_rate=0.2)
    healthy = {"requests": 50, "p95_ms": 30.0, "error_rate": 0.0, "quality_rate": 0.0}
    failing = {"requests": 50, "p95_ms": 2.0, "error_rate": 1.0, "quality_rate": 0.0}  # fails fast, every request
    verdict, reasons = judge(th, healthy, failing)
    assert verdict == "stable_failing", reasons
    assert reasons == [
        "stable error rate 100.00% > 20.00%",
        "stable itself is failing: the canary is not judged against it",
    ]
    assert judge(th, healthy, {**healthy, "p95_ms": 900.0})[1][0] == "stable p95 900 ms > SLA 500 ms"
    assert judge(th, failing, healthy)[0] == "hard"  # a failing canary is rolled back whatever stable does
    assert judge(th, healthy, healthy) == ("pass", [])


def test_a_good_canary_is_promoted_step_by_step(private: Deployed) -> None:
    import mlflow

    outcome, entries = run(private, config())
    *decisions, last = entries
    assert outcome == "promote"
    windows = [e for e in decisions if e["event"] == "window"]
    assert [(e["weight"], e["verdict"], e["action"]) for e in windows] == [
        (20, "pass", "advance"), (50, "pass", "advance"), (100, "pass", "promote"),
    ]  # fmt: skip
    assert windows[0]["canary"]["requests"] >= 5 and windows[2]["stable"]["requests"] == 0
    assert windows[2]["baseline"]["requests"] >= 5  # at 100 % the last stable window is the baseline
    assert decisions[-1]["event"] == "promote" and last["statuses"] == [200] * len(last["statuses"])
    assert len(last["background"]) > 10 and set(last["background"]) == {200}  # none failed during the weight changes
    client = mlflow.MlflowClient(private.uri)
    assert int(client.get_model_version_by_alias(MODEL, "champion").version) == 2
    assert int(client.get_model_version_by_alias(MODEL, "previous_champion").version) == 1
    mlflow.set_tracking_uri(private.uri)
    assert mlflow.genai.load_prompt("prompts:/triage_ticket@champion").version == 2
    assert mlflow.genai.load_prompt("prompts:/triage_ticket@previous_champion").version == 1
    mlflow.set_tracking_uri(None)
    # a decided deploy stays decided: the controller started again on the same lock does nothing more
    again = Controller(config(), last["lock"], Client("http://127.0.0.1:9"), TOKEN, private.root / "decisions.jsonl")
    assert again.run() == "promote"
    # and a new lock has nothing to roll out: the challenger is the champion now
    with pytest.raises(StageError, match=r"the lock has no canary variant \(challenger is champion\); nothing to roll"):
        run(private, config())


def test_latency_over_the_sla_rolls_back_in_the_first_window(private: Deployed) -> None:
    import mlflow

    outcome, entries = run(private, config(), inject="latency=100ms", per_window=30)
    *decisions, last = entries
    assert outcome == "rollback" and last["weight_after"] == 0
    (window,) = [e for e in decisions if e["event"] == "window"]
    assert window["verdict"] == "hard" and "SLA 80 ms" in window["reasons"][0]
    assert last["background"] and set(last["background"]) == {200}  # none failed or lost during rollback
    tags = mlflow.MlflowClient(private.uri).get_model_version(MODEL, "2").tags
    assert tags["rolled_back"] == "true" and "SLA" in tags["rolled_back.reasons"]
    assert int(mlflow.MlflowClient(private.uri).get_model_version_by_alias(MODEL, "champion").version) == 1
    mlflow.set_tracking_uri(private.uri)
    assert mlflow.genai.load_prompt("prompts:/summarize_ticket/2").tags["rolled_back"] == "true"
    mlflow.set_tracking_uri(None)


def test_errors_roll_back_after_failure_limit_windows(private: Deployed) -> None:
    outcome, entries = run(private, config(), inject="errors=20%")
    *decisions, last = entries
    windows = [e for e in decisions if e["event"] == "window"]
    assert outcome == "rollback" and last["weight_after"] == 0
    assert [(e["verdict"], e["action"]) for e in windows] == [("fail", "hold"), ("fail", "rollback")]
    assert "error rate" in windows[0]["reasons"][0]
    assert 500 in last["statuses"]  # the injected failures reached clients as HTTP 500s


def test_too_little_traffic_holds_and_never_promotes(private: Deployed) -> None:
    # No background load: each window has exactly 3 requests in all, fewer than min_samples on either arm
    outcome, entries = run(private, config(max_windows=3), per_window=3, background_load=False)
    *decisions, last = entries
    windows = [e for e in decisions if e["event"] == "window"]
    assert outcome == "undecided" and last["weight_after"] == 20
    assert [(e["weight"], e["verdict"], e["action"]) for e in windows] == [(20, "inconclusive", "hold")] * 3


def test_a_restarted_controller_resumes_from_the_record(private: Deployed) -> None:
    class Killed(Exception):
        pass

    record = private.root / "decisions.jsonl"
    with live(private) as (service, client, lock):
        traffic = batches(client, private.rows, 40, [])
        windows = 0

        def dies_in_the_third_window(seconds: float) -> None:
            nonlocal windows
            windows += 1
            traffic(seconds)
            if windows == 3:
                raise Killed

        with pytest.raises(Killed):
            Controller(config(), lock, client, TOKEN, record, wait=dies_in_the_third_window, say=lambda _: None).run()
        assert service.weight == 100  # two windows passed: 20 -> 50 -> 100
        service.set_weight(0)  # whatever the service does meanwhile, the controller restores the step
        said: list[str] = []
        outcome = Controller(config(), lock, client, TOKEN, record, wait=traffic, say=said.append).run()
    assert outcome == "promote"
    assert said[0] == f"canary: resuming deploy {lock.deploy_id} at step 2 after 2 windows"
    entries = [json.loads(line) for line in record.read_text().splitlines()]
    assert [e["event"] for e in entries] == ["start", "window", "window", "window", "promote"]
    assert [e.get("weight") for e in entries if e["event"] == "window"] == [20, 50, 100]


def test_the_canary_command_needs_the_admin_token(private: Deployed, capsys) -> None:
    from lockstep import cli

    assert cli.main(["canary", "--url", "http://127.0.0.1:9", "--params", str(private.params_file)]) == 1
    assert "LOCKSTEP_ADMIN_TOKEN" in capsys.readouterr().err


def test_decision_record_is_one_json_object_per_line(private: Deployed) -> None:
    run(private, config())
    lines = Path(private.root / "decisions.jsonl").read_text().splitlines()
    assert all(json.loads(line)["deploy_id"] for line in lines)


def test_the_rehearsal_promotes_without_faults_and_rolls_back_with_them(private: Deployed, capsys) -> None:
    import yaml

    from lockstep import cli

    from .serving import frame

    params = yaml.safe_load(private.params_file.read_text())
    (private.root / "prepared").mkdir()
    frame()[["f1", "f2", "y"]].to_parquet(private.root / "prepared" / "test.parquet", index=False)
    params["data"] = {"path": "raw.csv", "target": "y", "task": "multiclass", "test_size": 0.2, "seed": 0}
    params["paths"] = {"prepared": "prepared", "model": "m", "metrics": "m.json", "plots": "p", "registration": "r"}
    params["deploy"] |= {"steps": [50, 100], "rehearsal_window_s": 0.5, "max_windows": 6,
                         "thresholds": {"min_samples": 5, "sla_p95_ms": 250}}  # fmt: skip
    private.params_file.write_text(yaml.safe_dump(params))
    assert cli.main(["deploy", "lock", "--params", str(private.params_file)]) == 0
    argv = ["canary-rehearsal", "--params", str(private.params_file)]
    assert cli.main(argv) == 0
    assert "canary-rehearsal: promote (inject none)" in capsys.readouterr().out
    assert cli.main([*argv, "--inject", "latency=300ms"]) == 1
    out = capsys.readouterr().out
    assert "canary-rehearsal: rollback (inject latency=300ms)" in out and "SLA 250 ms" in out
    record = [json.loads(line) for line in (private.root / "reports/canary-rehearsal.jsonl").read_text().splitlines()]
    assert record[-1]["event"] == "rollback"
    import mlflow

    # a rehearsal moves no alias and tags nothing
    version = mlflow.MlflowClient(private.uri).get_model_version(MODEL, "2")
    assert "rolled_back" not in version.tags and "previous_champion" not in version.aliases
