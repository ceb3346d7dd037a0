"""Pure PyTorch building blocks of LeukoNet (no scikit-learn inside).

- :class:`BasicNetwork` (strided stem, 5 conv blocks, bilinear pooling) and
  the :class:`VGG11` baseline;
- :class:`BilinearPool`, :class:`PTELU` and :func:`make_activation`;
- :class:`SDLayer`, the learnable stain deconvolution, and
  :class:`StridedConv2d`, the stem convolution that passes it a cheap gradient;
- :class:`ImageAugmenter`, batched on-device augmentation with kornia;
- :class:`LeukoNetModule`, the whole forward path (augmentation,
  preprocessing, network) that the classifier trains;
- :func:`cpu_has_native_bf16` and :func:`autocast_context`: where bfloat16
  mixed precision pays off;
- the torch twins of the preprocessing transformers
  (:class:`StainDeconvolutionModule`, :class:`LogDCTModule`,
  :class:`ChannelConcat`);
- :func:`grad_cam`, Grad-CAM heatmaps of the last conv block;
- :func:`tta_predict_proba`, :func:`mean_over_views` and :func:`dihedral_view`,
  test-time augmentation over the exact flips and 90-degree rotations;
- ``functional`` (the module ``_functional``): optical density, stain deconvolution
  and the thresholded log-DCT as torch functions (the library's only
  implementation of that math).
"""

from . import _functional as functional
from ._activations import ACTIVATIONS, PTELU, make_activation
from ._augment import ImageAugmenter
from ._bilinear import BilinearPool
from ._functional import (
    dct2,
    dct_matrix,
    energy_threshold,
    idct2,
    log_dct,
    od_to_stains,
    rgb_to_od,
)
from ._gradcam import grad_cam
from ._leukonet import LeukoNetModule
from ._networks import VGG11, BasicNetwork
from ._precision import autocast_context, cpu_has_native_bf16, cuda_has_native_bf16
from ._preprocess import (
    ChannelConcat,
    LearnableStainInput,
    LogDCTModule,
    StainDeconvolutionModule,
)
from ._sd_layer import SDLayer
from ._strided_conv import StridedConv2d
from ._dihedral import (
    DIHEDRAL_VIEWS,
    dihedral_view,
    inverse_dihedral_view,
    mean_over_views,
    tta_predict_proba,
)

__all__ = [
    "ACTIVATIONS",
    "DIHEDRAL_VIEWS",
    "PTELU",
    "VGG11",
    "BasicNetwork",
    "BilinearPool",
    "ChannelConcat",
    "LearnableStainInput",
    "LeukoNetModule",
    "LogDCTModule",
    "StainDeconvolutionModule",
    "ImageAugmenter",
    "SDLayer",
    "StridedConv2d",
    "autocast_context",
    "cpu_has_native_bf16",
    "cuda_has_native_bf16",
    "dct2",
    "dct_matrix",
    "dihedral_view",
    "energy_threshold",
    "functional",
    "grad_cam",
    "idct2",
    "inverse_dihedral_view",
    "log_dct",
    "make_activation",
    "mean_over_views",
    "od_to_stains",
    "rgb_to_od",
    "tta_predict_proba",
]
