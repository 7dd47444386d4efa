"""Files that are never half-written, and folders checked before any work is done.

Every file tlcourse writes (checkpoints, results, packs) goes through ``atomic_write``:
the bytes go to a hidden temporary file beside the target, are flushed to disk, and the
temporary file is renamed over the target. A rename within one file system is atomic, so
an interruption leaves either the old file or the new one, never a mixture; the temporary
file is removed when writing fails, and ``remove_stale_temporaries`` clears those left by
a process that was killed outright.

``ensure_writable`` is called *before* a long computation that will write somewhere, so a
read-only or mistyped folder costs the learner a second, not an hour of training.

Example:
    >>> import tempfile, os
    >>> folder = tempfile.mkdtemp()
    >>> path = atomic_write_text(os.path.join(folder, "a.json"), "{}")
    >>> path.read_text()
    '{}'
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["OutputNotWritableError", "ensure_writable", "atomic_write", "atomic_write_text", "remove_stale_temporaries"]

_TMP_SUFFIX = ".tmp"


class OutputNotWritableError(OSError):
    """A folder tlcourse must write to cannot be created or written."""


def ensure_writable(folder: str | os.PathLike, *, what: str, env: str | None = None) -> Path:
    """Create ``folder`` if needed and prove a file can be written in it; else raise.

    Args:
        folder: the directory results or checkpoints will go to.
        what: what will be written there, for the message ("the results", "checkpoints").
        env: the environment variable that sets this folder, named in the advice.

    Raises:
        OutputNotWritableError: the folder (or a parent) is a file, or is not writable.

    Example:
        >>> import tempfile
        >>> a_file = tempfile.NamedTemporaryFile()
        >>> ensure_writable(Path(a_file.name) / "out", what="the results")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        tlcourse.files.OutputNotWritableError: Cannot write the results to ... (a file is in the way of the folder). Nothing was computed: ...
    """
    folder = Path(folder)
    how = f"set {env} to a writable folder" if env else "pass a writable folder"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".tlcourse-write-test-"):
            pass
    except OSError as e:
        reason = e.strerror or type(e).__name__
        if isinstance(e, (FileExistsError, NotADirectoryError)):
            reason = "a file is in the way of the folder"
        raise OutputNotWritableError(
            f"Cannot write {what} to {folder} ({reason}). Nothing was computed: {how} and run again."
        ) from None
    return folder


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(f)`` on a temporary file beside ``path``, then rename it over ``path``.

    Parent directories are created. If ``write`` raises (or the process is interrupted with
    an exception), the temporary file is removed and ``path`` is left as it was.

    Example:
        >>> import tempfile, os
        >>> p = atomic_write(os.path.join(tempfile.mkdtemp(), "x.bin"), lambda f: f.write(b"hi"))
        >>> p.read_bytes()
        b'hi'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=_TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the rename makes them visible
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """``atomic_write`` for a UTF-8 text (a JSON results file, a manifest)."""
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def remove_stale_temporaries(path: str | os.PathLike, *, older_than_s: float = 3600.0) -> list[Path]:
    """Delete temporary files that a killed ``atomic_write`` of ``path`` left behind.

    Only files named like this module's temporaries for ``path`` and older than
    ``older_than_s`` are removed (a younger one may belong to a save still in progress).
    Returns the removed paths.

    Example:
        >>> import tempfile, os
        >>> folder = Path(tempfile.mkdtemp())
        >>> stale = folder / ".m.pt.abc123.tmp"; _ = stale.write_bytes(b"half")
        >>> os.utime(stale, (0, 0))  # as old as a save killed long ago
        >>> [p.name for p in remove_stale_temporaries(folder / "m.pt")]
        ['.m.pt.abc123.tmp']
    """
    path = Path(path)
    if not path.parent.is_dir():
        return []
    removed = []
    now = time.time()
    for tmp in path.parent.glob(f".{path.name}.*{_TMP_SUFFIX}"):
        with contextlib.suppress(OSError):
            if now - tmp.stat().st_mtime > older_than_s:
                tmp.unlink()
                removed.append(tmp)
    return removed


def repo_dir(name: str) -> Path:
    """``<repository>/<name>`` when tlcourse runs from a checkout, else ``~/.cache/tlcourse/<name>``."""
    repo = Path(__file__).resolve().parents[1]
    if (repo / "pyproject.toml").exists() and (repo / "tlcourse").is_dir():
        return repo / name
    return Path.home() / ".cache" / "tlcourse" / name
