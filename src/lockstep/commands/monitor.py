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
    sub.add_argument("action", nargs="?", choices=["calibrate"],
                     help="calibrate: the drift rules' false-alarm rate on unshifted windows of the test split,"
                          " and thresholds proposed for --target")  # fmt: skip
    sub.add_argument("--windows", type=int, default=200, help="calibrate: unshifted windows to judge (default 200)")
    sub.add_argument("--target", type=float, default=0.01, help="calibrate: false alarms per window (default 0.01)")
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
    if "labels" in summary:
        labels = summary["labels"]
        quality = "; ".join(f"{name} {v['quality']['note']}" for name, v in verdict.variants.items() if v["quality"])
        print(f"monitor: {labels['read']} label(s) in {labels['path']}, {labels['unknown']} for unknown request ids;"
              f" quality: {quality or 'no windows'}")  # fmt: skip
    if verdict.request is not None:
        print(f"monitor: retraining requested ({verdict.request}); exit {ExitCode.RETRAIN:d}")
        return ExitCode.RETRAIN
    return ExitCode.OK if math.isfinite(summary["prediction_psi"]) else ExitCode.FAILED


def run(args: argparse.Namespace) -> int:
    if args.action == "calibrate":
        return calibrate(args)
    from lockstep.monitor.judge import monitor

    return report(monitor(load_params(args), registry=not args.no_registry))


def calibrate(args: argparse.Namespace) -> int:
    from lockstep.monitor.calibrate import calibrate

    found = calibrate(load_params(args), args.windows, args.target)
    print(f"monitor calibrate: {found.windows} unshifted windows of {found.rows} rows (the test split, resampled)")
    for signal, count in sorted(found.alarms.items()) or [("any signal", 0)]:
        print(f"  {signal}: {count} of {found.windows} windows ({100 * count / found.windows:.1f} %)")
    print(f"  retraining requests by the rule as configured: {found.requests}")
    print(f"monitor calibrate: thresholds unshifted windows stay below {100 * (1 - args.target):g} % of the time"
          " (conf/monitor drift; a higher one alarms less):")  # fmt: skip
    for name, (now, proposed) in found.proposals.items():
        print(f"  {name}: now {now:g}, proposed {proposed:g}")
    return ExitCode.OK
