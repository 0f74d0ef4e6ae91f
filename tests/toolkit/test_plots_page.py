"""The plots page the toolkit ships draws DVC's charts with no network: Vega inline, nothing from a CDN."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from dvc_render.html import render_html
from dvc_render.vega import VegaRenderer

from lockstep.assets import PLOTS_PAGE

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def page(tmp_path: Path) -> Path:
    """The page `dvc plots show` writes for one ROC-like curve, with the toolkit's template, as DVC renders it."""
    points = [{"fpr": x / 10, "tpr": min(1.0, x / 5), "rev": "workspace"} for x in range(11)]
    renderer = VegaRenderer(points, "reports/plots/roc.csv", template="simple", x="fpr", y="tpr")
    return Path(render_html([renderer], tmp_path / "plots" / "index.html", html_template=PLOTS_PAGE))


def test_the_page_loads_no_script_from_the_network(tmp_path: Path) -> None:
    text = page(tmp_path).read_text(encoding="utf-8")
    assert "vegaEmbed('#reports_plots_roc_csv'" in text  # DVC's plot went in
    assert not re.search(r"<script[^>]+src=", text), "a script is loaded from elsewhere"
    assert "cdn.jsdelivr" not in text
    assert "{plot_divs}" not in text and "{scripts}" not in text  # every placeholder filled or absent
    licences = PLOTS_PAGE.with_name("vega-LICENSES.txt").read_text(encoding="utf-8")
    assert all(name in licences for name in ("vega ", "vega-lite ", "vega-embed "))


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (python3 dev.py setup-test-deps installs it)")
def test_chromium_draws_the_chart_offline(tmp_path: Path) -> None:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000",
           "--dump-dom", page(tmp_path).as_uri()]  # fmt: skip
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    assert re.search(r'<canvas[^>]*class="marks"', dom), "Vega drew no chart"
