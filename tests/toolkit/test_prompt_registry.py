"""The MLflow Prompt Registry: one version per distinct content, aliases, loading with fallback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lockstep.prompts import load_prompt, load_prompt_file, register_prompt

PROMPTS = Path(__file__).resolve().parents[2] / "{{cookiecutter.project_slug}}" / "prompts"


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """MLflow on a SQLite file in tmp_path, for this test only."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    import mlflow

    mlflow.set_tracking_uri(uri)  # register_prompt uses the process's tracking URI, as `lockstep register` sets it
    yield uri
    mlflow.set_tracking_uri(None)  # no later test inherits this database


def test_a_prompt_registers_once_per_content_and_loads_by_alias(registry: str) -> None:
    import mlflow

    prompt = load_prompt_file(PROMPTS / "summarize_ticket.yaml")
    assert register_prompt(prompt, "challenger", {"git_commit": "abc"}) == 1
    assert register_prompt(prompt, "challenger", {"git_commit": "def"}) == 1  # same text: no new version

    version = mlflow.genai.load_prompt("prompts:/summarize_ticket@challenger")
    assert version.tags["git_commit"] == "abc" and version.tags["content_hash"] == prompt.content_hash()
    assert version.format(ticket="Hi") == prompt.render({"ticket": "Hi"})
    assert version.model_config == prompt.model_settings.model_dump(exclude_none=True)

    edited = prompt.model_copy(update={"description": "Only the description changed"})
    assert register_prompt(edited, "challenger", {}) == 1  # the description does not change answers
    reworded = prompt.model_copy(update={"template": "Summarise: " + "{" * 2 + "ticket" + "}" * 2})
    assert register_prompt(reworded, "challenger", {}) == 2

    loaded, source = load_prompt("summarize_ticket", "challenger", PROMPTS)
    assert source == "prompts:/summarize_ticket@challenger"
    assert loaded.render({"ticket": "Hi"}) == [{"role": "user", "content": "Summarise: Hi"}]
    assert loaded.model_settings == prompt.model_settings

    assert register_prompt(prompt, "champion", {}) == 1  # back to the first text: its version again
    assert mlflow.genai.load_prompt("prompts:/summarize_ticket@champion").version == 1
    loaded, _ = load_prompt("summarize_ticket", "champion", PROMPTS)
    assert loaded.render({"ticket": "Hi"}) == prompt.render({"ticket": "Hi"})

    # An alias nobody set: the reviewed file in Git is used
    loaded, source = load_prompt("summarize_ticket", "no_such_alias", PROMPTS)
    assert loaded == load_prompt_file(PROMPTS / "summarize_ticket.yaml")
    assert source == str(PROMPTS / "summarize_ticket.yaml")

    # A structured prompt keeps its JSON schema in the registry
    triage = load_prompt_file(PROMPTS / "triage_ticket.yaml")
    assert register_prompt(triage, "challenger", {}) == 1
    assert mlflow.genai.load_prompt("prompts:/triage_ticket@challenger").response_format == triage.response_format


def test_without_a_registry_the_file_in_git_is_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # nothing listens there
    prompt, source = load_prompt("summarize_ticket", "champion", PROMPTS)
    assert source == str(PROMPTS / "summarize_ticket.yaml")
    assert prompt == load_prompt_file(PROMPTS / "summarize_ticket.yaml")
