"""Ctrl-C during training: stop at the next batch boundary, never lose it.

Python raises ``KeyboardInterrupt`` wherever the main thread happens to be
when SIGINT arrives, which can be inside a finaliser or a library call that
swallows exceptions; then the interrupt is lost and training goes on. While
a network trains, :func:`deferred_interrupt` replaces Python's default SIGINT
handler with one that only sets a flag; :class:`StopOnInterrupt` turns the
flag into a ``KeyboardInterrupt`` at the next batch boundary, a place where
raising is safe. A second Ctrl-C raises at once, as usual.
"""

import contextlib
import signal
import threading

from skorch.callbacks import Callback

__all__ = ["StopOnInterrupt", "deferred_interrupt"]

_pending = threading.Event()


def _set_flag(signum, frame):
    if _pending.is_set():
        # Second Ctrl-C: the user insists.
        raise KeyboardInterrupt
    _pending.set()


@contextlib.contextmanager
def deferred_interrupt():
    """Defer Ctrl-C to the next batch boundary while the block runs.

    Only in the main thread and only when SIGINT has Python's default
    handler (a handler installed by the caller, or SIGINT ignored, is left
    alone). An interrupt that arrived but was not consumed by
    :class:`StopOnInterrupt` (e.g. during the last batch) is raised when the
    block ends.
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    _pending.clear()
    previous = signal.signal(signal.SIGINT, _set_flag)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if _pending.is_set():
        _pending.clear()
        raise KeyboardInterrupt


def interrupt_pending():
    """True when a deferred Ctrl-C waits to be raised."""
    return _pending.is_set()


class StopOnInterrupt(Callback):
    """Raise the deferred ``KeyboardInterrupt`` after the current batch."""

    def on_batch_end(self, net, **kwargs):
        if _pending.is_set():
            _pending.clear()
            raise KeyboardInterrupt
