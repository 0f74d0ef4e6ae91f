"""What the service's image is built from: the deploy lock's labels as docker build arguments, and the
toolkit's wheel when it is installed from a local clone the image cannot reach.

    lockstep deploy build-args   # --build-arg GIT_COMMIT=... DEPLOY_ID=... MODEL_VERSIONS=... (make image)
    lockstep deploy wheels       # wheels/lockstep_mlops-*.whl, or nothing when installed from an index
"""

from __future__ import annotations

import json
from pathlib import Path

from lockstep.deploy_lock import DeployLock


def build_args(lock: DeployLock) -> dict[str, str]:
    """The image labels' values, by build argument."""
    variants = lock.variants.items()
    prompts = [f"{v}:{p.name}/{p.version}" for v, x in variants for p in x.prompts.values()]
    return {
        "GIT_COMMIT": str(lock.git_commit),
        "DEPLOY_ID": lock.deploy_id,
        "MODEL_VERSIONS": ",".join(f"{v}:{x.model.name}/{x.model.version}" for v, x in variants),
        "PROMPT_VERSIONS": ",".join(prompts) or "none",
    }


def toolkit_wheel(out: Path) -> list[Path]:
    """The installed toolkit as a wheel in `out` when it came from a local clone (the image cannot
    reach that path); from a Git tag or an index, the image installs it itself and `out` stays empty.
    The wheels written."""
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
        return []
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    subprocess.run([uv, "build", "-q", "--wheel", "-o", str(out), source.removeprefix("file://")], check=True)
    return sorted(out.glob("*.whl"))
