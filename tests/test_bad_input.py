"""Bad input, everywhere: every row of docs/bad-input.md, tried on a baked project.

Each answer must be one line naming the file, field or command and the fix; a failing stage
stops `dvc repro` there; nothing is registered from a failed run; an interrupted stage re-runs
to a consistent registry.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import threading
import time
import typing
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from conftest import GIT_ID, Loopback, bake, bake_cli, project_env, ran, sh

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, recorded_answers: Callable[[Path], None]) -> Path:
    project = bake(tmp_path_factory.mktemp("bad"))
    recorded_answers(project)
    sh(project, "make", "setup")
    return project


@pytest.fixture
def params(project: Path, tmp_path: Path) -> dict:
    """The project's params, to be broken one key at a time and written to tmp_path."""
    return yaml.safe_load((project / "params.yaml").read_text())


def run(project: Path, *cmd: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return sh(project, *cmd, check=False, env=(project_env(project) | (env or {})))


def one_line(result: subprocess.CompletedProcess, *expected: str) -> str:
    """The command failed with exactly one line on stderr, containing every expected part."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0, result.stdout
    assert len(lines) == 1, result.stderr
    for part in expected:
        assert part in lines[0], lines[0]
    return lines[0]


def stage_with(project: Path, tmp_path: Path, params: dict, stage: str, *args: str) -> subprocess.CompletedProcess:
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(params))
    if stage.startswith("prompt"):
        return run(project, "lockstep", "prompts", *args, "--params", str(bad))
    return run(project, "python", "-m", f"support_insights.stages.{stage}", *args, env={"LOCKSTEP_PARAMS": str(bad)})


def csv(tmp_path: Path, text: str) -> str:
    path = tmp_path / "data.csv"
    path.write_text(text)
    return str(path)


# --- Generation -------------------------------------------------------------------------


def test_a_package_whose_hash_differs_from_the_lock_is_not_installed(tmp_path: Path) -> None:
    # requirements.lock pins every package with its hashes; make setup (and the image) verify them
    project = bake(tmp_path, init_git="no")
    lock = project / "requirements.lock"
    text = lock.read_text()
    block = re.search(r"^pyyaml==[^\n]*(?:\n    --hash=sha256:[0-9a-f]{64}[^\n]*)+", text, re.MULTILINE)
    assert block, "requirements.lock pins pyyaml with its hashes"
    lock.write_text(text.replace(block[0], re.sub(r"sha256:[0-9a-f]{64}", "sha256:" + "0" * 64, block[0])))
    result = sh(project, "make", "setup", check=False)
    assert result.returncode != 0
    assert "Hash mismatch for `pyyaml==" in result.stdout + result.stderr
    assert not (project / ".venv" / "bin" / "dvc").exists(), "nothing is installed from a lock that failed"


def test_setup_names_a_dvc_on_path_that_is_not_the_projects(project: Path, tmp_path: Path) -> None:
    # A dvc installed elsewhere (pipx, the system) runs the stages with a Python that cannot import
    # the project; make setup names it and says how to avoid it
    elsewhere = tmp_path / "bin"
    elsewhere.mkdir()
    (elsewhere / "dvc").write_text("#!/bin/sh\nexit 0\n")
    (elsewhere / "dvc").chmod(0o755)
    system_path = project_env(project)["PATH"].split(os.pathsep, 1)[1]  # without the project's .venv/bin
    foreign = run(project, "make", "setup", env={"PATH": f"{elsewhere}{os.pathsep}{system_path}"})
    assert foreign.returncode == 0, foreign.stdout + foreign.stderr
    warning = [line for line in foreign.stdout.splitlines() if line.startswith("setup: warning:")]
    assert warning == [
        f"setup: warning: the dvc on your PATH is {elsewhere / 'dvc'}, not this project's: it would run the"
        " stages with another Python. Run source .venv/bin/activate first (or make exp / make metrics)."
    ]
    # Activated as the warning says, the project's own dvc comes first: no warning
    activated = run(project, "bash", "-c", "source .venv/bin/activate && command -v dvc && make setup",
                    env={"PATH": f"{elsewhere}{os.pathsep}{system_path}"})  # fmt: skip
    assert activated.returncode == 0, activated.stdout + activated.stderr
    assert activated.stdout.splitlines()[0] == str(project / ".venv" / "bin" / "dvc")
    assert "setup: warning" not in activated.stdout
    assert "source .venv/bin/activate" in activated.stdout  # the next step is always said


def test_existing_target_directory_is_left_untouched(tmp_path: Path) -> None:
    (tmp_path / "support-insights").mkdir()
    (tmp_path / "support-insights" / "notes.txt").write_text("mine")
    result = bake_cli(tmp_path)
    assert result.returncode != 0
    said = result.stdout + result.stderr  # cookiecutter prints this one on standard output
    assert 'Error: "' in said and 'support-insights" directory already exists' in said
    assert [p.name for p in (tmp_path / "support-insights").iterdir()] == ["notes.txt"]


# --- Pipeline inputs ----------------------------------------------------------------------


def test_missing_data_file(project: Path, tmp_path: Path, params: dict) -> None:
    params["data"]["path"] = str(tmp_path / "absent.csv")
    one_line(stage_with(project, tmp_path, params, "prepare"), "absent.csv: not found; run `dvc pull` or fix data.path")


def test_empty_data_file(project: Path, tmp_path: Path, params: dict) -> None:
    params["data"]["path"] = csv(tmp_path, "")
    one_line(stage_with(project, tmp_path, params, "prepare"), "data.csv: file is empty; point data.path")


@pytest.mark.parametrize(
    ("text", "changes", "expected"),
    [
        ("a,b\n1,x\n2,y\n", {"target": "diagnosis"}, "target column 'diagnosis' not found (columns: a, b)"),
        ("a,diagnosis\n1,malignant\n,benign\n", {}, "missing values in column(s) a; clean the data"),
        ("a,diagnosis\n1,malignant\n2,malignant\n", {}, "target 'diagnosis' has 1 class(es) ['malignant']"),
    ],
    ids=["missing-target-column", "nans", "single-class"],
)
def test_bad_tables(project: Path, tmp_path: Path, params: dict, text: str, changes: dict, expected: str) -> None:
    params["data"] |= {"path": csv(tmp_path, text), **changes}
    one_line(stage_with(project, tmp_path, params, "prepare"), "error: prepare: ", expected)


def test_malformed_params_yaml(project: Path, tmp_path: Path) -> None:
    bad = tmp_path / "params.yaml"
    bad.write_text("data:\n  path: [unclosed\n")
    result = run(project, "python", "-m", "support_insights.stages.train", env={"LOCKSTEP_PARAMS": str(bad)})
    one_line(result, "params.yaml: not valid YAML (line 3); recompose it with `make params`")


def test_a_bad_value_in_params(project: Path, tmp_path: Path, params: dict) -> None:
    params["data"]["test_size"] = 2
    one_line(stage_with(project, tmp_path, params, "prepare"), "data.test_size: Input should be less than 1 (got 2)")


def test_bad_hydra_override(project: Path) -> None:
    result = run(project, "lockstep", "params", "model=nonexistent")
    one_line(result, "error: params: conf/: cannot compose config.yaml:", "Could not find 'model/nonexistent'")


def test_a_prompt_with_an_undeclared_variable(project: Path) -> None:
    prompt = project / "prompts" / "summarize_ticket.yaml"
    original = prompt.read_text()
    try:
        prompt.write_text(original.replace("{{ticket}}", "{{ticket}} {{customer}}"))
        one_line(
            run(project, "lockstep", "prompts", "check"),
            "summarize_ticket.yaml: template: variable 'customer' is not declared",
        )
    finally:
        prompt.write_text(original)


class Garbage(Loopback):
    def do_POST(self) -> None:
        self.reply(200, b"<html>maintenance</html>", "text/html")


def test_an_llm_endpoint_that_is_down_or_answers_garbage(project: Path, tmp_path: Path, params: dict) -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), Garbage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    closed = socket.socket()  # bound, never listening: connections to it are refused, and no one else gets it
    closed.bind(("127.0.0.1", 0))
    down = f"http://127.0.0.1:{closed.getsockname()[1]}/v1"
    params["llm"] |= {"backend": "openai", "model": "m", "api_key_env": "LOCKSTEP_KEY", "max_retries": 0}
    params["paths"]["prompt_reports"] = str(tmp_path / "reports")
    params["paths"]["prices"] = str(tmp_path / "prices.yaml")  # model m is priced: the endpoint is what fails
    (tmp_path / "prices.yaml").write_text("m: {input: 0.001, output: 0.002}\n")
    try:
        bad = tmp_path / "params.yaml"
        for base_url, expected in [
            (down, f"llm: cannot reach {down}; start the server or fix llm.base_url"),
            (f"http://127.0.0.1:{server.server_port}/v1", "returned something that is not a chat completion"),
        ]:
            params["llm"]["base_url"] = base_url
            bad.write_text(yaml.safe_dump(params))
            cmd = ["lockstep", "prompts", "answer", "triage_ticket", "--params", str(bad)]
            one_line(run(project, *cmd, env={"LOCKSTEP_KEY": "k-123"}), "error: prompts: ", expected)
        result = run(project, *cmd)
        one_line(result, "environment variable LOCKSTEP_KEY is not set; export it (never commit it)")
    finally:
        server.shutdown()
        closed.close()


# --- The pipeline as a whole: stop at the stage, register nothing, stay consistent ---------


def registered(project: Path) -> list[tuple[str, int]]:
    db = project / "mlflow.db"
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        return conn.execute("select name, version from model_versions order by name, version").fetchall()


def test_repro_stops_at_the_failing_stage_and_registers_nothing(project: Path) -> None:
    conf = project / "conf" / "data" / "breast_cancer.yaml"
    original = conf.read_text()
    before = registered(project)  # whatever other tests of this module registered already
    try:
        conf.write_text(original.replace("target: diagnosis", "target: diagnosys"))
        result = run(project, "make", "repro")
        assert result.returncode != 0
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert errors == [errors[0]] and "target column 'diagnosys' not found" in errors[0]
        assert "Running stage 'train'" not in result.stdout
        assert registered(project) == before, "nothing registered from a failed run"
    finally:
        conf.write_text(original)
        sh(project, "make", "params")


class Unavailable(Loopback):
    """A tracking server that answers every request with 503, counting them."""

    requests: typing.ClassVar[list[str]] = []

    def answer(self) -> None:
        Unavailable.requests.append(f"{self.command} {self.path}")
        self.reply(503)

    do_GET = do_POST = do_PATCH = answer


def test_an_unavailable_mlflow_server_fails_fast_and_loses_nothing(project: Path) -> None:
    sh(project, "make", "repro")
    registration = project / "reports" / "registration.json"
    record = registration.read_text() if registration.exists() else None
    server = http.server.HTTPServer(("127.0.0.1", 0), Unavailable)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Unavailable.requests.clear()
    uri = f"http://team:s3cret-pw@127.0.0.1:{server.server_port}"  # pragma: allowlist secret
    try:
        result = run(project, "dvc", "repro", "--single-item", "--force", "register", env={"MLFLOW_TRACKING_URI": uri})
    finally:
        server.shutdown()
    assert set(ran(result.stdout)) == {"register"}
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith("error: register: MLflow at http://team:***@127.0.0.1:"), errors
    assert "s3cret-pw" not in result.stdout + result.stderr
    # Bounded retries: the first call and one retry, not MLflow's default of minutes of backoff
    assert 1 <= len(Unavailable.requests) <= 2, Unavailable.requests
    after = registration.read_text() if registration.exists() else None
    assert after == record, "the last registration record is kept as it was"


def kill_when(project: Path, cmd: list[str], ready, timeout: float = 120) -> None:
    """Start a stage, SIGKILL it as soon as `ready()` holds, and wait for it to die."""
    proc = subprocess.Popen(
        cmd, cwd=project, env=project_env(project), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + timeout
    while not ready() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the stage finished before it could be interrupted"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


# Runs a module with os.replace held open: it marks the moment a finished output is about to
# replace the old one, then waits there to be killed. A stage that writes in place never gets here.
IN_THE_WRITE_WINDOW = """
import os, pathlib, runpy, sys, time
def replace(src, dst):
    pathlib.Path(sys.argv[1]).write_text(str(src))
    time.sleep(3600)
os.replace = replace
runpy.run_module(sys.argv[2], run_name="__main__", alter_sys=True)
"""


def test_killed_train_and_register_recover_without_duplicates(project: Path, tmp_path: Path) -> None:
    sh(project, "make", "repro")
    conf = project / "conf" / "model" / "logistic_regression.yaml"
    original = conf.read_text()
    try:
        conf.write_text(original.replace("C: 1.0", "C: 0.7"))
        sh(project, "make", "params")
        model = project / "models" / "model.joblib"
        before = model.read_bytes()
        # train: killed inside the write window, with the new model written but not yet in place
        marker = tmp_path / "about-to-replace"
        train = ["python", "-c", IN_THE_WRITE_WINDOW, str(marker), "support_insights.stages.train"]
        kill_when(project, train, marker.exists)
        assert (project / marker.read_text()).exists(), "the new model was written in full beside the old one"
        assert model.read_bytes() == before, "the old model is intact"
        sh(project, "dvc", "repro", "--single-item", "train")
        assert model.read_bytes() != before and not list(model.parent.glob(".*.tmp")), "re-run: new model, no litter"

        # register: killed once its MLflow run exists but before the version is created
        sh(project, "dvc", "repro", "evaluate")
        runs_before = count(project, "runs")
        assert runs_before > 0, "make repro registered a first version, in a run of its own"

        def run_started() -> bool:
            return count(project, "runs") > runs_before

        kill_when(project, ["lockstep", "register"], run_started)
        assert count(project, "runs") == runs_before + 1, "killed once its run existed"
        versions = registered(project)
        sh(project, "dvc", "repro")
        after = registered(project)
        assert len(after) == len(versions) + 1, "exactly one new version for the new model"
        sh(project, "dvc", "repro", "-f", "register")
        assert registered(project) == after, "re-running register adds nothing"
    finally:
        conf.write_text(original)
        sh(project, "make", "params")


def count(project: Path, table: str, timeout: float = 30) -> int:
    """The rows of a table of the project's MLflow database. A writer's lock is waited out; any other
    error fails the test (it is never read as 0 rows)."""
    deadline = time.monotonic() + timeout
    while True:
        conn = sqlite3.connect(f"file:{project / 'mlflow.db'}?mode=ro", uri=True, timeout=1)
        try:
            return conn.execute(f"select count(*) from {table}").fetchone()[0]
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        finally:
            conn.close()
        time.sleep(0.05)


class Answers(Loopback):
    """An OpenAI-compatible endpoint that answers every chat completion, noting the keys it was sent."""

    keys: typing.ClassVar[list[str]] = []

    def do_POST(self) -> None:
        Answers.keys.append(self.headers.get("Authorization", ""))
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        text = '{"queue": "billing"}' if request.get("response_format") else "The customer asks for a refund."
        self.reply(200, {
            "id": "c1", "object": "chat.completion", "created": 0, "model": request["model"],
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        })  # fmt: skip


def test_secrets_never_reach_params_reports_or_the_registry(
    project: Path, recorded_answers: Callable[[Path], None]
) -> None:
    secret = "sk-test-never-store-me-5f2a"  # pragma: allowlist secret
    assert ".env" in (project / ".gitignore").read_text().split()
    server = http.server.HTTPServer(("127.0.0.1", 0), Answers)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Answers.keys.clear()
    base_url = f"http://127.0.0.1:{server.server_port}/v1"
    try:  # the whole pipeline, the key set, every prompt answered by the endpoint
        result = run(project, "dvc", "exp", "run", "-S", "llm=openai", "-S", f"llm.base_url={base_url}",
                     env={"OPENAI_API_KEY": secret} | GIT_ID)  # fmt: skip
    finally:
        server.shutdown()
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert {"prompt_outputs@summarize_ticket", "prompt_outputs@triage_ticket", "register"} <= set(ran(result.stdout))
    assert Answers.keys and set(Answers.keys) == {f"Bearer {secret}"}, "the key reached the endpoint"
    assert secret not in result.stdout + result.stderr, "not in the logs"
    scanned = [project / "params.yaml", project / "dvc.lock", project / "mlflow.db"]
    for folder in ("reports", "mlruns", "data/prompt_outputs", ".dvc/tmp"):
        scanned += [p for p in (project / folder).rglob("*") if p.is_file()]
    assert len(scanned) > 10
    for path in scanned:
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    sh(project, "git", "checkout", "-q", "--", "params.yaml")
    # The experiment left data/llm_cache/ with its own answers only: those seeded before any dvc.lock
    # tracked them are gone. Seeded again, or a later test's first `make repro` asks the local model
    # all 72 cases anew (2.5 minutes, in the orders where this test runs before any repro)
    recorded_answers(project)
