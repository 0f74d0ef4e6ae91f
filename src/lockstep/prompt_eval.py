"""Answer a prompt's golden set with the configured model, and score the answers.

    lockstep prompts answer <name>     # stage prompt_outputs@<name>: data/prompt_outputs/<name>.jsonl
    lockstep prompts evaluate <name>   # stage prompt_evaluate@<name>: reports/prompts/<name>/

`answer` writes one JSON line per case (inputs, answer, reference, tokens, latency) for review,
answering from the prompt's record/replay cache where it may (lockstep.llm_cache).
`evaluate` writes metrics.json (quality, conciseness, safety, latency, tokens, cost) and cases.csv
(per-case scores, for `dvc plots`). Quality is ROUGE-L against the reference; PII in answers is
found with the patterns of MLflow's deterministic PIIDetection scorer (lockstep.pii, without
loading MLflow). Evaluating only measures: the limits on these metrics are the gate's rules
(conf/gates), so an experiment that misses one is still recorded and comparable.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lockstep.config import Params, StageError, check_toolkit_version
from lockstep.io import write_atomic, write_csv, write_json

if TYPE_CHECKING:
    from lockstep.budget import Budget, Price
    from lockstep.config import LLMConfig
    from lockstep.llm import Backend
    from lockstep.llm_cache import Cached
    from lockstep.prompts import Prompt


LOG_EVERY = 10  # cases between progress lines when stderr is not a terminal


def answer_all(
    prompt: Prompt, cases: list[dict[str, Any]], model: Backend, budget: Budget | None = None
) -> list[dict[str, Any]]:
    """One record per golden case, in order, with a progress bar on the terminal; each call charged
    to the budget, which stops the run before it may overspend."""
    from tqdm import tqdm

    records = []
    # A bar on a terminal; in logs (CI, `make repro > log`) a line every LOG_EVERY cases instead
    logged = not sys.stderr.isatty()
    start = time.perf_counter()
    for n, case in enumerate(tqdm(cases, desc=f"prompt {prompt.name}", unit="case", file=sys.stderr, disable=None), 1):
        answer = model.chat(prompt.render(case["inputs"]), prompt.model_settings, prompt.response_format)
        if budget is not None and not answer.replayed:  # a recorded answer costs nothing
            budget.charge(answer.input_tokens, answer.output_tokens)
        if logged and (n % LOG_EVERY == 0 or n == len(cases)):
            print(f"prompt {prompt.name}: {n}/{len(cases)} cases answered ({time.perf_counter() - start:.0f} s)",
                  file=sys.stderr, flush=True)  # fmt: skip
        records.append(record(case, answer))
    return records


def record(case: dict[str, Any], answer: Any) -> dict[str, Any]:
    """One golden case's answer, as `prompts answer` writes it and `prompts evaluate` scores it."""
    return {
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


def contains_any(text: str, phrases: list[str]) -> bool:
    lowered = text.lower()
    return any(phrase.lower() in lowered for phrase in phrases)


def as_answer(value: Any) -> Any:
    """An answer in comparable form: parsed JSON for structured answers, normalised text otherwise."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            text = " ".join(value.lower().split())
            return text.removesuffix(".")  # one final period, as docs/prompts.md says
    return value


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def score_cases(records: list[dict[str, Any]], banned_phrases: list[str]) -> list[dict[str, Any]]:
    """Per-case scores: ROUGE-L F1, exact match, length ratio, PII found, banned phrase, injection obeyed."""
    from rouge_score import rouge_scorer

    from lockstep.pii import detect

    rouge = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
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
                "pii": int(bool(detect(output))),
                "banned": int(contains_any(output, banned_phrases)),
                "injection": int(injection),
                "injection_failed": int(injection and contains_any(output, record.get("must_not_contain", []))),
                "latency_s": record["latency_s"],
            }
        )
    return scores


def aggregate(records: list[dict[str, Any]], scores: list[dict[str, Any]], price: Price) -> dict[str, float]:
    """Metrics of one prompt over its golden set, tokens priced at `price`; rates are shares of cases (0 is best)."""
    import numpy as np

    n = len(scores)
    injections = [s for s in scores if s["injection"]]
    latencies = [s["latency_s"] for s in scores]
    input_tokens = sum(r["input_tokens"] for r in records)
    output_tokens = sum(r["output_tokens"] for r in records)
    cost = price.cost(input_tokens, output_tokens)
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


def read_records(path: Path) -> list[dict[str, Any]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise StageError(f"{path}: not found; run the prompt_outputs stage first (dvc repro)") from None
    records = [json.loads(line) for line in lines if line.strip()]
    if not records:
        raise StageError(f"{path}: has no answers; re-run prompt_outputs")
    return records


def answer(name: str, params: Params) -> tuple[int, Path]:
    """Stage prompt_outputs: every golden case of one prompt answered, one JSON line each; how many,
    and the file."""
    from lockstep.budget import Budget, input_bound, price_of
    from lockstep.prompts import load_golden, load_prompt_file

    check_toolkit_version(params)
    llm, paths = params.need("llm"), params.need("paths")
    prompt = load_prompt_file(paths.prompt_file(name))
    cases = load_golden(paths.golden_file(name), prompt)
    model = cached_model(prompt, cases, llm, paths.llm_cache_dir(name))
    # What a run may cost: the cases the cache does not answer (a recorded answer costs nothing)
    budget = Budget(name, llm.budget_usd, price_of(llm, prompt.model_settings.model, paths.prices))
    settings, schema, max_tokens = prompt.model_settings, prompt.response_format, prompt.model_settings.max_tokens
    asked = [messages for messages in (prompt.render(c["inputs"]) for c in cases)
             if not model.recorded(messages, settings, schema)]  # fmt: skip
    budget.plan([(input_bound(messages, schema), max_tokens) for messages in asked])
    records = answer_all(prompt, cases, model, budget)
    print(f"prompt {name}: {model.hits} answers replayed from {model.cache.folder}, {model.calls} asked of"
          f" the model ({model.cache.mode})", file=sys.stderr)  # fmt: skip
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    write_atomic(paths.prompt_output(name), lines)
    return len(records), paths.prompt_output(name)


def cached_model(prompt: Prompt, cases: list[dict[str, Any]], llm: LLMConfig, folder: Path | None) -> Cached:
    """The configured model behind the prompt's record/replay cache (lockstep.llm_cache) in `folder`
    (None: no cache, live); in replay a case without a recorded answer fails here, before any call."""
    from lockstep import llm_cache
    from lockstep.llm import backend, request

    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)  # a DVC output: it must exist, empty or not
    cache = llm_cache.Cache(folder, llm_cache.mode(llm.cache_mode))

    def ask(messages: list[dict[str, str]], settings: Any, schema: dict[str, Any] | None) -> dict[str, Any]:
        return request(llm, messages, settings, schema)

    if cache.mode == "replay":
        render = prompt.render
        cache.check_replay([(c["id"], ask(render(c["inputs"]), prompt.model_settings, prompt.response_format))
                            for c in cases])  # fmt: skip
    return llm_cache.Cached(cache, ask, lambda: backend(llm))


def evaluate(name: str, params: Params) -> dict[str, Any]:
    """Stage prompt_evaluate: one prompt's answers scored into metrics.json and cases.csv; the metrics."""
    from lockstep.budget import price_of
    from lockstep.prompts import load_prompt_file

    check_toolkit_version(params)
    llm, prompts, paths = params.need("llm"), params.need("prompts"), params.need("paths")
    report = paths.prompt_report(name)
    records = read_records(paths.prompt_output(name))
    scores = score_cases(records, prompts.banned_phrases)
    price = price_of(llm, load_prompt_file(paths.prompt_file(name)).model_settings.model, paths.prices)
    metrics = aggregate(records, scores, price)
    write_json(report / "metrics.json", metrics)
    write_csv(report / "cases.csv", scores)
    return metrics
