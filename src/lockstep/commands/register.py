"""`lockstep register`: the evaluated model and the prompts into the MLflow registry, with lineage."""

from __future__ import annotations

import argparse

from lockstep.commands import ExitCode, add_params, load_params


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    help = "register the evaluated model and prompts in MLflow, with lineage"
    sub = subparsers.add_parser("register", help=help, description=help)
    add_params(sub)
    sub.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from lockstep.registry import register

    record = register(load_params(args))
    moved = "" if record.pop("alias_moved", True) else ", not moved"
    refusal = record.pop("alias_refusal", None)
    print(f"register: {record['model_uri']} (@{record['alias']}{moved}) run {record['run_id']}")
    for name, version in record.get("prompts", {}).items():
        print(f"register: prompts:/{name}/{version} (@{record['prompt_alias']}{moved})")
    if refusal:
        print(f"register: {refusal}")
    return ExitCode.OK
