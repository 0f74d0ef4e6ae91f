"""The CI gate: compare the workspace's metrics with a base revision, report, and fail regressions.

    make gate BASE=main      # lockstep gate --base main

`compare` takes the merge base of BASE and HEAD, reads `dvc metrics diff --all --json` and
`dvc params diff --json` against it, and applies the rules in conf/gates (composed into
params.yaml). It writes reports/gate/report.md (the pull-request comment), junit.xml (one
case per rule and metric), metrics.txt (OpenMetrics, for GitLab) and checks.json (every check,
metric and params change, what the promotion policies read), and exits 1 when a rule
is broken, 2 when the comparison itself cannot be made. A value that cannot be read fails its
rule unless the rule says `on_unreadable: pass`: a regression never passes silently.
"""

from __future__ import annotations

import json
import math
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import yaml
from pydantic import ValidationError

from lockstep.assets import PLOTS_PAGE
from lockstep.config import Params, StageError, flatten
from lockstep.io import write_atomic, write_json
from lockstep.settings import GatesConfig, Rule
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

    @property
    def passed(self) -> bool:
        return not self.failures


def evaluate(rule: Rule, metric: str, old: Value, new: Value) -> Check:
    """Apply one rule to one metric; the reasons it fails (none when it passes)."""
    failures: list[str] = []
    if new.number is None:
        if rule.on_unreadable == "fail":
            failures.append(f"new value {new.problem}")
        return Check(rule, metric, old, new, failures)
    if rule.min is not None and new.number < rule.min:
        failures.append(f"{new.number:.4g} < min {rule.min:g}")
    if rule.max is not None and new.number > rule.max:
        failures.append(f"{new.number:.4g} > max {rule.max:g}")
    if old.number is None:
        if old.problem != "absent" and rule.on_unreadable == "fail":
            failures.append(f"base value {old.problem}")
        return Check(rule, metric, old, new, failures)
    worse = old.number - new.number if rule.direction == "higher" else new.number - old.number
    if rule.max_regression is not None and worse > rule.max_regression + 1e-12:
        failures.append(f"regressed by {worse:.4g} > {rule.max_regression:g}")
    if rule.max_regression_pct is not None and worse > 0:
        pct = math.inf if old.number == 0 else 100 * worse / abs(old.number)
        if pct > rule.max_regression_pct + 1e-9:
            failures.append(f"regressed by {pct:.3g}% > {rule.max_regression_pct:g}%")
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


def apply_rules(rules: list[Rule], values: dict[str, tuple[Value, Value]], task: str | None = None) -> list[Check]:
    """Every rule that applies to this task against every metric it names; a rule naming no metric fails."""
    checks = []
    for rule in (r for r in rules if r.applies_to(task)):
        matched = [name for name in sorted(values) if rule.matches(name)]
        if not matched:  # a typo or a renamed metric must not turn into zero checks
            missing = Value(problem="no metric matches this rule in workspace or base")
            checks.append(evaluate(rule, rule.metric, missing, missing))
        checks += [evaluate(rule, name, *values[name]) for name in matched]
    return checks


def change(old: Value, new: Value) -> str:
    if old.number is None or new.number is None:
        return "new" if old.problem == "absent" and new.number is not None else "—"
    delta = new.number - old.number
    pct = f" ({100 * delta / abs(old.number):+.1f}%)" if old.number else ""
    return f"{delta:+.4g}{pct}"


def verdict_of(checks: list[Check], context: dict[str, Any]) -> str:
    """fail (a check broken, or a golden set cut short), pending_review (the measuring changed), or pass."""
    if any(not c.passed for c in checks) or context.get("evaluation_failures"):
        return "fail"
    return "pending_review" if context.get("pending") else "pass"


