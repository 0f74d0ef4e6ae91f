"""Atomic writes: whole or nothing, and no litter from a writer that was killed."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from lockstep.io import data_md5, file_md5, write_atomic, write_csv, write_json


def test_a_killed_writers_temporary_file_is_cleaned_up(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    litter = tmp_path / f".model.joblib.{dead.stdout.strip()}.tmp"  # that process no longer exists
    litter.write_bytes(b"half a model")
    alive = tmp_path / f".model.joblib.{os.getppid()}.tmp"  # a live writer's file is left alone
    alive.write_bytes(b"being written")
    write_atomic(tmp_path / "model.joblib", b"model")
    assert (tmp_path / "model.joblib").read_bytes() == b"model"
    assert not litter.exists() and alive.exists()


def test_json_csv_and_md5(tmp_path: Path) -> None:
    write_json(tmp_path / "m.json", {"accuracy": 0.5})
    write_csv(tmp_path / "p.csv", [{"x": 1, "y": 2}, {"x": 3, "y": 4}])
    assert (tmp_path / "m.json").read_text() == '{\n  "accuracy": 0.5\n}\n'
    assert (tmp_path / "p.csv").read_text() == "x,y\n1,2\n3,4\n"
    write_csv(tmp_path / "q.csv", pd.DataFrame({"actual": ["a, b", 'say "hi"'], "n": [1.5, 2.0]}))
    assert list(csv.reader((tmp_path / "q.csv").open())) == [["actual", "n"], ["a, b", "1.5"], ['say "hi"', "2"]]
    assert file_md5(tmp_path / "p.csv") == "178ba85707470c41cf680fb37ff99f7f"  # md5 of the bytes, as DVC records


def test_data_md5_of_a_directory_is_the_one_dvc_records(tmp_path: Path) -> None:
    batches = tmp_path / "batches"
    (batches / "2026").mkdir(parents=True)
    (batches / "a.csv").write_text("x,y\n1,2\n")
    (batches / "2026" / "b.csv").write_text("x,y\n3,4\n")
    dvc = Path(sys.executable).with_name("dvc")
    subprocess.run([dvc, "init", "-q", "--no-scm"], cwd=tmp_path, check=True)
    subprocess.run([dvc, "add", "-q", "batches"], cwd=tmp_path, check=True)
    recorded = yaml.safe_load((tmp_path / "batches.dvc").read_text())["outs"][0]["md5"]
    assert recorded.endswith(".dir") and data_md5(batches) == recorded
    assert data_md5(batches / "a.csv") == file_md5(batches / "a.csv")
