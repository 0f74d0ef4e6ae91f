"""Stage prompt_outputs: answer every case of a prompt's golden set with the configured model.

    python -m {{ cookiecutter.package_name }}.stages.prompt_outputs <prompt>

writes one JSON line per case (inputs, answer, reference, tokens, latency) for review; prompt_evaluate scores them.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from {{ cookiecutter.package_name }}.config import (
    LLMConfig,
    PathsConfig,
    load,
    run_stage,
    write_atomic,
)
from {{ cookiecutter.package_name }}.llm import backend
from {{ cookiecutter.package_name }}.prompts import load_golden, load_prompt_file

if TYPE_CHECKING:
    import argparse

    from {{ cookiecutter.package_name }}.llm import Backend
    from {{ cookiecutter.package_name }}.prompts import Prompt


def answer_all(prompt: Prompt, cases: list[dict[str, Any]], model: Backend) -> list[dict[str, Any]]:
    """One record per golden case, in order, with a progress bar on the terminal."""
    from tqdm import tqdm

    records = []
    # A bar on a terminal; in logs (CI) tqdm stays quiet and the summary line below reports.
    for case in tqdm(cases, desc=f"prompt {prompt.name}", unit="case", file=sys.stderr, disable=None):
        answer = model.chat(prompt.render(case["inputs"]), prompt.model_settings, prompt.response_format)
        records.append(
            {
                "id": case["id"],
                "inputs": case["inputs"],
                "output": answer.text,
                "expected": case["expected"],
                "tags": case.get("tags", []),
                "must_not_contain": case.get("must_not_contain", []),
                "input_tokens": answer.input_tokens,
                "output_tokens": answer.output_tokens,
                "latency_s": round(answer.latency_s, 4),
            }
        )
    return records


def run(name: str, llm: LLMConfig, paths: PathsConfig) -> None:
    prompt = load_prompt_file(paths.prompt_file(name))
    cases = load_golden(paths.golden_file(name), prompt)
    records = answer_all(prompt, cases, backend(llm))
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    write_atomic(paths.prompt_output(name), lines)
    print(f"prompt_outputs: {name}: {len(records)} answers -> {paths.prompt_output(name)}")


def _main(args: argparse.Namespace) -> None:
    llm, paths = load("llm", "paths", path=args.params)
    run(args.prompt, llm, paths)


def main(argv: list[str] | None = None) -> int:
    return run_stage(
        "prompt_outputs", __doc__, _main, argv, lambda p: p.add_argument("prompt", help="a prompt in prompts/")
    )


if __name__ == "__main__":
    raise SystemExit(main())
