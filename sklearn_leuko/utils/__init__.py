"""Shared helpers: input validation and device resolution."""

from ._device import resolve_device
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
    "resolve_device",
]
