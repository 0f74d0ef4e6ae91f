"""The `lockstep` command: help and version at once, one `error:` line for every bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import lockstep
from lockstep import cli

BIN = Path(sys.executable).parent
COMMANDS = ["params", "check-lock", "gate", "report-gitlab", "register", "promote", "policy", "approve", "samples"]
COMMANDS += ["platform", "prompts", "deploy", "serve", "staging", "canary", "canary-rehearsal", "monitor"]
COMMANDS += ["monitor-rehearsal", "retrain"]


def lockstep_cmd(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "lockstep"), *args], capture_output=True, text=True, cwd=cwd)


def test_help_lists_every_command() -> None:
    result = lockstep_cmd("--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: lockstep [-h] [--version] COMMAND ...")
    for command in COMMANDS:
        assert f"\n    {command} " in result.stdout or f"\n    {command}\n" in result.stdout
    sub = lockstep_cmd("prompts", "--help")
    assert sub.returncode == 0 and "{check,answer,evaluate}" in sub.stdout and "--params PARAMS" in sub.stdout


def test_every_outcome_has_its_own_exit_status() -> None:
    from lockstep.commands import ExitCode
    from lockstep.commands.canary import OUTCOME_EXIT
    from lockstep.commands.policy import DECISION_EXIT

    assert len({int(code) for code in ExitCode}) == len(ExitCode)  # no two outcomes share a status
    assert DECISION_EXIT["pending_review"] == 3 and OUTCOME_EXIT["undecided"] == 5 and ExitCode.RETRAIN == 4
    assert DECISION_EXIT["pending_review"] != OUTCOME_EXIT["undecided"]
    assert (ExitCode.OK, ExitCode.FAILED, ExitCode.NO_COMPARISON) == (0, 1, 2)


def test_version_with_python_m() -> None:
    result = subprocess.run([sys.executable, "-m", "lockstep", "--version"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"lockstep-mlops {lockstep.__version__}\n"


def test_the_command_starts_without_heavy_libraries() -> None:
    # Pre-commit hooks run `lockstep`: parsing its arguments must not import the ML stack
    heavy = ["sklearn", "mlflow", "pandas", "numpy", "dvc", "hydra", "openai", "pydantic"]
    code = (
        "import sys; from lockstep import cli; cli.parser().parse_args(['gate', '--base', 'main']);"
        f" print(sorted(set({heavy!r}) & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("unbuffered", ["1", ""])
def test_a_reader_that_stops_reading_ends_the_command_quietly(tmp_path: Path, unbuffered: str) -> None:
    # `lockstep check-lock | head -0`: the reader's end of the pipe is closed before the command writes
    read, write = os.pipe()
    os.close(read)
    env = {**os.environ, "PYTHONUNBUFFERED": unbuffered}  # a write fails at once, or at the final flush
    result = subprocess.run([str(BIN / "lockstep"), "check-lock"], cwd=tmp_path, env=env, stdout=write,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    os.close(write)
    assert (result.returncode, result.stderr) == (141, "")


@pytest.mark.parametrize(("given", "disabled"), [(None, True), ("false", False)])
def test_mlflow_telemetry_is_off_unless_asked_for(given: str | None, disabled: bool) -> None:
    # `dvc repro` run by hand starts the stages without make's environment, on a developer's machine
    # (MLflow itself stays quiet under pytest and in CI, which it recognises by these variables)
    quiet = ("MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK", "PYTEST_CURRENT_TEST", "CI", "GITHUB_ACTIONS", "GITLAB_CI")
    env = {k: v for k, v in os.environ.items() if k not in quiet}
    env |= {} if given is None else {"MLFLOW_DISABLE_TELEMETRY": given}
    code = "import lockstep, mlflow.telemetry.utils as t; print(t.is_telemetry_disabled())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(disabled)


def test_a_missing_command_or_choice_is_a_usage_error() -> None:
    assert lockstep_cmd().returncode == 2
    result = lockstep_cmd("prompts", "sing")
    assert result.returncode == 2 and "invalid choice: 'sing'" in result.stderr


def test_prompts_answer_without_a_name_fails_in_one_line(tmp_path: Path) -> None:
    result = lockstep_cmd("prompts", "answer", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == "error: lockstep prompts answer: name a prompt, e.g. `lockstep prompts answer NAME`\n"
    assert lockstep_cmd("prompts", "evaluate", cwd=tmp_path).stderr.startswith("error: lockstep prompts evaluate: name")


def test_prompts_check(workdir: Path, params: dict, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["prompts", "check"]) == 0
    (Path(params["paths"]["prompts"]) / "triage_ticket.yaml").write_text("name: triage_ticket\n")
    assert cli.main(["prompts", "check"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert err[0].endswith("triage_ticket.yaml: description: Field required")


def test_a_missing_params_file_is_one_error_line(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    for command in (["register"], ["promote"], ["prompts", "check"], ["prompts", "evaluate", "x"]):
        assert cli.main(command) == 1
        err = capsys.readouterr().err
        assert err == f"error: {command[0]}: params.yaml: not found; compose it from conf/ with `make params`\n"
    assert cli.main(["gate"]) == 2  # the gate could not compare at all
    assert "error: gate: params.yaml: not found" in capsys.readouterr().err


def test_check_lock_without_a_lock_passes_as_documented(tmp_path: Path) -> None:
    # A fresh bake before its first `make repro` has no dvc.lock, and its first push runs the
    # pre-push hook (check-lock): nothing can be stale yet, so it passes, and the docs say so
    line = "dvc.lock: none committed yet, so nothing can be stale; the pipeline is reproduced from scratch"
    result = lockstep_cmd("check-lock", cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, line + "\n", "")
    docs = Path(__file__).resolve().parents[2] / "docs"
    for page in ("toolkit.md", "ci-gate.md"):
        text = " ".join((docs / page).read_text(encoding="utf-8").split())  # lines joined as Markdown joins them
        assert f"`{line}` and exits 0" in text, page
        assert "dvc.lock: not committed yet" not in text, page


def test_report_gitlab_without_its_token_says_what_to_set(monkeypatch, capsys) -> None:
    monkeypatch.delenv("GITLAB_NOTE_TOKEN", raising=False)
    for name, value in {"CI_API_V4_URL": "http://gitlab.invalid/api/v4", "CI_PROJECT_ID": "42",
                        "CI_DEFAULT_BRANCH": "main"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    assert cli.main(["report-gitlab"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (
        "error: report-gitlab: set GITLAB_NOTE_TOKEN (GitLab CI sets all but GITLAB_NOTE_TOKEN: a protected,"
        " masked project access token, Reporter role, api scope)"
    )
