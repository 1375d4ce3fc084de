"""Errors raised by :mod:`sparktts.eval`.

Both derive from :class:`sparktts.errors.SparkTTSError`, so ``except SparkTTSError`` catches every error
the toolkit raises on purpose.
"""

from __future__ import annotations

from sparktts.errors import SparkTTSError


class EvalError(SparkTTSError):
    """Bad evaluation input: an unreadable list, a wrong language code, an empty reference text, ..."""


class ModelNotAvailableError(EvalError):
    """An ASR, speaker or MOS model cannot be loaded.

    The message names the model that is missing and how to provide it (a path, a CLI flag or a package).
    """
