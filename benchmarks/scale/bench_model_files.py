"""Model file sizes (joblib vs safetensors) and the cost of the resume fingerprint.

- Sizes: stages "1" and "3C" with the default widths, fitted on the README's
  data (``make_cells(n_subjects=24, cells_per_subject=40, image_size=64)``),
  saved with ``joblib.dump`` and ``save_safetensors``. Before issue 14 a
  joblib file of Stage-3C held every training image (27 MB); now both
  formats hold weights and settings only, so the size does not depend on the
  number of cells or epochs. The check that no training image is in the
  joblib bytes is repeated here.
- Fingerprint: SHA-256 over every value of a 1 GB uint8 image array (what a
  ``checkpoint_dir`` fit hashes once at its start), plus the time to refuse a
  small file whose config claims ``widths=[4096]*6``.

    python benchmarks/scale/bench_model_files.py            # writes results/model_files.json
"""

import io
import json
import os
import platform
import tempfile
import time
import warnings
from pathlib import Path

import joblib
import numpy as np
import torch

from sklearn_leuko import make_stage, save_safetensors
from sklearn_leuko._classifier._callbacks import data_digest
from sklearn_leuko.datasets import make_cells


def sizes(max_epochs=1):
    data = make_cells(
        n_subjects=24, cells_per_subject=40, image_size=64, random_state=0
    )
    X, y, g = data.images, data.target, data.groups
    out = {}
    with tempfile.TemporaryDirectory() as folder:
        for name in ("1", "3C"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = make_stage(
                    name, max_epochs=max_epochs, verbose=0, random_state=0
                )
                model = (
                    model.fit(X, y, groups=g)
                    if name == "3C"
                    else model.fit(X, y, net__groups=g)
                )
            buffer = io.BytesIO()
            joblib.dump(model, buffer)
            blob = buffer.getvalue()
            leaked = sum(X[i, 32].tobytes() in blob for i in range(len(X)))
            path = Path(folder) / f"{name}.safetensors"
            save_safetensors(model, path)
            out[name] = {
                "joblib_bytes": len(blob),
                "safetensors_bytes": path.stat().st_size,
                "training_image_rows_in_joblib": int(leaked),
                "training_images_bytes": int(X.nbytes),
            }
            print(name, out[name], flush=True)
    return out


def hash_time(n_bytes=2**30, repeats=2):
    X = np.random.default_rng(0).integers(
        0, 256, (n_bytes // (350 * 350 * 3), 350, 350, 3), np.uint8
    )
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        data_digest(X)
        times.append(time.perf_counter() - start)
    result = {"gigabytes": X.nbytes / 1e9, "seconds_min": min(times)}
    print("hash", result, flush=True)
    return result


def main():
    results = {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "sizes": sizes(),
        "hash_1gb": hash_time(),
    }
    out = Path(__file__).resolve().parents[1] / "results" / "model_files.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
