"""Shared fixtures: a tiny, deterministic table, and a project copy in tmp_path to run stages in."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tiny_frame() -> pd.DataFrame:
    """60 rows, two informative features and one noise column, classes 'yes' / 'no'."""
    rng = np.random.default_rng(0)
    labels = np.array(["yes", "no"] * 30)
    signal = np.where(labels == "yes", 1.5, -1.5)
    return pd.DataFrame(
        {
            "f1": signal + rng.normal(0, 1, 60),
            "f2": signal * 0.5 + rng.normal(0, 1, 60),
            "noise": rng.normal(0, 1, 60),
            "label": labels,
        }
    )


@pytest.fixture
def workdir(tmp_path: Path, tiny_frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tmp_path as the project root: the project's own params.yaml with data pointing at tiny_frame."""
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text(encoding="utf-8"))
    tiny_frame.to_csv(tmp_path / "raw.csv", index=False)
    params["data"] |= {"path": "raw.csv", "target": "label", "positive_class": "yes", "features": None}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    shutil.copytree(PROJECT_ROOT / "conf", tmp_path / "conf")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def set_params(workdir: Path, **sections: dict) -> None:
    """Change sections of params.yaml in workdir (each merged into the existing section)."""
    path = workdir / "params.yaml"
    params = yaml.safe_load(path.read_text(encoding="utf-8"))
    for name, values in sections.items():
        params[name] = params.get(name, {}) | values
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
