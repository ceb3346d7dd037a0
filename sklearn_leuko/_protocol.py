"""The paper's evaluation protocol: subject-level folds, a held-out test set, Table 2.

Mourya et al. (2018), section 4: the training subjects are split into four
folds "at the subject level, i.e., all cells belonging to the same subject are
placed in the same fold"; a test set of other subjects is kept apart; "models
resulting from best validation set accuracy were used on the test set"; the
hybrids Stage-3 and Stage-3C fuse the features of the *trained* Stage-1 and
Stage-2 (or Stage-2C) networks with one fully connected layer, so they need
no network training of their own.

:func:`run_protocol` does exactly that, with each network trained once per
fold, and returns everything the report needs (Table 2, subject-level
diagnosis, predictions, training histories).
"""

import numbers
import os
import time
import warnings

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.utils import Bunch, check_random_state

from ._stages import STAGES, _canonical, make_stage
from .utils import check_groups, check_targets
from .utils._groups import fit_with_groups

__all__ = ["fit_stage", "run_protocol", "stage_label", "split_test_subjects"]

# Networks that fusion stages fuse: stage -> ((name, single stage), ...).
_FUSION_PARTS = {
    "3": (("stage1", "1"), ("stage2", "2")),
    "3C": (("stage1", "1"), ("stage2c", "2C")),
}
_LABELS = {s: f"Stage-{s}" for s in STAGES}
_LABELS["vgg11"] = "VGG-11"


def stage_label(stage):
    """Row label of a stage in Table 2 ("Stage-1", ..., "Stage-3C", "VGG-11").

    Parameters
    ----------
    stage : str
        A stage name accepted by :func:`~sklearn_leuko.make_stage`.

    Returns
    -------
    label : str

    Examples
    --------
    >>> from sklearn_leuko._protocol import stage_label
    >>> stage_label("3c")
    'Stage-3C'
    """
    return _LABELS[_canonical(stage)]


# --------------------------------------------------------------------- data
def _subject_labels(y, groups):
    """One label per subject (subjects are single-class in C-NMC)."""
    frame = pd.DataFrame({"g": groups, "y": y})
    majority = frame.groupby("g", sort=True)["y"].agg(
        lambda s: s.value_counts().index[0]
    )
    return majority.index.to_numpy(), majority.to_numpy()


