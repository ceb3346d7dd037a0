"""The benchmark scripts run (tiny sizes on the CPU), so they cannot rot."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(args, tmp_path, timeout):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
def test_gpu_check_runs_quick_on_cpu(tmp_path):
    out = tmp_path / "gpu_check.json"
    proc = _run(
        [
            str(ROOT / "benchmarks" / "gpu_check.py"),
            "--device",
            "cpu",
            "--quick",
            "--out",
            str(out),
        ],
        tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    sections = ("stages", "persistence", "throughput", "memory", "projection")
    for section in sections:
        assert section in report
    lines = [line for line in proc.stdout.splitlines() if line.startswith("(")]
    assert [line.split(")")[0][1:] for line in lines[:5]] == list(sections)
    assert report["stages"]["ok"] and set(report["stages"]["stages"]) == {
        "1",
        "2",
        "2C",
        "3",
        "3C",
        "vgg11",
    }
    assert report["persistence"]["ok"]
    variants = report["throughput"]["variants"]
    assert {
        "plain torch fp32",
        "plain torch, same module fp32",
        "Stage-1 fp32",
        "plain skorch fp32",
    } <= set(variants)
    assert variants["Stage-1 fp32"]["train_vs_same_module"] > 0
    best = report["throughput"]["precision"]  # bf16 where native
    assert {
        f"plain torch {best} P-TELU",
        f"Stage-1 {best} fixed front",
        f"Stage-1 {best} fixed front P-TELU",
    } <= set(variants)
    ratios = report["throughput"]["step_ratios"]
    assert set(ratios) == {
        "ptelu_vs_relu_plain",
        "ptelu_vs_relu_fixed_front",
        "sd_layer_vs_fixed_front",
    }
    assert all(value > 0 for value in ratios.values())
    assert report["throughput"]["ptelu_kernel"] in ("compiled", "eager")
    assert (
        report["projection"]["stage3c_protocol_s"]
        > report["projection"]["cnmc_epoch_s"]
    )


def test_bench_training_runs_tiny_on_cpu(tmp_path):
    out = tmp_path / "training.json"
    proc = _run(
        [
            str(ROOT / "benchmarks" / "speed" / "bench_training.py"),
            *("--n", "16", "--size", "32", "--batch-size", "8", "--epochs", "1"),
            *("--repeats", "1", "--threads", "1", "--precision", "fp32"),
            *("--no-skorch", "--out", str(out)),
        ],
        tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())["results"]
    assert results["plain torch, same module fp32"]["train_vs_same_module"] == 1.0
    assert results["plain torch, OD precomputed fp32"]["train_vs_od_precomputed"] == 1.0
    assert results["sklearn-leuko fp32"]["train_cells_per_s"] > 0
    assert results["sklearn-leuko fp32"]["predict_vs_same_module"] > 0


def test_tta_effect_runs_tiny_on_cpu(tmp_path):
    out = tmp_path / "tta_effect.json"
    proc = _run(
        [
            str(ROOT / "benchmarks" / "accuracy" / "tta_effect.py"),
            *("--subjects", "12", "--cells", "4", "--size", "32", "--epochs", "1"),
            *("--folds", "2", "--widths", "4,4,4,4,4,4", "--repeats", "1"),
            *("--threads", "1", "--out", str(out)),
        ],
        tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    assert set(results["summary"]) == {"1", "2", "4", "8"}
    assert len(results["folds"]) == 2
    assert results["summary"]["1"]["time_factor_vs_tta1"]["mean"] == 1.0
    assert results["summary"]["8"]["cells_per_s"]["mean"] > 0
    assert "load_average_1_5_15_min" in results and "machine" in results


def test_cost_table_runs_quick_on_cpu(tmp_path):
    out = tmp_path / "cost_table.json"
    proc = _run(
        [
            str(ROOT / "benchmarks" / "speed" / "cost_table.py"),
            *("--quick", "--precision", "fp32", "--threads", "1", "--out", str(out)),
        ],
        tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["machine"]["cpu"] and "cpu_vector_extensions" in report["machine"]
    (table,) = report["tables"].values()
    variants = table["variants"]
    assert set(variants) == {
        "plain loop",
        "plain loop PReLU",
        "plain loop P-TELU",
        "fixed front",
        "SD-Layer front",
        "fixed front PReLU",
        "fixed front P-TELU",
        "fixed front augment=all",
        "fixed front TTA 8",
    }
    assert variants["plain loop"]["train_vs_plain"] == 1.0
    assert variants["plain loop"]["fit_cells_per_s"] is None
    assert all(row["train_cells_per_s"] > 0 for row in variants.values())
    assert all(row["predict_cells_per_s"] > 0 for row in variants.values())
    assert variants["fixed front"]["fit_vs_plain"] > 0
    assert all(value > 0 for value in table["step_ratios"].values())
    assert "## 32x32 px, fp32" in proc.stdout and "P-TELU / ReLU" in proc.stdout
    md = _run(
        [str(ROOT / "benchmarks" / "speed" / "cost_table.py"), "--markdown", str(out)],
        tmp_path,
        timeout=120,
    )
    assert md.returncode == 0, md.stderr[-3000:]
    assert "| fixed front P-TELU |" in md.stdout
    assert report["machine"]["cpu"] in md.stdout
