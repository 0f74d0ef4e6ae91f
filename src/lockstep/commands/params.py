"""`lockstep params [--check] [OVERRIDES]`: compose params.yaml from conf/, or check that it is fresh."""

from __future__ import annotations

import argparse
import sys

from lockstep.commands import ExitCode, add_params


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    help = "compose params.yaml from conf/ with DVC's Hydra composer"
    sub = subparsers.add_parser("params", help=help, description=help)
    add_params(sub)
    sub.add_argument("--check", action="store_true", help="fail when params.yaml is stale instead of writing it")
    sub.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model=random_forest")
    sub.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from lockstep import params

    if not args.check:
        params.write(args.overrides, args.params)
        print(f"{args.params} composed from {params.CONF_DIR}/")
        return ExitCode.OK
    diff = params.stale(args.params)
    if diff is None:
        return ExitCode.OK
    print(diff, file=sys.stderr)
    print(
        f"error: {args.params} is stale with respect to {params.CONF_DIR}/; run `make params` and commit it",
        file=sys.stderr,
    )
    return ExitCode.FAILED
