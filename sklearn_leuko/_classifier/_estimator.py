"""LeukoNetClassifier: the Basic Network of LeukoNet as a scikit-learn classifier.

This module is long because the estimator documents and stores some forty
parameters (the paper's network, augmentation, training, device, checkpoint
and inference settings) in one class, as scikit-learn estimators do. What it
does with them lives in the sibling modules: ``_building`` (modules and net),
``_training`` (inner split, data placement, checkpoints), ``_explain``
(Grad-CAM), ``_tta_outputs`` (test-time augmentation), ``_compile`` (compiled
inference), ``_params``, ``_net``, ``_datapath``, ``_callbacks``,
``_interrupt``, ``_pass_through`` (skorch-style ``**kwargs`` as parameters).
"""

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    ClassNamePrefixFeaturesOutMixin,
    _fit_context,
)
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ..utils import check_groups, check_net_input, check_targets, resolve_device
from ._building import ModuleBuilderMixin
from ._compile import CompileMixin
from ._datapath import ImageBatchDataset
from ._domain import DomainMixin
from ._explain import ExplainMixin
from ._interrupt import deferred_interrupt
from ._params import (
    AUGMENT_MODES,
    PARAMETER_CONSTRAINTS,
    check_pass_through,
)
from ._pass_through import PassThroughParamsMixin
from ._training import CellLevelSplitWarning, InnerSplitWarning, TrainingMixin
from ._tta_outputs import TTAMixin, check_tta
from ._versioning import VersionedPickleMixin

__all__ = ["CellLevelSplitWarning", "InnerSplitWarning", "LeukoNetClassifier"]


class LeukoNetClassifier(
    PassThroughParamsMixin,
    VersionedPickleMixin,
    CompileMixin,
    ModuleBuilderMixin,
    TrainingMixin,
    ExplainMixin,
    TTAMixin,
    DomainMixin,
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
        ``benchmarks/speed/bench_training.py``).
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
        ``benchmarks/accuracy/tta_effect.py``). In a fused stage
        (:class:`~sklearn_leuko.FeatureFusionClassifier`) set its ``tta``
        instead, which applies to all its fitted networks.
    compile : bool, default=False
        Predict (:meth:`predict_proba`, :meth:`predict`,
        :meth:`decision_function`, :meth:`transform`, also with ``tta``)
        through :func:`torch.compile` of the fitted module. The first call
        for each batch shape compiles (about 5 s at 350x350 on a 2-core CPU;
        the last, smaller batch of a prediction once more); then, measured
        on that CPU, prediction ran 1.35x faster (113 -> 153 cells/s,
        ``benchmarks/speed/compile_estimator.py``). Training is not compiled
        (1.04x in ``benchmarks/speed/compile_loop.py``: no gain). Needs
        a C++ compiler on the CPU and Triton on CUDA. Settable after fit;
        model files keep the plain module and compile again when loaded.
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
    domain_summary_ : dict
        Summary of the training cells' penultimate features behind
        :meth:`domain_score` and :meth:`in_domain` (the out-of-domain flag;
        see :mod:`sklearn_leuko._classifier._domain`), learnt at the end of
        :meth:`fit` from at most 1000 training cells, its threshold the 99th
        percentile of at most 500 held-out (inner validation) cells.
    geometry_ : dict
        Only when set by :func:`~sklearn_leuko.datasets.record_geometry`
        (``sklearn-leuko train`` does): the training images' geometry
        ``{"source_size", "crop_size", "image_size"}``. RGB images of another
        size given to :meth:`predict`, :meth:`predict_proba`,
        :meth:`transform` or :meth:`domain_score` are then brought to it by
        :func:`~sklearn_leuko.datasets.fit_to_geometry` (the same share of
        the canvas around the cell's centroid, resized); without it they are
        refused.

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
        compile=False,
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
        self.compile = compile
        self.callbacks = callbacks
        self.random_state = random_state
        # skorch-style pass-through; validated in fit, as skorch does.
        for key, value in kwargs.items():
            setattr(self, key, value)

    # ------------------------------------------------------------ parameters
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
    def __setstate__(self, state):
        # Pickles of sklearn-leuko 0.1 predate the SD-Layer in the stages:
        # they were trained with the fixed deconvolution.
        state.setdefault("stain_layer", "fixed")
        state.setdefault("stain_matrix", "giemsa")
        # Added in 0.2; where the data lives does not change the model.
        state.setdefault("data_on_device", "auto")
        # Models pickled before tta existed predict from the image alone.
        state.setdefault("tta", False)
        state.setdefault("compile", False)
        super().__setstate__(state)

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

    def _check_predict_input(self, X):
        check_is_fitted(self)
        X, kind = check_net_input(X)
        geometry = getattr(self, "geometry_", None)
        if (
            geometry is not None
            and kind == self.input_kind_ == "rgb"
            and tuple(X.shape[1:]) != self.input_shape_
        ):
            from ..datasets._fit_geometry import fit_to_geometry

            # the scale contract: new images get the training crop and size
            X = fit_to_geometry(list(X), geometry)
        if kind != self.input_kind_ or tuple(X.shape[1:]) != self.input_shape_:
            expected = (
                "uint8 RGB images"
                if self.input_kind_ == "rgb"
                else "float32 preprocessed arrays"
            )
            raise ValueError(
                f"X has samples of shape {tuple(X.shape[1:])} ({kind}), but this "
                f"classifier was fitted on {expected} of shape {self.input_shape_}; "
                "resize, crop or preprocess the images the same way as for training "
                "(or record the training geometry with sklearn_leuko.datasets."
                "record_geometry(model, data.geometry): predict then brings new "
                "images to it)."
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
        with self._inference():
            proba = self.net_.predict_proba(ImageBatchDataset(X))
        return proba.astype(np.float64)

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
        with self._inference():
            logits = self.net_.forward(
                ImageBatchDataset(X), training=False, device=device
            )
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
        features : ndarray of float32, shape (n_samples, n_features_out)
            With ``tta`` the mean over the views.
        """
        X = self._check_predict_input(X)
        n_views = self._tta_views()
        if n_views > 1:
            return self._tta_transform(X, n_views)
        self.net_.module_.eval()
        dataset = ImageBatchDataset(X)
        out = []
        with torch.no_grad(), self._inference() as (_, features):
            for batch, _ in self.net_.get_iterator(dataset, training=False):
                # A no-op for the batches of BatchLoader, already on the device.
                x = batch["X"].to(self.net_.device)
                out.append(features(x))
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
