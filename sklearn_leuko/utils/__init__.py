"""Shared helpers: input validation, image size limits, device resolution, CPU memory reuse."""

from ._device import resolve_device
from ._image_limits import max_image_pixels
from ._malloc import reuse_freed_memory
from ._validation import (
    check_channels_first,
    check_groups,
    check_net_input,
    check_rgb_images,
    check_targets,
)

__all__ = [
    "check_channels_first",
    "check_groups",
    "check_net_input",
    "check_rgb_images",
    "check_targets",
    "max_image_pixels",
    "resolve_device",
    "reuse_freed_memory",
]
