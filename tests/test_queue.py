"""Experiments queued and run in parallel register into a real MLflow tracking server on loopback
without losing or mixing entries (`dvc exp run --queue`, `dvc queue start -j 2`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import GIT_ID, bake, project_env, run_queue, serve, sh

pytestmark = pytest.mark.slow


@pytest.fixture
def project(tmp_path: Path) -> Path:
    project = bake(tmp_path, project_name="Queue Check", include_llm="no", ci_provider="none")
    sh(project, "make", "setup")
    return project


@pytest.fixture
def tracking_server(project: Path, tmp_path: Path) -> Iterator[str]:
    """`mlflow server` from the project's own environment, on a loopback port it binds itself (uvicorn's)."""
    cmd = [str(project / ".venv" / "bin" / "mlflow"), "server", "--host", "127.0.0.1", "--port", "0",
           "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}", "--default-artifact-root",
           str(tmp_path / "artifacts"), "--workers", "1"]  # fmt: skip
    announces = r"Uvicorn running on (http://127\.0\.0\.1:\d+)"
    server, url = serve(cmd, announces, tmp_path / "mlflow.log", timeout=90, env=project_env(project))
    try:
        yield url
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_two_queued_experiments_register_two_versions(project: Path, tracking_server: str) -> None:
    env = project_env(project) | GIT_ID | {"MLFLOW_TRACKING_URI": tracking_server}
    sh(project, "make", "repro", env=env)
    sh(project, "git", "add", "-A", env=env)
    sh(project, "git", "commit", "-q", "-m", "Baseline", env=env)
    for c in ("0.5", "0.2"):
        sh(project, "dvc", "exp", "run", "--queue", "-S", f"model.params.C={c}", env=env)
    status = run_queue(project, env)
    assert status.count("Success") == 2, status

    code = (
        "import json, mlflow; c = mlflow.MlflowClient();"
        " vs = c.search_model_versions(\"name = 'queue_check'\");"
        " print(json.dumps(sorted([[int(v.version), v.tags['model_md5'], v.run_id] for v in vs])))"
    )
    versions = json.loads(sh(project, "python", "-c", code, env=env).stdout.strip().splitlines()[-1])
    assert [v[0] for v in versions] == [1, 2, 3], "the baseline and one version per experiment"
    assert len({v[1] for v in versions}) == 3 and len({v[2] for v in versions}) == 3, "no mixed entries"


def test_queued_experiments_register_in_the_projects_own_sqlite_registry(project: Path) -> None:
    # No tracking server: each queued run works in a temporary copy of the project, yet its versions
    # go to the project's mlflow.db, their artifacts under the project's mlruns/ (the copy is deleted).
    env = project_env(project) | GIT_ID  # the bake's first commit, nothing reproduced yet
    sh(project, "dvc", "exp", "run", "--queue", "-S", "model.params.C=0.5", env=env)  # the first run ever: queued
    assert run_queue(project, env, jobs=1).count("Success") == 1
    sh(project, "dvc", "exp", "run", "--queue", "-S", "model.params.C=0.2", env=env)
    assert run_queue(project, env, jobs=1).count("Success") == 2
    code = (
        "import json, mlflow, pandas as pd; mlflow.set_tracking_uri('sqlite:///mlflow.db'); c = mlflow.MlflowClient();"
        " rows = pd.read_csv('data/raw/breast_cancer.csv').drop(columns=['diagnosis']).head(2);"
        " vs = c.search_model_versions(\"name = 'queue_check'\");"
        " print(json.dumps({v.version: len(mlflow.pyfunc.load_model(f'models:/queue_check/{v.version}')"
        ".predict(rows)) for v in vs}))"
    )
    loaded = json.loads(sh(project, "python", "-c", code, env=env).stdout.strip().splitlines()[-1])
    assert loaded == {"1": 2, "2": 2}, "both experiments registered in the project and load from its mlruns/"
