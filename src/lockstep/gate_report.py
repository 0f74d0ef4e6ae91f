"""Parts of the gate's report that go beyond the checks table: per-case diffs, provenance, the size limit.

The report is one pull-request comment, updated in place, and GitHub rejects a comment over
65,536 characters. `fit` keeps it within `BUDGET`: the report is a list of sections with a
priority each, and the lowest-priority section loses its last blocks first (a block is a
table row, a case, a line of a diff), with a line saying how many were left out.

`case_sections` writes, for each prompt whose cases pair with the base's, the five cases that
got worse the most (a case newly unsafe first, then an exact match lost, then the largest ROUGE-L
drop): the id, the change of each score, the expected answer, and a word diff of the base's and
the head's answers; then the cases that improved, folded. Answers and expected answers are
masked with the patterns of MLflow's PIIDetection (the scorer behind `pii_leak_rate`) and cut to
600 characters; an answer that still looks like personal data after masking is not shown.

The head's answers are the work tree's `data/prompt_outputs/<name>.jsonl`. The base's are that
DVC output as the base revision recorded it, read with `dvc.api.read(path, rev=<base>)`, from
the local DVC cache or the remote. When they cannot be read (a CI runner without access to the
remote), the head's answer is shown alone, with the reason.

`provenance` lists what the head's results were produced with, for the footer.
"""

from __future__ import annotations

import difflib
import hashlib
import html
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from lockstep.cases import Cases
from lockstep.config import one_line, redact

BUDGET = 60_000  # characters: GitHub rejects comments over 65,536
WORST = 5  # regressions shown per prompt
ANSWER_CHARS = 600
# A case's scores in cases.csv: (column, label, True when higher is better, False when a 1 is bad)
SCORES = (
    ("pii", "PII", False),
    ("banned", "banned phrase", False),
    ("injection_failed", "injection obeyed", False),
    ("exact_match", "exact match", True),
    ("rouge_l", "ROUGE-L", True),
)
UNSAFE = ("pii", "banned", "injection_failed")
PII_ORDER = ("email", "credit_card", "ssn", "ip_address", "phone")  # the longer patterns first


@dataclass
class Section:
    """A part of the report: `head` and `tail` wrap its blocks and go when the last block goes."""

    priority: int  # higher is kept longer
    blocks: list[str]
    head: str = ""
    tail: str = ""
    dropped: int = field(default=0, init=False)

    def text(self) -> str:
        if not self.blocks:
            return ""
        note = f"\n*{self.dropped} more left out: the comment is limited to {BUDGET:,} characters.*\n"
        return self.head + "".join(self.blocks) + (note if self.dropped else "") + self.tail


def fit(sections: list[Section], budget: int = BUDGET) -> str:
    """The sections joined, their lowest-priority blocks dropped until the text fits the budget."""
    while True:
        text = "".join(s.text() for s in sections)
        if len(text) <= budget:
            return text
        candidates = [s for s in sections if s.blocks]
        if not candidates:
            return text[:budget]
        lowest = min(candidates, key=lambda s: s.priority)
        excess = len(text) - budget
        while lowest.blocks and excess > 0:  # drop as many as the excess needs in one go
            excess -= len(lowest.blocks.pop())
            lowest.dropped += 1


# --- masking ------------------------------------------------------------------------------------


def pii_patterns() -> dict[str, str]:
    """The patterns answers are masked with (lockstep.pii: MLflow PIIDetection's, as our own copy)."""
    from lockstep.pii import DEFAULT_PATTERNS

    return dict(DEFAULT_PATTERNS)


def mask(text: str, patterns: dict[str, str] | None) -> str | None:
    """The text with each match of a PII pattern replaced by its type in brackets; None when it
    cannot be shown safely (no patterns, or a match left after masking)."""
    if patterns is None:
        return None
    for kind in [k for k in PII_ORDER if k in patterns] + [k for k in patterns if k not in PII_ORDER]:
        text = re.sub(patterns[kind], f"[{kind}]", text)
    return None if any(re.search(p, text) for p in patterns.values()) else text


