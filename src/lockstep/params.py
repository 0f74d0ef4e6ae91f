"""Compose params.yaml from conf/ with DVC's own Hydra composer, or check that it is fresh.

`lockstep params` writes params.yaml (what `dvc exp run` does before every experiment);
`lockstep params --check` fails when the committed params.yaml differs from what conf/
composes to, because `dvc repro` never composes and would silently use stale values.
"""

from __future__ import annotations

import difflib
import tempfile
from pathlib import Path

from lockstep.config import PARAMS_FILE, StageError, first_line

CONF_DIR = Path("conf")
CONFIG_NAME = "config"


def compose(conf_dir: Path = CONF_DIR, overrides: list[str] | None = None) -> str:
    """The text DVC writes to params.yaml for this conf/ and these Hydra overrides."""
    from dvc.utils.hydra import compose_and_dump

    if not (conf_dir / f"{CONFIG_NAME}.yaml").is_file():
        raise StageError(f"{conf_dir}/{CONFIG_NAME}.yaml: not found; run this in the project's root directory")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "params.yaml"
        try:
            compose_and_dump(out, str(conf_dir.resolve()), None, CONFIG_NAME, str(conf_dir.resolve()), overrides or [])
        except Exception as exc:  # Hydra raises many types; all mean conf/ cannot be composed
            raise StageError(f"{conf_dir}/: cannot compose {CONFIG_NAME}.yaml: {first_line(exc)}") from None
        return out.read_text(encoding="utf-8")


def write(overrides: list[str], params_file: Path = PARAMS_FILE) -> None:
    """params.yaml composed from conf/ with these overrides."""
    params_file.write_text(compose(CONF_DIR, overrides), encoding="utf-8")


def stale(params_file: Path = PARAMS_FILE) -> str | None:
    """None when params.yaml is what conf/ composes to; else the unified diff from it to what it should be."""
    expected = compose(CONF_DIR)
    current = params_file.read_text(encoding="utf-8") if params_file.exists() else ""
    if current == expected:
        return None
    diff = difflib.unified_diff(current.splitlines(), expected.splitlines(), str(params_file), "composed", lineterm="")
    return "\n".join(diff)
