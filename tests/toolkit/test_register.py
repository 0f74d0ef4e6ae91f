"""Stage register: one version per distinct model, lineage tags, alias, idempotent re-runs."""

import json
from pathlib import Path

import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.stages import evaluate, prepare, register, train


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)  # artifacts land under tmp_path/mlruns
    return uri


def test_register_is_idempotent_and_tags_lineage(registry: str, params_file: Path, params: dict) -> None:
    import mlflow

    for stage in (prepare, train, evaluate, register):
        assert stage.main(["--params", str(params_file)]) == 0
    record = json.loads(Path(params["paths"]["registration"]).read_text())
    assert record["version"] == 1 and record["alias"] == "challenger"
{%- if cookiecutter.include_llm == "yes" %}
    assert record["prompts"] == {"summarize_ticket": 1, "triage_ticket": 1}
{%- endif %}

    # When register runs again for the same model bytes, no new version appears
    assert register.main(["--params", str(params_file)]) == 0
    client = mlflow.MlflowClient(registry)
    name = params["register"]["model_name"]
    assert [int(v.version) for v in client.search_model_versions(f"name = '{name}'")] == [1]

    version = client.get_model_version_by_alias(name, "challenger")
    assert version.tags["data_md5"] == register.file_md5(Path(params["data"]["path"]))
    assert version.tags["model_md5"] == record["model_md5"]
    assert set(version.tags) >= {"git_commit", "params_hash"}
{%- if cookiecutter.include_llm == "yes" %}
    assert version.tags["prompt.summarize_ticket"] == "1"
    prompt = mlflow.genai.load_prompt("prompts:/triage_ticket@challenger")
    assert prompt.tags["model_version"] == f"models:/{name}/1"
{%- endif %}
    model = mlflow.pyfunc.load_model(f"models:/{name}@challenger")
    test = pd.read_csv(Path(params["paths"]["prepared"]) / "test.csv").drop(columns=["label"])
    assert set(model.predict(test)) <= {0, 1}
    assert model.metadata.get_input_schema().input_names() == list(test.columns)

    # A different model gets a new version and the alias moves to it
    params["model"]["params"]["C"] = 0.01
    import yaml

    params_file.write_text(yaml.safe_dump(params))
    assert train.main(["--params", str(params_file)]) == 0
    assert register.main(["--params", str(params_file)]) == 0
    assert int(client.get_model_version_by_alias(name, "challenger").version) == 2
