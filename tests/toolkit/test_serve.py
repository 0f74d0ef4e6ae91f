"""The deploy lock and the service: locked versions only, every answer names its variant and
versions, sticky routing monotone in the weight, metrics per variant, no failed request while
the weight changes. Everything on loopback, on ports the OS picks."""

# ruff: noqa: F811  (the shared fixtures are imported by name)

from __future__ import annotations

import json
import threading
import time

import pytest

from lockstep import cli
from lockstep.config import load_params
from lockstep.serve.client import Client
from lockstep.serve.routing import Faults, route
from lockstep.serve.server import Running, build

from .serving import MODEL, Deployed, deployed, registry_dir  # noqa: F401

TOKEN = "token-for-the-test"  # pragma: allowlist secret


def lock(d: Deployed) -> dict:
    assert cli.main(["deploy", "lock", "--params", str(d.params_file)]) == 0
    return json.loads((d.root / "deploy.lock.json").read_text())


def test_lock_resolves_aliases_to_numbers(deployed: Deployed, capsys) -> None:
    locked = lock(deployed)
    assert set(locked) == {"deploy_id", "created_at", "git_commit", "git_dirty", "variants"}
    stable, canary = locked["variants"]["stable"], locked["variants"]["canary"]
    assert stable["model"] | {"run_id": None} == {"name": MODEL, "version": 1, "alias": "champion", "run_id": None}
    assert canary["model"]["version"] == 2 and canary["model"]["alias"] == "challenger"
    assert {p["version"] for p in stable["prompts"].values()} == {1}
    assert {p["version"] for p in canary["prompts"].values()} == {2}
    out = capsys.readouterr().out
    assert f"stable (@champion) -> models:/{MODEL}/1, prompts:/summarize_ticket/1" in out
    assert lock(deployed)["deploy_id"] == locked["deploy_id"]  # same versions, same cohorts
    capsys.readouterr()
    assert cli.main(["deploy", "id", "--params", str(deployed.params_file)]) == 0
    assert capsys.readouterr().out.strip() == locked["deploy_id"]
    assert cli.main(["deploy", "build-args", "--params", str(deployed.params_file)]) == 0
    args = capsys.readouterr().out.split()
    assert f"DEPLOY_ID={locked['deploy_id']}" in args and f"GIT_COMMIT={locked['git_commit']}" in args
    assert f"MODEL_VERSIONS=stable:{MODEL}/1,canary:{MODEL}/2" in args
    prompts = "stable:summarize_ticket/1,stable:triage_ticket/1,canary:summarize_ticket/2,canary:triage_ticket/2"
    assert f"PROMPT_VERSIONS={prompts}" in args


