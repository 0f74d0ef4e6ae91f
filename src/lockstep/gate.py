"""The CI gate: compare the workspace's metrics with a base revision, report, and fail regressions.

    make gate BASE=main      # lockstep gate --base main

`compare` takes the merge base of BASE and HEAD, reads `dvc metrics diff --all --json` and
`dvc params diff --json` against it, and applies the rules in conf/gates (composed into
params.yaml). It writes reports/gate/report.md (the pull-request comment), junit.xml (one
case per rule and metric), metrics.txt (OpenMetrics, for GitLab) and checks.json (every check,
metric and params change, what the promotion policies read), and exits 1 when a rule
is broken, 2 when the comparison itself cannot be made. A value that cannot be read fails its
rule unless the rule says `on_unreadable: pass`: a regression never passes silently.

Where the cases behind a metric are at hand on both sides (lockstep.cases), a rule is judged on
them, paired by id, with the statistics of lockstep.stats: PASS, FAIL, or INCONCLUSIVE (a
warning that does not block), with Holm's adjustment across the comparisons. Elsewhere the
single values are compared as `evaluate` does.
"""

from __future__ import annotations

import json
import math
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import numpy as np
import yaml
from pydantic import ValidationError

from lockstep import stats
from lockstep.assets import PLOTS_PAGE
from lockstep.cases import Cases, Paired, Spec, from_params, git_reader
from lockstep.config import Params, StageError, flatten, settings_file
from lockstep.gate_report import Section, case_sections, fit, provenance
from lockstep.io import write_atomic, write_json
from lockstep.settings import GatesConfig, Rule
from lockstep.stats import Comparison, Verdict
from lockstep.vcs import dvc, dvc_json, git

OUT_DIR = Path("reports/gate")
MARKER = "<!-- lockstep-gate -->"  # lets CI find and update its own comment


@dataclass
class Value:
    """One side of a comparison: a number, or why there is none."""

    number: float | None = None
    problem: str | None = None  # "absent" (no base yet / new metric), else why it is unreadable
    text: bool = False  # a value that is not a number at all: a string, a list, a boolean

    @classmethod
    def of(cls, raw: Any, absent: str | None = None) -> Value:
        if raw is None:
            return cls(problem=absent or "missing")
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            return cls(problem=f"not a number ({raw!r})", text=True)
        if math.isnan(raw) or math.isinf(raw):
            return cls(problem=f"not a number ({raw})")
        return cls(number=float(raw))

    def show(self) -> str:
        return f"{self.number:.4g}" if self.number is not None else f"— ({self.problem})"


@dataclass
class Check:
    rule: Rule
    metric: str
    old: Value
    new: Value
    failures: list[str]
    unsure: list[str] = field(default_factory=list)  # why the verdict is inconclusive
    notes: list[str] = field(default_factory=list)  # what the report should add: how it was judged, bounds
    comparison: Comparison | None = None  # the paired change, when the cases of both sides pair up
    interval: str = ""  # the comparison's 90 % interval of head - base, in the metric's own direction
    p_adjusted: float | None = None  # the comparison's p-value after Holm across the gate's comparisons

    @property
    def passed(self) -> bool:
        """Nothing blocks: an inconclusive check passes (it warns)."""
        return not self.failures

    @property
    def verdict(self) -> Verdict:
        return Verdict.FAIL if self.failures else Verdict.INCONCLUSIVE if self.unsure else Verdict.PASS


def limit_failures(rule: Rule, value: float) -> list[str]:
    failures = [f"{value:.4g} < min {rule.min:g}"] if rule.min is not None and value < rule.min else []
    return failures + ([f"{value:.4g} > max {rule.max:g}"] if rule.max is not None and value > rule.max else [])


def regression_failures(rule: Rule, old: float, new: float) -> list[str]:
    failures = []
    worse = old - new if rule.direction == "higher" else new - old
    if rule.max_regression is not None and worse > rule.max_regression + 1e-12:
        failures.append(f"regressed by {worse:.4g} > {rule.max_regression:g}")
    if rule.max_regression_pct is not None and worse > 0:
        pct = math.inf if old == 0 else 100 * worse / abs(old)
        if pct > rule.max_regression_pct + 1e-9:
            failures.append(f"regressed by {pct:.3g}% > {rule.max_regression_pct:g}%")
    return failures


