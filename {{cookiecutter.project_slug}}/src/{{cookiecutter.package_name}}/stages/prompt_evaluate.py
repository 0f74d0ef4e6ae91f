"""Stage prompt_evaluate: score a prompt's answers against its golden set and enforce the gates.

    python -m {{ cookiecutter.package_name }}.stages.prompt_evaluate <prompt>

reads the answers written by prompt_outputs and writes metrics.json (quality, conciseness, safety, latency,
tokens, cost) and cases.csv (per-case scores, for `dvc plots`). Quality is ROUGE-L against the
reference; PII in answers is found by MLflow's deterministic PIIDetection scorer.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from {{ cookiecutter.package_name }}.config import (
    LLMConfig,
    PathsConfig,
    PromptsConfig,
    StageError,
    load,
    run_stage,
    write_atomic,
)
from {{ cookiecutter.package_name }}.llm import cost_usd
from {{ cookiecutter.package_name }}.stages.evaluate import broken_limits, write_csv

if TYPE_CHECKING:
    import argparse


def contains_any(text: str, phrases: list[str]) -> bool:
    lowered = text.lower()
    return any(phrase.lower() in lowered for phrase in phrases)


def as_answer(value: Any) -> Any:
    """An answer in comparable form: parsed JSON for structured answers, normalised text otherwise."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return " ".join(value.lower().split()).rstrip(".")
    return value


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def score_cases(records: list[dict[str, Any]], banned_phrases: list[str]) -> list[dict[str, Any]]:
    """Per-case scores: ROUGE-L F1, exact match, length ratio, PII found, banned phrase, injection obeyed."""
    from mlflow.genai.scorers import PIIDetection
    from rouge_score import rouge_scorer

    rouge = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    pii = PIIDetection()
    scores = []
    for record in records:
        output, expected = record["output"], as_text(record["expected"])
        injection = "injection" in record.get("tags", [])
        scores.append(
            {
                "id": record["id"],
                "rouge_l": round(rouge.score(expected, output)["rougeL"].fmeasure, 4),
                "exact_match": int(as_answer(output) == as_answer(record["expected"])),
                "length_ratio": round(len(output.split()) / max(len(expected.split()), 1), 4),
                "pii": int(str(pii(outputs=output).value) != "yes"),
                "banned": int(contains_any(output, banned_phrases)),
                "injection": int(injection),
                "injection_failed": int(injection and contains_any(output, record.get("must_not_contain", []))),
                "latency_s": record["latency_s"],
            }
        )
    return scores


def aggregate(records: list[dict[str, Any]], scores: list[dict[str, Any]], llm: LLMConfig) -> dict[str, float]:
    """Metrics of one prompt over its golden set; rates are shares of cases (0 is best)."""
    import numpy as np

    n = len(scores)
    injections = [s for s in scores if s["injection"]]
    latencies = [s["latency_s"] for s in scores]
    input_tokens = sum(r["input_tokens"] for r in records)
    output_tokens = sum(r["output_tokens"] for r in records)
    cost = cost_usd(llm, input_tokens, output_tokens)
    return {
        "cases": n,
        "rouge_l": round(float(np.mean([s["rouge_l"] for s in scores])), 4),
        "exact_match": round(float(np.mean([s["exact_match"] for s in scores])), 4),
        "length_ratio": round(float(np.mean([s["length_ratio"] for s in scores])), 4),
        "pii_leak_rate": round(sum(s["pii"] for s in scores) / n, 4),
        "banned_rate": round(sum(s["banned"] for s in scores) / n, 4),
        "injection_failure_rate": round(sum(s["injection_failed"] for s in injections) / len(injections), 4)
        if injections
        else 0.0,
        "latency_p50_s": round(float(np.percentile(latencies, 50)), 4),
        "latency_p95_s": round(float(np.percentile(latencies, 95)), 4),
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cost_usd": round(cost, 6),
        "cost_usd_per_case": round(cost / n, 6),
    }


def read_records(path: Any) -> list[dict[str, Any]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise StageError(f"{path}: not found; run the prompt_outputs stage first (dvc repro)") from None
    records = [json.loads(line) for line in lines if line.strip()]
    if not records:
        raise StageError(f"{path}: has no answers; re-run prompt_outputs")
    return records


def run(name: str, llm: LLMConfig, prompts: PromptsConfig, paths: PathsConfig) -> dict[str, float]:
    report = paths.prompt_report(name)
    records = read_records(paths.prompt_output(name))
    scores = score_cases(records, prompts.banned_phrases)
    metrics = aggregate(records, scores, llm)
    write_atomic(report / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    write_csv(report / "cases.csv", scores)
    print(f"prompt_evaluate: {name}: " + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
    broken = broken_limits(metrics, prompts.floors.get(name, {}), prompts.ceilings)
    if broken:
        raise StageError(f"prompt {name} breaks its gates in conf/prompts: {'; '.join(broken)}")
    return metrics


def _main(args: argparse.Namespace) -> None:
    llm, prompts, paths = load("llm", "prompts", "paths", path=args.params)
    run(args.prompt, llm, prompts, paths)


def main(argv: list[str] | None = None) -> int:
    return run_stage(
        "prompt_evaluate", __doc__, _main, argv, lambda p: p.add_argument("prompt", help="a prompt in prompts/")
    )


if __name__ == "__main__":
    raise SystemExit(main())
