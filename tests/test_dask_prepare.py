"""The prepare stage on Dask in a baked project, switched as docs/your-data-and-model.md says:
the dask extra in the Makefile's EXTRAS, `engine: dask` in conf/data, a directory of raw files;
then run on Dask's local scheduler and on a dask.distributed cluster on loopback."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from conftest import bake, project_env, ran, serve, sh

pytestmark = pytest.mark.slow


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{path.name} has no {old!r}"
    path.write_text(text.replace(old, new, 1))


def split_into_files(csv: Path, folder: Path, files: int) -> None:
    """The raw CSV as a directory of CSV files with the same header, as data arriving in batches does."""
    header, *rows = csv.read_text().splitlines(keepends=True)
    folder.mkdir()
    size = -(-len(rows) // files)
    for i in range(files):
        (folder / f"batch-{i}.csv").write_text(header + "".join(rows[i * size : (i + 1) * size]))


def test_prepare_on_dask_locally_then_on_a_cluster(tmp_path: Path) -> None:
    project = bake(tmp_path, project_name="Dask Prepare", include_llm="no", ci_provider="none", dvc_remote="none")
    edit(project / "Makefile", "EXTRAS ?= dev\n", "EXTRAS ?= dev,dask\n")
    sh(project, "make", "setup")
    split_into_files(project / "data/raw/breast_cancer.csv", project / "data/raw/batches", files=3)
    sh(project, "dvc", "add", "data/raw/batches")
    conf = project / "conf/data/breast_cancer.yaml"
    edit(conf, "path: data/raw/breast_cancer.csv", "path: data/raw/batches")
    edit(conf, "engine: pandas", "engine: dask")

    repro = sh(project, "make", "repro")
    assert ran(repro.stdout) == ["prepare", "train", "evaluate", "register"]
    assert "prepare: 3 partition(s) on Dask's local threads scheduler" in repro.stdout
    prepared = project / "data/prepared"
    train, test = pd.read_parquet(prepared / "train.parquet"), pd.read_parquet(prepared / "test.parquet")
    assert len(train) + len(test) == 569 and 0.15 < len(test) / 569 < 0.25
    metrics = json.loads((project / "reports/metrics.json").read_text())
    assert metrics["accuracy"] >= 0.9 and metrics["roc_auc"] >= 0.95

    # The same stage on a cluster: a scheduler and a worker on loopback, started elsewhere
    from distributed import Client

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    dask = str(project / ".venv/bin/dask")
    started = [dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard"]
    scheduler, address = serve(started, r"Scheduler at: +(tcp://127\.0\.0\.1:\d+)", tmp_path / "scheduler.log", 60)
    worker = subprocess.Popen(
        [dask, "worker", address, "--host", "127.0.0.1", "--nworkers", "1", "--nthreads", "1", "--no-dashboard"],
        cwd=elsewhere, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        with Client(address) as client:
            client.wait_for_workers(1, timeout=120)
            before = client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.transition_counter)
            env = project_env(project) | {"DASK_SCHEDULER_ADDRESS": address}
            again = sh(project, "dvc", "repro", "--force", "--single-item", "prepare", env=env)
            assert f"on the Dask cluster at {address} (1 worker)" in again.stdout
            assert client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.transition_counter) > before
    finally:
        for process in (worker, scheduler):
            process.terminate()
            process.wait(timeout=60)
    # Same data, same seed: the cluster wrote the same split, so nothing downstream re-runs
    assert ran(sh(project, "dvc", "repro").stdout) == []
