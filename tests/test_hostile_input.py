"""Hostile but realistic inputs: names in outputs, bomb headers, odd targets, layouts."""

import os
import re
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sklearn_leuko import LeukoNetClassifier
from sklearn_leuko.datasets import read_images
from sklearn_leuko.report import format_table2
from sklearn_leuko.utils._escape import (
    escape_csv_cell,
    escape_csv_frame,
    escape_markdown,
    escape_mathtext,
)
from sklearn_leuko.utils._files import atomic_write, check_writable
from sklearn_leuko.utils._image_limits import max_image_pixels

TINY = dict(
    widths=(4, 4, 8, 8, 8, 8),
    max_epochs=1,
    batch_size=16,
    verbose=0,
    random_state=0,
    validation_fraction=None,
)


# ------------------------------------------------------------------ escaping
def test_markdown_escape_keeps_one_table_row():
    frame = pd.DataFrame({"score": [1.0]}, index=["H1|<b>x</b>\nnext\\"])
    text = format_table2(frame, "markdown")
    row = text.splitlines()[-1]
    assert len(text.splitlines()) == 3  # header, rule, one row: no line break leaked
    assert "<b>" not in text and "&lt;b&gt;" in row
    assert row.count(" | ") == 1  # the | in the name is escaped
    assert "\\|" in row and "\\\\" in row


@pytest.mark.parametrize("cell", ["=1+1", "+SUM(A1)", "-2+3", "@cmd", "\tx", "\rx"])
def test_csv_formula_cells_get_a_quote(cell):
    assert escape_csv_cell(cell) == "'" + cell


def test_csv_escape_leaves_numbers_and_plain_text():
    frame = pd.DataFrame({"subject": ["=evil", "H3"], "p_all": [-0.5, 0.25]})
    out = escape_csv_frame(frame)
    assert out["subject"].tolist() == ["'=evil", "H3"]
    assert out["p_all"].tolist() == [-0.5, 0.25]
    assert frame["subject"].tolist() == ["=evil", "H3"]  # a copy, input untouched
    assert escape_markdown("a\r\nb") == "a b"


def test_protocol_csvs_and_markdown_escape_subject_ids(tmp_path):
    from sklearn_leuko.report import save_table2

    frame = pd.DataFrame(
        {"acc": [1.0]}, index=pd.Index(["=HYPERLINK(1)"], name="Model")
    )
    path = save_table2(frame, tmp_path / "t.csv")
    assert "'=HYPERLINK(1)" in path.read_text()


def test_dollar_in_titles_is_plain_text(tmp_path):
    from sklearn_leuko.report import plot_gradcam_overlay

    images = np.zeros((1, 16, 16, 3), np.uint8)
    heat = np.zeros((1, 16, 16), np.float32)
    # "$\\frac{" is broken mathtext: with mathtext on, drawing it raises
    path = plot_gradcam_overlay(
        images, heat, tmp_path / "h.png", titles=["UID_$\\frac{$_1.bmp"]
    )
    assert path.stat().st_size > 0


BROKEN_MATH = "UID_$\\frac{$_1"  # with mathtext on, drawing this raises


def test_dollar_in_legend_and_tick_labels_is_plain_text(tmp_path):
    from sklearn_leuko.report import (
        plot_calibration,
        plot_fold_metrics,
        plot_roc_curves,
    )

    y = np.array(["all", "hem"] * 8)
    p = np.linspace(0.05, 0.95, 16)
    for plot in (plot_roc_curves, plot_calibration):
        path = plot({BROKEN_MATH: (y, p)}, tmp_path / f"{plot.__name__}.png")
        assert path.stat().st_size > 0
    columns = pd.MultiIndex.from_product([["Val0", "Test"], ["Acc", "F1-N"]])
    table = pd.DataFrame([[80.0, 70.0, 75.0, 65.0]], [BROKEN_MATH], columns)
    assert plot_fold_metrics(table, tmp_path / "bars.png").stat().st_size > 0
    assert escape_mathtext("a$b$c") == "a\\$b\\$c"


