"""A real headless browser opens the report with the network cut off and draws its figures."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import tempfile

import numpy as np
import pytest
from analysis_results_folder import CLASSES, search_study, trial, write_study
from PIL import Image

from attnfd.analysis import analyse, load_study, write


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no chromium on PATH: install Debian's chromium (apt-get install -y chromium); .ci/run does")


def test_report_renders_offline_in_headless_chromium(tmp_path):
    browser = _chromium()
    analysis = analyse(load_study(search_study(tmp_path)))
    report = write(analysis, tmp_path / "out")[-1]
    shot = tmp_path / "report.png"
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        done = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}",
             # every request that leaves the file system goes to a closed loopback port
             "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
             "--window-size=1200,2600", f"--screenshot={shot}", report.as_uri()],
            capture_output=True, text=True, timeout=120, check=False,
        )
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(float)
    assert pixels.var() > 100, "the screenshot is blank"
    # the tables are black on white; coloured pixels come only from the drawn plotly traces
    coloured = (pixels.max(axis=2) - pixels.min(axis=2) > 80).mean()
    assert coloured > 0.01, f"only {coloured:.4f} of the pixels are coloured: the figures were not drawn"


# after plotly has drawn: each figure's drawn size, title box, plot area and x tick labels, as JSON in a <pre>
MEASURE = """<script>
window.addEventListener('load', () => setTimeout(() => {
  const box = el => { const r = el.getBoundingClientRect(); return {left: r.left, right: r.right, top: r.top, bottom: r.bottom}; };
  const out = {};
  for (const div of document.querySelectorAll('.js-plotly-plot')) {
    const title = div.querySelector('.gtitle');
    out[div.id] = {figure: box(div.querySelector('svg.main-svg')), plot: box(div.querySelector('.nsewdrag')),
                   title: title && {...box(title), text: title.textContent},
                   xticks: [...div.querySelectorAll('.xtick text')].map(t => t.textContent)};
  }
  const pre = document.createElement('pre');
  pre.id = 'measured';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
}, 300));
</script>"""
ALPHAS = [0.1, 0.3, 1.0, 3.0, 10.0]  # the alpha protocol's default sweep


def long_label_study(storage):
    """An alpha sweep whose best row differs from the others in five fields, so its label runs long."""
    trials = []
    for seed in range(2):
        trials.append(trial(f"long_{len(trials):05d}", [(0.6 + seed / 100, 0.7, [0.9, 0.5, 0.4], 1.0)], seed=seed))
        for alpha in ALPHAS:
            trials.append(trial(f"long_{len(trials):05d}", [(0.62 + seed / 100, 0.7, [0.9, 0.55, 0.45], 1.0)],
                                seed=seed, distill="attnfd", alpha=alpha))
        trials.append(trial(f"long_{len(trials):05d}", [(0.7 + seed / 100, 0.8, [0.95, 0.6, 0.5], 1.0)], seed=seed,
                            distill="attnfd", alpha=1.0, alpha_schedule="cosine", teacher_gate="untrained",
                            norm="tensor", tap_relu="post"))
    return write_study(storage, "long", trials, protocol="alpha", seeds=[0, 1], class_names=CLASSES)


def test_the_figures_read_as_drawn(tmp_path):
    """In the drawn figures: the log alpha axis labels its ticks with their values (plotly's own
    log ticks read "2 ... 5" between powers of ten) and keeps its width beside a legend of long
    row labels; the per-class title, naming two long row labels, stays inside its figure and
    above the plot."""
    browser = _chromium()
    analysis = analyse(load_study(long_label_study(tmp_path)))
    shown = ("alpha_sweep", "per_class_1")
    figures = [analysis.figures[name].to_html(full_html=False, include_plotlyjs=i == 0, div_id=name)
               for i, name in enumerate(shown)]
    page = tmp_path / "figures.html"
    page.write_text("<!DOCTYPE html><html><body>" + "\n".join(figures) + MEASURE + "</body></html>")
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        done = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", f"--user-data-dir={profile}",
             "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>", "--window-size=800,1200",
             "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
            capture_output=True, text=True, timeout=120, check=False,
        )
    found = re.search(r'<pre id="measured">(.*?)</pre>', done.stdout, re.DOTALL)
    assert done.returncode == 0 and found, done.stderr[-2000:]
    drawn = json.loads(html.unescape(found.group(1)))

    sweep = drawn["alpha_sweep"]
    assert sweep["xticks"] == ["0.1", "0.3", "1", "3", "10"]
    # the legend, naming rows that differ in five fields, leaves the plot its width
    width = sweep["figure"]["right"] - sweep["figure"]["left"]
    assert sweep["plot"]["right"] - sweep["plot"]["left"] > 0.6 * width, sweep
    per_class = drawn["per_class_1"]
    title, figure = per_class["title"], per_class["figure"]
    best = analysis.figures["per_class_1"].data[1].name
    assert len(best) > 90 and all(part in title["text"] for part in best.split(" | "))
    assert figure["left"] <= title["left"] and title["right"] <= figure["right"], (title, figure)
    assert title["bottom"] <= per_class["plot"]["top"], (title, per_class["plot"])
