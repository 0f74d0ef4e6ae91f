"""The MLflow Prompt Registry: one version per distinct content, aliases, loading with fallback."""

from __future__ import annotations

from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.prompts import (
    load_prompt,
    load_prompt_file,
    register_prompt,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    import mlflow

    mlflow.set_tracking_uri(uri)
    return uri


def test_a_prompt_registers_once_per_content_and_loads_by_alias(registry: str) -> None:
    import mlflow

    prompt = load_prompt_file(ROOT / "prompts" / "summarize_ticket.yaml")
    assert register_prompt(prompt, "challenger", {"git_commit": "abc"}) == 1
    assert register_prompt(prompt, "challenger", {"git_commit": "def"}) == 1  # same text: no new version

    version = mlflow.genai.load_prompt("prompts:/summarize_ticket@challenger")
    assert version.tags["git_commit"] == "abc" and version.tags["content_hash"] == prompt.content_hash()
    assert version.format(ticket="Hi") == prompt.render({"ticket": "Hi"})

    edited = prompt.model_copy(update={"description": "Only the description changed"})
    assert register_prompt(edited, "challenger", {}) == 1  # the description does not change answers
    reworded = prompt.model_copy(update={"template": "Summarise: " + "{" * 2 + "ticket" + "}" * 2})
    assert register_prompt(reworded, "challenger", {}) == 2

    loaded, source = load_prompt("summarize_ticket", "challenger", ROOT / "prompts")
    assert source == "prompts:/summarize_ticket@challenger"
    assert loaded.render({"ticket": "Hi"}) == [{"role": "user", "content": "Summarise: Hi"}]
    assert loaded.model_settings == prompt.model_settings


def test_without_a_registry_the_file_in_git_is_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # nothing listens there
    prompt, source = load_prompt("summarize_ticket", "champion", ROOT / "prompts")
    assert source == str(ROOT / "prompts" / "summarize_ticket.yaml")
    assert prompt == load_prompt_file(ROOT / "prompts" / "summarize_ticket.yaml")