def split_test_subjects(y, groups, test_subjects=4, random_state=None):
    """Choose the held-out test subjects, stratified by the subjects' class.

    Every class keeps at least one subject outside the test set.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Cell labels.
    groups : array-like of shape (n_samples,)
        Subject IDs.
    test_subjects : int, float, array-like of str or None, default=4
        - int ``k``: hold out ``k`` subjects, the same number of each class
          (an odd one from the larger class), as the paper's test set of 2
          leukemic and 2 healthy subjects;
        - float in (0, 1): that fraction of the subjects (rounded, at
          least 1), each class in proportion to its share of the subjects;
        - array-like: these subject IDs;
        - ``None`` or ``0``: no test set.
    random_state : int, RandomState instance or None, default=None
        Seeds which subjects are drawn.

    Returns
    -------
    test_mask : ndarray of bool, shape (n_samples,)
        True for the cells of the test subjects.
    """
    y = np.asarray(y)
    groups = np.asarray(groups)
    subjects, labels = _subject_labels(y, groups)
    n_subjects = len(subjects)
    if test_subjects is None or (
        isinstance(test_subjects, numbers.Number)
        and not isinstance(test_subjects, bool)
        and test_subjects == 0
    ):
        return np.zeros(len(y), dtype=bool)
    if isinstance(test_subjects, str) or (
        not isinstance(test_subjects, numbers.Number)
        and hasattr(test_subjects, "__iter__")
    ):
        chosen = np.asarray(
            [test_subjects] if isinstance(test_subjects, str) else list(test_subjects)
        ).astype(str)
        unknown = sorted(set(chosen.tolist()) - set(subjects.astype(str).tolist()))
        if unknown:
            raise ValueError(
                f"test_subjects names subjects {unknown[:5]} that are not in groups; "
                f"pass IDs from groups, e.g. {subjects[:3].tolist()}."
            )
        mask = np.isin(groups.astype(str), chosen)
        if mask.all():
            raise ValueError(
                "test_subjects holds every subject: nothing is left for the "
                "validation folds."
            )
        return mask
    if isinstance(test_subjects, bool) or not isinstance(test_subjects, numbers.Real):
        raise TypeError(
            f"test_subjects must be an int, a float in (0, 1), a list of subject IDs "
            f"or None, got {type(test_subjects).__name__}."
        )
    if isinstance(test_subjects, numbers.Integral):
        n_test = int(test_subjects)
    elif 0 < test_subjects < 1:
        n_test = max(1, int(round(test_subjects * n_subjects)))
    else:
        raise ValueError(
            f"test_subjects={test_subjects!r}: a float must lie in (0, 1) (a "
            "fraction of the subjects); use an int for a number of subjects."
        )
    if n_test < 0 or n_test >= n_subjects:
        raise ValueError(
            f"test_subjects={test_subjects!r} but there are {n_subjects} subjects; "
            f"hold out between 0 and {n_subjects - 1}."
        )
    rng = check_random_state(random_state)
    classes, counts = np.unique(labels, return_counts=True)
    if isinstance(test_subjects, numbers.Integral):
        # The paper: as many subjects of each class (2 leukemic, 2 healthy).
        quota = np.full(len(classes), n_test / len(classes))
    else:
        quota = n_test * counts / counts.sum()
    take = _allocate(n_test, quota, counts)
    chosen = []
    for cls, k in zip(classes, take, strict=True):
        pool = subjects[labels == cls]
        chosen.extend(rng.choice(pool, size=int(k), replace=False).tolist())
    return np.isin(groups, chosen)


def _allocate(n_test, quota, counts):
    """Integer subjects per class near ``quota``, summing to ``n_test``.

    Largest remainders first; every class gets at least one test subject when
    ``n_test`` allows and keeps at least one subject for the folds.
    """
    take = np.floor(quota).astype(int)
    order = np.lexsort((-counts, -(quota - take)))
    for i in order[: n_test - take.sum()]:
        take[i] += 1
    if n_test >= len(counts):
        for i in np.flatnonzero(take == 0):
            take[np.argmax(take)] -= 1
            take[i] = 1
    take = np.minimum(take, counts - 1)
    while take.sum() < n_test and np.any(take < counts - 1):
        spare = counts - 1 - take
        take[np.argmax(spare)] += 1
    return take


# ------------------------------------------------------------------- fitting
def _check_stages(stages):
    if isinstance(stages, str):
        stages = [stages]
    try:
        names = [_canonical(s) for s in stages]
    except TypeError as exc:  # not iterable
        raise TypeError(
            f"stages must be a list of stage names such as ['1', '3C'], got {stages!r}."
        ) from exc
    if not names:
        raise ValueError(f"stages is empty; pick some of {list(STAGES)}.")
    return list(dict.fromkeys(names))


def _network_stages(stages):
    """Single-network stages to train, in training order."""
    needed = []
    for stage in stages:
        parts = (
            [s for _, s in _FUSION_PARTS[stage]] if stage in _FUSION_PARTS else [stage]
        )
        for part in parts:
            if part not in needed:
                needed.append(part)
    return needed


def _build(stage, net_params, stage_params, random_state):
    params = {**net_params, **stage_params.get(stage, {})}
    params.setdefault("random_state", random_state)
    return make_stage(stage, **params)


def _fusion_template(stage, net_params, stage_params, random_state):
    fusion = _build(stage, net_params, stage_params, random_state)
    fusion.set_params(cv="prefit")
    return fusion


def _part_key(pipe):
    """Identity of a single-network pipeline: equal keys train the same net."""
    params = pipe.get_params(deep=True)
    return repr(
        sorted(
            (k, repr(v))
            for k, v in params.items()
            if "__" in k
            and not k.endswith(("checkpoint_dir", "verbose", "progress_bar"))
        )
    )


