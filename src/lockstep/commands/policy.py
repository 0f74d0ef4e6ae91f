"""`lockstep promote`, `lockstep policy eval|test`, `lockstep approve` and `lockstep history`: the promotion
decision of the Rego policies, an approval, moving the alias when the decision allows it, and every move."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lockstep.commands import ExitCode, add_params, load_params

DECISION_EXIT = {"allow": ExitCode.OK, "deny": ExitCode.FAILED, "pending_review": ExitCode.PENDING_REVIEW}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    policies = {"type": Path, "default": Path("policies"), "help": "the project's Rego policies (default: policies)"}
    gate_dir = {"type": Path, "default": Path("reports/gate"), "help": "the gate's outputs (default: reports/gate)"}
    help = "move an alias to the registered versions when the promotion policies allow"
    sub = subparsers.add_parser("promote", help=help, description=help)
    add_params(sub)
    sub.add_argument("--alias", default="champion", help="alias to move (default: champion)")
    sub.add_argument("--policies", **policies)
    sub.add_argument("--gate-dir", **gate_dir)
    sub.set_defaults(run=run)
    help = "decide on promotion with the Rego policies (eval), or run their tests (test)"
    sub = subparsers.add_parser("policy", help=help, description=help)
    add_params(sub)
    sub.add_argument(
        "action", choices=["eval", "test"],
        help=f"eval: exit {ExitCode.OK:d} allow, {ExitCode.FAILED:d} deny, {ExitCode.PENDING_REVIEW:d} pending_review",
    )  # fmt: skip
    sub.add_argument("--policies", **policies)
    sub.add_argument("--gate-dir", **gate_dir)
    sub.set_defaults(run=run)
    help = "record an approval of a model version (registry tags); who approves is CI's or the MLflow user's identity"
    sub = subparsers.add_parser("approve", help=help, description=help)
    add_params(sub)
    sub.add_argument("--version", type=int, help="model version (default: the one in the registration record)")
    sub.add_argument("--reason", help="why, for the record")
    sub.set_defaults(run=run)
    help = "every move of a model's (or prompt's) aliases: when, from, to, who, on what decision"
    sub = subparsers.add_parser("history", help=help, description=help)
    sub.add_argument("name", help="a registered model (or prompt, with --prompt)")
    sub.add_argument("--prompt", action="store_true", help="name is a prompt of the Prompt Registry")
    sub.add_argument("--alias", default=None, help="only this alias's moves")
    sub.add_argument("--at", default=None, help="which version each alias named at this time (RFC 3339)")
    sub.set_defaults(run=run)


def show(result: dict[str, Any]) -> None:
    print(f"policy: {result['decision']} ({result['model_uri']}, {result['latency_ms']} ms)")
    for reason in result["deny"]:
        print(f"  deny: {reason}")
    for reason in result["review"]:
        print(f"  review: {reason}")
    if result["decision"] == "pending_review":
        print(f"  a person decides: lockstep approve --version {result['version']} --reason ... (CI or an MLflow user)")


def history(args: argparse.Namespace) -> int:
    from lockstep import aliases

    kind = "prompts" if args.prompt else "models"
    moves = aliases.moves(args.name, prompt=args.prompt, alias=args.alias)
    if args.at is not None:
        state = aliases.named_at(moves, args.at)
        for alias, version in sorted(state.items()):
            print(f"{args.at}: @{alias} -> {kind}:/{args.name}/{version}")
        if not state:
            print(f"{args.at}: no alias of {kind}:/{args.name} was set yet")
        return ExitCode.OK
    for m in moves:
        frm = "none" if m["from"] is None else m["from"]
        commit = f"  commit {str(m['commit'])[:12]}" if m.get("commit") else ""
        print(f"{m['at']}  @{m['alias']}: {frm} -> {m['to']}  by {m['by']}  decision {m['decision']}{commit}")
    if not moves:
        print(f"{kind}:/{args.name}: no alias move recorded")
    return ExitCode.OK


def run(args: argparse.Namespace) -> int:
    from lockstep import policy

    if args.command == "history":
        return history(args)

    if args.command == "approve":
        uri, by, at = policy.approve(load_params(args), args.version, args.reason)
        print(f"approve: {uri} approved by {by} at {at}")
        return ExitCode.OK
    if args.command == "promote":
        from lockstep.registry import promote

        result, promoted = promote(load_params(args), args.alias, args.gate_dir, args.policies)
        if result["decision"] != "allow":
            show(result)
            print(f"promote: @{args.alias} not moved: {result['decision']} (tagged on the versions)")
            return DECISION_EXIT[result["decision"]]
        print(f"promote: @{args.alias} -> {', '.join(promoted)}")
        return ExitCode.OK
    if args.action == "test":
        results = policy.run_tests(args.policies)
        for r in results:
            mark = "PASS" if r["passed"] else "FAIL"
            print(f"{mark} {r['file']}: {r['test']}" + (f" ({r['error']})" if r.get("error") else ""))
        failed = sum(not r["passed"] for r in results)
        print(f"policy test: {len(results) - failed}/{len(results)} passed")
        return ExitCode.FAILED if failed or not results else ExitCode.OK
    result = policy.decide_registered(load_params(args), args.gate_dir, args.policies)
    show(result)
    return DECISION_EXIT[result["decision"]]
