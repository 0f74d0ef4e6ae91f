"""A registry with something to deploy, shared by the serving tests: in a SQLite MLflow under a
temporary directory, model versions 1 (champion) and 2 (challenger) of a tiny scikit-learn
model, and two versions of each prompt (1 champion, 2 challenger). The LLM is the fake
OpenAI-compatible server of conftest; nothing leaves loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

import lockstep

from .conftest import TEMPLATE, FakeLLMServer

MODEL = "serve_test"
PROMPTS = ["summarize_ticket", "triage_ticket"]


@dataclass
class Deployed:
    root: Path
    uri: str
    params_file: Path
    rows: list[dict[str, float]]
    llm: FakeLLMServer


def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    labels = np.array([1, 0] * 30)
    return pd.DataFrame({"f1": (labels * 3 - 1.5) + rng.normal(0, 1, 60), "f2": rng.normal(0, 1, 60), "y": labels})


def build_registry(root: Path, uri: str) -> None:
    import mlflow
    import sklearn
    from mlflow.models import infer_signature
    from sklearn.dummy import DummyClassifier
    from sklearn.linear_model import LogisticRegression

    from lockstep.prompts import load_prompt_file, register_prompt

    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(MODEL)  # not whichever experiment an earlier test in this process left active
    client = mlflow.MlflowClient()
    data = frame()
    features, labels = data[["f1", "f2"]], data["y"]
    # version 1: a constant model (champion); version 2: a real one (challenger)
    for model in (DummyClassifier(strategy="constant", constant=0), LogisticRegression()):
        model.fit(features, labels)
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                signature=infer_signature(features, model.predict(features)),
                pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
                serialization_format="cloudpickle",
            )
        # what `make promote` leaves on a version that passed: its lineage, and the decision that allowed it
        passed = {"git_commit": "c0ffee", "git_dirty": "false", "decision": "allow", "decision.gate_head": "c0ffee"}
        mlflow.register_model(info.model_uri, MODEL, tags=passed)
    client.set_registered_model_alias(MODEL, "champion", "1")
    client.set_registered_model_alias(MODEL, "challenger", "2")
    for name in PROMPTS:
        prompt = load_prompt_file(TEMPLATE / "prompts" / f"{name}.yaml")
        register_prompt(prompt, "champion", {"git_commit": "test"})
        changed = prompt.model_copy(
            update={"model_settings": prompt.model_settings.model_copy(update={"max_tokens": 64})}
        )
        register_prompt(changed, "challenger", {"git_commit": "test"})
    mlflow.set_tracking_uri(None)


@pytest.fixture(scope="module")
def registry_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    root = tmp_path_factory.mktemp("deploy")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        build_registry(root, uri)
    yield root, uri


def deploy_params(llm_url: str, **deploy: Any) -> dict[str, Any]:
    return {
        "toolkit_version": lockstep.__version__,
        "register": {"model_name": MODEL, "experiment": MODEL, "alias": "challenger"},
        "prompts": {"names": PROMPTS, "alias": "challenger", "banned_phrases": []},
        "llm": {"backend": "openai", "model": "fake", "base_url": llm_url, "api_key_env": "LOCKSTEP_TEST_KEY"},
        "deploy": {"lock_file": "deploy.lock.json", "decisions": "deploy/decisions.jsonl", **deploy},
    }


@pytest.fixture
def deployed(
    registry_dir: tuple[Path, str], fake_llm: FakeLLMServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Deployed:
    """The project root (tmp_path, the current directory) with params.yaml; the registry shared."""
    _, uri = registry_dir
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("LOCKSTEP_TEST_KEY", fake_llm.key)
    monkeypatch.chdir(tmp_path)
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(deploy_params(fake_llm.url)), encoding="utf-8")
    rows = json.loads(frame()[["f1", "f2"]].head(4).to_json(orient="records"))
    return Deployed(tmp_path, uri, params_file, rows, fake_llm)
