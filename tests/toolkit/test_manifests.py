"""`lockstep deploy manifests`: Argo Rollouts and KServe manifests from conf/deploy and the deploy
lock, every document valid against the official schemas, every threshold taken from the config."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from lockstep.cli import main
from lockstep.serve import k8s

from .conftest import TEMPLATE
from .k8s_schemas import validate

DIGEST = "sha256:" + "ab" * 32
LOCK = {
    "deploy_id": "ce4bf2a496a0",
    "created_at": "2026-11-26T00:20:00+00:00",
    "git_commit": "4c1d2e3f" * 5,
    "git_dirty": False,
    "variants": {
        "stable": {"model": {"name": "support_insights", "version": 3, "alias": "champion", "run_id": "r3"},
                   "prompts": {"summarize_ticket": {"name": "summarize_ticket", "version": 2, "alias": "champion"}}},
        "canary": {"model": {"name": "support_insights", "version": 4, "alias": "challenger", "run_id": "r4"},
                   "prompts": {"summarize_ticket": {"name": "summarize_ticket", "version": 3, "alias": "challenger"}}},
    },
}  # fmt: skip


def template_deploy() -> dict[str, Any]:
    """The baked project's conf/deploy/default.yaml, as the template ships it."""
    text = (TEMPLATE / "conf" / "deploy" / "default.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text.replace("{{ cookiecutter.package_name }}", "support_insights"))


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    params = {
        "register": {"model_name": "support_insights", "experiment": "support_insights", "alias": "challenger"},
        "deploy": template_deploy(),
        "monitor": {"log": "monitor/inference.db"},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    (tmp_path / "deploy.lock.json").write_text(json.dumps(LOCK), encoding="utf-8")
    return tmp_path


def generate(project: Path, *extra: str) -> dict[str, list[dict[str, Any]]]:
    assert main(["deploy", "manifests", "--image", "ghcr.io/acme/support-insights:ce4bf2a496a0", *extra]) == 0
    return {p.name: list(yaml.safe_load_all(p.read_text(encoding="utf-8"))) for p in (project / "deploy/k8s").glob("*")}


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def set_deploy(project: Path, **changes: Any) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text(encoding="utf-8"))
    params["deploy"].update(changes)
    (project / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")


def test_every_manifest_is_valid_against_the_official_schemas(project: Path) -> None:
    files = generate(project, "--digest", DIGEST)
    assert set(files) == {"argo-rollouts.yaml", "kserve.yaml"}
    kinds = sorted(d["kind"] for docs in files.values() for d in docs)
    assert kinds == ["AnalysisTemplate", "AnalysisTemplate", "InferenceService", "Rollout", "Service", "Service"]
    for docs in files.values():
        for doc in docs:
            validate(doc)


@pytest.mark.parametrize(
    ("kind", "plant"),
    [
        ("Rollout", lambda d: d["spec"]["strategy"]["canary"]["steps"].append({"setWieght": 10})),
        ("Rollout", lambda d: d["spec"]["template"]["spec"]["containers"][0].update(readinessProbes={})),
        ("AnalysisTemplate", lambda d: d["spec"]["metrics"][0].update(failureLimt=1)),
        ("AnalysisTemplate", lambda d: d["spec"]["metrics"][0]["provider"]["prometheus"].update(query=7)),
        ("InferenceService", lambda d: d["spec"]["predictor"].update(canaryTrafficPercent="10%")),
        ("InferenceService", lambda d: d["spec"]["predictor"]["containers"][0].update(imagePullPolicy=["Always"])),
        ("Service", lambda d: d["spec"].update(selectr={})),
    ],
    ids=["rollout-step", "rollout-probe", "analysis-field", "analysis-type", "kserve-percent", "kserve-type",
         "service-field"],
)  # fmt: skip
def test_a_planted_invalid_field_is_caught(project: Path, kind: str, plant: Any) -> None:
    docs = [d for file in generate(project).values() for d in file]
    doc = copy.deepcopy(by_kind(docs, kind)[0])
    validate(doc)
    plant(doc)
    with pytest.raises((jsonschema.ValidationError, kubernetes_validate.ValidationError)):
        validate(doc)


def test_rollout_steps_and_analysis_come_from_conf_deploy(project: Path) -> None:
    set_deploy(project, steps=[5, 20, 100], window_s=600, failure_limit=3, max_windows=12)
    docs = generate(project)["argo-rollouts.yaml"]
    (rollout,) = by_kind(docs, "Rollout")
    canary = rollout["spec"]["strategy"]["canary"]
    steps = canary["steps"]
    assert [s["setWeight"] for s in steps if "setWeight" in s] == [5, 20, 100]
    assert [s["pause"]["duration"] for s in steps if "pause" in s] == ["600s"] * 3
    analyses = [i for i, s in enumerate(steps) if "analysis" in s]
    assert [steps[i - 2]["setWeight"] for i in analyses] == [5, 20], "no comparison at 100 %: stable has no traffic"
    assert canary["analysis"]["templates"] == [{"templateName": "support-insights-sla"}]
    assert (canary["stableService"], canary["canaryService"]) == ("support-insights", "support-insights-canary")
    templates = {t["metadata"]["name"]: t for t in by_kind(docs, "AnalysisTemplate")}
    compare = templates["support-insights-compare"]["spec"]["metrics"]
    for metric in compare:
        assert metric["interval"] == "600s" and metric["count"] == 12 and metric["inconclusiveLimit"] == 12
        assert metric["failureLimit"] == 2, "failure_limit 3 failed windows: Argo fails when failures exceed 2"
        assert metric["consecutiveSuccessLimit"] == 1
        assert "[600s]" in metric["provider"]["prometheus"]["query"]
    for metric in templates["support-insights-sla"]["spec"]["metrics"]:
        assert metric["failureLimit"] == 0 and "count" not in metric


def test_analysis_thresholds_and_metric_names_come_from_the_service(project: Path) -> None:
    thresholds = {"min_samples": 80, "sla_p95_ms": 350, "max_error_rate": 0.05, "max_error_rate_increase": 0.003,
                  "max_p95_ratio": 1.25, "p95_slack_ms": 15, "max_quality_failure_increase": 0.04}  # fmt: skip
    set_deploy(project, thresholds=thresholds)
    docs = generate(project)["argo-rollouts.yaml"]
    metrics = {m["name"]: m for t in by_kind(docs, "AnalysisTemplate") for m in t["spec"]["metrics"]}
    queries = {name: m["provider"]["prometheus"]["query"] for name, m in metrics.items()}
    assert metrics["p95-latency-sla"]["failureCondition"] == "!isNaN(result[0]) && result[0] > 0.35"
    assert metrics["error-rate-max"]["failureCondition"] == "!isNaN(result[0]) && result[0] > 0.05"
    assert metrics["error-rate-vs-stable"]["successCondition"] == "!isNaN(result[0]) && result[0] <= 0.003"
    assert metrics["quality-vs-stable"]["successCondition"] == "!isNaN(result[0]) && result[0] <= 0.04"
    assert "* 1.25 >" in queries["p95-vs-stable"] and "+ 0.015" in queries["p95-vs-stable"]
    for name, query in queries.items():
        assert query.endswith("or on() vector(NaN)"), f"{name}: an empty result would abort the run"
        assert query.count(">= 80)") == (1 if name in ("p95-latency-sla", "error-rate-max") else 2)
        for metric in re.findall(r"\blockstep_\w+", query):
            assert metric in {"lockstep_requests_total", "lockstep_errors_total", "lockstep_quality_failures_total",
                              "lockstep_request_latency_seconds_bucket"}  # fmt: skip
        assert "{{args.canary-hash}}" in query and 'variant!="shadow"' in query
        assert query.count("(") == query.count(")")
    assert (
        "lockstep_errors_total" in queries["error-rate-vs-stable"]
        and "{{args.stable-hash}}" in queries["p95-vs-stable"]
    )


def test_metric_names_match_what_the_service_exports() -> None:
    from prometheus_client import generate_latest

    from lockstep.serve.metrics import Metrics
    from lockstep.settings import DeployConfig

    metrics = Metrics()
    for counter in (metrics.requests, metrics.errors):
        counter.labels("canary", "predict").inc()
    metrics.latency.labels("canary", "predict").observe(0.1)
    metrics.quality.labels("canary", "empty").inc()
    exported = set(re.findall(r"^(lockstep_\w+?)\{", generate_latest(metrics.registry).decode(), re.M))
    rendered = json.dumps(k8s.analysis_templates("x", DeployConfig()))
    used = set(re.findall(r"\blockstep_\w+", rendered))
    assert len(used) == 4 and used <= exported, used - exported


def test_pods_are_non_root_probed_sized_and_pinned_by_digest(project: Path) -> None:
    set_deploy(project, kubernetes={**template_deploy()["kubernetes"], "secret": "support-env", "port": 9000,
                                    "requests": {"cpu": "100m", "memory": "256Mi"}})  # fmt: skip
    files = generate(project, "--digest", DIGEST)
    (rollout,) = by_kind(files["argo-rollouts.yaml"], "Rollout")
    (isvc,) = files["kserve.yaml"]
    for pod in (rollout["spec"]["template"]["spec"], isvc["spec"]["predictor"]):
        (c,) = pod["containers"]
        assert c["image"] == f"ghcr.io/acme/support-insights@{DIGEST}"
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert c[probe]["httpGet"] == {"path": "/health", "port": 9000}
        assert c["resources"]["requests"] == {"cpu": "100m", "memory": "256Mi"}
        assert c["resources"]["limits"] == {"cpu": "1", "memory": "1Gi"}
        assert {"name": "PORT", "value": "9000"} in c["env"]
        assert c["envFrom"] == [{"secretRef": {"name": "support-env"}}]
        mounts = {m["mountPath"] for m in c["volumeMounts"]}
        assert mounts == {"/tmp", "/app/monitor"}, "read-only root: the inference log's directory is writable"
    assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert isvc["spec"]["predictor"]["containers"][0]["name"] == "kserve-container"
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Serverless"
    notes = rollout["metadata"]["annotations"]
    assert notes["lockstep.io/deploy-id"] == "ce4bf2a496a0"
    assert notes["lockstep.io/model-versions"] == "stable:support_insights/3,canary:support_insights/4"
    assert notes["lockstep.io/prompt-versions"] == "stable:summarize_ticket/2,canary:summarize_ticket/3"


def test_an_inference_log_in_postgresql_needs_no_volume(project: Path) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text(encoding="utf-8"))
    params["monitor"]["log"] = "postgresql://monitor@db.internal:5432/inference"
    (project / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    (rollout,) = by_kind(generate(project)["argo-rollouts.yaml"], "Rollout")
    (container,) = rollout["spec"]["template"]["spec"]["containers"]
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/tmp"}


def test_a_tag_without_digest_is_kept_and_flagged(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = generate(project)
    (isvc,) = files["kserve.yaml"]
    assert isvc["spec"]["predictor"]["containers"][0]["image"] == "ghcr.io/acme/support-insights:ce4bf2a496a0"
    assert "is a tag, not a digest" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "deploy", "message"),
    [
        (["--image", "ghcr.io/Acme/X"], {}, "not an image reference"),
        (["--image", "ghcr.io/acme/x", "--digest", "sha256:abc"], {}, "not sha256:<64 hex digits>"),
        (["--image", "ghcr.io/acme/x"], {"steps": [12.5, 100]}, "12.5 is not a whole percent"),
        (["--image", "ghcr.io/acme/x"], {"kubernetes": {"name": "Bad_Name"}}, "deploy.kubernetes.name"),
        ([], {}, "name the image"),
    ],
)
def test_bad_input_is_one_line_naming_the_fix(
    project: Path, capsys: pytest.CaptureFixture[str], args: list[str], deploy: dict[str, Any], message: str
) -> None:
    if deploy:
        set_deploy(project, **deploy)
    assert main(["deploy", "manifests", *args]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (project / "deploy" / "k8s").exists()


def test_image_reference_takes_the_digest_in_place_of_the_tag() -> None:
    assert k8s.image_ref("registry:5000/a/b:v1", DIGEST) == f"registry:5000/a/b@{DIGEST}"
    assert k8s.image_ref("registry:5000/a/b", DIGEST) == f"registry:5000/a/b@{DIGEST}"
    assert k8s.image_ref("ghcr.io/a/b:v1", None) == "ghcr.io/a/b:v1"
    assert k8s.dns_name("3d_support_insights") == "d-support-insights"
