"""`lockstep staging`: the locked canary evaluated over HTTP on the golden sets; the result tagged."""

from __future__ import annotations

import argparse
from pathlib import Path

from lockstep.commands import LOCK_HELP, ExitCode, add_params, load_params, needs_serve_extra

HEADLINE = ("accuracy", "r2", "rouge_l", "exact_match", "pii_leak_rate")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    help = "evaluate the locked canary over HTTP on the golden sets; tag the result"
    sub = subparsers.add_parser("staging", help=help, description=help)
    add_params(sub)
    sub.add_argument("--lock", type=Path, default=None, help=LOCK_HELP)
    sub.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    needs_serve_extra()
    from lockstep.serve.staging import REPORT, staging

    report = staging(load_params(args), args.lock)
    shown = ", ".join(f"{k}={x:.4g}" for k, x in report["metrics"].items() if k.endswith(HEADLINE))
    print(f"staging: {report['variant']} {report['deploy_id']}: {shown}")
    for failure in report["failures"]:
        print(f"staging: FAILED {failure}")
    print(f"staging: {'passed' if report['passed'] else 'failed'} -> {REPORT}, tags staging.* on the versions")
    return ExitCode.OK if report["passed"] else ExitCode.FAILED
