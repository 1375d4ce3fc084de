"""The mel scale of ``<|pitch_value_N|>``: one definition for the API's ``pitch_hz`` and the evaluation.

A leaf module (no imports from the package), so that every layer can use it without an import cycle.
"""

from __future__ import annotations

import math

__all__ = ["hz_to_mel", "mel_to_hz"]


def hz_to_mel(f: float) -> float:
    """Mel scale used by VoxBox and the released ``<|pitch_value_N|>`` tokens: ``2595 * log10(1 + f / 700)``."""
    return 2595.0 * math.log10(1.0 + f / 700.0)


def mel_to_hz(mel: float) -> float:
    """Inverse of :func:`hz_to_mel`: ``700 * (10 ** (mel / 2595) - 1)``."""
    return 700.0 * (10.0 ** (float(mel) / 2595.0) - 1.0)
