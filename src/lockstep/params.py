"""Compose params.yaml and settings.yaml from conf/ with DVC's own Hydra composer, or check that they are fresh.

conf/config.yaml composes into params.yaml: what the pipeline's stages read, tracked by DVC (what
`dvc exp run` composes before every experiment, and what `dvc exp show` lists). conf/settings.yaml
composes into settings.yaml: the gate's rules, the policies' settings, deployment and monitoring,
which no stage reads. `lockstep params` writes both; `lockstep params --check` fails when a
committed one differs from what conf/ composes to, because `dvc repro` never composes and would
silently use stale values.
"""

from __future__ import annotations

import difflib
import tempfile
from pathlib import Path

from lockstep.config import PARAMS_FILE, SETTINGS_SECTIONS, StageError, first_line, settings_file

CONF_DIR = Path("conf")
CONFIG_NAME = "config"
SETTINGS_CONFIG = "settings"


def compose(conf_dir: Path = CONF_DIR, overrides: list[str] | None = None, config_name: str = CONFIG_NAME) -> str:
    """The text DVC's composer writes for this root of conf/ and these Hydra overrides."""
    from dvc.utils.hydra import compose_and_dump

    if not (conf_dir / f"{config_name}.yaml").is_file():
        raise StageError(f"{conf_dir}/{config_name}.yaml: not found; run this in the project's root directory")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "params.yaml"
        try:
            compose_and_dump(out, str(conf_dir.resolve()), None, config_name, str(conf_dir.resolve()), overrides or [])
        except Exception as exc:  # Hydra raises many types; all mean conf/ cannot be composed
            raise StageError(f"{conf_dir}/: cannot compose {config_name}.yaml: {first_line(exc)}") from None
        return out.read_text(encoding="utf-8")


def split(overrides: list[str]) -> tuple[list[str], list[str]]:
    """Overrides for params.yaml, and those for settings.yaml (naming gates, policy, deploy or monitor)."""
    group = lambda o: o.lstrip("+~").partition("=")[0].partition(".")[0].partition("@")[0]  # noqa: E731
    ours = [o for o in overrides if group(o) in SETTINGS_SECTIONS]
    return [o for o in overrides if o not in ours], ours


def composed(overrides: list[str] | None = None, params_file: Path = PARAMS_FILE) -> dict[Path, str]:
    """{file: the text conf/ composes it to}: params.yaml, and settings.yaml where conf/ has its root
    (a project baked before the settings moved out of params.yaml has none)."""
    for_params, for_settings = split(overrides or [])
    files = {params_file: compose(CONF_DIR, for_params)}
    if (CONF_DIR / f"{SETTINGS_CONFIG}.yaml").is_file():
        files[settings_file(params_file)] = compose(CONF_DIR, for_settings, SETTINGS_CONFIG)
    elif for_settings:
        raise StageError(f"{CONF_DIR}/{SETTINGS_CONFIG}.yaml: not found; {for_settings[0]} has nothing to override")
    return files


def write(overrides: list[str], params_file: Path = PARAMS_FILE) -> list[Path]:
    """params.yaml and settings.yaml composed from conf/ with these overrides; the files written."""
    files = composed(overrides, params_file)  # both composed before either is written
    for path, text in files.items():
        path.write_text(text, encoding="utf-8")
    return list(files)


def stale(params_file: Path = PARAMS_FILE) -> dict[Path, str]:
    """{file: the unified diff from it to what conf/ composes}, for params.yaml and settings.yaml;
    empty when both are fresh."""
    diffs = {}
    for path, expected in composed(None, params_file).items():
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != expected:
            diff = difflib.unified_diff(current.splitlines(), expected.splitlines(), str(path), "composed", lineterm="")
            diffs[path] = "\n".join(diff)
    return diffs
