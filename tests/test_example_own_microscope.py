"""The own-microscope recipe (examples/plot_own_microscope.py) on real crops."""

import runpy
import warnings
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BCCD = ROOT.parent / "shared" / "data" / "real" / "bccd"

pytestmark = pytest.mark.skipif(
    not (BCCD / "labels.csv").is_file(),
    reason=f"the real BCCD crops are not at {BCCD} (a fresh clone has none)",
)


def test_the_recipe_brings_smear_crops_into_the_domain():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        names = runpy.run_path(str(ROOT / "examples" / "plot_own_microscope.py"))
    plt.close("all")
    assert names["have_bccd"]
    results = names["results"]
    assert len(names["crops"]) == 135
    # the segmenter finds one white cell in (nearly) every crop
    assert len(results) >= 0.9 * 135
    assert set(np.unique(names["normalised"][:, 0, 0])) <= {0}  # black corners
    # smear crops as they come are out of domain; the recipe brings most in
    assert not results["in domain as they come"].any()
    assert results["in domain after the recipe"].mean() >= 0.7
    assert set(results["predicted"]) <= {"all", "hem"}
