"""Safe model files: fitted estimators as one ``.safetensors`` file.

``joblib`` / ``pickle`` files run code when they are loaded, so a model file
from an untrusted source can do anything on the machine that opens it. The
format written here cannot: a ``.safetensors`` file holds named tensors and a
string-to-string metadata header, nothing executable. The estimator is stored
as

- **tensors**: the network weights and buffers (convolutions, batch-norm
  running statistics, PReLU / PTELU parameters, the preprocessing buffers),
  every numeric fitted array (stain matrix, log-DCT thresholds, a final
  classifier's ``coef_`` / ``intercept_``, a scaler's ``mean_`` /
  ``scale_``), each under the dotted path of the attribute that holds it,
  e.g. ``estimator.estimators_[0].steps[0][1].net_.module.network.stem.0.weight``;
- **metadata** ``"config"``: a JSON tree describing every estimator of the
  model (its class, from a fixed list, its ``get_params(deep=False)`` and its
  non-array fitted attributes such as ``classes_`` and ``input_shape_``),
  plus ``"format"``, ``"format_version"`` and the library versions.

:func:`load_safetensors` rebuilds the estimators by calling their
constructors with the stored parameters, sets the fitted attributes and
loads the tensors; nothing is unpickled and no class outside the fixed list
is ever instantiated.

The format's shared names are in ``_format``, writing in ``_writer``, reading
(and the checks of ``_schema``) in ``_reader``.
"""

from ._format import FORMAT, FORMAT_VERSION
from ._reader import load_safetensors
from ._writer import save_safetensors

__all__ = ["FORMAT", "FORMAT_VERSION", "load_safetensors", "save_safetensors"]
