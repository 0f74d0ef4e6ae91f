"""The generated project's pre-commit hooks pass on a fresh bake and catch what they are for."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import bake, sh

pytestmark = pytest.mark.slow

PRIVATE_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU=\n-----END OPENSSH PRIVATE KEY-----\n"
)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = bake(tmp_path_factory.mktemp("hooks"), ci_provider="both")
    sh(project, "make", "setup")
    return project


def hook(project: Path, hook_id: str, *files: str) -> tuple[int, str]:
    target = ["--files", *files] if files else ["--all-files"]
    result = sh(project, ".venv/bin/pre-commit", "run", hook_id, *target, check=False)
    return result.returncode, result.stdout + result.stderr


@pytest.fixture(autouse=True)
def restore(project: Path):
    yield
    sh(project, "git", "checkout", "-q", "--", ".")
    sh(project, "git", "clean", "-q", "-f", "--", "deploy_key", "settings.py", "data/raw/big.csv")
    sh(project, "git", "reset", "-q")


def test_setup_installs_the_hooks_and_a_fresh_bake_passes_them_all(project: Path) -> None:
    hooks = project / ".git" / "hooks"
    assert {"pre-commit", "pre-push", "post-checkout"} <= {p.name for p in hooks.iterdir()}
    result = sh(project, "make", "pre-commit", check=False)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Failed" not in result.stdout


def test_a_private_key_and_an_api_key_are_caught(project: Path) -> None:
    (project / "deploy_key").write_text(PRIVATE_KEY)
    code, out = hook(project, "detect-private-key", "deploy_key")
    assert code != 0 and "Private key found: deploy_key" in out
    (project / "settings.py").write_text('OPENAI_KEY = "sk-proj-Z3x9Qk2LmN8vB4tR7yW1eP5sD0fG6hJ"\n')
    code, out = hook(project, "detect-secrets", "settings.py")
    assert code != 0 and "Location:    settings.py:1" in out


def test_a_stale_params_file_is_caught(project: Path) -> None:
    conf = project / "conf" / "model" / "logistic_regression.yaml"
    conf.write_text(conf.read_text().replace("C: 1.0", "C: 0.3"))
    code, out = hook(project, "params-fresh")
    assert code != 0 and "params.yaml is stale with respect to conf/; run `make params`" in out


def test_a_bad_prompt_is_caught(project: Path) -> None:
    prompt = project / "prompts" / "triage_ticket.yaml"
    prompt.write_text(prompt.read_text().replace("{{ticket}}", "{{ticket}} in a {{tone}} tone"))
    code, out = hook(project, "prompts")
    assert code != 0 and "template: variable 'tone' is not declared; add it to input_variables" in out


def test_a_broken_workflow_is_caught(project: Path) -> None:
    workflow = project / ".github" / "workflows" / "pipeline.yml"
    workflow.write_text(workflow.read_text().replace("timeout-minutes: 45", "timeout-minutes: soon", 1))
    code, out = hook(project, "check-github-workflows")
    assert code != 0 and "Schema validation errors were encountered" in out
    gitlab = project / ".gitlab-ci.yml"
    gitlab.write_text(gitlab.read_text().replace("interruptible: true", "interruptible: maybe"))
    code, out = hook(project, "check-gitlab-ci")
    assert code != 0 and "interruptible" in out


def test_a_10_mb_csv_committed_to_git_is_caught(project: Path) -> None:
    big = project / "data" / "raw" / "big.csv"
    big.write_text("a,b\n" + "12345,67890\n" * 900_000)
    assert big.stat().st_size > 10_000_000
    sh(project, "git", "add", "-f", "data/raw/big.csv")
    code, out = hook(project, "check-added-large-files")
    assert code != 0 and "data/raw/big.csv" in out and "exceeds 1024 KB" in out
