"""GitLab notes from a scheduled job on the default branch: the gate job's status is the verdict."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import HTTPServer
from typing import Any, ClassVar

import pytest

from conftest import Loopback
from lockstep import cli
from lockstep.gate import MARKER

REPORT = f"{MARKER}\n## Lockstep gate: passed\n\n✅ **Gate passed**: 23 checks against `main`\n"


class GitLab(Loopback):
    """A loopback stand-in for the parts of GitLab's REST API the notes job reads and writes."""

    state: ClassVar[dict[str, Any]] = {}
    calls: ClassVar[list[tuple[str, str, dict[str, str]]]] = []

    def answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        fields = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
        path = urllib.parse.urlsplit(self.path).path.removeprefix("/api/v4")
        GitLab.calls.append((self.command, path, fields))
        if self.headers["PRIVATE-TOKEN"] != "note-token":
            return self.reply(401, {"message": "401 Unauthorized"})
        s = GitLab.state
        routes = {
            "/user": {"id": 77},
            "/projects/42/merge_requests": s["merge_requests"],
            "/projects/42/pipelines/100/jobs": s["jobs"],
            "/projects/42/pipelines/200/jobs": [{"id": 9, "name": "merge-request", "status": "running"}],
        }
        if self.command == "GET" and path in routes:
            return self.reply(200, routes[path])
        if self.command == "GET" and path.endswith("/pipelines"):
            iid = path.split("/")[4]
            return self.reply(200, s["pipelines"].get(iid, []))
        if self.command == "GET" and path.endswith("/notes"):
            return self.reply(200, s["notes"].get(path.split("/")[4], []))
        if self.command == "GET" and "/artifacts/" in path:
            report = s["artifacts"].get(path.split("/")[4])
            return (
                self.reply(404, {"message": "404 Not found"})
                if report is None
                else self.reply(200, report.encode(), "text/plain")
            )
        if self.command in ("POST", "PUT") and "/notes" in path:
            return self.reply(200, {"id": 500})
        return self.reply(404, {"message": "404 Not found"})

    do_GET = do_POST = do_PUT = answer


@pytest.fixture
def gitlab(monkeypatch: pytest.MonkeyPatch) -> Iterator[HTTPServer]:
    server = HTTPServer(("127.0.0.1", 0), GitLab)
    threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
    monkeypatch.setenv("CI_API_V4_URL", f"http://127.0.0.1:{server.server_port}/api/v4")
    monkeypatch.setenv("CI_PROJECT_ID", "42")
    monkeypatch.setenv("CI_DEFAULT_BRANCH", "main")
    monkeypatch.setenv("GITLAB_NOTE_TOKEN", "note-token")
    GitLab.calls = []
    GitLab.state = {
        "merge_requests": [{"iid": 3}, {"iid": 4}, {"iid": 5}],
        "pipelines": {"3": [{"id": 100, "web_url": "https://gitlab.example/p/100"}], "4": [{"id": 200}], "5": []},
        "jobs": [
            {"id": 6, "name": "checks", "status": "success"},
            {"id": 7, "name": "merge-request", "status": "failed"},
        ],
        "artifacts": {"7": REPORT},
        "notes": {},
    }
    yield server
    server.shutdown()
    server.server_close()


def posted(method: str) -> list[tuple[str, str]]:
    return [(path, fields["body"]) for m, path, fields in GitLab.calls if m == method]


def test_the_verdict_is_the_gate_jobs_status_not_the_reports_words(gitlab, capsys) -> None:
    # The report, written by the merge request's own run, says "passed"; the merge-request job failed.
    assert cli.main(["report-gitlab"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "report-gitlab: !3: posted: pipeline 100, merge-request failed",
        "report-gitlab: !4: pipeline 200: merge-request is running; the note waits for it",
        "report-gitlab: !5: no pipeline yet",
        "report-gitlab: 3 open merge request(s), 0 failed",
    ]
    ((path, body),) = posted("POST")
    assert path == "/projects/42/merge_requests/3/notes"
    lines = body.splitlines()
    assert lines[:3] == [MARKER, "<!-- lockstep-pipeline 100 -->", "## Lockstep gate: ❌ did not pass (failed)"]
    assert "is the authority: this verdict is its status, read from GitLab" in body
    assert "## Lockstep gate: passed" not in body and "✅ **Gate passed**: 23 checks" in body  # the report, below
    listed = [p for m, p, _ in GitLab.calls if m == "GET" and p.endswith("merge_requests")]
    assert listed == ["/projects/42/merge_requests"]


def test_a_note_is_updated_once_per_pipeline_and_only_the_tokens_own(gitlab, capsys) -> None:
    GitLab.state["merge_requests"] = [{"iid": 3}]
    GitLab.state["notes"]["3"] = [
        {"id": 11, "author": {"id": 1}, "body": f"{MARKER}\n## Lockstep gate: ✅ passed (forged by someone else)"},
        {"id": 12, "author": {"id": 77}, "body": f"{MARKER}\n<!-- lockstep-pipeline 99 -->\nolder"},
    ]
    assert cli.main(["report-gitlab"]) == 0
    assert [p for p, _ in posted("PUT")] == ["/projects/42/merge_requests/3/notes/12"] and not posted("POST")
    GitLab.calls = []
    GitLab.state["notes"]["3"][1]["body"] = f"{MARKER}\n<!-- lockstep-pipeline 100 -->\nshown"
    assert cli.main(["report-gitlab"]) == 0
    assert not posted("PUT") and not posted("POST")
    assert "report-gitlab: !3: already shows pipeline 100" in capsys.readouterr().out


def test_no_report_artifact_still_states_the_jobs_status(gitlab) -> None:
    GitLab.state["merge_requests"] = [{"iid": 3}]
    GitLab.state["artifacts"] = {}
    assert cli.main(["report-gitlab"]) == 0
    ((_, body),) = posted("POST")
    assert (
        "❌ did not pass (failed)" in body and "No report: the `merge-request` job stopped before the gate ran" in body
    )


def test_a_failing_merge_request_is_named_and_the_others_still_posted(gitlab, capsys) -> None:
    GitLab.state["pipelines"]["4"] = [{"id": 300}]  # no route for its jobs: GitLab answers 404
    assert cli.main(["report-gitlab"]) == 1
    out = capsys.readouterr().out
    assert "report-gitlab: !4: not posted: HTTPError: HTTP Error 404: Not Found" in out
    assert "report-gitlab: !3: posted" in out and "3 open merge request(s), 1 failed" in out
    assert "note-token" not in out


def test_an_unreachable_gitlab_fails_in_one_line_without_the_token(monkeypatch, capsys) -> None:
    with socket_held() as port:
        monkeypatch.setenv("CI_API_V4_URL", f"http://127.0.0.1:{port}/api/v4")
        for name, value in {
            "CI_PROJECT_ID": "42",
            "CI_DEFAULT_BRANCH": "main",
            "GITLAB_NOTE_TOKEN": "note-token",
        }.items():
            monkeypatch.setenv(name, value)
        assert cli.main(["report-gitlab"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: report-gitlab: cannot list the merge requests at http://127.0.0.1:{port}/api/v4")
    assert "\n" not in err and "note-token" not in err


class socket_held:
    """A loopback port bound and never listening: connections to it are refused, and no one else takes it."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return self.sock.getsockname()[1]

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def test_the_note_body_is_json_safe() -> None:
    from lockstep.publish import note

    body = note({"id": 1}, {"status": "success"}, REPORT)
    assert json.loads(json.dumps(body)) == body and body.splitlines()[2] == "## Lockstep gate: ✅ passed"
