"""The `lockstep` command: every generic task of a Lockstep project, run from the project's root.

This module only assembles the subcommands of lockstep.commands (one module per command group,
each with `add_parser` and `run`); each imports what it needs when it runs, so `lockstep --help`
starts at once (pre-commit hooks call it). Exit status: lockstep.commands.ExitCode (0 done, 1 a
check failed, a policy denied or the input is bad, 2 the gate could not compare, 3 pending a
person's review, 4 retraining requested, 5 canary undecided).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from lockstep import __version__
from lockstep.commands import (
    ExitCode,
    aa,
    canary,
    check_lock,
    deploy,
    gate,
    monitor,
    params,
    platform,
    policy,
    prompts,
    register,
    rehearsal,
    retrain,
    samples,
    serve,
    staging,
)

COMMANDS = [
    params, check_lock, gate, register, policy, samples, prompts, aa, platform,
    deploy, serve, staging, canary, rehearsal, monitor, retrain,
]  # fmt: skip


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="lockstep", description=__doc__.splitlines()[0])
    root.add_argument("--version", action="version", version=f"lockstep-mlops {__version__}")
    subparsers = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(subparsers)
    return root


def main(argv: list[str] | None = None) -> int:
    try:
        try:
            return run(argv)
        finally:  # here, not at exit: a reader that has gone is seen while it can still be handled
            sys.stdout.flush()
    except BrokenPipeError:  # `lockstep ... | head`: the reader stopped reading; stop quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # what is still buffered goes nowhere
        return 128 + signal.SIGPIPE  # 141, the status of a command a shell saw end on a broken pipe


def run(argv: list[str] | None) -> int:
    args = parser().parse_args(argv)
    from lockstep.config import StageError

    try:
        return int(args.run(args))
    except StageError as exc:
        print(f"error: {args.command}: {exc}", file=sys.stderr)
        return int(getattr(args, "on_error", ExitCode.FAILED))


if __name__ == "__main__":
    raise SystemExit(main())
