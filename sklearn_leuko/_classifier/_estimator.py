"""LeukoNetClassifier: the Basic Network of LeukoNet as a scikit-learn classifier.

This module is long because the estimator documents and stores some thirty
parameters (the paper's network, augmentation, training, device and
checkpoint settings) in one class, as scikit-learn estimators do; its
helpers live in the sibling modules (``_params``, ``_net``, ``_datapath``,
``_callbacks``, ``_interrupt``).
"""

import json
import numbers
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
    CheckpointLock,
    RestoreBestWeights,
    ResumableCheckpoint,
    StopOnDivergence,
    check_checkpoint_dir,
    data_digest,
    diverged_error,
    fingerprint_mismatch,
    load_checkpoint,
)
from ._datapath import (
    BatchLoader,
    ImageBatchDataset,
    images_to_device,
    resolve_data_on_device,
)
from ._explain import ExplainMixin
from ._interrupt import StopOnInterrupt, deferred_interrupt
from ._net import OPTIMIZERS, ScaleToUnit, SkorchNet
from ._params import (
    AUGMENT_MODES,
    PARAMETER_CONSTRAINTS,
    check_pass_through,
    is_pass_through_param,
)
from ._tta import TTAMixin, check_tta
from ._versioning import VersionedPickleMixin

__all__ = ["CellLevelSplitWarning", "InnerSplitWarning", "LeukoNetClassifier"]

# Default validation / prediction batch size on CUDA (iterator_valid__batch_size).
_CUDA_PREDICT_BATCH_SIZE = 256


class CellLevelSplitWarning(UserWarning):
    """The inner validation split could not use subject IDs."""


class InnerSplitWarning(UserWarning):
    """No inner validation split holds every class on both sides.

    The fit then trains on every cell and keeps the last epoch instead of
    choosing an epoch by the accuracy on one class.
    """


