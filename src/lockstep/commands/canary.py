"""`lockstep canary --url URL`: step the canary's weight on a running service; promote or roll back."""

from __future__ import annotations

import argparse
from pathlib import Path

from lockstep.commands import LOCK_HELP, ExitCode, add_params, load_params, needs_serve_extra

OUTCOME_EXIT = {"promote": ExitCode.OK, "rollback": ExitCode.FAILED, "undecided": ExitCode.CANARY_UNDECIDED,
                "halted": ExitCode.CANARY_UNDECIDED}  # fmt: skip


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    help = "step the canary's weight on a running service; promote or roll back"
    sub = subparsers.add_parser("canary", help=help, description=help)
    add_params(sub)
    sub.add_argument("--url", required=True, help="the service, e.g. http://127.0.0.1:8000")
    sub.add_argument("--lock", type=Path, default=None, help=LOCK_HELP)
    sub.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    needs_serve_extra()
    from lockstep.serve.canary import canary

    return OUTCOME_EXIT[canary(load_params(args), args.url, args.lock)]
