"""Atomic file writes: every file fastnn saves goes through ``atomic_write``.

A save that is interrupted (an exception, a full disk, the process killed part-way) must leave the previous file
exactly as it was. So the bytes go to a temporary file in the SAME folder (``os.replace`` is atomic only within
one file system), which is flushed and fsynced before it replaces the target; the folder is then fsynced so the
rename itself is durable. On an exception the temporary file is removed and the target is untouched.
"""
from __future__ import annotations

import contextlib
import os
import tempfile

__all__ = ["atomic_write"]


def _fsync_directory(dirname):
    """Makes a rename inside ``dirname`` durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(dirname, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a folder; the rename has still happened
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(filepath, mode="wb"):
    """Yields a file object opened with ``mode`` on a temporary file next to ``filepath``; when the block ends
    normally the data is flushed, fsynced and moved over ``filepath`` with ``os.replace``.

    Args:
        filepath: the destination (str or os.PathLike). Its folder must exist.
        mode: "wb" (bytes) or "w" (text, UTF-8).

    Raises whatever the block raises, after removing the temporary file (``filepath`` keeps its old content).
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write: mode must be 'wb' or 'w', but received mode={mode!r}")
    filepath = os.fspath(filepath)
    dirname = os.path.dirname(os.path.abspath(filepath))
    if not os.path.isdir(dirname):
        raise FileNotFoundError(f"atomic_write: the folder {dirname!r} of {filepath!r} does not exist")
    if os.path.isdir(filepath):
        raise IsADirectoryError(f"atomic_write: {filepath!r} is a directory, not a file")
    fd, tmp_path = tempfile.mkstemp(dir=dirname, prefix="." + os.path.basename(filepath) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if os.path.exists(filepath):  # keep the permissions of the file being replaced (mkstemp makes 0600)
            os.chmod(tmp_path, os.stat(filepath).st_mode & 0o7777)
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, filepath)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp_path)
        raise
    _fsync_directory(dirname)
