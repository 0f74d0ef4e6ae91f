"""The dvc.lock freshness check: dvc.lock must be what the committed code, params, data and prompts produce.

    lockstep check-lock      # make check-lock

Outputs and data missing in a fresh clone do not count (CI restores them from the remote);
a stale stage is named with the exact `dvc repro` command that fixes it.
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
