"""Post the gate's verdict where reviewers read it: one GitLab merge-request note, updated in place.

    lockstep report-gitlab      # a pipeline schedule on the default branch (LOCKSTEP_TASK=notes)

It runs on the default branch, never in a merge request's pipeline, so the token is a protected
variable that no merge request's code or CI file ever sees. For each open merge request into
the default branch it reads the latest pipeline's `merge-request` job (the one that gates): the
job's status, read from GitLab, is the verdict the note states; the job's report artifact
(reports/gate/report.md), written by the merge request's own run, follows it. A note already
showing that pipeline is left alone. (GitHub's sticky comment is posted by the workflow's
`report` job, which reads the gate job's result the same way.)
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from lockstep.config import StageError
from lockstep.gate import MARKER

GATE_JOB = "merge-request"  # the job of .gitlab-ci.yml that runs `make gate`
REPORT = "reports/gate/report.md"
FINISHED = {"success", "failed", "canceled", "skipped"}
TOKEN_ENV = "GITLAB_NOTE_TOKEN"


def gitlab_api(url: str, method: str, token: str, fields: dict[str, str] | None = None) -> Any:
    """One call to GitLab's REST API with a token (form-encoded fields); its JSON answer.
    urllib's HTTP and connection errors are OSErrors: the caller names what it was doing."""
    data = urllib.parse.urlencode(fields).encode() if fields is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"PRIVATE-TOKEN": token})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def gitlab_file(url: str, token: str) -> str | None:
    """A raw file from GitLab's API (a job artifact), or None when there is none (404)."""
    request = urllib.request.Request(url, headers={"PRIVATE-TOKEN": token})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def note(pipeline: dict[str, Any], job: dict[str, Any], report: str | None) -> str:
    """The note: the gate job's status as the verdict, then the report the merge request's run wrote."""
    status = job["status"]
    verdict = "✅ passed" if status == "success" else f"❌ did not pass ({status})"
    lines = [MARKER, f"<!-- lockstep-pipeline {pipeline['id']} -->", f"## Lockstep gate: {verdict}", "",
             f"The `{GATE_JOB}` job of pipeline [#{pipeline['id']}]({pipeline.get('web_url', '')}) is the authority:"
             " this verdict is its status, read from GitLab. The report below was written by the merge"
             " request's own run.", ""]  # fmt: skip
    if report is None:
        lines.append(f"No report: the `{GATE_JOB}` job stopped before the gate ran (see its log).")
    else:  # the report's own verdict line is the run's word, not the job's: the heading above replaces it
        lines += [line for line in report.splitlines() if line != MARKER and not line.startswith("## Lockstep gate:")]
    return "\n".join(lines) + "\n"


def pages(url: str, token: str) -> list[Any]:
    """Every item of a paged GitLab list."""
    items: list[Any] = []
    page = 1
    while True:
        batch = gitlab_api(f"{url}{'&' if '?' in url else '?'}per_page=100&page={page}", "GET", token) or []
        items += batch
        if len(batch) < 100:
            return items
        page += 1


def post_open_merge_requests(token_env: str = TOKEN_ENV) -> list[tuple[int, str]]:
    """Post or update the note of every open merge request into the default branch; what was done
    for each, as (iid, one line); a line starting "not posted" is a failure."""
    token = os.environ.get(token_env)
    needed = ("CI_API_V4_URL", "CI_PROJECT_ID", "CI_DEFAULT_BRANCH")
    missing = [k for k in (token_env, *needed) if not os.environ.get(k)]
    if missing:
        raise StageError(
            f"set {', '.join(missing)} (GitLab CI sets all but {token_env}: a protected, masked"
            " project access token, Reporter role, api scope)"
        )
    project = f"{os.environ['CI_API_V4_URL'].rstrip('/')}/projects/{os.environ['CI_PROJECT_ID']}"
    branch = urllib.parse.quote(os.environ["CI_DEFAULT_BRANCH"], safe="")
    try:
        me = gitlab_api(f"{os.environ['CI_API_V4_URL'].rstrip('/')}/user", "GET", token)["id"]
        requests = pages(f"{project}/merge_requests?state=opened&target_branch={branch}", token)
    except OSError as exc:  # urllib's HTTP and connection errors
        raise StageError(f"cannot list the merge requests at {project}: {exc}") from None
    results = []
    for mr in requests:
        try:
            said = post_one(project, mr["iid"], me, token)
        except (OSError, KeyError, TypeError) as exc:
            said = f"not posted: {type(exc).__name__}: {exc}"
        results.append((mr["iid"], said))
    return results


def post_one(project: str, iid: int, me: int, token: str) -> str:
    pipelines = gitlab_api(f"{project}/merge_requests/{iid}/pipelines?per_page=1", "GET", token) or []
    if not pipelines:
        return "no pipeline yet"
    pipeline = pipelines[0]
    jobs = pages(f"{project}/pipelines/{pipeline['id']}/jobs?include_retried=false", token)
    gate = next((j for j in jobs if j["name"] == GATE_JOB), None)
    if gate is None:
        return f"pipeline {pipeline['id']} has no {GATE_JOB} job"
    if gate["status"] not in FINISHED:
        return f"pipeline {pipeline['id']}: {GATE_JOB} is {gate['status']}; the note waits for it"
    notes_url = f"{project}/merge_requests/{iid}/notes"
    mine = next((n for n in pages(notes_url, token) if n["author"]["id"] == me and MARKER in n["body"]), None)
    if mine is not None and f"<!-- lockstep-pipeline {pipeline['id']} -->" in mine["body"]:
        return f"already shows pipeline {pipeline['id']}"
    report = gitlab_file(f"{project}/jobs/{gate['id']}/artifacts/{REPORT}", token)
    body = {"body": note(pipeline, gate, report)}
    if mine is not None:
        gitlab_api(f"{notes_url}/{mine['id']}", "PUT", token, body)
        return f"updated: pipeline {pipeline['id']}, {GATE_JOB} {gate['status']}"
    gitlab_api(notes_url, "POST", token, body)
    return f"posted: pipeline {pipeline['id']}, {GATE_JOB} {gate['status']}"
