"""Is the environment that judges the one that was installed? Every installed file against its record.

An installer writes each package's RECORD: every file it put in place, with its sha256. The
packages came from requirements.lock, whose hashes the installer checked, so a file that no
longer matches its record was changed after the install: by a test, a stage or a hook of the
change being judged, for instance. The gate checks its own environment this way before it reads
a single metric, and refuses to judge from a changed one. Packages installed in editable mode
(the project itself, a toolkit checkout) have no record of their source and are left out.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib.metadata
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# Startup hooks that run in every Python process of the environment, whoever installed them
HOOKS = ("sitecustomize.py", "usercustomize.py")


def editable(dist: importlib.metadata.Distribution) -> bool:
    try:
        url = json.loads(dist.read_text("direct_url.json") or "{}")
    except json.JSONDecodeError:
        return False
    return bool(url.get("dir_info", {}).get("editable"))


def _digest(path: Path) -> str | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def changed_files(paths: list[str] | None = None, counted: list[int] | None = None) -> list[str]:
    """Installed files (on sys.path, or these paths) that differ from, are missing from, or are not in
    their package's record."""
    paths = sys.path if paths is None else paths
    expected: dict[Path, str] = {}
    recorded: set[Path] = set()
    for dist in importlib.metadata.distributions(path=paths):
        source_tree = editable(dist)  # its record names only the hook to a source tree, whose files change
        # The RECORD itself, not `dist.files`: some versions of importlib_metadata leave out missing files
        for row in csv.reader((dist.read_text("RECORD") or "").splitlines()):
            if not row:
                continue
            path = Path(dist.locate_file(row[0])).resolve()
            recorded.add(path)
            algorithm, _, value = (row[1] if len(row) > 1 else "").partition("=")
            if algorithm == "sha256" and value and not source_tree:
                expected[path] = value
    if counted is not None:
        counted.append(len(expected))
    with ThreadPoolExecutor(max_workers=4) as pool:  # hashlib releases the GIL: files hash in parallel
        digests = dict(zip(expected, pool.map(_digest, expected), strict=True))
    problems = [f"{p}: {'missing' if d is None else 'changed'}" for p, d in digests.items() if d != expected[p]]
    for folder in {Path(p).resolve() for p in paths if p.endswith("site-packages")}:
        for path in sorted(folder.glob("*.pth")) + [folder / hook for hook in HOOKS]:
            if path.exists() and path.resolve() not in recorded:  # run at every start, installed by no package
                problems.append(f"{path}: added after the install")
    return sorted(problems)


def verify() -> int:
    """The number of installed files checked; a StageError naming what changed, when the environment is
    not as installed."""
    from lockstep.config import StageError

    counted: list[int] = []
    problems = changed_files(counted=counted)
    if problems:
        shown = "; ".join(problems[:3]) + (f" and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise StageError(
            f"the environment was changed after it was installed ({shown}): it will not judge; "
            "recreate it (rm -rf .venv && make setup) and run again"
        )
    return counted[0] if counted else 0
