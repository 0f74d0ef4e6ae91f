"""Helpers shared by the template's tests: bake a project, run commands in it, find Pythons."""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cookiecutter.main import cookiecutter
from filelock import FileLock

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dev import find_python  # noqa: E402, F401  (re-exported: the pipeline tests look for other Pythons)

TEMPLATE_DIR = ROOT / "{{cookiecutter.project_slug}}"
# Commits made by the tests, whatever the machine's Git configuration says.
GIT_ID = {
    "GIT_AUTHOR_NAME": "Lockstep Tests",
    "GIT_AUTHOR_EMAIL": "tests@example.com",
    "GIT_COMMITTER_NAME": "Lockstep Tests",
    "GIT_COMMITTER_EMAIL": "tests@example.com",
}
DEFAULTS: dict[str, Any] = {
    "project_name": "Support Insights",
    "project_slug": "support-insights",
    "package_name": "support_insights",
}


def bake(output_dir: Path, **context: Any) -> Path:
    """Bake the template non-interactively with these answers; returns the project directory."""
    return Path(cookiecutter(str(ROOT), no_input=True, extra_context=context, output_dir=str(output_dir)))


def bake_cli(output_dir: Path, *answers: str) -> subprocess.CompletedProcess:
    """Bake through the cookiecutter command line, as a user would; answers are key=value."""
    return subprocess.run(
        [sys.executable, "-m", "cookiecutter", "--no-input", "-o", str(output_dir), str(ROOT), *answers],
        capture_output=True,
        text=True,
    )


