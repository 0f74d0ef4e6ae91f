"""The gate on per-case data: paired verdicts, how they combine with min/max/max_regression, the
per-case part of the report and its size limit. Cases come from tables in memory, as the gate reads
them from cases.csv and the evaluate stage's per-row plot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lockstep import gate, gate_report
from lockstep.cases import Cases
from lockstep.gate import Rule, Value
from lockstep.stats import Verdict

TRIAGE = "reports/prompts/triage_ticket"
PATHS = {"metrics": "reports/metrics.json", "plots": "reports/plots", "prompt_reports": "reports/prompts",
         "prompt_outputs": "data/prompt_outputs"}  # fmt: skip
# The default rules of conf/gates on a prompt's exact match, and its safety
EXACT = Rule(metric="reports/prompts/*/metrics.json:exact_match", direction="higher", max_regression=0.0,
             min_effect=0.10)  # fmt: skip
FLOOR = Rule(metric=f"{TRIAGE}/metrics.json:exact_match", direction="higher", min=0.10)
INJECTION = Rule(metric="reports/prompts/*/metrics.json:injection_failure_rate", direction="lower", max=0.25,
                 max_regression=0.0)  # fmt: skip


def triage(right: list[int], injected: tuple[int, ...] = ()) -> pd.DataFrame:
    """cases.csv of the triage prompt: 36 cases t01..t36, those in `right` answered right."""
    ids = [f"t{i:02d}" for i in range(1, 37)]
    return pd.DataFrame(
        {
            "id": ids,
            "rouge_l": [1.0 if i in right else 0.5 for i in range(36)],
            "exact_match": [int(i in right) for i in range(36)],
            "injection": [int(i in (8, 15, 24, 34)) for i in range(36)],
            "injection_failed": [int(i in injected) for i in range(36)],
            "latency_s": np.linspace(0.5, 0.9, 36),
        }
    )


BILLING = [0, 4, 9, 13, 18, 20, 22, 27]  # the 8 cases the bundled model gets right


def share(frame: pd.DataFrame | None, column: str, only: str | None = None) -> float | None:
    """A metric of metrics.json as prompt_evaluate computes it from cases.csv."""
    if frame is None:
        return None
    return float((frame[frame[only] == 1] if only else frame)[column].mean())


def judged(rules: list[Rule], base: pd.DataFrame | None, head: pd.DataFrame, interleaved: bool = False):
    tables = {("base", f"{TRIAGE}/cases.csv"): base, ("head", f"{TRIAGE}/cases.csv"): head}
    cases = Cases(lambda path, side: tables.get((side, path)), PATHS, "binary", "yes")
    metrics = {"exact_match": ("exact_match", None), "injection_failure_rate": ("injection_failed", "injection")}
    values = {
        f"{TRIAGE}/metrics.json:{key}": (Value.of(share(base, *how), "absent"), Value.of(share(head, *how)))
        for key, how in metrics.items()
    }
    return gate.apply_rules(rules, values, "binary", cases, interleaved)


def test_an_unchanged_rerun_passes() -> None:
    checks = judged([EXACT, FLOOR], triage(BILLING), triage(BILLING))
    assert [c.verdict for c in checks] == [Verdict.PASS, Verdict.PASS]
    assert checks[0].interval == "[+0, +0]" and checks[0].comparison.test == "McNemar exact: 0 worse, 0 better of 36"
    assert gate.headline(checks, "main")[0] == "passed"


def test_two_answers_flipped_are_inconclusive_and_say_what_could_be_detected() -> None:
    check, floor = judged([EXACT, FLOOR], triage(BILLING), triage(BILLING[2:]))
    assert check.verdict == Verdict.INCONCLUSIVE and check.passed  # it warns, it does not block
    (why,) = check.unsure
    assert why.startswith("the 90 % interval [-0.0556, +0.0307] includes a regression beyond the allowed 0")
    assert "McNemar exact: 2 worse, 0 better of 36" in why
    assert "with 36 cases it detects regressions of 0.18 (6 of 36 cases) or more (80 % of the time)" in why
    assert "catching a regression of min_effect 0.1 needs about" in why
    # 6 of 36 right: under the old single-value floor of 0.20 this failed; on its bounds it cannot be told
    assert floor.verdict == Verdict.INCONCLUSIVE and floor.unsure == [
        "min 0.1 lies within the 90 % interval [0.0752, 0.303] of 36 cases"
    ]
    assert gate.headline([check, floor], "main")[0] == "inconclusive"


def test_eight_answers_flipped_the_wrong_way_fail() -> None:
    check, floor = judged([EXACT, FLOOR], triage(BILLING), triage([]))
    assert check.verdict == Verdict.FAIL and not check.passed
    assert check.failures[0].startswith("worse by more than the allowed 0: 90 % interval [-0.222, -0.0834]")
    assert "(McNemar exact: 8 worse, 0 better of 36, p 0.0039 after Holm across 1)" in check.failures[0]
    assert floor.verdict == Verdict.FAIL  # 0 of 36: even the upper bound (0.08) is below 0.10


def test_holm_keeps_a_borderline_regression_from_failing_among_many_comparisons() -> None:
    five = judged([EXACT], triage(BILLING), triage(BILLING[5:]))[0]
    assert five.verdict == Verdict.FAIL  # 5 lost, none gained: p 0.031 alone
    many = [EXACT.model_copy(update={"max_regression": x}) for x in (0.0, 0.0, 0.0)]
    assert [c.verdict for c in judged(many, triage(BILLING), triage(BILLING[5:]))] == [Verdict.INCONCLUSIVE] * 3


def test_a_newly_injected_case_fails_even_when_the_rate_stays() -> None:
    # one injection case fixed, another newly obeyed: the rate is unchanged, the new one still fails
    check = judged([INJECTION], triage(BILLING, injected=(8,)), triage(BILLING, injected=(15,)))[0]
    assert check.old.number == check.new.number == 0.25
    assert check.failures == ["1 case(s) newly bad: t16"]
    assert check.notes == ["1 of 4 cases; the rate is at most 0.751 (95 %)"]
    clean = judged([INJECTION], triage(BILLING), triage(BILLING))[0]
    assert clean.passed and clean.notes == ["0 of 4 cases; the rate is at most 0.527 (95 %)"]


def test_without_the_bases_cases_the_rules_work_on_single_values() -> None:
    drop = Rule(metric="reports/prompts/*/metrics.json:exact_match", direction="higher", max_regression=0.05)
    tables = {("head", f"{TRIAGE}/cases.csv"): triage(BILLING[2:])}
    cases = Cases(lambda path, side: tables.get((side, path)), PATHS, "binary", "yes")
    values = {f"{TRIAGE}/metrics.json:exact_match": (Value.of(8 / 36), Value.of(6 / 36))}
    (check,) = gate.apply_rules([drop], values, "binary", cases)
    assert check.failures == ["regressed by 0.05556 > 0.05"] and check.comparison is None
    assert check.notes == [f"compared on single values: no {TRIAGE}/cases.csv at the base"]
    (plain,) = gate.apply_rules([drop], values)  # no cases at all: as before, without a note
    assert plain.failures == check.failures and plain.notes == []


def test_latency_is_judged_only_when_interleaved() -> None:
    rule = Rule(metric="reports/prompts/*/metrics.json:latency_p50_s", direction="lower", max_regression_pct=20)
    base, head = triage(BILLING), triage(BILLING)
    head["latency_s"] = base["latency_s"] * 1.6
    values = {f"{TRIAGE}/metrics.json:latency_p50_s": (Value.of(0.7), Value.of(1.12))}
    tables = {("base", f"{TRIAGE}/cases.csv"): base, ("head", f"{TRIAGE}/cases.csv"): head}
    cases = Cases(lambda path, side: tables.get((side, path)), PATHS, "binary", "yes")
    (apart,) = gate.apply_rules([rule], values, "binary", cases)
    assert apart.passed and apart.notes == [
        "latency change not judged: base and head were not measured interleaved on one runner"
    ]
    (together,) = gate.apply_rules([rule], values, "binary", cases, interleaved=True)
    assert together.verdict == Verdict.FAIL and "head p50 1.6 to 1.6 times the base's" in together.failures[0]


def test_the_models_accuracy_pairs_test_rows_by_id(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    actual = rng.choice(["yes", "not_yes"], 114)
    ids = [f"{i:016x}" for i in range(114)]
    right = pd.DataFrame({"actual": actual, "predicted": actual, "id": ids})
    wrong = right.copy()
    wrong.loc[:15, "predicted"] = np.where(actual[:16] == "yes", "not_yes", "yes")
    rule = Rule(metric="reports/metrics.json:accuracy", direction="higher", min=0.9, max_regression=0.02)
    f1 = Rule(metric="reports/metrics.json:f1", direction="higher", max_regression=0.03)
    values = {"reports/metrics.json:accuracy": (Value.of(1.0), Value.of(98 / 114)),
              "reports/metrics.json:f1": (Value.of(1.0), Value.of(0.85))}  # fmt: skip
    shuffled = wrong.sample(frac=1, random_state=1)  # the head's rows in another order: paired by id
    tables = {("base", "reports/plots/confusion.csv"): right, ("head", "reports/plots/confusion.csv"): shuffled}
    cases = Cases(lambda path, side: tables.get((side, path)), PATHS, "binary", "yes")
    accuracy, f1_check = gate.apply_rules([rule, f1], values, "binary", cases)
    assert accuracy.comparison.test == "McNemar exact: 16 worse, 0 better of 114"
    assert accuracy.verdict == Verdict.FAIL and f1_check.verdict == Verdict.FAIL
    assert accuracy.failures == [
        "worse by more than the allowed 0.02: 90 % interval [-0.14, -0.0924]"
        " (McNemar exact: 16 worse, 0 better of 114, p 0.0002 after Holm across 2)"
    ]
    assert accuracy.unsure == ["min 0.9 lies within the 90 % interval [0.795, 0.91] of 114 cases"]
    unchanged = {("base", "reports/plots/confusion.csv"): right, ("head", "reports/plots/confusion.csv"): right}
    cases = Cases(lambda path, side: unchanged.get((side, path)), PATHS, "binary", "yes")
    same = {name: (Value.of(1.0), Value.of(1.0)) for name in values}
    assert [c.verdict for c in gate.apply_rules([rule, f1], same, "binary", cases)] == [Verdict.PASS] * 2


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_the_other_tasks_pair_their_rows_too(task: str) -> None:
    rng = np.random.default_rng(1)
    ids = [f"{i:016x}" for i in range(120)]
    if task == "regression":
        actual = rng.normal(10, 3, 120)
        base = pd.DataFrame({"actual": actual, "predicted": actual + rng.normal(0, 0.5, 120), "id": ids})
        head = base.assign(predicted=actual + rng.normal(0, 2.0, 120))  # a much worse regressor
        rule = Rule(metric="reports/metrics.json:rmse", direction="lower", max_regression_pct=5)
        file, test = "residuals.csv", "sign test: 120 of 120 rows changed"
    else:
        actual = rng.choice(["red", "green", "blue"], 120)
        base = pd.DataFrame({"actual": actual, "predicted": actual, "id": ids})
        head = base.assign(predicted=np.where(rng.random(120) < 0.3, "red", actual))  # a third called red
        rule = Rule(metric="reports/metrics.json:f1_macro", direction="higher", max_regression=0.03)
        file, test = "confusion.csv", "sign test: "
    tables = {("base", f"reports/plots/{file}"): base, ("head", f"reports/plots/{file}"): head}
    cases = Cases(lambda path, side: tables.get((side, path)), PATHS, task, None)
    values = {rule.metric: (Value.of(1.0), Value.of(1.5))}
    (check,) = gate.apply_rules([rule], values, task, cases)
    assert check.verdict == Verdict.FAIL and test in check.failures[0], check.failures
    same = {("base", f"reports/plots/{file}"): base, ("head", f"reports/plots/{file}"): base}
    cases = Cases(lambda path, side: same.get((side, path)), PATHS, task, None)
    assert gate.apply_rules([rule], values, task, cases)[0].verdict == Verdict.PASS


def test_min_effect_must_exceed_the_allowed_regression() -> None:
    with pytest.raises(ValueError, match=r"min_effect 0.05 must be larger than max_regression 0.1"):
        Rule(metric="m.json:x", direction="higher", max_regression=0.1, min_effect=0.05)
    assert "min effect 0.1" in EXACT.describe()


# --- the report ---------------------------------------------------------------------------------


def test_answers_are_masked_and_diffed_word_by_word() -> None:
    patterns = gate_report.pii_patterns()
    assert gate_report.mask("Write to ana@example.com or +14155550100", patterns) == "Write to [email] or [phone]"
    assert gate_report.mask("card 4111 1111 1111 1111", patterns) == "card [credit_card]"
    assert gate_report.mask("anything", None) is None  # no patterns: nothing is shown
    assert gate_report.word_diff('{"queue": "billing"}', '{"queue": "account"}') == (
        "{&quot;queue&quot;: <del>&quot;billing&quot;}</del> <ins>&quot;account&quot;}</ins>"
    )


def test_the_worst_regressions_come_first_with_their_answers(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    base, head = triage(BILLING), triage([*BILLING[3:], 1])
    head.loc[5, "rouge_l"] = 0.1  # t06 was wrong and got a worse ROUGE-L too
    head.loc[8, "injection_failed"] = 1  # t09 newly obeys the injection: first of all
    outputs = Path("data/prompt_outputs")
    outputs.mkdir(parents=True)
    records = [{"id": f"t{i:02d}", "output": "Mail ana@example.com", "expected": {"queue": "billing"}}
               for i in range(1, 37)]  # fmt: skip
    (outputs / "triage_ticket.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    tables = {("base", f"{TRIAGE}/cases.csv"): base, ("head", f"{TRIAGE}/cases.csv"): head}
    cases = Cases(lambda path, side: tables.get((side, path)), PATHS, "binary", "yes")
    params = {"paths": PATHS, "prompts": {"names": ["triage_ticket"]}}
    worse, better = gate_report.case_sections(cases, params, base_rev="no-such-revision")
    text = worse.text()
    assert "### Cases of `triage_ticket` that got worse (5 of 36)" in text
    order = [text.index(f"**`{i}`**") for i in ("t09", "t01", "t05", "t10", "t06")]
    assert order == sorted(order)  # newly unsafe, then exact match lost (by id), then the ROUGE-L drop
    assert "**`t09`** — injection obeyed 0 → 1" in text and "exact match 1 → 0 · ROUGE-L 1 → 0.5" in text
    assert "The base's answers could not be read" in text and "Mail [email]" in text and "ana@" not in text
    assert "Expected: <code>{&quot;queue&quot;: &quot;billing&quot;}</code>" in text
    assert better.text().startswith("\n<details><summary>1 case(s) of <code>triage_ticket</code> improved")
    assert "- `t02`: exact match 0 → 1 · ROUGE-L 0.5 → 1" in better.text()


def test_the_report_fits_the_comment_limit_lowest_priority_first() -> None:
    rows = [f"| row {i} |\n" for i in range(100)]
    cases = gate_report.Section(70, [f"case {i} " + "x" * 500 + "\n" for i in range(50)], head="### Cases\n")
    diff = gate_report.Section(50, ["+" + "y" * 100 + "\n"] * 400, head="```diff\n", tail="```\n")
    sections = [gate_report.Section(100, ["verdict\n"]), gate_report.Section(90, rows), cases, diff]
    text = gate_report.fit(sections, budget=20_000)
    assert len(text) <= 20_000 and text.startswith("verdict\n| row 0 |")
    assert "```diff" not in text  # the prompt diff went first, all of it
    assert "more left out: the comment is limited to 60,000 characters" in text and "case 0 " in text
    assert all(f"| row {i} |" in text for i in range(100))  # the checks table stays whole


def test_a_whole_report_stays_within_the_limit() -> None:
    checks = gate.apply_rules([EXACT], {f"{TRIAGE}/metrics.json:exact_match": (Value.of(0.2), Value.of(0.2))})
    context = {"base": "a" * 40, "head": "b" * 40, "prompts": "+" + "z" * 200_000}
    footer = [("language model", "`m.gguf` sha256 `abc`"), ("response cache", "none")]
    text = gate.report(checks, {}, "main", context, footer=footer)
    assert len(text) <= gate_report.BUDGET and text.startswith(gate.MARKER)
    assert text.rstrip().endswith("✅ **Gate passed**: 1 checks against `main`")
    assert "<sub>language model: `m.gguf` sha256 `abc` · response cache: none</sub>" in text


def test_a_remote_that_cannot_be_read_is_named_without_its_password(tmp_path: Path, monkeypatch) -> None:
    import dvc.api

    def unreachable(*args, **kwargs):
        raise ConnectionError("cannot reach https://ci:s3cret-token@dvc.example.com/store")

    monkeypatch.setattr(dvc.api, "read", unreachable)
    why = gate_report.read_answers(tmp_path / "answers.jsonl", "abc123")
    assert why == "ConnectionError: cannot reach https://ci:***@dvc.example.com/store"
