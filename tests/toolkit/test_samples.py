"""Restoring the bundled samples: exactly the bytes a .dvc file names, or a one-line error."""

import shutil
from pathlib import Path

import pytest

from lockstep import cli, samples
from lockstep.io import file_md5

TEMPLATE_DATA = Path(__file__).resolve().parents[2] / "{{cookiecutter.project_slug}}" / "data"


def dvc_file(path: Path, md5: str) -> None:
    path.with_name(path.name + ".dvc").write_text(f"outs:\n- md5: {md5}\n  size: 1\n  hash: md5\n  path: {path.name}\n")


def test_every_sample_a_project_is_baked_with_is_bundled() -> None:
    baked = [*TEMPLATE_DATA.glob("raw/*.csv"), *TEMPLATE_DATA.glob("golden/*.jsonl")]
    assert len(baked) == 3 and {file_md5(p) for p in baked} <= set(samples.bundled())


def test_missing_samples_come_back_byte_for_byte(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    source = TEMPLATE_DATA / "raw" / "breast_cancer.csv"
    (tmp_path / "data" / "raw").mkdir(parents=True)
    target = tmp_path / "data" / "raw" / "breast_cancer.csv"
    dvc_file(target, file_md5(source))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["samples", "restore"]) == 0
    assert target.read_bytes() == source.read_bytes()
    assert "restored data/raw/breast_cancer.csv (the bundled sample" in capsys.readouterr().out
    assert samples.restore(tmp_path) == ([], [])  # present: left alone


def test_data_that_is_not_a_sample_is_named_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    own = tmp_path / "own.csv"
    dvc_file(own, "0" * 32)
    shutil.copyfile(TEMPLATE_DATA / "raw" / "breast_cancer.csv", tmp_path / "other.csv")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["samples", "restore"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: own.csv: not in the workspace")
    assert "remote this machine can read" in err and not own.exists()