def test_service_answers_with_the_locked_versions_even_when_an_alias_moves(deployed: Deployed) -> None:
    import mlflow

    lock(deployed)
    app, service = build(load_params(deployed.params_file))
    # champion moves after the lock: the service keeps serving what was locked
    mlflow.set_tracking_uri(deployed.uri)
    client = mlflow.MlflowClient()
    client.set_registered_model_alias(MODEL, "champion", "2")
    try:
        with Running(app) as running:
            http = Client(running.url)
            status, health, _ = http.get("/health")
            assert status == 200 and health["weight"] == 0
            assert health["variants"]["stable"]["model"]["version"] == 1
            status, body, headers = http.post("/v1/predict", {"rows": deployed.rows}, key="user-1")
            assert status == 200, body
            assert body["variant"] == "stable" and headers["x-lockstep-variant"] == "stable"
            assert body["model"] == {"name": MODEL, "version": 1} and body["predictions"] == [0, 0, 0, 0]
            status, body, _ = http.post("/v1/prompts/summarize_ticket", {"variables": {"ticket": "Where is it?"}})
            assert status == 200, body
            assert body["prompt"] == {"name": "summarize_ticket", "version": 1}
            assert body["answer"] == deployed.llm.answer and body["tokens"]["output"] == 7
            assert deployed.llm.requests[-1]["body"]["max_tokens"] != 64  # version 1's settings
            status, body, _ = http.post("/v1/prompts/summarize_ticket", {"variables": {}})
            assert status == 422 and body["detail"][0]["loc"] == ["body", "variables", "ticket"], body
            assert http.post("/v1/prompts/nope", {"variables": {}})[0] == 404
            # everything to the canary: version 2 answers, and says so
            service.set_weight(100)
            status, body, headers = http.post("/v1/predict", {"rows": deployed.rows}, key="user-1")
            assert body["variant"] == "canary" and body["model"]["version"] == 2 and body["predictions"] == [1, 0, 1, 0]
            status, body, _ = http.post("/v1/prompts/triage_ticket", {"variables": {"ticket": "Refund me"}})
            assert body["prompt"] == {"name": "triage_ticket", "version": 2} and json.loads(body["answer"])
            assert deployed.llm.requests[-1]["body"]["max_tokens"] == 64
            metrics = http.get("/metrics")[1]
            assert 'lockstep_requests_total{endpoint="predict",variant="stable"} 1.0' in metrics
            assert 'lockstep_requests_total{endpoint="predict",variant="canary"} 1.0' in metrics
            assert 'lockstep_tokens_total{kind="output",variant="canary"} 7.0' in metrics
            assert "lockstep_request_latency_seconds_bucket" in metrics
            # no admin token configured: the weight cannot be changed over HTTP
            assert http.request("PUT", "/admin/weight", {"weight": 0})[0] == 404
            http.close()
    finally:
        client.set_registered_model_alias(MODEL, "champion", "1")
        mlflow.set_tracking_uri(None)


def test_client_mistakes_are_4xx_naming_the_field_with_no_internals_and_no_service_error(deployed: Deployed) -> None:
    import yaml

    lock(deployed)
    params = yaml.safe_load(deployed.params_file.read_text())
    params["deploy"] |= {"max_rows": 50, "max_body_bytes": 100_000}
    deployed.params_file.write_text(yaml.safe_dump(params))
    app, _ = build(load_params(deployed.params_file))
    good = deployed.rows[0]
    with Running(app) as running:
        http = Client(running.url)

        def refused(rows: object, status: int = 422) -> list[dict]:
            code, body, _ = http.post("/v1/predict", {"rows": rows}, key="user-1")
            assert code == status, body
            assert "Traceback" not in str(body) and "schema" not in str(body).lower() and "1.5" not in str(body)
            return body["detail"]

        renamed = {"f1": good["f1"], "feature_two": 1.5}
        assert [(d["loc"], d["type"]) for d in refused([renamed])] == [
            (["body", "rows", "f2"], "missing"), (["body", "rows", "feature_two"], "extra_forbidden")]  # fmt: skip
        assert refused([good, good | {"f2": "1.5"}])[0]["loc"] == ["body", "rows", 1, "f2"]
        assert refused([good | {"f1": None}])[0] == {"loc": ["body", "rows", 0, "f1"], "msg": "null: give a value",
                                                   "type": "missing"}  # fmt: skip
        assert refused([good | {"f1": float("nan")}])[0]["loc"] == ["body", "rows", 0, "f1"]
        assert refused([good | {"f1": True}])[0]["type"] == "float_type"
        assert refused([])[0]["type"] == "too_short"
        assert refused(["f1=1"])[0]["loc"] == ["body", "rows", 0]
        assert refused([good] * 51, 413)[0]["msg"].startswith("51 rows: at most 50 per request")
        assert refused([good] * 5000, 413)[0]["msg"].startswith("the request body is over 100000 bytes")
        code, body, _ = http.post("/v1/predict", {"rows": "not a list"})
        assert code == 422 and "input" not in body["detail"][0], body  # FastAPI's own 422, the input not echoed
        status, body, _ = http.post("/v1/predict", {"rows": [good]}, key="user-1")
        assert status == 200, body
        metrics = http.get("/metrics")[1]
        assert "lockstep_errors_total{" not in metrics, "a client's mistake is never a variant's error"
        assert 'lockstep_requests_total{endpoint="predict",variant="stable"} 1.0' in metrics
        assert 'lockstep_requests_rejected_total{endpoint="predict",status="422"} 8.0' in metrics
        assert 'lockstep_requests_rejected_total{endpoint="predict",status="413"} 2.0' in metrics
        assert http.get("/docs")[0] == http.get("/openapi.json")[0] == 404  # off unless conf/deploy api_docs
        http.close()


