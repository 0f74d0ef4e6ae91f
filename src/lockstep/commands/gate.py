"""`lockstep gate` and `lockstep report-gitlab`: compare metrics with a base revision against the rules
in conf/gates, and post the report on a GitLab merge request."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lockstep.commands import ExitCode, add_params, load_params


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    help = "compare metrics with a base revision against the rules in conf/gates"
    sub = subparsers.add_parser("gate", help=help, description=help)
    add_params(sub)
    sub.add_argument("--base", default="main", help="branch or revision to compare with (default: main)")
    sub.add_argument("--out", type=Path, default=Path("reports/gate"), help="directory for report.md, junit.xml")
    sub.set_defaults(run=run, on_error=ExitCode.NO_COMPARISON)
    help = "post the gate's report.md as the merge request's note"
    sub = subparsers.add_parser("report-gitlab", help=help, description=help)
    sub.add_argument("--out", type=Path, default=Path("reports/gate"), help="directory holding report.md")
    sub.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.command == "report-gitlab":
        from lockstep.publish import post_gitlab

        post_gitlab(args.out / "report.md")
        return ExitCode.OK
    from lockstep.gate import compare

    checks = compare(args.base, load_params(args), args.out)
    broken = [c for c in checks if not c.passed]
    for c in broken:
        print(f"gate: FAIL {c.metric}: {'; '.join(c.failures)}", file=sys.stderr)
    passed = len(checks) - len(broken)
    print(f"gate: {'failed' if broken else 'passed'}: {passed}/{len(checks)} checks; report {args.out / 'report.md'}")
    return ExitCode.FAILED if broken else ExitCode.OK
