"""bfloat16 on the CPU: only where native, never for the preprocessing."""

import numpy as np
import pytest
import torch

from sklearn_leuko import LeukoNetClassifier
from sklearn_leuko.nn import _precision

TINY = dict(widths=(4, 4, 8, 8, 8, 8), max_epochs=2, batch_size=16, verbose=0)


@pytest.fixture
def native_bf16(monkeypatch):
    """Pretend (or deny) that this CPU computes bfloat16 natively."""

    def set_native(value):
        monkeypatch.setattr(_precision, "cpu_has_native_bf16", lambda: value)

    return set_native


@pytest.mark.parametrize(
    "flags, mkldnn, expected",
    [
        ({"avx2", "fma"}, True, False),  # e.g. AMD Zen 3: emulated, slower
        ({"avx512f", "avx512_bf16"}, True, True),
        ({"avx512f", "amx_tile", "amx_bf16"}, True, True),
        ({"avx512f", "amx_bf16"}, False, False),  # torch without oneDNN
        ({"fp", "asimd", "bf16"}, True, True),  # Arm with BF16
        (set(), True, False),  # flags unreadable
    ],
)
def test_cpu_bf16_detection_from_flags(monkeypatch, flags, mkldnn, expected):
    monkeypatch.setattr(_precision, "_cpuinfo_flags", lambda: frozenset(flags))
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: mkldnn)
    _precision.cpu_has_native_bf16.cache_clear()
    try:
        assert _precision.cpu_has_native_bf16() is expected
    finally:
        _precision.cpu_has_native_bf16.cache_clear()


def test_cpuinfo_flags_are_parsed(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16\n")
    assert _precision._cpuinfo_flags(info) == {"fpu", "avx2", "avx512_bf16"}
    assert _precision._cpuinfo_flags(tmp_path / "missing") == frozenset()


def test_auto_precision_follows_the_cpu(tiny_cells, native_bf16):
    X, y, g = tiny_cells.images, tiny_cells.target, tiny_cells.groups
    native_bf16(False)
    clf = LeukoNetClassifier(preprocessing="od", random_state=0, **TINY)
    assert clf.fit(X, y, groups=g).module_spec_["autocast_dtype"] is None
    native_bf16(True)
    assert clf.fit(X, y, groups=g).module_spec_["autocast_dtype"] == "bfloat16"
    clf.set_params(mixed_precision=False)
    assert clf.fit(X, y, groups=g).module_spec_["autocast_dtype"] is None


def test_forced_bf16_on_an_emulating_cpu_is_refused(tiny_cells, native_bf16):
    native_bf16(False)
    clf = LeukoNetClassifier(mixed_precision=True, **TINY)
    with pytest.raises(ValueError, match="mixed_precision=True.*no native bfloat16"):
        clf.fit(tiny_cells.images, tiny_cells.target, groups=tiny_cells.groups)


def test_bf16_model_runs_in_float32_on_a_cpu_without_bf16(tiny_cells, native_bf16):
    X, y, g = tiny_cells.images, tiny_cells.target, tiny_cells.groups
    native_bf16(True)
    clf = LeukoNetClassifier(preprocessing="od", random_state=0, **TINY)
    clf.fit(X, y, groups=g)
    assert clf.net_.module_.autocast_dtype == torch.bfloat16
    bf16 = clf.predict_proba(X)
    # The same weights without autocast: the float32 reference.
    module = clf.net_.module_
    module.autocast_dtype = None
    fp32 = clf.predict_proba(X)
    module.autocast_dtype = torch.bfloat16
    assert not np.array_equal(bf16, fp32)  # bfloat16 really ran above
    native_bf16(False)  # "loaded on a CPU without bfloat16"
    np.testing.assert_array_equal(clf.predict_proba(X), fp32)


def test_preprocessing_stays_float32_under_autocast(tiny_cells, native_bf16):
    X, y, g = tiny_cells.images, tiny_cells.target, tiny_cells.groups
    native_bf16(True)
    clf = LeukoNetClassifier(preprocessing="log_dct", random_state=0, **TINY)
    clf.fit(X, y, groups=g)
    module = clf.net_.module_
    seen = {}

    def record(name):
        def hook(mod, args, out):
            seen[name] = (torch.is_autocast_enabled("cpu"), out.dtype)

        return hook

    module.preprocess.register_forward_hook(record("preprocess"))
    first_conv = next(
        m for m in module.network.modules() if isinstance(m, torch.nn.Conv2d)
    )
    first_conv.register_forward_hook(record("conv"))
    clf.predict_proba(X[:4])
    assert seen["preprocess"] == (False, torch.float32)
    assert seen["conv"] == (True, torch.bfloat16)