# ---------------------------------------------------------- image size limits
def _bmp_header(width, height):
    row = ((width * 24 + 31) // 32) * 4
    size = row * height
    header = struct.pack("<2sIHHI", b"BM", 54 + size & 0xFFFFFFFF, 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return header + info


def _png_header(width, height):
    def chunk(kind, data):
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)


@pytest.mark.parametrize(
    "name, content",
    [
        ("bomb.bmp", _bmp_header(60_000, 60_000)),
        ("big.png", _png_header(11_000, 11_000)),
    ],
)
def test_bomb_headers_are_refused_by_name_before_decoding(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=f"{name}.*(limit|too large)"):
            read_images([path])


def test_pixel_limit_is_configurable(tmp_path):
    from PIL import Image

    path = tmp_path / "cell.png"
    Image.fromarray(np.full((40, 40, 3), 90, np.uint8)).save(path)
    assert read_images([path]).shape == (1, 40, 40, 3)
    with max_image_pixels(1_000), pytest.raises(ValueError, match="1,600.*1,000"):
        read_images([path])
    with pytest.raises(ValueError, match="positive int"):
        with max_image_pixels(0):
            pass


# ------------------------------------------------------------- odd targets
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_writer_refuses_a_fifo_and_leaves_it(tmp_path):
    import stat

    fifo = tmp_path / "out.csv"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="FIFO"):
        with atomic_write(fifo, "w") as handle:
            handle.write("x")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    with pytest.raises(ValueError, match="FIFO"):
        check_writable(fifo, "--out")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_writer_refuses_a_character_device():
    with pytest.raises(ValueError, match="character device"):
        with atomic_write("/dev/full", "w") as handle:
            handle.write("x")


def test_writer_follows_a_symlink(tmp_path):
    target = tmp_path / "real.csv"
    target.write_text("old")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    with atomic_write(link, "w") as handle:
        handle.write("new")
    assert link.is_symlink()
    assert target.read_text() == "new"


# ------------------------------------------------------------ input layout
def _proba(X, y):
    model = LeukoNetClassifier(preprocessing="od", **TINY).fit(X, y)
    return model.predict_proba(np.ascontiguousarray(X))


def test_memory_layout_does_not_change_the_model(tiny_cells, tmp_path):
    X, y = tiny_cells.images[:24], tiny_cells.target[:24]
    reference = _proba(X, y)
    for variant in _layouts(X, tmp_path):
        np.testing.assert_array_equal(_proba(variant, y), reference)


def _layouts(X, tmp_path):
    """The values of X in other memory layouts."""
    import torch

    readonly = X.copy()
    readonly.setflags(write=False)
    mm = np.lib.format.open_memmap(
        tmp_path / f"x{X.ndim}{X.dtype}.npy", mode="w+", dtype=X.dtype, shape=X.shape
    )
    mm[:] = X
    wide = np.zeros(X.shape[:-1] + (2 * X.shape[-1],), X.dtype)
    wide[..., ::2] = X
    variants = [
        np.asfortranarray(X),
        X[::-1].copy()[::-1],  # negative strides over the images
        X[:, :, ::-1].copy()[:, :, ::-1],  # negative strides over the columns
        wide[..., ::2],  # a strided view
        readonly,
        mm,
        torch.from_numpy(np.asfortranarray(X)),  # a non-contiguous tensor
    ]
    for variant in variants:
        np.testing.assert_array_equal(np.asarray(variant), X)
    return variants


def test_memory_layout_does_not_change_the_preprocessing(tiny_cells, tmp_path):
    from sklearn_leuko.preprocessing import LogDCT, StainDeconvolution

    X = tiny_cells.images[:12]
    for stain in ("giemsa", "macenko"):
        od = StainDeconvolution(stain_matrix=stain, random_state=0)
        reference = od.fit(X).transform(X)
        for variant in _layouts(X, tmp_path):
            got = StainDeconvolution(stain_matrix=stain, random_state=0).fit(variant)
            np.testing.assert_array_equal(got.transform(variant), reference)
    dct = LogDCT(threshold="fit").fit(reference)
    for variant in _layouts(reference, tmp_path):
        other = LogDCT(threshold="fit").fit(variant)
        np.testing.assert_array_equal(other.thresholds_, dct.thresholds_)
        np.testing.assert_array_equal(
            other.transform(variant), dct.transform(reference)
        )


def test_float_rgb_images_get_an_error_naming_what_is_accepted(tiny_cells):
    X = tiny_cells.images[:8].astype(np.float64)
    with pytest.raises(ValueError, match=r"uint8 RGB images .*\[0, 255\].*float32"):
        LeukoNetClassifier(preprocessing="od", **TINY).fit(X, tiny_cells.target[:8])


def _tiff_header(width, height):
    """A float32 RGB TIFF (which Pillow cannot read) claiming width x height."""
    entries = [  # tag, type (3 SHORT, 4 LONG), count, value or offset
        (256, 4, 1, width),
        (257, 4, 1, height),
        (258, 3, 3, 200),
        (259, 3, 1, 1),
        (262, 3, 1, 2),
        (273, 4, 1, 220),
        (277, 3, 1, 3),
        (278, 4, 1, height),
        (279, 4, 1, width * height * 12),
        (284, 3, 1, 1),
        (339, 3, 3, 210),
    ]
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        packed = struct.pack("<H" if kind == 3 and count == 1 else "<I", value)
        ifd += struct.pack("<HHI", tag, kind, count) + packed.ljust(4, b"\0")
    ifd += struct.pack("<I", 0)
    head = b"II*\0" + struct.pack("<I", 8) + ifd
    head = head.ljust(200, b"\0") + struct.pack("<3H", 32, 32, 32).ljust(10, b"\0")
    return head + struct.pack("<3H", 3, 3, 3).ljust(10, b"\0") + b"\0" * 64


