"""The MLflow registry: register what the pipeline evaluated, with its lineage; promote; load by alias.

    lockstep register        # the register stage of dvc.yaml (make register)
    lockstep promote         # move `champion` to the versions in reports/registration.json, if the policies allow

register logs the evaluated model and registers it with tags tying it to the exact code, data
and parameters (`git_commit`, `git_dirty`, `data_md5`, `params_hash`, `model_md5`), and moves
the alias (`challenger`). Each prompt goes to the Prompt Registry the same way, and the model
version and the prompt versions evaluated together are recorded on each other and in the
registration record. The alias moves last and the record is written last, so a registration
cut short (the server gone mid-way) leaves neither pointing at it. Idempotent: a model whose bytes
are already registered gets no new version, nor does a prompt whose content is unchanged; the
alias is simply pointed at it, so a re-run completes a registration cut short.

A scikit-learn model is logged with MLflow's sklearn flavour; any other model saved with joblib
that has `predict(DataFrame)` is logged as a pyfunc model that loads that file.

The tracking URI comes from MLFLOW_TRACKING_URI, else the SQLite file mlflow.db at the project
root. A tracking server that does not answer fails the command in seconds, not minutes.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

from lockstep import aliases, classes, importance
from lockstep.config import (
    DataConfig,
    Params,
    PathsConfig,
    PromptsConfig,
    RegisterConfig,
    StageError,
    check_toolkit_version,
    flatten,
)
from lockstep.io import data_md5, file_md5, write_json
from lockstep.tracking import mlflow_client
from lockstep.vcs import outputs_only, pipeline_outputs

INPUT_EXAMPLE_ROWS = 5
LINEAGE_SECTIONS = ("data", "model")  # the parameters that determine the model


def params_hash(params: dict[str, Any]) -> str:
    """A stable hash of the parameters that determine the model, independent of key order."""
    lineage = {name: params.get(name) for name in LINEAGE_SECTIONS}
    return hashlib.sha256(json.dumps(lineage, sort_keys=True, default=str).encode()).hexdigest()[:16]


def git_state() -> tuple[str, bool]:
    """The commit the run started from, and whether the work tree differs from it in anything but what
    the pipeline itself rewrites (dvc.lock, metrics, plots, models): code, conf, params, data pointers."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "-z", "--untracked-files=no"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown", False
    changed = [entry[3:] for entry in status.split("\0") if len(entry) > 3]
    outputs = pipeline_outputs() if changed else set()
    inputs = [p for p in changed if not any(p == o or p.startswith(o.rstrip("/") + "/") for o in outputs)]
    return commit, bool(inputs)


def lineage_tags(params: dict[str, Any], data: DataConfig, paths: PathsConfig) -> dict[str, str]:
    """Tags that tie a model version to the exact code, data and parameters it came from."""
    commit, dirty = git_state()
    return {
        "git_commit": commit,
        "git_dirty": str(dirty).lower(),
        "data_md5": data_md5(data.path),
        "params_hash": params_hash(params),
        "model_md5": file_md5(paths.model),
        **classes.tag(data.task, data.target, data.positive_class, paths.test),
    }


def find_version(client: Any, name: str, model_md5: str) -> Any | None:
    """The registered version holding exactly these model bytes, if there is one."""
    versions = client.search_model_versions(f"name = '{name}' and tag.model_md5 = '{model_md5}'")
    return min(versions, key=lambda v: int(v.version)) if versions else None


def joblib_model() -> Any:
    """pyfunc wrapper for a model that is not scikit-learn's: the joblib file, and its predict().

    MLflow accepts only a PythonModel subclass. The class is defined here, when first needed, so
    importing this module does not import MLflow; being local, it is pickled by value and so
    loads where lockstep is not installed.
    """
    from mlflow.pyfunc import PythonModel
    from mlflow.types.type_hints import TypeFromExample

    class JoblibModel(PythonModel):
        def load_context(self, context: Any) -> None:
            import joblib

            self.model = joblib.load(context.artifacts["model"])

        def predict(self, context: Any, model_input: Any, params: dict[str, Any] | None = None) -> Any:
            return self.model.predict(model_input)

        # MLflow reads the input's type hint as its schema: "as the input example" (DataFrame) is the one
        predict.__annotations__["model_input"] = TypeFromExample

    return JoblibModel()


