"""Resolving the deploy lock: every alias the service would follow, resolved once in the registry to
a numeric version (the lock's type is lockstep.deploy_lock).

    lockstep deploy lock     # writes deploy.lock.json (conf/deploy lock_file)

The service never follows an alias itself: it loads `models:/<name>/<N>` and
`prompts:/<name>/<N>` from this file, so what runs is what was locked, evaluated in staging and
labelled on the image, even when someone moves `champion` meanwhile.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from lockstep.config import Params, StageError
from lockstep.deploy_lock import DeployLock, Locked, ModelRef, PromptRef, deploy_id


def resolve(model_name: str, prompt_names: list[str], alias: str) -> Locked | None:
    """The versions an alias points at now; None if the model has no such alias."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    try:
        version = client.get_model_version_by_alias(model_name, alias)
    except MlflowException:
        return None
    prompts = {}
    for name in prompt_names:
        # search_prompt_versions does not report aliases: loading by alias is what resolves them
        loaded = mlflow.genai.load_prompt(f"prompts:/{name}@{alias}", allow_missing=True)
        if loaded is None:
            raise StageError(f"prompt {name} has no alias @{alias}; register and promote the prompts first")
        prompts[name] = PromptRef(name=name, version=int(loaded.version), alias=alias)
    model = ModelRef(name=model_name, version=int(version.version), alias=alias, run_id=version.run_id)
    return Locked(model=model, prompts=prompts)


def versions(variant: Locked) -> tuple[int, list[tuple[str, int]]]:
    """What a variant serves, whatever the alias that named it."""
    return variant.model.version, sorted((p.name, p.version) for p in variant.prompts.values())


def refuse_unservable(client: Any, variants: dict[str, Locked], stable_alias: str) -> None:
    """No lock names a version that was denied or rolled back, nor a stable one no decision allowed."""
    from lockstep import aliases

    problems = []
    for name, variant in variants.items():
        model = variant.model
        tags = dict(client.get_model_version(model.name, str(model.version)).tags)
        what = f"{name} (@{model.alias}) models:/{model.name}/{model.version}"
        if name == "stable":
            problems += aliases.promotable(tags, what)
        else:
            problems += [w for w in aliases.promotable(tags, what) if "rolled back" in w or "denied" in w]
    if problems:
        raise StageError(
            f"deploy lock: refused: {'; '.join(problems)}; move @{stable_alias} only with `make promote` or a canary"
        )


def refuse_to_serve(lock: DeployLock) -> None:
    """At start-up, whatever the lock says: no version tagged denied or rolled back is served (a lock
    written before the decision, or edited by hand, does not get one served)."""
    from lockstep import aliases
    from lockstep.registry import mlflow_client

    problems = []
    with mlflow_client() as client:
        for name, variant in lock.variants.items():
            model = variant.model
            tags = dict(client.get_model_version(model.name, str(model.version)).tags)
            what = f"{name} models:/{model.name}/{model.version}"
            problems += [w for w in aliases.promotable(tags, what) if "rolled back" in w or "denied" in w]
    if problems:
        raise StageError(f"serve: refused: {'; '.join(problems)}; lock what may be served (make deploy-lock)")


def make_lock(params: Params) -> DeployLock:
    """conf/deploy's stable and canary aliases resolved now, each to its model and prompt versions."""
    from lockstep.registry import git_state, mlflow_client

    deploy, reg = params.deploy, params.need("register")
    prompts = params.prompts.names if params.prompts else []
    with mlflow_client() as client:
        stable = resolve(reg.model_name, prompts, deploy.stable_alias)
        if stable is None:
            raise StageError(
                f"model {reg.model_name} has no alias @{deploy.stable_alias}; promote a version first (make promote)"
            )
        variants = {"stable": stable}
        canary = resolve(reg.model_name, prompts, deploy.canary_alias)
        if canary is not None and versions(canary) != versions(stable):  # the same versions: nothing to roll out
            variants["canary"] = canary
        refuse_unservable(client, variants, deploy.stable_alias)
    commit, dirty = git_state()
    return DeployLock(
        deploy_id=deploy_id(variants),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        git_commit=commit,
        git_dirty=dirty,
        variants=variants,
    )
