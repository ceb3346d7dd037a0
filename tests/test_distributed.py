"""Folds and grid-search candidates on a Dask cluster give the local results.

One LocalCluster (2 single-threaded worker processes) serves the whole
module; the distributed and the local runs are each done once, in module
fixtures, and the tests below check different aspects of them.
"""

import pickle
import warnings

import numpy as np
import pytest
import torch

distributed = pytest.importorskip("distributed")

from distributed.diagnostics.plugin import SchedulerPlugin  # noqa: E402
from sklearn.model_selection import GridSearchCV, GroupKFold, cross_validate  # noqa: E402

from sklearn_leuko import __version__, make_stage  # noqa: E402
from sklearn_leuko._distributed import (  # noqa: E402
    _check_workers,
    dask_backend,
    describe_workers,
)
from sklearn_leuko.datasets import make_cells  # noqa: E402
from sklearn_leuko.metrics import CNMC_SCORING  # noqa: E402

# Log loss moves with every weight, so equal scores mean equal training.
SCORING = {**CNMC_SCORING, "neg_log_loss": "neg_log_loss"}
GRID = {"net__lr": [1e-3, 1e-2]}


class _TaskLog(SchedulerPlugin):
    """Record, for every task the scheduler starts, its dependencies and worker."""

    def __init__(self, scheduler):
        self.scheduler = scheduler
        self.started = []

    def transition(self, key, start, finish, *args, **kwargs):
        if finish != "processing":
            return
        ts = self.scheduler.tasks[key]
        self.started.append(
            {
                "key": str(key),
                "deps": {str(dep.key): dep.nbytes for dep in ts.dependencies},
                "worker": ts.processing_on.address if ts.processing_on else None,
            }
        )


@pytest.fixture(scope="module")
def cells():
    data = make_cells(n_subjects=8, cells_per_subject=4, image_size=24, random_state=0)
    return data.images, data.target, data.groups


def _stage():
    return make_stage(
        "1",
        widths=(4, 4, 4, 4, 4, 4),
        max_epochs=2,
        batch_size=8,
        verbose=0,
        random_state=0,
    )


def _run(X, y, groups, n_jobs):
    cv = cross_validate(
        _stage(),
        X,
        y,
        groups=groups,
        cv=GroupKFold(2),
        params={"net__groups": groups},
        scoring=SCORING,
        return_estimator=True,
        n_jobs=n_jobs,
    )
    search = GridSearchCV(
        _stage(), GRID, cv=GroupKFold(2), scoring=SCORING, refit=False, n_jobs=n_jobs
    )
    search.fit(X, y, groups=groups, net__groups=groups)
    return cv, search.cv_results_


@pytest.fixture(scope="module")
def local_results(cells):
    # Dask worker processes run torch with one thread (the nanny sets
    # OMP_NUM_THREADS=1); the local reference must reduce floats the same way.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run(*cells, n_jobs=1)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def dask_results(cluster, cells):
    X, y, groups = cells
    log = _TaskLog(cluster.scheduler)
    cluster.scheduler.add_plugin(log, name="sklearn-leuko-test-task-log")
    try:
        with dask_backend(cluster, scatter=[X, y, groups]):
            cv, grid = _run(X, y, groups, n_jobs=-1)
    finally:
        cluster.scheduler.remove_plugin(name="sklearn-leuko-test-task-log")
    return cv, grid, log.started


