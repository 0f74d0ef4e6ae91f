"""`lockstep monitor`: judge the inference log's windows for drift; tag the served versions; exit 4
(ExitCode.RETRAIN) with reports/monitor/retrain.json when retraining is due."""

from __future__ import annotations

import argparse
import math
from typing import Any

from lockstep.commands import ExitCode, add_params, load_params


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    help = (
        "judge the inference log's windows for drift; tag the served versions;"
        f" exit {ExitCode.RETRAIN:d} with reports/monitor/retrain.json when retraining is due"
    )
    sub = subparsers.add_parser("monitor", help=help, description=help)
    add_params(sub)
    sub.add_argument("--no-registry", action="store_true", help="leave the registry's tags alone")
    sub.set_defaults(run=run)


def report(verdict: Any) -> int:
    """The monitor's line, and its exit status: RETRAIN when retraining was requested."""
    summary = verdict.summary
    failing = ",".join(summary["failing"]) or "none"
    per_variant = "; ".join(
        f"{name} ({v['model']}): drift share {v['drift_share']:.2f} (weighted by use {v['weighted_drift_share']:.2f}),"
        f" prediction PSI {v['prediction_psi']:.3f}"
        for name, v in verdict.variants.items()
    )
    tagged = f"; tagged {', '.join(verdict.tagged)}" if verdict.tagged else ""
    print(f"monitor: {summary['windows_judged']} of {summary['windows']} windows judged; latest {per_variant};"
          f" failing: {failing}; {summary['breaches']} breach(es){tagged}")  # fmt: skip
    if verdict.request is not None:
        print(f"monitor: retraining requested ({verdict.request}); exit {ExitCode.RETRAIN:d}")
        return ExitCode.RETRAIN
    return ExitCode.OK if math.isfinite(summary["prediction_psi"]) else ExitCode.FAILED


def run(args: argparse.Namespace) -> int:
    from lockstep.monitor.judge import monitor

    return report(monitor(load_params(args), registry=not args.no_registry))
