"""The class names behind a binary model's predictions.

A binary model is trained on 0/1 labels (1: conf/data `positive_class`), so it predicts 0 and 1.
Its users and its data speak in class names ("malignant", "benign"): register tags the version
with `classes`, the JSON list of the names of 0 and 1, and the service, staging and the monitor
answer and compare in those names. A version without the tag (registered before it existed, or
a multiclass or regression model, which predict names or numbers already) is left as it predicts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TAG = "classes"


def tag(task: str, target: str, positive_class: str | None, test: Path) -> dict[str, str]:
    """The `classes` tag of a binary model, from the test split's target values; {} for other tasks."""
    if task != "binary" or positive_class is None or not Path(test).is_file():
        return {}
    import pandas as pd

    values = sorted(set(pd.read_parquet(test, columns=[target])[target].astype(str)) - {positive_class})
    negative = values[0] if len(values) == 1 else f"not_{positive_class}"
    return {TAG: json.dumps([negative, positive_class])}


def names(tags: dict[str, str]) -> list[str] | None:
    """The names of 0 and 1 from a version's tags, or None."""
    try:
        found = json.loads(tags[TAG])
    except (KeyError, ValueError):
        return None
    return found if isinstance(found, list) and len(found) == 2 and all(isinstance(n, str) for n in found) else None


def named(values: list[Any], classes: list[str] | None) -> list[Any]:
    """Predictions as class names where the version has them (0 and 1, or True and False)."""
    if not classes:
        return values
    return [classes[int(v)] if isinstance(v, int | float) and v in (0, 1) else v for v in values]


def of_version(model_name: str, version: int) -> list[str] | None:
    """The class names of a registered version (the registry at the project's tracking URI)."""
    from lockstep.tracking import mlflow_client

    with mlflow_client() as client:
        return names(dict(client.get_model_version(model_name, str(version)).tags))
