"""Bake the defaults and every value of every option, and check what comes out.

Options that interact (CI provider, DVC remote, the prompt track) are crossed; the independent
ones (Python version, license, init_git) are cycled through the crossed combinations.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from ruamel.yaml import YAML

from conftest import ROOT, bake

OPTIONS = json.loads((ROOT / "cookiecutter.json").read_text(encoding="utf-8"))
COPIED_VERBATIM = OPTIONS["_copy_without_render"]
STRICT_YAML = YAML(typ="safe")  # ruamel.yaml's C-based loader, which pre-commit's check-yaml uses


def combinations() -> list[dict[str, str]]:
    crossed = list(itertools.product(OPTIONS["ci_provider"], OPTIONS["dvc_remote"], OPTIONS["include_llm"]))
    cycled = zip(
        itertools.cycle(OPTIONS["python_version"]),
        itertools.cycle(OPTIONS["license"]),
        itertools.cycle(OPTIONS["init_git"]),
    )
    return [
        {
            "ci_provider": ci,
            "dvc_remote": remote,
            "include_llm": llm,
            "python_version": py,
            "license": lic,
            "init_git": git,
        }
        for (ci, remote, llm), (py, lic, git) in zip(crossed, cycled, strict=False)  # cycled is endless
    ]


COMBINATIONS = combinations()


def combo_id(combo: dict[str, str]) -> str:
    return "-".join(f"{k}={v}" for k, v in combo.items())


BASE_FILES = {
    ".dvc/.gitignore", ".dvc/config", ".dvcignore", ".gitignore", ".pre-commit-config.yaml", ".python-version",
    "Makefile", "README.md",
    "conf/config.yaml", "conf/settings.yaml", "conf/data/breast_cancer.yaml", "conf/gates/default.yaml",
    "conf/policy/default.yaml", "conf/deploy/default.yaml", "conf/monitor/default.yaml", "Dockerfile", ".dockerignore",
    "conf/model/logistic_regression.yaml", "conf/model/random_forest.yaml", "conf/model/ridge.yaml",
    "data/raw/.gitignore", "data/raw/README.md", "data/raw/breast_cancer.csv", "data/raw/breast_cancer.csv.dvc",
    "dvc.yaml", "params.yaml", "settings.yaml", "pyproject.toml", "requirements.lock",
    "src/{pkg}/__init__.py", "src/{pkg}/app.py", "src/{pkg}/hooks.py", "src/{pkg}/stages/__init__.py",
    "src/{pkg}/stages/prepare.py", "src/{pkg}/stages/train.py", "src/{pkg}/stages/evaluate.py",
    "policies/project.rego", "policies/project_test.rego",
    "tests/conftest.py", "tests/test_app.py", "tests/test_params.py", "tests/test_policies.py", "tests/test_stages.py",
}  # fmt: skip
GITHUB_FILES = {
    ".github/workflows/pipeline.yml", ".github/workflows/monitor.yml", ".github/dependabot.yml", "CODEOWNERS",
    "tests/test_codeowners.py",
}  # fmt: skip
GITLAB_FILES = {".gitlab-ci.yml", "renovate.json", "CODEOWNERS", "tests/test_codeowners.py"}
LLM_FILES = {
    "prompts/summarize_ticket.yaml", "prompts/triage_ticket.yaml",
    "data/golden/.gitignore", "data/golden/README.md",
    "data/golden/summarize_ticket.jsonl", "data/golden/summarize_ticket.jsonl.dvc",
    "data/golden/triage_ticket.jsonl", "data/golden/triage_ticket.jsonl.dvc",
    "conf/llm/local.yaml", "conf/llm/openai.yaml", "conf/prompts/default.yaml", "conf/prices.yaml",
}  # fmt: skip
MAX_PROJECT_PYTHON_LINES = 400  # the team's own code; the platform is the toolkit's


def expected_files(combo: dict[str, str], pkg: str = "support_insights") -> set[str]:
    files = set(BASE_FILES)
    if combo["ci_provider"] in ("github", "both"):
        files |= GITHUB_FILES
    if combo["ci_provider"] in ("gitlab", "both"):
        files |= GITLAB_FILES
    if combo["include_llm"] == "yes":
        files |= LLM_FILES
    if combo["license"] != "Proprietary":
        files.add("LICENSE")
    return {f.format(pkg=pkg) for f in files}


def baked_files(project: Path) -> set[str]:
    files = (p.relative_to(project) for p in project.rglob("*") if p.is_file())
    return {str(f) for f in files if f.parts[0] != ".git"}


def is_verbatim(relative: str) -> bool:
    from fnmatch import fnmatch

    return any(fnmatch(relative, pattern) for pattern in COPIED_VERBATIM)


def strings(node: object) -> list[str]:
    """Every string in a parsed YAML document, mapping keys included."""
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in (*strings(k), *strings(v))]
    if isinstance(node, list):
        return [s for item in node for s in strings(item)]
    return [node] if isinstance(node, str) else []


def composed_params(project: Path, root: str = "config") -> str:
    """What DVC's own Hydra composer writes for this root of the project's conf/ (as `dvc exp run` would)."""
    from dvc.utils.hydra import compose_and_dump

    out = project.parent / "composed.yaml"
    conf = str(project / "conf")
    compose_and_dump(out, conf, None, root, conf, [])
    return out.read_text(encoding="utf-8")


def check_project(project: Path, combo: dict[str, str]) -> None:
    assert baked_files(project) == expected_files(combo)
    for relative in sorted(baked_files(project)):
        path = project / relative
        text = path.read_text(encoding="utf-8")
        if not is_verbatim(relative):
            # GitHub Actions expressions ${{ ... }} are meant to stay; anything else is a leftover.
            leftovers = re.findall(r"\{\{|\}\}|\{%|%\}", re.sub(r"\$\{\{.*?\}\}", "", text))
            assert not leftovers, f"{relative}: unrendered Jinja {leftovers}"
        if path.suffix in (".yaml", ".yml") or path.name == ".gitlab-ci.yml":
            yaml.safe_load(text)
            STRICT_YAML.load(text)  # as the project's check-yaml hook reads it: stricter than PyYAML
        elif path.suffix == ".toml":
            tomllib.loads(text)
        elif path.suffix == ".json":
            json.loads(text)
    assert (project / "params.yaml").read_text(encoding="utf-8") == composed_params(project), "params.yaml is stale"
    settings = (project / "settings.yaml").read_text(encoding="utf-8")
    assert settings == composed_params(project, "settings"), "settings.yaml is stale"
    assert list(yaml.safe_load(settings)) == ["gates", "policy", "deploy", "monitor"]
    params = yaml.safe_load((project / "params.yaml").read_text(encoding="utf-8"))
    assert not set(params) & {"gates", "policy", "deploy", "monitor"}, "no stage reads them: settings.yaml holds them"
    scalars = set(strings(yaml.safe_load((project / "dvc.yaml").read_text(encoding="utf-8"))))
    for name, path in params["paths"].items():
        repeats = [s for s in scalars if s == path or s.startswith(f"{path}/")]
        assert not repeats, f"dvc.yaml repeats paths.{name} ({path}) in {repeats}; refer to it as ${{paths.{name}}}"
    schemas = {".github/workflows/pipeline.yml": ["vendor.github-workflows"],
               ".github/workflows/monitor.yml": ["vendor.github-workflows"], ".gitlab-ci.yml": ["vendor.gitlab-ci",
               "--data-transform", "gitlab-ci"]}  # fmt: skip
    for ci_file, schema in schemas.items():
        if (project / ci_file).exists():
            checked = subprocess.run(
                [sys.executable, "-m", "check_jsonschema", "--builtin-schema", *schema, ci_file],
                cwd=project, capture_output=True, text=True,
            )  # fmt: skip
            assert checked.returncode == 0, checked.stdout + checked.stderr
    ruff = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=project, capture_output=True, text=True
    )
    assert ruff.returncode == 0, ruff.stdout + ruff.stderr
    fmt = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "--no-cache", "."],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
    lines = sum(len(p.read_text(encoding="utf-8").splitlines()) for p in (project / "src").rglob("*.py"))
    assert lines <= MAX_PROJECT_PYTHON_LINES, f"src/ has {lines} lines of Python"


def test_defaults_bake_a_committed_project(tmp_path: Path) -> None:
    project = bake(tmp_path)
    defaults = {
        k: OPTIONS[k][0] for k in ("ci_provider", "dvc_remote", "include_llm", "python_version", "license", "init_git")
    }
    check_project(project, defaults)
    log = subprocess.run(["git", "log", "--format=%s"], cwd=project, capture_output=True, text=True, check=True)
    assert log.stdout.strip() == "Start from the Lockstep template"
    status = subprocess.run(["git", "status", "--porcelain"], cwd=project, capture_output=True, text=True, check=True)
    assert status.stdout == "", "the first commit must hold every file"
    ignored = subprocess.run(
        ["git", "check-ignore", "data/raw/breast_cancer.csv", ".venv/x", "mlflow.db", "mlruns/x", ".dvc-storage/x"],
        cwd=project, capture_output=True, text=True,
    )  # fmt: skip
    assert len(ignored.stdout.split()) == 5, "data, venv, registry and local remote stay out of Git"


@pytest.mark.parametrize("combo", COMBINATIONS, ids=combo_id)
def test_every_option_bakes_valid_files(tmp_path: Path, combo: dict[str, str]) -> None:
    project = bake(tmp_path, **combo)
    check_project(project, combo)
    assert (project / ".git").is_dir() == (combo["init_git"] == "yes")
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    assert pyproject["project"]["requires-python"] == f">={combo['python_version']}"
    dvc_config = (project / ".dvc" / "config").read_text()
    if combo["dvc_remote"] == "none":
        assert "remote" not in dvc_config
    else:
        scheme = {"local": "url = ../.dvc-storage", "s3": "s3://", "gcs": "gs://", "azure": "azure://"}
        assert scheme[combo["dvc_remote"]] in dvc_config and "remote = storage" in dvc_config
    pyproject = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    (toolkit,) = [d for d in pyproject["project"]["dependencies"] if d.startswith("lockstep-mlops")]
    extras = set(re.findall(r"\[(.*)\]", toolkit)[0].split(",")) if "[" in toolkit else set()
    expected = {"llm", "serve"} if combo["include_llm"] == "yes" else {"serve"}
    expected |= {combo["dvc_remote"]} if combo["dvc_remote"] in ("s3", "gcs", "azure") else set()
    assert extras == expected
    assert toolkit.endswith(f"=={OPTIONS['_toolkit_version']}")
    assert pyproject["tool"]["uv"]["sources"]["lockstep-mlops"] == {"path": str(ROOT)}  # baked from this clone


def test_the_toolkit_version_is_stated_once_per_side() -> None:
    import lockstep

    assert OPTIONS["_toolkit_version"] == lockstep.__version__


def test_all_options_are_covered() -> None:
    for option in ("ci_provider", "dvc_remote", "include_llm", "python_version", "license", "init_git"):
        assert {c[option] for c in COMBINATIONS} == set(OPTIONS[option]), option


def test_every_template_file_is_committed() -> None:
    # The generated project's .gitignore files also apply inside this repository: a file they
    # hide (the sample data) would be missing from every clone of the template.
    template = ROOT / "{{cookiecutter.project_slug}}"
    tracked = subprocess.run(
        ["git", "ls-files", "--", str(template)], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split("\n")
    on_disk = {str(p.relative_to(ROOT)) for p in template.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert on_disk <= set(tracked), sorted(on_disk - set(tracked))


@pytest.mark.parametrize("include_llm", ["yes", "no"])
def test_a_toolkit_upgrade_re_runs_exactly_the_toolkits_stages(tmp_path: Path, include_llm: str) -> None:
    # toolkit_version is a parameter of every stage whose command the toolkit implements, and of no other
    project = bake(tmp_path, include_llm=include_llm, init_git="no")
    stages = yaml.safe_load((project / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    for name, stage in stages.items():
        body = stage.get("do", stage)
        runs_toolkit = body["cmd"].startswith("lockstep ")
        assert ("toolkit_version" in body.get("params", [])) == runs_toolkit, name
    assert sum(s.get("do", s)["cmd"].startswith("lockstep ") for s in stages.values()) == (
        3 if include_llm == "yes" else 1
    )


@pytest.mark.parametrize(
    ("template", "url"),
    [
        ("https://github.com/example/lockstep.git", "https://github.com/example/lockstep.git"),
        ("gh:example/lockstep", "https://github.com/example/lockstep"),
        ("git@gitlab.com:example/lockstep.git", "git@gitlab.com:example/lockstep.git"),
    ],
)
def test_baked_from_a_git_url_the_toolkit_is_that_repositorys_tag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, template: str, url: str
) -> None:
    # docs/toolkit.md, "Installing and pinning": baked from a Git URL, [tool.uv.sources] names the
    # tag v<version> of that repository. This clone stands in for cookiecutter's download of it.
    import cookiecutter.main

    monkeypatch.setattr(cookiecutter.main, "determine_repo_dir", lambda *args, **kwargs: (str(ROOT), False))
    project = Path(
        cookiecutter.main.cookiecutter(template, no_input=True, output_dir=str(tmp_path), extra_context={
            "include_llm": "no", "dvc_remote": "none", "ci_provider": "none", "init_git": "no"})
    )  # fmt: skip
    text = (project / "pyproject.toml").read_text(encoding="utf-8")
    version = OPTIONS["_toolkit_version"]
    assert tomllib.loads(text)["tool"]["uv"]["sources"]["lockstep-mlops"] == {"git": url, "tag": f"v{version}"}
    if not template.startswith("https://"):
        return
    # uv resolves it, offline, against a clone of this repository tagged as a release is
    remote = tmp_path / "lockstep.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(ROOT), str(remote)], check=True)
    subprocess.run(["git", "-C", str(remote), "tag", "-f", f"v{version}", "HEAD"], check=True)
    (project / "pyproject.toml").write_text(text.replace(url, remote.as_uri()), encoding="utf-8")
    uv = [str(Path(sys.executable).parent / "uv"), "pip", "compile", "pyproject.toml", "--offline", "--no-deps", "-q"]
    result = subprocess.run(uv, cwd=project, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    tagged = subprocess.run(["git", "-C", str(remote), "rev-parse", f"v{version}^{{commit}}"],
                            capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    assert f"lockstep-mlops @ git+{remote.as_uri()}@{tagged}\n" in result.stdout
