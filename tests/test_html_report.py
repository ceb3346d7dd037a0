"""report.to_html and ``cv --html``: one self-contained HTML file."""

import re
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest

from sklearn_leuko.datasets import make_cells
from sklearn_leuko.evaluation import run_protocol
from sklearn_leuko.report import to_html


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.h2, self.images, self.links, self._in_h2 = [], [], [], [], False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "h2":
            self._in_h2 = True
            self.h2.append("")
        if tag == "img":
            self.images.append(attrs)
        for key in ("href", "src"):
            if key in attrs and tag != "img":
                self.links.append(attrs[key])

    def handle_endtag(self, tag):
        if tag == "h2":
            self._in_h2 = False

    def handle_data(self, data):
        if self._in_h2:
            self.h2[-1] += data


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    data = make_cells(n_subjects=16, cells_per_subject=6, image_size=65, random_state=0)
    result = run_protocol(
        data.images,
        data.target,
        data.groups,
        stages=["1", "3C"],
        n_splits=2,
        test_subjects=4,
        net_params={"max_epochs": 1, "widths": (4, 4, 4, 4, 4, 4)},
        progress=False,
    )
    path = to_html(
        result,
        tmp_path_factory.mktemp("html") / "report.html",
        data.images,
        filenames=data.filenames,
    )
    return path, result


def test_html_parses_and_holds_every_part(report):
    path, result = report
    text = path.read_text(encoding="utf-8")
    parser = _Collect()
    parser.feed(text)
    parser.close()
    titles = " | ".join(parser.h2)
    for part in (
        "Run",
        "Table 2",
        "Summary and ROC AUC",
        "Subject-level diagnosis",
        "ROC, calibration and folds",
        "Training curves",
        "Most confidently misclassified cells",
    ):
        assert part in titles, titles
    assert parser.tags.count("table") >= 6
    assert "sklearn-leuko" in text and "torch" in text and "epoch_selection" in text
    # every figure embedded: ROC, calibration, folds, a history per network
    # stage, and 2 + networks panels per gallery cell
    alts = [img["alt"] for img in parser.images]
    assert {"ROC curves", "calibration", "metrics per fold"} <= set(alts)
    assert any(a.startswith("Grad-CAM") for a in alts)
    assert all(img["src"].startswith("data:image/png;base64,") for img in parser.images)


def test_html_has_no_external_reference_and_no_script(report):
    path, _ = report
    text = path.read_text(encoding="utf-8")
    assert "<script" not in text.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|file:)""", text, re.I)
    assert not re.search(r"url\(", text, re.I)
    assert "@import" not in text
    assert path.stat().st_size < 5 * 2**20


@pytest.mark.skipif(shutil.which("chromium") is None, reason="no chromium here")
def test_html_renders_in_headless_chromium(report, tmp_path):
    from PIL import Image

    path, _ = report
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1280,3000",
            f"--screenshot={shot}",
            path.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (3000, 1280)
    # text, tables and figures drawn: far from a blank page
    assert pixels.std() > 20 and (pixels < 128).mean() > 0.01