def log_model(model: Any, model_file: Path, example: Any) -> Any:
    """Log the model with the flavour that fits it; returns MLflow's ModelInfo."""
    import mlflow
    from mlflow.models import infer_signature
    from sklearn.base import BaseEstimator

    signature = infer_signature(example, model.predict(example))
    if isinstance(model, BaseEstimator):
        import sklearn
        import skops.io

        # MLflow stores sklearn models with skops, which refuses types it has not been told to
        # trust. This model was just trained by this pipeline, so the types it contains are ours.
        trusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
        return mlflow.sklearn.log_model(
            model,
            name="model",
            signature=signature,
            input_example=example,
            pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
            skops_trusted_types=trusted,
        )
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=joblib_model(),
        artifacts={"model": str(model_file)},
        signature=signature,
        input_example=example,
        pip_requirements=["joblib"],
    )


def use_experiment(client: Any, name: str) -> None:
    """Make `name` the active experiment. Created in a queued experiment's temporary copy (DVC_ROOT is
    not the working directory), its artifacts go under the project's mlruns/, which outlives the copy."""
    import mlflow

    from lockstep.config import project_root, tracking_uri

    # (mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI, so the URI itself tells the project's own file)
    local = tracking_uri() == f"sqlite:///{project_root() / 'mlflow.db'}"
    if local and client.get_experiment_by_name(name) is None and project_root() != Path.cwd().resolve():
        client.create_experiment(name, artifact_location=str(project_root() / "mlruns" / name))
    mlflow.set_experiment(name)


def relineage(current: dict[str, str], commit: str) -> bool:
    """Whether a version's lineage tags give way to a clean registration from `commit`: they name an
    uncommitted tree, or a commit whose code, conf or data differ from it (more than outputs)."""
    if current.get("git_dirty") != "false":
        return True
    return current.get("git_commit") != commit and not outputs_only(current.get("git_commit"), commit)


def feature_weights(model: Any, data: DataConfig, paths: PathsConfig) -> dict[str, float]:
    """The model's permutation importance on the test split (lockstep.importance)."""
    import pandas as pd

    from lockstep.tabular import features_and_labels

    features, labels = features_and_labels(pd.read_parquet(paths.test), data)
    return importance.compute(model, features, labels, data.task)


def register_model(
    client: Any, params: dict[str, Any], data: DataConfig, paths: PathsConfig, reg: RegisterConfig
) -> dict[str, Any]:
    """Register the model (or find the version already holding its bytes); return the record."""
    import joblib
    import mlflow
    import pandas as pd

    tags = lineage_tags(params, data, paths)
    version = find_version(client, reg.model_name, tags["model_md5"])
    used = {}  # what the monitor weighs drift by: on the version, not in the record
    if version is None or importance.TAG not in version.tags:
        used = importance.tag(feature_weights(joblib.load(paths.model), data, paths))
    if version is None:
        model = joblib.load(paths.model)
        example = pd.read_parquet(paths.test).drop(columns=[data.target]).head(INPUT_EXAMPLE_ROWS)
        metrics = json.loads(paths.metrics.read_text(encoding="utf-8"))
        use_experiment(client, reg.experiment)
        with mlflow.start_run(tags=tags):
            mlflow.log_params(flatten({name: params.get(name) for name in LINEAGE_SECTIONS}))
            mlflow.log_metrics({k: float(v) for k, v in metrics.items() if isinstance(v, int | float)})
            info = log_model(model, paths.model, example)
        # Tags go in with the version itself, so no version ever exists without its lineage.
        version = mlflow.register_model(info.model_uri, reg.model_name, tags=tags | used)
    elif tags["git_dirty"] == "false" and relineage(version.tags, tags["git_commit"]):
        # the same bytes from a clean tree of a commit with other inputs (main after a merge), or
        # registered before from an uncommitted tree: its lineage is now this one
        for key, value in tags.items():
            if version.tags.get(key) != value:
                client.set_model_version_tag(reg.model_name, version.version, key, value)
    else:  # the same commit's inputs (a decision taken on them stays valid), or a dirty tree: new tags added
        for key in tags.keys() - version.tags.keys():
            client.set_model_version_tag(reg.model_name, version.version, key, tags[key])
    if importance.TAG not in version.tags:  # a version registered before the monitor weighed drift
        for key, value in used.items():
            client.set_model_version_tag(reg.model_name, version.version, key, value)
    return {
        "model_name": reg.model_name,
        "version": int(version.version),
        "alias": reg.alias,
        "run_id": version.run_id,
        "model_uri": f"models:/{reg.model_name}/{version.version}",
        **tags,
    }


