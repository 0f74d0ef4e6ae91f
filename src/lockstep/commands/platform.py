"""`lockstep platform up|down|compose`: MLflow, PostgreSQL and S3 on loopback, or their compose file."""

from __future__ import annotations

import argparse
from pathlib import Path

from lockstep.commands import ExitCode


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    help = "start or stop MLflow, PostgreSQL and S3 on loopback; print the compose file"
    sub = subparsers.add_parser("platform", help=help, description=help)
    sub.add_argument("action", choices=["up", "down", "compose"], help="what to do")
    sub.add_argument(
        "--dir", type=Path, default=Path(".platform"), help="state, logs and env file (default: .platform)"
    )
    sub.add_argument(
        "--bucket", action="append", default=[], help="an S3 bucket to create (a DVC remote's), repeatable"
    )
    sub.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from lockstep import platform

    if args.action == "compose":
        print(platform.compose_file().read_text(encoding="utf-8"), end="")
    elif args.action == "up":
        platform.up(args.dir, args.bucket)
    else:
        platform.down(args.dir)
    return ExitCode.OK
