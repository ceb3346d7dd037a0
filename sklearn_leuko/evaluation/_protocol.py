"""The paper's evaluation protocol: subject-level folds and a held-out test set.

Mourya et al. (2018), sections 3 and 5: the training subjects are split into
four folds "at the subject level, i.e., all cells belonging to the same subject are
placed in the same fold"; a test set of other subjects is kept apart; "models
resulting from best validation set accuracy were used on the test set"; the
hybrids Stage-3 and Stage-3C fuse the features of the *trained* Stage-1 and
Stage-2 (or Stage-2C) networks with one fully connected layer, so they need
no network training of their own.

:func:`run_protocol` does exactly that, with each network trained once per
fold, and returns the raw results (predictions, scores, histories, fitted
models). Tables and figures are made from them by :mod:`sklearn_leuko.report`.
"""

import numbers
import time
import warnings

import numpy as np
import pandas as pd
from sklearn import get_config
from sklearn.base import clone
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.utils import Bunch, check_random_state

from .._registry import DEFAULT_PROTOCOL_STAGES, get_stage, network_checkpoint_dir
from ..metrics import cnmc_metrics, proba_of_cancer
from ..utils import check_groups, check_targets
from ..utils._groups import fit_with_groups
from ._plan import make_plan, stage_template
from ._split import split_test_subjects

__all__ = ["EPOCH_SELECTIONS", "ProtocolResult", "fit_stage", "run_protocol"]

#: Values of ``run_protocol(epoch_selection=...)``.
EPOCH_SELECTIONS = ("inner", "validation_fold")


class ProtocolResult(Bunch):
    """Raw results of :func:`run_protocol` (a :class:`~sklearn.utils.Bunch`).

    Keys (also attributes)
    ----------------------
    stages : list of str
        Table-2 labels of the evaluated stages, in order ("Stage-1", ...).
    stage_names : dict of str -> str
        Label -> canonical stage name.
    cv_results : dict
        Label -> ``cross_validate``-like dict (``fit_time``, ``score_time``,
        ``test_accuracy``, ``test_f1_normal``, ``test_f1_cancer``,
        ``test_f1_weighted``; one value per fold; ``test_`` here means the
        validation fold, as in scikit-learn). A fusion's ``fit_time``
        includes its networks' training time (what fitting it alone would
        cost), although they are trained once per fold and shared.
    test_metrics : dict
        Label -> :func:`~sklearn_leuko.metrics.cnmc_metrics` of the selected
        model on the test subjects (empty without test set).
    test_metrics_per_fold : dict
        Label -> list of those metrics, one per fold's model.
    test_fold : dict
        Label -> fold whose model gave the test predictions (the best
        validation accuracy; ties: the earliest fold).
    predictions : dict
        Label -> DataFrame of cell predictions (``split`` "val"/"test",
        ``fold``, ``index`` into X, ``subject``, ``y_true``, ``y_pred``,
        ``p_all``): out-of-fold validation predictions and the selected
        model's test predictions.
    histories : dict
        Label -> list (one per fold) of the network's per-epoch history
        dicts (single-network stages only).
    estimators : dict
        Label -> list of the fitted models, one per fold (a fusion's networks
        are the very objects of the fused single stages when shared).
    best_stage : str
        Label of the stage with the best mean validation accuracy (ties:
        weighted F1, then the order of ``stages``); chosen without looking
        at the test set.
    folds : list of (ndarray, ndarray)
        Training and validation rows of each fold.
    test_index : ndarray
        Rows of the test subjects.
    test_subjects : list of str
        Their subject IDs, sorted.
    settings : dict
        The arguments of the run (stages, folds, test subjects, network and
        stage parameters, seeds, epoch selection), for the report.
    """


def _check_stages(stages):
    if isinstance(stages, str):
        stages = [stages]
    try:
        names = [get_stage(s).name for s in stages]
    except TypeError as exc:  # not iterable
        raise TypeError(
            f"stages must be a list of stage names such as "
            f"{list(DEFAULT_PROTOCOL_STAGES[:2])}, got {stages!r}."
        ) from exc
    if not names:
        raise ValueError(
            f"stages is empty; pick some of {list(DEFAULT_PROTOCOL_STAGES)}."
        )
    return list(dict.fromkeys(names))


def _check_stage_params(stage_params):
    if stage_params is None:
        return {}
    if not isinstance(stage_params, dict):
        raise TypeError(
            f"stage_params must be a dict of stage name -> dict, got "
            f"{type(stage_params).__name__}."
        )
    return {get_stage(k).name: dict(v) for k, v in stage_params.items()}


