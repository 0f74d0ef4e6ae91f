"""The generated CI's steps, executed as written: `make ci` with stand-ins for the tools it calls
(its order, what stops it, its exit status), and the GitLab notes job's script against a
loopback GitLab, with the variables GitLab CI sets."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from conftest import Loopback, bake

TOKEN = "glpat-note-token-0123456789"
# A stand-in for each tool `make ci` calls from .venv/bin: it logs its name and arguments, and
# fails, with an error of its kind, when its name and first argument are in $FAIL.
STAND_IN = """#!/bin/sh
echo "$(basename "$0") $*" >> "$CALLS"
case " $FAIL " in
  *" $(basename "$0"):$1 "*) echo "ERROR: $(basename "$0") $1 failed (stand-in)" >&2; exit 1 ;;
esac
"""
TOOLS = ("pre-commit", "python", "lockstep", "dvc")


@pytest.fixture(scope="module")
def baked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ci-steps")
    return bake(out, ci_provider="gitlab", dvc_remote="none", include_llm="no", init_git="no")


@pytest.fixture
def project(baked: Path, tmp_path: Path) -> Path:
    """A fresh copy of the bake for each test (each gives it its own .venv)."""
    return Path(shutil.copytree(baked, tmp_path / baked.name, symlinks=True))


# --- make ci ----------------------------------------------------------------------------------------


def make_ci(project: Path, fail: str = "", *args: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """`make ci` run as a developer runs it, its tools stood in for; the result and the tools' calls."""
    bin_dir = project / ".venv" / "bin"
    if not bin_dir.exists():
        bin_dir.mkdir(parents=True)
        for tool in TOOLS:
            (bin_dir / tool).write_text(STAND_IN)
            (bin_dir / tool).chmod(0o755)
    calls = project / "calls.log"
    calls.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE") and k != "BASE"}
    env |= {"CALLS": str(calls), "FAIL": fail}
    result = subprocess.run(["make", "ci", *args], cwd=project, capture_output=True, text=True, env=env, timeout=60)
    return result, calls.read_text().splitlines() if calls.exists() else []


HOOKS_AND_TESTS = ["pre-commit run --all-files --show-diff-on-failure", "python -m pytest"]
PARAMS_AND_LOCK = ["lockstep params --check", "lockstep check-lock"]
REPRO_PULL = ["dvc pull --allow-missing", "lockstep samples restore", "dvc repro --pull --allow-missing"]
REPRO_CI = [*REPRO_PULL, "dvc repro --force --single-item --glob prepare train evaluate",
            "lockstep check-lock --reproduced"]  # fmt: skip


def test_make_ci_runs_the_pull_request_steps_in_ci_order(project: Path) -> None:
    result, calls = make_ci(project, "", "BASE=develop")
    assert result.returncode == 0, result.stderr
    assert calls == [*HOOKS_AND_TESTS, *PARAMS_AND_LOCK, *REPRO_CI, "lockstep gate --base develop"]


def test_a_failing_repro_fails_make_ci_and_the_gate_still_runs(project: Path) -> None:
    # docs/ci-gate.md, "Locally: make ci": the gate runs even when `make repro-ci` failed, and
    # `make ci` fails when either did
    result, calls = make_ci(project, "dvc:repro")
    assert result.returncode != 0
    assert "ERROR: dvc repro failed (stand-in)" in result.stderr
    assert calls == [*HOOKS_AND_TESTS, *PARAMS_AND_LOCK, *REPRO_PULL, "lockstep gate --base main"]


def test_a_failing_gate_fails_make_ci(project: Path) -> None:
    result, calls = make_ci(project, "lockstep:gate")
    assert result.returncode != 0
    assert "ERROR: lockstep gate failed (stand-in)" in result.stderr
    assert calls == [*HOOKS_AND_TESTS, *PARAMS_AND_LOCK, *REPRO_CI, "lockstep gate --base main"]


@pytest.mark.parametrize(
    ("fail", "ran"),
    [
        ("pre-commit:run", HOOKS_AND_TESTS[:1]),
        ("python:-m", HOOKS_AND_TESTS),
        ("lockstep:params", [*HOOKS_AND_TESTS, *PARAMS_AND_LOCK[:1]]),
        ("lockstep:check-lock", [*HOOKS_AND_TESTS, *PARAMS_AND_LOCK]),
    ],
)
def test_make_ci_stops_at_the_first_failure_among_the_first_four(project: Path, fail: str, ran: list[str]) -> None:
    result, calls = make_ci(project, fail)
    assert result.returncode != 0
    assert f"ERROR: {fail.replace(':', ' ')} failed (stand-in)" in result.stderr
    assert calls == ran  # nothing after the failing step: no repro, no gate


# --- the GitLab notes job ---------------------------------------------------------------------------


