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


class FakeService:
    """A service's /metrics and /admin/weight in memory. Its clock is the controller's `wait`: each
    window lasts window_s on that clock, no wall time, and brings 100 requests split by the weight,
    a share of each arm's answers failing the quality checks."""

    def __init__(self, quality: dict[str, float]) -> None:
        self.quality, self.weight, self.clock, self.weights = quality, 0.0, 0.0, []
        self.counts = {arm: {"requests": 0, "quality": 0} for arm in ("canary", "stable")}

    def wait(self, seconds: float) -> None:
        self.clock += seconds
        for arm, n in (("canary", round(self.weight)), ("stable", 100 - round(self.weight))):
            self.counts[arm]["requests"] += n
            self.counts[arm]["quality"] += round(self.quality[arm] * n)

    def get(self, path: str) -> tuple[int, str, dict]:
        assert path == "/metrics"
        lines = []
        for arm, c in self.counts.items():
            lines += [
                f'lockstep_requests_total{{variant="{arm}"}} {c["requests"]}',
                f'lockstep_quality_failures_total{{variant="{arm}"}} {c["quality"]}',
                f'lockstep_request_latency_seconds_bucket{{variant="{arm}",le="0.05"}} {c["requests"]}',
                f'lockstep_request_latency_seconds_bucket{{variant="{arm}",le="+Inf"}} {c["requests"]}',
            ]
        types = ["# TYPE lockstep_requests counter", "# TYPE lockstep_quality_failures counter",
                 "# TYPE lockstep_request_latency_seconds histogram"]  # fmt: skip
        return 200, "\n".join([*types, *lines]) + "\n", {}

    def request(self, method: str, path: str, body: dict, headers: dict) -> tuple[int, dict, dict]:
        assert (method, path) == ("PUT", "/admin/weight")
        self.weight = body["weight"]
        self.weights.append(self.weight)
        return 200, {"deploy_id": "d1"}, {}


class FakeRegistry:
    def __init__(self) -> None:
        self.promoted, self.rolled_back = False, None

    def promote(self) -> None:
        self.promoted = True

    def rollback(self, reasons: list[str]) -> None:
        self.rolled_back = reasons


def quality_rollout(tmp_path: Path, quality: dict[str, float]) -> tuple[str, FakeService, FakeRegistry, list[str]]:
    from types import SimpleNamespace

    service, registry, said = FakeService(quality), FakeRegistry(), []
    lock = SimpleNamespace(canary=object(), deploy_id="d1")
    deploy = config(window_s=3600)  # an hour per window, on the fake clock
    outcome = Controller(deploy, lock, service, TOKEN, tmp_path / "decisions.jsonl", wait=service.wait,
                         registry=registry, say=said.append).run()  # fmt: skip
    return outcome, service, registry, said


def test_quality_failures_on_the_canary_roll_it_back_and_on_stable_do_not(tmp_path: Path) -> None:
    th = Thresholds(min_samples=5, max_quality_failure_increase=0.02)
    good = {"requests": 50, "p95_ms": 30.0, "error_rate": 0.0, "quality_rate": 0.0}
    poor = {**good, "quality_rate": 0.1}
    assert judge(th, poor, good) == ("fail", ["canary quality failures 10.00% vs stable 0.00% (> +2.00%)"])
    assert judge(th, good, poor) == ("pass", [])  # a canary better than stable passes
    assert judge(th, {**good, "quality_rate": 0.01}, good) == ("pass", [])  # within the allowed increase

    outcome, service, registry, said = quality_rollout(tmp_path / "worse", {"canary": 0.25, "stable": 0.0})
    assert outcome == "rollback" and not registry.promoted
    assert registry.rolled_back == [
        "canary quality failures 25.00% vs stable 0.00% (> +2.00%)",
        "2 failed windows (failure_limit 2)",
    ]
    assert (
        said[1] == "canary: window 1 at 20%: fail -> hold (canary quality failures 25.00% vs stable 0.00% (> +2.00%))"
    )
    assert service.weights == [20, 0] and service.clock == 2 * 3600

    outcome, service, registry, _ = quality_rollout(tmp_path / "better", {"canary": 0.0, "stable": 0.25})
    assert outcome == "promote" and registry.promoted and registry.rolled_back is None
    assert service.weights == [20, 50, 100] and service.clock == 3 * 3600


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
    outcome, entries = run(private, config(), background_load=False)
    lines = Path(private.root / "decisions.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]  # each line a whole JSON object
    assert outcome == "promote"
    assert [r["event"] for r in records] == ["start", "window", "window", "window", "promote"]
    assert {r["deploy_id"] for r in records} == {entries[-1]["lock"].deploy_id}


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
                         "thresholds": {"min_samples": 5, "sla_p95_ms": 250, "p95_slack_ms": 150}}  # fmt: skip
    # a loaded runner puts tens of ms between two healthy arms; the injected 300 ms breaks the SLA
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
