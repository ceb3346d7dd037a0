"""LeukoNetClassifier: the Basic Network of LeukoNet as a scikit-learn classifier."""

import hashlib
import json
import warnings

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    ClassNamePrefixFeaturesOutMixin,
    _fit_context,
    clone,
)
from sklearn.model_selection import StratifiedGroupKFold, StratifiedShuffleSplit
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted
from skorch.callbacks import ProgressBar
from skorch.helper import predefined_split

from .. import __version__
from ..metrics import CANCER_LABEL, NORMAL_LABEL
from ..utils import check_groups, check_net_input, check_targets, resolve_device
from ._callbacks import (
    RestoreBestWeights,
    ResumableCheckpoint,
    load_checkpoint,
)
from ._datapath import (
    BatchLoader,
    ImageBatchDataset,
    images_to_device,
    resolve_data_on_device,
)
from ._interrupt import StopOnInterrupt, deferred_interrupt
from ._net import OPTIMIZERS, ScaleToUnit, SkorchNet
from ._params import (
    AUGMENT_MODES,
    PARAMETER_CONSTRAINTS,
    check_pass_through,
    is_pass_through_param,
)
from ._versioning import VersionedPickleMixin

__all__ = ["CellLevelSplitWarning", "LeukoNetClassifier"]

# Default validation / prediction batch size on CUDA (iterator_valid__batch_size).
_CUDA_PREDICT_BATCH_SIZE = 256


class CellLevelSplitWarning(UserWarning):
    """The inner validation split could not use subject IDs."""


