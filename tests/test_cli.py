"""The sklearn-leuko command line, run as ``python -m sklearn_leuko`` on tiny data."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sklearn_leuko import _cli
from sklearn_leuko._cli import build_parser, main

TINY_DATA = ["--n-subjects", "8", "--cells-per-subject", "4", "--image-size", "24"]
TINY_NETS = ["--epochs", "1", "--widths", "4,4,4,4,4,4", "--seed", "0"]


def run_cli(*args, cwd=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    return subprocess.run(
        [sys.executable, "-m", "sklearn_leuko", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


def assert_one_line_error(stderr, code, returncode):
    assert returncode == code
    # Informational notes (e.g. files that are not images) may come first.
    lines = [
        line
        for line in stderr.splitlines()
        if line.strip() and not line.startswith("Note: ")
    ]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("sklearn-leuko: error: ")
    assert "Traceback" not in stderr


def test_cv_prints_table_and_writes_files(tmp_path):
    out = tmp_path / "report"
    proc = run_cli(
        "cv",
        *TINY_DATA,
        "--image-size",
        "65",  # the smallest with a 2x2 last feature map: no warning
        # Every training fold holds 2+ subjects of each class, so each network's
        # inner validation split holds both classes (no InnerSplitWarning).
        "--n-subjects",
        "16",
        *TINY_NETS,
        "--folds",
        "2",
        "--test-subjects",
        "2",
        "--stages",
        "1",
        "3c",
        "--output",
        str(out),
        "--html",
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    assert "Table 2" in proc.stdout
    header = next(line for line in proc.stdout.splitlines() if "Val0" in line)
    for split in ("Val0", "Val1", "Mean", "Test"):
        assert split in header
    rows = [line for line in proc.stdout.splitlines() if line.startswith("Stage-")]
    assert {row.split()[0] for row in rows} == {"Stage-1", "Stage-3C"}
    assert "Misclassified subjects" in proc.stdout
    assert proc.stderr == ""  # --quiet: no progress, no warnings

    from sklearn_leuko.report import load_table2

    table = load_table2(out / "table2.csv")
    assert table.index.tolist() == ["Stage-1", "Stage-3C"]
    assert "| Stage-3C |" in (out / "table2.md").read_text()
    assert (out / "report.html").read_text().startswith("<!DOCTYPE html>")
    for name in (
        "confusion_matrix",
        "fold_metrics",
        "history",
        "cell_spaces",
        "roc_curves",
        "calibration",
    ):
        png = out / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    with open(out / "predictions.csv") as handle:
        predictions = list(csv.DictReader(handle))
    # 16 subjects x 4 cells, every cell predicted once per stage
    assert len(predictions) == 2 * 64
    assert str(out / "table2.csv") in proc.stdout or "table2.csv" in proc.stdout


def test_warnings_are_shown_once_on_one_line(tmp_path):
    proc = run_cli(
        "cv",
        *TINY_DATA,
        "--n-subjects",
        "16",
        *TINY_NETS,
        "--folds",
        "2",
        "--test-subjects",
        "2",
        "--stages",
        "1",
        "--output",
        str(tmp_path),
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    # 24x24 images: 2 folds train 2 networks, the warning is printed once
    assert lines == [
        line for line in lines if line.startswith("sklearn-leuko: warning: ")
    ]
    assert len(lines) == 1 and "last feature map is 1x1" in lines[0]


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    from PIL import Image

    from sklearn_leuko.datasets import make_cells

    folder = tmp_path_factory.mktemp("images")
    cells = make_cells(n_subjects=2, cells_per_subject=3, image_size=24, random_state=1)
    names = []
    for i, image in enumerate(cells.images):
        name = f"{i + 1}.bmp" if i % 2 == 0 else f"{i + 1}.png"
        Image.fromarray(image).save(folder / name)
        names.append(name)
    bigger = make_cells(
        n_subjects=2, cells_per_subject=1, image_size=30, random_state=2
    )
    Image.fromarray(bigger.images[0]).save(folder / "10.bmp")
    names.append("10.bmp")
    (folder / "readme.txt").write_text("not an image")
    return folder, names


def test_train_on_cnmc_folder_then_predict_round_trip(tmp_path, image_folder):
    from sklearn_leuko.datasets import make_cells, write_cnmc

    folder, names = image_folder
    cells = make_cells(n_subjects=8, cells_per_subject=4, image_size=24, random_state=0)
    write_cnmc(cells, tmp_path / "C-NMC_training_data", random_state=0)
    model = tmp_path / "model.joblib"
    proc = run_cli(
        "train",
        "--stage",
        "1",
        "--data",
        str(tmp_path),
        *TINY_NETS,
        "--model",
        str(model),
    )
    assert proc.returncode == 0, proc.stderr
    assert model.stat().st_size > 0
    assert "Saved Stage-1 model" in proc.stdout
    assert "C-NMC tree" in proc.stderr and "32 cells of 24x24" in proc.stderr

    out = tmp_path / "pred" / "predictions.csv"
    proc = run_cli(
        "predict", "--model", str(model), "--images", str(folder), "--out", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    # the 30 px image is resized whole to 24 px (the model's training geometry)
    assert "1 of 7 images" in proc.stderr and "whole image is resized" in proc.stderr
    # nothing is skipped silently: the readme is named, and joblib's risk said
    assert "1 entry" in proc.stderr and "readme.txt" in proc.stderr
    assert "joblib file (a pickle)" in proc.stderr
    assert not list(out.parent.glob("*.tmp")) and not list(out.parent.glob("*.part"))
    with open(out) as handle:
        rows = list(csv.DictReader(handle))
    assert [row["filename"] for row in rows] == names  # natural order, images only
    p_all = np.array([float(row["p_all"]) for row in rows])
    assert np.all((p_all >= 0) & (p_all <= 1))
    labels = [row["predicted_label"] for row in rows]
    assert labels == ["all" if p >= 0.5 else "hem" for p in p_all]


def _predicted_p_all(out):
    with open(out) as handle:
        return np.array([float(row["p_all"]) for row in csv.DictReader(handle)])


@pytest.mark.parametrize(
    ("stage", "suffix", "set_expected"),
    [
        ("1", ".joblib", lambda model: model.set_params(net__tta=8)),
        ("3C", ".safetensors", lambda model: model.set_params(tta=8)),
    ],
)
def test_predict_tta_averages_every_network_over_the_views(
    tmp_path, image_folder, capsys, stage, suffix, set_expected
):
    from sklearn_leuko import make_stage, save_model
    from sklearn_leuko.datasets import fit_to_geometry, make_cells, read_images
    from sklearn_leuko.metrics import proba_of_cancer

    folder, names = image_folder
    cells = make_cells(
        n_subjects=12, cells_per_subject=5, image_size=24, random_state=0
    )
    # Small batches, a few epochs: outputs that depend on the cell's orientation.
    model = make_stage(
        stage,
        widths=(4, 4, 8, 8, 8, 8),
        batch_size=4,
        max_epochs=5,
        validation_fraction=None,
        verbose=0,
        random_state=0,
    ).fit(cells.images, cells.target)
    path = tmp_path / f"model{suffix}"
    save_model(model, path)
    whole = {"source_size": 24, "crop_size": 24, "image_size": 24}
    images = fit_to_geometry([read_images([folder / name])[0] for name in names], whole)

    plain, averaged = tmp_path / "plain.csv", tmp_path / "tta.csv"
    argv = ["predict", "--model", str(path), "--images", str(folder), "--quiet"]
    assert main([*argv, "--out", str(plain)]) == 0
    assert main([*argv, "--out", str(averaged), "--tta", "8"]) == 0
    assert "averaged over 8 views" in capsys.readouterr().out

    classes = [str(c) for c in model.classes_]
    expected = proba_of_cancer(set_expected(model).predict_proba(images), classes)
    np.testing.assert_allclose(_predicted_p_all(averaged), expected, atol=2e-6)
    assert np.abs(_predicted_p_all(averaged) - _predicted_p_all(plain)).max() > 1e-4
    # --tta 1 undoes a model saved with test-time augmentation.
    save_model(model, path)
    assert main([*argv, "--out", str(averaged), "--tta", "1"]) == 0
    np.testing.assert_array_equal(_predicted_p_all(averaged), _predicted_p_all(plain))


def test_predict_tta_accepts_only_view_counts(capsys):
    assert main(["predict", "--model", "m.joblib", "--images", ".", "--tta", "3"]) == 2
    err = capsys.readouterr().err
    assert_one_line_error(err, 2, 2)
    assert "--tta" in err and "choose from 1, 2, 4, 8" in err


def test_missing_data_folder_is_one_line_error_in_a_subprocess(tmp_path):
    proc = run_cli("cv", "--data", str(tmp_path / "missing"))
    assert_one_line_error(proc.stderr, 1, proc.returncode)
    assert "no such folder" in proc.stderr


@pytest.mark.parametrize(
    "argv, code, fragment",
    [
        (["cv", "--epochs", "zero"], 2, "--epochs"),
        (["cv", "--stages", "4"], 2, "unknown stage"),
        (["cv", "--widths", "8,8"], 2, "6 positive integers"),
        (["cv", "--no-such-option"], 2, "unrecognized arguments"),
        (["cv", "--folds", "1"], 2, "--folds"),
        (["train", "--resume"], 2, "--checkpoint-dir"),
        (["frobnicate"], 2, "invalid choice"),
        (["predict", "--images", "x"], 2, "--model"),
        (["predict", "--model", "nope.joblib", "--images", "."], 1, "no such file"),
    ],
)
def test_bad_options_and_paths(argv, code, fragment, capsys):
    assert main(argv) == code
    err = capsys.readouterr().err
    assert_one_line_error(err, code, code)
    assert fragment in err


def test_corrupt_model_and_image_files(tmp_path, image_folder, capsys):
    folder, _ = image_folder
    corrupt = tmp_path / "model.joblib"
    corrupt.write_bytes(b"this is not a model")
    assert main(["predict", "--model", str(corrupt), "--images", str(folder)]) == 1
    err = capsys.readouterr().err
    assert_one_line_error(err, 1, 1)
    assert "cannot load the model" in err

    bad_images = tmp_path / "bad"
    bad_images.mkdir()
    (bad_images / "1.bmp").write_bytes(b"BM garbage")
    other = tmp_path / "other.safetensors"
    other.write_bytes(b"\x00" * 16)
    assert main(["predict", "--model", str(other), "--images", str(bad_images)]) == 1
    assert_one_line_error(capsys.readouterr().err, 1, 1)


def _default_sigint_in_child():
    # A shell starts background jobs with SIGINT ignored, which the child
    # would inherit; give it the default disposition, as a terminal would.
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_during_training_exits_130_and_keeps_checkpoint(tmp_path):
    # skorch ends training quietly on KeyboardInterrupt; the CLI must not save
    # that truncated model as if training had finished.
    import signal
    import time

    model = tmp_path / "model.joblib"
    checkpoint = tmp_path / "ckpt"
    args = ["train", "--stage", "1", *TINY_DATA, "--widths", "4,4,4,4,4,4"]
    args += ["--epochs", "100000", "--checkpoint-dir", str(checkpoint)]
    args += ["--model", str(model)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sklearn_leuko", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=_default_sigint_in_child,
    )
    try:
        deadline = time.monotonic() + 120
        while not (checkpoint / "checkpoint.pt").exists():
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "no checkpoint written"
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert "interrupted" in stderr and "--resume" in stderr
    assert "Traceback" not in stderr
    assert not model.exists()


def test_interrupt_exits_130(monkeypatch, capsys):
    def interrupted(args, console):
        raise KeyboardInterrupt

    monkeypatch.setattr(_cli, "_command", lambda name: interrupted)
    assert main(["cv", "--checkpoint-dir", "ckpt"]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "--resume" in err


def test_help_lists_every_subcommand_and_explains_every_option(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("cv", "train", "predict"):
        assert command in out
    parser = build_parser()
    subparsers = next(
        a
        for a in parser._actions
        if isinstance(a, type(parser._subparsers._group_actions[0]))
    )
    for name, sub in subparsers.choices.items():
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings} has no help"
        assert main([name, "--help"]) == 0
        assert "--debug" in capsys.readouterr().out


# ------------------------------------------- training that cannot be trusted
def _no_data_loading(monkeypatch):
    from sklearn_leuko._cli import _common

    def load_data(*args, **kwargs):
        raise AssertionError("the data were read before the options were checked")

    monkeypatch.setattr(_common, "load_data", load_data)
    import sklearn_leuko._cli._train as train_module

    monkeypatch.setattr(train_module, "load_data", load_data)


def test_diverged_training_exits_1_and_writes_no_model(tmp_path, capsys):
    model = tmp_path / "model.joblib"
    args = ["train", "--stage", "1", *TINY_DATA, *TINY_NETS, "--lr", "1e6"]
    assert main([*args, "--model", str(model), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "training diverged" in err and "lower the learning rate" in err
    assert not model.exists()


def test_checkpoint_dir_of_another_run_is_refused_before_reading_data(
    tmp_path, capsys, monkeypatch
):
    checkpoint = tmp_path / "ckpt"
    (checkpoint / "stage1").mkdir(parents=True)
    (checkpoint / "stage1" / "checkpoint.pt").write_bytes(b"a run's checkpoint")
    _no_data_loading(monkeypatch)
    argv = ["train", "--stage", "3C", "--checkpoint-dir", str(checkpoint)]
    assert main([*argv, "--model", str(tmp_path / "m.joblib")]) == 1
    err = capsys.readouterr().err
    assert "already holds checkpoints" in err and "--resume" in err
    assert (
        checkpoint / "stage1" / "checkpoint.pt"
    ).read_bytes() == b"a run's checkpoint"


def test_unwritable_checkpoint_dir_is_refused_before_reading_data(
    tmp_path, capsys, monkeypatch
):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    _no_data_loading(monkeypatch)
    argv = ["cv", "--checkpoint-dir", str(blocker / "ckpt")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "--checkpoint-dir" in err and "a-file" in err


def test_inner_split_without_both_classes_is_reported_not_scored(tmp_path, capsys):
    """4 subjects, one of them healthy: no inner split holds both classes. Before:
    'accuracy 0.00%' on 'all' cells alone, and exit 0 without a word."""
    model = tmp_path / "model.joblib"
    data = ["--n-subjects", "4", "--cells-per-subject", "4", "--image-size", "24"]
    argv = ["train", "--stage", "1", *data, *TINY_NETS, "--model", str(model)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "InnerSplitWarning" in captured.err
    assert "pass more subjects of each class" in captured.err
    assert "no held-out accuracy" in captured.out
    assert (
        "accuracy 0.00%" not in captured.out and "% on the held-out" not in captured.out
    )
    assert model.exists()


@pytest.mark.parametrize("choice", [None, "inner", "validation_fold"])
def test_cv_epoch_selection_reaches_the_protocol(choice, monkeypatch, capsys):
    import sklearn_leuko.evaluation as evaluation

    seen = {}

    def fake_protocol(*args, **kwargs):
        seen.update(kwargs)
        raise ValueError("stop here")

    monkeypatch.setattr(evaluation, "run_protocol", fake_protocol)
    extra = [] if choice is None else ["--epoch-selection", choice]
    code = main(["cv", *TINY_DATA, "--quiet", *extra])
    assert code == 1
    assert seen["epoch_selection"] == (choice or "inner")


def test_cv_epoch_selection_refuses_other_values(capsys):
    assert main(["cv", "--epoch-selection", "test"]) == 2
    assert "--epoch-selection" in capsys.readouterr().err


REAL_CNMC = Path(__file__).resolve().parents[1].parent / "shared/data/real/cnmc2019"
needs_real = pytest.mark.skipif(
    not REAL_CNMC.is_dir(),
    reason=f"real cells not found at {REAL_CNMC} (a fresh clone has none)",
)


@needs_real
def test_cv_on_real_labels_csv(tmp_path):
    out = tmp_path / "run"
    proc = run_cli(
        "cv",
        "--data",
        str(REAL_CNMC / "labels.csv"),
        "--image-size",
        "48",
        "--stages",
        "1",
        *TINY_NETS,
        "--output",
        str(out),
        "--html",
    )
    assert proc.returncode == 0, proc.stderr
    assert "69 cells of 48x48" in proc.stderr
    text = (out / "table2.md").read_text()
    assert "## Data" in text and "labels.csv" in text
    assert "all: 34 cells from 15 subjects, hem: 35 cells from 14 subjects" in text
    assert "450 px cut from a 450 px canvas, resized to 48 px" in text
    assert "<h2>Data</h2>" in (out / "report.html").read_text()
    assert "Data: source: CSV" in proc.stdout


@needs_real
def test_synthetic_model_sees_real_450px_cells_whole(tmp_path):
    from sklearn_leuko import load_model
    from sklearn_leuko.datasets import fit_to_geometry, model_geometry, read_images

    model = tmp_path / "m.safetensors"
    proc = run_cli(
        "train", "--stage", "1", *TINY_DATA, *TINY_NETS, "--model", str(model)
    )
    assert proc.returncode == 0, proc.stderr
    fitted = load_model(model)
    geometry = model_geometry(fitted)
    assert geometry == {"source_size": 450, "crop_size": 450, "image_size": 24}
    paths = sorted((REAL_CNMC / "images").glob("*.png"))[:5]
    raw = read_images(paths)
    seen = fit_to_geometry(list(raw), geometry)
    # the whole cell, scaled down: its share of the frame is kept (not a
    # window of nucleus that fills the frame)
    share_raw = raw.any(axis=-1).mean(axis=(1, 2))
    share_seen = (seen.max(axis=-1) > 10).mean(axis=(1, 2))
    np.testing.assert_allclose(share_seen, share_raw, atol=0.08)
    assert share_seen.max() < 0.5
    folder = tmp_path / "imgs"
    folder.mkdir()
    for p in paths:
        (folder / p.name).write_bytes(p.read_bytes())
    out = tmp_path / "p.csv"
    proc = run_cli(
        "predict", "--model", str(model), "--images", str(folder), "--out", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    assert "whole image is resized to 24x24" in proc.stderr
    expected = fitted.predict_proba(seen)
    classes = [str(c) for c in fitted.classes_]
    p_all = _predicted_p_all(out)
    np.testing.assert_allclose(p_all, expected[:, classes.index("all")], atol=1e-5)


def test_predict_data_takes_a_csv_in_its_row_order(tmp_path):
    from PIL import Image

    from sklearn_leuko.datasets import make_cells, write_cnmc

    cells = make_cells(n_subjects=8, cells_per_subject=4, image_size=24, random_state=0)
    write_cnmc(cells, tmp_path / "C-NMC_training_data", random_state=0)
    model = tmp_path / "model.safetensors"
    proc = run_cli(
        "train",
        "--stage",
        "1",
        "--data",
        str(tmp_path),
        *TINY_NETS,
        "--model",
        str(model),
    )
    assert proc.returncode == 0, proc.stderr
    own = tmp_path / "own"
    (own / "imgs").mkdir(parents=True)
    rows = ["path,label,subject"]
    for i, name in enumerate(["imgs/b.png", "=a.png", "imgs/c.png"]):
        Image.fromarray(cells.images[i]).save(own / name)
        rows.append(f"{name},{cells.target[i]},S{i}")
    (own / "labels.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "pred.csv"
    proc = run_cli(
        "predict",
        "--model",
        str(model),
        "--data",
        str(own / "labels.csv"),
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    with open(out) as handle:
        names = [row["filename"] for row in csv.DictReader(handle)]
    # the CSV's order, paths relative to it, the formula-like name escaped
    assert names == ["imgs/b.png", "'=a.png", "imgs/c.png"]
    proc = run_cli("predict", "--model", str(model), "--data", str(own / "none.csv"))
    assert proc.returncode != 0 and "none.csv" in proc.stderr
