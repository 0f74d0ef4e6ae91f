"""`lockstep retrain branch|gitlab-mr`: commit a reproduced pipeline on a new branch for review; push
it and open its GitLab merge request."""

from __future__ import annotations

import argparse
from pathlib import Path

from lockstep.commands import ExitCode


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    help = (
        "commit a reproduced pipeline on a new branch for review (branch); push it"
        " and open its GitLab merge request (gitlab-mr)"
    )
    sub = subparsers.add_parser("retrain", help=help, description=help)
    sub.add_argument("action", choices=["branch", "gitlab-mr"], help="what to do")
    sub.add_argument("--branch", default=None, help="branch name (default: $RETRAIN_BRANCH, else retrain/<UTC time>)")
    sub.add_argument("--request", type=Path, default=Path("reports/monitor/retrain.json"), help="the monitor's request")
    sub.add_argument("--body", type=Path, default=Path("reports/monitor/retrain-pr.md"), help="description file")
    sub.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from lockstep.monitor import retrain

    if args.action == "branch":
        retrain.branch(args.branch, args.request, args.body)
    else:
        retrain.gitlab_mr(args.body)
    return ExitCode.OK