def shorten(text: str, limit: int = ANSWER_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def word_diff(old: str, new: str) -> str:
    """The words of both answers, deletions in <del>, insertions in <ins>, HTML-escaped."""
    a, b = old.split(), new.split()
    out = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(html.escape(" ".join(a[i1:i2])))
            continue
        if i2 > i1:
            out.append(f"<del>{html.escape(' '.join(a[i1:i2]))}</del>")
        if j2 > j1:
            out.append(f"<ins>{html.escape(' '.join(b[j1:j2]))}</ins>")
    return " ".join(out)


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)


# --- per-case diffs -----------------------------------------------------------------------------


def read_answers(path: Path, rev: str | None) -> dict[str, dict[str, Any]] | str:
    """The records of a prompt's outputs file by id: the work tree's (rev None) or a revision's
    through DVC; why not, when they cannot be read."""
    try:
        if rev is None:
            text = path.read_text(encoding="utf-8")
        else:
            import dvc.api

            text = dvc.api.read(path.as_posix(), rev=rev, encoding="utf-8")
    except Exception as exc:  # DVC raises many kinds (no cache, no remote, no such output): all mean "not shown"
        why = re.sub(r"\b[a-z][a-z0-9+.-]*://\S+", lambda url: redact(url.group()), f"{type(exc).__name__}: {exc}")
        return one_line(why, 160)  # a remote's URL with its password masked
    records = {}
    for line in text.splitlines():
        if line.strip():
            record = json.loads(line)
            records[str(record.get("id"))] = record
    return records


def case_sections(cases: Cases, params: dict[str, Any], base_rev: str) -> list[Section]:
    """For each prompt, its worst regressions (priority 70) and its improvements, folded (40)."""
    paths = params.get("paths") or {}
    names = (params.get("prompts") or {}).get("names") or []
    if not cases.prompt_reports or not paths.get("prompt_outputs"):
        return []
    patterns = pii_patterns()
    sections = []
    for name in names:
        table = f"{cases.prompt_reports}/{name}/cases.csv"
        head, base = cases.table(table, "head"), cases.table(table, "base")
        if not isinstance(head, pd.DataFrame) or not isinstance(base, pd.DataFrame) or "id" not in base.columns:
            continue  # no cases on one side: nothing to pair
        both = head.set_index(head["id"].astype(str)).merge(
            base.set_index(base["id"].astype(str)), left_index=True, right_index=True, suffixes=("", "_base")
        )
        worse, better = rank(both)
        if not worse and not better:
            continue
        outputs = Path(paths["prompt_outputs"]) / f"{name}.jsonl"
        new_answers = read_answers(outputs, None)
        old_answers = read_answers(outputs, base_rev) if worse else {}
        title = f"\n### Cases of `{name}` that got worse ({len(worse)} of {len(both)})\n\n"
        if isinstance(old_answers, str):
            title += f"The base's answers could not be read ({old_answers}): only the head's are shown.\n\n"
        blocks = [entry(i, row, new_answers, old_answers, patterns) for i, row in worse[:WORST]]
        if len(worse) > WORST:
            blocks.append(f"{len(worse) - WORST} more: {', '.join(f'`{i}`' for i, _ in worse[WORST : WORST + 30])}\n\n")
        if worse:
            sections.append(Section(70, blocks, head=title))
        if better:
            summary = f"\n<details><summary>{len(better)} case(s) of <code>{name}</code> improved</summary>\n\n"
            rows = [f"- `{i}`: {changes(row)}\n" for i, row in better]
            sections.append(Section(40, rows, head=summary, tail="\n</details>\n"))
    return sections


def rank(both: Any) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
    """Cases that got worse, worst first, and cases that only got better."""
    worse, better = [], []
    for case_id, row in both.iterrows():
        unsafe_new = sum(int(row[c] > row[f"{c}_base"]) for c in UNSAFE if c in row)
        unsafe_gone = sum(int(row[c] < row[f"{c}_base"]) for c in UNSAFE if c in row)
        lost = max(0.0, row.get("exact_match_base", 0) - row.get("exact_match", 0))
        gained = max(0.0, row.get("exact_match", 0) - row.get("exact_match_base", 0))
        drop = row.get("rouge_l_base", 0) - row.get("rouge_l", 0)
        key = (unsafe_new, lost, drop)
        if unsafe_new or lost or drop > 0:
            worse.append((key, str(case_id), row))
        elif unsafe_gone or gained or drop < 0:
            better.append((str(case_id), row))
    worse.sort(key=lambda item: (tuple(-k for k in item[0]), item[1]))
    return [(i, row) for _, i, row in worse], better