class GitLab(Loopback):
    """A loopback GitLab holding one open merge request, its latest pipeline, and its notes."""

    pipeline: ClassVar[dict[str, Any]] = {}
    notes: ClassVar[list[dict[str, Any]]] = []
    writes: ClassVar[list[tuple[str, str]]] = []

    def answer(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        path, query = url.path.removeprefix("/api/v4"), dict(urllib.parse.parse_qsl(url.query))
        fields = dict(urllib.parse.parse_qsl(self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()))
        if self.headers.get("PRIVATE-TOKEN") != TOKEN:
            return self.reply(401, {"message": "401 Unauthorized"})
        p, job = GitLab.pipeline, {"id": GitLab.pipeline["id"] + 1000, "name": "merge-request"}
        mr = "/projects/42/merge_requests/3"
        if self.command == "GET":
            if path == "/user":
                return self.reply(200, {"id": 77})
            if path == "/projects/42/merge_requests":
                wanted = query.get("state") == "opened" and query.get("target_branch") == "main"
                return self.reply(200, [{"iid": 3}] if wanted and query.get("page") == "1" else [])
            if path == f"{mr}/pipelines":
                return self.reply(200, [{"id": p["id"], "web_url": f"https://gitlab.example/p/{p['id']}"}])
            if path == f"/projects/42/pipelines/{p['id']}/jobs":
                return self.reply(200, [job | {"status": p["status"]}] if query.get("page") == "1" else [])
            if path == f"/projects/42/jobs/{job['id']}/artifacts/reports/gate/report.md":
                return self.reply(200, p["report"].encode(), "text/plain")
            if path == f"{mr}/notes":
                return self.reply(200, GitLab.notes if query.get("page") == "1" else [])
        if self.command == "POST" and path == f"{mr}/notes":
            GitLab.writes.append(("POST", path))
            GitLab.notes.append({"id": 500 + len(GitLab.notes), "author": {"id": 77}, "body": fields["body"]})
            return self.reply(201, GitLab.notes[-1])
        if self.command == "PUT" and (m := re.fullmatch(rf"{mr}/notes/(\d+)", path)):
            GitLab.writes.append(("PUT", path))
            (note,) = [n for n in GitLab.notes if n["id"] == int(m[1])]
            note["body"] = fields["body"]
            return self.reply(200, note)
        return self.reply(404, {"message": "404 Not found"})

    do_GET = do_POST = do_PUT = answer


@pytest.fixture
def gitlab() -> Iterator[str]:
    """The loopback GitLab's API URL."""
    GitLab.notes, GitLab.writes = [], []
    server = HTTPServer(("127.0.0.1", 0), GitLab)
    threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/api/v4"
    server.shutdown()
    server.server_close()


def rule_matches(rule: str, env: dict[str, str]) -> bool:
    """A GitLab `rules: if:` of `$VAR == "value"` comparisons joined by `&&`, evaluated."""
    terms = [t.strip() for t in rule.split("&&")]
    values = [[env.get(side[1:], "") if side.startswith("$") else side.strip('"') for side in t.split(" == ")]
              for t in terms]  # fmt: skip
    assert all(len(v) == 2 for v in values), rule
    return all(left == right for left, right in values)


def test_the_notes_job_posts_one_note_then_updates_it(project: Path, gitlab: str) -> None:
    ci = yaml.safe_load((project / ".gitlab-ci.yml").read_text(encoding="utf-8"))
    job = ci["merge-request-notes"]
    # The variables GitLab CI sets for a scheduled pipeline on the default branch, the file's own
    # variables, and the token from the project's protected, masked variable
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "CI_", "GITLAB"))}
    env |= {"CI": "true", "GITLAB_CI": "true", "CI_PIPELINE_SOURCE": "schedule", "CI_COMMIT_BRANCH": "main",
            "CI_DEFAULT_BRANCH": "main", "CI_API_V4_URL": gitlab, "CI_PROJECT_ID": "42",
            "CI_PROJECT_DIR": str(project), "LOCKSTEP_TASK": "notes", "GITLAB_NOTE_TOKEN": TOKEN}  # fmt: skip
    env |= {k: str(v).replace("$CI_PROJECT_DIR", str(project)) for k, v in ci["variables"].items()}
    assert [rule_matches(r["if"], env) for r in job["rules"]] == [True]
    assert not rule_matches(job["rules"][0]["if"], env | {"CI_PIPELINE_SOURCE": "merge_request_event"})
    # `make setup` (the default before_script) stands in as this environment, which has the toolkit
    (project / ".venv").symlink_to(Path(sys.executable).parent.parent)
    script = "\n".join(job["script"])

    def run_job() -> subprocess.CompletedProcess:
        result = subprocess.run(["bash", "-eo", "pipefail", "-c", script], cwd=project, env=env,
                                capture_output=True, text=True, timeout=120)  # fmt: skip
        assert TOKEN not in result.stdout + result.stderr
        return result

    GitLab.pipeline = {"id": 100, "status": "failed", "report": "❌ **Gate failed**: 1 of 5 checks broken\n"}
    first = run_job()
    assert first.returncode == 0, first.stderr
    assert "report-gitlab: !3: posted: pipeline 100, merge-request failed" in first.stdout
    assert "report-gitlab: 1 open merge request(s), 0 failed" in first.stdout
    (note,) = GitLab.notes
    assert "## Lockstep gate: ❌ did not pass (failed)" in note["body"] and "1 of 5 checks broken" in note["body"]

    GitLab.pipeline = {"id": 101, "status": "success", "report": "✅ **Gate passed**: 5 checks\n"}
    second = run_job()
    assert second.returncode == 0, second.stderr
    assert "report-gitlab: !3: updated: pipeline 101, merge-request success" in second.stdout
    assert [n["id"] for n in GitLab.notes] == [note["id"]]  # the same note, not a second one
    assert "## Lockstep gate: ✅ passed" in GitLab.notes[0]["body"] and "Gate failed" not in GitLab.notes[0]["body"]
    assert GitLab.writes == [("POST", "/projects/42/merge_requests/3/notes"),
                             ("PUT", f"/projects/42/merge_requests/3/notes/{note['id']}")]  # fmt: skip

    again = run_job()  # nothing new: the note already shows pipeline 101
    assert "report-gitlab: !3: already shows pipeline 101" in again.stdout and len(GitLab.writes) == 2