def _fit_network(pipe, X, y, groups, validation_data):
    """Fit a single-network pipeline; with ``validation_data`` (the paper's
    epoch choice) the network picks its best epoch on those cells."""
    if validation_data is None:
        return fit_with_groups(pipe, X, y, groups)
    pipe.set_params(net__validation_fraction=None)
    if get_config()["enable_metadata_routing"]:
        pipe[-1].set_fit_request(validation_data=True)
        return pipe.fit(X, y, validation_data=validation_data)
    return pipe.fit(X, y, net__validation_data=validation_data)


def _fuse(stage, fitted_parts, X, y, net_params, stage_params, random_state):
    fusion = stage_template(stage, net_params, stage_params, random_state)
    names = [name for name, _ in fusion.estimators]
    fusion.set_params(estimators=list(zip(names, fitted_parts, strict=True)))
    return fusion.fit(X, y)


def fit_stage(
    stage, X, y, groups=None, *, net_params=None, stage_params=None, random_state=0
):
    """Fit one stage the way :func:`run_protocol` does.

    Single-network stages are fitted with the subject IDs reaching the
    network's inner validation split. Fusion stages train their networks
    once and fuse them with ``cv="prefit"``: the final layer is trained on
    the trained networks' features of the training data (the paper's
    protocol), which is what ``make_stage(...).fit(X, y, groups=groups)``
    does with ``cv="in_sample"``.

    Parameters
    ----------
    stage : str
        A stage name of :func:`~sklearn_leuko.make_stage`.
    X : ndarray of shape (n_samples, H, W, 3), uint8
    y : array-like of shape (n_samples,)
    groups : array-like of shape (n_samples,), default=None
        Subject IDs.
    net_params : dict, default=None
        Parameters of :func:`~sklearn_leuko.make_stage` for every network
        (``max_epochs``, ``widths``, ``checkpoint_dir``, ...).
    stage_params : dict of str -> dict, default=None
        Per-stage overrides, e.g. ``{"vgg11": {"widths": ...}}``.
    random_state : int, RandomState instance or None, default=0
        Used when ``net_params`` has no ``random_state``.

    Returns
    -------
    estimator : Pipeline or FeatureFusionClassifier
        Fitted.

    Examples
    --------
    >>> from sklearn_leuko.datasets import make_cells
    >>> from sklearn_leuko.evaluation import fit_stage
    >>> data = make_cells(n_subjects=6, cells_per_subject=4, image_size=24,
    ...                   random_state=0)
    >>> model = fit_stage("3C", data.images, data.target, data.groups,
    ...                   net_params={"max_epochs": 1, "verbose": 0,
    ...                               "widths": (4, 4, 4, 4, 4, 4)})
    >>> [name for name, _ in model.estimators]
    ['stage1', 'stage2c']
    """
    spec = get_stage(stage)
    net_params = dict(net_params or {})
    stage_params = _check_stage_params(stage_params)
    template = stage_template(spec.name, net_params, stage_params, random_state)
    if not spec.is_fusion:
        return fit_with_groups(template, X, y, groups)
    parts = [
        fit_with_groups(clone(pipe), X, y, groups) for _, pipe in template.estimators
    ]
    return _fuse(spec.name, parts, X, y, net_params, stage_params, random_state)


def _history(pipe):
    net = pipe[-1] if hasattr(pipe, "steps") else pipe
    history = getattr(getattr(net, "net_", None), "history", None)
    return None if history is None else history.to_list()


def _evaluate(estimator, X, y, groups, rows, split, fold):
    start = time.perf_counter()
    proba = estimator.predict_proba(X[rows])
    classes = estimator.classes_
    y_pred = np.asarray(classes)[np.argmax(proba, axis=1)]
    elapsed = time.perf_counter() - start
    frame = pd.DataFrame(
        {
            "split": split,
            "fold": fold,
            "index": rows,
            "subject": groups[rows],
            "y_true": y[rows],
            "y_pred": y_pred,
            "p_all": proba_of_cancer(proba, classes),
        }
    )
    return cnmc_metrics(y[rows], y_pred), frame, elapsed


class _Progress:
    """tqdm bar over the networks and fusions of all folds."""

    def __init__(self, total, enabled):
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=total,
            disable=not enabled,
            unit="step",
            leave=False,
            dynamic_ncols=True,
        )

    def start(self, description):
        self.bar.set_description_str(description)

    def done(self, n=1):
        self.bar.update(n)

    def close(self):
        self.bar.close()


