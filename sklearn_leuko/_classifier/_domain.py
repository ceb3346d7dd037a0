"""Out-of-domain flag: how unlike the training cells an input is.

A model trained on C-NMC answers "all" or "hem" for any image, a neutrophil
from another laboratory included, and with full confidence. The summary
kept here lets every fitted classifier say so: a class-conditional Gaussian
of the network's penultimate features with one shared covariance (the
Mahalanobis detector of Lee et al. 2018), in the leading principal
subspace of the training features, plus an isotropic Gaussian of what is
left outside it (probabilistic PCA, Tipping and Bishop 1999), so that a
feature direction never seen in training counts too.

Features alone miss gross changes of the input: a network trained on
segmented cells on black maps a whole smear crop on a light background to
features near its training cells' (0% of PBC and BCCD crops were flagged).
So a second term scores the input itself: a diagonal Gaussian of the share
of background (pixels zero in every channel) and the mean of each channel
over the cell. It is diagonal on purpose: synthetic cells vary their three
colour channels together more tightly than real ones, and a full
covariance flagged 93% of the real C-NMC cells (diagonal: 1%, all PBC and
BCCD crops flagged either way; ``benchmarks/data/own_microscope.py``).

Each term is normalised by its 99th percentile on held-out training cells
and the score is the larger of the two: an input with a score above 1 is
out of domain (about 1-2% of held-out training cells are).
"""

import numpy as np
from sklearn.covariance import ledoit_wolf
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

__all__ = [
    "DomainMixin",
    "check_domain_summary",
    "domain_scores",
    "fit_domain_summary",
    "input_statistics",
    "model_domain_score",
]

#: Cells whose features build the summary / set the threshold (bounds the
#: extra forward passes of ``fit``).
MAX_SUMMARY_CELLS = 1000
MAX_THRESHOLD_CELLS = 500
#: Dimension of the principal subspace.
N_COMPONENTS = 32
#: Percentile of the held-out training cells' scores that is the threshold.
QUANTILE = 99.0


def input_statistics(X, channels_last, chunk=256):
    """Background share and mean cell value per channel of each input.

    Parameters
    ----------
    X : ndarray of shape (n, H, W, C) or (n, C, H, W)
        Images as the network gets them (after the geometry is fitted).
    channels_last : bool
        Whether ``X`` is ``(n, H, W, C)`` (RGB images).

    Returns
    -------
    statistics : ndarray of shape (n, 1 + n_channels), float64
        The share of pixels that are zero in every channel, then the mean
        of each channel over the other pixels (0 for an all-zero input).
    """
    X = np.asarray(X)
    out = []
    for start in range(0, len(X), chunk):
        part = X[start : start + chunk]
        if channels_last:
            part = np.moveaxis(part, -1, 1)
        part = part.reshape(len(part), part.shape[1], -1).astype(np.float64)
        cell = (part != 0).any(axis=1)
        n_cell = cell.sum(axis=1)
        means = np.einsum("ncp,np->nc", part, cell) / np.maximum(n_cell, 1)[:, None]
        out.append(np.column_stack([1.0 - n_cell / part.shape[2], means]))
    return np.concatenate(out) if out else np.empty((0, 1), np.float64)


def _fit_input_summary(statistics, held_statistics):
    mean = statistics.mean(axis=0)
    # A floor, so that a statistic constant in training (no background at
    # all) still allows small changes.
    scale = np.maximum(statistics.std(axis=0), np.maximum(0.01 * np.abs(mean), 0.01))
    summary = {"input_mean": mean, "input_scale": scale, "input_threshold": 1.0}
    summary["input_threshold"] = float(
        max(np.percentile(_raw_input_scores(summary, held_statistics), QUANTILE), 1e-12)
    )
    return summary


def _raw_input_scores(summary, statistics):
    z = (np.asarray(statistics, np.float64) - summary["input_mean"]) / summary[
        "input_scale"
    ]
    return np.einsum("ij,ij->i", z, z)


def _raw_scores(summary, features):
    features = np.asarray(features, dtype=np.float64)
    centred = features - summary["mean"]
    components = summary["components"].astype(np.float64)
    z = centred @ components.T
    residual = np.einsum("ij,ij->i", centred, centred) - np.einsum("ij,ij->i", z, z)
    diff = z[:, None, :] - summary["class_means"][None]
    maha = np.einsum("ncj,jk,nck->nc", diff, summary["precision"], diff).min(axis=1)
    return maha + np.clip(residual, 0, None) / summary["residual_variance"]


