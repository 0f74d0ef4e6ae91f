"""`lockstep aa`: A/A calibration of the gate's rules: the same prompts and model answered K times,
every ordered pair of runs judged with the configured rules, the false alarms counted."""

from __future__ import annotations

import argparse

from lockstep.commands import ExitCode, add_params


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    help = "A/A calibration: answer the prompts K times, report how often the gate's rules fail"
    sub = subparsers.add_parser("aa", help=help, description=help)
    add_params(sub)
    sub.add_argument("names", nargs="*", help="prompts of conf/prompts (default: all)")
    sub.add_argument("--runs", type=int, default=3, help="runs of the same prompts and model (default: 3)")
    sub.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from lockstep.calibration import calibrate
    from lockstep.config import settings_file

    result = calibrate(args.params, args.names, args.runs)
    settings = settings_file(args.params)
    rules = settings if settings.is_file() else args.params
    prompts = ", ".join(result.prompts)
    print(f"aa: {result.runs} runs of {prompts}: {result.answers} answers, interleaved, in {result.seconds:.0f} s")
    for name, (differ, total) in result.differing.items():
        print(f"  {name}: {differ} of {total} answers differ between runs")
    width = max(map(len, result.verdicts), default=0)
    print(f"  {'check':{width}}  fail  inconclusive  pass")
    for check, counts in result.verdicts.items():
        print(f"  {check:{width}}  {counts['fail']:4}  {counts['inconclusive']:12}  {counts['pass']:4}")
    rate = f"{100 * result.false_alarm_rate:.0f} %"
    print(f"aa: false alarms: {result.failed} of {result.comparisons} comparisons ({rate}),"
          f" inconclusive {result.inconclusive}, with the rules of {rules}")  # fmt: skip
    return ExitCode.OK
