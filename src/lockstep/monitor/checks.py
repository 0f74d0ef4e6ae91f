"""Drift statistics, named as practitioners expect (Evidently's defaults, computed with scipy):
a reference of at most `small_reference` rows -> two-sample Kolmogorov-Smirnov (numeric) and
chi-square goodness of fit (categorical), drift when p < the threshold; a larger one -> Wasserstein
distance normed by the reference's standard deviation (numeric) and Jensen-Shannon distance
(categorical), drift when >= the threshold. Predictions: population stability index (PSI), drift
when >= its threshold and beyond what sampling alone reaches (psi_test)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from lockstep.quality import REFUSAL
from lockstep.settings import DriftThresholds

EPS = 1e-4  # floor for empty bins (PSI, chi-square's expected counts)


def is_categorical(reference: pd.Series, max_unique: int) -> bool:
    return not pd.api.types.is_numeric_dtype(reference) or reference.nunique(dropna=True) <= max_unique


def counts(reference: pd.Series, current: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Each category's count in reference and current, over the categories of both."""
    keys = sorted(set(reference.dropna().astype(str)) | set(current.dropna().astype(str)))
    ref = reference.dropna().astype(str).value_counts().reindex(keys, fill_value=0).to_numpy()
    cur = current.dropna().astype(str).value_counts().reindex(keys, fill_value=0).to_numpy()
    return ref, cur


