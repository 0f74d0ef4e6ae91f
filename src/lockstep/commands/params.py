"""`lockstep params [--check] [OVERRIDES]`: compose params.yaml and settings.yaml from conf/, or check them."""

from __future__ import annotations

import argparse
import sys

from lockstep.commands import ExitCode, add_params


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    help = "compose params.yaml (the pipeline's) and settings.yaml (gates, policy, deploy, monitor) from conf/"
    sub = subparsers.add_parser("params", help=help, description=help)
    add_params(sub)
    sub.add_argument("--check", action="store_true", help="fail when either file is stale instead of writing it")
    sub.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model=random_forest")
    sub.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from lockstep import params

    if not args.check:
        written = params.write(args.overrides, args.params)
        print(f"{' and '.join(map(str, written))} composed from {params.CONF_DIR}/")
        return ExitCode.OK
    diffs = params.stale(args.params)
    if not diffs:
        return ExitCode.OK
    print("\n".join(diffs.values()), file=sys.stderr)
    files = " and ".join(map(str, diffs))
    verb = "are" if len(diffs) > 1 else "is"
    print(
        f"error: {files} {verb} stale with respect to {params.CONF_DIR}/; run `make params` and commit it",
        file=sys.stderr,
    )
    return ExitCode.FAILED
