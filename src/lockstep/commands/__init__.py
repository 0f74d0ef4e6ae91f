"""The `lockstep` command's subcommands: one module per command group, as DVC's `dvc/commands/`.

Each module has `add_parser(subparsers)`, which declares its command(s), and `run(args) -> int`,
which calls the library (lockstep.*, imported when it runs, so `lockstep --help` stays fast),
prints what it returned and picks the exit status from ExitCode. lockstep.cli lists the modules.
"""

from __future__ import annotations

import argparse
import os
import sys
from enum import IntEnum
from pathlib import Path
from typing import Any


class ExitCode(IntEnum):
    """Every `lockstep` command's exit status."""

    OK = 0  # done: the check passed, the policies allow, the canary promoted
    FAILED = 1  # a check failed, a policy denied, the canary rolled back, or the input is bad (`error:` line)
    NO_COMPARISON = 2  # the gate could not compare at all (no base, no metrics)
    PENDING_REVIEW = 3  # a promotion waits for a person's approval (lockstep approve)
    RETRAIN = 4  # the monitor requests retraining (reports/monitor/retrain.json)
    CANARY_UNDECIDED = 5  # max_windows windows without a canary decision: the weight stays, a person decides


PARAMS = Path(os.environ.get("LOCKSTEP_PARAMS") or "params.yaml")
LOCK_HELP = "deploy lock file (default: conf/deploy lock_file, deploy.lock.json)"


def add_params(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--params", type=Path, default=PARAMS, help=f"parameters file (default: {PARAMS})")


def load_params(args: argparse.Namespace) -> Any:
    """params.yaml (or --params), read once and validated whole: a lockstep.config.Params."""
    from lockstep import config

    return config.load_params(args.params)


def needs_serve_extra() -> None:
    """One line naming the extra to install when the service's libraries are missing."""
    from importlib.util import find_spec

    missing = [m for m in ("fastapi", "uvicorn", "prometheus_client", "jsonschema") if find_spec(m) is None]
    if missing:
        from lockstep.config import StageError

        raise StageError(f"{', '.join(missing)} not installed; install lockstep-mlops[serve] (make setup)")


def error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
