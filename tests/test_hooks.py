"""The hooks: invalid answers fail with one clear line and leave nothing; free text bakes valid
files; cruft can create and update a project (the post-generation hook is idempotent)."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, bake, bake_cli


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("package_name=class", "error: package_name: 'class' is a Python keyword; choose another name"),
        ("package_name=json", "error: package_name: 'json' shadows the standard-library module of that name"),
        ("package_name=mlflow", "error: package_name: 'mlflow' shadows a module the project depends on"),
        ("package_name=My-Pkg", "error: package_name: 'My-Pkg' is not a valid Python package name; use lowercase"),
        ("package_name=9lives", "error: package_name: '9lives' is not a valid Python package name"),
        ("project_slug=my project", "error: project_slug: 'my project' is not a valid slug; use lowercase letters"),
        ("project_slug=Bad_Slug", "error: project_slug: 'Bad_Slug' is not a valid slug"),
        ("project_slug=1 Bad", "error: project_slug: '1 Bad' is not a valid slug"),
        ("author_email=nobody", "error: author_email: 'nobody' is not an e-mail address; use name@domain.tld"),
    ],
)
def test_invalid_answers_fail_clearly_and_leave_nothing(tmp_path: Path, answer: str, message: str) -> None:
    result = bake_cli(tmp_path, answer)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(message), result.stderr
    assert list(tmp_path.iterdir()) == [], "a failed bake must leave no directory behind"


def test_a_choice_outside_its_list_is_refused(tmp_path: Path) -> None:
    result = bake_cli(tmp_path, "python_version=3.10")
    assert result.returncode != 0
    assert "3.10 provided for choice variable python_version, but the choices are" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("name", "slug", "package"),
    [
        ('Ünïcode "Quoted": #1 {{x}}', "unicode-quoted-1-x", "unicode_quoted_1_x"),
        ("1 Project", "1-project", "_1_project"),
        ("  Extra   Spaces__and_Underscores_ ", "extra-spaces-and-underscores", "extra_spaces_and_underscores"),
        (
            "Customer Support Ticket Summaries For The Enterprise Product Line, 2025 Edition",
            "customer-support-ticket-summaries-for-the-enterprise-product",
            "customer_support_ticket_summaries_for_the_enterprise_product",
        ),
    ],
)
def test_any_project_name_derives_a_valid_slug_and_package(tmp_path: Path, name: str, slug: str, package: str) -> None:
    result = bake_cli(tmp_path, f"project_name={name}", "init_git=no")
    assert result.returncode == 0 and "error: " not in result.stderr, result.stderr
    assert [path.name for path in tmp_path.iterdir()] == [slug]
    assert [path.name for path in (tmp_path / slug / "src").iterdir()] == [package]
    assert (tmp_path / slug / "README.md").read_text(encoding="utf-8").startswith(f"# {name}\n")


def test_a_project_name_without_letters_or_digits_asks_for_a_slug(tmp_path: Path) -> None:
    result = bake_cli(tmp_path, "project_name=!!!")
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        "error: project_slug: '_' has no letters or digits (none can be derived from the project name);"
        " give one, e.g. project_slug=support-insights"
    ], result.stderr
    assert list(tmp_path.iterdir()) == []


def test_every_invalid_answer_is_reported_in_one_run(tmp_path: Path) -> None:
    result = bake_cli(tmp_path, "project_slug=Bad Slug", "package_name=class", "author_email=nobody")
    errors = [line.split(":")[1] for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode != 0 and errors == [" project_slug", " package_name", " author_email"], result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("project_name=", "error: project_name: is empty; give the project a name"),
        ("project_slug=" + "a" * 61, "error: project_slug: '" + "a" * 61 + "' is not a valid slug"),
        ("package_name=" + "a" * 61, "error: package_name: '" + "a" * 61 + "' is not a valid Python package name"),
    ],
)
def test_empty_and_over_long_names_are_refused(tmp_path: Path, answer: str, message: str) -> None:
    result = bake_cli(tmp_path, answer)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode != 0 and errors and errors[0].startswith(message), result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_long_project_name_is_cut_to_a_valid_slug(tmp_path: Path) -> None:
    result = bake_cli(tmp_path, "project_name=" + "Word " * 30, "init_git=no")
    assert result.returncode == 0, result.stderr
    (project,) = tmp_path.iterdir()
    assert len(project.name) <= 60 and project.name.startswith("word-word-") and not project.name.endswith("-")


def test_an_existing_git_repository_is_left_as_it_is(tmp_path: Path) -> None:
    # Baking over an existing checkout (cookiecutter -f): the hook must not commit into it
    project = tmp_path / "support-insights"
    project.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "trunk"], cwd=project, check=True)
    result = subprocess.run(
        [sys.executable, "-m", "cookiecutter", "--no-input", "-f", "-o", str(tmp_path), str(ROOT)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Git repository already present: left as it is" in result.stdout
    head = subprocess.run(["git", "rev-parse", "--verify", "-q", "HEAD"], cwd=project, capture_output=True)
    assert head.returncode != 0, "no commit was made in the team's repository"
    branch = subprocess.run(["git", "branch", "--show-current"], cwd=project, capture_output=True, text=True)
    assert branch.stdout.strip() == "trunk"


def test_without_git_the_bake_completes_and_says_what_to_do(tmp_path: Path) -> None:
    no_git = tmp_path / "bin"  # a PATH with Python's directory only, where git is not found
    no_git.mkdir()
    (no_git / "python").symlink_to(sys.executable)
    env = {**os.environ, "PATH": str(no_git)}
    result = subprocess.run(
        [sys.executable, "-m", "cookiecutter", "--no-input", "-o", str(tmp_path / "out"), str(ROOT)],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "git not found: run `git init -b main` and commit when it is installed" in result.stdout
    project = tmp_path / "out" / "support-insights"
    assert (project / "dvc.yaml").exists() and not (project / ".git").exists()


def test_init_git_no_makes_no_repository(tmp_path: Path) -> None:
    result = bake_cli(tmp_path, "init_git=no")
    assert result.returncode == 0, result.stderr
    assert "Git repository" not in result.stdout and "cd support-insights" in result.stdout
    assert not (tmp_path / "support-insights" / ".git").exists()


LICENSES = {
    "MIT": ("MIT License\n\nCopyright (c) {year} {author}\n", "Permission is hereby granted, free of charge"),
    "BSD-3-Clause": ("BSD 3-Clause License\n\nCopyright (c) {year}, {author}\n", "3. Neither the name of"),
    "Apache-2.0": ("Apache License\n", "Copyright {year} {author}\n"),
}


@pytest.mark.parametrize("license_id", ["MIT", "Apache-2.0", "BSD-3-Clause", "Proprietary"])
def test_each_license_choice_writes_its_own_text(tmp_path: Path, license_id: str) -> None:
    from packaging.licenses import canonicalize_license_expression

    project = bake(tmp_path, license=license_id, author_name="Ada Lovelace", init_git="no")
    pyproject = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    if license_id == "Proprietary":
        assert not (project / "LICENSE").exists() and "license" not in pyproject["project"]
        return
    assert canonicalize_license_expression(pyproject["project"]["license"]) == license_id
    text = (project / "LICENSE").read_text(encoding="utf-8")
    year = datetime.datetime.now(datetime.UTC).year
    for part in LICENSES[license_id]:
        assert part.format(year=year, author="Ada Lovelace") in text, part
    titles = [parts[0].split("\n")[0] for other, parts in LICENSES.items() if other != license_id]
    assert not any(title in text for title in titles), "one license text only"
    assert "{%" not in text and "{{" not in text


FREE_TEXT = {
    "project_name": 'Tom\'s "Quoted": #1 Prøject {{ not jinja }}',
    "project_slug": "weird-text",
    "package_name": "weird_text",
    "description": 'Says "hi": # not a comment, {{ x }} {% y %}, \\ backslash, ünïcødé ✓',
    "author_name": 'O\'Brien: "Ø" #2',
    "author_email": "o.brien+ai@example.co.uk",
}


def test_free_text_with_quotes_colons_hashes_unicode_and_braces(tmp_path: Path) -> None:
    project = bake(tmp_path, **FREE_TEXT)
    pyproject = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["description"] == FREE_TEXT["description"]
    assert pyproject["project"]["authors"] == [{"name": FREE_TEXT["author_name"], "email": FREE_TEXT["author_email"]}]
    dvc_yaml = yaml.safe_load((project / "dvc.yaml").read_text(encoding="utf-8"))
    assert dvc_yaml["artifacts"]["classifier"]["desc"] == FREE_TEXT["description"]
    readme = (project / "README.md").read_text(encoding="utf-8")
    assert readme.startswith(f"# {FREE_TEXT['project_name']}\n") and FREE_TEXT["description"] in readme
    assert FREE_TEXT["author_name"] in (project / "LICENSE").read_text(encoding="utf-8")
    for path in project.rglob("*.py"):
        compile(path.read_text(encoding="utf-8"), str(path), "exec")
    ruff = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=project, capture_output=True)
    assert ruff.returncode == 0, ruff.stdout


def test_a_long_package_name_still_passes_ruff(tmp_path: Path) -> None:
    name = "customer_support_ticket_summaries_for_the_enterprise_product"
    assert len(name) == 60
    project = bake(tmp_path, project_slug=name.replace("_", "-"), package_name=name)
    for args in (["check"], ["format", "--check"]):
        ruff = subprocess.run(
            [sys.executable, "-m", "ruff", *args, "--no-cache", "."], cwd=project, capture_output=True
        )
        assert ruff.returncode == 0, ruff.stdout


def template_repo(tmp_path: Path) -> Path:
    """A committed copy of the template, as cruft needs a Git repository to clone."""
    repo = tmp_path / "template"
    ignore = shutil.ignore_patterns(".venv", "build", ".git", "__pycache__", ".ruff_cache", ".pytest_cache")
    shutil.copytree(ROOT, repo, ignore=ignore)
    # -f: as in this repository, the sample data is committed although the project ignores it
    for cmd in (["init", "-q", "-b", "main"], ["add", "-A", "-f"], ["commit", "-q", "-m", "template"]):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *cmd], cwd=repo, check=True)
    return repo


def test_cruft_creates_checks_and_updates_a_project(tmp_path: Path) -> None:
    repo = template_repo(tmp_path)
    out = tmp_path / "out"
    cruft = [sys.executable, "-m", "cruft"]
    subprocess.run([*cruft, "create", "--no-input", "--output-dir", str(out), str(repo)], check=True)
    project = out / "support-insights"
    assert json.loads((project / ".cruft.json").read_text())["template"] == str(repo)
    assert (project / "data" / "raw" / "breast_cancer.csv").stat().st_size > 100_000
    log = subprocess.run(["git", "log", "--format=%s"], cwd=project, capture_output=True, text=True, check=True)
    assert log.stdout.strip() == "Start from the Lockstep template"
    subprocess.run(["git", "add", ".cruft.json"], cwd=project, check=True)
    git_id = ["-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", *git_id, "commit", "-q", "-m", "cruft state"], cwd=project, check=True)
    assert subprocess.run([*cruft, "check"], cwd=project).returncode == 0

    # When the template moves on, `cruft update` re-runs the hooks in scratch directories
    # and applies only the template's change: no nested repository, no other difference.
    readme = repo / "{{cookiecutter.project_slug}}" / "README.md"
    readme.write_text(readme.read_text() + "\nA line added upstream.\n")
    subprocess.run(["git", *git_id, "commit", "-q", "-am", "upstream change"], cwd=repo, check=True)
    assert subprocess.run([*cruft, "check"], cwd=project).returncode == 1
    subprocess.run([*cruft, "update", "--skip-apply-ask", "--allow-untracked-files"], cwd=project, check=True)
    assert (project / "README.md").read_text().endswith("A line added upstream.\n")
    status = subprocess.run(["git", "status", "--porcelain"], cwd=project, capture_output=True, text=True).stdout
    assert sorted(line[3:] for line in status.splitlines()) == [".cruft.json", "README.md"]


def test_cruft_update_across_the_toolkit_split_keeps_a_local_edit(tmp_path: Path) -> None:
    # A project baked before the toolkit existed, with an edit of its own, updated to today's template
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    old_gate = "{{cookiecutter.project_slug}}/src/{{cookiecutter.package_name}}/gate.py"
    shallow = subprocess.run([*git, "rev-parse", "--is-shallow-repository"], cwd=ROOT, capture_output=True, text=True)
    if shallow.stdout.strip() == "true":
        pytest.skip("a shallow clone has no commit from before the toolkit split")
    split = subprocess.run(
        [*git, "rev-list", "-1", "HEAD", "--", old_gate], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    repo = tmp_path / "template"
    subprocess.run([*git, "clone", "-q", str(ROOT), str(repo)], check=True)
    out = tmp_path / "out"
    cruft = [sys.executable, "-m", "cruft"]
    create = [*cruft, "create", "--no-input", "--checkout", f"{split}^", "--output-dir", str(out), str(repo)]
    subprocess.run(create, check=True)
    project = out / "support-insights"
    assert (project / "src" / "support_insights" / "gate.py").exists()  # the old layout
    model = project / "conf" / "model" / "logistic_regression.yaml"
    model.write_text(model.read_text().replace("C: 1.0", "C: 0.5"))  # the team's own edit
    subprocess.run([*git, "add", "-A"], cwd=project, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "Our regularisation"], cwd=project, check=True)

    head = subprocess.run([*git, "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    update = [*cruft, "update", "--skip-apply-ask", "--allow-untracked-files", "--checkout", head]
    subprocess.run(update, cwd=project, check=True)
    package = project / "src" / "support_insights"
    assert not (package / "gate.py").exists() and not (package / "config.py").exists()
    assert sorted(p.name for p in (package / "stages").glob("*.py")) == [
        "__init__.py",
        "evaluate.py",
        "prepare.py",
        "train.py",
    ]
    assert "lockstep-mlops[llm,serve]==" in (project / "pyproject.toml").read_text()
    assert "cmd: lockstep register" in (project / "dvc.yaml").read_text()
    assert "C: 0.5" in model.read_text(), "the team's edit survives the update"
    assert not list(project.rglob("*.rej")), "every hunk applied"
