"""The base's worktree shares the project's DVC cache and remotes, whatever the length of their paths."""

from __future__ import annotations

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
