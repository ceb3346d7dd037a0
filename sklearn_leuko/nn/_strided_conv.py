"""A strided convolution whose input gradient is cheap on the CPU.

Training the SD-Layer (:class:`~sklearn_leuko.nn.SDLayer`) needs the gradient
with respect to the input of the Basic Network's first, strided convolution,
at full resolution. oneDNN computes that gradient of a stride-2 5x5
convolution with 3 input channels at a fraction of the speed of its other
convolutions: at 350x350, batch 32, on 2 cores of an AVX2 CPU it took
75-100 ms, a larger cost than the whole rest of the SD-Layer.

The same gradient is a stride-1 convolution in the space-to-depth domain,
which oneDNN runs well: split the (zero-padded) input into ``s x s`` blocks,
so that the strided convolution becomes a stride-1 convolution over
``C * s * s`` block channels with a ``ceil(k / s)``-sized kernel; the input
gradient of that is an ordinary ("full") convolution of the output gradient
with the flipped, transposed block kernel, followed by an un-blocking copy.
Measured on the same batch: 30 ms plus a 7 ms copy. The forward pass and the
weight gradient keep PyTorch's own kernels.

Under bfloat16 autocast (the default on CPUs with native bfloat16) PyTorch's
strided backward took 46 ms more than the weight gradient alone on an
AVX512-BF16 CPU, the block form in bfloat16 11 ms plus a 3 ms copy
(:func:`_unblock`).
"""

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["StridedConv2d"]

# oneDNN vectorises over output channels: on an AVX2 CPU the 12 block channels
# of an RGB stem at stride 2 ran at 42 ms, padded to 16 at 30 ms (on an
# AVX-512 CPU both took 23 ms).
_CHANNEL_MULTIPLE = 8


