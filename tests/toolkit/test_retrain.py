"""`lockstep retrain`: what the retraining CI jobs run after reproducing. `branch` commits the new
dvc.lock and tracked reports on a new branch with the pull request's description beside it, or
makes no branch when nothing was reproduced; `gitlab-mr` pushes the branch and opens the merge
request through the GitLab API (a loopback server records the call; the remote is a local bare
repository). The end-to-end run in a baked project is in tests/test_gate_pr.py."""

from __future__ import annotations

import json
import subprocess
import threading
import urllib.parse
from http.server import HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from conftest import Loopback
from lockstep import cli
from lockstep.config import StageError
from lockstep.monitor import retrain

TOKEN = "glpat-retrain-token"  # pragma: allowlist secret
REQUEST = {"requested_at": "2026-11-26T05:23:00+00:00", "reason": "2 of the last 5 windows breach (dataset_drift)"}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project as CI checks it out: dvc.lock, tracked metrics, the template's ignore rules, on main."""
    for key, value in {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
                       "GIT_COMMITTER_EMAIL": "t@example.com"}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("RETRAIN_BRANCH", raising=False)
    root = tmp_path / "project"
    (root / "reports").mkdir(parents=True)
    (root / "dvc.lock").write_text("schema: '2.0'\nstages: {prepare: {deps: [{md5: aaa}]}}\n")
    (root / "reports" / "metrics.json").write_text('{"accuracy": 0.9}\n')
    (root / ".gitignore").write_text("/reports/monitor/report.html\n/reports/monitor/retrain-pr.md\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    monkeypatch.chdir(root)
    return root


def test_nothing_reproduced_makes_no_branch(repo: Path, capsys) -> None:
    base = git(repo, "rev-parse", "HEAD")
    assert cli.main(["retrain", "branch"]) == 0
    assert "changed nothing in dvc.lock" in capsys.readouterr().out
    assert git(repo, "branch", "--format=%(refname:short)") == "main" and git(repo, "rev-parse", "HEAD") == base
    assert not (repo / "reports" / "monitor" / "retrain-pr.md").exists()
    git(repo, "switch", "-q", "--detach", "HEAD")  # as CI checks out: a commit, no branch
    (repo / "reports" / "metrics.json").write_text('{"accuracy": 0.91}\n')  # reports alone are not a retraining
    assert cli.main(["retrain", "branch", "--branch", "retrain/1"]) == 0
    assert git(repo, "rev-parse", "--abbrev-ref", "HEAD") == "HEAD" and "retrain/1" not in git(repo, "branch")


def test_a_reproduced_pipeline_is_committed_on_a_new_branch(repo: Path, capsys, monkeypatch) -> None:
    (repo / "reports" / "monitor").mkdir()
    (repo / "reports" / "monitor" / "retrain.json").write_text(json.dumps(REQUEST))
    (repo / "reports" / "monitor" / "report.html").write_text("<html></html>")  # ignored: never committed
    (repo / "dvc.lock").write_text("schema: '2.0'\nstages: {prepare: {deps: [{md5: bbb}]}}\n")
    (repo / "reports" / "metrics.json").write_text('{"accuracy": 0.93}\n')
    monkeypatch.setenv("RETRAIN_BRANCH", "retrain/7")
    assert cli.main(["retrain", "branch"]) == 0
    assert "retrain: branch retrain/7 from" in capsys.readouterr().out
    assert git(repo, "rev-parse", "--abbrev-ref", "HEAD") == "retrain/7"
    changed = git(repo, "diff", "--name-only", "main", "HEAD").splitlines()
    assert changed == ["dvc.lock", "reports/metrics.json", "reports/monitor/retrain.json"]
    assert git(repo, "rev-parse", "HEAD~1") == git(repo, "rev-parse", "main")
    assert "Retrain: the monitor requested it (2 of the last 5 windows breach" in git(repo, "log", "-1", "--format=%s")
    assert git(repo, "status", "--porcelain") == ""  # the description and the HTML report stay out of Git
    body = (repo / "reports" / "monitor" / "retrain-pr.md").read_text()
    assert "**Why:** 2 of the last 5 windows breach (dataset_drift)" in body and '"requested_at"' in body
    with pytest.raises(StageError, match="not a valid branch name"):
        retrain.branch("bad..name")


class MergeRequests(Loopback):
    calls: ClassVar[list[tuple[str, str, str | None, dict[str, list[str]]]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        MergeRequests.calls.append((self.command, self.path, self.headers["PRIVATE-TOKEN"], form))
        self.reply(201, {"iid": 12, "web_url": "http://gitlab.test/group/project/-/merge_requests/12"})


def test_gitlab_merge_request_is_pushed_and_opened(repo: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    remote = tmp_path / "gitlab" / "group" / "project.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(remote)], check=True)
    (repo / "reports" / "monitor").mkdir()
    (repo / "reports" / "monitor" / "retrain.json").write_text(json.dumps(REQUEST))
    (repo / "dvc.lock").write_text("schema: '2.0'\nstages: {prepare: {deps: [{md5: ccc}]}}\n")
    assert cli.main(["retrain", "branch", "--branch", "retrain/99"]) == 0
    server = HTTPServer(("127.0.0.1", 0), MergeRequests)
    threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
    ci = {"CI_SERVER_URL": (tmp_path / "gitlab").as_uri(), "CI_PROJECT_PATH": "group/project", "CI_PROJECT_ID": "42",
          "CI_API_V4_URL": f"http://127.0.0.1:{server.server_port}/api/v4", "CI_DEFAULT_BRANCH": "main"}  # fmt: skip
    for key, value in ci.items():
        monkeypatch.setenv(key, value)
    MergeRequests.calls = []
    try:
        monkeypatch.delenv("GITLAB_RETRAIN_TOKEN", raising=False)
        assert cli.main(["retrain", "gitlab-mr"]) == 1
        assert "set GITLAB_RETRAIN_TOKEN" in capsys.readouterr().err and MergeRequests.calls == []
        monkeypatch.setenv("GITLAB_RETRAIN_TOKEN", TOKEN)
        assert cli.main(["retrain", "gitlab-mr"]) == 0
    finally:
        server.shutdown()
        server.server_close()
    out = capsys.readouterr().out
    assert "merge request !12 into main: http://gitlab.test/group/project/-/merge_requests/12" in out
    assert TOKEN not in out
    assert git(remote, "rev-parse", "retrain/99") == git(repo, "rev-parse", "HEAD")
    ((method, path, token, form),) = MergeRequests.calls
    assert (method, path, token) == ("POST", "/api/v4/projects/42/merge_requests", TOKEN)
    assert form["source_branch"] == ["retrain/99"] and form["target_branch"] == ["main"]
    assert form["title"] == ["Retrain: the monitor requested it"]
    assert "2 of the last 5 windows breach" in form["description"][0]
    # GitLab out of reach: one line naming the API, never the token
    with pytest.raises(StageError, match=r"cannot open the merge request at http://127\.0\.0\.1:\d+/api/v4/") as err:
        retrain.gitlab_mr()
    assert TOKEN not in str(err.value)
