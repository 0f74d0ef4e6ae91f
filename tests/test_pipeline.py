"""Whole-pipeline tests: bake, install, run the generated project's own tests, lint and pipeline.

Slow (each installs a project and runs DVC and MLflow for real), so behind the `slow` marker;
`python3 dev.py test` and `.ci/run` run them.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import GIT_ID, ROOT, bake, find_python, project_env, ran, sh, task_data

pytestmark = pytest.mark.slow


def registry_alias(project: Path, name: str, alias: str = "challenger") -> dict[str, str]:
    """Ask the project's own MLflow which version holds an alias, and with which tags."""
    code = (
        "import json, mlflow; c = mlflow.MlflowClient('sqlite:///mlflow.db');"
        f" v = c.get_model_version_by_alias({name!r}, {alias!r});"
        " print(json.dumps({'version': str(v.version), **v.tags}))"
    )
    return json.loads(sh(project, "python", "-c", code).stdout.strip().splitlines()[-1])


def commit_all(project: Path, message: str) -> None:
    env = project_env(project) | GIT_ID
    sh(project, "git", "add", "-A", env=env)
    sh(project, "git", "commit", "-q", "-m", message, env=env)


def reproduce_and_check(project: Path, package: str) -> dict[str, float]:
    """The checks every end-to-end combination goes through; returns the metrics."""
    sh(project, "make", "lint")
    sh(project, "make", "check-params")
    tests = sh(project, "make", "test")
    assert " passed" in tests.stdout and " failed" not in tests.stdout

    repro = sh(project, "make", "repro")
    for stage in ("prepare", "train", "evaluate", "register"):
        assert f"Running stage '{stage}'" in repro.stdout
    if (project / ".git").exists():  # the data's .dvc files are as baked: nothing to commit but results
        assert sh(project, "git", "status", "--porcelain", "--", "*.dvc", ".dvc").stdout == ""
    metrics = json.loads((project / "reports" / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.9 and metrics["roc_auc"] >= 0.95 and metrics["model_size_bytes"] > 0
    record = json.loads((project / "reports" / "registration.json").read_text())
    assert record["version"] == 1 and record["alias"] == "challenger"
    tags = registry_alias(project, package)
    assert tags["version"] == "1" and tags["model_md5"] == record["model_md5"]
    head = sh(project, "git", "rev-parse", "HEAD", check=False).stdout.strip() or "unknown"
    assert tags["git_commit"] == head

    again = sh(project, "dvc", "repro")
    assert "Running stage" not in again.stdout and "Data and pipelines are up to date." in again.stdout
    return metrics


def would_run(project: Path) -> set[str]:
    """What `dvc repro` would run for the work tree's changes: the stages whose own inputs changed
    (`--dry`), and every stage downstream of them (their inputs are those stages' outputs)."""
    first = set(ran(sh(project, "dvc", "repro", "--dry").stdout))
    edges = re.findall(r'^"([^"]+)" -> "([^"]+)";$', sh(project, "dvc", "dag", "--dot").stdout, re.MULTILINE)
    stages, frontier = set(first), list(first)
    while frontier:
        stage = frontier.pop()
        for after in {b for a, b in edges if a == stage} - stages:
            stages.add(after)
            frontier.append(after)
    return stages


def check_what_re_runs_when(project: Path) -> None:
    """The rows of docs/prompts.md's "What re-runs when" that the demo does not run for real
    (a prompt edit and a model change are run below; a toolkit upgrade in test_bake.py)."""
    outputs = {f"prompt_outputs@{name}" for name in ("summarize_ticket", "triage_ticket")}
    evaluations = {f"prompt_evaluate@{name}" for name in ("summarize_ticket", "triage_ticket")}
    model_stages = {"train", "evaluate", "register"}
    judged = evaluations | {"register"}
    rows = [
        ("conf/prompts/default.yaml", "banned_phrases:", "banned_phrases:\n  - refund guaranteed", judged),
        ("conf/prompts/default.yaml", 'registry_prefix: ""', 'registry_prefix: "team-a."', {"register"}),
        ("conf/prompts/default.yaml", "alias: challenger", "alias: candidate", {"register"}),
        ("conf/prices.yaml", "{input: 0.00015,", "{input: 0.00025,", judged),  # register only if a cost changed
        ("conf/llm/local.yaml", "context_size: 2048", "context_size: 1024", outputs | evaluations | {"register"}),
        ("conf/gates/default.yaml", "max_regression: 0.02", "max_regression: 0.05", set()),
        ("conf/model/logistic_regression.yaml", "C: 1.0", "C: 0.5", model_stages),
        ("conf/data/breast_cancer.yaml", "test_size: 0.2", "test_size: 0.25", {"prepare"} | model_stages),
    ]  # fmt: skip
    for conf_file, old, new, expected in rows:
        path = project / conf_file
        assert old in path.read_text(), f"{conf_file} has no {old!r}"
        path.write_text(path.read_text().replace(old, new, 1))
        sh(project, "lockstep", "params")  # compose params.yaml from conf/, as `dvc exp run` does
        assert would_run(project) == expected, f"{conf_file}: {new}"
        sh(project, "git", "checkout", "-q", "--", ".")
    golden = project / "data" / "golden" / "triage_ticket.jsonl"
    original = golden.read_bytes()
    golden.write_bytes(original + original.splitlines(keepends=True)[0])
    assert would_run(project) == {"prompt_outputs@triage_ticket", "prompt_evaluate@triage_ticket", "register"}
    golden.write_bytes(original)
    raw = project / "data" / "raw" / "breast_cancer.csv"
    original = raw.read_bytes()
    raw.write_bytes(original + original.splitlines(keepends=True)[1])
    assert would_run(project) == {"prepare"} | model_stages
    raw.write_bytes(original)
    assert would_run(project) == set()


def everyday_commands(project: Path) -> list[str]:
    """The commands of the baked README's "Everyday commands" block, without their comments."""
    block = re.search(r"## Everyday commands\n\n```bash\n(.*?)```", (project / "README.md").read_text(), re.S)
    assert block, "the README has an Everyday commands block"
    return [line.split(" #")[0].strip() for line in block[1].splitlines()]


def test_readme_demo_command_then_experiment(tmp_path: Path, recorded_answers: Callable[[Path], None]) -> None:
    # The README's first command, into a scratch directory instead of build/demo
    demo = subprocess.run(
        [sys.executable, "dev.py", "demo", "--output", str(tmp_path / "demo")], cwd=ROOT, capture_output=True, text=True
    )
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "reports/metrics.json" in demo.stdout and "accuracy" in demo.stdout
    # The prompt track is on by default: the prompts are registered beside the model
    registered = "registered models:/support_insights/1, prompts:/summarize_ticket/1, prompts:/triage_ticket/1"
    assert f"{registered} as @challenger." in demo.stdout
    project = tmp_path / "demo" / "support-insights"
    prompt_metrics = json.loads((project / "reports" / "prompts" / "triage_ticket" / "metrics.json").read_text())
    assert prompt_metrics["cases"] >= 30 and prompt_metrics["pii_leak_rate"] == 0.0
    assert 0.1 <= prompt_metrics["exact_match"] <= 1  # 8 of 36 on this model: a margin of four answers

    # Then what a developer does next: tests, lint, a no-op repro, and an experiment
    tests = sh(project, "make", "test")
    assert " passed" in tests.stdout
    sh(project, "make", "lint")
    again = sh(project, "dvc", "repro")
    assert "Running stage" not in again.stdout
    before = json.loads((project / "reports" / "metrics.json").read_text())
    commit_all(project, "Reproduce the pipeline")
    check_what_re_runs_when(project)

    # A prompt edit re-runs that prompt's stages and register, nothing else; one new prompt version
    # (the edited prompt's answers come from the answers recorded for the tests, as from a team's remote)
    recorded_answers(project)
    prompt_file = project / "prompts" / "summarize_ticket.yaml"
    prompt_file.write_text(prompt_file.read_text().replace("max_tokens: 48", "max_tokens: 40"))
    edit = sh(project, "dvc", "repro")
    assert set(ran(edit.stdout)) == {"prompt_outputs@summarize_ticket", "prompt_evaluate@summarize_ticket", "register"}
    record = json.loads((project / "reports" / "registration.json").read_text())
    assert record["prompts"] == {"summarize_ticket": 2, "triage_ticket": 1} and record["version"] == 1
    commit_all(project, "Shorter summaries")

    # A model change re-runs the model's stages and register, never the prompt evaluation
    # run as the README's everyday commands say, from a shell without .venv on PATH
    activate, experiment = everyday_commands(project)[:2]
    assert (activate, experiment) == ("source .venv/bin/activate", "dvc exp run -S model=random_forest")
    shell = project_env(project) | {"PATH": project_env(project)["PATH"].split(os.pathsep, 1)[1]}
    exp = sh(project, "bash", "-c", f"{activate} && {experiment}", env=shell)
    assert set(ran(exp.stdout)) == {"train", "evaluate", "register"}
    after = json.loads((project / "reports" / "metrics.json").read_text())
    assert after["model_size_bytes"] != before["model_size_bytes"]
    assert "name: random_forest" in (project / "params.yaml").read_text()
    assert registry_alias(project, "support_insights")["version"] == "2"
    diff = json.loads(sh(project, "dvc", "metrics", "diff", "--json").stdout)
    assert "model_size_bytes" in diff["reports/metrics.json"]

    # Dropping the experiment, as docs/getting-started.md says: `make repro` recomposes params.yaml
    # from conf/, restores the earlier outputs and moves challenger back to the version holding them
    sh(project, "make", "repro")
    assert "name: logistic_regression" in (project / "params.yaml").read_text()
    dropped = json.loads((project / "reports" / "metrics.json").read_text())
    assert {k: v for k, v in dropped.items() if "latency" not in k} == {
        k: v for k, v in before.items() if "latency" not in k
    }
    assert registry_alias(project, "support_insights")["version"] == "1"


def interpreter(version: str) -> str:
    """An interpreter of that version; its absence fails the test rather than silently testing another."""
    python = find_python(version)
    assert python, f"Python {version} not found: install it (pyenv install {version}) to run this test"
    return python


@pytest.mark.other_python
@pytest.mark.parametrize("version", ["3.12", "3.13"])
def test_another_combination_end_to_end(tmp_path: Path, version: str) -> None:
    python = interpreter(version)
    combo = {
        "project_name": "Churn Radar",
        "python_version": version,
        "ci_provider": "gitlab",
        "dvc_remote": "none",
        "include_llm": "no",
        "license": "Apache-2.0",
    }
    project = bake(tmp_path, **combo)
    sh(project, "make", "setup", f"PYTHON={python}")
    version = sh(project, "python", "-c", "import sys; print('%d.%d' % sys.version_info[:2])").stdout.strip()
    assert version == combo["python_version"]
    reproduce_and_check(project, "churn_radar")


def test_local_remote_push_and_pull(tmp_path: Path) -> None:
    # Defaults: the local remote works out of the box; outputs survive a wipe of the cache
    project = bake(tmp_path, project_name="Remote Check", include_llm="no", ci_provider="none")
    sh(project, "make", "setup")
    reproduce_and_check(project, "remote_check")
    sh(project, "dvc", "push")
    assert any((project / ".dvc-storage").rglob("*")), "dvc push fills the local remote"
    for path in ("models/model.joblib", "data/prepared/train.parquet"):
        (project / path).unlink()
    sh(project, "rm", "-rf", ".dvc/cache")
    sh(project, "dvc", "pull")
    assert (project / "models" / "model.joblib").exists()
    assert "Data and pipelines are up to date." in sh(project, "dvc", "repro").stdout


TASK_DATA = {
    # sklearn's bundled copies of two UCI data sets: wine (3 cultivars), diabetes (disease progression)
    "wine": ("load_wine", "cultivar", "multiclass", "logistic_regression"),
    "diabetes": ("load_diabetes", "progression", "regression", "ridge"),
}


def test_every_task_type_by_configuration_only(tmp_path: Path) -> None:
    # A user's own CSV and task: a data file, one conf/data file, and `dvc exp run -S`; no code
    project = bake(tmp_path, project_name="Task Types", include_llm="no", ci_provider="none", dvc_remote="none")
    sh(project, "make", "setup")
    for name, (loader, target, task, model) in TASK_DATA.items():
        task_data(project, name, loader, target, task)
        sh(project, "dvc", "exp", "run", "-S", f"data={name}", "-S", f"model={model}")
        metrics = json.loads((project / "reports" / "metrics.json").read_text())
        plots_dir = project / "reports" / "plots"
        plots = sorted(p.name for p in plots_dir.iterdir() if len(p.read_text().splitlines()) > 1)  # with rows
        if task == "multiclass":
            assert metrics["accuracy"] > 0.9 and metrics["f1_macro"] > 0.9 and "f1_weighted" in metrics
            assert plots == ["confusion.csv"]
            with (project / "reports" / "plots" / "confusion.csv").open() as confusion:
                pairs = {(row["actual"], row["predicted"]) for row in csv.DictReader(confusion)}
            assert {("class_0", "class_0"), ("class_1", "class_1"), ("class_2", "class_2")} <= pairs
        else:
            assert metrics["r2"] > 0.3 and metrics["rmse"] > metrics["mae"] > 0
            assert plots == ["residuals.csv"]
        shown = sh(project, "dvc", "plots", "show", "-o", "reports/page")
        assert "failed to load" not in shown.stdout + shown.stderr  # no warning about another task's plots
        page = (project / "reports" / "page" / "index.html").read_text()  # make setup's page: Vega inline, no CDN
        assert "vegaEmbed" in page and not re.search(r"<script[^>]+src=", page)
        record = json.loads((project / "reports" / "registration.json").read_text())
        assert record["model_uri"].startswith("models:/task_types/")
        gate = sh(project, "lockstep", "gate", "--base", "HEAD", check=False)
        assert gate.returncode == 0, gate.stdout + gate.stderr  # the task's own default rules apply
