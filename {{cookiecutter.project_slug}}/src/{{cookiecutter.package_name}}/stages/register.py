"""Stage register: log the evaluated model to MLflow, register it with its lineage, move the alias.
{%- if cookiecutter.include_llm == "yes" %}

Each prompt goes to the MLflow Prompt Registry the same way, and the model version and the
prompt versions evaluated together are recorded on each other and in the registration record.

Idempotent: a model whose bytes are already registered gets no new version, nor does a prompt
whose content is unchanged; the alias is simply pointed at the existing version.
{%- else %}

Idempotent: a model whose bytes are already registered gets no new version; the alias is
simply pointed at the existing one.
{%- endif %}

The tracking URI comes from MLFLOW_TRACKING_URI, else the SQLite file mlflow.db at the
project root.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from {{ cookiecutter.package_name }}.config import (
    DataConfig,
    PathsConfig,
{%- if cookiecutter.include_llm == "yes" %}
    PromptsConfig,
{%- endif %}
    RegisterConfig,
    StageError,
    flatten,
    one_line,
    read_params,
    run_stage,
    section,
    tracking_uri,
    write_atomic,
)

if TYPE_CHECKING:
    import argparse

INPUT_EXAMPLE_ROWS = 5
LINEAGE_SECTIONS = ("data", "model")  # the parameters that determine the model


def file_md5(path: Path) -> str:
    """MD5 of a file's bytes: the same hash DVC records for it in dvc.lock."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def params_hash(params: dict[str, Any]) -> str:
    """A stable hash of the parameters that determine the model, independent of key order."""
    lineage = {name: params.get(name) for name in LINEAGE_SECTIONS}
    return hashlib.sha256(json.dumps(lineage, sort_keys=True, default=str).encode()).hexdigest()[:16]


def git_state() -> tuple[str, bool]:
    """The commit the run started from and whether the work tree had uncommitted changes."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown", False
    return commit, bool(dirty)


def lineage_tags(params: dict[str, Any], data: DataConfig, paths: PathsConfig) -> dict[str, str]:
    """Tags that tie a model version to the exact code, data and parameters it came from."""
    commit, dirty = git_state()
    return {
        "git_commit": commit,
        "git_dirty": str(dirty).lower(),
        "data_md5": file_md5(data.path),
        "params_hash": params_hash(params),
        "model_md5": file_md5(paths.model),
    }


def find_version(client: Any, name: str, model_md5: str) -> Any | None:
    """The registered version holding exactly these model bytes, if there is one."""
    versions = client.search_model_versions(f"name = '{name}' and tag.model_md5 = '{model_md5}'")
    return min(versions, key=lambda v: int(v.version)) if versions else None


def register(params: dict[str, Any], data: DataConfig, paths: PathsConfig, reg: RegisterConfig) -> dict[str, Any]:
    """Register the model (or find it already registered), point the alias at it, return the record."""
    import logging

    import joblib
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature

    # Keep the stage's output to what a person needs; MLflow's own warnings still show.
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    # We pass pip_requirements ourselves, so MLflow's note about pip's own version is noise.
    logging.getLogger("mlflow.utils.environment").setLevel(logging.ERROR)
    mlflow.set_tracking_uri(tracking_uri())
    client = mlflow.MlflowClient()
    tags = lineage_tags(params, data, paths)

    version = find_version(client, reg.model_name, tags["model_md5"])
    if version is None:
        import sklearn
        import skops.io

        model = joblib.load(paths.model)
        # MLflow stores sklearn models with skops, which refuses types it has not been told to
        # trust. This model was just trained by this pipeline, so the types it contains are ours.
        trusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
        test = pd.read_csv(paths.test)
        example = test.drop(columns=[data.target]).head(INPUT_EXAMPLE_ROWS)
        metrics = json.loads(paths.metrics.read_text(encoding="utf-8"))
        mlflow.set_experiment(reg.experiment)
        with mlflow.start_run(tags=tags):
            mlflow.log_params(flatten({name: params.get(name) for name in LINEAGE_SECTIONS}))
            mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                signature=infer_signature(example, model.predict(example)),
                input_example=example,
                pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
                skops_trusted_types=trusted,
            )
        # Tags go in with the version itself, so no version ever exists without its lineage.
        version = mlflow.register_model(info.model_uri, reg.model_name, tags=tags)
    client.set_registered_model_alias(reg.model_name, reg.alias, version.version)
    return {
        "model_name": reg.model_name,
        "version": int(version.version),
        "alias": reg.alias,
        "run_id": version.run_id,
        "model_uri": f"models:/{reg.model_name}/{version.version}",
        **tags,
    }


{%- if cookiecutter.include_llm == "yes" %}


def register_prompts(prompts: PromptsConfig, paths: PathsConfig, record: dict[str, Any]) -> dict[str, int]:
    """Register every prompt, then record on both sides which versions were evaluated together."""
    import mlflow

    from {{ cookiecutter.package_name }}.prompts import load_prompt_file, register_prompt

    tags = {"git_commit": record["git_commit"], "git_dirty": record["git_dirty"]}
    versions = {
        name: register_prompt(load_prompt_file(paths.prompt_file(name)), prompts.alias, tags) for name in prompts.names
    }
    client = mlflow.MlflowClient()
    for name, version in versions.items():
        client.set_model_version_tag(record["model_name"], str(record["version"]), f"prompt.{name}", str(version))
        mlflow.genai.set_prompt_version_tag(name, version, "model_version", record["model_uri"])
    return versions
{%- endif %}


def _main(args: argparse.Namespace) -> None:
    params = read_params(args.params)
    data = section(params, "data", DataConfig, args.params)
    paths = section(params, "paths", PathsConfig, args.params)
    reg = section(params, "register", RegisterConfig, args.params)
{%- if cookiecutter.include_llm == "yes" %}
    prompts = section(params, "prompts", PromptsConfig, args.params)
{%- endif %}
    # A tracking server that is down should fail this stage in seconds, not after minutes of retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    from mlflow.exceptions import MlflowException

    try:
        record = register(params, data, paths, reg)
{%- if cookiecutter.include_llm == "yes" %}
        record["prompts"] = register_prompts(prompts, paths, record)
        record["prompt_alias"] = prompts.alias
{%- endif %}
    except MlflowException as exc:
        raise StageError(
            f"MLflow at {tracking_uri()}: {one_line(exc.message)}; start the server, or unset MLFLOW_TRACKING_URI"
            " to use the local mlflow.db"
        ) from None
    write_atomic(paths.registration, json.dumps(record, indent=2) + "\n")
    print(f"register: {record['model_uri']} (@{record['alias']}) run {record['run_id']}")
{%- if cookiecutter.include_llm == "yes" %}
    for name, version in record["prompts"].items():
        print(f"register: prompts:/{name}/{version} (@{prompts.alias})")
{%- endif %}


def main(argv: list[str] | None = None) -> int:
    return run_stage("register", __doc__, _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