def evaluate(rule: Rule, metric: str, old: Value, new: Value) -> Check:
    """Apply one rule to one metric's single values; the reasons it fails (none when it passes)."""
    failures: list[str] = []
    if new.number is None:
        if rule.on_unreadable == "fail":
            failures.append(f"new value {new.problem}")
        return Check(rule, metric, old, new, failures)
    failures += limit_failures(rule, new.number)
    if old.number is None:
        if old.problem != "absent" and rule.on_unreadable == "fail":
            failures.append(f"base value {old.problem}")
        return Check(rule, metric, old, new, failures)
    failures += regression_failures(rule, old.number, new.number)
    return Check(rule, metric, old, new, failures)


def resolve_base(base: str) -> str:
    """The merge base of BASE and HEAD: what the pull request would change."""
    if not git("rev-parse", "--verify", "-q", "HEAD^{commit}", check=False):
        raise StageError("no commit yet: commit the project first (the gate compares commits)")
    for candidate in (base, f"origin/{base}"):
        if git("rev-parse", "--verify", "-q", candidate + "^{commit}", check=False):
            merge_base = git("merge-base", candidate, "HEAD", check=False)
            if not merge_base:
                raise StageError(
                    f"base '{base}' shares no history with HEAD; fetch full history (git fetch --unshallow)"
                )
            return merge_base
    raise StageError(f"base '{base}' is not a known revision; fetch it (git fetch origin {base}) or set BASE")


def base_file(rev: str, path: str) -> tuple[dict[str, Any] | None, str | None]:
    """A metrics file as committed at rev: (content, None), (None, 'absent') or (None, why unreadable)."""
    if subprocess.run(["git", "cat-file", "-e", f"{rev}:{path}"], capture_output=True).returncode:
        return None, "absent"
    try:
        return json.loads(git("show", f"{rev}:{path}")), None
    except (json.JSONDecodeError, StageError) as exc:
        return None, f"unreadable at base ({type(exc).__name__})"


def metric_values(base_rev: str, rules: list[Rule] | None = None) -> dict[str, tuple[Value, Value]]:
    """Every metric of workspace and base as (old, new), keyed "<file>:<key>": the metrics files
    dvc.yaml declares, and any other file a rule names (e.g. the monitor's, which no stage writes)."""
    diff = dvc_json("metrics", "diff", base_rev, "--all")
    named = {rule.metric.rpartition(":")[0] for rule in rules or []}
    undeclared = sorted(
        path for path in named - set(diff)
        if not any(c in path for c in "*?[") and (Path(path).exists() or base_file(base_rev, path)[0] is not None)
    )  # fmt: skip
    if undeclared:
        diff |= dvc_json("metrics", "diff", base_rev, "--all", "--targets", *undeclared)
    values = {}
    for path, metrics in diff.items():
        committed, why = base_file(base_rev, path)
        committed_values = flatten(committed) if committed is not None else {}
        for key, entry in metrics.items():
            old_raw = entry.get("old")
            if old_raw is None:  # DVC leaves it out when it failed to load the base: read it from Git
                old_raw = committed_values.get(key)
            # No base value: the file or the key is new in this branch, or the base is unreadable.
            old = Value.of(old_raw, absent="absent" if committed is not None else why)
            removed = "removed in this branch" if Path(path).exists() else f"{path} missing"
            values[f"{path}:{key}"] = (old, Value.of(entry.get("new"), absent=removed))
    return values


