"""The `lockstep` command: every generic task of a Lockstep project, run from the project's root.

Each subcommand imports what it needs when it runs, so `lockstep --help` starts at once
(pre-commit hooks call it). Exit status: 0 done, 1 a check failed, a policy denied, or the input
is bad (one `error:` line says what and how to fix it), 2 the gate could not compare at all,
3 a promotion is pending a person's review (`lockstep policy eval`, `lockstep promote`), 4 the monitor
requests retraining (`lockstep monitor`: reports/monitor/retrain.json).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from lockstep import __version__

PARAMS = Path(os.environ.get("LOCKSTEP_PARAMS") or "params.yaml")


def _params(args: argparse.Namespace) -> int:
    from lockstep import params

    return params.check(args.params) if args.check else params.write(args.overrides, args.params)


def _check_lock(args: argparse.Namespace) -> int:
    from lockstep.lock import check_lock

    return check_lock()


def _gate(args: argparse.Namespace) -> int:
    from lockstep.gate import compare

    return compare(args.base, args.params, args.out)


def _report(args: argparse.Namespace) -> int:
    from lockstep.publish import post_gitlab

    return post_gitlab(args.out / "report.md")


def _register(args: argparse.Namespace) -> int:
    from lockstep.registry import register

    return register(args.params)


def _promote(args: argparse.Namespace) -> int:
    from lockstep.registry import promote

    return promote(args.alias, args.params, args.gate_dir, args.policies)


def _policy(args: argparse.Namespace) -> int:
    from lockstep import policy

    if args.action == "test":
        return policy.test_command(args.policies)
    return policy.eval_command(args.params, args.gate_dir, args.policies)


def _approve(args: argparse.Namespace) -> int:
    from lockstep.policy import approve

    return approve(args.params, args.by, args.version, args.reason)


def _prompts(args: argparse.Namespace) -> int:
    if args.action == "check":
        from lockstep.prompts import check

        problems = check(args.params)
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1 if problems else 0
    if not args.name:
        raise SystemExit(f"lockstep prompts {args.action}: name a prompt, e.g. `lockstep prompts {args.action} NAME`")
    from lockstep import prompt_eval

    return (prompt_eval.answer if args.action == "answer" else prompt_eval.evaluate)(args.name, args.params)


def _aa(args: argparse.Namespace) -> int:
    from lockstep.calibration import calibrate

    result = calibrate(args.params, args.names, args.runs)
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
          f" inconclusive {result.inconclusive}, with the rules of {args.params}")  # fmt: skip
    return 0


def _samples(args: argparse.Namespace) -> int:
    from lockstep.samples import restore

    return restore()


def _platform(args: argparse.Namespace) -> int:
    from lockstep import platform

    if args.action == "compose":
        print(platform.compose_file().read_text(encoding="utf-8"), end="")
        return 0
    return platform.up(args.dir, args.bucket) if args.action == "up" else platform.down(args.dir)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="lockstep", description=__doc__.splitlines()[0])
    root.add_argument("--version", action="version", version=f"lockstep-mlops {__version__}")
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, run: Callable[[argparse.Namespace], int], help: str, params: bool = True):
        sub = commands.add_parser(name, help=help, description=help)
        if params:
            sub.add_argument("--params", type=Path, default=PARAMS, help=f"parameters file (default: {PARAMS})")
        sub.set_defaults(run=run)
        return sub

    sub = command("params", _params, "compose params.yaml from conf/ with DVC's Hydra composer")
    sub.add_argument("--check", action="store_true", help="fail when params.yaml is stale instead of writing it")
    sub.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model=random_forest")
    command("check-lock", _check_lock, "fail when dvc.lock is not what the committed inputs produce", params=False)
    sub = command("gate", _gate, "compare metrics with a base revision against the rules in conf/gates")
    sub.add_argument("--base", default="main", help="branch or revision to compare with (default: main)")
    sub.add_argument("--out", type=Path, default=Path("reports/gate"), help="directory for report.md, junit.xml")
    sub = command("report-gitlab", _report, "post the gate's report.md as the merge request's note", params=False)
    sub.add_argument("--out", type=Path, default=Path("reports/gate"), help="directory holding report.md")
    command("register", _register, "register the evaluated model and prompts in MLflow, with lineage")
    policies = {"type": Path, "default": Path("policies"), "help": "the project's Rego policies (default: policies)"}
    gate_dir = {"type": Path, "default": Path("reports/gate"), "help": "the gate's outputs (default: reports/gate)"}
    sub = command("promote", _promote, "move an alias to the registered versions when the promotion policies allow")
    sub.add_argument("--alias", default="champion", help="alias to move (default: champion)")
    sub.add_argument("--policies", **policies)
    sub.add_argument("--gate-dir", **gate_dir)
    sub = command("policy", _policy, "decide on promotion with the Rego policies (eval), or run their tests (test)")
    sub.add_argument("action", choices=["eval", "test"], help="eval: exit 0 allow, 1 deny, 3 pending_review")
    sub.add_argument("--policies", **policies)
    sub.add_argument("--gate-dir", **gate_dir)
    sub = command("approve", _approve, "record a person's approval of a model version (registry tags)")
    sub.add_argument("--by", required=True, help="who approves")
    sub.add_argument("--version", type=int, help="model version (default: the one in the registration record)")
    sub.add_argument("--reason", help="why, for the record")
    sub = command("samples", _samples, "put back missing bundled sample data (md5-checked)", params=False)
    sub.add_argument("action", choices=["restore"], help="restore: copy each missing bundled sample into place")
    sub = command("prompts", _prompts, "check prompts, answer a golden set, or score the answers")
    sub.add_argument("action", choices=["check", "answer", "evaluate"], help="what to do")
    sub.add_argument("name", nargs="?", help="a prompt in prompts/ (answer, evaluate)")
    sub = command("aa", _aa, "A/A calibration: answer the prompts K times, report how often the gate's rules fail")
    sub.add_argument("names", nargs="*", help="prompts of conf/prompts (default: all)")
    sub.add_argument("--runs", type=int, default=3, help="runs of the same prompts and model (default: 3)")
    sub = command("platform", _platform, "start or stop MLflow, PostgreSQL and S3 on loopback; print the compose file",
                  params=False)  # fmt: skip
    sub.add_argument("action", choices=["up", "down", "compose"], help="what to do")
    sub.add_argument(
        "--dir", type=Path, default=Path(".platform"), help="state, logs and env file (default: .platform)"
    )
    sub.add_argument(
        "--bucket", action="append", default=[], help="an S3 bucket to create (a DVC remote's), repeatable"
    )
    from lockstep.serve.commands import add_commands

    add_commands(command)  # deploy lock, serve, staging, canary, canary-rehearsal
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from lockstep.config import StageError

    try:
        return args.run(args)
    except StageError as exc:
        print(f"error: {args.command}: {exc}", file=sys.stderr)
        return 2 if args.command == "gate" else 1


if __name__ == "__main__":
    raise SystemExit(main())
