"""Run cross-validation folds and grid-search candidates on a Dask cluster.

scikit-learn's :func:`~sklearn.model_selection.cross_validate` and
:class:`~sklearn.model_selection.GridSearchCV` hand their fits to joblib;
joblib's ``"dask"`` backend sends them to the workers of a
:mod:`distributed` cluster. :func:`dask_backend` sets that up with the
habits this library needs:

- every fit is a task that runs ``LeukoNetClassifier.fit`` on a worker, so
  ``device="auto"`` resolves there: a worker that sees a GPU trains on it;
- the image array travels to each worker once (``scatter``) and tasks refer
  to it, instead of a copy of the images being pickled into every task;
- fitted estimators come back to the client by pickle; skorch loads tensors
  saved on a CUDA worker onto the CPU when the client has no CUDA.

See ``docs/scaling-out.md`` for cluster recipes (one GPU per worker).
"""

import contextlib
import importlib
import os
import warnings
from collections.abc import Sequence

__all__ = ["dask_backend", "describe_workers"]


def _import_distributed():
    try:
        return importlib.import_module("distributed")
    except ImportError as exc:
        raise ImportError(
            "dask_backend needs the 'distributed' package; install it with "
            "pip install 'sklearn-leuko[dask]' (or pip install 'dask[distributed]')."
        ) from exc


def _worker_info():
    """What a worker sees: library version, device ``"auto"`` resolves to, threads."""
    import torch

    import sklearn_leuko
    from sklearn_leuko.utils import resolve_device

    return {
        "sklearn_leuko": sklearn_leuko.__version__,
        "torch": torch.__version__,
        "device": resolve_device("auto"),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "torch_threads": torch.get_num_threads(),
    }


def describe_workers(client):
    """Report, per worker, the device a ``device="auto"`` fit would use there.

    Parameters
    ----------
    client : distributed.Client
        A client connected to the cluster.

    Returns
    -------
    info : dict
        ``{worker_address: {"sklearn_leuko": version, "torch": version,
        "device": "cuda" or "cpu", "cuda_visible_devices": str or None,
        "torch_threads": int}}``. A worker that cannot import sklearn_leuko
        maps to the exception it raised.

    Examples
    --------
    >>> from distributed import Client, LocalCluster  # doctest: +SKIP
    >>> client = Client(LocalCluster(n_workers=1, processes=False))  # doctest: +SKIP
    >>> info = describe_workers(client)  # doctest: +SKIP
    >>> [w["device"] for w in info.values()]  # doctest: +SKIP
    ['cpu']
    """
    return client.run(_worker_info, on_error="return")


def _check_workers(info):
    """Refuse workers without sklearn_leuko; warn on a version other than the client's."""
    from . import __version__

    broken = {addr: res for addr, res in info.items() if isinstance(res, BaseException)}
    if broken:
        addr, exc = next(iter(broken.items()))
        raise ValueError(
            f"{len(broken)} Dask worker(s) cannot run sklearn_leuko tasks (e.g. {addr}: "
            f"{type(exc).__name__}: {exc}). Install sklearn-leuko and its dependencies "
            "in the Python environment the workers run in (the same version as the "
            "client), then restart them."
        )
    other = {
        addr: res["sklearn_leuko"]
        for addr, res in info.items()
        if res["sklearn_leuko"] != __version__
    }
    if other:
        warnings.warn(
            f"Dask workers run sklearn-leuko {sorted(set(other.values()))} but the client "
            f"runs {__version__}; fitted estimators that come back may differ or fail to "
            "load. Install the same version everywhere.",
            UserWarning,
            stacklevel=3,
        )