class _Silent:
    def start(self, description):
        pass

    def done(self, n=1):
        pass


def _run_fold(fold, train, val, test, X, y, groups, plan, settings, progress):
    """Train every network once on one fold and score every stage."""
    stages, net_params, stage_params, random_state, epoch_selection = settings
    X_train, y_train, g_train = X[train], y[train], groups[train]
    validation_data = (X[val], y[val]) if epoch_selection == "validation_fold" else None
    fitted, fit_time, histories = [], [], []
    checkpoint_root = net_params.get("checkpoint_dir")
    for name, pipe in plan.networks:
        progress.start(f"fold {fold}: train {name}")
        pipe = clone(pipe)
        if checkpoint_root is not None:
            # One folder per fold and network, so an interrupted protocol
            # resumes every network where it stopped.
            pipe.set_params(
                net__checkpoint_dir=network_checkpoint_dir(checkpoint_root, name, fold)
            )
        start = time.perf_counter()
        fitted.append(_fit_network(pipe, X_train, y_train, g_train, validation_data))
        fit_time.append(time.perf_counter() - start)
        histories.append(_history(fitted[-1]))
        progress.done()
    out = {"fold": fold, "stages": {}}
    for stage in stages:
        used = plan.uses[stage]
        spec = get_stage(stage)
        if spec.is_fusion:
            progress.start(f"fold {fold}: fuse {spec.label}")
            start = time.perf_counter()
            model = _fuse(
                stage,
                [fitted[i] for i in used],
                X_train,
                y_train,
                net_params,
                stage_params,
                random_state,
            )
            # A fusion's cost includes its networks, as if fitted on its own.
            own_time = time.perf_counter() - start + sum(fit_time[i] for i in used)
            history = None
            progress.done()
        else:
            model = fitted[used[0]]
            own_time = fit_time[used[0]]
            history = histories[used[0]]
        val_metrics, val_frame, val_time = _evaluate(
            model, X, y, groups, val, "val", fold
        )
        entry = {
            "model": model,
            "val_metrics": val_metrics,
            "val_frame": val_frame,
            "fit_time": own_time,
            "score_time": val_time,
            "history": history,
        }
        if len(test):
            entry["test_metrics"], entry["test_frame"], _ = _evaluate(
                model, X, y, groups, test, "test", fold
            )
        out["stages"][stage] = entry
    return out


def _pick_test_fold(entries):
    """Fold whose model has the best validation accuracy (ties: earliest)."""
    scores = [e["val_metrics"]["accuracy"] for e in entries]
    return int(np.argmax(scores))


def _check_inputs(X, y, groups, n_splits, epoch_selection):
    X = np.asarray(X) if not hasattr(X, "shape") else X
    y = np.asarray(check_targets(y, len(X)))
    if groups is None:
        raise ValueError(
            "groups is required: pass the subject ID of every cell (the protocol "
            "keeps each subject in one fold, as the paper does)."
        )
    groups = np.asarray(check_groups(groups, len(X))).astype(str)
    if (
        isinstance(n_splits, bool)
        or not isinstance(n_splits, numbers.Integral)
        or n_splits < 2
    ):
        raise ValueError(f"n_splits must be an integer >= 2, got {n_splits!r}.")
    if epoch_selection not in EPOCH_SELECTIONS:
        raise ValueError(
            f"epoch_selection={epoch_selection!r} is not supported; use 'inner' "
            "(best epoch on held-out training subjects, the default) or "
            "'validation_fold' (on the reported validation fold, as the paper did; "
            "optimistic)."
        )
    return X, y, groups


