"""Git and DVC as subprocesses: one-line errors, and DVC's JSON output parsed defensively."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from lockstep.config import StageError


def git(*args: str, check: bool = True) -> str:
    result = subprocess.run(["git", *args], capture_output=True, text=True)
    if check and result.returncode:
        raise StageError(
            f"git {' '.join(args)}: {result.stderr.strip().splitlines()[-1] if result.stderr else 'failed'}"
        )
    return result.stdout.strip() if result.returncode == 0 else ""


def dvc_json(*args: str) -> dict[str, Any]:
    """Run a dvc command with --json and parse its output; DVC exits 0 on some load failures."""
    result = subprocess.run(["dvc", *args, "--json"], capture_output=True, text=True)
    if result.returncode:
        detail = (result.stderr.strip().splitlines() or ["failed"])[-1]
        raise StageError(f"dvc {' '.join(args)}: {detail}")
    try:
        return json.loads(result.stdout or "{}")
    except json.JSONDecodeError:
        raise StageError(f"dvc {' '.join(args)} printed no JSON: {result.stdout[:200]!r}") from None
