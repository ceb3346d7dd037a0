"""Image preprocessing of LeukoNet as scikit-learn transformers with a torch twin.

- :class:`StainDeconvolution`: optical density and stain deconvolution
  (the fixed counterpart of the SD-Layer; Stage-1 input);
- :class:`LogDCT`: the energy-thresholded, sign-preserving log10 of the 2-D
  DCT (Stage-2 input);
- :class:`ChannelUnion`: stack transformer outputs along the channel axis
  (Stage-2C input);
- :class:`StainNormalizer`: map any microscope's stain appearance to
  reference cells (Reinhard, Macenko, Vahadane; uint8 RGB out);
- :class:`CellSegmenter`: cut one white cell out of a smear crop onto black,
  centred (the C-NMC form; uint8 RGB out);
- :func:`make_preprocessing` builds them by name, :func:`to_torch_module`
  turns a fitted one into a torch module that runs on the network's device.

Transformers take uint8 RGB images ``(n, H, W, 3)`` (``LogDCT``: optical
density ``(n, C, H, W)``) and emit float32 ``(n, C, H, W)``.
"""

from ._dct import LogDCT
from ._factory import PREPROCESSING_NAMES, make_preprocessing
from ._segmenter import CellSegmenter
from ._stain import STAIN_MATRICES, StainDeconvolution
from ._stain_normalizer import StainNormalizer
from ._to_module import to_learnable_module, to_torch_module
from ._union import ChannelUnion

__all__ = [
    "PREPROCESSING_NAMES",
    "STAIN_MATRICES",
    "CellSegmenter",
    "ChannelUnion",
    "LogDCT",
    "StainDeconvolution",
    "StainNormalizer",
    "make_preprocessing",
    "to_learnable_module",
    "to_torch_module",
]
