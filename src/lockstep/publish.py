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
    body = urllib.parse.urlencode({"body": text}).encode()

    def call(url: str, method: str, data: bytes | None = None) -> Any:
        request = urllib.request.Request(url, data=data, method=method, headers={"PRIVATE-TOKEN": token})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    try:
        mine = [n for n in call(f"{notes_url}?per_page=100", "GET") if MARKER in n.get("body", "")]
        if mine:
            call(f"{notes_url}/{mine[0]['id']}", "PUT", body)
        else:
            call(notes_url, "POST", body)
    except OSError as exc:  # urllib's HTTP and connection errors
        raise StageError(f"cannot post the merge-request note to {notes_url}: {exc}") from None
    print(f"gate: report {'updated' if mine else 'posted'} on merge request !{os.environ['CI_MERGE_REQUEST_IID']}")
    return 0
