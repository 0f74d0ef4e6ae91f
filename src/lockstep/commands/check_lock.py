"""`lockstep check-lock`: fail when dvc.lock is not what the committed code, params, data and prompts produce."""

from __future__ import annotations

import argparse
import sys

from lockstep.commands import ExitCode


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    help = "fail when dvc.lock is not what the committed inputs produce"
    subparsers.add_parser("check-lock", help=help, description=help).set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from lockstep import dvc_lock

    stale = dvc_lock.check()
    if stale is None:
        print("dvc.lock: none committed yet, so nothing can be stale; the pipeline is reproduced from scratch")
        return ExitCode.OK
    if not stale:
        print("dvc.lock matches the committed code, params, data and prompts")
        return ExitCode.OK
    for stage, reasons in stale.items():
        print(f"  {stage}: {', '.join(reasons)}", file=sys.stderr)
    print(
        f"error: dvc.lock is stale for {len(stale)} stage(s); run `dvc repro {' '.join(sorted(stale))}`"
        " and commit dvc.lock",
        file=sys.stderr,
    )
    return ExitCode.FAILED
