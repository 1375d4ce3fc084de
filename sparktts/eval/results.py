"""The results file: ``results.jsonl``, one durable JSON row per utterance, locked against a second writer."""

from __future__ import annotations

import json
import os

try:  # POSIX; elsewhere runs are not locked against each other
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]
from pathlib import Path

import numpy as np

from sparktts.fileio import atomic_write

from .errors import EvalError

RESULTS_FILE = "results.jsonl"


class ResultsFile:
    """Append-only JSONL of result rows that survives being killed mid-write.

    Opening it reads the rows already there. A last line without its newline (the process died while
    writing it) is cut off, so the next append starts on a clean line and that utterance is redone.

    A writer (the default) holds an exclusive lock on ``<path's folder>/.<name>.lock`` until :meth:`close`
    (or the end of a ``with`` block): a second writer on the same file is refused with an
    :class:`EvalError` saying so, so two runs can never both write every row. ``read_only=True`` takes no
    lock, never changes the file (a partial last line is skipped, not cut) and refuses :meth:`append`.

    Parameters
    ----------
    path : path
    drop_errors : bool
        Remove rows that carry an ``error`` (rewriting the file atomically), so those utterances are
        redone: for errors that were transient (out of memory, a file that was still being written).
    read_only : bool
        Only read the rows (for summaries and views while a run may be writing).
    """

    def __init__(self, path: str | os.PathLike, *, drop_errors: bool = False, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self.rows: list[dict] = []
        self.done: set[str] = set()
        self.dropped_partial = False
        self.dropped_errors: list[str] = []
        self._lock_fd: int | None = None
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock()
        try:
            if self.path.exists():
                self._load()
                if drop_errors and not read_only:
                    self._drop_errors()
        except BaseException:
            self.close()
            raise

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(f".{self.path.name}.lock")

    def _lock(self) -> None:
        if fcntl is None:
            return
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 64).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise EvalError(
                f"another evaluation (pid {holder}) is writing {self.path} right now; two runs on one output "
                "folder would score and write every item twice. Wait for it to finish (then run again to "
                "resume), or give this run another --out folder."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())  # who holds it, for the message above
        self._lock_fd = fd

    def close(self) -> None:
        """Release the writer's lock (the rows stay readable)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def __enter__(self) -> ResultsFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    def _load(self) -> None:
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1  # 0 when there is no complete line
        if end < len(data) and not self.read_only:
            with open(self.path, "r+b") as fh:
                fh.truncate(end)
                fh.flush()
                os.fsync(fh.fileno())
            self.dropped_partial = True
        for lineno, line in enumerate(data[:end].splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except (json.JSONDecodeError, RecursionError) as exc:
                raise EvalError(
                    f"{self.path}:{lineno} is not valid JSON ({getattr(exc, 'msg', exc)}); the file was edited or "
                    "corrupted. Fix or delete that line, then run again."
                ) from exc
            if not isinstance(row, dict):
                raise EvalError(f"{self.path}:{lineno} is not a result row (a JSON object); the file was edited or "
                                "corrupted. Fix or delete that line, then run again.")
            if row.get("utt") in self.done:
                continue  # never count a duplicate twice, whatever wrote it
            self.rows.append(row)
            self.done.add(row.get("utt"))

    def _drop_errors(self) -> None:
        keep = [r for r in self.rows if not r.get("error")]
        self.dropped_errors = [r.get("utt") for r in self.rows if r.get("error")]
        if not self.dropped_errors:
            return
        with atomic_write(self.path, "w") as fh:  # a kill leaves the old or the new file, never half of one
            for row in keep:
                fh.write(json.dumps(row, ensure_ascii=False, default=json_default) + "\n")
        self.rows = keep
        self.done = {r.get("utt") for r in keep}

    def append(self, row: dict) -> None:
        """Write one row durably (write + flush + fsync); a row for an utterance already done is an error."""
        if self.read_only:
            raise EvalError(f"{self.path} was opened read-only; open it without read_only=True to add rows.")
        utt = row.get("utt")
        if utt in self.done:
            raise EvalError(f"utterance {utt!r} is already in {self.path}; refusing to write it twice.")
        line = json.dumps(row, ensure_ascii=False, default=json_default) + "\n"
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        self.rows.append(row)
        self.done.add(utt)


def json_default(obj: object) -> object:
    """``json.dump(default=...)`` for result rows and summaries: numpy scalars as numbers, paths as text."""
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


__all__ = ["RESULTS_FILE", "ResultsFile", "json_default"]