class LeukoNetClassifier(
    VersionedPickleMixin,
    ExplainMixin,
    TTAMixin,
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
    stain_layer : {"learnable", "fixed"}, default="learnable"
        How a named ``preprocessing`` deconvolves the stains. ``"learnable"``
        (the paper: "the Stain Deconvolution Layer (SD Layer) appended at the
        beginning of our Basic Network", Mourya et al. 2018, section 4): the
        optical density goes through an SD-Layer, a learnable inverse stain
        matrix (a 1x1 convolution initialised from ``stain_matrix``) and
        ``tanh`` (Duggal et al. 2017), trained with the network; Stage-2's
        DCT is computed on its output, inside the network, on the device
        (the 95%-energy mask carries no gradient, the kept coefficients do);
        Stage-2C stacks the SD-Layer output and its log-DCT, one shared
        SD-Layer. ``"fixed"``: the fixed deconvolution of
        :class:`~sklearn_leuko.preprocessing.StainDeconvolution` (no learning,
        no ``tanh``), the transformers' own math. A transformer given as
        ``preprocessing`` is used as it is with ``"fixed"``; with
        ``"learnable"`` a :class:`~sklearn_leuko.preprocessing.StainDeconvolution`
        (alone, before a ``LogDCT``, or their ``ChannelUnion``) initialises
        the SD-Layer with its fitted matrix. Ignored without ``preprocessing``.
    stain_matrix : {"giemsa", "hed", "identity", "macenko"} or array-like of \
            shape (3, 3), default="giemsa"
        Stain matrix of a named ``preprocessing``: the initial matrix of the
        SD-Layer, or the fixed one. ``"macenko"`` estimates it from the
        training images (see
        :class:`~sklearn_leuko.preprocessing.StainDeconvolution`).
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
        it is by cell. Both sides hold every class; when no split can (e.g.
        a single subject of a class), an :class:`InnerSplitWarning` says so and
        the fit trains on everything and keeps the last epoch. ``None`` or
        ``0`` trains on everything and keeps the last epoch.
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
        Checked before training: the folder must be writable, and one fit at
        a time may use it (a lock file holding the pid; a lock left by a
        process that no longer runs is taken over with a warning).
    resume : bool, default=False
        With ``checkpoint_dir``: continue the fit recorded there, after
        checking that the parameters and every value of the data (images,
        labels, subject IDs, ``validation_data``) are the same; the result
        equals an uninterrupted fit on CPU, and with ``random_state=None``
        the resumed fit reuses the interrupted fit's seed (same inner split).
        A checkpoint of a fit that completed is returned as it is, with a
        warning, without training again. ``resume=False`` refuses a folder
        that already holds a checkpoint rather than overwrite it.
    verbose : int, default=1
        ``0`` silent, ``1`` skorch's epoch table.
    progress_bar : bool, default=False
        Show a progress bar over the batches of each epoch.
    tta : {False, True, 1, 2, 4, 8}, default=False
        Test-time augmentation: :meth:`predict_proba`, :meth:`predict`,
        :meth:`decision_function` and :meth:`transform` average their output
        over this many exact views of each cell, the first of
        :data:`~sklearn_leuko.nn.DIHEDRAL_VIEWS`: 2 adds the horizontal
        flip, 4 the vertical flip and the rotation by 180 degrees (any image
        shape), 8 (or ``True``) the rotations by 90 and 270 degrees and the
        two diagonal mirrors (square images only; use 4 otherwise).
        ``False`` and 1 predict from the image alone. The views are index
        permutations of the uint8 batch on the network's device (no
        interpolation), made before the preprocessing, so TTA needs the raw
        RGB input (the device form); a classifier fitted on preprocessed
        float arrays refuses ``tta`` > 1. Probabilities are the mean of the
        views' probabilities, the decision function is computed from that
        mean, features are the mean of the views' features. Training is
        unchanged; set it after fit
        (``clf.set_params(tta=8).predict_proba(X)``) without refitting.
        Cost: ``n`` views take ``n`` times the inference time (measured in
        ``benchmarks/tta_effect.py``). In a fused stage
        (:class:`~sklearn_leuko.FeatureFusionClassifier`) set its ``tta``
        instead, which applies to all its fitted networks.
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
        It holds no reference to the training data and no optimizer state
        (no ``partial_fit`` is offered; a resumed fit uses the checkpoint's).
    preprocessing_ : transformer or None
        The fitted preprocessing transformer (with ``stain_layer="learnable"``
        it holds the initial stain matrix and the OD and log-DCT settings of
        the SD-Layer front).
    stain_matrix_ : ndarray of shape (3, 3)
        The stain matrix in use after training (rows = stain OD vectors):
        the learnt one with ``stain_layer="learnable"``, else the fixed one.
    initial_stain_matrix_ : ndarray of shape (3, 3)
        The stain matrix before training (``preprocessing_``'s).
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
        stain_layer="learnable",
        stain_matrix="giemsa",
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
        tta=False,
        callbacks=None,
        random_state=None,
        **kwargs,
    ):
        self.preprocessing = preprocessing
        self.stain_layer = stain_layer
        self.stain_matrix = stain_matrix
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
        self.tta = tta
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
            # Only Macenko draws random numbers: the other matrices leave the
            # random stream (and so the fit) as it was.
            seed = (
                int(rng.randint(np.iinfo(np.int32).max))
                if isinstance(self.stain_matrix, str) and self.stain_matrix == "macenko"
                else None
            )
            transformer = make_preprocessing(
                self.preprocessing, stain_matrix=self.stain_matrix, random_state=seed
            )
        else:
            transformer = clone(self.preprocessing)
        n_fit = min(len(train_rows), self.preprocessing_fit_samples)
        rows = np.sort(rng.choice(train_rows, size=n_fit, replace=False))
        return transformer.fit(X[rows])

    def _preprocess_module(self, rgb_input):
        """The torch twin of the fitted ``preprocessing_`` (or RGB scaling)."""
        from ..preprocessing import to_learnable_module, to_torch_module

        if self.preprocessing_ is None:
            return ScaleToUnit() if rgb_input else None
        if self.stain_layer == "learnable":
            return to_learnable_module(self.preprocessing_)
        return to_torch_module(self.preprocessing_)

    def _stain_modules(self):
        from ..nn import LearnableStainInput
        from ..preprocessing import StainDeconvolution

        check_is_fitted(self)
        learnt = [
            m for m in self.net_.module_.modules() if isinstance(m, LearnableStainInput)
        ]
        fixed = []
        stack = [self.preprocessing_]
        while stack:
            est = stack.pop(0)
            if isinstance(est, StainDeconvolution):
                fixed.append(est)
            elif hasattr(est, "steps"):
                stack.extend(step for _, step in est.steps)
            elif hasattr(est, "transformers_"):
                stack.extend(t for _, t in est.transformers_)
        if not fixed:
            raise AttributeError(
                "This LeukoNetClassifier has no stain deconvolution (its "
                "preprocessing computes none)."
            )
        return learnt, fixed

    @property
    def stain_matrix_(self):
        """The stain matrix after training (rows = stain OD vectors)."""
        learnt, fixed = self._stain_modules()
        if learnt:
            return learnt[0].sd_layer.stain_matrix()
        return np.array(fixed[0].stain_matrix_, dtype=np.float64)

    @property
    def initial_stain_matrix_(self):
        """The stain matrix before training (``preprocessing_``'s)."""
        _, fixed = self._stain_modules()
        return np.array(fixed[0].stain_matrix_, dtype=np.float64)

    def __setstate__(self, state):
        # Pickles of sklearn-leuko 0.1 predate the SD-Layer in the stages:
        # they were trained with the fixed deconvolution.
        state.setdefault("stain_layer", "fixed")
        state.setdefault("stain_matrix", "giemsa")
        # Added in 0.2; where the data lives does not change the model.
        state.setdefault("data_on_device", "auto")
        # Models pickled before tta existed predict from the image alone.
        state.setdefault("tta", False)
        super().__setstate__(state)

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
        """Train/validation rows for best-epoch selection.

        Both sides must hold every class: an epoch chosen by the accuracy on
        one class is the epoch that predicts that class most, and a network
        that never trained on a class cannot learn it. Of the subject-level
        folds, the first (in the seeded order) that holds every class on both
        sides is taken; if none does (e.g. one subject of a class), an
        :class:`InnerSplitWarning` says so and the fit trains on every cell
        and keeps the last epoch, as with ``validation_fraction=None``.
        """
        n = len(y_enc)
        vf = self.validation_fraction
        if not vf:
            return np.arange(n), None
        seed = rng.randint(np.iinfo(np.int32).max)
        labels = np.unique(y_enc)
        n_classes = len(labels)
        if groups is None:
            warnings.warn(
                "LeukoNetClassifier.fit got no groups, so the inner validation split "
                "is at the cell level: cells of one subject can be on both sides and "
                "the best-epoch choice is optimistic. Pass groups=subject_ids (in a "
                "Pipeline: fit(X, y, net__groups=subject_ids); see the README for "
                "cross_validate and GridSearchCV).",
                CellLevelSplitWarning,
                stacklevel=6,
            )
            splitter = StratifiedShuffleSplit(
                n_splits=1, test_size=vf, random_state=seed
            )
            folds = splitter.split(np.zeros(n), y_enc)
            unit = "cells"
        else:
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
            folds = splitter.split(np.zeros(n), y_enc, groups)
            unit = "subjects"
        with warnings.catch_warnings():
            # Few subjects of a class: sklearn warns that a class has fewer
            # members than n_splits; the split is still subject-level.
            warnings.simplefilter("ignore", UserWarning)
            for train, valid in folds:
                if (
                    len(np.unique(y_enc[train])) == n_classes
                    and len(np.unique(y_enc[valid])) == n_classes
                ):
                    return train, valid
        counts = {
            str(c): len(np.unique(groups[y_enc == i]))
            if groups is not None
            else int(np.sum(y_enc == i))
            for i, c in zip(labels, getattr(self, "classes_", labels), strict=True)
        }
        warnings.warn(
            f"no inner validation split (validation_fraction={vf}) holds {unit} of "
            f"every class on both sides ({unit} per class: {counts}); an epoch chosen "
            "by the accuracy on one class would be the one that predicts that class "
            "most. This fit trains on every cell and keeps the last epoch "
            "(best_epoch_ is None). To choose the epoch on held-out cells, pass more "
            "subjects of each class or validation_data=(X_val, y_val).",
            InnerSplitWarning,
            stacklevel=6,
        )
        return np.arange(n), None

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

    def _fingerprint(self, X, y_enc, groups, validation_data):
        """What a resumed fit must share with the interrupted one.

        The parameters (except those that only say where and how loudly to
        train, and ``tta``, which acts at prediction only) and a SHA-256 of
        every value of the data: images, labels (and their names), subject
        IDs and ``validation_data``. A RandomState
        instance is recorded by its type: its state is not a parameter, and
        the seed the fit drew from it is kept in the checkpoint.
        """
        params = {}
        for key, value in self.get_params(deep=False).items():
            if key in (
                "verbose",
                "progress_bar",
                "resume",
                "checkpoint_dir",
                "callbacks",
                "tta",
            ):
                continue
            if isinstance(value, np.random.RandomState):
                value = "<RandomState instance>"
            params[key] = repr(value)
        X_val, y_val = validation_data if validation_data is not None else (None, None)
        return {
            "params": json.dumps(params, sort_keys=True),
            "data": data_digest(
                X,
                y_enc,
                np.asarray(self.classes_, dtype=object),
                None if groups is None else np.asarray(groups, dtype=object),
                X_val,
                None if y_val is None else np.asarray(y_val, dtype=object),
            ),
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
        except BaseException:
            # A fit that failed (diverged, interrupted, refused) leaves no
            # half-fitted model behind that could be taken for a trained one.
            self._forget_fit()
            raise
        finally:
            if devices:
                # Hand the device copy of the images (gone with _fit's frame)
                # back to other processes.
                torch.cuda.empty_cache()

    def _forget_fit(self):
        for key in list(vars(self)):
            if key == "_label_encoder" or (
                key.endswith("_") and not key.startswith("__")
            ):
                delattr(self, key)

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
        missing = sorted(set(self.classes_) - set(np.unique(y_val)))
        if missing:
            warnings.warn(
                f"validation_data[1] has no {missing} cells: the best epoch is chosen "
                "by the accuracy on one class only, which favours predicting that "
                "class. Pass validation cells of every class.",
                UserWarning,
                stacklevel=5,
            )
        return X_val, y_val

    def _checkpoint_run(self, X, y_enc, groups, validation_data):
        """Check, lock and read the checkpoint folder before any training.

        Returns ``(lock, saved, fingerprint, fit_seed)``; ``lock`` must be
        released by the caller. The rules:

        - the folder must be writable (checked now, not after an epoch);
        - one fit at a time per folder (:class:`CheckpointLock`);
        - ``resume=False`` never overwrites an existing checkpoint: it could
          be another run's, or the only copy of a long training;
        - ``resume=True`` continues the checkpoint only for the same
          parameters and data (all of it hashed).
        """
        folder = self.checkpoint_dir
        check_checkpoint_dir(folder)
        lock = CheckpointLock(folder).acquire()
        try:
            saved = load_checkpoint(folder)
            if saved is not None and not self.resume:
                status = (
                    "a completed fit"
                    if saved["completed"]
                    else f"a fit interrupted after epoch {saved['epoch']}"
                )
                raise ValueError(
                    f"checkpoint_dir {folder} already holds a checkpoint ({status}); "
                    "resume=False will not overwrite it. Set resume=True to continue "
                    "it (same parameters and data), or delete "
                    f"{folder}/checkpoint.pt, or choose another checkpoint_dir."
                )
            fingerprint = self._fingerprint(X, y_enc, groups, validation_data)
            if saved is not None:
                differs = fingerprint_mismatch(saved["fingerprint"], fingerprint)
                if differs is not None:
                    raise ValueError(
                        f"the checkpoint in {folder} was written by a fit with "
                        f"{differs}; resume needs the same estimator and data (or "
                        "delete the checkpoint to start over)."
                    )
        except BaseException:
            lock.release()
            raise
        fit_seed = None
        if not isinstance(self.random_state, numbers.Integral):
            # random_state=None or a RandomState: draw the seed of every random
            # choice of this fit once and keep it in the checkpoint, so a
            # resumed fit validates on the same subjects it validated on.
            if saved is not None and saved["fit_seed"] is not None:
                fit_seed = int(saved["fit_seed"])
            else:
                fit_seed = int(
                    check_random_state(self.random_state).randint(
                        np.iinfo(np.int32).max
                    )
                )
        return lock, saved, fingerprint, fit_seed

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
        # A model that could never predict with these settings is not trained.
        check_tta(self.tta, kind, X.shape[1:])
        # Checked before any work, so that a device torch cannot use here is a
        # clear error and not a RuntimeError in the first batch.
        self.device_ = resolve_device(self.device)
        self._label_encoder = LabelEncoder().fit(y)
        self.classes_ = self._label_encoder.classes_
        y_enc = self._label_encoder.transform(y).astype(np.int64)
        self.input_shape_ = tuple(X.shape[1:])
        self.input_kind_ = kind
        if validation_data is not None:
            validation_data = self._check_validation_data(
                validation_data, kind, self.input_shape_
            )

        if self.checkpoint_dir is None:
            lock, saved, fingerprint, fit_seed = None, None, None, None
        else:
            lock, saved, fingerprint, fit_seed = self._checkpoint_run(
                X, y_enc, groups, validation_data
            )
        rng = check_random_state(self.random_state if fit_seed is None else fit_seed)
        try:
            return self._train(
                X,
                y_enc,
                groups,
                validation_data,
                rng,
                augment_mode,
                saved,
                fingerprint,
                fit_seed,
            )
        finally:
            if lock is not None:
                lock.release()

    def _train(
        self,
        X,
        y_enc,
        groups,
        validation_data,
        rng,
        augment_mode,
        saved,
        fingerprint,
        fit_seed,
    ):
        rgb = self.input_kind_ == "rgb"
        seed = int(rng.randint(np.iinfo(np.int32).max))
        torch.manual_seed(seed)

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
            X_val, y_val = validation_data
            y_val_enc = self._label_encoder.transform(y_val).astype(np.int64)
            valid_set = ImageBatchDataset(X_val, y_val_enc)
        elif valid_rows is not None:
            valid_set = ImageBatchDataset(X, y_enc, valid_rows)
        else:
            valid_set = None
        train_set, valid_set = self._place_data(X, train_set, valid_set)

        module = self.build_module()
        self._warn_degenerate_pooling(module.network)
        best = None
        # The divergence guard comes first: no best-epoch copy and no
        # checkpoint is ever taken of non-finite weights.
        callbacks = [
            ("stop_on_interrupt", StopOnInterrupt()),
            ("stop_on_divergence", StopOnDivergence(self.lr, len(self.classes_))),
        ]
        if valid_set is not None:
            best = RestoreBestWeights(patience=self.patience)
            callbacks.append(("restore_best", best))
        if self.checkpoint_dir is not None:
            callbacks.append(
                (
                    "checkpoint",
                    ResumableCheckpoint(
                        self.checkpoint_dir, fingerprint, best, fit_seed=fit_seed
                    ),
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
            if saved is None:
                net.fit(train_set, None)
            else:
                start_epoch = self._resume_from(net, best, saved)
                remaining = self.max_epochs - start_epoch
                if saved["completed"] or remaining <= 0:
                    warnings.warn(
                        f"checkpoint_dir {self.checkpoint_dir} holds a completed fit "
                        f"of these parameters and data ({start_epoch} epochs); with "
                        "resume=True its result is returned without training again. "
                        "To train afresh, delete the checkpoint or choose another "
                        "checkpoint_dir.",
                        UserWarning,
                        stacklevel=5,
                    )
                    if best is not None:
                        best.on_train_end(net)
                else:
                    net.partial_fit(train_set, None, epochs=remaining)
        except RuntimeError as exc:
            if "overflow" not in str(exc):
                raise
            # e.g. Adam with lr=1e30: its step size overflows float32.
            raise diverged_error(
                self.lr,
                len(net.history),
                f"the optimizer step overflowed ({str(exc).splitlines()[0]})",
            ) from exc
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
        # No partial_fit is offered and a refit starts afresh: the optimizer
        # state (two tensors per weight for Adam) would only make every saved
        # model three times larger. Resuming uses the checkpoint's copy.
        net.optimizer_.state.clear()
        # Nor the last batch's gradients: they are not part of the model.
        for parameter in net.module_.parameters():
            parameter.grad = None
        self.net_ = net
        self.n_features_out_ = int(module.network.n_features)
        return self

    def _warn_degenerate_pooling(self, network):
        if not hasattr(network, "feature_map_size"):
            return
        height, width = (
            self.input_shape_[:2]
            if self.input_kind_ == "rgb"
            else self.input_shape_[1:]
        )
        if network.feature_map_size(height, width) == (1, 1):
            warnings.warn(
                f"The Basic Network's last feature map is 1x1 for {height}x{width} "
                "images, so bilinear pooling degenerates to the outer product of a "
                "single vector. Use images of at least 65x65 pixels (C-NMC cells: "
                "350x350).",
                UserWarning,
                stacklevel=5,
            )

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

    def _resume_from(self, net, best, saved):
        """Load a checked checkpoint into ``net``; returns its epoch count."""
        from skorch.history import History

        net.initialize()
        try:
            net.module_.load_state_dict(saved["module"])
            net.optimizer_.load_state_dict(saved["optimizer"])
            net.history_ = History(saved["history"])
            if best is not None and saved["best"] is not None:
                best.set_state(saved["best"])
            torch.set_rng_state(saved["torch_rng"])
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(
                f"checkpoint {self.checkpoint_dir}/checkpoint.pt does not fit this "
                f"network ({type(exc).__name__}: {str(exc).splitlines()[0]}); delete "
                "it to start over."
            ) from exc
        return int(saved["epoch"])

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
            Columns in the order of ``classes_``; with ``tta`` the mean over
            the views.
        """
        X = self._check_predict_input(X)
        n_views = self._tta_views()
        if n_views > 1:
            return self._tta_predict_proba(X, n_views)
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
            For two classes ``logit[classes_[1]] - logit[classes_[0]]``. With
            ``tta`` the logits of the averaged probabilities,
            ``log(proba)`` (for two classes ``log(p1) - log(p0)``), so the
            sign agrees with :meth:`predict`.
        """
        X = self._check_predict_input(X)
        n_views = self._tta_views()
        if n_views > 1:
            return self._tta_decision_function(X, n_views)
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
            With ``tta`` the mean over the views.
        """
        X = self._check_predict_input(X)
        n_views = self._tta_views()
        if n_views > 1:
            return self._tta_transform(X, n_views)
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