@contextlib.contextmanager
def dask_backend(
    scheduler=None, *, scatter=None, resources=None, wait_for_workers_timeout=10
):
    """Run scikit-learn's joblib work (folds, candidates) on a Dask cluster.

    Inside the ``with`` block, every scikit-learn call that takes ``n_jobs``
    (``cross_validate``, ``GridSearchCV``, ``FeatureFusionClassifier``'s
    out-of-fold fits, ...) sends its tasks to the cluster's workers when
    given ``n_jobs=-1`` (or ``n_jobs=None``). Each network is trained on the
    worker's own device: ``device="auto"`` is resolved inside ``fit``, on
    the worker. ``GridSearchCV``'s final ``refit`` runs in this process.

    Parameters
    ----------
    scheduler : None, str, distributed.Client or cluster, default=None
        Where to run:

        - ``None``: the current default client of this process (the last
          ``distributed.Client`` created); error if there is none.
        - ``str``: a scheduler address such as ``"tcp://10.0.0.5:8786"``; a
          client is connected for the block and closed after it.
        - a ``distributed.Client``: used as is and left open.
        - a cluster object (``LocalCluster``, ``dask_cuda.LocalCUDACluster``,
          anything with a ``scheduler_address``): a client is connected for
          the block and closed after it; the cluster stays up.
    scatter : sequence of array-like or None, default=None
        Objects to send to every worker once, when the block is entered,
        typically ``[X, y]``. A task argument that *is* one of these objects
        (the very same Python object, not an equal copy) becomes a reference
        to the worker's copy. Pass the same ``X`` and ``y`` objects to
        ``cross_validate`` / ``GridSearchCV.fit``. ``None`` entries are
        skipped, so ``scatter=[X, y, groups]`` works without groups. With ``None``, joblib
        still scatters each large array once per ``Parallel`` call (to one
        worker, from which the others fetch it); ``scatter`` places it on
        every worker up front and reuses it across calls.
    resources : dict or None, default=None
        Dask worker resources every task requires, e.g. ``{"GPU": 1}`` for
        workers started with ``--resources GPU=1``, so that a worker with
        several threads still trains one network at a time on its GPU.
    wait_for_workers_timeout : float, default=10
        Seconds joblib waits for a first worker when the cluster has none.

    Yields
    ------
    client : distributed.Client
        The client in use.

    Raises
    ------
    ValueError
        ``scheduler=None`` without a default client, an unusable
        ``scheduler`` or a worker that cannot import sklearn_leuko.
    TypeError
        ``scatter`` is not a list or tuple, or ``resources`` not a dict.

    Examples
    --------
    >>> from distributed import LocalCluster  # doctest: +SKIP
    >>> from sklearn.model_selection import GroupKFold, cross_validate
    >>> from sklearn_leuko import make_stage
    >>> from sklearn_leuko.datasets import make_cells
    >>> from sklearn_leuko import dask_backend
    >>> data = make_cells(n_subjects=8, cells_per_subject=4, image_size=24,
    ...                   random_state=0)
    >>> X, y, g = data.images, data.target, data.groups
    >>> stage = make_stage("1", widths=(4,) * 6, max_epochs=1, verbose=0,
    ...                    random_state=0)
    >>> with LocalCluster(n_workers=2, threads_per_worker=1,
    ...                   dashboard_address=None) as cluster:  # doctest: +SKIP
    ...     with dask_backend(cluster, scatter=[X, y]):
    ...         scores = cross_validate(stage, X, y, groups=g, cv=GroupKFold(2),
    ...                                 params={"net__groups": g}, n_jobs=-1)
    """
    distributed = _import_distributed()
    import joblib

    if scatter is not None and (
        isinstance(scatter, (str, bytes)) or not isinstance(scatter, Sequence)
    ):
        raise TypeError(
            f"scatter must be a list or tuple of the objects to send once, e.g. "
            f"scatter=[X, y]; got {type(scatter).__name__}."
        )
    if resources is not None and not isinstance(resources, dict):
        raise TypeError(
            f"resources must be a dict such as {{'GPU': 1}}, got {type(resources).__name__}."
        )

    own_client = False
    if scheduler is None:
        try:
            client = distributed.get_client()
        except ValueError as exc:
            raise ValueError(
                "scheduler=None uses the current Dask client, but none exists. Pass a "
                "scheduler address (scheduler='tcp://host:8786'), a cluster "
                "(scheduler=LocalCluster(...)) or a distributed.Client."
            ) from exc
    elif isinstance(scheduler, distributed.Client):
        client = scheduler
    elif isinstance(scheduler, str) or hasattr(scheduler, "scheduler_address"):
        try:
            client = distributed.Client(scheduler, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ValueError(
                f"scheduler={scheduler!r}: cannot connect to a Dask scheduler there "
                f"({type(exc).__name__}: {exc}). Start one with `dask scheduler` and "
                "pass its address, e.g. 'tcp://10.0.0.5:8786'."
            ) from exc
        own_client = True
    else:
        raise TypeError(
            "scheduler must be None, a scheduler address string, a distributed.Client "
            f"or a Dask cluster object; got {type(scheduler).__name__}."
        )

    try:
        _check_workers(describe_workers(client))
        backend_params = {
            "client": client,
            "wait_for_workers_timeout": wait_for_workers_timeout,
        }
        scatter = [obj for obj in (scatter or ()) if obj is not None]
        if scatter:
            backend_params["scatter"] = scatter
        if resources:
            backend_params["resources"] = dict(resources)
        with joblib.parallel_config(backend="dask", n_jobs=-1, **backend_params):
            yield client
    finally:
        if own_client:
            client.close()
