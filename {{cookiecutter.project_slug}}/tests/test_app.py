"""The app's command line: each mistake is one line that names it, before any model is loaded."""
{% if cookiecutter.include_llm == "yes" %}
import shutil
{%- endif %}
from pathlib import Path

import pytest
{%- if cookiecutter.include_llm == "yes" %}
from conftest import PROJECT_ROOT
{%- endif %}

from {{ cookiecutter.package_name }} import app


@pytest.fixture
def registry(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An empty MLflow registry in workdir."""
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def error_lines(capsys: pytest.CaptureFixture) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if "error" in line]


def test_a_missing_csv_is_named(registry: str, capsys: pytest.CaptureFixture) -> None:
    assert app.main(["predict", "missing.csv"]) == 1
    (line,) = error_lines(capsys)
    assert line.startswith("error: app: missing.csv: not found")
    assert not Path("mlflow.db").exists(), "the registry is not opened for a file that is not there"


def test_an_unregistered_model_says_how_to_register_it(registry: str, capsys: pytest.CaptureFixture) -> None:
    assert app.main(["--alias", "challenger", "predict", "raw.csv"]) == 1
    (line,) = error_lines(capsys)
    assert line.startswith(f"error: app: MLflow at {registry}: ")
    assert "register it first (make repro / make register)" in line
{%- if cookiecutter.include_llm == "yes" %}


def test_a_variable_without_a_value_is_a_usage_error(registry: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        app.main(["answer", "triage_ticket", "--var", "ticket"])
    assert exit_.value.code == 2
    assert error_lines(capsys)[-1].endswith("error: --var 'ticket': expected NAME=VALUE")


def test_a_missing_prompt_variable_is_named(registry: str, capsys: pytest.CaptureFixture) -> None:
    shutil.copytree(PROJECT_ROOT / "prompts", "prompts")
    assert app.main(["answer", "triage_ticket"]) == 1
    assert error_lines(capsys) == ["error: app: prompt triage_ticket: no value for variable(s) ticket"]


def test_an_unknown_prompt_is_named(registry: str, capsys: pytest.CaptureFixture) -> None:
    assert app.main(["answer", "no_such_prompt", "--var", "a=b"]) == 1
    (line,) = error_lines(capsys)
    assert line.startswith("error: app: prompts/no_such_prompt.yaml: not found")
{%- endif %}
