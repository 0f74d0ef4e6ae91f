"""Per-case results behind a metric, at the base and in the work tree, paired by id.

The gate judges a metric with paired statistics when it can find the cases the metric was
computed from, on both sides:

- a prompt's metrics `<prompt_reports>/<name>/metrics.json` come from the `cases.csv` beside it:
  one row per golden case, with its `id` and its scores (committed in Git);
- the model's metrics `<metrics>` (accuracy, F1, RMSE, ...) come from the evaluate stage's
  per-row plot in `<plots>`: `confusion.csv` (classification) or `residuals.csv` (regression), one
  row per test row with its `id` (committed in Git).

The work tree's files are read from disk, the base's with `git show <base>:<file>`. A metric
without such a file on one side (an older base, a metric no case file holds) has no cases, and
the gate judges it on the single values of `dvc metrics diff`, as before.
"""

from __future__ import annotations

import io
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import numpy as np
import pandas as pd

from lockstep import stats

Kind = Literal["binary", "scores", "safety", "latency", "statistic"]
Side = Literal["base", "head"]
Reader = Callable[[str, Side], "pd.DataFrame | str | None"]  # a table, why it is unreadable, or None: absent


@dataclass(frozen=True)
class Spec:
    """How one metric is computed from per-case rows, and so which test judges it."""

    kind: Kind
    column: str = ""  # prompts: the column of cases.csv
    only: str | None = None  # prompts: count only the rows where this column is 1
    statistic: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None  # model: higher is better
    loss: Literal["wrong", "squared", "absolute"] = "wrong"  # model: the per-row loss the sign test compares


PROMPT_METRICS = {  # the keys of a prompt's metrics.json that cases.csv holds case by case
    "exact_match": Spec("binary", "exact_match"),
    "rouge_l": Spec("scores", "rouge_l"),
    "length_ratio": Spec("scores", "length_ratio"),
    "pii_leak_rate": Spec("safety", "pii"),
    "banned_rate": Spec("safety", "banned"),
    "injection_failure_rate": Spec("safety", "injection_failed", only="injection"),
    "latency_p50_s": Spec("latency", "latency_s"),
    "latency_p95_s": Spec("latency", "latency_s"),
}
MODEL_METRICS = {  # by task: the keys of the model's metrics.json that its per-row plot holds
    "binary": {
        "accuracy": Spec("binary"),
        "f1": Spec("statistic", statistic=stats.f1_binary),
    },
    "multiclass": {
        "accuracy": Spec("binary"),
        "f1_macro": Spec("statistic", statistic=stats.f1_macro),
    },
    "regression": {
        "rmse": Spec("statistic", statistic=stats.neg_rmse, loss="squared"),
        "mae": Spec("statistic", statistic=stats.neg_mae, loss="absolute"),
        "r2": Spec("statistic", statistic=stats.r2, loss="squared"),
    },
}


@dataclass(frozen=True)
class Paired:
    """The per-case values of one metric on both sides, for the ids both have, in one order."""

    spec: Spec
    ids: np.ndarray
    base: np.ndarray  # binary: good (1) or not; scores, latency: the value; safety: bad (1) or not
    head: np.ndarray  # statistic: the predictions of each side
    actual: np.ndarray | None = None  # statistic: the true value of each row
    new_ids: int = 0  # cases only the head has (added to the golden set)
    gone_ids: int = 0  # cases only the base has