def fit_domain_summary(
    features, y_enc, held_out, statistics=None, held_statistics=None
):
    """The summary of training features and inputs, and its thresholds.

    Parameters
    ----------
    features : ndarray of shape (n_cells, n_features)
        Penultimate features of (a subsample of) the training cells.
    y_enc : ndarray of shape (n_cells,)
        Their encoded labels.
    held_out : ndarray of shape (n_held_out, n_features)
        Features of cells not in ``features`` (ideally not trained on).
    statistics, held_statistics : ndarray of shape (n, 1 + n_channels), optional
        :func:`input_statistics` of the same cells; without them the summary
        has no input term.

    Returns
    -------
    summary : dict
        ``mean``, ``components``, ``class_means``, ``precision``,
        ``residual_variance``, ``threshold`` (floats and float arrays), and
        with statistics ``input_mean``, ``input_scale``, ``input_threshold``.
    """
    # One BLAS thread: these matrices are small, and OpenBLAS's worker
    # threads, once woken, spin for a while and take cores from torch's
    # threads (the first predict after fit ran 1.7x slower on 2 cores).
    with threadpool_limits(1, user_api="blas"):
        summary = _fit_domain_summary(features, y_enc, held_out)
    if statistics is not None:
        summary.update(
            _fit_input_summary(
                np.asarray(statistics, np.float64),
                np.asarray(held_statistics, np.float64),
            )
        )
    return summary


