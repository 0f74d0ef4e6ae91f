"""A predict request checked against the model's signature before any variant sees it.

A client's mistake (a missing or unknown column, a string where the model takes a number, null,
NaN, no rows, too many rows) is answered 422 (413 for too many rows) naming the offending row and
field, FastAPI's way: `{"detail": [{"loc": ["body", "rows", 3, "mean_radius"], "msg": ..., "type": ...}]}`.
It is never a 500, never shows the model's schema or the input back, and never counts as a
variant's error: the canary judges the service, not its clients.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

NUMBERS = {"double", "float", "long", "integer"}


@dataclass
class Rejected(Exception):
    """The request is the client's mistake: the HTTP status and FastAPI-style details."""

    status: int
    detail: list[dict[str, Any]]

    def __str__(self) -> str:
        return "; ".join(f"{'.'.join(map(str, d['loc']))}: {d['msg']}" for d in self.detail)


def problem(loc: list[Any], msg: str, kind: str) -> dict[str, Any]:
    return {"loc": ["body", "rows", *loc], "msg": msg, "type": kind}


def columns(model: Any) -> dict[str, str] | None:
    """The model's input columns and their types from its MLflow signature (None: no signature)."""
    schema = model.metadata.get_input_schema() if model is not None and model.metadata else None
    if schema is None or not schema.has_input_names():
        return None
    return {spec.name: str(getattr(spec.type, "name", spec.type)) for spec in schema.inputs}


def check_rows(rows: Any, max_rows: int, shown: int = 5) -> None:
    """Raise Rejected unless rows is a list of 1..max_rows objects."""
    if not isinstance(rows, list) or not rows:
        raise Rejected(422, [problem([], "give at least one row: a list of objects, one per row", "too_short")])
    if len(rows) > max_rows:
        msg = f"{len(rows)} rows: at most {max_rows} per request (conf/deploy max_rows); send them in batches"
        raise Rejected(413, [problem([], msg, "too_long")])
    found = [problem([i], "a row is an object of column: value", "dict_type") for i, r in enumerate(rows)
             if not isinstance(r, dict)]  # fmt: skip
    if found:
        raise Rejected(422, found[:shown])


def check_frame(frame: Any, expected: dict[str, str] | None, shown: int = 5) -> None:
    """Raise Rejected unless the rows, as the model receives them (after the project's prepare_rows),
    have the model's columns, each value of its type: missing, unknown, null, NaN, text for a number."""
    if expected is None:
        return
    import numpy as np
    import pandas as pd

    found = [problem([name], "missing: the model needs this column", "missing") for name in expected
             if name not in frame.columns]  # fmt: skip
    found += [problem([name], "unknown column: the model has no such input", "extra_forbidden")
              for name in frame.columns if name not in expected]  # fmt: skip
    for name, kind in expected.items():
        if name not in frame.columns or len(found) >= shown:
            continue
        column = frame[name]
        if kind in NUMBERS and pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            bad = ~np.isfinite(column.to_numpy(dtype=float))  # NaN (a null too) or infinite
            found += [problem([int(i), name], "must be a finite number, not null or NaN", "finite_number")
                      for i in np.flatnonzero(bad)[:shown]]  # fmt: skip
        elif kind in NUMBERS or kind in ("string", "boolean"):
            found += value_problems(column, name, kind, shown)
    if found:
        raise Rejected(422, found[:shown])


def value_problems(column: Any, name: str, kind: str, shown: int) -> list[dict[str, Any]]:
    """The rows of a column whose values are not of the model's type (the column's dtype is mixed)."""
    found = []
    for i, value in enumerate(column.tolist()):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            found.append(problem([i, name], "null: give a value", "missing"))
        elif kind in NUMBERS and (isinstance(value, bool) or not isinstance(value, int | float)):
            found.append(problem([i, name], f"must be a number, got {type(value).__name__}", "float_type"))
        elif kind in NUMBERS and not math.isfinite(value):
            found.append(problem([i, name], "must be a finite number", "finite_number"))
        elif kind == "string" and not isinstance(value, str):
            found.append(problem([i, name], f"must be a string, got {type(value).__name__}", "string_type"))
        elif kind == "boolean" and not isinstance(value, bool):
            found.append(problem([i, name], f"must be true or false, got {type(value).__name__}", "bool_type"))
        if len(found) >= shown:
            break
    return found
