"""Atomic file writes: a reader never sees a half-written file.

Every file the library writes for the user to keep (models, checkpoints,
prediction tables) goes through :func:`atomic_write`: the content is written
to a temporary file in the destination folder, flushed to disk, given the
permissions an ordinary new file would get (``0o666`` minus the umask, not
the ``0o600`` of :func:`tempfile.mkstemp`), then renamed over the target. An
error or a kill leaves the old file (or none) and no temporary file behind.
"""

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write", "check_writable"]


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_writable(path, what="path"):
    """Fail early, naming ``path``, if a file cannot be created there.

    Parameters
    ----------
    path : str or path-like
        The file to be written later (after a long training, say).
    what : str, default="path"
        How the caller names the path in messages (e.g. ``"--model"``).

    Returns
    -------
    path : pathlib.Path

    Raises
    ------
    ValueError
        The path is a folder, or its folder cannot be created or written to.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{what} {path}: is a folder; pass a file name.")
    folder = path.parent if str(path.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(
            f"{what} {path}: cannot create the folder {folder} ({exc.strerror})."
        ) from None
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=folder)
    except OSError as exc:
        raise ValueError(
            f"{what} {path}: cannot write into {folder} ({exc.strerror})."
        ) from None
    os.close(fd)
    os.remove(probe)
    if path.exists() and not os.access(path, os.W_OK):
        raise ValueError(f"{what} {path}: the file exists and is read-only.")
    return path


@contextlib.contextmanager
def atomic_write(path, mode="wb", **open_kwargs):
    """Write ``path`` atomically.

    Parameters
    ----------
    path : str or path-like
        Destination; its folder must exist.
    mode : {"wb", "w", None}, default="wb"
        Open the temporary file in this mode and yield the file object;
        ``None`` yields the temporary file's path instead (for writers that
        take a file name).
    **open_kwargs
        Passed to :func:`open` (e.g. ``newline=""``).

    Yields
    ------
    target : file object or str

    Raises
    ------
    OSError
        With the destination path in the message, not the temporary name.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder
        )
    except OSError as exc:
        raise OSError(
            exc.errno, f"cannot write {path}: {exc.strerror or exc}"
        ) from None
    try:
        if mode is None:
            os.close(fd)
            yield tmp
        else:
            with os.fdopen(fd, mode, **open_kwargs) as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if isinstance(exc, OSError) and tmp in str(exc):
            raise OSError(exc.errno, f"cannot write {path}: {exc.strerror}") from None
        raise