def judge(rule: Rule, metric: str, old: Value, new: Value, cases: Cases | None, interleaved: bool = False) -> Check:
    """Apply one rule to one metric, on its cases when both sides have them (module docstring of
    lockstep.stats), else on the single values as `evaluate` does. A paired comparison is left
    with its p-value for `apply_rules` to adjust across the gate's comparisons (Holm)."""
    head = cases.head(metric) if cases is not None and new.number is not None else None
    if not isinstance(head, tuple):
        check = evaluate(rule, metric, old, new)
        check.notes += [f"judged on single values: {head}"] if head else []
        return check
    spec, frame = head
    check = Check(rule, metric, old, new, [])
    if old.number is None and old.problem != "absent" and rule.on_unreadable == "fail":
        check.failures.append(f"base value {old.problem}")
    values = frame["value"].to_numpy()
    if rule.min is not None or rule.max is not None:
        judge_limits(check, spec, frame)
    if spec.kind == "safety":
        bad, n = int(values.sum()), len(values)
        check.notes.append(f"{bad} of {n} cases; the rate is at most {stats.rate_upper_bound(bad, n):.3g} (95 %)")
    if not rule.compares or old.number is None:
        return check
    paired = cases.paired(metric)
    if not isinstance(paired, Paired):
        check.failures += regression_failures(rule, old.number, new.number)
        check.notes.append(f"compared on single values: {paired}")
        return check
    compare_cases(check, paired, rule.allowed(old.number), interleaved)
    return check


def judge_limits(check: Check, spec: Spec, frame: Any) -> None:
    """min and max on the head's cases: exact for safety and latency, on the 95 % bounds otherwise."""
    rule, value = check.rule, check.new.number
    assert value is not None
    if spec.kind in ("safety", "latency"):  # counted (safety) or as measured (latency): no estimate
        check.failures += limit_failures(rule, value)
        return
    values = frame["value"].to_numpy()
    if spec.kind == "binary":
        low, high = stats.proportion_bounds(int(values.sum()), len(values))
    elif spec.kind == "scores":
        low, high = stats.mean_bounds(values)
    else:
        assert spec.statistic is not None
        sign = 1 if rule.direction == "higher" else -1  # the statistic is oriented: higher is better
        low, high = sorted(sign * b for b in stats.statistic_bounds(spec.statistic, frame["actual"], values))
    bounds = f"90 % interval [{low:.3g}, {high:.3g}] of {len(values)} cases"
    verdict = stats.limit_verdict(low, high, rule.min, rule.max)
    if verdict == Verdict.FAIL:
        check.failures += [f"{f}: {bounds}" for f in limit_failures(rule, value)] or [f"past its limit: {bounds}"]
    elif verdict == Verdict.INCONCLUSIVE:
        limit = f"min {rule.min:g}" if rule.min is not None and low < rule.min else f"max {rule.max:g}"
        check.unsure.append(f"{limit} lies within the {bounds}")


def compare_cases(check: Check, paired: Paired, allowed: float, interleaved: bool) -> None:
    """The head's cases against the base's, by the metric's kind (lockstep.stats)."""
    rule, spec = check.rule, paired.spec
    if paired.new_ids or paired.gone_ids:
        check.notes.append(f"{len(paired.ids)} cases paired ({paired.new_ids} new, {paired.gone_ids} gone)")
    if spec.kind == "statistic":  # the rows' predictions (class names or values), the metric over all rows
        assert spec.statistic is not None and paired.actual is not None
        losses = tuple(row_loss(spec, paired.actual, side) for side in (paired.base, paired.head))
        c = stats.paired_statistic(spec.statistic, paired.actual, paired.base, paired.head, allowed, losses)
    else:
        base, head = paired.base.astype(float), paired.head.astype(float)
        if spec.kind == "safety":  # no statistics: any case newly bad beyond the allowance fails
            newly = stats.newly_bad(base, head)
            if newly > allowed * len(base) + 1e-9:
                ids = ", ".join(paired.ids[head.astype(bool) & ~base.astype(bool)][:10])
                check.failures.append(f"{newly} case(s) newly bad: {ids}")
            return
        if spec.kind == "latency":
            if not interleaved or not check.metric.endswith("p50_s"):
                apart = "base and head were not measured interleaved on one runner"
                why = "p95 is reported only" if interleaved else apart
                check.notes.append(f"latency change not judged: {why}")
                return
            median = float(np.median(base))
            check.comparison = stats.latency_ratio(base, head, 1 + allowed / median if median > 0 else 1.0)
            c = check.comparison
            check.interval = f"head p50 {math.exp(-c.high):.3g} to {math.exp(-c.low):.3g} times the base's"
            return
        up = rule.direction == "higher"
        if spec.kind == "binary":
            c = stats.mcnemar(base, head, allowed) if up else stats.mcnemar(1 - base, 1 - head, allowed)
        else:
            sign = 1 if up else -1
            c = stats.paired_scores(sign * base, sign * head, allowed)
    check.comparison = c
    low, high = (c.low, c.high) if rule.direction == "higher" else (-c.high, -c.low)
    check.interval = f"[{low:+.3g}, {high:+.3g}]"


