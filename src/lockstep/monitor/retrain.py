"""Retraining as a change to review: what CI runs when the monitor requests it, and what anyone can
run locally the same way.

    lockstep retrain branch      # after `make repro-ci` (make retrain-branch runs both)
    lockstep retrain gitlab-mr   # GitLab CI: push that branch, open its merge request

`branch` commits, on a new branch from the current commit, what reproducing the pipeline on the
data committed there changed: dvc.lock and the files Git tracks under reports/ (the metrics and
plots, and reports/monitor's metrics.json and retrain.json: why it was asked for). It writes the
pull request's description to reports/monitor/retrain-pr.md (ignored by Git). When dvc.lock did
not change (no new data was committed) it says so, leaves no branch and writes no description.
The branch is $RETRAIN_BRANCH, else retrain/<UTC time>. Git's identity is the caller's.

`gitlab-mr` pushes the current branch to $CI_SERVER_URL/$CI_PROJECT_PATH.git and opens a merge
request into $CI_DEFAULT_BRANCH through the GitLab API, with the token in $GITLAB_RETRAIN_TOKEN
(a project access token: Developer role, scopes api and write_repository). The token is sent in
headers only: never in a URL, an argument or a message.
"""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lockstep.config import StageError
from lockstep.publish import gitlab_api
from lockstep.vcs import git

BODY = Path("reports/monitor/retrain-pr.md")
REQUEST = Path("reports/monitor/retrain.json")
TITLE = "Retrain: the monitor requested it"


def description(request: Path) -> str:
    """The pull request's text: why (the monitor's request), what to look at (the gate)."""
    lines = ["The monitor requested retraining; the pipeline was reproduced on the data committed here.", ""]
    if request.exists():
        record = json.loads(request.read_text(encoding="utf-8"))
        lines += [f"**Why:** {record.get('reason', 'see below')}", "", "```json", json.dumps(record, indent=2), "```"]
    else:
        lines += [f"No monitor request at {request}: retrained by hand."]
    lines += ["", "The gate compares the retrained model with the champion; promote it by merging."]
    return "\n".join(lines) + "\n"


def branch(name: str | None = None, request: Path = REQUEST, body: Path = BODY) -> int:
    name = name or os.environ.get("RETRAIN_BRANCH") or f"retrain/{datetime.now(UTC):%Y%m%d-%H%M%S}"
    git("check-ref-format", "--branch", name)
    base = git("rev-parse", "HEAD")
    on = git("symbolic-ref", "-q", "HEAD", check=False)
    # The branch starts here, HEAD moves to it, and nothing is checked out: a checkout would run the
    # project's post-checkout hook, whose `dvc checkout` (under pre-commit, with the new dvc.lock
    # stashed away) would put back the outputs of the old one.
    git("branch", name)
    git("symbolic-ref", "HEAD", f"refs/heads/{name}")
    git("add", "--", "dvc.lock", "reports/")
    staged = git("diff", "--cached", "--name-only").splitlines()
    if "dvc.lock" not in staged:
        git("reset", "-q")
        git("symbolic-ref", "HEAD", on) if on else git("update-ref", "--no-deref", "HEAD", base)  # CI: a commit
        git("branch", "-q", "-D", name)
        print("retrain: reproducing changed nothing in dvc.lock: commit the new data (dvc add data/raw/...) first;"
              " no branch made")  # fmt: skip
        return 0
    reason = ""
    if request.exists():
        reason = f" ({json.loads(request.read_text(encoding='utf-8')).get('reason', '')})"
    git("commit", "-q", "-m", f"{TITLE}{reason}")
    body.parent.mkdir(parents=True, exist_ok=True)
    body.write_text(description(request), encoding="utf-8")
    print(f"retrain: branch {name} from {base[:8]}, committed {len(staged)} file(s) ({', '.join(staged[:5])}"
          f"{', ...' if len(staged) > 5 else ''}); pull request description in {body}")  # fmt: skip
    return 0


def gitlab_mr(body: Path = BODY, token_env: str = "GITLAB_RETRAIN_TOKEN") -> int:
    needed = ("CI_SERVER_URL", "CI_PROJECT_PATH", "CI_API_V4_URL", "CI_PROJECT_ID", "CI_DEFAULT_BRANCH")
    missing = [k for k in (token_env, *needed) if not os.environ.get(k)]
    if missing:
        raise StageError(
            f"cannot open the merge request: set {', '.join(missing)} (GitLab CI sets all but {token_env})"
        )
    if not body.exists():
        raise StageError(f"{body}: not found; make the branch first (make retrain-branch)")
    token = os.environ[token_env]
    source = git("symbolic-ref", "-q", "--short", "HEAD")
    target = os.environ["CI_DEFAULT_BRANCH"]
    if source == target:
        raise StageError(f"on {target}: make the retraining branch first (make retrain-branch)")
    remote = f"{os.environ['CI_SERVER_URL'].rstrip('/')}/{os.environ['CI_PROJECT_PATH']}.git"
    auth = base64.b64encode(f"oauth2:{token}".encode()).decode()
    header = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraheader",
              "GIT_CONFIG_VALUE_0": f"Authorization: Basic {auth}"}  # fmt: skip
    git("push", "-q", remote, f"HEAD:refs/heads/{source}", env=dict(os.environ) | header)
    url = f"{os.environ['CI_API_V4_URL']}/projects/{os.environ['CI_PROJECT_ID']}/merge_requests"
    fields = {"source_branch": source, "target_branch": target, "remove_source_branch": "true",
              "title": TITLE, "description": body.read_text(encoding="utf-8")}  # fmt: skip
    try:
        created: dict[str, Any] = gitlab_api(url, "POST", token, fields) or {}
    except OSError as exc:  # urllib's HTTP and connection errors
        raise StageError(f"cannot open the merge request at {url}: {exc}") from None
    print(f"retrain: pushed {source}; merge request !{created.get('iid')} into {target}: {created.get('web_url')}")
    return 0
