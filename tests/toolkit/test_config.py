"""params.yaml is validated once into typed sections with errors that name the key."""

from pathlib import Path

import pytest
import yaml

from {{ cookiecutter.package_name }}.config import DataConfig, StageError, load


def test_the_committed_params_load(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the project's own params.yaml, when every section is loaded, then each is typed
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    data, model, evaluate, paths, register = load("data", "model", "evaluate", "paths", "register")
    assert isinstance(data, DataConfig)
    assert model.name == "logistic_regression"
    assert 0 < data.test_size < 1
    assert evaluate.floors["accuracy"] > 0
    assert paths.model.suffix == ".joblib"
    assert register.alias == "challenger"


def test_a_bad_value_names_the_key(tmp_path: Path, params: dict) -> None:
    params["data"]["test_size"] = 1.5
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(StageError, match=r"bad.yaml: data.test_size: .*less than 1 \(got 1.5\).*conf/data"):
        load("data", path=path)


def test_an_unknown_key_is_rejected(tmp_path: Path, params: dict) -> None:
    params["model"]["n_estimator"] = 3
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(StageError, match=r"model.n_estimator: Extra inputs are not permitted"):
        load("model", path=path)


def test_missing_and_malformed_params_files(tmp_path: Path) -> None:
    with pytest.raises(StageError, match=r"not found; compose it from conf/ with `make params`"):
        load("data", path=tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("data: [unclosed\n")
    with pytest.raises(StageError, match=r"broken.yaml: not valid YAML \(line \d+\)"):
        load("data", path=broken)
