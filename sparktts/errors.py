"""Exception types. Every error a user can cause says what was wrong and how to fix it."""

from __future__ import annotations


class SparkTTSError(Exception):
    """Base class of all errors raised by sparktts."""


class AudioError(SparkTTSError, ValueError):
    """Unreadable, empty, silent, non-finite or too short audio."""


class CheckpointError(SparkTTSError):
    """A model directory or weight file is missing, corrupt, or does not match the config."""


class ConfigError(SparkTTSError, ValueError):
    """A config file is missing a key, has a key of the wrong type, or cannot be parsed."""


class PromptError(SparkTTSError, ValueError):
    """Bad text or attribute labels for a prompt, or generated text that cannot be parsed."""


class TokenError(SparkTTSError, ValueError):
    """Codec token ids that are missing, of the wrong shape, type or range, or a token file of another format."""


class GenerationError(SparkTTSError):
    """The language model produced no usable speech tokens."""


class SparkTTSWarning(UserWarning):
    """Input that is accepted but probably not what was meant (e.g. a text with nothing to read out)."""