def run_protocol(
    X,
    y,
    groups,
    *,
    stages=DEFAULT_PROTOCOL_STAGES,
    n_splits=4,
    test_subjects=4,
    net_params=None,
    stage_params=None,
    epoch_selection="inner",
    random_state=0,
    progress=True,
    n_jobs=None,
):
    """Evaluate the paper's stages with subject-level folds and a test set.

    The protocol of Mourya et al. (2018, sections 3 to 5):

    1. ``test_subjects`` subjects are held out as the test set (chosen at
       random, stratified by the subjects' class; see
       :func:`split_test_subjects`);
    2. the other subjects are split into ``n_splits`` folds by
       :class:`~sklearn.model_selection.StratifiedGroupKFold` (every
       subject in one fold);
    3. in each fold, every network the requested stages need (Stage-1,
       Stage-2, Stage-2C, VGG-11) is trained **once** on the training
       subjects; Stage-3 and Stage-3C reuse that fold's trained networks
       through ``FeatureFusionClassifier(cv="prefit")`` and train only their
       final layer, on the training subjects' features, as in the paper;
    4. every stage is scored on the fold's validation subjects (the "ValK"
       columns of Table 2);
    5. the test subjects: for each stage the model of the fold with the
       best validation accuracy ("Models resulting from best validation set
       accuracy were used on the test set"). No model is refitted on all
       the data, so the test costs no training; the test metrics of every
       fold's model are kept too (``test_metrics_per_fold``).

    Parameters
    ----------
    X : ndarray of shape (n_samples, H, W, 3), uint8
        Cell images.
    y : array-like of shape (n_samples,)
        Labels ``"all"`` / ``"hem"``.
    groups : array-like of shape (n_samples,)
        Subject IDs (required: the protocol is subject-level).
    stages : sequence of str, default=("1", "2", "2C", "3", "3C")
        Stages to evaluate (names of :func:`~sklearn_leuko.make_stage`).
        Fusion stages train the networks they need even when their single
        stages are not requested.
    n_splits : int, default=4
        Number of validation folds (the paper: 4).
    test_subjects : int, float, array-like of str or None, default=4
        Held-out test subjects; see :func:`split_test_subjects`. ``None``
        or ``0``: no test set.
    net_params : dict, default=None
        :func:`~sklearn_leuko.make_stage` parameters of every network, e.g.
        ``{"max_epochs": 5, "widths": (8, 16, 16, 32, 32, 32),
        "augment": "all", "verbose": 0}``. ``verbose`` defaults to 0 here.
    stage_params : dict of str -> dict, default=None
        Per-stage overrides, e.g. ``{"2C": {"lr": 3e-4}}`` or
        ``{"3C": {"final_estimator": LogisticRegression(C=0.1)}}``. For a
        fusion stage they apply to the fusion and its networks; when its
        networks end up with the parameters of a requested single stage,
        that stage's trained network is reused, otherwise they are trained
        separately.
    epoch_selection : {"inner", "validation_fold"}, default="inner"
        Which cells choose each network's best epoch. ``"inner"``: subjects
        held out from the fold's training subjects (the network's
        ``validation_fraction``), so the validation fold stays unseen until
        it is scored. ``"validation_fold"``: the validation fold itself, as
        the paper did ("models resulting from best validation set accuracy");
        its scores are then optimistic. Compare the two to see how much the
        paper's choice inflates its validation columns.
    random_state : int, RandomState instance or None, default=0
        Seeds the test subjects, the folds and (unless ``net_params`` sets
        it) every network.
    progress : bool, default=True
        Show a progress bar (tqdm, on stderr) over folds and networks.
    n_jobs : int, default=None
        Run folds in parallel with joblib (``None``: one at a time, which is
        best on a single GPU or a small CPU, since torch already uses all
        cores).

    Returns
    -------
    result : ProtocolResult
        The raw results: per-fold scores and predictions, histories, the
        fitted models and the run's settings (see :class:`ProtocolResult`).
        :func:`sklearn_leuko.report.protocol_tables` turns them into Table 2
        and the subject-level tables.

    Examples
    --------
    >>> from sklearn_leuko.datasets import make_cells
    >>> from sklearn_leuko.evaluation import run_protocol
    >>> from sklearn_leuko.report import protocol_tables
    >>> data = make_cells(n_subjects=10, cells_per_subject=6, image_size=24,
    ...                   random_state=0)
    >>> result = run_protocol(
    ...     data.images, data.target, data.groups, stages=["1", "3C"],
    ...     n_splits=2, test_subjects=2, progress=False,
    ...     net_params={"max_epochs": 1, "widths": (4, 4, 4, 4, 4, 4)})
    >>> result.stages
    ['Stage-1', 'Stage-3C']
    >>> sorted(result.predictions["Stage-1"]["split"].unique())
    ['test', 'val']
    >>> tables = protocol_tables(result)
    >>> [c for c in tables.table2.columns.get_level_values(0).unique()]
    ['Val0', 'Val1', 'Mean', 'Test']
    """
    stages = _check_stages(stages)
    X, y, groups = _check_inputs(X, y, groups, n_splits, epoch_selection)
    net_params = {"verbose": 0, **dict(net_params or {})}
    stage_params = _check_stage_params(stage_params)
    rng = check_random_state(random_state)
    seed = int(rng.randint(np.iinfo(np.int32).max))
    net_seed = net_params.get("random_state", seed)

    test_mask = split_test_subjects(y, groups, test_subjects, random_state=rng)
    test_index = np.flatnonzero(test_mask)
    rest = np.flatnonzero(~test_mask)
    n_rest_subjects = len(np.unique(groups[rest]))
    if n_rest_subjects < n_splits:
        raise ValueError(
            f"n_splits={n_splits} folds need at least {n_splits} subjects outside "
            f"the test set, but there are {n_rest_subjects}; use fewer folds, fewer "
            "test subjects or more subjects."
        )
    splitter_seed = int(rng.randint(2**31 - 1))
    splitter = StratifiedGroupKFold(
        n_splits=n_splits, shuffle=True, random_state=splitter_seed
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*least populated class.*")
        folds = [
            (rest[tr], rest[va])
            for tr, va in splitter.split(np.zeros(len(rest)), y[rest], groups[rest])
        ]

    plan = make_plan(stages, net_params, stage_params, net_seed)
    settings = (stages, net_params, stage_params, net_seed, epoch_selection)
    n_fusions = sum(get_stage(s).is_fusion for s in stages)
    steps_per_fold = len(plan.networks) + n_fusions

    progress_bar = _Progress(n_splits * steps_per_fold, progress)
    try:
        if n_jobs is None or n_jobs == 1:
            fold_results = [
                _run_fold(
                    k, tr, va, test_index, X, y, groups, plan, settings, progress_bar
                )
                for k, (tr, va) in enumerate(folds)
            ]
        else:
            from sklearn.utils.parallel import Parallel, delayed

            progress_bar.start(f"{n_splits} folds, {n_jobs} jobs")
            fold_results = []
            jobs = (
                delayed(_run_fold)(
                    k, tr, va, test_index, X, y, groups, plan, settings, _Silent()
                )
                for k, (tr, va) in enumerate(folds)
            )
            for res in Parallel(n_jobs=n_jobs, return_as="generator")(jobs):
                fold_results.append(res)
                progress_bar.done(steps_per_fold)
    finally:
        progress_bar.close()
    result = _collect(stages, fold_results, folds, test_index)
    result.test_subjects = sorted(np.unique(groups[test_index]).tolist())
    result.settings = {
        "stages": list(stages),
        "n_splits": n_splits,
        "test_subjects": test_subjects,
        "net_params": net_params,
        "stage_params": stage_params,
        "epoch_selection": epoch_selection,
        "random_state": random_state,
        "network_random_state": net_seed,
        "fold_random_state": splitter_seed,
    }
    return result


def _collect(stages, fold_results, folds, test_index):
    has_test = len(test_index) > 0
    labels = [get_stage(s).label for s in stages]
    result = ProtocolResult(
        stages=labels,
        stage_names=dict(zip(labels, stages, strict=True)),
        cv_results={},
        test_metrics={},
        test_metrics_per_fold={},
        test_fold={},
        predictions={},
        histories={},
        estimators={},
        folds=folds,
        test_index=test_index,
    )
    for stage, label in zip(stages, labels, strict=True):
        entries = [res["stages"][stage] for res in fold_results]
        cv = {
            "fit_time": np.array([e["fit_time"] for e in entries]),
            "score_time": np.array([e["score_time"] for e in entries]),
        }
        for key in entries[0]["val_metrics"]:
            cv[f"test_{key}"] = np.array([e["val_metrics"][key] for e in entries])
        result.cv_results[label] = cv
        result.estimators[label] = [e["model"] for e in entries]
        if entries[0]["history"] is not None:
            result.histories[label] = [e["history"] for e in entries]
        frames = [e["val_frame"] for e in entries]
        best = _pick_test_fold(entries)
        if has_test:
            result.test_fold[label] = best
            result.test_metrics[label] = entries[best]["test_metrics"]
            result.test_metrics_per_fold[label] = [e["test_metrics"] for e in entries]
            frames.append(entries[best]["test_frame"])
        result.predictions[label] = pd.concat(frames, ignore_index=True)

    def rank(label):
        # Chosen on the validation folds, never on the test set.
        cv = result.cv_results[label]
        return (
            cv["test_accuracy"].mean(),
            cv["test_f1_weighted"].mean(),
            -labels.index(label),
        )

    result.best_stage = max(labels, key=rank)
    return result