def register_prompts(client: Any, prompts: PromptsConfig, paths: PathsConfig, record: dict[str, Any]) -> dict[str, int]:
    """Register every prompt, then record on both sides which versions were evaluated together."""
    import mlflow

    from lockstep.prompts import load_prompt_file, register_prompt

    tags = {"git_commit": record["git_commit"], "git_dirty": record["git_dirty"]}
    # Keyed by the name in the registry: promote and the registration record use it as is
    versions = {
        prompts.registry_prefix + name: register_prompt(
            load_prompt_file(paths.prompt_file(name)), None, tags, prompts.registry_prefix + name
        )
        for name in prompts.names
    }
    for name, version in versions.items():
        client.set_model_version_tag(record["model_name"], str(record["version"]), f"prompt.{name}", str(version))
        mlflow.genai.set_prompt_version_tag(name, version, "model_version", record["model_uri"])
    return versions


def register(params: Params) -> dict[str, Any]:
    """The register stage: model and prompts into the registry, the record into paths.registration;
    the record."""
    check_toolkit_version(params)
    data, paths, reg = params.need("data"), params.need("paths"), params.need("register")
    prompts = params.prompts
    with mlflow_client() as client:
        record = register_model(client, params.raw, data, paths, reg)
        if prompts is not None:
            record["prompts"] = register_prompts(client, prompts, paths, record)
            record["prompt_alias"] = prompts.alias
            if aliases.may_move(prompts.alias) is None:
                for name, version in record["prompts"].items():
                    aliases.move_prompt(name, prompts.alias, version, "registered", commit=record["git_commit"])
        # Last, once the version has its lineage and prompt links: the alias never names a registration
        # cut short (a server gone mid-way), and a re-run finds the version by its bytes and completes it.
        refusal = aliases.may_move(reg.alias)
        if refusal is None:
            aliases.move_model(client, reg.model_name, reg.alias, record["version"], "registered",
                               commit=record["git_commit"])  # fmt: skip
    write_json(paths.registration, record)
    record["alias_moved"] = refusal is None
    if refusal:
        record["alias_refusal"] = refusal
    return record


def promote(
    params: Params, alias: str = "champion", gate_dir: Path | None = None, policies: Path | None = None
) -> tuple[dict[str, Any], list[str]]:
    """Point alias at every version in the registration record, when the promotion policies allow it:
    the policies' decision, and the versions promoted (none unless it is allow).

    The decision (lockstep.policy) is recorded on every version as tags; pending_review and deny
    leave the alias where it is. After `lockstep approve`, promoting again decides again.
    """
    from lockstep import policy

    record = policy.read_record(params.need("paths"))
    with mlflow_client() as client:
        refusal = aliases.may_move(alias)
        if refusal:  # before deciding: a person's run on the shared registry changes nothing there
            raise StageError(refusal)
        result = policy.decide(client, params, record, gate_dir or policy.GATE_DIR, policies or policy.PROJECT_DIR)
        tags = policy.record_decision(client, record, result)
        if result["decision"] != "allow":
            return result, []
        why = {"commit": record["git_commit"], "gate_head": tags["decision.gate_head"]}
        aliases.move_model(client, record["model_name"], alias, int(record["version"]), "allow", **why)
        promoted = [f"models:/{record['model_name']}/{record['version']}"]
        for name, version in record.get("prompts", {}).items():
            aliases.move_prompt(name, alias, int(version), "allow", **why)
            promoted.append(f"prompts:/{name}/{version}")
    return result, promoted


def load_model(name: str, alias: str = "champion") -> Any:
    """The model registered under `models:/<name>@<alias>`, as a pyfunc model ready to predict."""
    with mlflow_client():
        import mlflow

        return mlflow.pyfunc.load_model(f"models:/{name}@{alias}")