def test_workers_train_on_cpu_with_one_torch_thread(cluster):
    with distributed.Client(cluster, set_as_default=False) as client:
        info = describe_workers(client)
    assert len(info) == 2
    for worker in info.values():
        assert worker["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
        assert worker["torch_threads"] == 1
        assert worker["sklearn_leuko"] == __version__


def test_cross_validate_scores_match_local(local_results, dask_results):
    local_cv, _ = local_results
    dask_cv = dask_results[0]
    for name in SCORING:
        np.testing.assert_array_equal(dask_cv[f"test_{name}"], local_cv[f"test_{name}"])


def test_grid_search_scores_match_local(local_results, dask_results):
    _, local_grid = local_results
    dask_grid = dask_results[1]
    assert dask_grid["params"] == local_grid["params"]
    for name in SCORING:
        for split in range(2):
            key = f"split{split}_test_{name}"
            np.testing.assert_array_equal(dask_grid[key], local_grid[key])


def test_fitted_nets_come_back_and_predict_like_local(
    cells, local_results, dask_results
):
    X = cells[0]
    pairs = zip(
        local_results[0]["estimator"], dask_results[0]["estimator"], strict=True
    )
    for local_est, dask_est in pairs:
        np.testing.assert_array_equal(
            dask_est.predict_proba(X), local_est.predict_proba(X)
        )


def test_tasks_ran_on_workers_and_referenced_the_scattered_images(cells, dask_results):
    X = cells[0]
    started = [t for t in dask_results[2] if "_fit_and_score" in t["key"]]
    # 2 folds of cross_validate + 2 candidates x 2 folds (joblib may batch several).
    assert 2 <= len(started) <= 6
    assert all(t["worker"] is not None for t in started)
    image_keys = {
        key for t in started for key, nbytes in t["deps"].items() if nbytes >= X.nbytes
    }
    # One key for the images, shared by every task of both calls: they were
    # sent to the workers once, not pickled into each task.
    assert len(image_keys) == 1
    assert all(image_keys <= set(t["deps"]) for t in started)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_net_fitted_on_cuda_worker_loads_on_cpu_client(cells, dask_results):
    original = dask_results[0]["estimator"][0]
    expected = original.predict_proba(cells[0])
    pipe = pickle.loads(pickle.dumps(original))
    # What a CUDA worker sends back: a skorch net whose device is "cuda".
    pipe[-1].net_.device = "cuda"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = pickle.loads(pickle.dumps(pipe))
    assert any("cpu" in str(w.message).lower() for w in caught)
    assert str(loaded[-1].net_.device) == "cpu"
    np.testing.assert_array_equal(loaded.predict_proba(cells[0]), expected)


def test_no_default_client_is_refused(monkeypatch):
    def no_client():
        raise ValueError("No global client found")

    # Whatever clients other tests left behind, this one sees none.
    monkeypatch.setattr(distributed, "get_client", no_client)
    with pytest.raises(ValueError, match="scheduler=None"):
        with dask_backend():
            pass


def test_bad_scheduler_and_scatter_types_are_refused(cluster):
    with pytest.raises(TypeError, match="scheduler must be"):
        with dask_backend(8786):
            pass
    with pytest.raises(TypeError, match="scatter must be a list or tuple"):
        with dask_backend(cluster, scatter=np.zeros(3)):
            pass


def test_worker_without_sklearn_leuko_is_refused():
    info = {"tcp://10.0.0.1:1": ModuleNotFoundError("No module named 'sklearn_leuko'")}
    with pytest.raises(ValueError, match="cannot run sklearn_leuko tasks"):
        _check_workers(info)


def test_worker_with_other_version_warns():
    info = {"tcp://10.0.0.1:1": {"sklearn_leuko": "0.0.1"}}
    with pytest.warns(UserWarning, match="0.0.1"):
        _check_workers(info)


def test_cli_cv_on_the_cluster_matches_the_local_run(cluster, tmp_path, capsys):
    from sklearn_leuko._cli import main

    args = [
        "cv",
        "--n-subjects",
        "10",
        "--cells-per-subject",
        "4",
        "--image-size",
        "24",
        "--epochs",
        "1",
        "--folds",
        "2",
        "--stages",
        "1",
        "--test-subjects",
        "2",
        "--widths",
        "4,4,4,4,4,4",
        "--threads",
        "1",
        "-q",
    ]
    assert main([*args, "--output", str(tmp_path / "local")]) == 0
    assert (
        main(
            [
                *args,
                "--output",
                str(tmp_path / "dask"),
                "--scheduler",
                cluster.scheduler_address,
            ]
        )
        == 0
    )
    local = (tmp_path / "local" / "table2.csv").read_text()
    assert local == (tmp_path / "dask" / "table2.csv").read_text()
    capsys.readouterr()