def shares(reference: pd.Series, current: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Each category's share in reference and current, over the categories of both."""
    ref, cur = counts(reference, current)
    return ref / max(ref.sum(), 1), cur / max(cur.sum(), 1)


def feature_drift(reference: pd.Series, current: pd.Series, t: DriftThresholds) -> dict[str, Any]:
    """One column: the statistic's name, its value, the threshold, drifted or not."""
    from scipy import stats
    from scipy.spatial import distance

    small = len(reference) <= t.small_reference
    categorical = is_categorical(reference, t.categorical_max_unique)
    if categorical:
        ref, cur = shares(reference, current)
        if small:
            n = int(current.notna().sum())
            expected = np.maximum(ref, EPS)
            expected = expected / expected.sum() * n
            p = float(stats.chisquare(cur * n, expected).pvalue)
            js = float(distance.jensenshannon(ref, cur))
            return {"statistic": "chi-square p-value", "value": p, "threshold": t.chi2_p_value,
                    "drifted": p < t.chi2_p_value and js >= t.min_effect_categorical, "effect": js}  # fmt: skip
        js = float(distance.jensenshannon(ref, cur))
        return {"statistic": "Jensen-Shannon distance", "value": js, "threshold": t.jensen_shannon,
                "drifted": js >= t.jensen_shannon, "effect": js}  # fmt: skip
    ref_values = reference.dropna().to_numpy(dtype=float)
    cur_values = pd.to_numeric(current, errors="coerce").dropna().to_numpy(dtype=float)
    scale = float(np.std(ref_values)) or 1.0
    w = float(stats.wasserstein_distance(ref_values, cur_values)) / scale  # the effect, in reference sds
    if small:
        p = float(stats.ks_2samp(ref_values, cur_values).pvalue)
        return {"statistic": "Kolmogorov-Smirnov p-value", "value": p, "threshold": t.ks_p_value,
                "drifted": p < t.ks_p_value and w >= t.min_effect, "effect": w}  # fmt: skip
    return {"statistic": "normed Wasserstein distance", "value": w, "threshold": t.wasserstein,
            "drifted": w >= t.wasserstein, "effect": w}  # fmt: skip


def psi_test(reference: pd.Series, current: pd.Series, max_unique: int, bins: int = 10) -> tuple[float, float]:
    """Population stability index, sum((cur - ref) * ln(cur / ref)) over categories or over the
    reference's deciles for numeric predictions; and the p-value of the same bins' counts in a
    chi-square test of homogeneity (reference against current): how often sampling alone would move
    them this far. A small window reaches a PSI of 0.2 by chance; the p-value says when it did not."""
    from scipy import stats

    if is_categorical(reference, max_unique):
        ref_n, cur_n = counts(reference, current)
    else:
        edges = np.unique(np.quantile(reference.to_numpy(dtype=float), np.linspace(0, 1, bins + 1)))
        edges[0], edges[-1] = -np.inf, np.inf
        ref_n = np.histogram(reference.to_numpy(dtype=float), edges)[0]
        cur_n = np.histogram(current.to_numpy(dtype=float), edges)[0]
    ref = np.maximum(ref_n / max(ref_n.sum(), 1), EPS)
    cur = np.maximum(cur_n / max(cur_n.sum(), 1), EPS)
    value = float(np.sum((cur - ref) * np.log(cur / ref)))
    table = np.array([ref_n, cur_n])
    table = table[:, table.sum(axis=0) > 0]
    p = float(stats.chi2_contingency(table, correction=False).pvalue) if table.shape[1] > 1 and cur_n.sum() else 1.0
    return value, p


def window_drift(
    reference: pd.DataFrame, ref_predictions: pd.Series, current: pd.DataFrame, predictions: pd.Series,
    t: DriftThresholds, weights: dict[str, float] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """One window against the reference: each feature, the share drifted (plain, and weighted by what
    the model uses: `weights`, lockstep.importance), the top features' drift, the predictions' PSI."""
    features = {c: feature_drift(reference[c], current[c], t) for c in reference.columns if c in current.columns}
    drifted = sorted(c for c, f in features.items() if f["drifted"])
    share = len(drifted) / len(features) if features else 0.0
    used = {c: (weights or {}).get(c, 0.0) if weights else 1.0 for c in features}
    total = sum(used.values()) or 1.0
    weighted = sum(used[c] for c in drifted) / total
    top = sorted((c for c in features if used[c] > 0), key=lambda c: -used[c])[: t.top_k] if weights else []
    moved = [c for c in top if c in drifted and features[c]["effect"] >= t.top_effect]
    prediction_psi, psi_p = psi_test(ref_predictions, predictions, t.categorical_max_unique)
    failing = ["dataset_drift"] if share >= t.drift_share else []
    failing += ["weighted_drift"] if weighted >= t.weighted_drift_share else []
    failing += ["important_feature_drift"] if moved else []
    failing += ["prediction_drift"] if prediction_psi >= t.psi and psi_p < t.psi_p_value else []
    return {
        "rows": len(current),
        "drift_share": round(share, 4),
        "weighted_drift_share": round(weighted, 4),
        "drifted_features": drifted,
        "important_drifted": moved,
        "prediction_psi": round(prediction_psi, 4),
        "prediction_psi_p_value": round(psi_p, 6),
        "failing": failing,
        "breach": bool(failing),
        "features": features,
    }


def retrain_due(breaches: list[bool], n: int, m: int) -> bool:
    """At least n of the last m windows breach, and the latest does (oldest first)."""
    last = breaches[-m:]
    return bool(last) and last[-1] and sum(last) >= n


def prompt_quality(
    answers: list[dict[str, Any]], baseline: dict[str, Any], golden_outputs: list[str], t: Any
) -> dict[str, Any]:
    """One prompt's logged answers (records of the inference log) against its golden-set baseline:
    mean answer length in words, refusal, schema-failure and PII rates; the signals that fail."""
    n = len(answers)
    rate = lambda kinds: sum(any(k in (a["quality"] or []) for k in kinds) for a in answers) / n  # noqa: E731
    words = float(np.mean([len(str(a["outputs"] or "").split()) for a in answers]))
    base_words = float(np.mean([len(o.split()) for o in golden_outputs])) if golden_outputs else None
    base_refusal = sum(bool(REFUSAL.search(o)) for o in golden_outputs) / len(golden_outputs) if golden_outputs else 0.0
    result = {
        "answers": n,
        "answer_words": round(words, 2),
        "answer_words_baseline": None if base_words is None else round(base_words, 2),
        "refusal_rate": round(rate(["refusal"]), 4),
        "refusal_rate_baseline": round(base_refusal, 4),
        "schema_failure_rate": round(rate(["empty", "invalid", "schema"]), 4),
        "pii_rate": round(rate(["pii"]), 4),
        "pii_rate_baseline": float(baseline.get("pii_leak_rate", 0.0)),
    }
    failing = []
    if base_words and abs(words / base_words - 1) > t.max_length_change:
        failing.append("answer_length")
    if result["refusal_rate"] - base_refusal > t.max_refusal_increase:
        failing.append("refusal_rate")
    if result["schema_failure_rate"] > t.max_schema_failure_increase:  # the golden set's answers all parse
        failing.append("schema_failure_rate")
    if result["pii_rate"] - result["pii_rate_baseline"] > t.max_pii_increase:
        failing.append("pii_rate")
    return result | {"failing": failing}
