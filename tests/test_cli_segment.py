"""``--segment`` of ``sklearn-leuko cv/train/predict``: smear crops cut onto black."""

import csv

import numpy as np
import pytest
from PIL import Image

from sklearn_leuko._cli import main
from sklearn_leuko._cli._console import EXIT_USAGE

TINY_NETS = ["--epochs", "1", "--widths", "4,4,4,4,4,4", "--seed", "0", "--quiet"]


def _crop(size=40, cell=True, shift=0):
    """Light background, a pink red cell, a purple nucleus near the centre."""
    rgb = np.full((size, size, 3), (235, 215, 200), np.uint8)
    yy, xx = np.mgrid[:size, :size]
    rgb[(yy - 6) ** 2 + (xx - 6) ** 2 < 25] = (215, 130, 140)
    if cell:
        rgb[(yy - 20 - shift) ** 2 + (xx - 22) ** 2 < 64] = (90, 50, 150)
    return rgb


def _csv(folder, n=16, empty=()):
    rows = ["path,label,subject"]
    for i in range(n):
        name = f"c{i}.png"
        Image.fromarray(_crop(cell=i not in empty, shift=i % 4)).save(folder / name)
        label = "all" if i % 2 else "hem"
        rows.append(f"{name},{label},{'P' if i % 2 else 'H'}{i % 8}")
    path = folder / "labels.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_segment_needs_data(capsys):
    assert main(["cv", "--segment", "--quiet"]) == EXIT_USAGE
    assert "--segment needs --data" in capsys.readouterr().err


def test_train_refuses_crops_without_a_cell_naming_them(tmp_path, capsys):
    data = _csv(tmp_path, empty=(3,))
    argv = ["train", "--stage", "1", "--data", str(data), "--segment", *TINY_NETS]
    assert main([*argv, "--model", str(tmp_path / "m.joblib")]) == 1
    err = capsys.readouterr().err
    assert "c3.png" in err and "no_cell" in err
    assert not (tmp_path / "m.joblib").exists()


def test_train_then_predict_with_segment(tmp_path, capsys):
    model = tmp_path / "m.joblib"
    argv = ["train", "--stage", "1", "--data", str(_csv(tmp_path)), "--segment"]
    assert main([*argv, "--image-size", "24", *TINY_NETS, "--model", str(model)]) == 0
    folder = tmp_path / "new"
    folder.mkdir()
    Image.fromarray(_crop()).save(folder / "a.png")
    Image.fromarray(_crop(cell=False)).save(folder / "b.png")
    out = tmp_path / "p.csv"
    argv = ["predict", "--model", str(model), "--images", str(folder), "--quiet"]
    # raise (the default): the crop without a cell is named, no CSV is left
    assert main([*argv, "--out", str(out), "--segment"]) == 1
    err = capsys.readouterr().err
    assert "b.png" in err and "no_cell" in err
    assert not out.exists()
    # flag: every image predicted, a warning names the failed one
    assert main([*argv, "--out", str(out), "--segment", "flag"]) == 0
    err = capsys.readouterr().err
    assert "white cell in 1 of 2 images" in err and "b.png (no_cell)" in err
    with open(out) as handle:
        assert [row["filename"] for row in csv.DictReader(handle)] == ["a.png", "b.png"]


@pytest.mark.parametrize("value", ["skip", "yes"])
def test_segment_values_are_checked(value, capsys):
    assert main(["cv", "--segment", value]) == EXIT_USAGE
    assert "invalid choice" in capsys.readouterr().err
