"""`lockstep prompts check|answer|evaluate`: check the prompts and golden sets, answer a golden set
(stage prompt_outputs), score the answers (stage prompt_evaluate)."""

from __future__ import annotations

import argparse

from lockstep.commands import ExitCode, add_params, error, load_params


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    help = "check prompts, answer a golden set, or score the answers"
    sub = subparsers.add_parser("prompts", help=help, description=help)
    add_params(sub)
    sub.add_argument("action", choices=["check", "answer", "evaluate"], help="what to do")
    sub.add_argument("name", nargs="?", help="a prompt in prompts/ (answer, evaluate)")
    sub.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.action == "check":
        from lockstep.prompts import check

        problems = check(load_params(args))
        for problem in problems:
            error(problem)
        return ExitCode.FAILED if problems else ExitCode.OK
    if not args.name:
        error(f"lockstep prompts {args.action}: name a prompt, e.g. `lockstep prompts {args.action} NAME`")
        return ExitCode.FAILED
    from lockstep import prompt_eval

    if args.action == "answer":
        count, out = prompt_eval.answer(args.name, load_params(args))
        print(f"prompt_outputs: {args.name}: {count} answers -> {out}")
    else:
        metrics = prompt_eval.evaluate(args.name, load_params(args))
        print(f"prompt_evaluate: {args.name}: " + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
    return ExitCode.OK
