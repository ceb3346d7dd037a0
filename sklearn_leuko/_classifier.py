"""LeukoNetClassifier: the Basic Network of LeukoNet as a scikit-learn classifier."""

import hashlib
import json
import numbers
import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.model_selection import StratifiedGroupKFold, StratifiedShuffleSplit
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted
from skorch import NeuralNetClassifier
from skorch.callbacks import ProgressBar
from skorch.helper import predefined_split

from . import __version__
from ._callbacks import (
    RestoreBestWeights,
    ResumableCheckpoint,
    StopTraining,
    load_checkpoint,
)
from ._datapath import ImageBatchDataset, collate_batch
from ._versioning import VersionedPickleMixin
from .utils import check_groups, check_net_input, check_targets, resolve_device

__all__ = ["LeukoNetClassifier", "CellLevelSplitWarning"]

_AUGMENT_MODES = {
    False: "off",
    "off": "off",
    None: "off",
    True: "all",
    "all": "all",
    "minority": "minority",
}
_ARCHITECTURES = ("basic", "vgg11")
_OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
}


class CellLevelSplitWarning(UserWarning):
    """The inner validation split could not use subject IDs."""


class LeukoNetClassifier(VersionedPickleMixin, ClassifierMixin, BaseEstimator):
    """LeukoNet's Basic Network (or the VGG-11 baseline) as a classifier.

    The network of the paper (Mourya et al. 2018, section 4): one strided
    convolution, five convolution + batch-norm + activation + max-pool
    blocks, bilinear pooling and one linear layer. Training is done by a
    skorch :class:`~skorch.NeuralNetClassifier` built in :meth:`fit` and kept
    as ``net_`` (its ``history`` holds the epoch table).

    Two input forms are accepted:

    - **Raw images** (uint8 ``(n, H, W, 3)``) with ``preprocessing`` set
      (``"od"`` for Stage-1, ``"log_dct"`` for Stage-2, ``"od+log_dct"`` for
      Stage-2C, or a transformer of :mod:`sklearn_leuko.preprocessing`). Only
      the uint8 array is held in memory; each batch goes to the device as
      uint8, is augmented in RGB image space (training only), then
      preprocessed on the device. This is the form to use at C-NMC scale and
      whenever augmentation is on.
    - **Preprocessed arrays** (float32 ``(n, C, H, W)``), e.g. as the last
      step of ``Pipeline([("od", StainDeconvolution()), ("net", ...)])``.
      ``preprocessing`` must then be ``None``, and augmentation is refused
      because it must act on images, not on OD or DCT coefficients.

    Parameters
    ----------
    preprocessing : {None, "od", "log_dct", "od+log_dct"} or transformer, default=None
        Preprocessing applied per batch on the device to raw RGB input. A
        transformer (e.g. ``StainDeconvolution(stain_matrix="macenko")``) is
        cloned and fitted on at most ``preprocessing_fit_samples`` training
        images. ``None`` feeds the input unchanged (RGB input is then scaled
        to [0, 1]).
    architecture : {"basic", "vgg11"}, default="basic"
        ``"basic"``: the Basic Network with bilinear pooling. ``"vgg11"``:
        the paper's first baseline, VGG-11 with global average pooling.
    widths : tuple of int or None, default=None
        Channel widths. ``"basic"``: six values (stem + five blocks);
        ``"vgg11"``: eight values. ``None`` uses the architecture default.
    activation : {"relu", "prelu", "ptelu"}, default="relu"
        Activation of every block (Table 1 of the paper compares them).
    bilinear_channels : int or None, default=None
        Reduce the last feature map to this many channels (1x1 conv) before
        bilinear pooling, so the feature size is ``bilinear_channels ** 2``.
    augment : {"off", "all", "minority"} or bool, default="off"
        ``"all"`` (or ``True``): augment every training sample, freshly at
        random every epoch. ``"minority"``: the paper's "Normal aug": only
        the minority class is augmented, and it is resampled (with
        replacement) to the majority's count.
    rotation : float, default=180.0
        Rotation range in degrees, ``[-rotation, rotation]``.
    flip : bool, default=True
        Random horizontal and vertical flips.
    shear : float, default=20.0
        Shear range in degrees, ``[-shear, shear]``.
    blur_sigma : tuple of float, default=(0.0, 0.75)
        Range of the Gaussian blur sigma.
    max_epochs : int, default=30
    batch_size : int, default=32
    lr : float, default=1e-3
    optimizer : {"adam", "adamw", "sgd"}, default="adam"
    weight_decay : float, default=0.0
    momentum : float, default=0.9
        Only for ``optimizer="sgd"``.
    validation_fraction : float or None, default=0.2
        Share of the training subjects held out for the inner validation that
        picks the best epoch. With ``groups`` the split is by subject (no
        subject on both sides); without, a :class:`CellLevelSplitWarning` says
        it is by cell. ``None`` or ``0`` trains on everything and keeps the
        last epoch.
    patience : int or None, default=None
        Stop when the validation accuracy has not improved for this many
        epochs. ``None`` never stops early.
    device : str, default="auto"
        ``"auto"`` is resolved at fit time: CUDA when available, else CPU.
    mixed_precision : {"auto", True, False}, default="auto"
        bfloat16 autocast for the network (never for the preprocessing), on
        CUDA only. ``"auto"`` enables it on CUDA devices that support
        bfloat16; a model trained so and loaded on a CPU runs in float32.
    channels_last : {"auto", True, False}, default="auto"
        Channels-last memory format for the network input; ``"auto"`` enables
        it (faster on CUDA and on the CPU; measured in
        ``benchmarks/bench_training.py``).
    preprocessing_fit_samples : int, default=512
        How many training images fit the preprocessing (bounded memory).
    checkpoint_dir : str or path-like or None, default=None
        Write a resumable checkpoint there after every epoch (atomically).
    resume : bool, default=False
        With ``checkpoint_dir``: continue a fit that was interrupted, from
        its last checkpoint. The configuration and data must be the same;
        the result equals an uninterrupted fit on CPU.
    verbose : int, default=1
        ``0`` silent, ``1`` skorch's epoch table.
    progress_bar : bool, default=False
        Show a progress bar over the batches of each epoch.
    callbacks : list of skorch callbacks or (name, callback) tuples, default=None
        Extra skorch callbacks (cloned at fit time), e.g.
        ``skorch.callbacks.LRScheduler``.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, the inner split, shuffling,
        resampling and augmentation. The same integer gives the same
        predictions on CPU.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels, e.g. ``array(['all', 'hem'])``.
    net_ : skorch.NeuralNetClassifier
        The trained skorch net; ``net_.history`` is the training history.
    preprocessing_ : transformer or None
        The fitted preprocessing transformer.
    input_shape_ : tuple
        Shape of one training sample, e.g. ``(350, 350, 3)``.
    input_kind_ : {"rgb", "channels_first"}
        Which input form the classifier was fitted on.
    n_features_out_ : int
        Size of the features returned by :meth:`transform`.
    device_ : str
        Device used for training.
    best_epoch_ : int or None
        Epoch (1-based) whose weights were kept.

    Examples
    --------
    >>> from sklearn_leuko import LeukoNetClassifier
    >>> from sklearn_leuko.datasets import make_cells
    >>> data = make_cells(n_subjects=8, cells_per_subject=6, image_size=32,
    ...                   random_state=0)
    >>> clf = LeukoNetClassifier(preprocessing="od", widths=(4, 4, 4, 4, 4, 4),
    ...                          max_epochs=2, verbose=0, random_state=0)
    >>> clf.fit(data.images, data.target, groups=data.groups).predict(
    ...     data.images[:3]).shape
    (3,)
    """

    # Subject IDs are requested by default under metadata routing, so
    # ``cross_validate(..., params={"groups": g})`` reaches the inner split.
    __metadata_request__fit = {"groups": True}

    def __init__(
        self,
        *,
        preprocessing=None,
        architecture="basic",
        widths=None,
        activation="relu",
        bilinear_channels=None,
        augment="off",
        rotation=180.0,
        flip=True,
        shear=20.0,
        blur_sigma=(0.0, 0.75),
        max_epochs=30,
        batch_size=32,
        lr=1e-3,
        optimizer="adam",
        weight_decay=0.0,
        momentum=0.9,
        validation_fraction=0.2,
        patience=None,
        device="auto",
        mixed_precision="auto",
        channels_last="auto",
        preprocessing_fit_samples=512,
        checkpoint_dir=None,
        resume=False,
        verbose=1,
        progress_bar=False,
        callbacks=None,
        random_state=None,
    ):
        self.preprocessing = preprocessing
        self.architecture = architecture
        self.widths = widths
        self.activation = activation
        self.bilinear_channels = bilinear_channels
        self.augment = augment
        self.rotation = rotation
        self.flip = flip
        self.shear = shear
        self.blur_sigma = blur_sigma
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.weight_decay = weight_decay
        self.momentum = momentum
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.device = device
        self.mixed_precision = mixed_precision
        self.channels_last = channels_last
        self.preprocessing_fit_samples = preprocessing_fit_samples
        self.checkpoint_dir = checkpoint_dir
        self.resume = resume
        self.verbose = verbose
        self.progress_bar = progress_bar
        self.callbacks = callbacks
        self.random_state = random_state

    # ------------------------------------------------------------------ checks
    def _check_params(self):
        if self.architecture not in _ARCHITECTURES:
            raise ValueError(
                f"architecture={self.architecture!r} is not supported; use one of "
                f"{list(_ARCHITECTURES)}."
            )
        if self.augment not in _AUGMENT_MODES:
            raise ValueError(
                f"augment={self.augment!r} is not supported; use 'off', 'all' (or "
                "True) or 'minority' (the paper's 'Normal aug')."
            )
        if self.optimizer not in _OPTIMIZERS:
            raise ValueError(
                f"optimizer={self.optimizer!r} is not supported; use one of "
                f"{list(_OPTIMIZERS)}."
            )
        for name in ("max_epochs", "batch_size", "preprocessing_fit_samples"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, numbers.Integral)
                or value < 1
            ):
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        if self.patience is not None and (
            not isinstance(self.patience, numbers.Integral) or self.patience < 1
        ):
            raise ValueError(
                f"patience must be None or a positive integer, got {self.patience!r}."
            )
        if not isinstance(self.lr, numbers.Real) or self.lr <= 0:
            raise ValueError(f"lr must be a positive number, got {self.lr!r}.")
        vf = self.validation_fraction
        if vf is not None and not (isinstance(vf, numbers.Real) and 0 <= vf < 1):
            raise ValueError(
                f"validation_fraction must be None or a number in [0, 1), got {vf!r}."
            )
        for name in ("mixed_precision", "channels_last"):
            if getattr(self, name) not in ("auto", True, False):
                raise ValueError(
                    f"{name} must be 'auto', True or False, got {getattr(self, name)!r}."
                )
        if self.resume and self.checkpoint_dir is None:
            raise ValueError(
                "resume=True needs checkpoint_dir: the folder of the interrupted fit."
            )

    # --------------------------------------------------------------- building
    def _fit_preprocessing(self, X, train_rows, rng):
        from .preprocessing import make_preprocessing

        if self.preprocessing is None:
            return None
        if isinstance(self.preprocessing, str):
            transformer = make_preprocessing(self.preprocessing)
        else:
            transformer = clone(self.preprocessing)
        n_fit = min(len(train_rows), self.preprocessing_fit_samples)
        rows = np.sort(rng.choice(train_rows, size=n_fit, replace=False))
        return transformer.fit(X[rows])

    def _preprocess_module(self, rgb_input):
        """The torch twin of the fitted ``preprocessing_`` (or RGB scaling)."""
        from .preprocessing import to_torch_module

        if self.preprocessing_ is not None:
            return to_torch_module(self.preprocessing_)
        return _ScaleToUnit() if rgb_input else None

    def _build_module(
        self, in_channels, preprocess, rgb_input, autocast_dtype, channels_last
    ):
        """The full forward path; shared by ``fit`` and the safetensors loader."""
        from .nn._leukonet import LeukoNetModule

        return LeukoNetModule(
            network=self._make_network(in_channels),
            preprocess=preprocess,
            augmenter=self._make_augmenter(),
            rgb_input=rgb_input,
            autocast_dtype=autocast_dtype,
            channels_last=channels_last,
        )

    def _make_network(self, in_channels):
        from .nn import VGG11, BasicNetwork

        kwargs = {
            "in_channels": in_channels,
            "n_classes": len(self.classes_),
            "activation": self.activation,
        }
        if self.widths is not None:
            kwargs["widths"] = tuple(self.widths)
        if self.architecture == "basic":
            return BasicNetwork(bilinear_channels=self.bilinear_channels, **kwargs)
        return VGG11(**kwargs)

    def _make_augmenter(self):
        from .nn import ImageAugmenter

        if _AUGMENT_MODES[self.augment] == "off":
            return None
        return ImageAugmenter(
            rotation=self.rotation,
            hflip=self.flip,
            vflip=self.flip,
            shear=self.shear,
            blur_sigma=self.blur_sigma,
        )

    def _inner_split(self, y_enc, groups, rng):
        """Train/validation rows for best-epoch selection."""
        n = len(y_enc)
        vf = self.validation_fraction
        if not vf:
            return np.arange(n), None
        seed = rng.randint(np.iinfo(np.int32).max)
        if groups is None:
            warnings.warn(
                "LeukoNetClassifier.fit got no groups, so the inner validation split "
                "is at the cell level: cells of one subject can be on both sides and "
                "the best-epoch choice is optimistic. Pass groups=subject_ids (in a "
                "Pipeline: fit(X, y, net__groups=subject_ids); see the README for "
                "cross_validate and GridSearchCV).",
                CellLevelSplitWarning,
                stacklevel=4,
            )
            splitter = StratifiedShuffleSplit(
                n_splits=1, test_size=vf, random_state=seed
            )
            return next(splitter.split(np.zeros(n), y_enc))
        n_groups = len(np.unique(groups))
        n_splits = min(max(2, int(round(1 / vf))), n_groups)
        if n_groups < 2:
            raise ValueError(
                "groups holds a single subject: a subject-level validation split "
                "needs at least 2 subjects; set validation_fraction=None to train "
                "without inner validation."
            )
        splitter = StratifiedGroupKFold(
            n_splits=n_splits, shuffle=True, random_state=seed
        )
        with warnings.catch_warnings():
            # Few subjects of a class: sklearn warns that a class has fewer
            # members than n_splits; the split is still subject-level.
            warnings.simplefilter("ignore", UserWarning)
            return next(splitter.split(np.zeros(n), y_enc, groups))

    def _resolve_speedups(self, device):
        on_cuda = device.startswith("cuda")
        amp = self.mixed_precision
        if amp == "auto":
            amp = on_cuda and torch.cuda.is_bf16_supported()
        cl = self.channels_last
        if cl == "auto":
            # Faster on CUDA and, with oneDNN convolutions, on the CPU too.
            cl = True
        return (torch.bfloat16 if amp else None), bool(cl)

    def _fingerprint(self, X, y_enc, groups):
        params = {
            k: repr(v)
            for k, v in self.get_params(deep=False).items()
            if k
            not in ("verbose", "progress_bar", "resume", "checkpoint_dir", "callbacks")
        }
        digest = hashlib.sha256()
        digest.update(np.ascontiguousarray(y_enc).tobytes())
        digest.update(repr(X.shape).encode())
        digest.update(np.ascontiguousarray(X[:: max(1, len(X) // 16)]).tobytes())
        if groups is not None:
            digest.update(np.asarray(groups).astype(str).tobytes())
        return {
            "params": json.dumps(params, sort_keys=True),
            "data": digest.hexdigest(),
            "version": __version__,
        }

    # -------------------------------------------------------------------- fit
    def fit(self, X, y, groups=None):
        """Train the network.

        Parameters
        ----------
        X : ndarray of shape (n_samples, H, W, 3) uint8 or (n_samples, C, H, W) float32
            Raw RGB images, or preprocessed arrays (see the class docstring).
        y : array-like of shape (n_samples,)
            Labels, e.g. ``"all"`` / ``"hem"``.
        groups : array-like of shape (n_samples,), default=None
            Subject IDs. The inner validation split keeps each subject on one
            side. Strongly recommended.

        Returns
        -------
        self : LeukoNetClassifier
        """
        self._check_params()
        # Training seeds torch's global generator; fork it so the caller's
        # random stream is left as it was.
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=devices):
            return self._fit(X, y, groups)

    def _fit(self, X, y, groups):
        X, kind = check_net_input(X)
        y = check_targets(y, len(X))
        groups = check_groups(groups, len(X))
        rgb = kind == "rgb"
        if not rgb and self.preprocessing is not None:
            raise ValueError(
                f"preprocessing={self.preprocessing!r} needs raw uint8 RGB images "
                f"(n, H, W, 3), but X is a float array of shape {X.shape}. Either pass "
                "the raw images, or drop preprocessing when the Pipeline already "
                "preprocesses."
            )
        augment_mode = _AUGMENT_MODES[self.augment]
        if not rgb and augment_mode != "off":
            raise ValueError(
                "augmentation acts on images, before optical density or DCT: with "
                "preprocessed float input it would rotate and blur OD or DCT "
                "coefficients. Pass the raw uint8 images and set preprocessing= "
                "('od', 'log_dct' or 'od+log_dct') instead of transformers ahead "
                "of the net; augmentation then runs first, in image space."
            )

        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        torch.manual_seed(seed)

        self._label_encoder = LabelEncoder().fit(y)
        self.classes_ = self._label_encoder.classes_
        y_enc = self._label_encoder.transform(y).astype(np.int64)
        self.input_shape_ = tuple(X.shape[1:])
        self.input_kind_ = kind
        self.device_ = resolve_device(self.device)

        train_rows, valid_rows = self._inner_split(y_enc, groups, rng)
        self.preprocessing_ = self._fit_preprocessing(X, train_rows, rng)
        preprocess = self._preprocess_module(rgb)

        with torch.no_grad():
            probe = torch.from_numpy(np.array(X[:1]))
            probe = probe.permute(0, 3, 1, 2).float() if rgb else probe.float()
            in_channels = (
                preprocess(probe).shape[1] if preprocess is not None else probe.shape[1]
            )

        train_indices, augment_mask = self._training_rows(
            y_enc, train_rows, augment_mode, rng
        )
        train_set = ImageBatchDataset(X, y_enc, train_indices, augment_mask)
        valid_set = (
            None if valid_rows is None else ImageBatchDataset(X, y_enc, valid_rows)
        )

        autocast_dtype, channels_last = self._resolve_speedups(self.device_)
        module = self._build_module(
            in_channels, preprocess, rgb, autocast_dtype, channels_last
        )
        best = None
        callbacks = []
        if valid_set is not None:
            best = RestoreBestWeights(patience=self.patience)
            callbacks.append(("restore_best", best))
        if self.checkpoint_dir is not None:
            fingerprint = self._fingerprint(X, y_enc, groups)
            callbacks.append(
                (
                    "checkpoint",
                    ResumableCheckpoint(self.checkpoint_dir, fingerprint, best),
                )
            )
        if self.progress_bar:
            callbacks.append(("progress_bar", ProgressBar()))
        for i, cb in enumerate(self.callbacks or []):
            name, cb = cb if isinstance(cb, tuple) else (f"user_{i}", cb)
            callbacks.append((name, clone(cb)))

        disabled_callbacks = {}
        if valid_set is None:
            disabled_callbacks["callbacks__valid_acc"] = None
        if not self.verbose:
            disabled_callbacks["callbacks__print_log"] = None
        optimizer_kwargs = {"optimizer__weight_decay": self.weight_decay}
        if self.optimizer == "sgd":
            optimizer_kwargs["optimizer__momentum"] = self.momentum
        pin = self.device_.startswith("cuda")
        net = _SkorchNet(
            module,
            criterion=torch.nn.CrossEntropyLoss,
            optimizer=_OPTIMIZERS[self.optimizer],
            lr=self.lr,
            max_epochs=self.max_epochs,
            batch_size=self.batch_size,
            train_split=None if valid_set is None else predefined_split(valid_set),
            iterator_train__shuffle=True,
            # A last batch of one sample would break batch norm in training.
            iterator_train__drop_last=len(train_indices) % self.batch_size == 1,
            iterator_train__collate_fn=collate_batch,
            iterator_train__pin_memory=pin,
            iterator_valid__collate_fn=collate_batch,
            iterator_valid__pin_memory=pin,
            callbacks=callbacks,
            classes=list(range(len(self.classes_))),
            device=self.device_,
            verbose=self.verbose,
            **optimizer_kwargs,
            **disabled_callbacks,
        )

        start_epoch = self._maybe_resume(net, best, X, y_enc, groups)
        remaining = self.max_epochs - start_epoch
        if start_epoch == 0:
            net.fit(train_set, None)
        elif remaining > 0:
            net.partial_fit(train_set, None, epochs=remaining)
        else:
            # Everything was done before the interruption: only restore the best.
            if best is not None:
                best.on_train_end(net)
        if net.interrupted_:
            # skorch swallows Ctrl-C and returns as if training had ended; pass
            # it on so a cut-short model is never taken for a trained one.
            raise KeyboardInterrupt
        if best is not None:
            self.best_epoch_ = best.best_epoch_
            best.best_state_ = None  # weights are in the module; do not pickle twice
        else:
            self.best_epoch_ = None
        self.net_ = net
        self.n_features_out_ = int(module.network.n_features)
        return self

    def _training_rows(self, y_enc, train_rows, augment_mode, rng):
        augment_mask = None
        indices = train_rows
        if augment_mode == "all":
            augment_mask = np.ones(len(y_enc), dtype=bool)
        elif augment_mode == "minority":
            counts = np.bincount(y_enc[train_rows], minlength=len(self.classes_))
            minority = int(np.argmin(counts))
            majority_count = int(counts.max())
            minority_rows = train_rows[y_enc[train_rows] == minority]
            extra = rng.choice(
                minority_rows, size=majority_count - len(minority_rows), replace=True
            )
            indices = np.concatenate([train_rows, extra])
            augment_mask = y_enc == minority
        return indices, augment_mask

    def _maybe_resume(self, net, best, X, y_enc, groups):
        if not self.resume:
            return 0
        state = load_checkpoint(self.checkpoint_dir)
        if state is None:
            return 0
        if state["fingerprint"] != self._fingerprint(X, y_enc, groups):
            raise ValueError(
                f"the checkpoint in {self.checkpoint_dir} was written by a fit with "
                "other parameters or data; resume needs the same estimator and data "
                "(or delete the checkpoint to start over)."
            )
        from skorch.history import History

        net.initialize()
        net.module_.load_state_dict(state["module"])
        net.optimizer_.load_state_dict(state["optimizer"])
        net.history_ = History(state["history"])
        if best is not None and state["best"] is not None:
            best.set_state(state["best"])
        torch.set_rng_state(state["torch_rng"])
        return int(state["epoch"])

    # ---------------------------------------------------------------- predict
    def _check_predict_input(self, X):
        check_is_fitted(self)
        X, kind = check_net_input(X)
        if kind != self.input_kind_ or tuple(X.shape[1:]) != self.input_shape_:
            expected = (
                "uint8 RGB images"
                if self.input_kind_ == "rgb"
                else "float32 preprocessed arrays"
            )
            raise ValueError(
                f"X has samples of shape {tuple(X.shape[1:])} ({kind}), but this "
                f"classifier was fitted on {expected} of shape {self.input_shape_}; "
                "resize, crop or preprocess the images the same way as for training."
            )
        return X

    def _iterate(self, X):
        dataset = ImageBatchDataset(X)
        return self.net_.get_iterator(dataset, training=False)

    def predict_proba(self, X):
        """Class probabilities, shape ``(n_samples, n_classes)``, columns in
        the order of ``classes_``."""
        X = self._check_predict_input(X)
        return self.net_.predict_proba(ImageBatchDataset(X)).astype(np.float64)

    def predict(self, X):
        """Predicted labels (from ``classes_``)."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def decision_function(self, X):
        """Logit difference ``logit[classes_[1]] - logit[classes_[0]]`` (binary)
        or the logits (multi-class)."""
        X = self._check_predict_input(X)
        logits = self.net_.forward(ImageBatchDataset(X), training=False).numpy()
        if logits.shape[1] == 2:
            return logits[:, 1] - logits[:, 0]
        return logits

    def transform(self, X):
        """Penultimate features (bilinear-pooled for the Basic Network).

        Returns
        -------
        features : ndarray of float32, shape (n_samples, n_features_out_)
        """
        X = self._check_predict_input(X)
        module = self.net_.module_
        module.eval()
        out = []
        with torch.no_grad():
            for batch, _ in self._iterate(X):
                batch = {k: v.to(self.net_.device) for k, v in batch.items()}
                out.append(module.features(batch["X"]).cpu())
        return torch.cat(out).numpy().astype(np.float32, copy=False)

    @property
    def history_(self):
        """The skorch training history (``net_.history``)."""
        check_is_fitted(self)
        return self.net_.history

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = False
        tags.non_deterministic = False
        return tags


class _SkorchNet(NeuralNetClassifier):
    """skorch's classifier, remembering whether training was interrupted."""

    interrupted_ = False

    def fit_loop(self, *args, **kwargs):
        try:
            return super().fit_loop(*args, **kwargs)
        except StopTraining:
            return self
        except KeyboardInterrupt:
            self.interrupted_ = True
            raise


class _ScaleToUnit(torch.nn.Module):
    """RGB in [0, 255] -> [0, 1], used when no preprocessing is set."""

    def forward(self, x):
        return x / 255.0
