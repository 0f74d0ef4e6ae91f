"""The base's worktree shares the project's DVC cache and remotes, whatever the length of their paths."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from lockstep import trusted
from lockstep.vcs import dvc


def test_the_worktree_uses_the_projects_remote_even_when_dvc_wraps_its_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / ("a-directory-name-long-enough-that-dvc-wraps-its-remote-list-at-80-columns" * 2)
    project.mkdir()
    monkeypatch.chdir(project)
    monkeypatch.delenv("COLUMNS", raising=False)
    ids = {f"GIT_{who}_{what}": "t@t" for who in ("AUTHOR", "COMMITTER") for what in ("NAME", "EMAIL")}
    subprocess.run(["git", "init", "-q"], check=True)
    subprocess.run([dvc(), "init", "-q"], check=True)
    remote = project / ".dvc-storage"
    subprocess.run([dvc(), "remote", "add", "-q", "-d", "storage", str(remote)], check=True)
    subprocess.run(["git", "add", "-A"], check=True)
    subprocess.run(["git", "commit", "-qm", "init"], check=True, env={**os.environ, **ids})
    tree = trusted.Worktree("HEAD", project)
    try:
        local = (tree.dir / ".dvc" / "config.local").read_text()
        assert f"url = {remote}" in local and str(project / ".dvc" / "cache") in local
    finally:
        tree.close()


def test_the_bases_evaluation_replays_only_the_answers_recorded_at_the_base(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A change that adds (or forges) entries in the answer cache gains nothing: the base's evaluation
    # sees only the entries the base's dvc.lock names; any other case is asked of the model
    from lockstep import llm_cache
    from lockstep.llm import Answer

    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    ids = {f"GIT_{who}_{what}": "t@t" for who in ("AUTHOR", "COMMITTER") for what in ("NAME", "EMAIL")}
    env = {**os.environ, **ids}
    subprocess.run(["git", "init", "-q"], check=True)
    subprocess.run([dvc(), "init", "-q"], check=True)
    folder = Path("data/llm_cache/triage")
    stage = {"cmd": "true", "outs": [{str(folder): {"persist": True}}]}
    Path("dvc.yaml").write_text(json.dumps({"stages": {"prompt_outputs": stage}}))

    def entry(text: str) -> llm_cache.Entry:
        request = {"provider": "fake", "messages": [{"role": "user", "content": text}]}
        return llm_cache.Entry(llm_cache.key(request), request, f"recorded: {text}", 1, 1, 0.1)

    recorded, forged = entry("known case"), entry("new case")
    llm_cache.Cache(folder, "record").put(recorded)
    subprocess.run([dvc(), "commit", "-q", "-f"], check=True)
    subprocess.run(["git", "add", "-A"], check=True)
    subprocess.run(["git", "commit", "-qm", "base"], check=True, env=env)
    base = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    llm_cache.Cache(folder, "record").put(forged)  # the change's entry, in its dvc.lock and the DVC cache
    subprocess.run([dvc(), "commit", "-q", "-f"], check=True)
    subprocess.run(["git", "commit", "-qam", "head"], check=True, env=env)

    tree = trusted.Worktree(base, project)
    try:
        assert tree.env["LOCKSTEP_LLM_CACHE"] == "record"  # base entries reused, the others asked live
        trusted.base_answers(tree, "triage", {"llm_cache": "data/llm_cache"})
        assert sorted(p.name for p in (tree.dir / folder).iterdir()) == [f"{recorded.key}.json"]

        class Model:
            def __init__(self) -> None:
                self.calls: list[str] = []

            def chat(self, messages, settings, schema=None) -> Answer:
                self.calls.append(messages[0]["content"])
                return Answer("live", 1, 1, 0.5)

        model = Model()
        cached = llm_cache.Cached(
            llm_cache.Cache(tree.dir / folder, llm_cache.mode("live", tree.env)),
            lambda messages, settings, schema: {"provider": "fake", "messages": messages},
            lambda: model,
        )
        assert cached.chat([{"role": "user", "content": "known case"}], None).text == "recorded: known case"
        assert cached.chat([{"role": "user", "content": "new case"}], None).text == "live"
        assert model.calls == ["new case"]
    finally:
        tree.close()