def _plan(stages, net_params, stage_params, random_state):
    """Unfitted networks to train once per fold and how stages use them.

    Returns ``(networks, uses)``: ``networks`` maps a key to ``(name,
    unfitted Pipeline)``; ``uses`` maps each requested stage to the keys of
    its networks (one for single stages, two for fusions). A fusion whose
    Stage-1 / Stage-2 networks have the same parameters as a requested
    single stage shares that stage's trained network.
    """
    networks, uses = {}, {}

    def add(pipe):
        key = _part_key(pipe)
        if key not in networks:
            name = _net_name(pipe)
            taken = {n for n, _ in networks.values()}
            base, i = name, 2
            while name in taken:
                name, i = f"{base}-{i}", i + 1
            networks[key] = (name, pipe)
        return key

    for stage in _network_stages(stages):
        key = add(_build(stage, net_params, stage_params, random_state))
        if stage in stages:
            uses[stage] = [key]
    for stage in stages:
        if stage in _FUSION_PARTS:
            template = _fusion_template(stage, net_params, stage_params, random_state)
            uses[stage] = [add(pipe) for _, pipe in template.estimators]
    return networks, uses


def _fuse(stage, fitted_parts, X, y, net_params, stage_params, random_state):
    fusion = _fusion_template(stage, net_params, stage_params, random_state)
    names = [name for name, _ in fusion.estimators]
    fusion.set_params(estimators=list(zip(names, fitted_parts, strict=True)))
    return fusion.fit(X, y)


def fit_stage(
    stage, X, y, groups=None, *, net_params=None, stage_params=None, random_state=0
):
    """Fit one stage the way :func:`run_protocol` does.

    Single-network stages are fitted with the subject IDs reaching the
    network's inner validation split. Fusion stages ("3", "3C") train their
    two networks once and fuse them with ``cv="prefit"``: the final layer is
    trained on the trained networks' features of the training data (the
    paper's protocol), which is exactly ``make_stage("3C").fit(X, y,
    groups=groups)`` (``cv="in_sample"``).

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
        Per-stage overrides, e.g. ``{"3C": {"final_estimator": ...}}``.
    random_state : int, RandomState instance or None, default=0
        Used when ``net_params`` has no ``random_state``.

    Returns
    -------
    estimator : Pipeline or FeatureFusionClassifier
        Fitted.
    """
    stage = _canonical(stage)
    net_params = dict(net_params or {})
    stage_params = {_canonical(k): dict(v) for k, v in (stage_params or {}).items()}
    if stage not in _FUSION_PARTS:
        pipe = _build(stage, net_params, stage_params, random_state)
        return fit_with_groups(pipe, X, y, groups)
    template = _fusion_template(stage, net_params, stage_params, random_state)
    parts = [
        fit_with_groups(clone(pipe), X, y, groups) for _, pipe in template.estimators
    ]
    return _fuse(stage, parts, X, y, net_params, stage_params, random_state)


def _history(pipe):
    net = pipe[-1] if hasattr(pipe, "steps") else pipe
    history = getattr(getattr(net, "net_", None), "history", None)
    return None if history is None else history.to_list()


def _p_all(proba, classes):
    classes = [str(c) for c in classes]
    return np.asarray(proba, dtype=np.float64)[:, classes.index("all")]


def _evaluate(estimator, X, y, groups, rows, split, fold):
    from .metrics import cnmc_metrics

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
            "p_all": _p_all(proba, classes),
        }
    )
    return cnmc_metrics(y[rows], y_pred), frame, elapsed


