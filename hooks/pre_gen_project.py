"""Validate the answers before anything is written; each failure is one line naming the fix.

Runs in cookiecutter's own environment (pipx, uvx, cruft...): standard library only.
A non-zero exit makes cookiecutter stop and remove the half-made project directory.
"""

import keyword
import re
import sys

ANSWERS = {
    "project_name": {{ cookiecutter.project_name | jsonify }},
    "project_slug": {{ cookiecutter.project_slug | jsonify }},
    "package_name": {{ cookiecutter.package_name | jsonify }},
    "author_email": {{ cookiecutter.author_email | jsonify }},
    "python_version": {{ cookiecutter.python_version | jsonify }},
    "license": {{ cookiecutter.license | jsonify }},
    "ci_provider": {{ cookiecutter.ci_provider | jsonify }},
    "dvc_remote": {{ cookiecutter.dvc_remote | jsonify }},
    "include_llm": {{ cookiecutter.include_llm | jsonify }},
    "init_git": {{ cookiecutter.init_git | jsonify }},
}

CHOICES = {
    "python_version": ("3.11", "3.12", "3.13"),
    "license": ("MIT", "Apache-2.0", "BSD-3-Clause", "Proprietary"),
    "ci_provider": ("github", "gitlab", "both", "none"),
    "dvc_remote": ("local", "s3", "gcs", "azure", "none"),
    "include_llm": ("yes", "no"),
    "init_git": ("yes", "no"),
}

# Top-level modules the generated project imports (directly or through its tools): a package
# with one of these names would shadow it and break the pipeline in confusing ways.
DEPENDENCY_MODULES = {
    "alembic", "conf", "data", "dvc", "dvc_data", "dvc_objects", "flask", "git", "hydra", "joblib",
    "mlflow", "models", "numpy", "omegaconf", "openai", "pandas", "pre_commit", "prompts", "pydantic",
    "pytest", "reports", "ruff", "scipy", "sklearn", "sqlalchemy", "src", "tests", "uv", "xllamacpp", "yaml",
}

MAX_NAME = 60  # longer names push generated imports past the line length ruff enforces
SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
PACKAGE = re.compile(r"^[a-z_][a-z0-9_]*$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def problems(answers: dict) -> list:
    """Every invalid answer, as 'field: value is wrong; expected ...' lines."""
    found = []
    slug, package = answers["project_slug"], answers["package_name"]
    if not answers["project_name"].strip():
        found.append("project_name: is empty; give the project a name")
    slug_ok = bool(SLUG.match(slug)) and len(slug) <= MAX_NAME
    if not any(c.isalnum() for c in slug):  # e.g. '_', which cookiecutter.json falls back to for '!!!'
        found.append(
            f"project_slug: {slug!r} has no letters or digits (none can be derived from the project name);"
            " give one, e.g. project_slug=support-insights"
        )
    elif not slug_ok:
        found.append(
            f"project_slug: {slug!r} is not a valid slug; use lowercase letters, digits and single dashes,"
            f" at most {MAX_NAME} characters (e.g. support-insights)"
        )
    # cookiecutter.json derives the package from the slug, with '_' in front of a leading digit
    derived = slug.replace("-", "_")
    if not slug_ok and package in (derived, "_" + derived):
        pass  # derived from the bad slug: fixing the slug fixes it, one error is enough
    elif not PACKAGE.match(package) or not package.isidentifier() or len(package) > MAX_NAME:
        found.append(
            f"package_name: {package!r} is not a valid Python package name; use lowercase letters, digits"
            f" and underscores, starting with a letter, at most {MAX_NAME} characters (e.g. support_insights)"
        )
    elif keyword.iskeyword(package) or keyword.issoftkeyword(package):
        found.append(f"package_name: {package!r} is a Python keyword; choose another name (e.g. {package}_ai)")
    elif package in sys.stdlib_module_names:
        found.append(
            f"package_name: {package!r} shadows the standard-library module of that name;"
            f" choose another name (e.g. {package}_ai)"
        )
    elif package in DEPENDENCY_MODULES:
        found.append(
            f"package_name: {package!r} shadows a module the project depends on; choose another name"
            f" (e.g. {package}_ai)"
        )
    if not EMAIL.match(answers["author_email"]):
        found.append(f"author_email: {answers['author_email']!r} is not an e-mail address; use name@domain.tld")
    for field, allowed in CHOICES.items():
        if answers[field] not in allowed:
            found.append(f"{field}: {answers[field]!r} is not one of {', '.join(allowed)}")
    return found


def main() -> int:
    found = problems(ANSWERS)
    for line in found:
        print(f"error: {line}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
