"""Every move of an alias goes through here: who may move it, on what decision, and its history.

    lockstep history NAME [--alias champion] [--at 2026-12-01T12:00:00+00:00] [--prompt]   (commands/policy.py)

- `champion` (the stable alias) moves only to a version whose registry tags record the promotion
  policies' `decision=allow` for that very version, decided on gate results of the commit the
  version was registered from (`decision.gate_head` = `git_commit`), from a clean work tree
  (`git_dirty=false`), and never to a version tagged `rolled_back` or `denied`: promote, the
  canary's promotion and a deploy lock of a new stable all check it.
- On a shared registry (MLFLOW_TRACKING_URI set), aliases are moved by CI only (CI=true, which
  GitHub Actions and GitLab CI set): a person's own run registers versions but moves nothing. Give only CI's service
  account edit rights on the registered models, so the registry enforces what this states.
- Each move is appended to the model's (or prompt's) tags as `lockstep.alias_history.<n>`: when,
  which alias, from which version to which, who (CI's identity), the decision that allowed it,
  the commit. `lockstep history` prints them, or which version each alias named at a time.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any

from lockstep.config import DEFAULT_TRACKING_URI, StageError, project_root, tracking_uri

HISTORY_PREFIX = "lockstep.alias_history."
STABLE = "champion"


def identity() -> str | None:
    """Who is acting, as CI or the registry's authentication names them; never free text."""
    if os.environ.get("GITHUB_ACTOR") and os.environ.get("GITHUB_ACTIONS") == "true":
        return f"github:{os.environ['GITHUB_ACTOR']}"
    if os.environ.get("GITLAB_USER_LOGIN") and os.environ.get("GITLAB_CI") == "true":
        return f"gitlab:{os.environ['GITLAB_USER_LOGIN']}"
    if os.environ.get("MLFLOW_TRACKING_USERNAME") and shared_registry():
        return f"mlflow:{os.environ['MLFLOW_TRACKING_USERNAME']}"
    if not shared_registry():  # the project's own mlflow.db: only this person's work is at stake
        import subprocess

        email = subprocess.run(["git", "config", "user.email"], capture_output=True, text=True).stdout.strip()
        return f"local:{email or os.environ.get('USER', 'unknown')}"
    return None


def in_ci() -> bool:
    """Running in CI: GitHub Actions and GitLab CI both set CI=true."""
    return os.environ.get("CI", "").lower() == "true"


def shared_registry() -> bool:
    """A registry others read (a tracking server, a database), not this project's own SQLite file."""
    uri = tracking_uri()
    return uri not in (DEFAULT_TRACKING_URI, f"sqlite:///{project_root() / 'mlflow.db'}")


def may_move(alias: str) -> str | None:
    """Why this process may not move an alias on this registry, or None when it may."""
    if shared_registry() and not in_ci():
        return (
            f"@{alias} is moved by CI only on a shared registry ({tracking_uri().split('@')[-1]}): push to main"
            " and let the pipeline promote, or unset MLFLOW_TRACKING_URI to work in the local mlflow.db"
        )
    return None


def promotable(tags: dict[str, str], what: str) -> list[str]:
    """Why a version may not become the stable alias, from its registry tags (none: it may)."""
    why = []
    if tags.get("decision") != "allow":
        why.append(f"{what} has no promotion decision allow (decision: {tags.get('decision', 'none')})")
    elif tags.get("decision.gate_head") != tags.get("git_commit"):
        why.append(
            f"{what} was allowed on gate results of commit {tags.get('decision.gate_head', 'unknown')[:12]}, but"
            f" registered from {tags.get('git_commit', 'unknown')[:12]}"
        )
    if str(tags.get("git_dirty", "")).lower() != "false":
        why.append(f"{what} was registered from a work tree with uncommitted changes")
    if tags.get("rolled_back") == "true":
        why.append(f"{what} was rolled back ({tags.get('rolled_back.reasons', 'no reason recorded')})")
    if tags.get("denied") == "true":
        why.append(f"{what} was denied ({tags.get('deny.reasons', 'no reason recorded')})")
    return why


