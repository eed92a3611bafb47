"""A real headless browser opens the report with the network cut off and draws its figures."""

from __future__ import annotations

import shutil
import subprocess
import tempfile

import numpy as np
import pytest
from analysis_results_folder import search_study
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