class Cases:
    """The per-case tables of a project's metrics, read once per file and side."""

    def __init__(self, read: Reader, paths: dict[str, Any], task: str | None, positive_class: str | None) -> None:
        self._read = read
        self._tables: dict[tuple[str, Side], pd.DataFrame | str | None] = {}
        self.metrics_file = project_path(paths.get("metrics"))
        self.plots_dir = project_path(paths.get("plots"))
        self.prompt_reports = project_path(paths.get("prompt_reports"))
        self.task = task or "binary"
        self.positive_class = positive_class

    def source(self, metric: str) -> tuple[str, Spec] | None:
        """The per-case file behind a metric "<metrics file>:<key>", and how the metric is computed."""
        file, _, key = metric.partition(":")
        path = PurePosixPath(file)
        if self.prompt_reports and path.name == "metrics.json" and str(path.parent.parent) == self.prompt_reports:
            spec = PROMPT_METRICS.get(key)
            return (str(path.parent / "cases.csv"), spec) if spec else None
        if file == self.metrics_file and self.plots_dir:
            spec = MODEL_METRICS.get(self.task, {}).get(key)
            name = "residuals.csv" if self.task == "regression" else "confusion.csv"
            return (f"{self.plots_dir}/{name}", spec) if spec else None
        return None

    def table(self, path: str, side: Side) -> pd.DataFrame | str | None:
        if (path, side) not in self._tables:
            self._tables[path, side] = self._read(path, side)
        return self._tables[path, side]

    def values(self, metric: str, side: Side) -> tuple[Spec, pd.DataFrame] | str | None:
        """One side's per-case values of a metric, indexed by id, in a column `value` (and `actual`
        for a whole-split statistic); why they cannot be used; None when no case file holds the metric."""
        found = self.source(metric)
        if found is None:
            return None
        path, spec = found
        table = self.table(path, side)
        where = "in the work tree" if side == "head" else "at the base"
        if table is None:
            return f"no {path} {where}"
        if isinstance(table, str):
            return table
        need = ["id", spec.column] if spec.column else ["id", "actual", "predicted"]
        need += [spec.only] if spec.only else []
        missing = [c for c in need if c not in table.columns]
        if missing:
            return f"{path} {where} has no column {', '.join(missing)}"
        if not table["id"].is_unique:
            return f"{path} {where}: ids are not unique"
        rows = table[table[spec.only] == 1] if spec.only else table
        frame = pd.DataFrame(index=rows["id"].astype(str).to_numpy())
        if spec.column:
            frame["value"] = rows[spec.column].to_numpy(dtype=float)
        elif spec.kind == "binary":  # accuracy: the row was predicted right
            frame["value"] = (rows["actual"].astype(str) == rows["predicted"].astype(str)).to_numpy(dtype=float)
        elif self.task == "regression":
            frame["actual"], frame["value"] = rows["actual"].to_numpy(float), rows["predicted"].to_numpy(float)
        elif self.task == "binary":
            positive = str(self.positive_class)
            frame["actual"] = (rows["actual"].astype(str) == positive).to_numpy()
            frame["value"] = (rows["predicted"].astype(str) == positive).to_numpy()
        else:  # multiclass: the class names
            frame["actual"] = rows["actual"].astype(str).to_numpy()
            frame["value"] = rows["predicted"].astype(str).to_numpy()
        if frame.empty:
            return f"{path} {where} has no cases for this metric"
        return spec, frame

    def head(self, metric: str) -> tuple[Spec, pd.DataFrame] | str | None:
        return self.values(metric, "head")

    def paired(self, metric: str) -> Paired | str | None:
        """Both sides' values for the ids both have; why not; None when no case file holds the metric."""
        head, base = self.values(metric, "head"), self.values(metric, "base")
        for side in (head, base):
            if not isinstance(side, tuple):
                return side
        (spec, new), (_, old) = head, base
        both = new.merge(old, left_index=True, right_index=True, suffixes=("_head", "_base"))
        if len(both) < 2:
            return f"{len(both)} case(s) pair up with the base by id"
        if spec.kind == "statistic" and not np.array_equal(both["actual_head"], both["actual_base"]):
            return "the test rows' true values differ between base and head"
        actual = both["actual_head"].to_numpy() if spec.kind == "statistic" else None
        return Paired(
            spec,
            both.index.to_numpy(),
            both["value_base"].to_numpy(),
            both["value_head"].to_numpy(),
            actual,
            new_ids=len(new) - len(both),
            gone_ids=len(old) - len(both),
        )


def project_path(path: Any) -> str | None:
    """A configured path as the metric names spell it: relative to the project, with slashes."""
    if not path:
        return None
    path = Path(path)
    if path.is_absolute() and path.is_relative_to(Path.cwd()):
        path = path.relative_to(Path.cwd())
    return path.as_posix()


def parse_csv(text: str, where: str) -> pd.DataFrame | str:
    try:
        return pd.read_csv(io.StringIO(text))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        return f"{where}: not a readable CSV ({type(exc).__name__})"


def git_reader(base_rev: str, head_files: dict[str, str] | None = None) -> Reader:
    """Read a per-case file from the work tree (head) or as committed at base_rev (base); the head's
    from head_files instead where it has the path (what the base's evaluation of the head wrote)."""

    def read(path: str, side: Side) -> pd.DataFrame | str | None:
        if side == "head" and head_files is not None and path in head_files:
            return parse_csv(head_files[path], f"{path} of the base's evaluation")
        if side == "head":
            file = Path(path)
            return parse_csv(file.read_text(encoding="utf-8"), path) if file.is_file() else None
        shown = subprocess.run(["git", "show", f"{base_rev}:./{path}"], capture_output=True, text=True)
        return parse_csv(shown.stdout, f"{path} at the base") if shown.returncode == 0 else None

    return read


def from_params(params: dict[str, Any], read: Reader) -> Cases:
    data = params.get("data") or {}
    return Cases(read, params.get("paths") or {}, data.get("task"), data.get("positive_class"))
