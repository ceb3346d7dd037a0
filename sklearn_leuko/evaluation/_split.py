"""The held-out test subjects of the paper's protocol."""

import numbers

import numpy as np
import pandas as pd
from sklearn.utils import check_random_state

__all__ = ["split_test_subjects"]


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

    Examples
    --------
    >>> from sklearn_leuko.datasets import make_cells
    >>> from sklearn_leuko.evaluation import split_test_subjects
    >>> data = make_cells(n_subjects=12, cells_per_subject=2, image_size=16,
    ...                   random_state=0)
    >>> mask = split_test_subjects(data.target, data.groups, test_subjects=4,
    ...                            random_state=0)
    >>> sorted(set(data.target[mask].tolist()))
    ['all', 'hem']
    >>> len(set(data.groups[mask]))
    4
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