def test_tiff_bomb_header_is_refused_before_decoding(tmp_path):
    import tifffile

    path = tmp_path / "scan.tif"
    path.write_bytes(_tiff_header(10_000, 10_000))
    with tifffile.TiffFile(path) as tif:  # the header really claims 100 MP
        assert tif.series[0].shape == (10_000, 10_000, 3)
    with pytest.raises(ValueError, match=r"scan\.tif is 10000 x 10000.*limit"):
        read_images([path])


def test_load_cnmc_eager_and_lazy_refuse_a_bomb_by_name(tmp_path):
    from sklearn_leuko.datasets import load_cnmc, make_cells, write_cnmc

    cells = make_cells(n_subjects=4, cells_per_subject=2, image_size=16)
    write_cnmc(cells, tmp_path, n_folds=2, random_state=0)
    bomb = sorted(tmp_path.glob("fold_*/all/*.bmp"))[0]
    bomb.write_bytes(_bmp_header(60_000, 60_000))
    with pytest.raises(ValueError, match=f"{bomb.name} is 60000 x 60000.*limit"):
        load_cnmc(tmp_path)
    lazy = load_cnmc(tmp_path, lazy=True)
    with pytest.raises(ValueError, match=f"{bomb.name} is 60000 x 60000.*limit"):
        read_images(lazy.paths)


def test_cli_predict_escapes_names_and_refuses_a_bomb(tmp_path, tiny_cells, capsys):
    from PIL import Image

    from sklearn_leuko import save_model
    from sklearn_leuko._cli import main

    model = LeukoNetClassifier(preprocessing="od", **TINY)
    model.fit(tiny_cells.images[:16], tiny_cells.target[:16])
    save_model(model, tmp_path / "m.joblib")
    folder = tmp_path / "cells"
    folder.mkdir()
    for i, name in enumerate(["=cmd.png", "-1.png", "plain.png"]):
        Image.fromarray(tiny_cells.images[i]).save(folder / name)
    out = tmp_path / "p.csv"
    argv = ["predict", "--model", str(tmp_path / "m.joblib"), "--images", str(folder)]
    assert main([*argv, "--out", str(out), "--quiet"]) == 0
    rows = pd.read_csv(out)
    assert sorted(rows.iloc[:, 0]) == ["'-1.png", "'=cmd.png", "plain.png"]
    assert pd.api.types.is_float_dtype(rows["p_all"])  # numbers stay numbers
    (folder / "bomb.bmp").write_bytes(_bmp_header(60_000, 60_000))
    capsys.readouterr()
    assert main([*argv, "--out", str(tmp_path / "q.csv"), "--quiet"]) == 1
    assert re.search(r"bomb\.bmp.*60000 x 60000.*limit", capsys.readouterr().err)


def test_writer_refuses_a_folder_and_leaves_it(tmp_path):
    folder = tmp_path / "out.csv"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    with pytest.raises(IsADirectoryError, match="is a folder"):
        with atomic_write(folder, "w") as handle:
            handle.write("x")
    with pytest.raises(ValueError, match="is a folder"):
        check_writable(folder, "--out")
    assert (folder / "keep.txt").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]  # no temporary left


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_symlink_to_a_fifo_is_refused(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "table.md"
    link.symlink_to(fifo)
    with pytest.raises(ValueError, match="FIFO"):
        with atomic_write(link, "w") as handle:
            handle.write("x")
    assert link.is_symlink() and os.readlink(link) == str(fifo)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_write_cnmc_refuses_a_fifo_among_its_targets(tmp_path):
    import stat

    from sklearn_leuko.datasets import make_cells, write_cnmc

    cells = make_cells(n_subjects=4, cells_per_subject=2, image_size=16)
    written = write_cnmc(cells, tmp_path, n_folds=2, random_state=0)
    fifo = Path(written.paths[0])
    fifo.unlink()
    os.mkfifo(fifo)
    # a reader on the pipe, so that a writer that opens it does not block
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        with pytest.raises(ValueError, match=f"{fifo.name}.*FIFO"):
            write_cnmc(cells, tmp_path, n_folds=2, random_state=0, overwrite=True)
        assert os.read(reader, 1) == b""  # nothing was written into it
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
