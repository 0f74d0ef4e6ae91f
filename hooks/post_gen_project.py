"""Finish the baked project: drop what the chosen options exclude, then make the first commit.

Runs in cookiecutter's own environment (pipx, uvx, cruft...): standard library and the git
command only, no network. DVC is already initialised by the template's own files (.dvc/config
with the chosen remote and Hydra composition enabled, the sample data's .dvc file, a
params.yaml composed from conf/), so the project works whether or not dvc is importable here;
`make setup` installs dvc and the rest. Safe to run again: cruft re-runs it in temporary
directories during `cruft update`, where it must not create a Git repository.
"""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SLUG = {{ cookiecutter.project_slug | jsonify }}
CI_PROVIDER = {{ cookiecutter.ci_provider | jsonify }}
INCLUDE_LLM = {{ cookiecutter.include_llm | jsonify }} == "yes"
INIT_GIT = {{ cookiecutter.init_git | jsonify }} == "yes"
LICENSE = {{ cookiecutter.license | jsonify }}
AUTHOR = ({{ cookiecutter.author_name | jsonify }}, {{ cookiecutter.author_email | jsonify }})
RUN_BY_CRUFT = {{ "True" if cookiecutter._commit is defined else "False" }}

# Paths that only exist for some answers: removed when the answer excludes them.
OPTIONAL_PATHS = {
    ".github": CI_PROVIDER in ("github", "both"),
    ".gitlab-ci.yml": CI_PROVIDER in ("gitlab", "both"),
    "renovate.json": CI_PROVIDER in ("gitlab", "both"),  # GitHub has .github/dependabot.yml
    "CODEOWNERS": CI_PROVIDER != "none",  # read from the root by GitHub and GitLab alike
    "tests/test_codeowners.py": CI_PROVIDER != "none",
    "LICENSE": LICENSE != "Proprietary",
    # The prompt track
    "prompts": INCLUDE_LLM,
    "conf/llm": INCLUDE_LLM,
    "conf/prompts": INCLUDE_LLM,
    "conf/prices.yaml": INCLUDE_LLM,
    "data/golden": INCLUDE_LLM,
}


def remove_unselected(root: Path) -> None:
    for relative, keep in OPTIONAL_PATHS.items():
        path = root / relative
        if keep or not path.exists():
            continue
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


def inside_cruft_scratch_dir(root: Path) -> bool:
    """cruft update/diff/check bake into a fresh tempfile.TemporaryDirectory to compute a diff."""
    parent = root.resolve().parent
    return RUN_BY_CRUFT and parent.parent == Path(tempfile.gettempdir()).resolve() and parent.name.startswith("tmp")


def git(*args: str, root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)


def first_commit(root: Path) -> str:
    """`git init -b main` and commit everything once; returns what was done, for the summary."""
    if shutil.which("git") is None:
        return "git not found: run `git init -b main` and commit when it is installed"
    if (root / ".git").exists():
        return "Git repository already present: left as it is"
    git("init", "-q", "-b", "main", root=root)
    git("add", "-A", root=root)
    identity = []
    for key, value in zip(("user.name", "user.email"), AUTHOR):
        if subprocess.run(["git", "config", key], cwd=root, capture_output=True).returncode != 0:
            identity += ["-c", f"{key}={value}"]
    git(*identity, "commit", "-q", "-m", "Start from the Lockstep template", root=root)
    return "Git repository initialised on branch main with a first commit"


def main() -> int:
    root = Path.cwd()
    remove_unselected(root)
    if INIT_GIT and not inside_cruft_scratch_dir(root):
        try:
            done = first_commit(root)
        except subprocess.CalledProcessError as exc:
            detail = (exc.stderr or exc.stdout or "").strip().splitlines()
            print(f"error: git {exc.cmd[1]}: {detail[-1] if detail else 'failed'}", file=sys.stderr)
            return 1
        print(done)
    if not inside_cruft_scratch_dir(root):
        print(f"\nNext:\n  cd {SLUG}\n  make setup    # .venv with the pipeline's tools\n  make repro    # prepare -> train -> evaluate -> register\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
