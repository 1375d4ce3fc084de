"""Writing files so that a reader never sees half of one.

Every file sparktts writes for a user (audio, voices, evaluation results and summaries) goes through
:func:`atomic_write`: the bytes go to a hidden temporary file in the destination folder, which is flushed
and fsynced, then renamed over the destination with :func:`os.replace`. A rename within one folder is
atomic on POSIX file systems, so Ctrl-C, ``kill -9``, a full disk or a crash leaves either the previous
file (or none) or the complete new one under the final name, never a truncated file that looks complete.
An exception inside the block removes the temporary file; only a hard kill can leave one behind, and it
is hidden (``.<name>.<pid>.<random>.partial``), so it is never mistaken for the result.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["PARTIAL_SUFFIX", "atomic_dir", "atomic_write", "check_writable_dir"]

PARTIAL_SUFFIX = ".partial"


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{PARTIAL_SUFFIX}")


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); folders cannot be opened for this everywhere."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", *, encoding: str | None = None) -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path``; on a clean exit it replaces ``path`` in one step.

    Args:
        path: the destination (its folder is created).
        mode: ``"wb"`` (a binary file object, seekable: soundfile can write WAV headers into it) or ``"w"``.
        encoding: for text mode (default UTF-8).

    The temporary file is created with the permissions a new file gets (umask applies), so the result looks
    like any other file the user writes.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write supports modes 'wb' and 'w', not {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        text = mode == "w"
        with os.fdopen(fd, mode, encoding=(encoding or "utf-8") if text else None) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, *, replace: bool = False) -> Iterator[Path]:
    """Build a folder under a hidden temporary name next to ``path``; on a clean exit it becomes ``path``.

    For exports and checkpoints: a folder under the final name is always complete. ``path`` may exist
    as an empty folder; with ``replace`` an existing folder is removed first (a checkpoint rewritten at
    the same step). An exception inside the block removes the temporary folder.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path)
    tmp.mkdir()  # not mkdtemp: its mode 0700 would become the result's (umask applies here)
    try:
        yield tmp
        if path.exists():
            if replace:
                shutil.rmtree(path)
            else:
                path.rmdir()  # only an empty folder may stand in the way
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(path.parent)


def check_writable_dir(folder: str | os.PathLike) -> Path:
    """Create ``folder`` if needed and prove a file can be written there (raises ``OSError`` if not).

    For command lines, which should refuse an unwritable output folder before spending minutes loading a
    model and synthesising.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    probe = _temp_name(folder / "write-test")
    os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    os.unlink(probe)
    return folder
