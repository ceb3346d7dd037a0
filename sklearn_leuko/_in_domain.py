"""``domain_score`` / ``in_domain`` of any fitted stage, Pipeline included."""

__all__ = ["domain_score", "in_domain"]


def domain_score(model, X):
    """How unlike its training cells each input is, for any fitted stage.

    :func:`make_stage` returns a :class:`~sklearn.pipeline.Pipeline` (or a
    fusion), and a Pipeline does not pass ``domain_score`` on to its last
    step: this function does. A Pipeline transforms ``X`` with its first
    steps and asks its last one; a
    :class:`~sklearn_leuko.ensemble.FeatureFusionClassifier` answers with its
    worst network's score.

    Parameters
    ----------
    model : estimator
        A fitted :class:`LeukoNetClassifier`, fusion, or Pipeline ending in
        one.
    X : array-like of shape (n_samples, ...)
        Input as for ``model.predict``.

    Returns
    -------
    scores : ndarray of shape (n_samples,)
        Above 1: out of domain (see
        :meth:`LeukoNetClassifier.domain_score`).

    Raises
    ------
    TypeError
        If ``model`` has no domain summary.

    Examples
    --------
    >>> from sklearn_leuko import domain_score, in_domain, make_stage
    >>> from sklearn_leuko.datasets import make_cells
    >>> data = make_cells(n_subjects=4, cells_per_subject=4, image_size=32,
    ...                   random_state=0)
    >>> stage = make_stage("1", max_epochs=1, widths=(4,) * 6, verbose=0,
    ...                    random_state=0)
    >>> stage = stage.fit(data.images, data.target, net__groups=data.groups)
    >>> domain_score(stage, data.images).shape
    (16,)
    >>> light = data.images.copy()
    >>> light[(light == 0).all(axis=-1)] = (235, 215, 200)  # a smear's background
    >>> bool(in_domain(stage, light).any())
    False
    """
    from ._classifier._domain import model_domain_score

    return model_domain_score(model, X)


def in_domain(model, X):
    """Whether each input looks like the training cells of a fitted stage.

    Parameters
    ----------
    model : estimator
        A fitted :class:`LeukoNetClassifier`, fusion, or Pipeline ending in
        one.
    X : array-like of shape (n_samples, ...)

    Returns
    -------
    in_domain : ndarray of bool, shape (n_samples,)
        ``domain_score(model, X) <= 1``.
    """
    return domain_score(model, X) <= 1.0
