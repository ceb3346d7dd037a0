"""Activation functions of the Basic Network: ReLU, PReLU and P-TELU.

The paper (section 5, the "Stage-1 PTelu / PRelu" and "Stage-2C PTelu /
PRelu" rows of Table 1) swaps the ReLU
of the Basic Network for PReLU (He et al., 2015) or P-TELU (Duggal & Gupta,
2017) to test whether a learnable activation helps.
"""

import math
import numbers

import torch
from torch import nn

from ..utils._validation import check_positive_int
from ._ptelu_kernel import ptelu

__all__ = ["ACTIVATIONS", "PTELU", "make_activation"]


def _check_non_negative_number(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}.")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}.")
    return float(value)


class PTELU(nn.Module):
    r"""Parametric tan-hyperbolic linear unit (P-TELU).

    .. math::

        f(x) = \begin{cases} x & x \ge 0 \\
               \alpha \tanh(\beta x) & x < 0 \end{cases}

    with :math:`\alpha` and :math:`\beta` learnable, one pair per channel
    (axis 1 of the input, as in :class:`torch.nn.PReLU`). Both must stay
    non-negative so that the negative branch is a bounded, monotone
    non-decreasing "soft saturation" with values in :math:`[-\alpha, 0)`.
    The forward pass therefore uses ``alpha.clamp(min=0)`` and
    ``beta.clamp(min=0)``; the stored parameters are left untouched, so a
    parameter pushed below zero by the optimiser acts as 0 (and then receives
    no gradient through the clamp) until it is moved back.

    Forward and backward each run as one fused elementwise kernel that keeps
    only the input for the backward (compiled once per process by
    ``torch.compile``, plain torch operations where no compiler works; see
    ``sklearn_leuko/nn/_ptelu_kernel.py``): about the cost of a ReLU.

    Parameters
    ----------
    num_parameters : int, default=1
        Number of (alpha, beta) pairs: 1 (shared by all channels) or the number
        of channels of the input.
    alpha_init : float, default=1.0
        Initial value of every alpha (non-negative).
    beta_init : float, default=1.0
        Initial value of every beta (non-negative).

    Attributes
    ----------
    alpha : torch.nn.Parameter of shape (num_parameters,)
        Amplitude of the negative branch.
    beta : torch.nn.Parameter of shape (num_parameters,)
        Slope of the negative branch at 0 is ``alpha * beta``.

    References
    ----------
    .. [1] R. Duggal and A. Gupta, "P-TELU: Parametric Tan Hyperbolic Linear
       Unit Activation for Deep Neural Networks", ICCV Workshops 2017.
    .. [2] Mourya et al., "LeukoNet: DCT-based CNN architecture for the
       classification of normal versus leukemic blasts in B-ALL cancer",
       arXiv:1810.07961, section 5 and Table 1.

    Examples
    --------
    >>> import torch
    >>> from sklearn_leuko.nn import PTELU
    >>> act = PTELU(num_parameters=2)
    >>> act(torch.tensor([[1.0, -1.0]])).detach()
    tensor([[ 1.0000, -0.7616]])
    """

    def __init__(self, num_parameters=1, alpha_init=1.0, beta_init=1.0):
        super().__init__()
        self.num_parameters = check_positive_int(num_parameters, "num_parameters")
        alpha_init = _check_non_negative_number(alpha_init, "alpha_init")
        beta_init = _check_non_negative_number(beta_init, "beta_init")
        self.alpha = nn.Parameter(torch.full((self.num_parameters,), alpha_init))
        self.beta = nn.Parameter(torch.full((self.num_parameters,), beta_init))

    def _per_channel(self, param, x):
        if x.ndim >= 2 and self.num_parameters > 1:
            if x.shape[1] != self.num_parameters:
                raise ValueError(
                    f"PTELU has num_parameters={self.num_parameters} but the input "
                    f"has {x.shape[1]} channels (axis 1, shape {tuple(x.shape)}); "
                    "build it with num_parameters equal to the channel count or 1."
                )
        elif self.num_parameters > 1:
            raise ValueError(
                f"PTELU with num_parameters={self.num_parameters} needs an input "
                f"with a channel axis (ndim >= 2), got shape {tuple(x.shape)}."
            )
        # As many axes as x (size 1 but the channels'): what the fused
        # kernel's per-channel reductions expect.
        shape = [1] * x.ndim
        if x.ndim >= 2:
            shape[1] = self.num_parameters
        return param.reshape(shape)

    def forward(self, x):
        alpha = self._per_channel(self.alpha.clamp(min=0), x)
        beta = self._per_channel(self.beta.clamp(min=0), x)
        return ptelu(x, alpha, beta)

    def extra_repr(self):
        return f"num_parameters={self.num_parameters}"


def _relu(num_channels):
    return nn.ReLU()


def _prelu(num_channels):
    return nn.PReLU(num_parameters=num_channels, init=0.25)


def _ptelu(num_channels):
    return PTELU(num_parameters=num_channels)


#: Names accepted by :func:`make_activation` and the ``activation`` parameter
#: of the networks.
ACTIVATIONS = {"relu": _relu, "prelu": _prelu, "ptelu": _ptelu}


def make_activation(name, num_channels):
    """Build an activation module by name.

    Parameters
    ----------
    name : {"relu", "prelu", "ptelu"}
        ``"relu"``: :class:`torch.nn.ReLU`; ``"prelu"``: :class:`torch.nn.PReLU`
        with one slope per channel initialised to 0.25 (He et al., 2015);
        ``"ptelu"``: :class:`PTELU` with one (alpha, beta) pair per channel.
    num_channels : int
        Number of channels of the input (axis 1), used by the learnable
        activations.

    Returns
    -------
    activation : torch.nn.Module

    Examples
    --------
    >>> from sklearn_leuko.nn import make_activation
    >>> make_activation("prelu", 16)
    PReLU(num_parameters=16)
    """
    valid = ", ".join(repr(k) for k in ACTIVATIONS)
    if not isinstance(name, str):
        raise TypeError(
            f"activation must be a string, one of {valid}; got "
            f"{type(name).__name__} {name!r}."
        )
    num_channels = check_positive_int(num_channels, "num_channels")
    key = name.lower()
    if key not in ACTIVATIONS:
        raise ValueError(f"activation={name!r} is not supported; use one of {valid}.")
    return ACTIVATIONS[key](num_channels)
