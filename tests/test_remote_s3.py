"""The s3 remote end to end, against an S3 server on loopback (moto): push data, models and
the run-cache from one clone, and reproduce a fresh clone from them without recomputing."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import GIT_ID, bake, project_env, ran, serve, sh

pytestmark = pytest.mark.slow

AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",  # pragma: allowlist secret
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    moto = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"]
    log = tmp_path_factory.mktemp("s3") / "moto.log"
    server, url = serve(moto, r"Running on (http://127\.0\.0\.1:\d+)", log, timeout=30)
    try:
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def env(project: Path) -> dict[str, str]:
    return project_env(project) | AWS | GIT_ID


def point_at(project: Path, endpoint: str) -> None:
    # Local config (not committed): where this machine reaches the bucket.
    sh(project, "dvc", "remote", "modify", "--local", "storage", "endpointurl", endpoint, env=env(project))


def test_push_then_reproduce_a_fresh_clone_from_the_remote(tmp_path: Path, s3: str) -> None:
    import boto3

    project = bake(tmp_path / "a", project_name="Remote S3", dvc_remote="s3", include_llm="no", ci_provider="none")
    assert "url = s3://remote-s3-dvc/storage" in (project / ".dvc" / "config").read_text()
    boto3.client("s3", endpoint_url=s3, **{k.lower(): v for k, v in AWS.items() if k != "AWS_DEFAULT_REGION"},
                 region_name="us-east-1").create_bucket(Bucket="remote-s3-dvc")  # fmt: skip
    sh(project, "make", "setup")
    point_at(project, s3)
    sh(project, "make", "repro", env=env(project))
    sh(project, "git", "add", "-A", env=env(project))
    sh(project, "git", "commit", "-q", "-m", "Reproduce", env=env(project))
    sh(project, "make", "push", env=env(project))

    # A fresh clone, as CI sees the repository: nothing but Git
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(project), str(clone)], check=True)
    assert not (clone / "data" / "raw" / "breast_cancer.csv").exists()
    sh(clone, "make", "setup")
    point_at(clone, s3)
    sh(clone, "make", "check-lock", env=env(clone))
    start = time.monotonic()
    warm = sh(clone, "make", "repro-ci", env=env(clone))
    warm_s = time.monotonic() - start
    # Nothing the remote holds is taken on trust: the split and the model are made again and checked
    # against dvc.lock (`check-lock --reproduced`), the metrics recomputed
    assert ran(warm.stdout) == ["prepare", "train", "evaluate"]
    sh(clone, "dvc", "pull", env=env(clone))
    assert (clone / "models" / "model.joblib").read_bytes() == (project / "models" / "model.joblib").read_bytes()

    # A pull request that changes the model re-runs only what depends on it, and commits the result
    conf = clone / "conf" / "model" / "logistic_regression.yaml"
    conf.write_text(conf.read_text().replace("C: 1.0", "C: 0.5"))
    sh(clone, "make", "params", env=env(clone))
    assert ran(sh(clone, "make", "repro", env=env(clone)).stdout) == ["train", "evaluate", "register"]
    sh(clone, "git", "commit", "-qam", "C 0.5", env=env(clone))
    # CI on that commit: split, model and metrics made again, and the model is the bytes dvc.lock names
    changed = sh(clone, "make", "repro-ci", env=env(clone))
    assert ran(changed.stdout) == ["prepare", "train", "evaluate"]
    print(
        f"\nwarm PR check (repro-ci, run-cache from s3): {warm_s:.1f} s, split, model and metrics made again",
        file=sys.__stderr__,
    )
