"""params.yaml is validated once into typed sections with errors that name the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

import lockstep
from lockstep.config import (
    DataConfig,
    LLMConfig,
    ModelConfig,
    Params,
    PromptsConfig,
    StageError,
    check_toolkit_version,
    flatten,
    load,
    load_params,
    one_line,
    redact,
    run,
    tracking_uri,
)


def test_params_in_the_shape_of_conf_load(params_file: Path) -> None:
    # Given params composed from conf/, when every section is loaded, then each is typed
    sections = load("data", "model", "paths", "register", "llm", "prompts", path=params_file)
    data, model, paths, register, llm, prompts = sections
    assert isinstance(data, DataConfig) and data.task == "binary" and data.positive_class == "yes"
    assert model.name == "logistic_regression" and model.params["C"] == 1.0
    assert 0 < data.test_size < 1
    assert paths.model.suffix == ".joblib"
    assert paths.train == paths.prepared / "train.parquet" and paths.test == paths.prepared / "test.parquet"
    assert paths.prompt_file("x") == paths.prompts / "x.yaml" and paths.golden_file("x") == paths.golden / "x.jsonl"
    assert register.alias == "challenger"
    assert llm.backend == "llama_cpp" and prompts.names == ["summarize_ticket", "triage_ticket"]


@pytest.mark.parametrize(
    ("folder", "kind"),
    [("data", DataConfig), ("model", ModelConfig), ("llm", LLMConfig), ("prompts", PromptsConfig)],
)
def test_the_templates_conf_files_are_valid_sections(template: Path, folder: str, kind: type) -> None:
    # The template's conf/<section>/*.yaml are what DVC composes into params.yaml: the toolkit must accept them
    files = sorted((template / "conf" / folder).glob("*.yaml"))
    assert files
    for path in files:
        text = path.read_text(encoding="utf-8")
        if "{{" in text or "{%" in text:  # cookiecutter Jinja: only valid once baked
            continue
        kind.model_validate(yaml.safe_load(text))


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


def test_a_missing_section_is_named(tmp_path: Path, params: dict) -> None:
    del params["register"]
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(StageError, match=r"params.yaml: section 'register' is missing; add it under conf/"):
        load("data", "register", path=path)


def test_missing_and_malformed_params_files(tmp_path: Path) -> None:
    with pytest.raises(StageError, match=r"not found; compose it from conf/ with `make params`"):
        load("data", path=tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("data: [unclosed\n")
    with pytest.raises(StageError, match=r"broken.yaml: not valid YAML \(line \d+\)"):
        load("data", path=broken)
    listed = tmp_path / "list.yaml"
    listed.write_text("- data\n")
    with pytest.raises(StageError, match=r"list.yaml: expected a mapping of sections"):
        load("data", path=listed)


DATA: dict[str, Any] = {"path": "raw.csv", "target": "label", "test_size": 0.2, "seed": 0}


def test_binary_data_needs_a_positive_class(tmp_path: Path, params: dict) -> None:
    assert DataConfig.model_validate(DATA | {"positive_class": "yes"}).task == "binary"  # binary is the default
    with pytest.raises(ValidationError, match=r"task binary needs positive_class"):
        DataConfig.model_validate(DATA)
    with pytest.raises(ValidationError, match=r"task binary needs positive_class"):
        DataConfig.model_validate(DATA | {"task": "binary", "positive_class": ""})
    params["data"]["positive_class"] = None
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(StageError, match=r"params.yaml: data: task binary needs positive_class .*conf/data"):
        load("data", path=path)


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_other_tasks_must_not_set_a_positive_class(task: str) -> None:
    assert DataConfig.model_validate(DATA | {"task": task}).positive_class is None
    message = rf"positive_class applies to task binary only; set it to null for task {task}"
    with pytest.raises(ValidationError, match=message):
        DataConfig.model_validate(DATA | {"task": task, "positive_class": "yes"})


def test_an_unknown_task_is_rejected() -> None:
    with pytest.raises(ValidationError, match=r"'binary', 'multiclass' or 'regression'"):
        DataConfig.model_validate(DATA | {"task": "ranking"})


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("postgresql://mlflow:s3cret@db.example.com:5432/mlflow", "postgresql://mlflow:***@db.example.com:5432/mlflow"),
        ("https://user:tok%40en@mlflow.example.com/path?x=1", "https://user:***@mlflow.example.com/path?x=1"),
        ("http://u:p@[::1]:5000", "http://u:***@[::1]:5000"),
        ("https://:token@host.example.com", "https://:***@host.example.com"),
        ("https://mlflow.example.com:5000", "https://mlflow.example.com:5000"),
        ("sqlite:///mlflow.db", "sqlite:///mlflow.db"),
    ],
)
def test_redact_hides_passwords_in_uris(uri: str, shown: str) -> None:
    assert redact(uri) == shown
    assert "s3cret" not in redact(uri) and "token" not in redact(uri).replace("***", "")


def test_tracking_uri_defaults_to_the_local_database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DVC_ROOT", raising=False)
    assert tracking_uri() == "sqlite:///mlflow.db"
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))  # a stage, maybe in a queued experiment's temporary copy
    assert tracking_uri() == f"sqlite:///{tmp_path.resolve()}/mlflow.db"  # the project's file, not the copy's
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking_uri() == "http://127.0.0.1:5000"


def test_check_toolkit_version(tmp_path: Path) -> None:
    check_toolkit_version(Params(toolkit_version=lockstep.__version__))  # the installed version: fine
    check_toolkit_version(Params())  # not pinned: nothing to compare
    path = tmp_path / "params.yaml"
    path.write_text("toolkit_version: 0.0.1\n")
    with pytest.raises(StageError) as err:
        check_toolkit_version(load_params(path))
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'params.yaml'}: toolkit_version 0.0.1 but lockstep-mlops ")
    assert f"lockstep-mlops {lockstep.__version__} is installed" in message
    assert "pin the same version in pyproject.toml and conf/config.yaml" in message


def test_flatten_and_one_line() -> None:
    assert flatten({"a": {"b": 1, "c": {"d": [2]}}, "e": None}) == {"a.b": 1, "a.c.d": [2], "e": None}
    assert one_line("first\n  second\tthird") == "first second third"
    assert one_line("x" * 300, limit=10) == "x" * 9 + "…"


def test_run_turns_a_stage_error_into_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    def broken() -> None:
        raise StageError("data/raw.csv: not found; run `dvc pull`")

    assert run(broken, "prepare") == 1
    assert capsys.readouterr().err == "error: prepare: data/raw.csv: not found; run `dvc pull`\n"
    assert run(broken) == 1  # without a name: the last part of the stage's module
    assert capsys.readouterr().err.startswith("error: test_config: ")
    assert run(lambda: None) == 0
