"""Every file that decides the gate's verdict has an owner in CODEOWNERS, so a person reviews it.

Add a stage, a conf/ group or a data file and this fails until CODEOWNERS covers it.
"""

import subprocess
from pathlib import Path

import pytest
from lockstep.owners import feeding, unowned

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def in_git() -> None:
    inside = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], cwd=ROOT, capture_output=True, text=True)
    if inside.stdout.strip() != "true":
        pytest.skip("not a Git repository yet: `git init` and commit, then the owners can be checked")


def test_the_files_that_feed_the_gate_are_found(in_git) -> None:
    files = feeding(ROOT)
    assert {"dvc.yaml", "params.yaml", "requirements.lock"} <= set(files)
    stages = "src/{{ cookiecutter.package_name }}/stages"
    assert f"{stages}/evaluate.py" in files  # a stage's code, from dvc.yaml
    assert any(f.startswith("conf/data/") for f in files) and any(f.startswith("tests/") for f in files)


def test_every_file_that_feeds_the_gate_has_an_owner(in_git) -> None:
    assert unowned(ROOT) == [], "add these to CODEOWNERS"