def _net_name(pipe):
    """Short name of a single-network pipeline built by make_stage."""
    net = pipe[-1]
    if net.architecture == "vgg11":
        return "vgg11"
    stage = {"od": "1", "log_dct": "2", "od+log_dct": "2c"}.get(
        net.preprocessing, "net"
    )
    return f"stage{stage}"


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
    networks, uses = plan
    stages, net_params, stage_params, random_state = settings
    X_train, y_train, g_train = X[train], y[train], groups[train]
    fitted, fit_time, histories = {}, {}, {}
    checkpoint_root = net_params.get("checkpoint_dir")
    for key, (name, pipe) in networks.items():
        progress.start(f"fold {fold}: train {name}")
        pipe = clone(pipe)
        if checkpoint_root is not None:
            # One folder per fold and network, so an interrupted protocol
            # resumes every network where it stopped.
            pipe.set_params(
                net__checkpoint_dir=os.path.join(checkpoint_root, f"fold{fold}", name)
            )
        start = time.perf_counter()
        fitted[key] = fit_with_groups(pipe, X_train, y_train, g_train)
        fit_time[key] = time.perf_counter() - start
        histories[key] = _history(fitted[key])
        progress.done()
    out = {"fold": fold, "stages": {}}
    for stage in stages:
        keys = uses[stage]
        if stage in _FUSION_PARTS:
            progress.start(f"fold {fold}: fuse {stage_label(stage)}")
            start = time.perf_counter()
            model = _fuse(
                stage,
                [fitted[k] for k in keys],
                X_train,
                y_train,
                net_params,
                stage_params,
                random_state,
            )
            # A fusion's cost includes its networks, as if fitted on its own.
            own_time = time.perf_counter() - start + sum(fit_time[k] for k in keys)
            history = None
            progress.done()
        else:
            model = fitted[keys[0]]
            own_time = fit_time[keys[0]]
            history = histories[keys[0]]
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


