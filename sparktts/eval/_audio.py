"""Audio loading shared by the eval back ends: mono (channel 0), float32, 16 kHz.

Unlike :func:`sparktts.audio.load_audio` this does not reject silent audio: a TTS model that outputs
silence must be scored (WER 1.0, low similarity), not dropped from the mean as an error.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sparktts.audio import read_audio, resample, to_mono
from sparktts.errors import AudioError

EVAL_SR = 16000
AudioLike = str | os.PathLike | np.ndarray


def cache_dir() -> Path:
    """Folder for weights the eval back ends assemble: ``$SPARKTTS_CACHE`` or ``~/.cache/sparktts``."""
    return Path(os.environ.get("SPARKTTS_CACHE", Path.home() / ".cache" / "sparktts"))


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
    if isinstance(audio, (str, os.PathLike)):
        where = str(audio)
        data, sr = read_audio(audio)
    else:
        where = "audio array"
        if sample_rate is None:
            raise AudioError("audio given as an array needs its sample rate: pass sample_rate=...")
        data = np.asarray(audio)
        if np.issubdtype(data.dtype, np.integer):
            data = data / float(np.iinfo(data.dtype).max)
        data = data.astype(np.float64)
        sr = int(sample_rate)
    data = to_mono(data, "first")
    if data.size == 0:
        raise AudioError(f"{where}: audio is empty (0 samples).")
    if not np.all(np.isfinite(data)):
        raise AudioError(f"{where}: audio has NaN/inf samples; re-export the file.")
    return resample(data, sr, EVAL_SR).astype(np.float32)
