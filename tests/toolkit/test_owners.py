"""CODEOWNERS against the files that decide the gate's verdict (lockstep.owners)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from lockstep.owners import feeding, unowned

DVC_YAML = """stages:
  train:
    cmd: python -m pkg.stages.train
    deps:
      - src/pkg/stages/train.py
      - data/raw/table.csv
      - lib/helpers.py
    params:
      - model
    outs:
      - models/model.joblib
  answer:
    cmd: lockstep prompts answer triage
    deps:
      - prompts/triage.yaml
  register:
    cmd: lockstep register
    deps:
      - reports/metrics.json
    metrics:
      - reports/metrics.json:
          cache: false
"""
FILES = {
    "dvc.yaml": DVC_YAML,
    "params.yaml": "model: {C: 1}\npaths: {prompts: prompts}\n",
    "conf/config.yaml": "defaults: []\n",
    "conf/model/lr.yaml": "C: 1\n",
    "src/pkg/stages/train.py": "",
    "lib/helpers.py": "",
    "data/raw/table.csv.dvc": "outs:\n- md5: d41d8cd98f00b204e9800998ecf8427e\n  size: 0\n  path: table.csv\n",
    "prompts/triage.yaml": "name: triage\n",
    "README.md": "",
    "reports/metrics.json": "{}",
}
OWNERS = "/dvc.yaml @team\n/params.yaml @team\n/conf/ @team\n/src/pkg/stages/ @team\n*.dvc @team\n/lib/ @team\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for name, text in FILES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["dvc", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "CODEOWNERS").write_text(OWNERS + "/CODEOWNERS @team\n/.dvc/ @team\n")
    subprocess.run(["git", "add", "-A"], cwd=tmp_path, check=True)
    return tmp_path


def test_the_stages_inputs_and_the_fixed_list_feed_the_gate_but_not_the_prompts(project: Path) -> None:
    files = feeding(project)
    assert {"dvc.yaml", "params.yaml", "conf/model/lr.yaml", "src/pkg/stages/train.py", "lib/helpers.py"} <= set(files)
    assert "data/raw/table.csv.dvc" in files  # the data by its pointer
    assert "prompts/triage.yaml" not in files and "README.md" not in files  # judged, or beside the point
    assert "reports/metrics.json" not in files  # committed, and read by a stage, but written by one
    assert unowned(project) == []


def test_a_file_no_rule_covers_is_named(project: Path) -> None:
    (project / "CODEOWNERS").write_text(
        OWNERS.replace("/lib/ @team\n", "").replace("/conf/ @team\n", "/conf/gates/ @team\n")
    )
    assert unowned(project) == ["CODEOWNERS", "conf/config.yaml", "conf/model/lr.yaml", "lib/helpers.py"]
