"""Promotion policies (Rego, evaluated with regopy): allow, deny and pending_review; a project's rules add
to the central ones and never drop them; `lockstep policy test`; promote, approve, promote again."""

from __future__ import annotations

import copy
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lockstep import cli, policy
from lockstep.config import Params, PolicyConfig, StageError, load_params

PROJECT_POLICIES = Path(__file__).resolve().parents[2] / "{{cookiecutter.project_slug}}" / "policies"

ACCURACY = {"metric": "reports/metrics.json:accuracy", "rule": "higher is better, min 0.9", "passed": True,
            "old": 0.95, "new": 0.97, "failures": []}  # fmt: skip
LATENCY_OK = {"metric": "reports/metrics.json:latency_p95_ms", "rule": "lower is better, max 50", "passed": True,
              "old": 30.0, "new": 40.0, "failures": []}  # fmt: skip
LATENCY_SLOW = {**LATENCY_OK, "passed": False, "new": 62.0, "failures": ["62 > max 50"]}


def crafted(*checks: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A policy input as `build_input` makes it: a passing gate and DVC-tracked data unless changed."""
    checks = checks or (ACCURACY, LATENCY_OK)
    document = {
        "model": {"name": "m", "version": 4},
        "gate": {"ran": True, "base": "0" * 40},
        "checks": list(checks),
        "metrics": {c["metric"]: {"old": c["old"], "new": c["new"]} for c in checks},
        "params_diff": {},
        "lineage": {"data_md5": "abc", "git_commit": "0123abcd", "git_dirty": False},
        "data": {"path": "data/raw/breast_cancer.csv", "dvc_md5": "abc"},
        "approval": {},
        "policy": PolicyConfig(
            data_sources=["data/raw/*"],
            latency_sla_ms=50,
            max_cost_usd_per_case=0.01,
            review_on_gate_failure=["reports/metrics.json:latency_p95_ms"],
        ).model_dump(),
    }
    for key, value in changes.items():
        document[key] = value
    return document


def test_allow_deny_and_pending_review_from_crafted_inputs(tmp_path: Path) -> None:
    none = tmp_path / "no-policies"
    allowed = policy.evaluate(crafted(), none)
    assert allowed == {"decision": "allow", "deny": [], "review": [], "approved": False}

    slower = policy.evaluate(crafted(ACCURACY, LATENCY_SLOW), none)
    assert slower["decision"] == "pending_review" and slower["deny"] == []
    assert slower["review"] == [
        "gate: reports/metrics.json:latency_p95_ms: 62 > max 50: a human must decide",
        "latency_p95_ms 62 > SLA 50: a human must decide",
    ]
    approval = {"by": "Ada", "at": "2026-11-26T00:10:00+00:00", "reason": "batch scoring: latency is fine"}
    assert policy.evaluate(crafted(ACCURACY, LATENCY_SLOW, approval=approval), none)["decision"] == "allow"

    worse = {**ACCURACY, "passed": False, "new": 0.85, "failures": ["0.85 < min 0.9"]}
    denied = policy.evaluate(crafted(worse, LATENCY_OK, approval=approval), none)  # approval never lifts a deny
    assert denied["decision"] == "deny"
    assert denied["deny"] == ["gate: reports/metrics.json:accuracy: 0.85 < min 0.9"]

    foreign = crafted(lineage={"data_md5": "other", "git_commit": "x", "git_dirty": False},
                      data={"path": "/home/me/export.csv", "dvc_md5": "abc"})  # fmt: skip
    assert policy.evaluate(foreign, none)["deny"] == [
        "data source /home/me/export.csv is not on the allow-list (policy.data_sources: data/raw/*)",
        "registered data_md5 other differs from the DVC-tracked md5 abc of /home/me/export.csv",
    ]
    no_gate = crafted(gate={"ran": False, "base": None}, checks=[], metrics={})
    assert policy.evaluate(no_gate, none)["deny"] == [
        "no gate results (reports/gate/checks.json): run `lockstep gate` before deciding"
    ]
    quoted = {**ACCURACY, "passed": False, "failures": ['new value not a number ("high")']}
    assert policy.evaluate(crafted(quoted), none)["deny"] == [
        "gate: reports/metrics.json:accuracy: new value not a number ('high')"  # regopy cannot print quotes
    ]

    # The template's own project rules (policies/) add to the central ones: a commit Git does not know is denied
    rounds = 20
    started = time.perf_counter()
    decisions = [policy.evaluate(crafted(ACCURACY, LATENCY_SLOW), PROJECT_POLICIES) for _ in range(rounds)]
    print(f"\npolicy decision latency: {1000 * (time.perf_counter() - started) / rounds:.1f} ms (central + project)")
    assert all(d == slower for d in decisions)  # the same input, the same decision every time
    unknown = crafted(lineage={"data_md5": "abc", "git_commit": "unknown", "git_dirty": False})
    assert policy.evaluate(unknown, PROJECT_POLICIES)["deny"] == [
        "model version 4 was registered outside a Git repository (git_commit unknown)"
    ]


def test_the_data_md5_is_read_from_its_dvc_file_else_from_the_stages_of_dvc_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without a .dvc file, the raw data is a dependency (deps) of the stage that reads it, never an output
    monkeypatch.chdir(tmp_path)
    data = Path("data/raw/tickets.csv")
    Path("dvc.lock").write_text(
        "schema: '2.0'\n"
        "stages:\n"
        "  prepare:\n"
        "    cmd: python -m pkg.stages.prepare\n"
        "    deps:\n"
        "    - path: data/raw/tickets.csv\n"
        "      md5: 1f2e3d4c5b6a79881f2e3d4c5b6a7988\n"
        "      size: 120\n"
        "    outs:\n"
        "    - path: data/prepared\n"
        "      md5: 0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a.dir\n"
    )
    assert policy.dvc_md5(data) == "1f2e3d4c5b6a79881f2e3d4c5b6a7988"
    assert policy.dvc_md5(Path("data/raw/other.csv")) is None
    data.parent.mkdir(parents=True)
    Path(f"{data}.dvc").write_text("outs:\n- path: tickets.csv\n  md5: 9e107d9d372bb6826bd81d3542a419d6\n")
    assert policy.dvc_md5(data) == "9e107d9d372bb6826bd81d3542a419d6"  # its own .dvc file comes first


def test_a_project_adds_rules_but_cannot_drop_central_ones(tmp_path: Path) -> None:
    project = tmp_path / "policies"
    project.mkdir()
    (project / "lenient.rego").write_text(
        "package lockstep.project\n\n"
        "deny := set()\n\n"  # its own deny, empty: the central deny is another rule
        'decision := {"decision": "allow"}\n\n'
        'review contains "a person looks at every release" if { input.model.version > 0 }\n'
    )
    slow_untracked = crafted(ACCURACY, LATENCY_SLOW, data={"path": "data/raw/a.csv", "dvc_md5": None})
    decision = policy.evaluate(slow_untracked, project)
    assert decision["decision"] == "deny"
    assert "a person looks at every release" in decision["review"]
    assert any("is not tracked by DVC" in reason for reason in decision["deny"])

    for package in ("lockstep.central", "lockstep", "lockstep.projects"):
        (project / "lenient.rego").write_text(f'package {package}\n\ndecision := {{"decision": "allow"}}\n')
        with pytest.raises(StageError, match=rf"package {package}: a project's policies declare `package lockstep"):
            policy.evaluate(crafted(), project)


def test_policy_tests_pass_and_a_broken_one_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    project = tmp_path / "policies"
    shutil.copytree(PROJECT_POLICIES, project)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["policy", "test"]) == 0
    out = capsys.readouterr().out
    assert "PASS policies/project_test.rego: test_a_version_without_a_commit_is_denied" in out
    central = "lockstep/policies/central_test.rego"
    assert f"PASS {central}: test_more_accurate_but_slower_than_the_sla_is_pending_review" in out

    broken = (project / "project_test.rego").read_text() + (
        "\ntest_wrong_expectation if {\n"
        '\tcount(data.lockstep.project.deny) == 1 with input.lineage as {"git_commit": "abc"}\n}\n'
    )
    (project / "project_test.rego").write_text(broken)
    assert cli.main(["policy", "test", "--policies", "policies"]) == 1
    out = capsys.readouterr().out
    assert "FAIL policies/project_test.rego: test_wrong_expectation" in out and "policy test: 19/20 passed" in out

    (project / "project_test.rego").write_text(
        broken + '\ntest_whole_input if {\n\tcount(data.lockstep.project.deny) == 0 with input as {"lineage": {}}\n}\n'
    )
    assert cli.main(["policy", "test"]) == 1
    assert "crashes regopy: set keys, `with input.<key> as ...`" in capsys.readouterr().out

    (project / "project_test.rego").write_text("package lockstep.project_test\n\ntest_x if {\n")
    assert cli.main(["policy", "test"]) == 1
    assert "policies/project_test.rego: not valid Rego v1" in capsys.readouterr().err


@pytest.fixture
def tracking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    yield uri
    import mlflow

    mlflow.set_tracking_uri(None)


def test_more_accurate_but_slower_waits_for_an_approval_then_promotes(
    tracking: str, pipeline, params: dict, params_file: Path, promotable, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    pipeline()
    assert cli.main(["register", "--params", str(params_file)]) == 0
    name, client = params["register"]["model_name"], mlflow.MlflowClient(tracking)
    promote = ["promote", "--params", str(params_file)]

    # Data that DVC does not track: denied, tagged, champion untouched
    params["policy"] = {"data_sources": ["*.csv"]}
    params_file.write_text(json.dumps(params))
    Path("reports/gate").mkdir(parents=True)
    Path("reports/gate/checks.json").write_text(json.dumps({"checks": [ACCURACY], "metrics": {}, "params_diff": {}}))
    assert cli.main(promote) == 1
    assert client.get_model_version(name, "1").tags["denied"] == "true"
    assert "is not tracked by DVC" in client.get_model_version(name, "1").tags["deny.reasons"]
    capsys.readouterr()

    # More accurate, slower than the SLA: pending_review, with the reasons on every version
    promotable(checks=[ACCURACY, LATENCY_SLOW])
    Path("reports/gate/report.md").write_text("<!-- lockstep-gate -->\n## Lockstep gate: failed\n")
    assert cli.main(promote) == 3
    out = capsys.readouterr().out
    assert "policy: pending_review (models:/toolkit_test/1" in out
    assert "review: latency_p95_ms 62 > SLA 50: a human must decide" in out
    assert "promote: @champion not moved: pending_review (tagged on the versions)" in out
    with pytest.raises(mlflow.exceptions.MlflowException):
        client.get_model_version_by_alias(name, "champion")
    tags = client.get_model_version(name, "1").tags
    assert tags["pending_review"] == "true" and tags["decision"] == "pending_review" and tags["denied"] == "false"
    assert "latency_p95_ms 62 > SLA 50: a human must decide" in tags["review.reasons"]
    prompt = mlflow.genai.load_prompt("prompts:/summarize_ticket/1")
    assert prompt.tags["pending_review"] == "true"
    decision = json.loads(Path("reports/gate/decision.json").read_text())
    assert decision["decision"] == "pending_review" and decision["input"]["data"]["dvc_md5"]
    report = Path("reports/gate/report.md").read_text()
    assert "### Promotion policy: `pending_review`" in report and "lockstep approve --version 1" in report
    assert cli.main(["policy", "eval", "--params", str(params_file)]) == 3
    print(f"\npromotion decision latency in promote: {decision['latency_ms']} ms")

    # A person approves; promoting again moves champion, and says who approved
    monkeypatch.setenv("CI", "true")  # an approval records CI's identity, never a typed-in name
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_ACTOR", "ada")
    assert cli.main(["approve", "--params", str(params_file), "--reason", "batch use only"]) == 0
    assert "approve: models:/toolkit_test/1 approved by github:ada at " in capsys.readouterr().out
    assert cli.main(["policy", "eval", "--params", str(params_file)]) == 0
    assert cli.main(promote) == 0
    assert "promote: @champion -> models:/toolkit_test/1, prompts:/summarize_ticket/1" in capsys.readouterr().out
    assert int(client.get_model_version_by_alias(name, "champion").version) == 1
    tags = client.get_model_version(name, "1").tags
    assert tags["pending_review"] == "false" and tags["decision"] == "allow" and tags["approval.by"] == "github:ada"
    assert mlflow.genai.load_prompt("prompts:/summarize_ticket@champion").version == 1
    decision = json.loads(Path("reports/gate/decision.json").read_text())
    assert decision["approved"] is True and decision["approval"]["reason"] == "batch use only"
    assert Path("reports/gate/report.md").read_text().count("### Promotion policy") == 1  # replaced, not appended

    # --alias moves another alias on the same decision and leaves champion alone
    assert cli.main([*promote, "--alias", "production"]) == 0
    assert "promote: @production -> models:/toolkit_test/1, prompts:/summarize_ticket/1" in capsys.readouterr().out
    assert int(client.get_model_version_by_alias(name, "production").version) == 1
    assert mlflow.genai.load_prompt("prompts:/triage_ticket@production").version == 1

    # Every move of an alias is in the history: who, from which version, on what decision
    assert cli.main(["history", name]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any("@champion: none -> 1  by github:ada  decision allow" in line for line in lines), lines
    assert any("@production: none -> 1" in line for line in lines)

    # On a shared registry outside CI, no identity can be recorded: the approval is refused
    for name_ in ("CI", "GITHUB_ACTIONS", "GITHUB_ACTOR"):
        monkeypatch.delenv(name_)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    with pytest.raises(StageError, match="no identity to record on a shared registry"):
        policy.approve(load_params(params_file))


def test_approval_times_are_read_as_regopy_reads_them() -> None:
    assert policy.rfc3339("2026-11-26T00:10:00Z") == "2026-11-26T00:10:00+00:00"  # Z is undefined in regopy
    assert policy.rfc3339("yesterday") == "yesterday"
    record = {"model_name": "m", "version": 1, "data_md5": "a", "git_commit": "c", "git_dirty": "true"}
    params = {"data": {"path": "data/raw/x.csv", "target": "y", "task": "regression", "test_size": 0.2, "seed": 1}}
    document = policy.build_input(
        Params.model_validate(params), record, {"approval.by": "Ada", "approval.at": "2026-11-26T01:10:00+01:00"}
    )
    assert document["approval"] == {"by": "Ada", "at": "2026-11-26T00:10:00+00:00"}
    assert document["lineage"]["git_dirty"] is True and document["gate"] == {
        "ran": False,
        "base": None,
        "head": None,
        "verdict": None,
        "pending": [],
        "failures": [],
    }
    assert document["policy"] == PolicyConfig().model_dump() == copy.deepcopy(document["policy"])


def test_the_gate_of_the_commit_that_records_the_outputs_is_the_versions_own(tmp_path: Path, monkeypatch) -> None:
    # `make repro` registers on commit A, then dvc.lock is committed (B): the gate at B judged A's inputs
    import subprocess

    from lockstep.policy import outputs_only

    monkeypatch.chdir(tmp_path)

    def commit(name: str, text: str) -> str:
        (tmp_path / name).write_text(text)
        env = {
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@t",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@t",
        }
        subprocess.run(["git", "add", name], check=True)
        subprocess.run(["git", "commit", "-qm", name], check=True, env={**os.environ, **env})
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()

    subprocess.run(["git", "init", "-q"], check=True)
    a = commit("train.py", "v1")
    b = commit("dvc.lock", "outs")
    c = commit("train.py", "v2")
    assert outputs_only(a, b)  # only what the pipeline writes
    assert not outputs_only(a, c)  # code changed since the registration
    assert not outputs_only(b, a) and not outputs_only(a, a) and not outputs_only(None, b)
