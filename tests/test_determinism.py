"""The CPU reproducibility guarantee, checked across separate Python processes.

Same seed, same data, same torch thread count and versions -> bit-identical
weights and probabilities (see docs/reliability.md). Each fit runs in a fresh
interpreter so that nothing (torch's global RNG, caches, hash seeds) can leak
from one run into the other.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from safetensors.numpy import load_file

SCRIPT = textwrap.dedent(
    """
    import sys

    import torch

    torch.set_num_threads(1)

    from safetensors.numpy import save_file

    from sklearn_leuko import LeukoNetClassifier, load_safetensors, save_safetensors
    from sklearn_leuko.datasets import make_cells

    out_path, model_path, other_model = sys.argv[1:4]
    data = make_cells(n_subjects=12, cells_per_subject=5, image_size=32, random_state=0)
    clf = LeukoNetClassifier(
        preprocessing="od", augment="all", widths=(4, 4, 8, 8, 8, 8), max_epochs=2,
        batch_size=16, verbose=0, random_state=7,
    )
    clf.fit(data.images, data.target, groups=data.groups)
    assert clf.net_.module_.augmenter is not None
    out = {"proba": clf.predict_proba(data.images)}
    out.update(
        {f"state.{k}": v.numpy() for k, v in clf.net_.module_.state_dict().items()}
    )
    save_safetensors(clf, model_path)
    if other_model != "-":
        out["proba_of_other_model"] = load_safetensors(other_model).predict_proba(
            data.images
        )
    save_file(out, out_path)
    """
)


def _run(tmp_path, tag, other_model="-", hash_seed="0"):
    out = tmp_path / f"{tag}.safetensors"
    model = tmp_path / f"{tag}-model.safetensors"
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONHASHSEED": hash_seed,
    }
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(out), str(model), str(other_model)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return load_file(out), model


@pytest.mark.slow
def test_same_seed_is_bit_identical_across_processes(tmp_path):
    first, first_model = _run(tmp_path, "first", hash_seed="1")
    # Another hash seed: set/dict orders of strings must not matter either.
    second, _ = _run(tmp_path, "second", other_model=first_model, hash_seed="2")
    state_keys = sorted(k for k in first if k.startswith("state."))
    assert state_keys == sorted(k for k in second if k.startswith("state."))
    assert any(k.endswith("running_mean") for k in state_keys)
    for key in state_keys:
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)
    np.testing.assert_array_equal(first["proba"], second["proba"])
    # The safe model file of the first process predicts the same in the second.
    np.testing.assert_array_equal(second["proba_of_other_model"], first["proba"])
    # Not a degenerate model: the probabilities vary from cell to cell.
    assert np.ptp(first["proba"][:, 0]) > 0
