"""Pure PyTorch building blocks of LeukoNet (no scikit-learn inside).

- :class:`BasicNetwork` (strided stem, 5 conv blocks, bilinear pooling) and
  the :class:`VGG11` baseline;
- :class:`BilinearPool`, :class:`PTELU` and :func:`make_activation`;
- :class:`SDLayer`, the learnable stain deconvolution;
- :class:`ImageAugmenter`, batched on-device augmentation with kornia.
"""

from ._activations import ACTIVATIONS, PTELU, make_activation
from ._augment import ImageAugmenter
from ._bilinear import BilinearPool
from ._networks import VGG11, BasicNetwork
from ._sd_layer import SDLayer

__all__ = [
    "ACTIVATIONS",
    "PTELU",
    "VGG11",
    "BasicNetwork",
    "BilinearPool",
    "ImageAugmenter",
    "SDLayer",
    "make_activation",
]
