"""params.yaml is what DVC's composer makes of conf/, and importing stages stays cheap."""

import subprocess
import sys
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }} import params

ROOT = Path(__file__).resolve().parents[1]


def test_committed_params_are_fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    assert params.compose() == (ROOT / "params.yaml").read_text(encoding="utf-8")


def test_every_model_config_composes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    for config in sorted((ROOT / "conf" / "model").glob("*.yaml")):
        assert f"name: {config.stem}\n" in params.compose(overrides=[f"model={config.stem}"])


def test_check_fails_on_a_stale_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    (tmp_path / "conf").symlink_to(ROOT / "conf")
    (tmp_path / "params.yaml").write_text("data: {}\n")
    monkeypatch.chdir(tmp_path)
    assert params.main(["--check"]) == 1
    assert "params.yaml is stale with respect to conf/; run `make params`" in capsys.readouterr().err
    assert params.main([]) == 0
    assert params.main(["--check"]) == 0


def test_stage_imports_are_light() -> None:
    # Importing any stage must not pull in heavy libraries: they load inside the stage body.
    package = params.__name__.rpartition(".")[0]
    stages = [f"{package}.stages.{name}" for name in ("prepare", "train", "evaluate", "register")]
    heavy = ["sklearn", "mlflow", "pandas", "numpy", "dvc", "hydra"]
    code = (
        f"import sys, importlib; [importlib.import_module(m) for m in {stages!r}];"
        f" print(sorted(set({heavy!r}) & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