class LeukoNetClassifier(
    VersionedPickleMixin,
    ClassNamePrefixFeaturesOutMixin,
    ClassifierMixin,
    BaseEstimator,
):
    """LeukoNet's Basic Network (or the VGG-11 baseline) as a classifier.

    The network of the paper (Mourya et al. 2018, section 4): one strided
    convolution, five convolution + batch-norm + activation + max-pool
    blocks, bilinear pooling and one linear layer. Training is done by a
    skorch :class:`~skorch.NeuralNetClassifier` built in :meth:`fit` (by
    :meth:`build_net`) and kept as ``net_`` (its ``history`` holds the epoch
    table).

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
    augment : {"off", "all", "normal", "minority"} or bool, default="off"
        ``"all"`` (or ``True``): augment every training sample, freshly at
        random every epoch. ``"normal"``: the paper's "Normal aug": the
        normal (``"hem"``) cells are augmented and resampled (with
        replacement) to the count of the ``"all"`` cells. ``"minority"``:
        the same for whichever class is smaller in the training data.
    rotation : float, default=180.0
        Rotation range in degrees, ``[-rotation, rotation]``.
    flip : bool, default=True
        Random horizontal and vertical flips.
    shear : float, default=20.0
        Shear range in degrees, ``[-shear, shear]``.
    blur_sigma : tuple of float, default=(0.0, 0.75)
        Range of the Gaussian blur sigma.
    max_epochs : int, default=30
        Not given in the paper (nor are ``batch_size``, ``lr`` and the
        optimizer); our defaults, see ``docs/paper-fidelity.md``.
    batch_size : int, default=32
        At least 2 (batch normalisation needs two cells per batch).
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
    data_on_device : {"auto", True, False}, default="auto"
        Keep the training images on the device for the whole fit: they are
        copied there once, and every batch is drawn there by indexing, with
        no host copy per batch. ``False`` streams the batches from host
        memory through a torch DataLoader (on CUDA: gathered into pinned
        memory, copied on a side stream while the previous batch computes).
        ``"auto"``: on CUDA when the images take at most half of the free
        device memory, never on the CPU. On the CPU ``True`` draws the
        batches by torch indexing of a tensor view of ``X`` (no copy, no
        DataLoader). Both give the same batches and, on the CPU, the same
        weights. The ``iterator_train__*`` loader settings (``num_workers``,
        ``pin_memory``, ``prefetch_factor``, ...) apply to the streamed
        batches only; device-resident data ignores them. Prediction always
        streams (one pass: the copy overlaps the computation).
    mixed_precision : {"auto", True, False}, default="auto"
        bfloat16 autocast for the network (never for the augmentation and
        the preprocessing, which stay float32). ``"auto"`` enables it where
        bfloat16 is native: CUDA devices of compute capability 8.0 or higher
        and CPUs with AVX512-BF16, AMX or Arm BF16
        (:func:`sklearn_leuko.nn.cpu_has_native_bf16`). ``True`` on a CPU
        without them is refused (emulated bfloat16 is slower than float32).
        A model trained in bfloat16 runs in float32 on a CPU without native
        bfloat16.
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
    **kwargs
        skorch-style prefixed arguments, handed to the skorch net as they
        are: ``optimizer__betas=(0.9, 0.99)``, ``criterion__weight=...``
        (a float tensor of one weight per class, in the order of
        ``classes_``), ``iterator_train__num_workers=2`` (streamed batches
        only, see ``data_on_device``), ``iterator_valid__batch_size=256``
        (validation and prediction batches; default ``batch_size`` on the
        CPU and ``max(batch_size, 256)`` on CUDA, where large batches keep
        the GPU busy), ``callbacks__<name>__<param>``. They are parameters
        like the named ones (``get_params``, ``set_params``,
        ``GridSearchCV``). Arguments that a named parameter or the data path
        already sets (``optimizer__lr``, ``iterator_train__batch_size``,
        ...) are refused with the parameter to use instead.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels, e.g. ``array(['all', 'hem'])``.
    net_ : skorch.NeuralNetClassifier
        The trained skorch net; ``net_.history`` is the training history.
        It holds no reference to the training data.
    preprocessing_ : transformer or None
        The fitted preprocessing transformer.
    module_spec_ : dict
        What :meth:`build_module` needs besides the parameters: input
        channels of the network, input kind, autocast dtype and memory
        format.
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
    ...                          max_epochs=2, verbose=0, random_state=0,
    ...                          optimizer__betas=(0.9, 0.99))
    >>> clf.fit(data.images, data.target, groups=data.groups).predict(
    ...     data.images[:3]).shape
    (3,)
    >>> clf.get_params()["optimizer__betas"]
    (0.9, 0.99)
    """

    _parameter_constraints: dict = dict(PARAMETER_CONSTRAINTS)

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
        data_on_device="auto",
        mixed_precision="auto",
        channels_last="auto",
        preprocessing_fit_samples=512,
        checkpoint_dir=None,
        resume=False,
        verbose=1,
        progress_bar=False,
        callbacks=None,
        random_state=None,
        **kwargs,
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
        self.data_on_device = data_on_device
        self.mixed_precision = mixed_precision
        self.channels_last = channels_last
        self.preprocessing_fit_samples = preprocessing_fit_samples
        self.checkpoint_dir = checkpoint_dir
        self.resume = resume
        self.verbose = verbose
        self.progress_bar = progress_bar
        self.callbacks = callbacks
        self.random_state = random_state
        # skorch-style pass-through; validated in fit, as skorch does.
        for key, value in kwargs.items():
            setattr(self, key, value)

    # ------------------------------------------------------------ parameters
    def _extra_param_names(self):
        """Names given as ``**kwargs`` (public attributes that are not fitted)."""
        named = set(self._get_param_names())
        return sorted(
            key
            for key in vars(self)
            if key not in named and not key.startswith("_") and not key.endswith("_")
        )

    def get_params(self, deep=True):
        """Get the parameters, the skorch-style prefixed ones included.

        Parameters
        ----------
        deep : bool, default=True
            Also return the parameters of contained estimators (a
            ``preprocessing`` transformer).

        Returns
        -------
        params : dict
        """
        params = super().get_params(deep=deep)
        for key in self._extra_param_names():
            params[key] = getattr(self, key)
        return params

    def set_params(self, **params):
        """Set parameters, skorch-style prefixed ones (``optimizer__betas``) included.

        Parameters
        ----------
        **params : dict

        Returns
        -------
        self : LeukoNetClassifier
        """
        named = {}
        for key, value in params.items():
            if is_pass_through_param(key):
                setattr(self, key, value)
            else:
                named[key] = value
        if named:
            super().set_params(**named)
        return self

    def _pass_through(self):
        return {key: getattr(self, key) for key in self._extra_param_names()}

    def _check_params(self):
        """Checks that ``_parameter_constraints`` cannot express."""
        check_pass_through(self._pass_through(), self._get_param_names())
        if self.batch_size == 1:
            raise ValueError(
                "batch_size=1: batch normalisation needs at least 2 cells per "
                "training batch; use batch_size >= 2 (the default is 32)."
            )
        if self.resume and self.checkpoint_dir is None:
            raise ValueError(
                "resume=True needs checkpoint_dir: the folder of the interrupted fit."
            )
        sigma = np.asarray(self.blur_sigma, dtype=object)
        if sigma.shape != (2,) or not all(
            isinstance(s, (int, float, np.number)) and 0 <= s < np.inf for s in sigma
        ):
            raise ValueError(
                f"blur_sigma must be a (low, high) pair of numbers >= 0, got "
                f"{self.blur_sigma!r}."
            )

    # --------------------------------------------------------------- building
    def _fit_preprocessing(self, X, train_rows, rng):
        from ..preprocessing import make_preprocessing

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
        from ..preprocessing import to_torch_module

        if self.preprocessing_ is not None:
            return to_torch_module(self.preprocessing_)
        return ScaleToUnit() if rgb_input else None

    def _make_network(self, in_channels):
        from ..nn import VGG11, BasicNetwork

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
        from ..nn import ImageAugmenter

        if AUGMENT_MODES[self.augment] == "off":
            return None
        return ImageAugmenter(
            rotation=self.rotation,
            hflip=self.flip,
            vflip=self.flip,
            shear=self.shear,
            blur_sigma=self.blur_sigma,
        )

    def build_module(self):
        """Build the torch module of this classifier, with fresh weights.

        The module (:class:`~sklearn_leuko.nn.LeukoNetModule`: augmentation,
        preprocessing and network) is determined by the parameters and the
        fitted ``classes_``, ``preprocessing_`` and ``module_spec_``.
        :meth:`fit` builds the module it trains here, and
        :func:`~sklearn_leuko.load_safetensors` rebuilds it here before
        loading the stored weights.

        Returns
        -------
        module : sklearn_leuko.nn.LeukoNetModule
        """
        from ..nn import LeukoNetModule

        check_is_fitted(self, ("classes_", "module_spec_"))
        spec = self.module_spec_
        dtype = spec["autocast_dtype"]
        return LeukoNetModule(
            network=self._make_network(spec["in_channels"]),
            preprocess=self._preprocess_module(spec["rgb_input"]),
            augmenter=self._make_augmenter(),
            rgb_input=spec["rgb_input"],
            autocast_dtype=None if dtype is None else getattr(torch, dtype),
            channels_last=spec["channels_last"],
        )

    def build_net(self, module=None, *, device=None):
        """Build the skorch net that :meth:`fit` trains and that predicts.

        The net carries no training data and no training-only callbacks;
        :meth:`fit` adds its validation split and callbacks before training,
        and removes the validation split afterwards. The safetensors loader
        builds the net of a loaded model here too, so a loaded model
        predicts through the same net as a fitted one.

        Parameters
        ----------
        module : torch.nn.Module, default=None
            The module to wrap; ``None`` builds one with :meth:`build_module`.
        device : str, default=None
            ``None``: the fitted ``device_``.

        Returns
        -------
        net : skorch.NeuralNetClassifier
            Not initialised.
        """
        if module is None:
            module = self.build_module()
        return self._build_net(module, device)

    def _build_net(self, module, device=None, **training):
        device = self.device_ if device is None else resolve_device(device)
        on_cuda = device.startswith("cuda")
        settings = {
            "optimizer__weight_decay": self.weight_decay,
            "iterator_train": BatchLoader,
            "iterator_valid": BatchLoader,
            "iterator_train__shuffle": True,
            # Inference needs no gradient memory, and on a GPU small batches
            # leave it idle between kernel launches.
            "iterator_valid__batch_size": (
                max(self.batch_size, _CUDA_PREDICT_BATCH_SIZE)
                if on_cuda
                else self.batch_size
            ),
            # On CUDA the per-batch loss.item() would make the host wait for
            # every batch; the losses are read once per epoch instead. A
            # progress bar shows each batch's loss, so it keeps the item().
            "defer_loss_sync": on_cuda and not self.progress_bar,
        }
        if self.optimizer == "sgd":
            settings["optimizer__momentum"] = self.momentum
        if not self.verbose:
            settings["callbacks__print_log"] = None
        for key, value in self._pass_through().items():
            # Callbacks act only in training; a prediction net has none of the
            # user's callbacks to configure.
            if training or not key.startswith("callbacks__"):
                settings[key] = value
        settings.update(training)
        settings.setdefault("train_split", None)
        return SkorchNet(
            module,
            criterion=torch.nn.CrossEntropyLoss,
            optimizer=OPTIMIZERS[self.optimizer],
            lr=self.lr,
            max_epochs=self.max_epochs,
            batch_size=self.batch_size,
            classes=list(range(len(self.classes_))),
            device=device,
            verbose=self.verbose,
            **settings,
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
                stacklevel=5,
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
        from ..nn import _precision

        kind = torch.device(device).type
        amp = self.mixed_precision
        if amp == "auto":
            amp = (kind == "cuda" and _precision.cuda_has_native_bf16()) or (
                kind == "cpu" and _precision.cpu_has_native_bf16()
            )
        elif amp is True and kind == "cpu" and not _precision.cpu_has_native_bf16():
            raise ValueError(
                "mixed_precision=True: this CPU has no native bfloat16 (no "
                "AVX512-BF16, AMX or Arm BF16), so bfloat16 would be emulated and "
                "slower than float32; use mixed_precision='auto' (float32 here) or "
                "False."
            )
        cl = self.channels_last
        if cl == "auto":
            # Faster on CUDA and, with oneDNN convolutions, on the CPU too.
            cl = True
        return ("bfloat16" if amp else None), bool(cl)

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
    @_fit_context(
        # a preprocessing transformer is validated by its own fit
        prefer_skip_nested_validation=False
    )
    def fit(self, X, y, groups=None, *, validation_data=None):
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
        validation_data : tuple (X_val, y_val) or None, default=None
            Cells that choose the best epoch instead of an inner split of
            ``X`` (then every cell of ``X`` is trained on and
            ``validation_fraction`` is ignored). The paper chose the epoch
            on the validation fold it reports, which
            :func:`~sklearn_leuko.evaluation.run_protocol` reproduces with
            ``epoch_selection="validation_fold"``; scores on those cells are
            then optimistic. Not requested under metadata routing unless
            ``set_fit_request(validation_data=True)``.

        Returns
        -------
        self : LeukoNetClassifier
        """
        self._check_params()
        # Training seeds torch's global generator; fork it so the caller's
        # random stream is left as it was.
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
        try:
            with torch.random.fork_rng(devices=devices), deferred_interrupt():
                return self._fit(X, y, groups, validation_data)
        finally:
            if devices:
                # Hand the device copy of the images (gone with _fit's frame)
                # back to other processes.
                torch.cuda.empty_cache()

    def _check_validation_data(self, validation_data, kind, sample_shape):
        if not (isinstance(validation_data, tuple) and len(validation_data) == 2):
            raise TypeError(
                "validation_data must be a tuple (X_val, y_val) of images and their "
                f"labels, got {type(validation_data).__name__}."
            )
        X_val, y_val = validation_data
        X_val, kind_val = check_net_input(X_val, name="validation_data[0]")
        if kind_val != kind or tuple(X_val.shape[1:]) != sample_shape:
            raise ValueError(
                f"validation_data[0] has samples of shape {tuple(X_val.shape[1:])} "
                f"({kind_val}), but X has {sample_shape} ({kind}); pass validation "
                "cells prepared like the training cells."
            )
        y_val = check_targets(
            y_val, len(X_val), name="validation_data[1]", min_classes=1
        )
        unseen = sorted(set(np.unique(y_val)) - set(self.classes_))
        if unseen:
            raise ValueError(
                f"validation_data[1] has labels {unseen} that y does not have "
                f"({list(self.classes_)})."
            )
        y_val_enc = self._label_encoder.transform(y_val).astype(np.int64)
        return ImageBatchDataset(X_val, y_val_enc)

    def _fit(self, X, y, groups, validation_data=None):
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
        augment_mode = AUGMENT_MODES[self.augment]
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

        if validation_data is None:
            train_rows, valid_rows = self._inner_split(y_enc, groups, rng)
        else:
            train_rows, valid_rows = np.arange(len(y_enc)), None
        self.preprocessing_ = self._fit_preprocessing(X, train_rows, rng)
        preprocess = self._preprocess_module(rgb)
        with torch.no_grad():
            probe = torch.from_numpy(np.array(X[:1]))
            probe = probe.permute(0, 3, 1, 2).float() if rgb else probe.float()
            in_channels = (
                preprocess(probe).shape[1] if preprocess is not None else probe.shape[1]
            )
        autocast_dtype, channels_last = self._resolve_speedups(self.device_)
        self.module_spec_ = {
            "in_channels": int(in_channels),
            "rgb_input": rgb,
            "autocast_dtype": autocast_dtype,
            "channels_last": channels_last,
        }

        train_indices, augment_mask = self._training_rows(
            y_enc, train_rows, augment_mode, rng
        )
        train_set = ImageBatchDataset(X, y_enc, train_indices, augment_mask)
        if validation_data is not None:
            valid_set = self._check_validation_data(
                validation_data, kind, self.input_shape_
            )
        elif valid_rows is not None:
            valid_set = ImageBatchDataset(X, y_enc, valid_rows)
        else:
            valid_set = None
        train_set, valid_set = self._place_data(X, train_set, valid_set)

        module = self.build_module()
        best = None
        callbacks = [("stop_on_interrupt", StopOnInterrupt())]
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
        training = {
            "callbacks": callbacks,
            # A last batch of one sample would break batch norm in training.
            "iterator_train__drop_last": len(train_indices) % self.batch_size == 1,
        }
        if valid_set is None:
            training["callbacks__valid_acc"] = None
        else:
            training["train_split"] = predefined_split(valid_set)
        net = self._build_net(module, **training)

        try:
            start_epoch = self._maybe_resume(net, best, X, y_enc, groups)
            remaining = self.max_epochs - start_epoch
            if start_epoch == 0:
                net.fit(train_set, None)
            elif remaining > 0:
                net.partial_fit(train_set, None, epochs=remaining)
            elif best is not None:
                # Everything was done before the interruption: only restore the best.
                best.on_train_end(net)
        finally:
            # The fitted net must not hold (and pickle) the training images.
            net.train_split = None
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

    def _place_data(self, X, train_set, valid_set):
        """Move the datasets to the device when ``data_on_device`` says so.

        The training and the inner validation cells are rows of one array,
        which goes to the device once; separate ``validation_data`` goes on
        its own.
        """
        separate = valid_set is not None and valid_set.X is not X
        nbytes = X.nbytes + (valid_set.X.nbytes if separate else 0)
        if not resolve_data_on_device(self.data_on_device, self.device_, nbytes):
            return train_set, valid_set
        images = images_to_device(X, self.device_)
        train_set = train_set.to_device(images)
        if separate:
            valid_set = valid_set.to_device(images_to_device(valid_set.X, self.device_))
        elif valid_set is not None:
            valid_set = valid_set.to_device(images)
        return train_set, valid_set

    def _training_rows(self, y_enc, train_rows, augment_mode, rng):
        # augment="all" needs no mask: the augmenter augments every sample
        # of a batch that comes without one.
        augment_mask = None
        indices = train_rows
        if augment_mode in ("minority", "normal"):
            counts = np.bincount(y_enc[train_rows], minlength=len(self.classes_))
            if augment_mode == "minority":
                augmented = int(np.argmin(counts))
            else:
                augmented = self._normal_class_index()
            target_count = int(counts.max())
            augmented_rows = train_rows[y_enc[train_rows] == augmented]
            extra = rng.choice(
                augmented_rows,
                size=max(0, target_count - len(augmented_rows)),
                replace=True,
            )
            indices = np.concatenate([train_rows, extra])
            augment_mask = y_enc == augmented
        return indices, augment_mask

    def _normal_class_index(self):
        classes = [str(c) for c in self.classes_]
        if sorted(classes) != sorted([CANCER_LABEL, NORMAL_LABEL]):
            raise ValueError(
                f"augment='normal' augments the normal ({NORMAL_LABEL!r}) cells, but "
                f"the labels are {classes}; use the C-NMC labels "
                f"{CANCER_LABEL!r}/{NORMAL_LABEL!r}, or augment='minority'."
            )
        return classes.index(NORMAL_LABEL)

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

    def predict_proba(self, X):
        """Class probabilities.

        Parameters
        ----------
        X : ndarray of shape (n_samples, H, W, 3) or (n_samples, C, H, W)
            Input of the same kind and sample shape as in :meth:`fit`.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns in the order of ``classes_``.
        """
        X = self._check_predict_input(X)
        return self.net_.predict_proba(ImageBatchDataset(X)).astype(np.float64)

    def predict(self, X):
        """Predicted labels.

        Parameters
        ----------
        X : ndarray of shape (n_samples, H, W, 3) or (n_samples, C, H, W)

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Labels from ``classes_``.
        """
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def decision_function(self, X):
        """Logit difference (binary) or the logits (multi-class).

        Parameters
        ----------
        X : ndarray of shape (n_samples, H, W, 3) or (n_samples, C, H, W)

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
            For two classes ``logit[classes_[1]] - logit[classes_[0]]``.
        """
        X = self._check_predict_input(X)
        # Outputs stay on the device until the end: one copy, not one per batch.
        device = self.net_.device
        logits = self.net_.forward(ImageBatchDataset(X), training=False, device=device)
        logits = logits.cpu().numpy()
        if logits.shape[1] == 2:
            return logits[:, 1] - logits[:, 0]
        return logits

    def transform(self, X):
        """Penultimate features (bilinear-pooled for the Basic Network).

        Parameters
        ----------
        X : ndarray of shape (n_samples, H, W, 3) or (n_samples, C, H, W)

        Returns
        -------
        features : ndarray of float32, shape (n_samples, n_features_out_)
        """
        X = self._check_predict_input(X)
        module = self.net_.module_
        module.eval()
        dataset = ImageBatchDataset(X)
        out = []
        with torch.no_grad():
            for batch, _ in self.net_.get_iterator(dataset, training=False):
                # A no-op for the batches of BatchLoader, already on the device.
                x = batch["X"].to(self.net_.device)
                out.append(module.features(x))
        # On the device until the end: one copy, not one per batch.
        return torch.cat(out).cpu().numpy().astype(np.float32, copy=False)

    @property
    def _n_features_out(self):
        # Used by ClassNamePrefixFeaturesOutMixin.get_feature_names_out.
        return self.n_features_out_

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