def test_a_version_rolled_back_or_denied_after_the_lock_is_never_served(deployed: Deployed) -> None:
    import mlflow

    from lockstep.config import StageError

    lock(deployed)
    mlflow.set_tracking_uri(deployed.uri)
    client = mlflow.MlflowClient()
    try:
        for key, value, said in (("rolled_back", "true", "was rolled back"), ("denied", "true", "was denied")):
            client.set_model_version_tag(MODEL, "2", key, value)
            with pytest.raises(StageError, match=f"serve: refused: canary models:/{MODEL}/2 {said}"):
                build(load_params(deployed.params_file))
            client.delete_model_version_tag(MODEL, "2", key)
    finally:
        mlflow.set_tracking_uri(None)


def test_a_failure_of_the_service_is_500_without_internals(deployed: Deployed) -> None:
    lock(deployed)
    app, service = build(load_params(deployed.params_file))
    service.variants["stable"].faults = Faults.parse("errors=100%")
    with Running(app) as running:
        http = Client(running.url)
        status, body, _ = http.post("/v1/predict", {"rows": deployed.rows}, key="user-1")
        assert status == 500
        assert body["detail"] == {"error": "the service failed to answer; its log has the cause",
                                  "variant": "stable", "deploy_id": service.deploy_id}  # fmt: skip
        assert 'lockstep_errors_total{endpoint="predict",variant="stable"} 1.0' in http.get("/metrics")[1]
        http.close()


def test_routing_is_sticky_and_monotone_in_the_weight() -> None:
    keys = [f"user-{i}" for i in range(4000)]
    previous: set[str] = set()
    for weight in (0, 1, 10, 25, 50, 99, 100):
        canary = {k for k in keys if route("deploy-a", k, weight) == "canary"}
        assert previous <= canary  # a cohort on the canary stays there as the weight rises
        assert abs(len(canary) / len(keys) - weight / 100) < 0.03
        assert canary == {k for k in keys if route("deploy-a", k, weight) == "canary"}  # sticky
        previous = canary
    # another deployment draws other cohorts
    assert {k for k in keys if route("deploy-b", k, 10) == "canary"} != {
        k for k in keys if route("deploy-a", k, 10) == "canary"
    }


def test_faults_parse_and_fail_exactly_their_share() -> None:
    faults = Faults.parse("latency=300ms,errors=5%")
    assert faults.latency_s == pytest.approx(0.3) and faults.error_rate == pytest.approx(0.05)
    faults.latency_s = 0
    failed = 0
    for _ in range(200):
        try:
            faults.apply()
        except RuntimeError:
            failed += 1
    assert failed == 10
    with pytest.raises(Exception, match="latency=<N>ms"):
        Faults.parse("latency=fast")


