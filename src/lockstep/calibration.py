"""A/A calibration: how often the gate's rules, as configured, fail a change that changes nothing.

    lockstep aa [NAME ...] [--runs K]

The same prompts are answered K times by the same model, case by case with the runs interleaved
(case 1 of runs 1..K, then case 2, ...), so that drift on the machine hits every run alike. Every
ordered pair of runs (i, j) is then judged as the gate judges a pull request, with run i as the
base and run j as the head: the rules of conf/gates that name these prompts' metrics, on the
per-case scores paired by id, Holm across the pair's comparisons. Latency is judged too, since
both sides ran live, interleaved, on one machine.

Nothing changed between the runs, so any FAIL is a false alarm; the share of pairs with one is
the false-alarm rate of the rules with this model and these golden sets. A deterministic model
(the bundled one: temperature 0, a fixed seed) answers the same every time, and its rate is 0; a
sampling model at temperature > 0 shows what its noise costs. Nothing is written to the project.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from itertools import permutations
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from lockstep.cases import Cases, project_path
from lockstep.config import StageError, load_params
from lockstep.gate import Value, apply_rules
from lockstep.stats import Verdict

if TYPE_CHECKING:
    from lockstep.llm import Backend


@dataclass
class Calibration:
    runs: int
    prompts: list[str]
    answers: int  # model calls made
    seconds: float
    differing: dict[str, tuple[int, int]]  # per prompt: cases whose answer differs between runs, of all
    comparisons: int = 0  # ordered pairs of runs judged
    failed: int = 0  # comparisons with a FAIL: false alarms
    inconclusive: int = 0  # comparisons with no FAIL and at least one INCONCLUSIVE
    verdicts: dict[str, Counter[Verdict]] = field(default_factory=dict)  # per check: verdicts over the pairs

    @property
    def false_alarm_rate(self) -> float:
        return self.failed / self.comparisons if self.comparisons else 0.0


def answer_runs(prompt: Any, cases: list[dict[str, Any]], model: Backend, runs: int) -> list[list[dict[str, Any]]]:
    """K runs of one prompt's golden set, interleaved case by case; records as `prompts answer` writes them."""
    from lockstep.prompt_eval import record

    records: list[list[dict[str, Any]]] = [[] for _ in range(runs)]
    for case in cases:
        for run in records:
            answer = model.chat(prompt.render(case["inputs"]), prompt.model_settings, prompt.response_format)
            run.append(record(case, answer))
    return records


def calibrate(
    params_file: Path, names: list[str] | None = None, runs: int = 3, model: Backend | None = None
) -> Calibration:
    """Answer the prompts `runs` times and judge every ordered pair of runs with the gate's rules."""
    from lockstep.budget import price_of
    from lockstep.prompt_eval import aggregate, score_cases
    from lockstep.prompts import load_golden, load_prompt_file

    if runs < 2:
        raise StageError(f"aa: --runs {runs}: an A/A comparison needs at least 2 runs")
    params = load_params(params_file)
    llm, prompts, paths, gates = (params.need(n) for n in ("llm", "prompts", "paths", "gates"))
    names = names or prompts.names
    unknown = [n for n in names if n not in prompts.names]
    if unknown:
        raise StageError(f"aa: {', '.join(unknown)}: not in conf/prompts names ({', '.join(prompts.names)})")
    if model is None:
        from lockstep.llm import backend

        model = backend(llm)
    start = time.perf_counter()
    metrics: list[dict[str, Value]] = [{} for _ in range(runs)]
    tables: list[dict[str, pd.DataFrame]] = [{} for _ in range(runs)]
    differing = {}
    for name in names:
        prompt = load_prompt_file(paths.prompt_file(name))
        golden = load_golden(paths.golden_file(name), prompt)
        answered = answer_runs(prompt, golden, model, runs)
        outputs = list(zip(*([r["output"] for r in run] for run in answered), strict=True))
        differing[name] = (sum(len(set(o)) > 1 for o in outputs), len(golden))
        report = project_path(paths.prompt_report(name))
        for run, records in enumerate(answered):
            scores = score_cases(records, prompts.banned_phrases)
            values = aggregate(records, scores, price_of(llm, prompt.model_settings.model, paths.prices))
            metrics[run] |= {f"{report}/metrics.json:{key}": Value.of(v) for key, v in values.items()}
            tables[run][f"{report}/cases.csv"] = pd.DataFrame(scores)
    result = Calibration(runs, names, runs * sum(n for _, n in differing.values()), 0.0, differing)
    result.seconds = time.perf_counter() - start
    rules = [r for r in gates.rules if any(r.matches(name) for name in metrics[0])]
    task = params.data.task if params.data else None
    for base, head in permutations(range(runs), 2):
        values = {name: (metrics[base][name], metrics[head][name]) for name in metrics[0]}
        pair = {"base": tables[base], "head": tables[head]}
        cases = Cases(lambda path, side, pair=pair: pair[side].get(path), params.raw.get("paths") or {}, task, None)
        checks = apply_rules(rules, values, task, cases, interleaved=True)
        result.comparisons += 1
        verdicts = {c.verdict for c in checks}
        result.failed += Verdict.FAIL in verdicts
        result.inconclusive += Verdict.FAIL not in verdicts and Verdict.INCONCLUSIVE in verdicts
        for c in checks:
            result.verdicts.setdefault(f"{c.metric} [{c.rule.describe()}]", Counter())[c.verdict] += 1
    return result
