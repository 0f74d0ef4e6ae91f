"""The generated CI's steps, executed as written: `make ci` with stand-ins for the tools it calls
(its order, what stops it, its exit status)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import bake

# A stand-in for each tool `make ci` calls from .venv/bin: it logs its name and arguments, and
# fails, with an error of its kind, when its name and first argument are in $FAIL.
STAND_IN = """#!/bin/sh
echo "$(basename "$0") $*" >> "$CALLS"
case " $FAIL " in
  *" $(basename "$0"):$1 "*) echo "ERROR: $(basename "$0") $1 failed (stand-in)" >&2; exit 1 ;;
esac
"""
TOOLS = ("pre-commit", "python", "lockstep", "dvc")


@pytest.fixture(scope="module")
def baked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ci-steps")
    return bake(out, ci_provider="gitlab", dvc_remote="none", include_llm="no", init_git="no")


@pytest.fixture
def project(baked: Path, tmp_path: Path) -> Path:
    """A fresh copy of the bake for each test (each gives it its own .venv)."""
    return Path(shutil.copytree(baked, tmp_path / baked.name, symlinks=True))


# --- make ci ----------------------------------------------------------------------------------------


def make_ci(project: Path, fail: str = "", *args: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """`make ci` run as a developer runs it, its tools stood in for; the result and the tools' calls."""
    bin_dir = project / ".venv" / "bin"
    if not bin_dir.exists():
        bin_dir.mkdir(parents=True)
        for tool in TOOLS:
            (bin_dir / tool).write_text(STAND_IN)
            (bin_dir / tool).chmod(0o755)
    calls = project / "calls.log"
    calls.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE") and k != "BASE"}
    env |= {"CALLS": str(calls), "FAIL": fail}
    result = subprocess.run(["make", "ci", *args], cwd=project, capture_output=True, text=True, env=env, timeout=60)
    return result, calls.read_text().splitlines() if calls.exists() else []


HOOKS_AND_TESTS = ["pre-commit run --all-files --show-diff-on-failure", "python -m pytest"]
PARAMS_AND_LOCK = ["lockstep params --check", "lockstep check-lock"]
REPRO_PULL = ["dvc pull --allow-missing", "lockstep samples restore", "dvc repro --pull --allow-missing"]
REPRO_CI = [*REPRO_PULL, "dvc repro --force --single-item --glob prepare train evaluate",
            "lockstep check-lock --reproduced"]  # fmt: skip


def test_make_ci_runs_the_pull_request_steps_in_ci_order(project: Path) -> None:
    result, calls = make_ci(project, "", "BASE=develop")
    assert result.returncode == 0, result.stderr
    assert calls == [*HOOKS_AND_TESTS, *PARAMS_AND_LOCK, *REPRO_CI, "lockstep gate --base develop"]


def test_a_failing_repro_fails_make_ci_and_the_gate_still_runs(project: Path) -> None:
    # docs/ci-gate.md, "Locally: make ci": the gate runs even when `make repro-ci` failed, and
    # `make ci` fails when either did
    result, calls = make_ci(project, "dvc:repro")
    assert result.returncode != 0
    assert "ERROR: dvc repro failed (stand-in)" in result.stderr
    assert calls == [*HOOKS_AND_TESTS, *PARAMS_AND_LOCK, *REPRO_PULL, "lockstep gate --base main"]


def test_a_failing_gate_fails_make_ci(project: Path) -> None:
    result, calls = make_ci(project, "lockstep:gate")
    assert result.returncode != 0
    assert "ERROR: lockstep gate failed (stand-in)" in result.stderr
    assert calls == [*HOOKS_AND_TESTS, *PARAMS_AND_LOCK, *REPRO_CI, "lockstep gate --base main"]


@pytest.mark.parametrize(
    ("fail", "ran"),
    [
        ("pre-commit:run", HOOKS_AND_TESTS[:1]),
        ("python:-m", HOOKS_AND_TESTS),
        ("lockstep:params", [*HOOKS_AND_TESTS, *PARAMS_AND_LOCK[:1]]),
        ("lockstep:check-lock", [*HOOKS_AND_TESTS, *PARAMS_AND_LOCK]),
    ],
)
def test_make_ci_stops_at_the_first_failure_among_the_first_four(project: Path, fail: str, ran: list[str]) -> None:
    result, calls = make_ci(project, fail)
    assert result.returncode != 0
    assert f"ERROR: {fail.replace(':', ' ')} failed (stand-in)" in result.stderr
    assert calls == ran  # nothing after the failing step: no repro, no gate
