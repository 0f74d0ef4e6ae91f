"""The hooks: invalid answers fail with one clear line and leave nothing; free text bakes valid
files; cruft can create and update a project (the post-generation hook is idempotent)."""

from __future__ import annotations

import json
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
