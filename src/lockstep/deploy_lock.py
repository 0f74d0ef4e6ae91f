"""The deploy lock's type: every alias the service follows, resolved once to a numeric version.

deploy.lock.json (conf/deploy lock_file) is written by `lockstep deploy lock` (lockstep.serve.resolve)
and read by the service, staging, the canary, the manifests and the monitor. It records the model
and prompt versions of each variant (stable: `champion`, canary: `challenger`), the Git commit and
when it was made; `deploy_id` is a hash of the versions, and seeds the router's sticky cohorts.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lockstep.config import StageError, first_line
from lockstep.io import write_json


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelRef(_Strict):
    """models:/<name>/<version>, and the alias it was resolved from."""

    name: str
    version: int
    alias: str | None = None
    run_id: str | None = None

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


class PromptRef(_Strict):
    """prompts:/<name>/<version>, and the alias it was resolved from."""

    name: str
    version: int
    alias: str | None = None

    @property
    def uri(self) -> str:
        return f"prompts:/{self.name}/{self.version}"


class Locked(_Strict):
    """One variant's versions: a model and the prompts that go with it."""

    model: ModelRef
    prompts: dict[str, PromptRef] = Field(default_factory=dict)

    def versions(self) -> dict[str, Any]:
        """What every answer and /health name: the model's name and version, each prompt's version."""
        return {
            "model": {"name": self.model.name, "version": self.model.version},
            "prompts": {name: p.version for name, p in self.prompts.items()},
        }


class DeployLock(_Strict):
    """deploy.lock.json: the variants' versions, the deploy id, where and when it was made."""

    deploy_id: str
    created_at: str
    git_commit: str | None = None
    git_dirty: bool = False
    variants: dict[str, Locked]

    @model_validator(mode="after")
    def _has_stable(self) -> DeployLock:
        if "stable" not in self.variants:
            raise ValueError("no stable variant")
        return self

    @property
    def stable(self) -> Locked:
        return self.variants["stable"]

    @property
    def canary(self) -> Locked | None:
        return self.variants.get("canary")


def deploy_id(variants: dict[str, Locked]) -> str:
    """A short hash of the locked versions: the same versions always route the same cohorts."""
    versions = {
        v: [variants[v].model.version, sorted((p.name, p.version) for p in variants[v].prompts.values())]
        for v in sorted(variants)
    }
    return hashlib.sha256(json.dumps(versions, sort_keys=True).encode()).hexdigest()[:12]


def read_lock(path: Path) -> DeployLock:
    """The lock at path, with one line naming the fix when it is missing or not a lock."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StageError(f"{path}: not found; run `lockstep deploy lock` first") from None
    except json.JSONDecodeError as exc:
        raise StageError(f"{path}: not valid JSON ({exc.msg}); run `lockstep deploy lock` again") from None
    try:
        return DeployLock.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        why = err["msg"].removeprefix("Value error, ") if err["msg"] else first_line(exc)
        raise StageError(f"{path}: {where + ': ' if where else ''}{why}; run `lockstep deploy lock` again") from None


def write_lock(path: Path, lock: DeployLock) -> None:
    write_json(path, lock.model_dump(mode="json"))
