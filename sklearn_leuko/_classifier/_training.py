"""How a LeukoNetClassifier trains: inner split, rows, data placement, checkpoints.

The epoch loop itself is skorch's; this module prepares what it runs on
(which cells train and which choose the epoch, which are augmented, where the
images live) and what it leaves behind (best weights, resumable checkpoints,
no half-fitted model after a failure).
"""

import json
import numbers
import warnings

import numpy as np
import torch
from sklearn.base import (
    clone,
)
from sklearn.model_selection import StratifiedGroupKFold, StratifiedShuffleSplit
from sklearn.utils import check_random_state
from skorch.callbacks import ProgressBar
from skorch.helper import predefined_split

from .. import __version__
from ..metrics import CANCER_LABEL, NORMAL_LABEL
from ..utils import check_net_input, check_targets
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
    ImageBatchDataset,
    images_to_device,
    resolve_data_on_device,
)
from ._interrupt import StopOnInterrupt


class CellLevelSplitWarning(UserWarning):
    """The inner validation split could not use subject IDs."""


class InnerSplitWarning(UserWarning):
    """No inner validation split holds every class on both sides.

    The fit then trains on every cell and keeps the last epoch instead of
    choosing an epoch by the accuracy on one class.
    """


class TrainingMixin:
    """Mixin of :class:`~sklearn_leuko.LeukoNetClassifier`: the training machinery."""

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

    def _fingerprint(self, X, y_enc, groups, validation_data):
        """What a resumed fit must share with the interrupted one.

        The parameters (except those that only say where and how loudly to
        train, and ``tta`` and ``compile``, which act at prediction only) and a SHA-256 of
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
                "compile",
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
        self._fit_domain(X, y_enc, train_rows, valid_rows, validation_data)
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