# ------------------------------------------------------------------ protocol
def run_protocol(
    X,
    y,
    groups,
    *,
    stages=("1", "2", "2C", "3", "3C"),
    n_splits=4,
    test_subjects=4,
    net_params=None,
    stage_params=None,
    random_state=0,
    progress=True,
    n_jobs=None,
):
    """Evaluate the paper's stages with subject-level folds and a test set.

    The protocol of Mourya et al. (2018, section 4):

    1. ``test_subjects`` subjects are held out as the test set (chosen at
       random, stratified by the subjects' class; see
       :func:`split_test_subjects`);
    2. the other subjects are split into ``n_splits`` folds by
       :class:`~sklearn.model_selection.StratifiedGroupKFold` (every
       subject in one fold);
    3. in each fold, every network the requested stages need (Stage-1,
       Stage-2, Stage-2C, VGG-11) is trained **once** on the training
       subjects, with the subject IDs reaching its inner validation split
       (best-epoch choice by subject, see
       :class:`~sklearn_leuko.LeukoNetClassifier`); Stage-3 and Stage-3C
       reuse that fold's trained networks through
       ``FeatureFusionClassifier(cv="prefit")`` and train only their final
       layer, on the training subjects' features, as in the paper;
    4. every stage is scored on the fold's validation subjects (the "ValK"
       columns of Table 2);
    5. the **Test** column: for each stage the model of the fold with the
       best validation accuracy ("Models resulting from best validation set
       accuracy were used on the test set"). No model is refitted on all
       the data, so the test column costs no training; the test metrics of
       every fold's model are kept too (``test_metrics_per_fold``).

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
        or ``0``: no test set, no "Test" column.
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
    result : :class:`~sklearn.utils.Bunch`
        table2 : pandas.DataFrame
            :func:`sklearn_leuko.report.table2` of the stages ("Val0".., "Mean",
            "Test"; Acc, F1-N, F1-C and weighted F1 in percent).
        cv_results : dict
            Stage label -> ``cross_validate``-like dict (``fit_time``,
            ``score_time``, ``test_accuracy``, ``test_f1_normal``,
            ``test_f1_cancer``, ``test_f1_weighted``; one value per fold;
            ``test_`` here means the validation fold, as in scikit-learn).
            A fusion's ``fit_time`` includes its two networks' training time
            (what fitting it alone would cost), although they are trained
            once per fold and shared.
        test_metrics : dict
            Stage label -> :func:`~sklearn_leuko.metrics.cnmc_metrics` of the
            selected model on the test subjects (empty without test set).
        test_metrics_per_fold : dict
            Stage label -> list of those metrics, one per fold's model.
        test_fold : dict
            Stage label -> fold whose model gave the Test column.
        subject_table : pandas.DataFrame
            Subject-level diagnosis per stage (mean-probability rule): on
            the validation subjects (pooled over the folds, every non-test
            subject once) and on the test subjects.
        subjects : dict
            Stage label -> :func:`~sklearn_leuko.metrics.subject_predictions`
            table, validation and test subjects (column ``split``).
        subject_accuracy : dict
            Stage label -> ``{"val": float, "test": float}`` (NaN without test).
        misclassified : dict
            Stage label -> :func:`~sklearn_leuko.metrics.misclassified_subjects`
            (at least half of the subject's cells wrong), with ``split``.
        predictions : dict
            Stage label -> DataFrame of cell predictions (``split``,
            ``fold``, ``index`` into X, ``subject``, ``y_true``, ``y_pred``,
            ``p_all``): out-of-fold validation predictions and the selected
            model's test predictions.
        histories : dict
            Stage label -> list (one per fold) of the network's per-epoch
            history dicts (single-network stages only).
        estimators : dict
            Stage label -> list of the fitted models, one per fold.
        best_stage : str
            Label of the stage with the best mean validation accuracy (ties:
            weighted F1, then the order of ``stages``); chosen without looking
            at the test set.
        folds : list of (ndarray, ndarray)
            Training and validation rows of each fold.
        test_index : ndarray
            Rows of the test subjects.
        stages : list of str
            The stage labels, in order.

    Examples
    --------
    >>> from sklearn_leuko.datasets import make_cells
    >>> from sklearn_leuko._protocol import run_protocol
    >>> data = make_cells(n_subjects=10, cells_per_subject=6, image_size=24,
    ...                   random_state=0)
    >>> result = run_protocol(
    ...     data.images, data.target, data.groups, stages=["1", "3C"],
    ...     n_splits=2, test_subjects=2, progress=False,
    ...     net_params={"max_epochs": 1, "widths": (4, 4, 4, 4, 4, 4)})
    >>> result.table2.index.tolist()
    ['Stage-1', 'Stage-3C']
    >>> [c for c in result.table2.columns.get_level_values(0).unique()]
    ['Val0', 'Val1', 'Mean', 'Test']
    """
    from .report import subject_table, table2

    stages = _check_stages(stages)
    X = np.asarray(X) if not hasattr(X, "shape") else X
    n = len(X)
    y = np.asarray(check_targets(y, n))
    if groups is None:
        raise ValueError(
            "groups is required: pass the subject ID of every cell (the protocol "
            "keeps each subject in one fold, as the paper does)."
        )
    groups = np.asarray(check_groups(groups, n)).astype(str)
    if (
        isinstance(n_splits, bool)
        or not isinstance(n_splits, numbers.Integral)
        or n_splits < 2
    ):
        raise ValueError(f"n_splits must be an integer >= 2, got {n_splits!r}.")
    net_params = {"verbose": 0, **dict(net_params or {})}
    if stage_params is None:
        stage_params = {}
    if not isinstance(stage_params, dict):
        raise TypeError(
            f"stage_params must be a dict of stage name -> dict, got "
            f"{type(stage_params).__name__}."
        )
    stage_params = {_canonical(k): dict(v) for k, v in stage_params.items()}
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
    splitter = StratifiedGroupKFold(
        n_splits=n_splits, shuffle=True, random_state=int(rng.randint(2**31 - 1))
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*least populated class.*")
        folds = [
            (rest[tr], rest[va])
            for tr, va in splitter.split(np.zeros(len(rest)), y[rest], groups[rest])
        ]

    plan = _plan(stages, net_params, stage_params, net_seed)
    settings = (stages, net_params, stage_params, net_seed)
    n_fusions = sum(s in _FUSION_PARTS for s in stages)
    steps_per_fold = len(plan[0]) + n_fusions

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
    return _collect(stages, fold_results, folds, test_index, table2, subject_table)


def _collect(stages, fold_results, folds, test_index, table2, subject_table):
    from .metrics import misclassified_subjects, subject_predictions

    has_test = len(test_index) > 0
    labels = [stage_label(s) for s in stages]
    cv_results, test_metrics, per_fold_test, test_fold = {}, {}, {}, {}
    predictions, histories, estimators = {}, {}, {}
    subjects, subject_acc, misclassified = {}, {}, {}
    val_tables, test_tables = {}, {}
    for stage, label in zip(stages, labels, strict=True):
        entries = [res["stages"][stage] for res in fold_results]
        cv = {
            "fit_time": np.array([e["fit_time"] for e in entries]),
            "score_time": np.array([e["score_time"] for e in entries]),
        }
        for key in entries[0]["val_metrics"]:
            cv[f"test_{key}"] = np.array([e["val_metrics"][key] for e in entries])
        cv_results[label] = cv
        estimators[label] = [e["model"] for e in entries]
        if entries[0]["history"] is not None:
            histories[label] = [e["history"] for e in entries]
        frames = [e["val_frame"] for e in entries]
        best = _pick_test_fold(entries)
        if has_test:
            test_fold[label] = best
            test_metrics[label] = entries[best]["test_metrics"]
            per_fold_test[label] = [e["test_metrics"] for e in entries]
            frames.append(entries[best]["test_frame"])
        cells = pd.concat(frames, ignore_index=True)
        predictions[label] = cells

        tables = []
        for split in ("val", "test") if has_test else ("val",):
            part = cells[cells["split"] == split]
            table = subject_predictions(
                part["y_true"].to_numpy(),
                part["y_pred"].to_numpy(),
                groups=part["subject"].to_numpy(),
                proba=part["p_all"].to_numpy(),
                method="mean_proba",
            )
            if split == "val":
                fold_of = part.groupby("subject")["fold"].first()
                table.insert(1, "fold", table["subject"].map(fold_of).to_numpy())
                val_tables[label] = table
            else:
                table.insert(1, "fold", best)
                test_tables[label] = table
            table.insert(0, "split", split)
            tables.append(table)
        subjects[label] = pd.concat(tables, ignore_index=True)
        subject_acc[label] = {
            "val": float(val_tables[label]["correct"].mean()),
            "test": float(test_tables[label]["correct"].mean()) if has_test else np.nan,
        }
        wrong = []
        for split in ("val", "test") if has_test else ("val",):
            part = cells[cells["split"] == split]
            bad = misclassified_subjects(
                part["y_true"].to_numpy(),
                part["y_pred"].to_numpy(),
                groups=part["subject"].to_numpy(),
                proba=part["p_all"].to_numpy(),
            )
            bad.insert(0, "split", split)
            wrong.append(bad)
        misclassified[label] = pd.concat(wrong, ignore_index=True)

    table = table2(
        cv_results,
        test=test_metrics if has_test else None,
        metrics=("Acc", "F1-N", "F1-C", "F1-W"),
    )
    subj = subject_table(val_tables)
    subj.columns = pd.MultiIndex.from_product([["Validation subjects"], subj.columns])
    if has_test:
        subj_test = subject_table(test_tables)
        subj_test.columns = pd.MultiIndex.from_product(
            [["Test subjects"], subj_test.columns]
        )
        subj = pd.concat([subj, subj_test], axis=1)

    def rank(label):
        # Chosen on the validation folds, never on the test set.
        cv = cv_results[label]
        return (
            cv["test_accuracy"].mean(),
            cv["test_f1_weighted"].mean(),
            -labels.index(label),
        )

    best_stage = max(labels, key=rank)
    return Bunch(
        table2=table,
        cv_results=cv_results,
        test_metrics=test_metrics,
        test_metrics_per_fold=per_fold_test,
        test_fold=test_fold,
        subject_table=subj,
        subjects=subjects,
        subject_accuracy=subject_acc,
        misclassified=misclassified,
        predictions=predictions,
        histories=histories,
        estimators=estimators,
        best_stage=best_stage,
        folds=folds,
        test_index=test_index,
        stages=labels,
    )
