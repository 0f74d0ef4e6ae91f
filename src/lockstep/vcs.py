"""Git and DVC as subprocesses: one-line errors, and DVC's JSON output parsed defensively."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from lockstep.config import StageError


def git(*args: str, check: bool = True, env: dict[str, str] | None = None) -> str:
    """git's output; on failure "" (check=False), or one line naming why: git's last line, or the
    pre-commit hooks that failed (they report on standard output)."""
    result = subprocess.run(["git", *args], capture_output=True, text=True, env=env)
    if check and result.returncode:
        lines = (result.stdout + result.stderr).strip().splitlines() or ["failed"]
        hooks = [line.split("..")[0].strip() for line in lines if line.rstrip().endswith("Failed")]
        why = f"the pre-commit hook(s) {', '.join(hooks)} failed" if hooks else lines[-1]
        raise StageError(f"git {' '.join(args)}: {why}")
    return result.stdout.strip() if result.returncode == 0 else ""


def dvc() -> str:
    """The dvc installed beside this toolkit (`.venv/bin/lockstep` works unactivated), else the one on PATH."""
    beside = Path(sys.executable).with_name("dvc")
    found = str(beside) if beside.is_file() else shutil.which("dvc")
    if found is None:
        raise StageError(
            "dvc: not found beside this Python nor on PATH; run `make setup`, then `source .venv/bin/activate`"
        )
    return found


def dvc_json(*args: str) -> dict[str, Any]:
    """Run a dvc command with --json and parse its output; DVC exits 0 on some load failures."""
    result = subprocess.run([dvc(), *args, "--json"], capture_output=True, text=True)
    if result.returncode:
        detail = (result.stderr.strip().splitlines() or ["failed"])[-1]
        raise StageError(f"dvc {' '.join(args)}: {detail}")
    try:
        return json.loads(result.stdout or "{}")
    except json.JSONDecodeError:
        raise StageError(f"dvc {' '.join(args)} printed no JSON: {result.stdout[:200]!r}") from None


def pipeline_outputs() -> set[str]:
    """dvc.lock and every output dvc.yaml declares, relative to the root: what reproducing rewrites."""
    try:
        from dvc.repo import Repo

        with Repo() as repo:
            root = Path(repo.root_dir)
            return {"dvc.lock"} | {Path(out.fs_path).relative_to(root).as_posix() for out in repo.index.outs}
    except Exception:  # no DVC project here: nothing is an output
        return {"dvc.lock"}


def outputs_only(commit: str | None, head: str) -> bool:
    """Whether head descends from commit and differs from it only in the pipeline's outputs
    (dvc.lock, metrics, plots, reports): the same code, conf, params and data pointers."""
    if not commit or commit == head:
        return False
    if subprocess.run(["git", "merge-base", "--is-ancestor", commit, head], capture_output=True).returncode:
        return False
    changed = git("diff", "--name-only", commit, head, check=False).splitlines()
    outputs = pipeline_outputs()
    return all(any(p == o or p.startswith(o.rstrip("/") + "/") for o in outputs) for p in changed)
