"""The commands the docs show are the commands that work, and print what the docs say they print.

A code block preceded by `<!-- runnable ... -->` in docs/*.md is part of a page's walkthrough.
Each page's marked blocks run in page order, in one shell (so `cd` and `source` carry over),
from the directory a default bake was made in, as a reader following the page would. A text
block preceded by `<!-- output ... -->` is what the runnable block before it prints: each of its
lines must appear in that block's output, but for `...` (lines left out) and the figures that
depend on the machine (latencies, run ids), which match any value.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import GIT_ID, ROOT, bake, project_env

pytestmark = pytest.mark.slow

MARKED = re.compile(r"<!-- (runnable|output)[^>]*-->\n```(?:bash|sh|text)\n(.*?)```", re.S)
PAGES = sorted(p for p in (ROOT / "docs").glob("*.md") if "<!-- runnable" in p.read_text(encoding="utf-8"))
# What differs from machine to machine in a documented line: the figure a pattern's group 2 holds
VOLATILE = re.compile(r"(latency_p\d+_m?s=)([\d.]+)|( run )([0-9a-f]{32})")


def blocks(page: Path) -> list[tuple[str, list[str]]]:
    """The page's runnable blocks in order, each with the output lines documented after it."""
    found: list[tuple[str, list[str]]] = []
    for kind, body in MARKED.findall(page.read_text(encoding="utf-8")):
        if kind == "runnable":
            found.append((body, []))
        else:
            assert found, f"{page.name}: an output block with no runnable block before it"
            found[-1][1].extend(line for line in body.splitlines() if line.strip() and "..." not in line)
    return found


def pattern(line: str) -> re.Pattern[str]:
    """A documented line as a pattern: its text, any run of spaces as any, the machine's figures as any value."""
    parts, end = [], 0
    line = " ".join(line.split())
    for match in VOLATILE.finditer(line):
        label = match.group(1) or match.group(3)
        parts += [re.escape(line[end : match.start()]), re.escape(label), r"[\d.]+" if match.group(1) else "[0-9a-f]+"]
        end = match.end()
    parts.append(re.escape(line[end:]))
    return re.compile("".join(parts).replace(r"\ ", r"\s+"))


def test_some_page_has_runnable_blocks_and_documented_output() -> None:
    assert PAGES, "no docs page marks a runnable block"
    assert any(lines for page in PAGES for _, lines in blocks(page)), "no runnable block has its output marked"


def test_a_documented_line_matches_only_its_own_text() -> None:
    line = "evaluate: accuracy=0.9649, latency_p50_ms=0.6205 run 18d19dba25554fb991a136a40188cb5c"
    assert pattern(line).search("evaluate:   accuracy=0.9649, latency_p50_ms=1.5 run " + "a" * 32)
    assert not pattern(line).search("evaluate: accuracy=0.9648, latency_p50_ms=0.6205 run " + "a" * 32)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_runnable_blocks_of_a_page(tmp_path: Path, page: Path, recorded_answers: Callable[[Path], None]) -> None:
    project = bake(tmp_path)
    recorded_answers(project)
    marked = blocks(page)
    script = "set -euo pipefail\n" + "\n".join(f"echo '>>> block {i + 1}'\n{b}" for i, (b, _) in enumerate(marked))
    env = project_env(project) | GIT_ID
    env["PATH"] = env["PATH"].split(":", 1)[1]  # as a reader's shell: the project's .venv is not on PATH yet
    # stderr into stdout, in order, as a reader's terminal shows both (MLflow writes its lines to stderr)
    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    assert result.returncode == 0, f"{page.name}: {result.stdout[-6000:]}"
    printed = re.split(r">>> block \d+\n", result.stdout)[1:]
    assert len(printed) == len(marked)
    for i, ((_, documented), output) in enumerate(zip(marked, printed, strict=True)):
        missing = [line for line in documented if not pattern(line).search(output)]
        assert not missing, f"{page.name}, block {i + 1} did not print what the page shows: {missing}"
