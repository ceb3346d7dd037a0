"""Tests for sklearn_leuko.report plots: each writes a non-empty image file."""

import matplotlib.image as mpimg
import matplotlib.pyplot as plt  # conftest.py selects the Agg backend
import numpy as np
import pytest

from sklearn_leuko.report import (
    plot_calibration,
    plot_cell_spaces,
    plot_confusion_matrix,
    plot_fold_metrics,
    plot_gradcam_overlay,
    plot_history,
    plot_roc_curves,
    table2,
)


def _check_png(path, expected):
    assert path == expected
    assert path.stat().st_size > 1000
    pixels = mpimg.imread(path)
    assert pixels.ndim == 3 and min(pixels.shape[:2]) > 100
    # Not a blank canvas.
    assert pixels[..., :3].std() > 0.01


@pytest.fixture(autouse=True)
def no_leaked_figures():
    before = set(plt.get_fignums())
    yield
    assert set(plt.get_fignums()) == before


def test_plot_confusion_matrix(tmp_path, rng):
    y = rng.choice(["all", "hem"], 50)
    pred = np.where(rng.random(50) < 0.8, y, "all")
    out = tmp_path / "new" / "cm.png"
    _check_png(plot_confusion_matrix(y, pred, out), out)


def test_plot_confusion_matrix_int_labels_and_errors(tmp_path):
    out = tmp_path / "cm.png"
    path = plot_confusion_matrix([1, 0, 1], [1, 1, 1], str(out), title="t")
    _check_png(path, out)
    with pytest.raises(ValueError, match="y_pred has 2"):
        plot_confusion_matrix([1, 0, 1], [1, 1], out)
    with pytest.raises(ValueError, match="labels must hold"):
        plot_confusion_matrix([1, 0], [1, 1], out, labels=("all", "all"))


def _cv(rng, k):
    return {
        f"test_{m}": rng.uniform(0.8, 0.95, k)
        for m in ("accuracy", "f1_normal", "f1_cancer")
    }


def test_plot_fold_metrics(tmp_path, rng):
    results = {"Stage-1 w/o aug": _cv(rng, 4), "Stage-3C w/ aug": _cv(rng, 4)}
    test = {
        name: {"accuracy": 0.9, "f1_normal": 0.88, "f1_cancer": 0.91}
        for name in results
    }
    out = tmp_path / "folds.png"
    _check_png(plot_fold_metrics(table2(results, test=test), out), out)


def test_plot_fold_metrics_rejects_flat_table(tmp_path, rng):
    flat = table2({"A": _cv(rng, 2)})
    flat.columns = [" ".join(c) for c in flat.columns]
    with pytest.raises(TypeError, match="load_table2"):
        plot_fold_metrics(flat, tmp_path / "x.png")


def test_plot_history_full(tmp_path):
    history = [
        {
            "epoch": i + 1,
            "train_loss": 1 / (i + 1),
            "valid_loss": 1.2 / (i + 1),
            "valid_acc": 0.5 + 0.04 * i,
            "dur": 0.1,
            "valid_acc_best": True,
        }
        for i in range(8)
    ]
    out = tmp_path / "h.png"
    _check_png(plot_history(history, out), out)


def test_plot_history_tolerates_missing_keys(tmp_path):
    # No epoch, no validation at all, a gap in train_loss.
    history = [{"train_loss": 0.9}, {}, {"train_loss": 0.5, "valid_acc": None}]
    out = tmp_path / "h.png"
    _check_png(plot_history(history, out), out)


def test_plot_history_skorch_history(tmp_path):
    skorch_history = pytest.importorskip("skorch.history")
    history = skorch_history.History()
    for epoch in range(1, 4):
        history.new_epoch()
        history.record("epoch", epoch)
        history.record("train_loss", 1.0 / epoch)
        history.record("valid_acc", 0.5 + 0.1 * epoch)
    out = tmp_path / "h.png"
    _check_png(plot_history(history, out), out)


def test_plot_history_errors(tmp_path):
    with pytest.raises(ValueError, match="history is empty"):
        plot_history([], tmp_path / "h.png")
    with pytest.raises(TypeError, match="single dict"):
        plot_history({"train_loss": 1.0}, tmp_path / "h.png")
    with pytest.raises(TypeError, match=r"history\[1\]"):
        plot_history([{"train_loss": 1.0}, 3.0], tmp_path / "h.png")


def _synthetic_cell(size=32):
    # Black background, purple nucleus inside a paler cytoplasm disc.
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    r = np.hypot(yy, xx)
    cell = np.zeros((size, size, 3), np.uint8)
    cell[r < 0.42 * size] = (205, 165, 215)
    cell[r < 0.25 * size] = (110, 40, 140)
    return cell


