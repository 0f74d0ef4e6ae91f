"""params.yaml and settings.yaml are what DVC's Hydra composer makes of conf/, and `--check` catches a stale one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from lockstep import cli, params
from lockstep.config import DataConfig, ModelConfig, StageError, load_params

CONFIG = """\
defaults:
  - data: breast_cancer
  - model: logistic_regression
  - _self_
toolkit_version: "0.0.0"
paths:
  prepared: data/prepared
  model: models/model.joblib
  metrics: reports/metrics.json
  plots: reports/plots
  registration: reports/registration.json
"""


@pytest.fixture
def conf(tmp_path: Path, template: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project root in tmp_path whose conf/ holds the template's data and model configs."""
    for group in ("data", "model"):  # Jinja-free; the template's config.yaml is not
        shutil.copytree(template / "conf" / group, tmp_path / "conf" / group)
    (tmp_path / "conf" / "config.yaml").write_text(CONFIG, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path / "conf"


def test_compose_follows_the_defaults_and_the_overrides(conf: Path) -> None:
    composed = yaml.safe_load(params.compose())
    assert list(composed) == ["data", "model", "toolkit_version", "paths"]
    assert DataConfig.model_validate(composed["data"]).target == "diagnosis"
    assert composed["model"]["name"] == "logistic_regression"
    overridden = yaml.safe_load(params.compose(overrides=["model.params.C=0.5", "data.seed=7"]))
    assert overridden["model"]["params"]["C"] == 0.5 and overridden["data"]["seed"] == 7


def test_every_model_config_composes(conf: Path) -> None:
    for config in sorted((conf / "model").glob("*.yaml")):
        text = params.compose(overrides=[f"model={config.stem}"])
        assert f"name: {config.stem}\n" in text
        ModelConfig.model_validate(yaml.safe_load(text)["model"])


def test_compose_errors_are_one_line(conf: Path, tmp_path: Path) -> None:
    with pytest.raises(StageError, match=r"conf/: cannot compose config.yaml: .*no_such_model"):
        params.compose(overrides=["model=no_such_model"])
    with pytest.raises(StageError, match=r"elsewhere/config.yaml: not found; run this in the project's root"):
        params.compose(tmp_path / "elsewhere")


def test_check_fails_on_a_stale_file(conf: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "params.yaml").write_text("data: {}\n")
    assert cli.main(["params", "--check"]) == 1
    err = capsys.readouterr().err
    assert "error: params.yaml is stale with respect to conf/; run `make params` and commit it" in err
    assert "-data: {}" in err  # the diff says what differs
    assert cli.main(["params"]) == 0
    assert params.stale() == {}
    assert (tmp_path / "params.yaml").read_text() == params.compose()


def test_the_command_composes_and_checks(conf: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "params.yaml").unlink(missing_ok=True)
    assert cli.main(["params", "--check"]) == 1  # no params.yaml at all is stale too
    assert cli.main(["params", "model=random_forest"]) == 0
    assert "params.yaml composed from conf/" in capsys.readouterr().out
    assert yaml.safe_load((tmp_path / "params.yaml").read_text())["model"]["name"] == "random_forest"
    assert cli.main(["params", "--check"]) == 1  # conf/ itself still says logistic_regression
    assert cli.main(["params"]) == 0
    assert cli.main(["params", "--check"]) == 0


SETTINGS = """\
defaults:
  - gates: default
  - _self_
"""


@pytest.fixture
def with_settings(conf: Path, template: Path) -> Path:
    """conf/ with a settings root composing the template's gates."""
    shutil.copytree(template / "conf" / "gates", conf / "gates")
    text = (conf / "gates" / "default.yaml").read_text(encoding="utf-8")
    (conf / "gates" / "default.yaml").write_text(text.split("{%-")[0], encoding="utf-8")  # the Jinja-free part
    (conf / "settings.yaml").write_text(SETTINGS, encoding="utf-8")
    return conf


def test_settings_are_composed_apart_from_the_parameters(
    with_settings: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rule = {"metric": "reports/metrics.json:accuracy", "direction": "higher", "min": 0.99}
    one_rule = "gates.rules=[{metric:'reports/metrics.json:accuracy',direction:higher,min:0.99}]"
    assert cli.main(["params", "model=random_forest", one_rule]) == 0
    assert "params.yaml and settings.yaml composed from conf/" in capsys.readouterr().out
    composed = yaml.safe_load((tmp_path / "params.yaml").read_text())
    assert "gates" not in composed and composed["model"]["name"] == "random_forest"
    assert yaml.safe_load((tmp_path / "settings.yaml").read_text()) == {"gates": {"rules": [rule]}}
    assert load_params().gates.rules[0].min == 0.99 and load_params().settings_source == Path("settings.yaml")

    assert cli.main(["params"]) == 0  # conf/ again: the template's rules
    assert len(load_params().gates.rules) > 1
    (tmp_path / "settings.yaml").write_text(yaml.safe_dump({"gates": {"rules": [rule]}}))
    assert cli.main(["params", "--check"]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == (
        "error: settings.yaml is stale with respect to conf/; run `make params` and commit it"
    )


def test_a_section_in_both_files_or_in_the_wrong_one_is_an_error(with_settings: Path, tmp_path: Path) -> None:
    assert cli.main(["params"]) == 0
    composed = yaml.safe_load((tmp_path / "params.yaml").read_text())
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(composed | {"gates": {"rules": []}}))
    with pytest.raises(StageError, match=r"^params.yaml: section 'gates' is also in settings.yaml; keep it only"):
        load_params()
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(composed))
    (tmp_path / "settings.yaml").write_text("gates:\n  rules: []\ndata:\n  seed: 1\n")
    with pytest.raises(StageError, match=r"^settings.yaml: section 'data' does not belong here"):
        load_params()
    (tmp_path / "settings.yaml").write_text("gates:\n  rules: 7\n")
    with pytest.raises(
        StageError, match=r"^settings.yaml: gates.rules: .*; fix it in conf/gates and run `make params`"
    ):
        load_params()


def test_a_project_without_a_settings_root_keeps_its_settings_in_params(conf: Path, tmp_path: Path) -> None:
    assert cli.main(["params"]) == 0
    assert not (tmp_path / "settings.yaml").exists()
    composed = yaml.safe_load((tmp_path / "params.yaml").read_text())
    rule = {"metric": "reports/metrics.json:accuracy", "direction": "higher", "min": 0.99}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(composed | {"gates": {"rules": [rule]}}))
    assert load_params().gates.rules[0].min == 0.99 and load_params().settings_source is None
    with pytest.raises(StageError, match=r"conf/settings.yaml: not found; gates=strict has nothing to override"):
        params.write(["gates=strict"])