def changes(row: Any) -> str:
    shown = []
    for column, label, _ in SCORES:
        if column in row and f"{column}_base" in row and row[column] != row[f"{column}_base"]:
            shown.append(f"{label} {row[f'{column}_base']:g} → {row[column]:g}")
    return " · ".join(shown) or "no score changed"


def entry(case_id: str, row: Any, new: Any, old: Any, patterns: dict[str, str]) -> str:
    """One regression: id, score changes, the expected answer and the word diff of the answers."""
    lines = [f"**`{case_id}`** — {changes(row)}\n\n"]
    record = new.get(case_id) if isinstance(new, dict) else None
    if record is None:
        return lines[0] + "(no answer in the work tree's outputs)\n\n"
    expected = mask(shorten(as_text(record.get("expected", ""))), patterns)
    answer = mask(shorten(as_text(record.get("output", ""))), patterns)
    before = old.get(case_id) if isinstance(old, dict) else None
    previous = mask(shorten(as_text(before.get("output", ""))), patterns) if before else None
    hidden = "(not shown: it may hold personal data)"
    lines.append(f"Expected: <code>{html.escape(expected) if expected is not None else hidden}</code>\n\n")
    if answer is None or (before and previous is None):
        lines.append(f"Answer: {hidden}\n\n")
    elif previous is not None:
        lines.append(f"Answer, base → head:\n<pre>{word_diff(previous, answer)}</pre>\n\n")
    else:
        lines.append(f"Answer (head):\n<pre>{html.escape(answer)}</pre>\n\n")
    return "".join(lines)


# --- provenance ---------------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def dvc_md5(pointer: Path) -> str | None:
    """The md5 DVC recorded for a tracked file, from its .dvc pointer."""
    try:
        return yaml.safe_load(pointer.read_text(encoding="utf-8"))["outs"][0]["md5"]
    except (OSError, yaml.YAMLError, KeyError, IndexError, TypeError):
        return None


def provenance(params: dict[str, Any]) -> list[tuple[str, str]]:
    """What the head's results were produced with, for the report's footer: (what, value) rows.

    The language model's file digest, the golden sets' hashes, and the hashes of the response
    cache and the pinned price file (lockstep.budget)."""
    rows = []
    llm = params.get("llm") or {}
    if llm:
        model = str(llm.get("model", ""))
        if llm.get("backend") == "llama_cpp":
            from lockstep.config import StageError
            from lockstep.llm import resolve_model_file

            try:
                path = resolve_model_file(model)
                rows.append(("language model", f"`{model}` sha256 `{sha256_file(path)[:16]}`"))
            except (StageError, OSError) as exc:
                rows.append(("language model", f"`{model}`: no digest ({one_line(exc, 80)})"))
        else:
            rows.append(("language model", f"`{model}` served by an API: no file digest"))
    paths = params.get("paths") or {}
    for name in (params.get("prompts") or {}).get("names") or []:
        golden = Path(paths.get("golden") or "data/golden") / f"{name}.jsonl"
        md5 = dvc_md5(golden.with_name(golden.name + ".dvc"))
        rows.append((f"golden set `{name}`", f"md5 `{md5}`" if md5 else "not tracked by DVC"))
    if llm:
        # The record/replay cache plugs in here once it exists.
        rows.append(("response cache", "none: every answer was computed live"))
        prices = Path(paths.get("prices") or "conf/prices.yaml")
        digest = sha256_file(prices)[:16] if prices.is_file() else None
        rows.append(("prices", f"`{prices}` sha256 `{digest}`" if digest else f"`{prices}`: none"))
    return rows
