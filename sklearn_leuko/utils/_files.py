"""Atomic file writes: a reader never sees a half-written file.

Every file the library writes for the user to keep (models, checkpoints,
prediction tables) goes through :func:`atomic_write`: the content is written
to a temporary file in the destination folder, flushed to disk, given the
permissions an ordinary new file would get (``0o666`` minus the umask, not
the ``0o600`` of :func:`tempfile.mkstemp`), then renamed over the target. An
error or a kill leaves the old file (or none) and no temporary file behind.
"""

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path

__all__ = [
    "atomic_write",
    "check_regular_target",
    "check_writable",
    "write_text_atomic",
]


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_regular_target(path, what="path"):
    """The path a writer should replace: symlinks followed, non-files refused.

    A symlink is followed (the file it points to gets the new content and the
    link stays). A target that exists and is not a regular file (a folder, a
    FIFO, a device such as ``/dev/full``, a socket) is refused and left
    untouched: replacing it with a regular file would silently break what it
    was.

    Returns
    -------
    path : str
        ``path`` with symlinks resolved.

    Raises
    ------
    IsADirectoryError
        The target is a folder.
    ValueError
        The target exists and is another kind of non-regular file.
    """
    path = os.fspath(path)
    if os.path.islink(path):
        path = os.path.realpath(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return path
    except OSError as exc:
        raise ValueError(
            f"{what} {path}: cannot be inspected ({exc.strerror})."
        ) from None
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(
            errno.EISDIR, f"{what} {path}: is a folder; pass a file name."
        )
    if not stat.S_ISREG(mode):
        kind = (
            "a FIFO (named pipe)"
            if stat.S_ISFIFO(mode)
            else "a character device"
            if stat.S_ISCHR(mode)
            else "a block device"
            if stat.S_ISBLK(mode)
            else "a socket"
            if stat.S_ISSOCK(mode)
            else "not a regular file"
        )
        raise ValueError(
            f"{what} {path}: exists and is {kind}, not a regular file; it was left "
            "untouched. Pass the name of a regular file (new or existing)."
        )
    return path


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
    if Path(path).is_dir():
        raise ValueError(f"{what} {path}: is a folder; pass a file name.")
    path = Path(check_regular_target(path, what))
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
        Destination; its folder must exist. A symlink is followed (the file
        it points to is replaced, the link stays); an existing target that
        is not a regular file (folder, FIFO, device) is refused untouched.
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
    ValueError
        The destination exists and is not a regular file.
    OSError
        With the destination path in the message, not the temporary name.
    """
    path = check_regular_target(path)
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


def write_text_atomic(path, text):
    """Write ``text`` (UTF-8) to ``path`` with :func:`atomic_write`."""
    with atomic_write(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    return Path(path)
