"""Shared fixtures: a tiny, deterministic dataset and a params.yaml that points into tmp_path."""

from __future__ import annotations

{% if cookiecutter.include_llm == "yes" -%}
import shutil
{% endif -%}
from pathlib import Path
from typing import Any

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
def params(tmp_path: Path, tiny_frame: pd.DataFrame) -> dict[str, Any]:
    """The project's own params.yaml with data and outputs moved to tmp_path."""
    composed = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text(encoding="utf-8"))
    raw = tmp_path / "raw.csv"
    tiny_frame.to_csv(raw, index=False)
    composed["data"] |= {"path": str(raw), "target": "label", "positive_class": "yes", "features": None}
    relative = composed["paths"]
    composed["paths"] = {name: str(tmp_path / value) for name, value in relative.items()}
    composed["evaluate"]["floors"] = {"accuracy": 0.5}
{%- if cookiecutter.include_llm == "yes" %}
    for name in ("prompts", "golden"):  # the prompt track reads these from paths.*
        shutil.copytree(PROJECT_ROOT / relative[name], composed["paths"][name])
{%- endif %}
    return composed


@pytest.fixture
def params_file(tmp_path: Path, params: dict[str, Any]) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    return path