def _fit_domain_summary(features, y_enc, held_out):
    features = np.asarray(features, dtype=np.float64)
    held_out = np.asarray(held_out, dtype=np.float64)
    n, dim = features.shape
    classes = np.unique(y_enc)
    mean = features.mean(axis=0)
    centred = features - mean
    # A subspace well inside what n cells can estimate.
    k = max(1, min(N_COMPONENTS, (n - len(classes)) // 3, dim))
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    components = vt[:k]
    z = centred @ components.T
    class_means = np.stack([z[y_enc == c].mean(axis=0) for c in classes])
    within = z - class_means[np.searchsorted(classes, y_enc)]
    covariance, _ = ledoit_wolf(within, assume_centered=True)
    precision = np.linalg.pinv(covariance)
    # The variance outside the subspace from the held-out cells: with fewer
    # cells than features the training cells have none there.
    held = held_out - mean
    outside = (held**2).sum(axis=1) - ((held @ components.T) ** 2).sum(axis=1)
    scale = max(float((singular**2).sum() / n), 1e-12)
    residual = max(float(np.mean(np.clip(outside, 0, None))), 1e-6 * scale)
    summary = {
        "mean": mean.astype(np.float32),
        "components": components.astype(np.float32),
        "class_means": class_means,
        "precision": precision,
        # scaled so that the held-out cells' outside part counts as k dims
        "residual_variance": residual / k,
        "threshold": 1.0,
    }
    summary["threshold"] = float(
        max(np.percentile(_raw_scores(summary, held_out), QUANTILE), 1e-12)
    )
    return summary


def domain_scores(summary, features, statistics=None):
    """Normalised out-of-domain scores: above 1 is out of domain.

    Parameters
    ----------
    summary : dict
        From :func:`fit_domain_summary`.
    features : ndarray of shape (n_cells, n_features)
    statistics : ndarray of shape (n_cells, 1 + n_channels), optional
        :func:`input_statistics` of the cells; needed when the summary has
        an input term.

    Returns
    -------
    scores : ndarray of shape (n_cells,), float64
        The larger of the feature and the input term.
    """
    scores = _raw_scores(summary, features) / summary["threshold"]
    if "input_mean" in summary:
        if statistics is None:
            raise ValueError("this domain summary needs the input statistics too.")
        inputs = _raw_input_scores(summary, statistics) / summary["input_threshold"]
        scores = np.maximum(scores, inputs)
    return scores


_SUMMARY_KEYS = (
    "mean",
    "components",
    "class_means",
    "precision",
    "residual_variance",
    "threshold",
)
_INPUT_KEYS = ("input_mean", "input_scale", "input_threshold")


def check_domain_summary(summary, n_features, n_classes):
    """What is wrong with a stored ``domain_summary_``, or None.

    Used when a model file is read: the shapes must agree with each other
    and with the network, and the numbers be finite (positive variances).
    """
    if summary is None:
        return None
    keys = (set(_SUMMARY_KEYS), set(_SUMMARY_KEYS + _INPUT_KEYS))
    if not isinstance(summary, dict) or set(summary) not in keys:
        return (
            f"must be a dict with the keys {list(_SUMMARY_KEYS)}, optionally "
            f"with {list(_INPUT_KEYS)}"
        )
    mean, comp = summary["mean"], summary["components"]
    means, precision = summary["class_means"], summary["precision"]
    if not all(isinstance(a, np.ndarray) for a in (mean, comp, means, precision)):
        return "mean, components, class_means and precision must be arrays"
    k = comp.shape[0] if comp.ndim == 2 else -1
    if (
        mean.shape != (n_features,)
        or comp.shape != (k, n_features)
        or means.ndim != 2
        or not 1 <= means.shape[0] <= n_classes
        or means.shape[1] != k
        or precision.shape != (k, k)
    ):
        return (
            f"shapes mean {mean.shape}, components {comp.shape}, class_means "
            f"{means.shape}, precision {precision.shape} do not fit {n_features} "
            f"features and {n_classes} classes"
        )
    scalars = (summary["residual_variance"], summary["threshold"])
    if not all(isinstance(v, float) and np.isfinite(v) and v > 0 for v in scalars):
        return "residual_variance and threshold must be positive finite floats"
    if "input_mean" in summary:
        return _check_input_summary(summary)
    return None


def _check_input_summary(summary):
    mean, scale = summary["input_mean"], summary["input_scale"]
    if not all(isinstance(a, np.ndarray) and a.ndim == 1 for a in (mean, scale)):
        return "input_mean and input_scale must be 1-D arrays"
    if mean.shape != scale.shape or mean.shape[0] < 2:
        return (
            f"input_mean {mean.shape} and input_scale {scale.shape} must have one "
            "shape, 1 + the number of channels"
        )
    if not (np.isfinite(mean).all() and np.isfinite(scale).all() and (scale > 0).all()):
        return "input_mean must be finite and input_scale positive"
    value = summary["input_threshold"]
    if not (isinstance(value, float) and np.isfinite(value) and value > 0):
        return "input_threshold must be a positive finite float"
    return None


def _sample(rows, limit, rng):
    rows = np.asarray(rows)
    if len(rows) <= limit:
        return rows
    return np.sort(rng.choice(rows, limit, replace=False))


class DomainMixin:
    """``domain_score`` / ``in_domain`` for :class:`LeukoNetClassifier`."""

    def _fit_domain(self, X, y_enc, train_rows, valid_rows, validation_data):
        """Learn ``domain_summary_`` once the network is trained.

        The thresholds come from held-out cells: the inner validation cells,
        else ``validation_data``, else a fifth of the training cells kept
        out of the summary (those were trained on, so the threshold is then
        lower and more inputs are flagged).
        """
        rng = np.random.RandomState(0)
        train_rows = np.asarray(train_rows)
        if valid_rows is not None and len(valid_rows) >= 2:
            held = self._summary_inputs(
                X, _sample(valid_rows, MAX_THRESHOLD_CELLS, rng)
            )
        elif validation_data is not None and len(validation_data[0]) >= 2:
            X_val = validation_data[0]
            rows = _sample(np.arange(len(X_val)), MAX_THRESHOLD_CELLS, rng)
            held = self._summary_inputs(X_val, rows)
        else:
            shuffled = rng.permutation(train_rows)
            cut = max(1, len(shuffled) // 5)
            held = self._summary_inputs(X, np.sort(shuffled[:cut]))
            train_rows = np.sort(shuffled[cut:])
        rows = _sample(train_rows, MAX_SUMMARY_CELLS, rng)
        features, statistics = self._summary_inputs(X, rows)
        self.domain_summary_ = fit_domain_summary(
            features, y_enc[rows], held[0], statistics, held[1]
        )

    def _summary_inputs(self, X, rows, chunk=256):
        """Features and input statistics of ``X[rows]``.

        A few hundred images gathered at a time, not a copy of them all.
        """
        features, statistics = [], []
        for i in range(0, len(rows), chunk):
            part = self._check_predict_input(X[rows[i : i + chunk]])
            features.append(self.transform(part))
            statistics.append(self._input_statistics(part))
        return np.concatenate(features), np.concatenate(statistics)

    def _input_statistics(self, X_checked):
        return input_statistics(X_checked, channels_last=self.input_kind_ == "rgb")

    def domain_score(self, X):
        """How unlike the training cells each input is (Lee et al. 2018).

        The larger of two terms, each divided by its 99th percentile on
        held-out training cells: a class-conditional Mahalanobis distance
        of the penultimate features, and a distance of simple input
        statistics (the background share and the mean cell colour), which
        catches a smear crop on a light background that the features alone
        miss (see :mod:`sklearn_leuko._classifier._domain`).

        Parameters
        ----------
        X : ndarray of shape (n_samples, H, W, 3) or (n_samples, C, H, W)
            Input of the same kind and sample shape as in :meth:`fit`.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            Above 1: out of domain (about 1-2% of held-out training cells
            are).
        """
        check_is_fitted(self)
        if getattr(self, "domain_summary_", None) is None:
            raise ValueError(
                "this model was saved without a domain summary (sklearn-leuko "
                "before 0.3); refit it to get domain_score and in_domain."
            )
        X = self._check_predict_input(X)
        return domain_scores(
            self.domain_summary_, self.transform(X), self._input_statistics(X)
        )

    def in_domain(self, X):
        """Whether each input looks like the training cells.

        Parameters
        ----------
        X : ndarray of shape (n_samples, H, W, 3) or (n_samples, C, H, W)

        Returns
        -------
        in_domain : ndarray of bool, shape (n_samples,)
            ``domain_score(X) <= 1``.
        """
        return self.domain_score(X) <= 1.0


def model_domain_score(model, X):
    """``domain_score`` of a fitted classifier, Pipeline or fusion.

    A :class:`~sklearn.pipeline.Pipeline` transforms ``X`` with its first
    steps and asks its last one.
    """
    from sklearn.pipeline import Pipeline

    if isinstance(model, Pipeline):
        head = model[:-1].transform(X) if len(model.steps) > 1 else X
        return model_domain_score(model[-1], head)
    if not hasattr(model, "domain_score"):
        raise TypeError(
            f"{type(model).__name__} has no domain summary: use a LeukoNetClassifier, "
            "a FeatureFusionClassifier or a Pipeline ending in one."
        )
    return model.domain_score(X)