def entry(alias: str, to: int, frm: int | None, decision: str, **extra: Any) -> dict[str, Any]:
    return {"at": datetime.now(UTC).isoformat(timespec="seconds"), "alias": alias, "from": frm, "to": to,
            "by": identity() or "local", "decision": decision, **extra}  # fmt: skip


def next_key(tags: dict[str, str]) -> str:
    numbers = [int(k.removeprefix(HISTORY_PREFIX)) for k in tags if k.startswith(HISTORY_PREFIX)]
    return f"{HISTORY_PREFIX}{max(numbers, default=0) + 1:06d}"


def current_model(client: Any, name: str, alias: str) -> int | None:
    from mlflow.exceptions import MlflowException

    try:
        return int(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def move_model(
    client: Any, name: str, alias: str, version: int, decision: str, stable: bool | None = None, **extra: Any
) -> int | None:
    """Point a model's alias at a version, checked and recorded; returns the version it named before.
    The stable alias (`champion`, or conf/deploy's stable_alias: stable=True) needs a promotable version."""
    refusal = may_move(alias)
    if refusal:
        raise StageError(refusal)
    if alias == STABLE if stable is None else stable:
        tags = dict(client.get_model_version(name, str(version)).tags)
        why = promotable(tags, f"models:/{name}/{version}")
        if why:
            raise StageError(f"@{alias} not moved: {'; '.join(why)}")
    before = current_model(client, name, alias)
    record = entry(alias, version, before, decision, **extra)
    registered = dict(client.get_registered_model(name).tags)
    client.set_registered_model_tag(name, next_key(registered), json.dumps(record, sort_keys=True))
    client.set_registered_model_alias(name, alias, str(version))
    return before


def move_prompt(name: str, alias: str, version: int, decision: str, **extra: Any) -> int | None:
    """Point a prompt's alias at a version, checked and recorded; returns the version it named before."""
    import mlflow

    refusal = may_move(alias)
    if refusal:
        raise StageError(refusal)
    loaded = mlflow.genai.load_prompt(f"prompts:/{name}@{alias}", allow_missing=True)
    before = int(loaded.version) if loaded is not None else None
    record = entry(alias, version, before, decision, **extra)
    mlflow.genai.set_prompt_tag(name, next_key(mlflow.genai.get_prompt_tags(name)), json.dumps(record, sort_keys=True))
    mlflow.genai.set_prompt_alias(name, alias=alias, version=int(version))
    return before


def history(client: Any, name: str, prompt: bool = False) -> list[dict[str, Any]]:
    """Every recorded move of an alias of a model (or prompt), oldest first."""
    import mlflow

    tags = dict(mlflow.genai.get_prompt_tags(name)) if prompt else dict(client.get_registered_model(name).tags)
    return [json.loads(tags[k]) for k in sorted(k for k in tags if k.startswith(HISTORY_PREFIX))]


def named_at(recorded: list[dict[str, Any]], at: str) -> dict[str, int]:
    """Which version each alias named at a time (RFC 3339), from the recorded moves."""
    try:
        when = datetime.fromisoformat(at).astimezone(UTC)
    except ValueError:
        raise StageError(f"--at {at!r}: not a time; give one like 2026-12-01T12:00:00+00:00") from None
    state: dict[str, int] = {}
    for move in recorded:
        if datetime.fromisoformat(move["at"]) <= when:
            state[move["alias"]] = move["to"]
    return state


def moves(name: str, prompt: bool = False, alias: str | None = None) -> list[dict[str, Any]]:
    """A model's (or prompt's) recorded alias moves, oldest first, from the registry."""
    from lockstep.tracking import mlflow_client

    with mlflow_client() as client:
        return [m for m in history(client, name, prompt) if alias is None or m["alias"] == alias]
