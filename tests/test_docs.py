"""The documentation site builds in strict mode, and the README keeps its two commands first."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import ROOT


def test_docs_build_strict(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "site" / "getting-started" / "index.html").exists()


def test_readme_starts_with_the_two_commands_and_ci_runs_the_second() -> None:
    commands = [
        line.split("#")[0].strip()
        for line in (ROOT / "README.md").read_text().split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    ]
    assert commands == ["python3 dev.py demo", "python3 dev.py test"]
    assert "exec python3 dev.py test" in (ROOT / ".ci" / "run").read_text()
    workflow = (ROOT / ".github" / "workflows" / "ci.yml").read_text()
    assert "run: python3 dev.py test" in workflow


def test_the_template_repository_code_is_linted() -> None:
    # The generated projects are linted per bake (test_bake.py); this covers our own code.
    for args in (["check"], ["format", "--check"]):
        # Named explicitly: ruff would try to read the template's Jinja-templated pyproject.toml.
        files = ["dev.py", "lockstep_jinja.py", "src", "tests"]
        result = subprocess.run([sys.executable, "-m", "ruff", *args, *files], cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout
