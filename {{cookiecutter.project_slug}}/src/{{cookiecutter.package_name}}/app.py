"""The application: predict with the model{% if cookiecutter.include_llm == "yes" %} and answer with a prompt{% endif %} by registry alias, as a deployed service would.

    python -m {{ cookiecutter.package_name }}.app predict data/raw/new_rows.csv
{%- if cookiecutter.include_llm == "yes" %}
    python -m {{ cookiecutter.package_name }}.app answer summarize_ticket \
        --var ticket="My parcel never arrived"
{%- endif %}

The model is `models:/<name>@<alias>` (default champion, which CI moves to what passed on
main).
{%- if cookiecutter.include_llm == "yes" %} A prompt is `prompts:/<name>@<alias>` from the MLflow Prompt Registry, or
prompts/<name>.yaml in Git when no registry is reachable; conf/llm says which model answers.
{%- endif %}
The service (`make serve`, `lockstep serve`) serves the versions pinned in deploy.lock.json and
calls this project's hooks (hooks.py); predict here prepares the rows with the same prepare_rows.
"""

import argparse
import sys
from pathlib import Path

from lockstep.config import StageError, load
{%- if cookiecutter.include_llm == "yes" %}
from lockstep.llm import backend
from lockstep.prompts import load_prompt
{%- endif %}
from lockstep.registry import load_model
from lockstep.tabular import read_table

from {{ cookiecutter.package_name }}.hooks import prepare_rows


def predict(csv: str, alias: str) -> list:
    """Predictions of the model registered under alias for every row of a CSV file."""
    rows = prepare_rows(read_table(Path(csv)))
    (reg,) = load("register")
    return list(load_model(reg.model_name, alias).predict(rows))
{%- if cookiecutter.include_llm == "yes" %}


def answer(name: str, variables: dict[str, str], alias: str) -> tuple[str, str]:
    """The model's answer to a prompt filled with these variables, and where the prompt came from."""
    llm, paths, prompts = load("llm", "paths", "prompts")
    prompt, source = load_prompt(name, alias, paths.prompts, prompts.registry_prefix)
    messages = prompt.render(variables)  # a missing variable fails here, before the model is loaded
    reply = backend(llm).chat(messages, prompt.model_settings, prompt.response_format)
    return reply.text, source
{%- endif %}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {__package__}.app", description=__doc__.splitlines()[0])
    parser.add_argument("--alias", default="champion", help="registry alias to use (default: champion)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("predict", help="predict every row of a CSV").add_argument("csv")
{%- if cookiecutter.include_llm == "yes" %}
    sub = commands.add_parser("answer", help="answer with a prompt")
    sub.add_argument("prompt", help="name of a prompt in prompts/")
    sub.add_argument("--var", action="append", default=[], metavar="NAME=VALUE", help="a prompt variable")
{%- endif %}
    args = parser.parse_args(argv)
    try:
        if args.command == "predict":
            print("\n".join(map(str, predict(args.csv, args.alias))))
            return 0
{%- if cookiecutter.include_llm == "yes" %}
        bad = [v for v in args.var if "=" not in v]
        if bad:
            parser.error(f"--var {bad[0]!r}: expected NAME=VALUE")
        text, source = answer(args.prompt, dict(v.split("=", 1) for v in args.var), args.alias)
{%- endif %}
    except StageError as exc:
        print(f"error: app: {exc}", file=sys.stderr)
        return 1
{%- if cookiecutter.include_llm == "yes" %}
    print(f"prompt: {source}", file=sys.stderr)
    print(text)
{%- endif %}
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