def row_loss(spec: Spec, actual: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Per-row loss of a prediction: 1 when wrong (classification), the squared or absolute error."""
    if spec.loss == "wrong":
        return (np.asarray(actual) != np.asarray(predicted)).astype(float)
    error = np.asarray(actual, dtype=float) - np.asarray(predicted, dtype=float)
    return error**2 if spec.loss == "squared" else np.abs(error)


def settle(checks: list[Check]) -> None:
    """The comparisons' verdicts, with Holm's adjustment across all of them: across the primary
    metrics, the chance of any false FAIL stays at 5 %."""
    pending = [c for c in checks if c.comparison is not None]
    for check, p in zip(pending, stats.holm([c.comparison.p for c in pending]), strict=True):
        c = check.comparison
        assert c is not None
        check.p_adjusted = p
        verdict = c.verdict(p)
        why = f"{c.test}, p {p:.2g} after Holm across {len(pending)}"
        interval = f"90 % interval {check.interval}"
        if verdict == Verdict.PASS:
            check.notes.insert(0, c.test)
        elif verdict == Verdict.FAIL:
            check.failures.append(f"worse by more than the allowed {c.allowed:.3g}: {interval} ({why})")
        elif verdict == Verdict.INCONCLUSIVE:
            beyond = f"includes a regression beyond the allowed {c.allowed:.3g}"
            check.unsure.append(f"the {interval} {beyond} ({why}); {planning(check)}")


def planning(check: Check) -> str:
    """What this golden set can detect, and how many cases the rule's min_effect needs."""
    c = check.comparison
    assert c is not None
    smallest = stats.detectable(c)
    if smallest is None:
        text = f"with {c.n} cases no regression is detected reliably"
    else:
        cases = f" ({round(smallest * c.n)} of {c.n} cases)" if c.exact else ""
        text = f"with {c.n} cases it detects regressions of {smallest:.3g}{cases} or more (80 % of the time)"
    effect = check.rule.min_effect
    if effect is None:
        return text + "; set min_effect on the rule to learn how many cases a smaller one needs"
    needed = stats.cases_needed(c, effect)
    if needed is None:
        return text + f"; min_effect {effect:g} is within the allowed regression: no number of cases catches it"
    return text + f"; catching a regression of min_effect {effect:g} needs about {needed} cases"


def apply_rules(
    rules: list[Rule],
    values: dict[str, tuple[Value, Value]],
    task: str | None = None,
    cases: Cases | None = None,
    interleaved: bool = False,
) -> list[Check]:
    """Every rule that applies to this task against every metric it names; a rule naming no metric
    fails. With `cases`, metrics whose cases both sides have are judged on them (paired by id)."""
    checks = []
    for rule in (r for r in rules if r.applies_to(task)):
        matched = [name for name in sorted(values) if rule.matches(name)]
        if not matched:  # a typo or a renamed metric must not turn into zero checks
            missing = Value(problem="no metric matches this rule in workspace or base")
            checks.append(evaluate(rule, rule.metric, missing, missing))
        checks += [judge(rule, name, *values[name], cases, interleaved) for name in matched]
    settle(checks)
    return checks


def change(old: Value, new: Value) -> str:
    if old.number is None or new.number is None:
        return "new" if old.problem == "absent" and new.number is not None else "—"
    delta = new.number - old.number
    pct = f" ({100 * delta / abs(old.number):+.1f}%)" if old.number else ""
    return f"{delta:+.4g}{pct}"


def verdict_of(checks: list[Check], context: dict[str, Any] | None = None) -> str:
    """fail (a check broken, or a golden set cut short), pending_review (the measuring changed),
    inconclusive (a check cannot be decided on these cases: it does not block), or pass."""
    context = context or {}
    if any(c.verdict == Verdict.FAIL for c in checks) or context.get("evaluation_failures"):
        return "fail"
    if context.get("pending"):
        return "pending_review"
    return "inconclusive" if any(c.verdict == Verdict.INCONCLUSIVE for c in checks) else "pass"


def headline(checks: list[Check], base_label: str, context: dict[str, Any] | None = None) -> tuple[str, str]:
    """The overall verdict: (title words, the line that says it)."""
    context = context or {}
    broken = [c for c in checks if c.verdict == Verdict.FAIL]
    unsure = [c for c in checks if c.verdict == Verdict.INCONCLUSIVE]
    extra = context.get("evaluation_failures") or []
    outcome = verdict_of(checks, context)
    if outcome == "fail":
        more = f"; {len(unsure)} inconclusive" if unsure else ""
        counted = f"{len(broken) + len(extra)} of {len(checks) + len(extra)} checks broken"
        return "failed", f"❌ **Gate failed**: {counted}{more}"
    if outcome == "pending_review":
        return "pending review", (
            f"⏸️ **Gate pending review**: no check of {len(checks)} fails against `{base_label}`, but this change"
            " changes how it is measured (below): a person decides, it does not pass by itself"
        )
    if outcome == "inconclusive":
        return "inconclusive", (
            f"⚠️ **Gate inconclusive**: {len(unsure)} of {len(checks)} checks cannot be decided on these cases"
            f" (they do not block); the other {len(checks) - len(unsure)} pass against `{base_label}`"
        )
    return "passed", f"✅ **Gate passed**: {len(checks)} checks against `{base_label}`"


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def result(c: Check) -> str:
    mark = {
        Verdict.FAIL: "❌ " + "; ".join(c.failures),
        Verdict.INCONCLUSIVE: "⚠️ inconclusive: " + "; ".join(c.unsure),
        Verdict.PASS: "✅ pass",
    }[c.verdict]
    return cell(mark + (f"<br><sub>{'; '.join(c.notes)}</sub>" if c.notes else ""))


def report(
    checks: list[Check],
    values: dict[str, tuple[Value, Value]],
    base_label: str,
    context: dict[str, Any],
    cases: list[Section] | None = None,
    footer: list[tuple[str, str]] | None = None,
) -> str:
    """The pull-request comment: verdict, one row per check, the cases that changed, params and
    prompts changed, plots, provenance; within gate_report.BUDGET characters (lowest priority cut first)."""
    word, verdict = headline(checks, base_label, context)
    top = [MARKER, f"## Lockstep gate: {word}", "", verdict, ""]
    top += [f"Base: `{base_label}` (merge base `{context['base'][:10]}`) · head `{context['head'][:10]}`", ""]
    if context.get("evaluated_by") == "base":
        top += ["Measured by the base's evaluation: this change's model and prompts, scored with the merge base's"
                " split, golden sets, stages and rules. The change owns what is judged, not how.", ""]  # fmt: skip
    top += [f"> {context['note']}", ""] if context.get("note") else []
    if context.get("evaluation_failures"):
        top += ["### Evaluation refused", "", *[f"- ❌ {f}" for f in context["evaluation_failures"]], ""]
    if context.get("pending"):
        top += ["### Pending review: this change changes how it is measured", ""]
        top += [f"- {what}" for what in context["pending"]]
        top += ["", "The verdict above is the base's evaluation of this change; a code owner reviews the new"
                " procedure, and promotion waits for an approval (`lockstep approve`).", ""]  # fmt: skip
    header = "| metric | base | new | change | 90 % interval | rule | verdict |\n" + "| --- " * 7 + "|\n"
    rows = [
        "| " + " | ".join([f"`{c.metric}`", c.old.show(), c.new.show(), change(c.old, c.new), c.interval,
                           cell(c.rule.describe()), result(c)]) + " |\n"
        for c in checks
    ]  # fmt: skip
    sections = [Section(100, ["\n".join(top) + "\n"]), Section(90, rows, head=header), *(cases or [])]
    if context.get("disagree"):
        head = ("\n### This change's own evaluation disagrees\n\n| metric | its own figure | the base's evaluation |\n"
                "| --- | --- | --- |\n")  # fmt: skip
        lines = [f"| `{name}` | {own:.4g} | {base:.4g} |\n" for name, own, base in context["disagree"]]
        sections.append(Section(85, lines, head=head))
    # Text values (a timestamp, a list of feature names) are context, not measurements: only a rule shows them
    ungated = [
        name for name in sorted(values)
        if not any(c.metric == name for c in checks)
        and not (all(v.number is None for v in values[name]) and any(v.text for v in values[name]))
    ]  # fmt: skip
    if ungated:
        head = "\n<details><summary>Metrics without a rule</summary>\n\n"
        head += "| metric | base | new | change |\n| --- | --- | --- | --- |\n"
        lines = [f"| `{n}` | {values[n][0].show()} | {values[n][1].show()} | {change(*values[n])} |\n" for n in ungated]
        sections.append(Section(30, lines, head=head, tail="\n</details>\n"))
    if context.get("params"):
        sections.append(Section(60, [f"\n### Params changed\n\n{context['params']}\n"]))
    if context.get("prompts"):
        diff = [line + "\n" for line in context["prompts"].rstrip().splitlines()]
        sections.append(Section(50, diff, head="\n### Prompts changed\n\n```diff\n", tail="```\n"))
    plots = context.get("plots", "Run `dvc plots diff` against the base to see them.")
    sections.append(Section(80, [f"\n### Plots\n\n{plots}\n"]))
    if footer:
        items = [f"{what}: {value}" for what, value in footer]
        sections.append(Section(95, [" · ".join(items)], head="\n---\n<sub>", tail="</sub>\n"))
    sections.append(Section(100, [f"\n{verdict}\n"]))
    return fit(sections)


def params_table(diff: dict[str, Any]) -> str:
    rows = [
        f"| `{path}:{key}` | `{entry.get('old')}` | `{entry.get('new')}` |"
        for path, params in diff.items()
        for key, entry in sorted(params.items())
    ]
    return "\n".join(["| param | base | new |", "| --- | --- | --- |", *rows]) if rows else ""


def junit(checks: list[Check]) -> bytes:
    suite = ET.Element("testsuite", name="lockstep-gate", tests=str(len(checks)))
    suite.set("failures", str(sum(not c.passed for c in checks)))
    for c in checks:
        path, _, key = c.metric.partition(":")
        case = ET.SubElement(suite, "testcase", classname=f"gate.{path}", name=f"{key} [{c.rule.describe()}]")
        if not c.passed:
            failure = ET.SubElement(case, "failure", message="; ".join(c.failures))
            failure.text = f"base {c.old.show()}, new {c.new.show()}"
        elif c.unsure:  # passes (it does not block), and says why it could not be decided
            ET.SubElement(case, "system-out").text = "inconclusive: " + "; ".join(c.unsure)
    return ET.tostring(suite, encoding="utf-8", xml_declaration=True)


def openmetrics(values: dict[str, tuple[Value, Value]]) -> str:
    """GitLab's metrics report: one `name value` line per readable new value."""
    safe = {name: "".join(ch if ch.isalnum() else "_" for ch in name) for name in values}
    return "".join(f"{safe[n]} {v.number:g}\n" for n, (_, v) in sorted(values.items()) if v.number is not None)


def check_dict(c: Check) -> dict[str, Any]:
    interval = [c.comparison.low, c.comparison.high] if c.comparison else None  # oriented: positive is better
    return {"metric": c.metric, "rule": c.rule.describe(), "passed": c.passed, "verdict": c.verdict.value,
            "old": c.old.number, "new": c.new.number, "failures": c.failures, "inconclusive": c.unsure,
            "notes": c.notes, "change_bounds": interval, "p_adjusted": c.p_adjusted}  # fmt: skip


def checks_json(
    checks: list[Check], values: dict[str, tuple[Value, Value]], params_diff: dict[str, Any], context: dict[str, Any]
) -> dict[str, Any]:
    """The gate's results as data: what `lockstep policy eval` and `lockstep promote` decide on.
    An inconclusive check does not block: `passed` is true for pass and inconclusive."""
    verdict = verdict_of(checks, context)
    return {
        "base": context["base"],
        "head": context["head"],
        "verdict": verdict,
        "passed": verdict in ("pass", "inconclusive"),
        "evaluated_by": context.get("evaluated_by", "self"),
        "pending": context.get("pending", []),
        "evaluation_failures": context.get("evaluation_failures", []),
        "inputs": context.get("inputs", {}),
        "disagree": [{"metric": n, "own": o, "base": b} for n, o, b in context.get("disagree", [])],
        "checks": [check_dict(c) for c in checks],
        "metrics": {name: {"old": old.number, "new": new.number} for name, (old, new) in sorted(values.items())},
        "params_diff": params_diff,
        "rules_changed": bool(context.get("rules_changed")),
    }


def base_rules(base_rev: str, params_file: Path, own: GatesConfig) -> tuple[GatesConfig, str | None]:
    """The rules of the base revision: a change never judges itself by rules it loosened.

    They are in the base's settings.yaml beside the parameters file (or, in a project baked before
    the settings moved, its params.yaml). Returns the rules to apply and, when this change edits
    them, a note for the report.
    """
    try:
        relative = params_file.resolve().relative_to(Path.cwd().resolve())
    except ValueError:  # a parameters file outside the repository has no base version
        return own, None
    theirs = None
    for candidate in (settings_file(relative), relative):
        text = git("show", f"{base_rev}:./{candidate.as_posix()}", check=False)
        try:
            section = yaml.safe_load(text).get("gates") if text else None
            theirs = GatesConfig.model_validate(section) if section is not None else None
        except (yaml.YAMLError, AttributeError, ValidationError):
            return own, None
        if theirs is not None:
            break
    if theirs is None or theirs == own:  # the base has no rules yet: the first change brings the first rules
        return own, None
    return theirs, (
        "This change edits the gate rules (conf/gates): the base's rules were applied. The new rules"
        " take effect once the rules' owners (CODEOWNERS) approve the change and it is merged."
    )


def plot_targets(params: dict[str, Any]) -> list[str]:
    """The plot files with rows in the workspace: the task's own (a file of another task holds only its header)."""
    folder = Path(params.get("paths", {}).get("plots", "reports/plots"))
    targets = [str(f) for f in sorted(folder.glob("*.csv")) if len(f.read_bytes().splitlines()) > 1]
    reports = params.get("paths", {}).get("prompt_reports")
    targets += [str(f) for f in sorted(Path(reports).glob("*/cases.csv"))] if reports else []
    return targets


def base_params(base_rev: str, params_file: Path) -> dict[str, Any] | None:
    """params.yaml as the base committed it (None when it has none, or it lies outside the repository)."""
    try:
        relative = params_file.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return None
    text = git("show", f"{base_rev}:./{relative.as_posix()}", check=False)
    try:
        loaded = yaml.safe_load(text) if text else None
    except yaml.YAMLError:
        return None
    return loaded if isinstance(loaded, dict) else None


def measured_by_base(
    base_rev: str, head: str, params: Params, values: dict[str, tuple[Value, Value]]
) -> dict[str, Any]:
    """Replace this change's own figures with the base's evaluation of its model and prompts, in place;
    the report's context: what was measured how, what of the measuring changed, where the two disagree."""
    from lockstep import trusted

    theirs = base_params(base_rev, params.source) if base_rev != head else None
    if not theirs:  # the first commit, or main's first push: there is no other procedure than its own
        return {"evaluated_by": "self"}
    evaluation = trusted.measure(base_rev, theirs, params.raw)
    own = {name: new for name, (_, new) in values.items()}
    for name, number in evaluation.values.items():
        old = values[name][0] if name in values else Value(problem="absent")
        values[name] = (old, Value.of(number, absent="not measured by the base's evaluation"))
    disagree = [
        (name, own[name].number, values[name][1].number) for name in sorted(evaluation.values)
        if name in own and own[name].number is not None and values[name][1].number is not None
        and "latency" not in name and not math.isclose(own[name].number, values[name][1].number, rel_tol=1e-6,
                                                         abs_tol=1e-9)
    ]  # fmt: skip
    return {"evaluated_by": "base" if evaluation.values else "self", "pending": evaluation.changes,
            "evaluation_failures": evaluation.failures, "inputs": evaluation.inputs, "disagree": disagree,
            "case_files": evaluation.cases, "measured_params": theirs if evaluation.values else None}  # fmt: skip


@dataclass
class Judgement:
    """What the gate decided: its checks, and the context of the report (the base's evaluation, the
    changes to the measuring, what was refused)."""

    checks: list[Check]
    context: dict[str, Any]

    @property
    def verdict(self) -> str:
        return verdict_of(self.checks, self.context)


def compare(base: str, params: Params, out_dir: Path) -> Judgement:
    """Every check of the rules against the base, the change measured by the base's evaluation and,
    where both sides have per-case files, judged case by case; report.md, junit.xml, metrics.txt and
    checks.json written to out_dir."""
    own = params.need("gates")
    base_rev = resolve_base(base)
    head = git("rev-parse", "HEAD")
    gates, rules_note = base_rules(base_rev, params.source, own)
    values = metric_values(base_rev, gates.rules)
    context: dict[str, Any] = measured_by_base(base_rev, head, params, values)
    measured = context.pop("measured_params", None) or params.raw  # whose paths and split the figures follow
    cases = from_params(measured, git_reader(base_rev, context.pop("case_files", None)))
    checks = apply_rules(gates.rules, values, params.data.task if params.data else "binary", cases)
    params_diff = dvc_json("params", "diff", base_rev)
    context |= {"base": base_rev, "head": head, "params": params_table(params_diff)}
    notes = [rules_note] if rules_note else []
    if not git("ls-files", "dvc.lock", check=False):
        notes.append("No `dvc.lock` is committed yet: every stage was reproduced from scratch for this report.")
    context["note"] = " ".join(notes)
    context["rules_changed"] = "true" if rules_note else ""
    prompts_dir = str(params.paths.prompts) if params.paths and params.paths.prompts else None
    if prompts_dir:
        context["prompts"] = git("diff", base_rev, "--", prompts_dir, check=False)
    out_dir.mkdir(parents=True, exist_ok=True)  # dvc plots diff needs the parent to exist
    targets = plot_targets(params.raw)
    plots = subprocess.run(
        [dvc(), "plots", "diff", base_rev, *(["--targets", *targets] if targets else []),
         "-o", str(out_dir / "plots"), "--html-template", str(PLOTS_PAGE)], capture_output=True,
    )  # fmt: skip
    if plots.returncode == 0:
        context["plots"] = f"`dvc plots diff` against the base: `{out_dir / 'plots' / 'index.html'}` (CI artifact)."
    sections = case_sections(cases, params.raw, base_rev)
    text = report(checks, values, base, context, sections, provenance(params.raw))
    write_atomic(out_dir / "report.md", text)
    write_atomic(out_dir / "junit.xml", junit(checks))
    write_atomic(out_dir / "metrics.txt", openmetrics(values))
    write_json(out_dir / "checks.json", checks_json(checks, values, params_diff, context))
    return Judgement(checks, context)
