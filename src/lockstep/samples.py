"""The sample data every Lockstep project is baked with, shipped inside the toolkit too.

    lockstep samples restore     # make repro-ci does this when the DVC remote is out of reach

The bundled sample (data/raw/breast_cancer.csv) and golden sets (data/golden/*.jsonl) are
tracked by DVC, so a fresh clone holds only their .dvc files. Where the DVC remote cannot be
reached (the default `local` remote is a directory on a developer's machine, so a CI runner
never sees it), this puts back every missing DVC-tracked file whose recorded md5 is that of a
bundled sample: byte for byte the data the .dvc file names, or nothing. Any other missing data
is named with the fix: a remote CI can read.
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

import yaml

from lockstep.io import file_md5


def bundled() -> dict[str, Path]:
    """The bundled sample files by md5 (in the template's own checkout: its data folder)."""
    folder = Path(str(resources.files("lockstep"))) / "samples"
    if folder.is_dir():
        files = list(folder.iterdir())
    else:  # the toolkit installed from its source tree: the samples are the template's files
        data = Path(__file__).resolve().parents[2] / "{{cookiecutter.project_slug}}" / "data"
        files = [*data.glob("raw/*.csv"), *data.glob("golden/*.jsonl")]
    return {file_md5(p): p for p in files if p.is_file()}


def tracked(root: Path) -> list[tuple[Path, str | None]]:
    """Every output of every .dvc file under root, with the md5 DVC recorded for it."""
    outs = []
    for dvcfile in sorted(root.rglob("*.dvc")):
        if ".dvc" in dvcfile.relative_to(root).parts[:-1] or not dvcfile.is_file():
            continue
        for out in (yaml.safe_load(dvcfile.read_text(encoding="utf-8")) or {}).get("outs", []):
            outs.append((dvcfile.parent / out["path"], out.get("md5")))
    return outs


def restore(root: Path = Path(".")) -> tuple[list[tuple[Path, str]], list[Path]]:
    """Each missing DVC-tracked file that is a bundled sample copied into place: (restored with its
    md5, missing and not a bundled sample)."""
    samples = bundled()
    restored, missing = [], []
    for target, md5 in tracked(root):
        if target.exists():
            continue
        if md5 in samples:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(samples[md5], target)
            restored.append((target, md5))
        else:
            missing.append(target)
    return restored, missing
