"""`lockstep monitor calibrate`: how often the drift rules fire when nothing changed, and the
thresholds that would fire at a target rate.

Unshifted traffic is the test split (rows the model never trained on, from the same data as the
reference), resampled (a smoothed bootstrap, see fresh()) into `--windows` windows of the size the
monitor judges (`min_rows`, or the whole split if larger), each judged against the reference
exactly as `lockstep monitor` judges a window, with the locked stable model's predictions and
feature importance. It reports each signal's false-alarm rate per window, the retraining requests
the breaches_n-of-windows_m rule would have made, and for each threshold the value that unshifted
windows stay below 1 - target of the time (the proposal). It changes nothing: copy what you agree
with into conf/monitor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lockstep.config import Params, StageError
from lockstep.settings import MonitorConfig

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class Calibration:
    windows: int
    rows: int
    alarms: dict[str, int] = field(default_factory=dict)  # signal -> windows it fired in
    requests: int = 0  # retraining requests the n-of-m rule would have made
    proposals: dict[str, tuple[float, float]] = field(default_factory=dict)  # threshold -> (now, proposed)


def quantile_up(values: list[float], q: float) -> float:
    """The q-quantile, rounded up to 2 significant digits (a threshold a person can write down)."""
    import numpy as np

    value = float(np.quantile(values, q)) if values else 0.0
    if value <= 0:
        return 0.0
    digits = 1 - math.floor(math.log10(value))
    return math.ceil(value * 10**digits) / 10**digits


def fresh(rows: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """n rows like these, as new traffic would bring them: a smoothed bootstrap.

    Rows are drawn with replacement, then each continuous column (more than 20 distinct values)
    gets Gaussian noise of Silverman's bandwidth, shrunk so its mean and variance stay the data's.
    Plain resampling repeats values that fresh traffic would not, which makes K-S alarm more often
    than it would in production."""
    import numpy as np
    from pandas.api.types import is_float_dtype

    rng = np.random.default_rng(seed)
    sample = rows.iloc[rng.integers(0, len(rows), n)].reset_index(drop=True)
    for column in sample.columns:
        values = rows[column]
        if not is_float_dtype(values) or values.nunique() <= 20:
            continue
        sd = float(values.std())
        h = 1.06 * sd * len(values) ** -0.2  # Silverman's rule of thumb
        mean = float(values.mean())
        smoothed = sample[column].to_numpy(dtype=float) - mean + rng.normal(0.0, h, n)
        sample[column] = mean + smoothed / math.sqrt(1 + (h / sd) ** 2)
    return sample


def calibrate(params: Params, windows: int = 200, target: float = 0.01, lock_file: Path | None = None) -> Calibration:
    import pandas as pd

    from lockstep.deploy_lock import read_lock
    from lockstep.importance import of_version
    from lockstep.monitor.checks import retrain_due, window_drift
    from lockstep.monitor.judge import reference_predictions

    if not 0 < target < 1:
        raise StageError(f"monitor calibrate: --target {target}: a false-alarm rate between 0 and 1, e.g. 0.01")
    cfg = params.monitor or MonitorConfig()
    test_file = cfg.reference.with_name("test.parquet")
    for path in (cfg.reference, test_file):
        if not path.exists():
            raise StageError(f"monitor calibrate: no {path}: run the pipeline first (make repro)")
    target_column = cfg.target or (params.data.target if params.data else None)
    drop = [target_column] if target_column else []
    reference = pd.read_parquet(cfg.reference).drop(columns=drop, errors="ignore")
    test = pd.read_parquet(test_file).drop(columns=drop, errors="ignore")
    model = read_lock(lock_file or params.deploy.lock_file).stable.model
    weights = of_version(model.name, model.version)
    ref_predictions = reference_predictions(params, model, reference)
    rows = max(cfg.min_rows, len(test))
    result = Calibration(windows, rows)
    seen: dict[str, list[float]] = {"weighted_drift_share": [], "top_effect": [], "psi": [], "drift_share": []}
    breaches = []
    t = cfg.drift
    for w in range(windows):
        sample = fresh(test, rows, seed=w)
        predictions = reference_predictions(params, model, sample)
        judged = window_drift(reference, ref_predictions, sample, predictions, t, weights)
        for signal in judged["failing"]:
            result.alarms[signal] = result.alarms.get(signal, 0) + 1
        breaches.append(judged["breach"])
        result.requests += retrain_due(breaches, cfg.breaches_n, cfg.windows_m)
        seen["weighted_drift_share"].append(judged["weighted_drift_share"])
        seen["drift_share"].append(judged["drift_share"])
        seen["psi"].append(judged["prediction_psi"])
        top = sorted(weights or {}, key=lambda c: -(weights or {})[c])[: t.top_k]
        seen["top_effect"].append(max((judged["features"][c]["effect"] for c in top if c in judged["features"]),
                                      default=0.0))  # fmt: skip
    for name, values in seen.items():
        result.proposals[name] = (float(getattr(t, name)), quantile_up(values, 1 - target))
    return result