def test_plot_cell_spaces(tmp_path):
    pytest.importorskip("sklearn_leuko.preprocessing", exc_type=ImportError)
    out = tmp_path / "cell.png"
    _check_png(plot_cell_spaces(_synthetic_cell(), out, zoom=8), out)


def test_plot_cell_spaces_rejects_batches(tmp_path):
    pytest.importorskip("sklearn_leuko.preprocessing", exc_type=ImportError)
    batch = np.stack([_synthetic_cell()] * 2)
    with pytest.raises(ValueError, match="pass one cell"):
        plot_cell_spaces(batch, tmp_path / "x.png")


def _stage_scores(rng, n=200):
    y = rng.choice(["all", "hem"], n)
    signal = (y == "all").astype(float)
    good = 1 / (1 + np.exp(-4 * (signal - 0.5 + rng.normal(0, 0.4, n))))
    weak = 1 / (1 + np.exp(-2 * (signal - 0.5 + rng.normal(0, 1.0, n))))
    return {"Stage-1": (y, good), "Stage-2": (y, weak)}


def test_plot_roc_curves(tmp_path, rng):
    out = tmp_path / "roc" / "roc.png"
    _check_png(plot_roc_curves(_stage_scores(rng), out), out)


def test_plot_calibration(tmp_path, rng):
    out = tmp_path / "cal.png"
    _check_png(plot_calibration(_stage_scores(rng), out, n_bins=8), out)


def test_plot_calibration_integer_labels_and_probability_one(tmp_path):
    # p = 1 falls in the last bin, not past it.
    out = tmp_path / "cal.png"
    curves = {"A": ([1, 0, 1, 0], [1.0, 0.0, 0.7, 0.2])}
    _check_png(plot_calibration(curves, out, n_bins=4), out)


@pytest.mark.parametrize("plot", [plot_roc_curves, plot_calibration])
@pytest.mark.parametrize(
    ("curves", "error", "match"),
    [
        ({}, ValueError, "curves is empty"),
        ([("all", 0.5)], TypeError, "must be a dict"),
        ({"A": (["all", "hem"],)}, TypeError, "pair"),
        ({"A": (["all", "hem"], [0.1])}, ValueError, "as many"),
        ({"A": (["all", "hem"], [0.1, 3.0])}, ValueError, r"in \[0, 1\]"),
        ({"A": (["all", "all"], [0.1, 0.3])}, ValueError, "one class only"),
    ],
)
def test_curve_plots_validate_input(tmp_path, plot, curves, error, match):
    with pytest.raises(error, match=match):
        plot(curves, tmp_path / "x.png")


def test_plot_calibration_rejects_one_bin(tmp_path, rng):
    with pytest.raises(ValueError, match="n_bins"):
        plot_calibration(_stage_scores(rng), tmp_path / "x.png", n_bins=1)


def _heat(size=32, n=5):
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    heat = np.exp(-(yy**2 + xx**2) / (2 * (0.15 * size) ** 2))
    return np.repeat(heat[None], n, axis=0)


def test_plot_gradcam_overlay(tmp_path):
    images = np.stack([_synthetic_cell()] * 5)
    titles = [f"H{i} hem P(all)=0.{i}" for i in range(5)]
    out = tmp_path / "cam.png"
    _check_png(plot_gradcam_overlay(images, _heat(), out, titles=titles, ncols=3), out)


def test_plot_gradcam_overlay_accepts_a_torch_tensor(tmp_path):
    torch = pytest.importorskip("torch")
    images = np.stack([_synthetic_cell()] * 2)
    out = tmp_path / "cam.png"
    heat = torch.from_numpy(_heat(n=2)).float()
    _check_png(plot_gradcam_overlay(images, heat, out), out)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"heatmaps": _heat(n=4)}, "heatmaps must have shape"),
        ({"heatmaps": 2 * _heat()}, r"values in \[0, 1\]"),
        ({"titles": ["a"]}, "one title per image"),
        ({"alpha": 1.5}, "alpha"),
        ({"ncols": 0}, "ncols"),
    ],
)
def test_plot_gradcam_overlay_validates_input(tmp_path, kwargs, match):
    args = {"heatmaps": _heat(), **kwargs}
    heatmaps = args.pop("heatmaps")
    images = np.stack([_synthetic_cell()] * 5)
    with pytest.raises(ValueError, match=match):
        plot_gradcam_overlay(images, heatmaps, tmp_path / "x.png", **args)