def _block_geometry(kernel, stride, padding, size, out_size):
    """How one spatial dimension maps onto ``stride``-sized blocks.

    Returns ``(lead, padded_kernel, block_kernel, before, after, n_blocks)``:
    the zeros put in front of the kernel so that its first tap falls on a
    block boundary, the kernel length after padding to whole blocks, that
    length in blocks, how many block rows of zeros the output gradient needs
    before and after it (negative: crop) for the full convolution to yield
    exactly ``n_blocks = ceil(size / stride)`` block rows of input gradient.
    """
    lead = (-padding) % stride
    padded_kernel = -(-(lead + kernel) // stride) * stride
    block_kernel = padded_kernel // stride
    before = block_kernel - 1 - (padding + lead) // stride
    n_blocks = -(-size // stride)
    after = n_blocks - out_size - before + block_kernel - 1
    return lead, padded_kernel, block_kernel, before, after, n_blocks


def _input_gradient(grad_output, weight, stride, padding, input_size):
    """Gradient of ``conv2d(x, weight, stride, padding)`` with respect to ``x``."""
    n, _, out_h, out_w = grad_output.shape
    out_channels, in_channels, kernel_h, kernel_w = weight.shape
    (stride_h, stride_w), (height, width) = stride, input_size
    lead_h, pk_h, bk_h, before_h, after_h, blocks_h = _block_geometry(
        kernel_h, stride_h, padding[0], height, out_h
    )
    lead_w, pk_w, bk_w, before_w, after_w, blocks_w = _block_geometry(
        kernel_w, stride_w, padding[1], width, out_w
    )
    padded = F.pad(
        weight, (lead_w, pk_w - lead_w - kernel_w, lead_h, pk_h - lead_h - kernel_h)
    )
    block_channels = stride_h * stride_w * in_channels
    # Block channels ordered (row in block, column in block, input channel), so
    # that un-blocking a channels-last result moves whole pixels.
    block_kernel = (
        padded.reshape(out_channels, in_channels, bk_h, stride_h, bk_w, stride_w)
        .permute(0, 3, 5, 1, 2, 4)
        .reshape(out_channels, block_channels, bk_h, bk_w)
    )
    transposed = block_kernel.flip(-2, -1).transpose(0, 1)
    extra = -block_channels % _CHANNEL_MULTIPLE
    transposed = F.pad(transposed, (0, 0, 0, 0, 0, 0, 0, extra))
    if before_h == after_h and before_w == after_w and before_h >= 0 and before_w >= 0:
        blocks = F.conv2d(grad_output, transposed, padding=(before_h, before_w))
    else:
        padded_grad = F.pad(grad_output, (before_w, after_w, before_h, after_h))
        blocks = F.conv2d(padded_grad, transposed)
    pixels = _unblock(blocks, (stride_h, stride_w), in_channels)
    return pixels[:, :height, :width].permute(0, 3, 1, 2)


def _unblock(blocks, stride, in_channels):
    """Block channels ``(n, >= C*sh*sw, bh, bw)`` -> pixels ``(n, bh*sh, bw*sw, C)``.

    The copy moves runs of ``sw * C`` elements (one block row of a block:
    whole pixels), and its time goes with the number of elements moved, not
    bytes: 6 bfloat16 values took as long as 6 float32. So where the layout
    allows, each run moves as 8- or 4-byte words (a stride-2 RGB stem: 3
    words instead of 6 values; bfloat16 4.8 ms -> 2.7 ms at 350x350, batch 32).
    """
    n, _, blocks_h, blocks_w = blocks.shape
    stride_h, stride_w = stride
    run = stride_w * in_channels
    cells = blocks.permute(0, 2, 3, 1)  # channels-last blocks: a view
    # Viewing as integers cuts the autograd graph: not when differentiating
    # the gradient itself (create_graph=True).
    word = None if blocks.requires_grad else _word(cells, run)
    per_word = 1 if word is None else word.itemsize // cells.element_size()
    words = cells if word is None else cells.view(word)
    rows = (
        words[..., : stride_h * run // per_word]
        .reshape(n, blocks_h, blocks_w, stride_h, run // per_word)
        .permute(0, 1, 3, 2, 4)
        .reshape(n, blocks_h * stride_h, blocks_w * run // per_word)
    )
    if word is not None:
        rows = rows.view(blocks.dtype)
    return rows.reshape(n, blocks_h * stride_h, blocks_w * stride_w, in_channels)


def _word(cells, run):
    """The widest integer dtype that can move runs of ``run`` elements of ``cells``."""
    size = cells.element_size()
    for word in (torch.int64, torch.int32):
        per_word = word.itemsize // size
        if (
            per_word > 1
            and run % per_word == 0
            and cells.stride(-1) == 1
            and cells.shape[-1] % per_word == 0
            and all(s % per_word == 0 for s in cells.stride()[:-1])
            and cells.storage_offset() % per_word == 0
        ):
            return word
    return None


class _StridedConv2dFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding):
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding, ctx.has_bias = stride, padding, bias is not None
        return F.conv2d(x, weight, bias, stride=stride, padding=padding)

    @staticmethod
    def backward(ctx, grad_output):
        x, weight = ctx.saved_tensors
        need_x, need_weight, need_bias = ctx.needs_input_grad[:3]
        grad_x = grad_weight = grad_bias = None
        if need_weight or need_bias:
            _, grad_weight, grad_bias = torch.ops.aten.convolution_backward(
                grad_output,
                x,
                weight,
                [weight.shape[0]] if ctx.has_bias else None,
                list(ctx.stride),
                list(ctx.padding),
                [1, 1],
                False,
                [0, 0],
                1,
                [False, need_weight, need_bias and ctx.has_bias],
            )
        if need_x:
            grad_x = _input_gradient(
                grad_output, weight, ctx.stride, ctx.padding, x.shape[2:]
            )
        return grad_x, grad_weight, grad_bias, None, None


class StridedConv2d(nn.Conv2d):
    """:class:`torch.nn.Conv2d` with a faster input gradient for strided convolutions.

    The same module as ``nn.Conv2d`` (same parameters, ``state_dict`` and
    output); only the backward pass differs, and only on the CPU, in float32
    or float64 or under bfloat16 autocast (which it applies as autocast
    applies it to ``nn.Conv2d``: bfloat16 output, gradients in the dtype of
    the input and the parameters), for a stride above 1, zero padding given
    as numbers, no dilation and no groups, when the input requires a gradient.
    There the gradient with respect to the input is computed as a stride-1
    convolution in the space-to-depth domain (see the module docstring),
    equal to PyTorch's up to floating-point rounding. Everywhere else it is
    ``nn.Conv2d``.

    Input narrower than the stride (e.g. 1x1 images) is padded on the right
    with zero columns up to the stride and the output cropped to its true
    width: the same output and gradients, but oneDNN's bfloat16 weight
    gradient returned garbage for such input without it.

    The Basic Network's stem uses it: the learnable SD-Layer before it
    receives its gradient through that input gradient.

    Examples
    --------
    >>> import torch
    >>> from sklearn_leuko.nn import StridedConv2d
    >>> conv = StridedConv2d(3, 8, 5, stride=2, padding=2)
    >>> x = torch.rand(2, 3, 16, 16, requires_grad=True)
    >>> conv(x).sum().backward()
    >>> x.grad.shape
    torch.Size([2, 3, 16, 16])
    """

    def _block_gradient_dtype(self, x):
        """The dtype to run the block-gradient path in, or None for nn.Conv2d's."""
        if not (
            x.requires_grad
            and torch.is_grad_enabled()
            and x.device.type == "cpu"
            and x.ndim == 4
            and max(self.stride) > 1
            and self.groups == 1
            and self.dilation == (1, 1)
            and self.padding_mode == "zeros"
            and not isinstance(self.padding, str)
        ):
            return None
        if torch.is_autocast_enabled("cpu"):
            # What autocast would run nn.Conv2d in; float16 convolutions are
            # left to PyTorch.
            dtype = torch.get_autocast_dtype("cpu")
            return dtype if dtype == torch.bfloat16 else None
        if x.dtype in (torch.float32, torch.float64) and x.dtype == self.weight.dtype:
            return x.dtype
        return None

    def forward(self, x):
        narrow = x.ndim == 4 and x.shape[-1] < max(2, self.stride[1])
        if narrow and self.padding_mode == "zeros":
            return self._forward_narrow(x)
        return self._forward(x)

    def _forward_narrow(self, x):
        # Images narrower than the stride (e.g. 1x1, or Hx1 at stride 2):
        # oneDNN's bfloat16 weight gradient of a strided convolution,
        # nn.Conv2d's included, returned uninitialised memory for them
        # (PyTorch 2.13: random values, NaN or 1e37), for channels-last input
        # on an AVX512-BF16 CPU and for any layout on an AMX CPU. Zero columns
        # on the right up to the stride, standard strides, and the output
        # cropped to its true width give the same output and gradients.
        # Standard strides even where is_contiguous() would pass a 1x1
        # channels-last tensor as it is.
        x = x.clone(memory_format=torch.contiguous_format)
        width, stride = x.shape[-1], self.stride[1]
        if width >= stride:
            return self._forward(x)
        padding = 0 if isinstance(self.padding, str) else self.padding[1]
        span = self.dilation[1] * (self.kernel_size[1] - 1) + 1
        out_width = (width + 2 * padding - span) // stride + 1
        if out_width < 1:
            return self._forward(x)  # PyTorch's own error for a too small input
        out = self._forward(F.pad(x, (0, stride - width)))
        return out[..., :out_width]

    def _forward(self, x):
        dtype = self._block_gradient_dtype(x)
        if dtype is None:
            return super().forward(x)
        # Under autocast, cast as autocast casts nn.Conv2d's arguments; the
        # casts' own backward returns float32 gradients to x and the weight.
        weight = self.weight.to(dtype)
        bias = None if self.bias is None else self.bias.to(dtype)
        with torch.autocast("cpu", enabled=False):
            return _StridedConv2dFunction.apply(
                x.to(dtype), weight, bias, self.stride, self.padding
            )
