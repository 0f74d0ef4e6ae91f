"""`lockstep canary-rehearsal` and `lockstep monitor-rehearsal`: the service on loopback driven by
synthetic traffic, judged by the canary controller or by the monitor."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from lockstep.commands import LOCK_HELP, add_params, load_params, needs_serve_extra
from lockstep.commands.canary import OUTCOME_EXIT
from lockstep.commands.monitor import report


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    help = "serve on loopback, drive traffic, run the canary to its decision"
    sub = subparsers.add_parser("canary-rehearsal", help=help, description=help)
    add_params(sub)
    sub.add_argument("--lock", type=Path, default=None, help=LOCK_HELP)
    sub.add_argument("--inject", default=os.environ.get("INJECT") or None, help="latency=300ms or errors=5%%")
    sub.set_defaults(run=run)
    help = "serve on loopback, send windows of test-split traffic (shifted with --shift), judge them as monitor does"
    sub = subparsers.add_parser("monitor-rehearsal", help=help, description=help)
    add_params(sub)
    sub.add_argument(
        "--shift",
        default=os.environ.get("SHIFT") or None,
        help="FEATURE:+Nsd, comma-separated, or top:N:+Nsd / bottom:N:+Nsd (the features the model uses most / least)",
    )
    sub.add_argument("--lock", type=Path, default=None, help=LOCK_HELP)
    sub.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    needs_serve_extra()
    if args.command == "canary-rehearsal":
        from lockstep.rehearsal.canary import rehearsal

        outcome = rehearsal(load_params(args), args.lock, args.inject)
        print(f"canary-rehearsal: {outcome.decision} (inject {args.inject or 'none'}); decisions in {outcome.record}")
        print(f"canary-rehearsal: requests by HTTP status: {outcome.statuses}")
        return OUTCOME_EXIT[outcome.decision]
    from lockstep.rehearsal.monitor import rehearsal as monitor_rehearsal

    sent = monitor_rehearsal(load_params(args), args.shift, args.lock)
    print(
        f"monitor-rehearsal: {sent.windows} windows of {sent.rows} rows from {sent.shifted};"
        f" {sent.failed} failed request(s)"
    )
    return report(sent.verdict)
