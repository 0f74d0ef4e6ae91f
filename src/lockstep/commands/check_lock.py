"""`lockstep check-lock [--reproduced]`: fail when dvc.lock is not what the committed code, params, data and
prompts produce, or (after CI re-made the split and the model) when they are not the bytes it names."""

from __future__ import annotations

import argparse
import sys

from lockstep.commands import ExitCode


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    help = "fail when dvc.lock is not what the committed inputs produce"
    sub = subparsers.add_parser("check-lock", help=help, description=help)
    sub.add_argument(
        "--reproduced", action="store_true", help="after prepare and train re-ran: fail on other bytes than dvc.lock's"
    )
    sub.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from lockstep import dvc_lock

    if args.reproduced:
        return reproduced(dvc_lock.check_reproduced(), dvc_lock.REPRODUCED)
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


def reproduced(differ: list[str] | None, stages: tuple[str, ...]) -> int:
    if differ is None:
        print("reproduced: no dvc.lock committed yet, nothing to compare; the outputs are the ones just made")
        return ExitCode.OK
    if not differ:
        print(f"reproduced: {', '.join(stages)} made the bytes the committed dvc.lock names")
        return ExitCode.OK
    for line in differ:
        print(f"  {line}", file=sys.stderr)
    print(
        "error: the committed dvc.lock names outputs that the committed code and data do not make: they were not"
        " reproduced here, so they are refused; run `dvc repro` and commit dvc.lock (training must be seeded)",
        file=sys.stderr,
    )
    return ExitCode.FAILED
