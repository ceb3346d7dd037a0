"""
Saving and loading models
=========================

Two formats, chosen by the file's suffix:

- ``.safetensors``: tensors plus a JSON description. Loading runs no code, and
  checks the whole file (schema, digest, finite weights, shapes) before it
  builds anything. Use it for files you receive.
- ``.joblib``: a pickle. Loading can execute arbitrary code, so it warns
  (``JoblibCodeExecutionWarning``); load only files you trust.

Both give back the same predictions, on a CPU-only machine too.
"""

# %%
import tempfile
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from sklearn_leuko import JoblibCodeExecutionWarning, load_model, make_stage, save_model
from sklearn_leuko.datasets import make_cells

data = make_cells(n_subjects=8, cells_per_subject=12, image_size=72, random_state=0)
X, y, subjects = data.images, data.target, data.groups
model = make_stage(
    "3C", max_epochs=2, widths=(8, 8, 8, 16, 16, 16), verbose=0, random_state=0
).fit(X, y, groups=subjects)
reference = model.predict_proba(X)

# %%
folder = Path(tempfile.mkdtemp())
sizes, max_diff = {}, {}
for suffix in ["safetensors", "joblib"]:
    path = (
        save_model(model, folder / f"stage3c.{suffix}") or folder / f"stage3c.{suffix}"
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = load_model(folder / f"stage3c.{suffix}", device="cpu")
    warned = any(issubclass(w.category, JoblibCodeExecutionWarning) for w in caught)
    sizes[suffix] = (folder / f"stage3c.{suffix}").stat().st_size / 1e6
    max_diff[suffix] = float(np.abs(loaded.predict_proba(X) - reference).max())
    print(
        f".{suffix:<12} {sizes[suffix]:.2f} MB, max |dP| {max_diff[suffix]:.1e}, "
        f"code-execution warning: {warned}"
    )

# %%
# A damaged file is refused with a ``ValueError`` that names the file and the
# problem, before any tensor is built.
damaged = folder / "damaged.safetensors"
payload = bytearray((folder / "stage3c.safetensors").read_bytes())
payload[-10] ^= 0xFF
damaged.write_bytes(bytes(payload))
try:
    load_model(damaged)
except ValueError as error:
    print("refused:", str(error)[:160], "...")

# %%
fig, ax = plt.subplots(figsize=(4, 2.5))
ax.bar(list(sizes), list(sizes.values()))
ax.set_ylabel("file size (MB)")
ax.set_title("Stage-3C, tiny widths")
