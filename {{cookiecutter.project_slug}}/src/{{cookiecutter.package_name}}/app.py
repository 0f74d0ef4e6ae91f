"""Application code: answer with a prompt by registry alias, as a deployed service would.

    python -m {{ cookiecutter.package_name }}.app summarize_ticket \
        --var ticket="My parcel never arrived"

The prompt is loaded as `prompts:/<name>@<alias>` (default alias: champion, which CI moves
to what passed on main) from the MLflow Prompt Registry, or from prompts/<name>.yaml in Git
when no registry is reachable; the answer comes from the model configured in conf/llm.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from {{ cookiecutter.package_name }}.config import PARAMS_FILE, StageError, load
from {{ cookiecutter.package_name }}.llm import backend
from {{ cookiecutter.package_name }}.prompts import load_prompt


def answer(name: str, variables: dict[str, str], alias: str, params_file: Path = PARAMS_FILE) -> tuple[str, str]:
    """The model's answer to a prompt filled with these variables, and where the prompt came from."""
    llm, paths = load("llm", "paths", path=params_file)
    prompt, source = load_prompt(name, alias, paths.prompts)
    reply = backend(llm).chat(prompt.render(variables), prompt.model_settings, prompt.response_format)
    return reply.text, source


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {__package__}.app", description=__doc__.splitlines()[0])
    parser.add_argument("prompt", help="name of a prompt in prompts/")
    parser.add_argument("--alias", default="champion", help="registry alias to load (default: champion)")
    parser.add_argument("--var", action="append", default=[], metavar="NAME=VALUE", help="a prompt variable")
    parser.add_argument("--params", type=Path, default=PARAMS_FILE, help="composed parameters file")
    args = parser.parse_args(argv)
    bad = [v for v in args.var if "=" not in v]
    if bad:
        parser.error(f"--var {bad[0]!r}: expected NAME=VALUE")
    variables = dict(v.split("=", 1) for v in args.var)
    try:
        text, source = answer(args.prompt, variables, args.alias, args.params)
    except StageError as exc:
        print(f"error: app: {exc}", file=sys.stderr)
        return 1
    print(f"prompt: {source}", file=sys.stderr)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
