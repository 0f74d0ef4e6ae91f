"""The lock check: dvc.lock must be what the committed code, params, data and prompts produce.

    lockstep check-lock                # make check-lock
    lockstep check-lock --reproduced   # make repro-ci, after re-running the stages

Outputs and data missing in a fresh clone do not count (CI restores them from the remote);
a stale stage is named with the exact `dvc repro` command that fixes it. After CI re-ran the
stages that make the data split and the model, `--reproduced` compares the bytes they made with
the ones the committed dvc.lock names: a lock naming a model that the committed code and data do
not make (bytes pushed to the DVC remote by hand) is refused.
"""

from __future__ import annotations

import sys
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


def check_lock() -> int:
    """0 when dvc.lock is current; else each stale stage, and the command that fixes them."""
    if not Path("dvc.lock").exists():
        print("dvc.lock: none committed yet, so nothing can be stale; the pipeline is reproduced from scratch")
        return 0
    stale = stale_stages(dvc_json("status"))
    if not stale:
        print("dvc.lock matches the committed code, params, data and prompts")
        return 0
    for stage, reasons in stale.items():
        print(f"  {stage}: {', '.join(reasons)}", file=sys.stderr)
    targets = " ".join(sorted(stale))
    print(
        f"error: dvc.lock is stale for {len(stale)} stage(s); run `dvc repro {targets}` and commit dvc.lock",
        file=sys.stderr,
    )
    return 1


REPRODUCED = ("prepare", "train")  # what CI re-runs: the split the model is measured on, and the model


def cached_outs(lock: dict[str, Any], stage: str) -> dict[str, str]:
    """A stage's cached outputs in a dvc.lock document: {path: md5} (metrics and plots are not cached)."""
    entry = (lock.get("stages") or {}).get(stage) or {}
    return {o["path"]: o.get("md5", "") for o in entry.get("outs", []) if o.get("md5") and o.get("cache", True)}


def check_reproduced(stages: tuple[str, ...] = REPRODUCED) -> int:
    """0 when the stages just re-run made the bytes the committed dvc.lock names; else each difference."""
    import yaml

    from lockstep.vcs import git

    committed_text = git("show", "HEAD:dvc.lock", check=False)
    if not committed_text:
        print("reproduced: no dvc.lock committed yet, nothing to compare; the outputs are the ones just made")
        return 0
    committed = yaml.safe_load(committed_text) or {}
    current = yaml.safe_load(Path("dvc.lock").read_text(encoding="utf-8")) or {}
    differ = []
    for stage in stages:
        made, named = cached_outs(current, stage), cached_outs(committed, stage)
        for path, md5 in named.items():
            if made.get(path) != md5:
                differ.append(f"{stage}: {path} reproduces as md5 {made.get(path, 'nothing')}, dvc.lock names {md5}")
    if not differ:
        print(f"reproduced: {', '.join(stages)} made the bytes the committed dvc.lock names")
        return 0
    for line in differ:
        print(f"  {line}", file=sys.stderr)
    print(
        "error: the committed dvc.lock names outputs that the committed code and data do not make: they were not"
        " reproduced here, so they are refused; run `dvc repro` and commit dvc.lock (training must be seeded)",
        file=sys.stderr,
    )
    return 1
