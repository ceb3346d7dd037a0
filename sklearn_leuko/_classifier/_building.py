"""How a LeukoNetClassifier turns its parameters and fitted state into torch modules.

The preprocessing it fits, the stain matrix it learns, the network, the
augmenter, the :class:`~sklearn_leuko.nn.LeukoNetModule` that composes them
and the skorch net that trains it. :meth:`build_module` is the one place the
module is built: :meth:`fit` and the safetensors loader both call it.
"""

import numpy as np
import torch
from sklearn.base import (
    clone,
)
from sklearn.utils.validation import check_is_fitted

from ..utils import resolve_device
from ._datapath import (
    BatchLoader,
)
from ._net import OPTIMIZERS, ScaleToUnit, SkorchNet
from ._params import (
    AUGMENT_MODES,
)

# Default validation / prediction batch size on CUDA (iterator_valid__batch_size).
_CUDA_PREDICT_BATCH_SIZE = 256


class ModuleBuilderMixin:
    """Mixin of :class:`~sklearn_leuko.LeukoNetClassifier`: modules and net."""

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
