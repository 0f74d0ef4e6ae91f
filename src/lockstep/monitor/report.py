"""The monitor's HTML report: one page, the windows judged, every feature's statistic, and a plot
(PNG, embedded as base64) of each drifted feature naming the statistic that flagged it."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import pandas as pd


def _plot(reference: pd.Series, current: pd.Series, title: str, categorical: bool) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    if categorical:
        ref = reference.astype(str).value_counts(normalize=True)
        cur = current.astype(str).value_counts(normalize=True)
        frame = pd.DataFrame({"reference": ref, "current": cur}).fillna(0)
        frame.plot.bar(ax=ax, color=["#888888", "#d62728"])
    else:
        ax.hist(reference.dropna(), bins=30, density=True, alpha=0.5, label="reference", color="#888888")
        ax.hist(pd.to_numeric(current, errors="coerce").dropna(), bins=30, density=True, alpha=0.5,
                label="current", color="#d62728")  # fmt: skip
        ax.legend()
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def write_report(
    path: Path, summary: dict[str, Any], windows: list[dict[str, Any]], reference: pd.DataFrame,
    ref_predictions: pd.Series, current: pd.DataFrame, predictions: pd.Series, max_unique: int,
) -> None:  # fmt: skip
    from lockstep.monitor.checks import is_categorical

    e = html.escape
    latest = windows[-1] if windows else {}
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Lockstep monitor</title>",
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 8px;text-align:left}"
        ".drift{color:#d62728;font-weight:bold}</style></head><body>",
        "<h1>Monitor: production against the training reference</h1>",
        f"<p>Checked {e(summary['last_check'])}. Retraining requested: <b>{'yes' if summary['retrain'] else 'no'}</b>"
        f" ({summary['breaches']} of the last {summary['windows']} windows breach; rule: at least "
        f"{summary['breaches_n']}, the latest included).</p>",
        "<h2>Windows</h2><table><tr><th>start (UTC)</th><th>rows</th><th>drift share</th>"
        "<th>prediction PSI</th><th>failing</th></tr>",
    ]
    for w in windows:
        failing = ", ".join(w.get("failing", [])) if w.get("judged") else "not judged (too few rows)"
        parts.append(
            f"<tr><td>{e(w['start'])}</td><td>{w['rows']}</td><td>{w.get('drift_share', '')}</td>"
            f"<td>{w.get('prediction_psi', '')}</td><td>{e(failing)}</td></tr>"
        )
    parts.append("</table>")
    if latest.get("judged"):
        parts.append("<h2>Latest window, per feature</h2><table><tr><th>feature</th><th>statistic</th>"
                     "<th>value</th><th>threshold</th><th>drifted</th></tr>")  # fmt: skip
        for name, f in latest["features"].items():
            cls = " class='drift'" if f["drifted"] else ""
            parts.append(
                f"<tr{cls}><td>{e(name)}</td><td>{e(f['statistic'])}</td><td>{f['value']:.4g}</td>"
                f"<td>{f['threshold']}</td><td>{'yes' if f['drifted'] else 'no'}</td></tr>"
            )
        parts.append("</table><h2>Drifted features</h2>")
        if not latest["drifted_features"]:
            parts.append("<p>None.</p>")
        for name in latest["drifted_features"]:
            f = latest["features"][name]
            title = f"{name}: {f['statistic']} {f['value']:.4g} (threshold {f['threshold']})"
            png = _plot(reference[name], current[name], title, is_categorical(reference[name], max_unique))
            parts.append(f"<figure><img alt='{e(title)}' src='data:image/png;base64,{png}'>"
                         f"<figcaption>{e(title)}</figcaption></figure>")  # fmt: skip
        title = f"predictions: PSI {latest['prediction_psi']:.4g}"
        png = _plot(ref_predictions, predictions, title, is_categorical(ref_predictions, max_unique))
        parts.append(f"<h2>Predictions</h2><figure><img alt='{e(title)}' src='data:image/png;base64,{png}'>"
                     f"<figcaption>{e(title)}</figcaption></figure>")  # fmt: skip
    parts.append("</body></html>")
    path.write_text("\n".join(parts), encoding="utf-8")
