"""The deploy lock: every alias the service would follow, resolved once to a numeric version.

    lockstep deploy lock     # writes deploy.lock.json (conf/deploy lock_file)

The service never follows an alias itself: it loads `models:/<name>/<N>` and
`prompts:/<name>/<N>` from this file, so what runs is what was locked, evaluated in staging and
labelled on the image, even when someone moves `champion` meanwhile. The file records the model
and prompt versions of each variant (stable: `champion`, canary: `challenger`), the Git commit and
when it was made; `deploy_id` is a hash of the versions, and seeds the router's sticky cohorts.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lockstep.config import PromptsConfig, RegisterConfig, StageError, read_params, section
from lockstep.io import write_json
from lockstep.serve.config import deploy_config


def resolve(model_name: str, prompt_names: list[str], alias: str) -> dict[str, Any] | None:
    """The versions an alias points at now: {"model": {...}, "prompts": {...}}; None if unset."""
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
        prompts[name] = {"name": name, "version": int(loaded.version), "alias": alias}
    model = {"name": model_name, "version": int(version.version), "alias": alias, "run_id": version.run_id}
    return {"model": model, "prompts": prompts}


def deploy_id(variants: dict[str, Any]) -> str:
    """A short hash of the locked versions: the same versions always route the same cohorts."""
    versions = {
        v: [variants[v]["model"]["version"], sorted((p["name"], p["version"]) for p in variants[v]["prompts"].values())]
        for v in sorted(variants)
    }
    return hashlib.sha256(json.dumps(versions, sort_keys=True).encode()).hexdigest()[:12]


def versions(variant: dict[str, Any]) -> tuple[int, list[tuple[str, int]]]:
    """What a variant serves, whatever the alias that named it."""
    return variant["model"]["version"], sorted((p["name"], p["version"]) for p in variant["prompts"].values())


def refuse_unservable(client: Any, variants: dict[str, Any], stable_alias: str) -> None:
    """No lock names a version that was denied or rolled back, nor a stable one no decision allowed."""
    from lockstep import aliases

    problems = []
    for name, variant in variants.items():
        model = variant["model"]
        tags = dict(client.get_model_version(model["name"], str(model["version"])).tags)
        what = f"{name} (@{model['alias']}) models:/{model['name']}/{model['version']}"
        if name == "stable":
            problems += aliases.promotable(tags, what)
        else:
            problems += [w for w in aliases.promotable(tags, what) if "rolled back" in w or "denied" in w]
    if problems:
        raise StageError(
            f"deploy lock: refused: {'; '.join(problems)}; move @{stable_alias} only with `make promote` or a canary"
        )


def make_lock(params_file: Path) -> dict[str, Any]:
    from lockstep.registry import git_state, mlflow_client

    params = read_params(params_file)
    deploy = deploy_config(params_file)
    reg = section(params, "register", RegisterConfig, params_file)
    prompts = section(params, "prompts", PromptsConfig, params_file).names if "prompts" in params else []
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
    return {
        "deploy_id": deploy_id(variants),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": commit,
        "git_dirty": dirty,
        "variants": variants,
    }


def write_lock(params_file: Path, out: Path | None = None) -> int:
    lock = make_lock(params_file)
    path = out or deploy_config(params_file).lock_file
    write_json(path, lock)
    for variant, v in lock["variants"].items():
        names = [f"models:/{v['model']['name']}/{v['model']['version']}"]
        names += [f"prompts:/{p['name']}/{p['version']}" for p in v["prompts"].values()]
        print(f"deploy lock: {variant} (@{v['model']['alias']}) -> {', '.join(names)}")
    print(f"deploy lock: {path} (deploy_id {lock['deploy_id']})")
    return 0


def read_lock(path: Path) -> dict[str, Any]:
    try:
        lock = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StageError(f"{path}: not found; run `lockstep deploy lock` first") from None
    except json.JSONDecodeError as exc:
        raise StageError(f"{path}: not valid JSON ({exc.msg}); run `lockstep deploy lock` again") from None
    if "stable" not in lock.get("variants", {}):
        raise StageError(f"{path}: no stable variant; run `lockstep deploy lock` again")
    return lock


def show(params_file: Path, lock_file: Path | None, what: str) -> int:
    """Print the lock's deploy id, or the image labels' --build-arg options (make image)."""
    lock = read_lock(lock_file or deploy_config(params_file).lock_file)
    if what == "id":
        print(lock["deploy_id"])
        return 0
    variants = lock["variants"].items()
    prompts = [f"{v}:{p['name']}/{p['version']}" for v, x in variants for p in x["prompts"].values()]
    args = {
        "GIT_COMMIT": lock["git_commit"],
        "DEPLOY_ID": lock["deploy_id"],
        "MODEL_VERSIONS": ",".join(f"{v}:{x['model']['name']}/{x['model']['version']}" for v, x in variants),
        "PROMPT_VERSIONS": ",".join(prompts) or "none",
    }
    print(" ".join(f"--build-arg {k}={v}" for k, v in args.items()))
    return 0


def toolkit_wheel(out: Path) -> int:
    """The installed toolkit as a wheel in `out` when it came from a local clone (the image cannot
    reach that path); from a Git tag or an index, the image installs it itself and `out` stays empty."""
    import importlib.metadata
    import shutil
    import subprocess
    import sys

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    (out / ".keep").write_text("", encoding="utf-8")
    try:
        url = json.loads(importlib.metadata.distribution("lockstep-mlops").read_text("direct_url.json") or "{}")
    except json.JSONDecodeError:
        url = {}
    source = str(url.get("url", ""))
    if not source.startswith("file://"):
        return 0
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    subprocess.run([uv, "build", "-q", "--wheel", "-o", str(out), source.removeprefix("file://")], check=True)
    print(f"deploy wheels: {', '.join(p.name for p in out.glob('*.whl'))} -> {out}")
    return 0
