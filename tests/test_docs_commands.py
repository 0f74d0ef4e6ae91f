"""The commands the docs show are the commands that work: every block marked runnable is run.

A code block preceded by `<!-- runnable ... -->` in docs/*.md is part of a page's walkthrough.
Each page's marked blocks run in page order, in one shell (so `cd` and `source` carry over),
from the directory a default bake was made in, as a reader following the page would.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from conftest import GIT_ID, ROOT, bake, project_env

pytestmark = pytest.mark.slow

MARKED = re.compile(r"<!-- runnable[^>]*-->\n```(?:bash|sh)\n(.*?)```", re.S)
PAGES = sorted(p for p in (ROOT / "docs").glob("*.md") if MARKED.search(p.read_text(encoding="utf-8")))


def test_some_page_has_runnable_blocks() -> None:
    assert PAGES, "no docs page marks a runnable block"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_runnable_blocks_of_a_page(tmp_path: Path, page: Path) -> None:
    project = bake(tmp_path)
    blocks = MARKED.findall(page.read_text(encoding="utf-8"))
    script = "set -euo pipefail\n" + "\n".join(f"echo '>>> block {i + 1}'\n{b}" for i, b in enumerate(blocks))
    env = project_env(project) | GIT_ID
    env["PATH"] = env["PATH"].split(":", 1)[1]  # as a reader's shell: the project's .venv is not on PATH yet
    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{page.name}: {result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert result.stdout.count(">>> block") == len(blocks)
