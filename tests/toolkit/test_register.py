"""`lockstep register` and `lockstep promote`: one version per distinct model, lineage tags, aliases,
prompts registered beside the model, idempotent re-runs. MLflow runs on a SQLite file in tmp_path."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from lockstep import cli, registry
from lockstep.config import StageError, load_params
from lockstep.io import file_md5


class AboveZero:
    """A model that is not scikit-learn's: registered as a pyfunc model around its joblib file."""

    def predict(self, features: pd.DataFrame) -> pd.Series:
        return (features["f1"] > 0).astype(int)


@pytest.fixture
def tracking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)  # artifacts land under tmp_path
    yield uri
    import mlflow

    mlflow.set_tracking_uri(None)  # no later test inherits this database


def test_register_is_idempotent_and_tags_lineage(
    tracking: str, pipeline, params_file: Path, params: dict, save_params, promotable, capsys
) -> None:
    import joblib
    import mlflow

    pipeline()
    assert cli.main(["register", "--params", str(params_file)]) == 0
    record = json.loads(Path(params["paths"]["registration"]).read_text())
    name = params["register"]["model_name"]
    assert record["version"] == 1 and record["alias"] == "challenger"
    assert record["model_uri"] == f"models:/{name}/1"
    assert record["prompts"] == {"summarize_ticket": 1, "triage_ticket": 1} and record["prompt_alias"] == "challenger"
    out = capsys.readouterr().out
    assert f"register: models:/{name}/1 (@challenger) run " in out
    assert "register: prompts:/triage_ticket/1 (@challenger)" in out

    # When register runs again for the same model bytes, no new version appears
    assert registry.register(load_params(params_file))
    client = mlflow.MlflowClient(tracking)
    assert [int(v.version) for v in client.search_model_versions(f"name = '{name}'")] == [1]
    assert json.loads(Path(params["paths"]["registration"]).read_text()) == record

    version = client.get_model_version_by_alias(name, "challenger")
    assert version.tags["data_md5"] == file_md5(Path(params["data"]["path"]))
    assert version.tags["model_md5"] == record["model_md5"] == file_md5(Path(params["paths"]["model"]))
    assert version.tags["params_hash"] == registry.params_hash(params) == record["params_hash"]
    assert set(version.tags) >= {"git_commit", "git_dirty"}
    assert version.tags["prompt.summarize_ticket"] == "1"
    prompt = mlflow.genai.load_prompt("prompts:/triage_ticket@challenger")
    assert prompt.tags["model_version"] == f"models:/{name}/1"
    assert prompt.tags["git_commit"] == record["git_commit"]
    run = client.get_run(record["run_id"])
    assert run.data.params["model.params.C"] == "1.0" and run.data.metrics["accuracy"] > 0.5

    model = mlflow.pyfunc.load_model(f"models:/{name}@challenger")
    test = pd.read_parquet(Path(params["paths"]["prepared"]) / "test.parquet").drop(columns=["label"])
    assert set(model.predict(test)) <= {0, 1}
    assert model.metadata.get_input_schema().input_names() == list(test.columns)

    # A different model gets a new version and the alias moves to it
    params["model"]["params"]["C"] = 0.01
    save_params()
    pipeline(("train", "evaluate"))
    assert registry.register(load_params(params_file))
    assert int(client.get_model_version_by_alias(name, "challenger").version) == 2
    assert client.get_model_version(name, "2").tags["params_hash"] != version.tags["params_hash"]

    # Promotion moves `champion` to what the record names: model and prompts together
    promotable()  # a passing gate, DVC-tracked data from an allowed source: the policies allow it
    assert cli.main(["promote", "--params", str(params_file)]) == 0
    assert f"promote: @champion -> models:/{name}/2, prompts:/summarize_ticket/1" in capsys.readouterr().out
    assert int(client.get_model_version_by_alias(name, "champion").version) == 2
    assert mlflow.genai.load_prompt("prompts:/summarize_ticket@champion").version == 1
    champion = registry.load_model(name)
    assert list(champion.predict(test)) == list(joblib.load(params["paths"]["model"]).predict(test))

    # A model that is not scikit-learn's is registered as a pyfunc model of its joblib file
    joblib.dump(AboveZero(), params["paths"]["model"])
    del params["prompts"]  # a project without the prompt track registers the model alone
    save_params()
    assert registry.register(load_params(params_file))
    record = json.loads(Path(params["paths"]["registration"]).read_text())
    assert record["version"] == 3 and "prompts" not in record
    plain = registry.load_model(name, "challenger")
    assert list(plain.predict(test)) == list(AboveZero().predict(test))


def test_a_registration_cut_short_moves_no_alias_and_resumes_without_a_duplicate(
    tracking: str, pipeline, params_file: Path, params: dict, save_params, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    from mlflow.exceptions import MlflowException

    pipeline()
    assert registry.register(load_params(params_file))
    record_file = Path(params["paths"]["registration"])
    first = record_file.read_text()
    params["model"]["params"]["C"] = 0.01
    save_params()
    pipeline(("train", "evaluate"))

    # The server goes away once the new version exists, before it is linked to its prompts
    def gone(*args, **kwargs):
        raise MlflowException("API request to http://127.0.0.1:5000 failed with exception Connection refused")

    with monkeypatch.context() as patch:
        patch.setattr(mlflow.MlflowClient, "set_model_version_tag", gone)
        with pytest.raises(StageError, match=r"^MLflow at .*Connection refused; start the server"):
            registry.register(load_params(params_file))
    client = mlflow.MlflowClient(tracking)
    name = params["register"]["model_name"]
    assert int(client.get_model_version_by_alias(name, "challenger").version) == 1, "the alias waits for the lineage"
    assert record_file.read_text() == first, "no record of a registration that did not complete"
    md5 = file_md5(Path(params["paths"]["model"]))
    assert client.get_model_version(name, "2").tags["model_md5"] == md5  # the version came with its lineage tags

    # Run again with the server back: the same version is completed, none is added
    assert registry.register(load_params(params_file))
    assert sorted(int(v.version) for v in client.search_model_versions(f"name = '{name}'")) == [1, 2]
    version = client.get_model_version_by_alias(name, "challenger")
    assert int(version.version) == 2 and version.tags["prompt.summarize_ticket"] == "1"
    assert json.loads(record_file.read_text())["version"] == 2


def test_register_refuses_another_toolkit_version(tracking: str, params: dict, save_params, capsys) -> None:
    params["toolkit_version"] = "0.0.1"
    params_file = save_params()
    assert cli.main(["register", "--params", str(params_file)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: register: {params_file}: toolkit_version 0.0.1 but lockstep-mlops ")
    assert not (Path(tracking.removeprefix("sqlite:///"))).exists()  # refused before touching MLflow


def test_an_unreachable_tracking_server_fails_fast_without_its_password(
    params: dict, params_file: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, refused_port: int
) -> None:
    for name in ("model", "prepared"):  # register hashes these before it calls the server
        Path(params["paths"][name]).parent.mkdir(parents=True, exist_ok=True)
    Path(params["paths"]["model"]).write_bytes(b"model")
    port = refused_port
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://mlflow:s3cret@127.0.0.1:{port}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # the user's own setting wins over the toolkit's
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StageError) as err:
        registry.register(load_params(params_file))
    message = str(err.value)
    assert message.startswith(f"MLflow at http://mlflow:***@127.0.0.1:{port}: ")
    assert message.endswith("start the server, or unset MLFLOW_TRACKING_URI to use the local mlflow.db")
    assert "s3cret" not in message and "\n" not in message


def test_promote_needs_a_registration_record(params_file: Path, capsys) -> None:
    assert cli.main(["promote", "--params", str(params_file)]) == 1
    assert "registration.json: not found; run the pipeline first (make repro)" in capsys.readouterr().err


def test_promote_against_an_unreachable_server_fails_in_one_line(
    params: dict, params_file: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys
) -> None:
    record = Path(params["paths"]["registration"])
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"model_name": "toolkit_test", "version": 1, "model_uri": "models:/toolkit_test/1"}))
    with socket.socket() as held:  # bound, never listening, and held: refused, and no one else takes the port
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://ops:hunter2@127.0.0.1:{port}")
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        monkeypatch.setenv("CI", "true")  # the shared registry's aliases move in CI only
        assert cli.main(["promote", "--params", str(params_file)]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: promote: MLflow at http://ops:***@127.0.0.1:{port}: ")
    assert line.endswith("start the server, or unset MLFLOW_TRACKING_URI to use the local mlflow.db")
    assert "hunter2" not in line


def test_a_person_cannot_promote_on_the_shared_registry(params: dict, params_file: Path, monkeypatch, capsys) -> None:
    record = Path(params["paths"]["registration"])
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"model_name": "toolkit_test", "version": 1, "model_uri": "models:/toolkit_test/1"}))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://ops:hunter2@mlflow.internal:5000")
    monkeypatch.delenv("CI", raising=False)
    assert cli.main(["promote", "--params", str(params_file)]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line == (
        "error: promote: @champion is moved by CI only on a shared registry (mlflow.internal:5000): push to main and"
        " let the pipeline promote, or unset MLFLOW_TRACKING_URI to work in the local mlflow.db"
    )


def test_params_hash_follows_data_and_model_only(params: dict) -> None:
    before = registry.params_hash(params)
    assert registry.params_hash({**params, "register": {"alias": "other"}, "paths": {}}) == before
    assert registry.params_hash({**params, "model": {**params["model"], "scale": False}}) != before
    reordered = {"model": params["model"], "data": dict(reversed(list(params["data"].items())))}
    assert registry.params_hash(reordered) == before


def test_a_clean_registration_takes_over_a_dirty_or_foreign_lineage(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # no repository: no commit descends from another by outputs only
    assert registry.relineage({"git_dirty": "true", "git_commit": "a"}, "a")  # registered before committing
    assert not registry.relineage({"git_dirty": "false", "git_commit": "a"}, "a")  # the decision on it stands
    assert registry.relineage({"git_dirty": "false", "git_commit": "a"}, "b")  # other inputs (a merge)
