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


def _windows_table(windows: list[dict[str, Any]], detail: bool) -> list[str]:
    e = html.escape
    labelled = detail and any("quality" in w for w in windows)  # delayed labels configured
    head = "<th>drift share</th><th>prediction PSI</th>" if detail else ""
    head += "<th>labelled rows</th><th>quality</th>" if labelled else ""
    parts = [f"<table><tr><th>start (UTC)</th><th>rows</th>{head}<th>failing</th></tr>"]
    for w in windows:
        failing = (
            (", ".join(w["failing"]) or "none") if w.get("judged") or w["failing"] else "not judged (too few rows)"
        )
        cells = f"<td>{w.get('drift_share', '')}</td><td>{w.get('prediction_psi', '')}</td>" if detail else ""
        if labelled:
            q = w.get("quality") or {"labelled": "", "note": ""}
            cells += f"<td>{q['labelled']}</td><td>{e(q.get('note', ''))}</td>"
        parts.append(f"<tr><td>{e(w['start'])}</td><td>{w['rows']}</td>{cells}<td>{e(failing)}</td></tr>")
    return [*parts, "</table>"]


def _variant(name: str, v: dict[str, Any], reference: pd.DataFrame, max_unique: int) -> list[str]:
    """One serving variant: its windows, its latest judged window's features and the plots of the drifted ones."""
    from lockstep.monitor.checks import is_categorical

    e = html.escape
    parts = [f"<h2 id='variant-{e(name)}'>Variant {e(name)}: {e(v['summary']['model'])}</h2>",
             *_windows_table(v["windows"], detail=True)]  # fmt: skip
    latest = v["windows"][-1]
    if not latest.get("judged"):
        return [*parts, "<p>The latest window is not judged (too few rows).</p>"]
    parts.append("<h3>Latest window, per feature</h3><table><tr><th>feature</th><th>statistic</th>"
                 "<th>value</th><th>threshold</th><th>drifted</th></tr>")  # fmt: skip
    for feature, f in latest["features"].items():
        cls = " class='drift'" if f["drifted"] else ""
        parts.append(
            f"<tr{cls}><td>{e(feature)}</td><td>{e(f['statistic'])}</td><td>{f['value']:.4g}</td>"
            f"<td>{f['threshold']}</td><td>{'yes' if f['drifted'] else 'no'}</td></tr>"
        )
    parts.append("</table><h3>Drifted features</h3>")
    if not latest["drifted_features"]:
        parts.append("<p>None.</p>")
    current = v["current"]
    for feature in latest["drifted_features"]:
        f = latest["features"][feature]
        title = f"{feature}: {f['statistic']} {f['value']:.4g} (threshold {f['threshold']})"
        png = _plot(reference[feature], current[feature], title, is_categorical(reference[feature], max_unique))
        parts.append(f"<figure><img alt='{e(title)}' src='data:image/png;base64,{png}'>"
                     f"<figcaption>{e(title)}</figcaption></figure>")  # fmt: skip
    title = f"predictions: PSI {latest['prediction_psi']:.4g}"
    ref_predictions, predictions = v["ref_predictions"], v["predictions"]
    png = _plot(ref_predictions, predictions, title, is_categorical(ref_predictions, max_unique))
    parts.append(f"<h3>Predictions</h3><figure><img alt='{e(title)}' src='data:image/png;base64,{png}'>"
                 f"<figcaption>{e(title)}</figcaption></figure>")  # fmt: skip
    return parts


def write_report(
    path: Path, summary: dict[str, Any], windows: list[dict[str, Any]], variants: dict[str, dict[str, Any]],
    reference: pd.DataFrame, max_unique: int,
) -> None:  # fmt: skip
    """The page: the service's windows (a window breaches when any variant's does), then each serving
    variant judged on its own traffic, against its own model's predictions on the reference."""
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Lockstep monitor</title>",
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 8px;text-align:left}"
        ".drift{color:#d62728;font-weight:bold}</style></head><body>",
        "<h1>Monitor: production against the training reference</h1>",
        f"<p>Checked {e(summary['last_check'])}. Retraining requested: <b>{'yes' if summary['retrain'] else 'no'}</b>"
        f" ({summary['breaches']} of the last {summary['windows']} windows breach; rule: at least "
        f"{summary['breaches_n']}, the latest included).</p>",
        *(
            [
                f"<p>Delayed labels: {summary['labels']['read']} in {e(summary['labels']['path'])},"
                f" {summary['labels']['unknown']} for request ids the log does not hold.</p>"
            ]
            if "labels" in summary
            else []
        ),
        "<h2>Windows, all variants</h2>",
        *_windows_table(windows, detail=False),
    ]
    for name, v in variants.items():
        parts.extend(_variant(name, v, reference, max_unique))
    parts.append("</body></html>")
    path.write_text("\n".join(parts), encoding="utf-8")