def project_env(project: Path) -> dict[str, str]:
    """Environment in which a baked project's own tools are found first, as after `make setup`."""
    env = dict(os.environ)
    env["PATH"] = f"{project / '.venv' / 'bin'}{os.pathsep}{env['PATH']}"
    env.pop("VIRTUAL_ENV", None)
    # A developer's machine: Python writes the bytecode of the modules it imports, so `make setup` does
    # not compile all of .venv first (the Makefile compiles at install only under PYTHONDONTWRITEBYTECODE;
    # a UV_COMPILE_BYTECODE=1 of the caller's would compile it anyway: 31 s of setup instead of 7)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("UV_COMPILE_BYTECODE", None)
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def sh(project: Path, *cmd: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run a command in a baked project and fail with its output when it fails unexpectedly."""
    result = subprocess.run(cmd, cwd=project, capture_output=True, text=True, env=env or project_env(project))
    if check and result.returncode:
        pytest.fail(f"{' '.join(cmd)} exited {result.returncode}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def task_data(project: Path, name: str, loader: str, target: str, task: str) -> None:
    """A user's own CSV and its conf/data file: scikit-learn's bundled `loader` data set written to
    data/raw/<name>.csv (a multiclass target as class names) and conf/data/<name>.yaml for it."""
    code = (
        f"import sklearn.datasets as d; b = d.{loader}(as_frame=True); f = b.frame.rename(columns={{'target':"
        f" {target!r}}}); f[{target!r}] = f[{target!r}].map(lambda c: f'class_{{c}}') if {task!r} =="
        f" 'multiclass' else f[{target!r}]; f.to_csv('data/raw/{name}.csv', index=False)"
    )
    sh(project, "python", "-c", code)
    (project / "conf" / "data" / f"{name}.yaml").write_text(
        f"path: data/raw/{name}.csv\ntarget: {target}\ntask: {task}\npositive_class: null\n"
        "features: null\ntest_size: 0.25\nseed: 7\n"
    )


def run_queue(project: Path, env: dict[str, str], jobs: int = 2) -> str:
    """Start DVC's queue workers, wait until no experiment is queued or running, stop the workers,
    and return the status of the experiments.

    The workers are detached and can outlive `dvc queue start`, so its output goes to a file: a
    worker that inherited a pipe of ours would keep the read open until the worker exits."""
    with tempfile.TemporaryFile() as log:
        started = subprocess.run(["dvc", "queue", "start", "-j", str(jobs)], cwd=project, env=env,
                                 stdin=subprocess.DEVNULL, stdout=log, stderr=log)  # fmt: skip
        log.seek(0)
        assert started.returncode == 0, log.read()
    try:
        for _ in range(300):  # polls, two seconds apart
            status = sh(project, "dvc", "queue", "status", env=env).stdout
            if "Queued" not in status and "Running" not in status:
                return status
            time.sleep(2)
        pytest.fail(f"the queued experiments did not finish:\n{status}")
    finally:  # the workers would linger, idle, after the test: stopped here, and waited for
        sh(project, "dvc", "queue", "stop", "--kill", env=env, check=False)
        for _ in range(60):
            if "Worker status: 0 active, 0 idle" in sh(project, "dvc", "queue", "status", env=env).stdout:
                break
            time.sleep(1)
        else:
            pytest.fail("the DVC queue workers did not stop")


def serve(cmd: list[str], announces: str, log: Path, timeout: float, **popen: Any) -> tuple[subprocess.Popen, str]:
    """Start a server told to bind port 0, and return it with the address it announces once listening:
    the first group of the regular expression `announces`, found in its output (kept in the file log)."""
    with log.open("ab") as out:
        server = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, **popen)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.poll() is None:
        if found := re.search(announces, log.read_text(errors="replace")):
            return server, found[1]
        time.sleep(0.2)
    server.kill()
    server.wait()
    pytest.fail(f"{cmd[0]} announced no address within {timeout} s; its output:\n{log.read_text()[-3000:]}")


def readline(stream: Any, timeout: float) -> str:
    """The next line of a process's output pipe, waiting at most timeout seconds (a thread reads it,
    so a process that prints nothing fails the test instead of hanging it)."""
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not line:
        pytest.fail(f"no line of output within {timeout} s")
    return line[0]


@pytest.fixture(scope="session")
def recorded_answers(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Callable[[Path], None]:
    """Seeds a bake with the local model's answers to the default prompts' golden sets (and to the
    shorter summaries several tests ask for, max_tokens 40): what a clone gets from a remote its team
    pushed to. A bake seeded with them answers an unchanged case from its cache, in record mode as by
    default, and asks the model only what differs (an edited prompt, another golden set or model).

    The answers are recorded live once per test run, by the prompt stages of a default bake of their
    own, when a test first seeds a bake; every worker shares them (a worker that needs them while
    another records them waits for the lock)."""
    shared = tmp_path_factory.getbasetemp() if worker_id == "master" else tmp_path_factory.getbasetemp().parent
    store = shared / "recorded-answers"

    def record() -> None:
        shutil.rmtree(store, ignore_errors=True)
        store.mkdir()
        project = bake(store, project_name="Recorded Answers", ci_provider="none")
        sh(project, "make", "setup")
        sh(project, "make", "params")
        live = "prompt {0}: 0 answers replayed from data/llm_cache/{0}, 36 asked of the model (record)"
        answered = sh(project, "dvc", "repro", "prompt_outputs").stderr
        assert live.format("summarize_ticket") in answered and live.format("triage_ticket") in answered
        summarize = project / "prompts" / "summarize_ticket.yaml"
        summarize.write_text(summarize.read_text().replace("max_tokens: 48", "max_tokens: 40"))
        assert live.format("summarize_ticket") in sh(project, "dvc", "repro", "prompt_outputs@summarize_ticket").stderr
        shutil.copytree(project / "data" / "llm_cache", store / "llm_cache")
        (store / "complete").touch()

    def seed(project: Path) -> None:
        if not (project / "prompts").is_dir():  # a bake without the prompt track has no answers to keep
            return
        with FileLock(shared / "recorded-answers.lock"):
            if not (store / "complete").exists():
                record()
        for entry in (store / "llm_cache").glob("*/*.json"):  # entries are written once: a bake's own stay
            target = project / "data" / "llm_cache" / entry.relative_to(store / "llm_cache")
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(entry, target)

    return seed


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A loopback port bound and never listened on: a connection to it is refused, and no server can take
    it while the test holds it (a port released after use may be anyone's by the time it is dialled)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def ran(output: str) -> list[str]:
    """The stages a `dvc repro` / `dvc exp run` ran, in the order it ran them, from its output."""
    return re.findall(r"Running stage '([^']+)'", output)


class Loopback(http.server.BaseHTTPRequestHandler):
    """The request handler of a stand-in server on loopback: silent, with one way to answer."""

    def reply(self, status: int, body: bytes | object = b"", content_type: str = "application/json") -> None:
        """Answer with status and body (bytes as they are, anything else as JSON)."""
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        if payload:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


# In this order: the first two start together, one seeding its bakes with recorded answers at once
# (recording them), the other not for minutes (README demo answers live first)
LONGEST = ("test_gate_pr.py", "test_pipeline.py", "test_walk.py", "test_platform.py", "test_trusted_gate.py")


@pytest.hookimpl(trylast=True)  # after a random order (pytest-randomly), if any, was drawn
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A tighter ceiling for the toolkit's unit tests (pyproject's `timeout` is for whole-pipeline runs);
    the longest end-to-end modules first, so the workers start on them and the short tests fill in."""
    for item in items:
        if "/tests/toolkit/" in str(item.path) and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(180))
    items.sort(key=lambda item: LONGEST.index(item.path.name) if item.path.name in LONGEST else len(LONGEST))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Under CI=true every test must run: a skip fails, naming the test and why it would have skipped
    (`python3 dev.py setup-test-deps` installs what the skipping tests need)."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI", "").lower() == "true" and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"{item.nodeid} skipped under CI=true, where every test must run: {reason}"
