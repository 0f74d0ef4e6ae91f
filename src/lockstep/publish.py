"""Post the gate's report where reviewers read it: one GitLab merge-request note, updated in place.

(GitHub's sticky comment is posted by `gh pr comment --edit-last` from the workflow.)
"""

from __future__ import annotations

import json
import os
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from lockstep.config import StageError
from lockstep.gate import MARKER


def gitlab_api(url: str, method: str, token: str, fields: dict[str, str] | None = None) -> Any:
    """One call to GitLab's REST API with a token (form-encoded fields); its JSON answer.
    urllib's HTTP and connection errors are OSErrors: the caller names what it was doing."""
    data = urllib.parse.urlencode(fields).encode() if fields is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"PRIVATE-TOKEN": token})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def post_gitlab(report_path: Path, token_env: str = "GITLAB_NOTE_TOKEN") -> int:
    """Post the report as one merge-request note, updated in place on later pipelines."""
    token = os.environ.get(token_env)
    needed = ("CI_API_V4_URL", "CI_PROJECT_ID", "CI_MERGE_REQUEST_IID")
    if not token or not all(os.environ.get(k) for k in needed):
        print(f"gate: not posting the report: set the masked CI/CD variable {token_env} (api scope) in a merge request")
        return 0
    notes_url = "{}/projects/{}/merge_requests/{}/notes".format(*(os.environ[k] for k in needed))
    try:
        text = report_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StageError(f"{report_path}: not found; run the gate first (make gate)") from None
    body = {"body": text}
    try:
        mine = [n for n in gitlab_api(f"{notes_url}?per_page=100", "GET", token) if MARKER in n.get("body", "")]
        if mine:
            gitlab_api(f"{notes_url}/{mine[0]['id']}", "PUT", token, body)
        else:
            gitlab_api(notes_url, "POST", token, body)
    except OSError as exc:  # urllib's HTTP and connection errors
        raise StageError(f"cannot post the merge-request note to {notes_url}: {exc}") from None
    print(f"gate: report {'updated' if mine else 'posted'} on merge request !{os.environ['CI_MERGE_REQUEST_IID']}")
    return 0