def test_no_request_fails_while_the_weight_changes(deployed: Deployed, monkeypatch: pytest.MonkeyPatch) -> None:
    lock(deployed)
    monkeypatch.setenv("LOCKSTEP_ADMIN_TOKEN", TOKEN)
    app, service = build(load_params(deployed.params_file))
    results: list[tuple[int, str]] = []
    stop = threading.Event()

    def load() -> None:
        http = Client(running.url)
        i = 0
        while not stop.is_set():
            status, body, _ = http.post("/v1/predict", {"rows": deployed.rows[:1]}, key=f"k{i}")
            results.append((status, body.get("variant") if isinstance(body, dict) else "?"))
            i += 1
        http.close()

    with Running(app) as running:
        admin = Client(running.url)
        assert admin.request("PUT", "/admin/weight", {"weight": 10}, {"X-Admin-Token": "wrong"})[0] == 403
        thread = threading.Thread(target=load)
        thread.start()
        weights = [10, 25, 50, 100, 0, 50, 100]
        for weight in weights:
            before = len(results)
            status, body, _ = admin.request("PUT", "/admin/weight", {"weight": weight}, {"X-Admin-Token": TOKEN})
            assert status == 200 and body["weight"] == weight
            deadline = time.monotonic() + 60
            while len(results) < before + 20:  # let 20 requests through at this weight
                assert thread.is_alive() and time.monotonic() < deadline, f"{len(results) - before} requests in 60 s"
                thread.join(0.001)
        stop.set()
        thread.join()
        admin.close()
    assert len(results) >= 20 * len(weights)
    assert [r for r in results if r[0] != 200] == []
    assert {variant for _, variant in results} == {"stable", "canary"}
    assert service.weight == 100


def test_staging_evaluates_the_canary_over_http_and_tags_the_versions(deployed: Deployed, capsys) -> None:
    import shutil

    import mlflow
    import yaml

    from .conftest import TEMPLATE
    from .serving import frame

    lock(deployed)
    params = yaml.safe_load(deployed.params_file.read_text())
    root = deployed.root
    shutil.copytree(TEMPLATE / "data" / "golden", root / "golden", ignore=shutil.ignore_patterns("*.dvc", "*.md"))
    (root / "prepared").mkdir()
    frame().tail(20).to_parquet(root / "prepared" / "test.parquet", index=False)
    params["data"] = {"path": "raw.csv", "target": "y", "task": "multiclass", "test_size": 0.2, "seed": 0}
    params["paths"] = {
        "prepared": "prepared", "model": "m", "metrics": "m.json", "plots": "p", "registration": "r.json",
        "prompts": "prompts", "golden": "golden", "prices": str(root / "prices.yaml"),
    }  # fmt: skip
    (root / "prices.yaml").write_text("fake: {input: 0.0, output: 0.0}\n")
    rules = [
        {"metric": "reports/metrics.json:accuracy", "direction": "higher", "min": 0.7},
        {"metric": "reports/prompts/*/metrics.json:pii_leak_rate", "direction": "lower", "max": 0.0},
        {"metric": "reports/prompts/triage_ticket/metrics.json:exact_match", "direction": "higher", "min": 0.0},
    ]
    params["gates"] = {"rules": rules}
    deployed.params_file.write_text(yaml.safe_dump(params))
    assert cli.main(["staging", "--params", str(deployed.params_file)]) == 0
    out = capsys.readouterr().out
    assert "staging: passed" in out
    report = json.loads((root / "reports" / "staging.json").read_text())
    assert report["variant"] == "canary" and report["model"]["version"] == 2
    assert report["metrics"]["reports/metrics.json:accuracy"] >= 0.7
    assert report["metrics"]["reports/prompts/triage_ticket/metrics.json:cases"] > 0
    client = mlflow.MlflowClient(deployed.uri)
    tags = client.get_model_version(MODEL, "2").tags
    assert tags["staging.passed"] == "true" and tags["staging.deploy_id"] == report["deploy_id"]
    mlflow.set_tracking_uri(deployed.uri)
    assert mlflow.genai.load_prompt("prompts:/triage_ticket/2").tags["staging.passed"] == "true"

    # a limit the canary misses fails staging, and says which
    rules[0]["min"] = 0.99
    deployed.params_file.write_text(yaml.safe_dump(params))
    assert cli.main(["staging", "--params", str(deployed.params_file)]) == 1
    assert "FAILED reports/metrics.json:accuracy" in capsys.readouterr().out
    assert client.get_model_version(MODEL, "2").tags["staging.passed"] == "false"
    client.set_model_version_tag(MODEL, "2", "staging.passed", "true")  # the registry is shared
    mlflow.set_tracking_uri(None)
