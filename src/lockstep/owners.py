"""Which files decide the gate's verdict, and whether CODEOWNERS makes a person review each of them.

A pull request may change anything it owns; what decides whether it passes (the stages that split
the data and train and measure the model, their parameters, the data and golden sets, the rules,
the policies, the toolkit's pin, the tests and hooks that run before the gate, the CI files)
must be reviewed by the owners. `unowned()` lists the ones no CODEOWNERS rule covers; the
project's own tests (tests/test_codeowners.py) fail on any.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

# Files that feed the gate whatever dvc.yaml says (patterns, relative to the project's root)
ALWAYS = (
    "dvc.yaml", "params.yaml", "settings.yaml", "conf/**", "*.dvc", "**/*.dvc", ".dvc/config", "policies/**",
    "pyproject.toml", "requirements.lock", "tests/**", ".pre-commit-config.yaml", "Makefile", "Dockerfile",
    "CODEOWNERS", ".github/**", ".gitlab-ci.yml", "renovate.json",
)  # fmt: skip
CODEOWNERS_PLACES = ("CODEOWNERS", ".github/CODEOWNERS", ".gitlab/CODEOWNERS", "docs/CODEOWNERS")


def tracked(root: Path) -> list[str]:
    """The files Git tracks in the project (what a pull request can change)."""
    out = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, text=True, check=True).stdout
    return [f for f in out.split("\0") if f]


def stage_files(root: Path) -> tuple[set[str], set[str]]:
    """Every file or folder a stage of dvc.yaml depends on, as DVC resolves it (a data file by its .dvc
    pointer), and every one a stage writes (metrics and reports a later stage reads are outputs, not inputs)."""
    from dvc.repo import Repo

    def relative(path: str) -> str | None:
        try:
            return Path(path).resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            return None

    with Repo(str(root)) as repo:
        outs = {r for out in repo.index.outs if (r := relative(out.fs_path))}
        deps = {r for stage in repo.index.stages for d in stage.deps if (r := relative(getattr(d, "fs_path", "")))}
    return deps - outs, outs


def prompts_dir(root: Path) -> str | None:
    """paths.prompts: the prompts are what the gate judges, as the model is; a team changes them in
    pull requests like any other work, so they feed the verdict's subject, not the verdict."""
    import yaml

    params = (
        yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8")) if (root / "params.yaml").exists() else {}
    )
    folder = ((params or {}).get("paths") or {}).get("prompts")
    return str(folder).strip("/") if folder else None


def feeding(root: Path) -> list[str]:
    """The tracked files that feed the gate: the fixed list, and every tracked file a stage depends on
    (or, for a DVC-tracked one, its pointer)."""
    import pathspec

    files = tracked(root)
    always = pathspec.GitIgnoreSpec.from_lines(ALWAYS)
    judged = prompts_dir(root)
    deps, outs = stage_files(root)
    deps = {d for d in deps if not (judged and (d == judged or d.startswith(judged + "/")))}
    chosen = set()
    for f in (f for f in files if not any(f == o or f.startswith(o.rstrip("/") + "/") for o in outs)):
        if always.match_file(f) or f in deps or any(f.startswith(d.rstrip("/") + "/") for d in deps):
            chosen.add(f)
        if f.endswith(".dvc") and f.removesuffix(".dvc") in deps:
            chosen.add(f)
    return sorted(chosen)


def rules(root: Path) -> list[str]:
    """The patterns of the project's CODEOWNERS (the first of GitHub's and GitLab's places that exists)."""
    for place in CODEOWNERS_PLACES:
        path = root / place
        if path.is_file():
            lines = path.read_text(encoding="utf-8").splitlines()
            return [line.split()[0] for line in lines if line.strip() and not line.lstrip().startswith(("#", "["))]
    return []


def unowned(root: Path = Path(".")) -> list[str]:
    """The files that feed the gate but that no CODEOWNERS rule covers."""
    import pathspec

    owned = pathspec.GitIgnoreSpec.from_lines(rules(root))
    return [f for f in feeding(root) if not owned.match_file(f)]
