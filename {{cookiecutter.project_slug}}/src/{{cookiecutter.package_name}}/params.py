"""Compose params.yaml from conf/ with DVC's own Hydra composer, or check that it is fresh.

`python -m {{ cookiecutter.package_name }}.params` writes params.yaml (what
`dvc exp run` does before every experiment); `--check` exits 1 when the committed params.yaml
differs from what conf/ composes to, because `dvc repro` never composes and would silently
use stale values.
"""

from __future__ import annotations

import argparse
import difflib
import sys
import tempfile
from pathlib import Path

CONF_DIR = Path("conf")
CONFIG_NAME = "config"
PARAMS_FILE = Path("params.yaml")


def compose(conf_dir: Path = CONF_DIR, overrides: list[str] | None = None) -> str:
    """The text DVC writes to params.yaml for this conf/ and these Hydra overrides."""
    from dvc.utils.hydra import compose_and_dump

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "params.yaml"
        compose_and_dump(out, str(conf_dir.resolve()), None, CONFIG_NAME, str(conf_dir.resolve()), overrides or [])
        return out.read_text(encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {__package__}.params", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when params.yaml is stale instead of writing it")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model=random_forest")
    args = parser.parse_args(argv)
    try:
        expected = compose(CONF_DIR, args.overrides)
    except Exception as exc:  # Hydra raises many types; all mean conf/ cannot be composed
        print(f"error: {CONF_DIR}/: cannot compose {CONFIG_NAME}.yaml: {exc}".splitlines()[0], file=sys.stderr)
        return 1
    if not args.check:
        PARAMS_FILE.write_text(expected, encoding="utf-8")
        print(f"{PARAMS_FILE} composed from {CONF_DIR}/")
        return 0
    current = PARAMS_FILE.read_text(encoding="utf-8") if PARAMS_FILE.exists() else ""
    if current == expected:
        return 0
    diff = difflib.unified_diff(current.splitlines(), expected.splitlines(), str(PARAMS_FILE), "composed", lineterm="")
    print("\n".join(diff), file=sys.stderr)
    print(
        f"error: {PARAMS_FILE} is stale with respect to {CONF_DIR}/; run `make params` and commit it", file=sys.stderr
    )
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
