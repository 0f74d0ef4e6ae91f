"""Files the toolkit ships beside its code.

PLOTS_PAGE is DVC's plots page with Vega, Vega-Lite and Vega-Embed inline (written by
`python3 dev.py vendor-vega`; their licences in vega-LICENSES.txt): `dvc plots show` and
`dvc plots diff` given it as `--html-template` (or `dvc config plots.html_template`) draw
their charts with no network, where DVC's own page loads Vega from a CDN.
"""

from pathlib import Path

PLOTS_PAGE = Path(__file__).with_name("plots.html")
