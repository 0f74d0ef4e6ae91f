"""The dvc.lock freshness check: dvc.lock must be what the committed code, params, data and prompts produce.

    lockstep check-lock                # make check-lock
    lockstep check-lock --reproduced   # make repro-ci, after re-running the stages

Outputs and data missing in a fresh clone do not count (CI restores them from the remote);
a stale stage is named with the exact `dvc repro` command that fixes it. After CI re-ran the
stages that make the data split and the model, `--reproduced` compares the bytes they made with
the ones the committed dvc.lock names: a lock naming a model that the committed code and data do
not make (bytes pushed to the DVC remote by hand) is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lockstep.vcs import dvc_json


def stale_stages(status: dict[str, Any]) -> dict[str, list[str]]:
    """Stages whose code, params or data changed since dvc.lock (missing outputs do not count)."""
    stale: dict[str, list[str]] = {}
    for stage, changes in status.items():
        for change_ in changes if isinstance(changes, list) else [changes]:
            if not isinstance(change_, dict):
                stale.setdefault(stage, []).append(str(change_))
                continue
            for kind, detail in change_.items():
                if kind == "changed deps":
                    stale[stage] = stale.get(stage, []) + [f"{p} {s}" for p, s in detail.items() if s != "deleted"]
                elif kind in ("changed params", "changed command"):
                    stale.setdefault(stage, []).append(kind)
    return {stage: reasons for stage, reasons in stale.items() if reasons and not stage.endswith(".dvc")}


def check() -> dict[str, list[str]] | None:
    """Each stale stage and why ({} when dvc.lock is current); None when no dvc.lock is committed yet."""
    if not Path("dvc.lock").exists():
        return None
    return stale_stages(dvc_json("status"))


REPRODUCED = ("prepare", "train")  # what CI re-runs: the split the model is measured on, and the model


def cached_outs(lock: dict[str, Any], stage: str) -> dict[str, str]:
    """A stage's cached outputs in a dvc.lock document: {path: md5} (metrics and plots are not cached)."""
    entry = (lock.get("stages") or {}).get(stage) or {}
    return {o["path"]: o.get("md5", "") for o in entry.get("outs", []) if o.get("md5") and o.get("cache", True)}


def check_reproduced(stages: tuple[str, ...] = REPRODUCED) -> list[str] | None:
    """What the stages just re-run made that differs from the bytes the committed dvc.lock names ([] when
    nothing does); None when no dvc.lock is committed yet."""
    import yaml

    from lockstep.vcs import git

    committed_text = git("show", "HEAD:dvc.lock", check=False)
    if not committed_text:
        return None
    committed = yaml.safe_load(committed_text) or {}
    current = yaml.safe_load(Path("dvc.lock").read_text(encoding="utf-8")) or {}
    differ = []
    for stage in stages:
        made, named = cached_outs(current, stage), cached_outs(committed, stage)
        for path, md5 in named.items():
            if made.get(path) != md5:
                differ.append(f"{stage}: {path} reproduces as md5 {made.get(path, 'nothing')}, dvc.lock names {md5}")
    return differ
