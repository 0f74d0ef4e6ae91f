"""Promote what passed: move an alias (default champion) to the versions a run registered.

    python -m {{ cookiecutter.package_name }}.promote          # or: make promote

Reads the registration record the register stage wrote (reports/registration.json): the
model version and, with the prompt track, the prompt versions evaluated with it. CI runs this
on the main branch after the pipeline passed, so `models:/<name>@champion` is always
something that went through the gate.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from {{ cookiecutter.package_name }}.config import (
    PARAMS_FILE,
    StageError,
    load,
    one_line,
    tracking_uri,
)


def promote(record: dict[str, Any], alias: str) -> list[str]:
    """Point alias at every version in the record; returns what was promoted."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    client = mlflow.MlflowClient()
    client.set_registered_model_alias(record["model_name"], alias, str(record["version"]))
    promoted = [f"models:/{record['model_name']}/{record['version']}"]
    for name, version in record.get("prompts", {}).items():
        mlflow.genai.set_prompt_alias(name, alias=alias, version=int(version))
        promoted.append(f"prompts:/{name}/{version}")
    return promoted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {__package__}.promote", description=__doc__.splitlines()[0])
    parser.add_argument("--alias", default="champion", help="alias to move (default: champion)")
    parser.add_argument("--params", type=Path, default=PARAMS_FILE, help="composed parameters file")
    args = parser.parse_args(argv)
    try:
        (paths,) = load("paths", path=args.params)
        try:
            record = json.loads(paths.registration.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise StageError(f"{paths.registration}: not found; run the pipeline first (make repro)") from None
        from mlflow.exceptions import MlflowException

        try:
            promoted = promote(record, args.alias)
        except MlflowException as exc:
            raise StageError(
                f"MLflow at {tracking_uri()}: {one_line(exc.message)}; run `make register` against it first"
            ) from None
    except StageError as exc:
        print(f"error: promote: {exc}", file=sys.stderr)
        return 1
    print(f"promote: @{args.alias} -> {', '.join(promoted)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
