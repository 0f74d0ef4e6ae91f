"""The monitor's HTML report as a person sees it: rendered by headless Chromium, the page names the
drifted feature with its statistic, and the plot of it is drawn (red pixels of the current
window's histogram), unlike a page of the same windows without drift."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from lockstep.monitor.checks import window_drift
from lockstep.monitor.report import write_report
from lockstep.settings import DriftThresholds

from .test_monitor import draw

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install chromium)")


def report(path: Path, shift: float) -> None:
    """The report of one judged window of 1000 rows against a 5000-row reference, f1 shifted by `shift` sd."""
    reference, current = draw(5000, 0), draw(1000, 1, shift)
    features, ref_pred, pred = reference.drop(columns="y"), (reference["f1"] > 0).astype(int), current["y"]
    window = {"start": "2026-11-26T00:00:00+00:00", "judged": True}
    window |= window_drift(features, ref_pred, current.drop(columns="y"), pred, DriftThresholds())
    summary = {"last_check": "2026-11-26T05:23:00+00:00", "retrain": False, "breaches": int(window["breach"]),
               "windows": 1, "breaches_n": 2}  # fmt: skip
    variant = {"summary": {"model": "model/3"}, "windows": [window], "ref_predictions": ref_pred,
               "current": current.drop(columns="y"), "predictions": pred}  # fmt: skip
    write_report(path, summary, [window], {"stable": variant}, features, 5)


def chromium(page: Path, *args: str) -> subprocess.CompletedProcess:
    profile = page.parent / f"chromium-{page.stem}"
    cmd = [CHROMIUM, "--headless", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={profile}", *args]
    if os.geteuid() == 0:
        cmd.insert(1, "--no-sandbox")  # Chromium's sandbox refuses to run as root
    result = subprocess.run([*cmd, page.as_uri()], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def red_pixels(png: Path) -> int:
    """Pixels of the plots' current-window red (#d62728, drawn at half opacity), as Chromium rendered them."""
    import matplotlib.image

    image = matplotlib.image.imread(png)[..., :3] * 255
    r, g, b = image[..., 0], image[..., 1], image[..., 2]
    assert image.std() > 10, f"{png} is blank"
    return int(np.sum((r > 180) & (r - g > 50) & (r - b > 50)))


def test_the_report_renders_the_drifted_feature_in_chromium(tmp_path: Path) -> None:
    drifted, calm = tmp_path / "drifted.html", tmp_path / "calm.html"
    report(drifted, 2.0)
    report(calm, 0.0)
    dom = chromium(drifted, "--dump-dom").stdout
    assert "<h3>Drifted features</h3>" in dom
    assert "<figcaption>f1: normed Wasserstein distance" in dom and '<tr class="drift"><td>f1</td>' in dom
    assert dom.count('src="data:image/png;base64,') == 2  # f1's plot and the predictions'
    assert "f2: normed" not in dom
    calm_dom = chromium(calm, "--dump-dom").stdout
    assert "f1: normed" not in calm_dom and calm_dom.count('src="data:image/png;base64,') == 1
    shots = {}
    for page in (drifted, calm):
        shot = page.with_suffix(".png")
        chromium(page, f"--screenshot={shot}", "--window-size=1000,2400")
        shots[page.stem] = red_pixels(shot)
    # the calm page draws only the predictions' plot; the drifted one adds f1's histogram
    assert shots["drifted"] > shots["calm"] + 15000, shots