def report(
    checks: list[Check], values: dict[str, tuple[Value, Value]], base_label: str, context: dict[str, Any]
) -> str:
    broken = [c for c in checks if not c.passed]
    extra = context.get("evaluation_failures") or []
    outcome = verdict_of(checks, context)
    if outcome == "fail":
        verdict = f"❌ **Gate failed**: {len(broken) + len(extra)} of {len(checks) + len(extra)} checks broken"
    elif outcome == "pending_review":
        verdict = (f"⏸️ **Gate pending review**: {len(checks)} checks pass against `{base_label}`, but this change"
                   " changes how it is measured (below): a person decides, it does not pass by itself")  # fmt: skip
    else:
        verdict = f"✅ **Gate passed**: {len(checks)} checks against `{base_label}`"
    heading = {"fail": "failed", "pending_review": "pending review", "pass": "passed"}[outcome]
    lines = [MARKER, f"## Lockstep gate: {heading}", "", verdict, ""]
    lines += [f"Base: `{base_label}` (merge base `{context['base'][:10]}`) · head `{context['head'][:10]}`", ""]
    if context.get("evaluated_by") == "base":
        lines += ["Measured by the base's evaluation: this change's model and prompts, scored with the merge base's"
                  " split, golden sets, stages and rules. The change owns what is judged, not how.", ""]  # fmt: skip
    lines += [f"> {context['note']}", ""] if context.get("note") else []
    if extra:
        lines += ["### Evaluation refused", "", *[f"- ❌ {f}" for f in extra], ""]
    if context.get("pending"):
        lines += ["### Pending review: this change changes how it is measured", ""]
        lines += [f"- {change}" for change in context["pending"]]
        lines += ["", "The verdict above is the base's evaluation of this change; a code owner reviews the new"
                  " procedure, and promotion waits for an approval (`lockstep approve`).", ""]  # fmt: skip
    if context.get("disagree"):
        lines += ["### This change's own evaluation disagrees", "",
                  "| metric | its own figure | the base's evaluation |", "| --- | --- | --- |"]  # fmt: skip
        lines += [f"| `{name}` | {own:.4g} | {base:.4g} |" for name, own, base in context["disagree"]]
        lines += [""]
    lines += ["| metric | base | new | change | rule | result |", "| --- | --- | --- | --- | --- | --- |"]
    for c in checks:
        mark = "✅ pass" if c.passed else "❌ " + "; ".join(c.failures)
        cells = [f"`{c.metric}`", c.old.show(), c.new.show(), change(c.old, c.new), c.rule.describe(), mark]
        lines.append("| " + " | ".join(cells) + " |")
    # Text values (a timestamp, a list of feature names) are context, not measurements: only a rule shows them
    ungated = [
        name for name in sorted(values)
        if not any(c.metric == name for c in checks)
        and not (all(v.number is None for v in values[name]) and any(v.text for v in values[name]))
    ]  # fmt: skip
    if ungated:
        lines += ["", "<details><summary>Metrics without a rule</summary>", ""]
        lines += ["| metric | base | new | change |", "| --- | --- | --- | --- |"]
        lines += [f"| `{n}` | {values[n][0].show()} | {values[n][1].show()} | {change(*values[n])} |" for n in ungated]
        lines += ["", "</details>"]
    if context.get("params"):
        lines += ["", "### Params changed", "", context["params"]]
    if context.get("prompts"):
        lines += ["", "### Prompts changed", "", "```diff", context["prompts"].rstrip(), "```"]
    lines += ["", "### Plots", "", context.get("plots", "Run `dvc plots diff` against the base to see them.")]
    lines += ["", verdict, ""]
    return "\n".join(lines)


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
    return ET.tostring(suite, encoding="utf-8", xml_declaration=True)


def openmetrics(values: dict[str, tuple[Value, Value]]) -> str:
    """GitLab's metrics report: one `name value` line per readable new value."""
    safe = {name: "".join(ch if ch.isalnum() else "_" for ch in name) for name in values}
    return "".join(f"{safe[n]} {v.number:g}\n" for n, (_, v) in sorted(values.items()) if v.number is not None)


def check_dict(c: Check) -> dict[str, Any]:
    return {"metric": c.metric, "rule": c.rule.describe(), "passed": c.passed, "old": c.old.number,
            "new": c.new.number, "failures": c.failures}  # fmt: skip


def checks_json(
    checks: list[Check], values: dict[str, tuple[Value, Value]], params_diff: dict[str, Any], context: dict[str, Any]
) -> dict[str, Any]:
    """The gate's results as data: what `lockstep policy eval` and `lockstep promote` decide on."""
    return {
        "base": context["base"],
        "head": context["head"],
        "verdict": verdict_of(checks, context),
        "passed": verdict_of(checks, context) == "pass",
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

    Returns the rules to apply and, when this change edits them, a note for the report.
    """
    try:
        relative = params_file.resolve().relative_to(Path.cwd().resolve())
    except ValueError:  # a parameters file outside the repository has no base version
        return own, None
    text = git("show", f"{base_rev}:./{relative.as_posix()}", check=False)
    if not text:  # the base has no params.yaml yet: the first change brings the first rules
        return own, None
    try:
        theirs = GatesConfig.model_validate(yaml.safe_load(text)["gates"])
    except (yaml.YAMLError, KeyError, TypeError, ValidationError):
        return own, None
    if theirs == own:
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
            "evaluation_failures": evaluation.failures, "inputs": evaluation.inputs, "disagree": disagree}  # fmt: skip


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
    """Every check of the rules against the base, the change measured by the base's evaluation, with
    report.md, junit.xml, metrics.txt and checks.json written to out_dir."""
    own = params.need("gates")
    base_rev = resolve_base(base)
    head = git("rev-parse", "HEAD")
    gates, rules_note = base_rules(base_rev, params.source, own)
    values = metric_values(base_rev, gates.rules)
    context: dict[str, Any] = measured_by_base(base_rev, head, params, values)
    checks = apply_rules(gates.rules, values, params.data.task if params.data else "binary")
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
    text = report(checks, values, base, context)
    write_atomic(out_dir / "report.md", text)
    write_atomic(out_dir / "junit.xml", junit(checks))
    write_atomic(out_dir / "metrics.txt", openmetrics(values))
    write_json(out_dir / "checks.json", checks_json(checks, values, params_diff, context))
    return Judgement(checks, context)
