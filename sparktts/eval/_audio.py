"""Audio loading shared by the eval back ends: mono (channel 0), float32, 16 kHz.

Unlike :func:`sparktts.audio.load_audio` this does not reject silent audio: a TTS model that outputs
silence must be scored (WER 1.0, low similarity), not dropped from the mean as an error.
"""

from __future__ import annotations

import os

import numpy as np

from sparktts.audio import load_audio
from sparktts.defaults import cache_dir  # noqa: F401  (re-exported: asr.py, similarity.py)

EVAL_SR = 16000
AudioLike = str | os.PathLike | np.ndarray


def load_16k(audio: AudioLike, sample_rate: int | None = None) -> np.ndarray:
    """Return ``(T,)`` float32 mono audio at 16 kHz.

    Parameters
    ----------
    audio : path or np.ndarray
        A soundfile-readable file, or samples ``(T,)`` / ``(T, C)``.
    sample_rate : int, optional
        Rate of an array input (required then); ignored for files. Multi-channel input keeps channel 0,
        as Spark-TTS and Seed-TTS-eval's similarity script do.

    Raises
    ------
    AudioError
        Unreadable file, missing sample rate, empty or non-finite audio.
    """
    return load_audio(audio, sample_rate, target_sr=EVAL_SR, mono="first", allow_silent=True)
