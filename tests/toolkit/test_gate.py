"""The CI gate: rules against the base, every edge of a comparison, reports, lock check, GitLab note."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
import yaml
from pydantic import ValidationError

from lockstep import cli, gate
from lockstep.config import StageError
from lockstep.dvc_lock import stale_stages
from lockstep.gate import GatesConfig, Rule, Value

ACCURACY = Rule(metric="reports/metrics.json:accuracy", direction="higher", min=0.9, max_regression=0.02)
LATENCY = Rule(metric="reports/*.json:latency_ms", direction="lower", max=10, max_regression_pct=50)


def failures(rule: Rule, old: object, new: object, absent: str = "absent") -> list[str]:
    return gate.evaluate(rule, "m", Value.of(old, absent=absent), Value.of(new)).failures


def test_regressions_within_and_beyond_the_rule() -> None:
    assert failures(ACCURACY, 0.95, 0.94) == []
    assert failures(ACCURACY, 0.95, 0.93) == []  # exactly the allowed drop
    assert failures(ACCURACY, 0.95, 0.92) == ["regressed by 0.03 > 0.02"]
    assert failures(ACCURACY, 0.95, 0.89) == ["0.89 < min 0.9", "regressed by 0.06 > 0.02"]
    assert failures(ACCURACY, 0.91, 0.99) == []  # improvements always pass
    assert failures(LATENCY, 4.0, 5.9) == []
    assert failures(LATENCY, 4.0, 6.4) == ["regressed by 60% > 50%"]
    assert failures(LATENCY, 4.0, 11) == ["11 > max 10", "regressed by 175% > 50%"]
    assert failures(LATENCY, 0.0, 0.1) == ["regressed by inf% > 50%"]


def test_a_value_exactly_at_each_limit_passes_and_just_past_it_fails() -> None:
    # The documented rule (docs/ci-gate.md): "a change exactly at the limit passes". The values are
    # exact in binary, so each boundary is the limit itself and not a rounding of it.
    floor = Rule(metric="m.json:accuracy", direction="higher", min=0.75)
    assert failures(floor, None, 0.75) == []
    assert failures(floor, None, 0.7499) == ["0.7499 < min 0.75"]
    ceiling = Rule(metric="m.json:latency_ms", direction="lower", max=10)
    assert failures(ceiling, None, 10) == []
    assert failures(ceiling, None, 10.01) == ["10.01 > max 10"]
    drop = Rule(metric="m.json:accuracy", direction="higher", max_regression=0.25)
    assert failures(drop, 1.0, 0.75) == []
    assert failures(drop, 1.0, 0.7) == ["regressed by 0.3 > 0.25"]
    rise = Rule(metric="m.json:latency_ms", direction="lower", max_regression_pct=50)
    assert failures(rise, 4.0, 6.0) == []  # exactly 50 %
    assert failures(rise, 4.0, 6.04) == ["regressed by 51% > 50%"]


def test_no_base_yet_checks_absolute_limits_only() -> None:
    assert failures(ACCURACY, None, 0.91) == []
    assert failures(ACCURACY, None, 0.5) == ["0.5 < min 0.9"]


def test_unreadable_values_fail_unless_the_rule_allows_it() -> None:
    assert failures(ACCURACY, None, 0.95, absent="unreadable at base (JSONDecodeError)") == [
        "base value unreadable at base (JSONDecodeError)"
    ]
    assert failures(ACCURACY, 0.95, float("nan")) == ["new value not a number (nan)"]
    assert failures(ACCURACY, 0.95, float("inf")) == ["new value not a number (inf)"]
    assert failures(ACCURACY, 0.95, "high") == ["new value not a number ('high')"]
    assert failures(ACCURACY, 0.95, True) == ["new value not a number (True)"]
    assert failures(ACCURACY, 0.95, None) == ["new value missing"]
    lenient = ACCURACY.model_copy(update={"on_unreadable": "pass"})
    assert failures(lenient, 0.95, float("nan")) == []
    assert failures(lenient, None, 0.95, absent="unreadable at base (JSONDecodeError)") == []


def test_rules_match_globs_and_name_missing_metrics() -> None:
    values = {
        "reports/a.json:latency_ms": (Value.of(5), Value.of(6)),
        "reports/b.json:latency_ms": (Value.of(5), Value.of(9)),
        "reports/metrics.json:new_metric": (Value(problem="absent"), Value.of(1)),
    }
    checks = gate.apply_rules([LATENCY, ACCURACY], values)
    assert [(c.metric, c.passed) for c in checks] == [
        ("reports/a.json:latency_ms", True),
        ("reports/b.json:latency_ms", False),
        ("reports/metrics.json:accuracy", False),
    ]
    assert checks[2].failures == ["new value no metric matches this rule in workspace or base"]


def test_a_glob_that_matches_nothing_fails_once() -> None:
    # A typo in a pattern (or prompts that were all removed) must not turn into zero checks
    typo = Rule(metric="reports/prompt/*/metrics.json:rouge_l", direction="higher", max_regression=0.05)
    values = {"reports/prompts/a/metrics.json:rouge_l": (Value.of(0.5), Value.of(0.5))}
    checks = gate.apply_rules([typo], values)
    assert len(checks) == 1 and checks[0].metric == typo.metric
    assert checks[0].failures == ["new value no metric matches this rule in workspace or base"]
    lenient = typo.model_copy(update={"on_unreadable": "pass"})
    assert [c.passed for c in gate.apply_rules([lenient], values)] == [True]


def test_rules_apply_only_to_their_tasks() -> None:
    values = {
        "reports/metrics.json:accuracy": (Value.of(0.95), Value.of(0.5)),
        "reports/metrics.json:r2": (Value.of(0.8), Value.of(0.79)),
    }
    binary = ACCURACY.model_copy(update={"tasks": ["binary", "multiclass"]})
    r2 = Rule(metric="reports/metrics.json:r2", direction="higher", min=0.3, tasks=["regression"])
    everywhere = Rule(metric="reports/metrics.json:*", direction="higher")
    on_binary = gate.apply_rules([binary, r2, everywhere], values, "binary")
    assert [(c.rule, c.metric) for c in on_binary] == [
        (binary, "reports/metrics.json:accuracy"),
        (everywhere, "reports/metrics.json:accuracy"),
        (everywhere, "reports/metrics.json:r2"),
    ]
    assert not on_binary[0].passed
    on_regression = gate.apply_rules([binary, r2], values, "regression")
    assert [(c.metric, c.passed) for c in on_regression] == [("reports/metrics.json:r2", True)]
    assert len(gate.apply_rules([binary, r2], values, None)) == 2  # no task known: every rule applies


def test_rules_are_validated() -> None:
    assert GatesConfig.model_validate({"rules": [{"metric": "m.json:x", "direction": "lower"}]}).rules[0].tasks is None
    with pytest.raises(ValidationError, match=r"metric"):
        Rule(metric="accuracy", direction="higher")  # no "<file>:" part
    with pytest.raises(ValidationError, match=r"tasks"):
        Rule(metric="m.json:x", direction="higher", tasks=["ranking"])
    with pytest.raises(ValidationError, match=r"max_regression"):
        Rule(metric="m.json:x", direction="higher", max_regression=-1)
    with pytest.raises(ValidationError, match=r"rules"):
        GatesConfig.model_validate({"rules": []})


def test_report_and_junit() -> None:
    values = {
        "reports/metrics.json:accuracy": (Value.of(0.96), Value.of(0.90)),
        "reports/metrics.json:new_metric": (Value(problem="absent"), Value.of(1.5)),
        "reports/monitor/metrics.json:last_check": (Value.of("2026-11-25T10:00Z"), Value.of("2026-11-26T10:00Z")),
    }
    checks = gate.apply_rules([ACCURACY], values)
    context = {"base": "a" * 40, "head": "b" * 40, "params": "| param |", "prompts": "-old\n+new\n"}
    text = gate.report(checks, values, "main", context)
    assert text.startswith(gate.MARKER)
    assert "❌ **Gate failed**: 1 of 1 checks broken" in text
    assert "| `reports/metrics.json:accuracy` | 0.96 | 0.9 | -0.06 (-6.2%) |" in text
    assert "higher is better, min 0.9, drop ≤ 0.02 | ❌ regressed by 0.06 > 0.02 |" in text
    assert "Metrics without a rule" in text
    assert "| `reports/metrics.json:new_metric` | — (absent) | 1.5 | new |" in text
    assert "last_check" not in text  # text is context, not a measurement: shown only when a rule names it
    assert "```diff\n-old\n+new\n```" in text and "### Params changed" in text
    assert "Base: `main` (merge base `aaaaaaaaaa`) · head `bbbbbbbbbb`" in text
    suite = ET.fromstring(gate.junit(checks))
    assert suite.get("tests") == "1" and suite.get("failures") == "1"
    assert suite.find("testcase/failure").get("message") == "regressed by 0.06 > 0.02"
    assert suite.find("testcase").get("classname") == "gate.reports/metrics.json"
    assert gate.openmetrics(values) == "reports_metrics_json_accuracy 0.9\nreports_metrics_json_new_metric 1.5\n"
    unchanged = {name: (new, new) for name, (_, new) in values.items()}
    passing = gate.report(gate.apply_rules([ACCURACY], unchanged), {}, "main", {"base": "a" * 40, "head": "b" * 40})
    assert "✅ **Gate passed**: 1 checks against `main`" in passing and "Prompts changed" not in passing


def test_stale_lock_ignores_missing_outputs_and_data() -> None:
    # The shape of `dvc status --json`, as in a fresh clone whose data has not been pulled
    status = json.loads(
        """
        {"prepare": [{"changed deps": {"data/raw/x.csv": "deleted"} },
                     {"changed outs": {"data/prepared": "deleted"} }],
         "train": [{"changed deps": {"src/pkg/stages/train.py": "modified"} }],
         "register": [{"changed params": {"params.yaml": {"toolkit_version": "modified"} } }],
         "evaluate": [{"changed command": true}],
         "data/raw/x.csv.dvc": [{"changed outs": {"data/raw/x.csv": "not in cache"} }]}
        """
    )
    assert stale_stages(status) == {
        "train": ["src/pkg/stages/train.py modified"],
        "register": ["changed params"],
        "evaluate": ["changed command"],
    }
    assert stale_stages({"prompt_outputs@a": ["always changed"]}) == {"prompt_outputs@a": ["always changed"]}


def test_check_lock_without_a_lock_file(tmp_path: Path, monkeypatch, capsys) -> None:
    # A fresh bake pushed as is: no lock yet, nothing stale, the pipeline runs from scratch
    monkeypatch.chdir(tmp_path)
    assert cli.main(["check-lock"]) == 0
    assert "dvc.lock: none committed yet" in capsys.readouterr().out


# --- compare: the whole gate against a real Git history, as `lockstep gate` runs it in CI -----------------


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An empty Git + DVC repository as the current directory; returns a git runner."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # never find an enclosing repository
    # The gate runs `dvc` from PATH, as in an activated environment
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)  # no signing or hooks from the machine's configuration
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "Lockstep Tests")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "tests@example.com")
    monkeypatch.chdir(tmp_path)

    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], capture_output=True, text=True, check=True)
        return result.stdout.strip()

    git("init", "-q", "-b", "main")
    return git


def test_no_commit_and_unknown_base_are_errors(repo, capsys) -> None:
    with pytest.raises(StageError, match=r"no commit yet: commit the project first"):
        gate.resolve_base("main")
    Path("README").write_text("x")
    repo("add", "README")
    repo("commit", "-q", "-m", "first")
    assert gate.resolve_base("main") == repo("rev-parse", "HEAD")
    with pytest.raises(StageError, match=r"base 'develop' is not a known revision; fetch it"):
        gate.resolve_base("develop")


def test_a_base_known_only_as_origin_branch_is_resolved_there(repo) -> None:
    # CI checks out the pull request alone: the target branch exists only as origin/<BASE>
    for text in ("one", "two"):
        Path("README").write_text(text)
        repo("add", "README")
        repo("commit", "-q", "-m", text)
    first = repo("rev-parse", "HEAD~1")
    repo("update-ref", "refs/remotes/origin/release", first)
    assert not repo("branch", "--list", "release")  # no local branch of that name
    assert gate.resolve_base("release") == first


def test_compare_fails_a_regression_and_writes_every_report(repo, params: dict, save_params, capsys) -> None:
    subprocess.run(["dvc", "init", "-q"], check=True)
    Path("dvc.yaml").write_text("metrics:\n  - reports/metrics.json\n")
    params["gates"]["rules"] = [
        {"metric": "reports/metrics.json:accuracy", "direction": "higher", "max_regression": 0.02},
        {"metric": "reports/metrics.json:rmse", "direction": "lower", "tasks": ["regression"]},
    ]
    params_file = save_params()
    metrics = Path("reports/metrics.json")
    metrics.parent.mkdir()
    metrics.write_text(json.dumps({"accuracy": 0.95, "latency_ms": 3.0}))
    repo("add", "-A")
    repo("commit", "-q", "-m", "base")
    repo("checkout", "-q", "-b", "feature")

    assert cli.main(["gate", "--base", "main", "--params", str(params_file)]) == 0  # nothing changed yet
    assert "gate: passed: 1 checks against main" in capsys.readouterr().out

    metrics.write_text(json.dumps({"accuracy": 0.90, "latency_ms": 3.0}))
    assert cli.main(["gate", "--base", "main", "--params", str(params_file)]) == 1
    captured = capsys.readouterr()
    assert "gate: FAIL reports/metrics.json:accuracy: regressed by 0.05 > 0.02" in captured.err
    assert "gate: failed: 1 of 1 checks broken against main; report reports/gate/report.md" in captured.out
    report = Path("reports/gate/report.md").read_text()
    assert "| `reports/metrics.json:accuracy` | 0.95 | 0.9 | -0.05 (-5.3%) |" in report
    assert "| `reports/metrics.json:latency_ms` | 3 | 3 | +0 (+0.0%) |" in report  # no rule: listed apart
    assert ET.parse("reports/gate/junit.xml").getroot().get("failures") == "1"
    assert "reports_metrics_json_accuracy 0.9\n" in Path("reports/gate/metrics.txt").read_text()
    results = json.loads(Path("reports/gate/checks.json").read_text())  # what the promotion policies read
    assert results["passed"] is False and results["params_diff"] == {}
    assert results["checks"] == [
        {"metric": "reports/metrics.json:accuracy", "rule": "higher is better, drop ≤ 0.02", "passed": False,
         "verdict": "fail", "old": 0.95, "new": 0.9, "failures": ["regressed by 0.05 > 0.02"], "inconclusive": [],
         "notes": ["judged on single values: no reports/plots/confusion.csv in the work tree"],
         "change_bounds": None, "p_adjusted": None}
    ]  # fmt: skip
    assert results["verdict"] == "fail"
    assert results["metrics"]["reports/metrics.json:latency_ms"] == {"old": 3.0, "new": 3.0}

    assert cli.main(["gate", "--base", "nowhere", "--params", str(params_file)]) == 2  # cannot compare at all
    assert "error: gate: base 'nowhere' is not a known revision" in capsys.readouterr().err


def test_a_rule_on_a_metrics_file_no_stage_declares_is_applied(repo, params: dict, save_params, capsys) -> None:
    # The monitor's metrics file is written outside the pipeline: dvc.yaml does not declare it,
    # so `dvc metrics show` never warns about it, and a rule that names it still reads it.
    subprocess.run(["dvc", "init", "-q"], check=True)
    Path("dvc.yaml").write_text("metrics:\n  - reports/metrics.json\n")
    params["gates"]["rules"] = [
        {"metric": "reports/metrics.json:accuracy", "direction": "higher"},
        {"metric": "reports/monitor/metrics.json:drift_share", "direction": "lower", "max": 0.5},
    ]
    params_file = save_params()
    Path("reports/monitor").mkdir(parents=True)
    Path("reports/metrics.json").write_text(json.dumps({"accuracy": 0.95}))
    repo("add", "-A")
    repo("commit", "-q", "-m", "base")
    Path("reports/monitor/metrics.json").write_text(json.dumps({"drift_share": 0.6, "last_check": "2026-11-26"}))
    assert cli.main(["gate", "--base", "main", "--params", str(params_file)]) == 1
    assert "gate: FAIL reports/monitor/metrics.json:drift_share: 0.6 > max 0.5" in capsys.readouterr().err
    report = Path("reports/gate/report.md").read_text()
    assert "| `reports/monitor/metrics.json:drift_share` | — (absent) | 0.6 | new |" in report
    assert "last_check" not in report


@pytest.mark.parametrize("layout", ["settings.yaml", "params.yaml"])  # a project baked before settings.yaml
def test_a_change_that_loosens_the_rules_is_judged_by_the_bases(repo, params, save_params, capsys, layout) -> None:
    subprocess.run(["dvc", "init", "-q"], check=True)
    Path("dvc.yaml").write_text("metrics:\n  - reports/metrics.json\n")
    params["gates"]["rules"] = [{"metric": "reports/metrics.json:accuracy", "direction": "higher", "min": 0.9}]

    def save() -> Path:
        if layout == "params.yaml":
            return save_params()
        Path("settings.yaml").write_text(yaml.safe_dump({"gates": params["gates"]}))
        Path("params.yaml").write_text(yaml.safe_dump({k: v for k, v in params.items() if k != "gates"}))
        return Path("params.yaml")

    params_file = save()
    metrics = Path("reports/metrics.json")
    metrics.parent.mkdir()
    metrics.write_text(json.dumps({"accuracy": 0.95}))
    repo("add", "-A")
    repo("commit", "-q", "-m", "base")
    repo("checkout", "-q", "-b", "loosen")
    metrics.write_text(json.dumps({"accuracy": 0.80}))
    params["gates"]["rules"][0]["min"] = 0.5  # the change lowers the floor it would fail
    save()
    repo("commit", "-q", "-am", "Lower the floor")

    assert cli.main(["gate", "--base", "main", "--params", str(params_file)]) == 1
    assert "0.8 < min 0.9" in capsys.readouterr().err
    report = Path("reports/gate/report.md").read_text()
    assert "This change edits the gate rules (conf/gates): the base's rules were applied." in report
    assert json.loads(Path("reports/gate/checks.json").read_text())["rules_changed"] is True


def test_a_metric_or_metrics_file_gone_from_the_branch_fails_its_rule(repo, params, save_params, capsys) -> None:
    # docs/ci-gate.md, edge cases: a metric removed in the branch shows new `— (removed in this
    # branch)`, a whole metrics file gone from the work tree `— (<file> missing)`; both fail their rule.
    subprocess.run(["dvc", "init", "-q"], check=True)
    Path("dvc.yaml").write_text("metrics:\n  - reports/metrics.json\n  - reports/extra.json\n")
    params["gates"]["rules"] = [
        {"metric": "reports/metrics.json:accuracy", "direction": "higher"},
        {"metric": "reports/metrics.json:f1", "direction": "higher"},
        {"metric": "reports/extra.json:recall", "direction": "higher"},
    ]
    params_file = save_params()
    Path("reports").mkdir()
    Path("reports/metrics.json").write_text(json.dumps({"accuracy": 0.95, "f1": 0.9}))
    Path("reports/extra.json").write_text(json.dumps({"recall": 0.8}))
    repo("add", "-A")
    repo("commit", "-q", "-m", "base")
    repo("checkout", "-q", "-b", "feature")
    Path("reports/metrics.json").write_text(json.dumps({"accuracy": 0.95}))  # f1 no longer written
    Path("reports/extra.json").unlink()

    assert cli.main(["gate", "--base", "main", "--params", str(params_file)]) == 1
    captured = capsys.readouterr()
    assert "gate: FAIL reports/metrics.json:f1: new value removed in this branch" in captured.err
    assert "gate: FAIL reports/extra.json:recall: new value reports/extra.json missing" in captured.err
    assert "gate: failed: 2 of 3 checks broken against main" in captured.out
    report = Path("reports/gate/report.md").read_text()
    assert "| `reports/metrics.json:f1` | 0.9 | — (removed in this branch) |" in report
    assert "| `reports/extra.json:recall` | 0.8 | — (reports/extra.json missing) |" in report
