"""Finding dvc: the one beside the toolkit's Python first, so `.venv/bin/lockstep` works unactivated."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from lockstep import cli, vcs
from lockstep.config import StageError


def test_the_dvc_beside_this_python_wins_over_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    venv, elsewhere = tmp_path / "venv" / "bin", tmp_path / "elsewhere"
    for folder in (venv, elsewhere):
        folder.mkdir(parents=True)
        (folder / "dvc").write_text("#!/bin/sh\n")
        (folder / "dvc").chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(venv / "python"))
    monkeypatch.setenv("PATH", str(elsewhere))
    assert vcs.dvc() == str(venv / "dvc")
    (venv / "dvc").unlink()
    assert vcs.dvc() == str(elsewhere / "dvc")  # a system or pipx dvc still serves


def test_no_dvc_anywhere_is_one_line_naming_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(StageError, match=r"dvc: not found .*run `make setup`, then `source .venv/bin/activate`"):
        vcs.dvc()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    assert cli.main(["check-lock"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: check-lock: dvc: not found beside this Python nor on PATH; run `make setup`, then"
                   " `source .venv/bin/activate`"]  # fmt: skip
