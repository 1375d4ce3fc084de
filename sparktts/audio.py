"""Audio input/output: read, mono-mix, resample to 16 kHz, normalise volume, cut the reference clip.

The original Spark-TTS reads with soundfile (float64), resamples with soxr at "VHQ" quality, and
normalises volume on the float64 signal; this module does the same so that golden tokens match
exactly, and adds the checks the original lacks (empty, silent, non-finite, too short audio).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from .errors import AudioError
from .fileio import atomic_write

SAMPLE_RATE = 16000
AudioInput = str | os.PathLike | np.ndarray

# Below this peak a clip is treated as digital silence: the volume normaliser would otherwise
# amplify numerical noise by up to 100x and the codec would encode it as a voice.
_SILENCE_PEAK = 1e-4
# Sample rates accepted for arrays: below, resampling to 16 kHz would blow a few samples up into a huge
# array of interpolation; above, the number is surely a sample count or a typo.
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1000, 1_000_000


def _wav_data_shortfall(path: Path) -> tuple[int, int] | None:
    """For a RIFF/WAVE file whose data chunk is cut short: ``(declared, present)`` bytes; else None.

    libsndfile silently reads what is there, so a file cut off by a kill or a full disk would load as a
    shorter (often silent-looking) clip. Streaming writers that do not know the length put 0 or 0xFFFFFFFF
    in the size field; those are not called truncated.
    """
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            offset = 12
            while offset + 8 <= size:
                fh.seek(offset)
                chunk_id, chunk_size = struct.unpack("<4sI", fh.read(8))
                if chunk_id == b"data":
                    present = size - offset - 8
                    if chunk_size not in (0, 0xFFFFFFFF) and chunk_size > present:
                        return chunk_size, present
                    return None
                offset += 8 + chunk_size + (chunk_size & 1)  # chunks are padded to even sizes
    except (OSError, struct.error):
        return None
    return None


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read any soundfile-readable file as float64 ``(T,)`` or ``(T, C)`` and its sample rate."""
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: audio file not found.")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory; give the path of an audio file (wav, flac, ogg, ...).")
    shortfall = _wav_data_shortfall(path)
    if shortfall is not None:
        declared, present = shortfall
        raise AudioError(
            f"{path}: the file is truncated: its header announces {declared} bytes of audio but only {present} "
            "are there (a download or a write was cut off). Download or export it again."
        )
    import soundfile  # here, not at import: training on prepared tokens needs no audio library

    try:
        audio, sr = soundfile.read(str(path), dtype="float64", always_2d=False)
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        raise AudioError(
            f"{path}: cannot read audio ({exc}). Convert it to WAV/FLAC, e.g. "
            f"`ffmpeg -i '{path.name}' -ar 16000 -ac 1 out.wav`."
        ) from exc
    return audio, int(sr)


def to_mono(audio: np.ndarray, mode: str = "mean") -> np.ndarray:
    """Mix ``(T, C)`` audio down to ``(T,)``.

    ``mode="mean"`` averages the channels; ``mode="first"`` keeps channel 0, which is what the
    original ``load_audio`` does (identical for mono files).
    """
    if audio.ndim == 1:
        return audio
    if audio.ndim != 2:
        raise AudioError(f"expected audio of shape (T,) or (T, C); given shape {audio.shape}.")
    if mode == "first":
        return audio[:, 0]
    if mode == "mean":
        return audio.mean(axis=1)
    raise ValueError(f"mode must be 'mean' or 'first', not {mode!r}")


def resample(audio: np.ndarray, orig_sr: int, target_sr: int = SAMPLE_RATE) -> np.ndarray:
    """Resample with soxr "VHQ", as the original does (a no-op when the rates match)."""
    if orig_sr == target_sr:
        return audio
    if orig_sr <= 0:
        raise AudioError(f"sample rate must be positive; given {orig_sr}.")
    import soxr

    return soxr.resample(audio, orig_sr, target_sr, quality="VHQ")


def volume_normalize(audio: np.ndarray, coeff: float = 0.2) -> np.ndarray:
    """Scale so the loud part of the signal (90th-99th percentile of |x| above 0.01) sits at ``coeff``.

    Same rule as the original: quiet clips (peak < 0.1) are first raised to a 0.1 peak; the gain is
    clipped to [0.1, 10]; the result is peak-limited to 1. Clips with 10 or fewer samples above 0.01
    are returned after the first step only. As in the original, the level is measured before the
    quiet-clip boost and the gain applied after it (so quiet clips end louder than ``coeff``).
    """
    magnitude = np.sort(np.abs(audio))
    if magnitude[-1] < 0.1:
        audio = audio / max(magnitude[-1], 1e-3) * 0.1
    loud = magnitude[magnitude > 0.01]
    n = loud.shape[0]
    if n <= 10:
        return audio
    volume = np.mean(loud[int(0.9 * n): int(0.99 * n)])
    audio = audio * np.clip(coeff / volume, 0.1, 10)
    peak = np.max(np.abs(audio))
    if peak > 1:
        audio = audio / peak
    return audio


def check_audio(audio: np.ndarray, where: str = "audio", min_samples: int = 1, allow_silent: bool = False) -> None:
    """Raise :class:`AudioError` for empty, non-finite, silent (unless allowed) or too-short 1-D audio."""
    if audio.ndim != 1:
        raise AudioError(f"{where}: expected mono audio of shape (T,); given shape {audio.shape}.")
    if audio.size == 0:
        raise AudioError(f"{where}: audio is empty (0 samples).")
    if not np.all(np.isfinite(audio)):
        bad = int(np.size(audio) - np.count_nonzero(np.isfinite(audio)))
        raise AudioError(f"{where}: audio has {bad} NaN/inf samples; clean or re-export the file.")
    if audio.size < min_samples:
        raise AudioError(
            f"{where}: audio is {audio.size} samples ({audio.size / SAMPLE_RATE * 1000:.1f} ms at 16 kHz); "
            f"at least {min_samples} samples are needed. Use a longer clip."
        )
    if not allow_silent and np.max(np.abs(audio)) < _SILENCE_PEAK:
        raise AudioError(
            f"{where}: audio is silent (peak {np.max(np.abs(audio)):.2e}); give a clip with speech in it."
        )


def load_audio(
    source: AudioInput,
    sample_rate: int | None = None,
    *,
    target_sr: int = SAMPLE_RATE,
    volume_normalize_audio: bool = False,
    mono: str = "mean",
    min_samples: int = 1,
    allow_silent: bool = False,
) -> np.ndarray:
    """Load a file or an array as float32 mono audio at ``target_sr``.

    Parameters
    ----------
    source : path or np.ndarray
        A soundfile-readable file, or samples of shape ``(T,)`` / ``(T, C)``.
    sample_rate : int, optional
        Sample rate of ``source`` when it is an array (required then); ignored for files.
    volume_normalize_audio : bool
        Apply :func:`volume_normalize` (the release's ``config.yaml`` turns it on for prompts).
    mono : {"mean", "first"}
        How to mix multi-channel audio down; see :func:`to_mono`.
    allow_silent : bool
        Accept digital silence (evaluations must score a silent output, not reject it).

    Returns
    -------
    np.ndarray
        ``(T,)`` float32 at ``target_sr``. Processing runs in float64 like the original.
    """
    if isinstance(source, (str, os.PathLike)):
        where = str(source)
        audio, sr = read_audio(source)
    else:
        where = "audio array"
        if sample_rate is None:
            raise AudioError("audio given as an array needs its sample rate: pass sample_rate=...")
        try:
            audio = np.asarray(source)
        except (ValueError, TypeError) as exc:  # ragged nested lists
            raise AudioError(f"{where}: cannot read the samples as an array ({exc}).") from exc
        if audio.ndim == 2 and audio.shape[0] < audio.shape[1] and audio.shape[0] <= 8:
            audio = audio.T  # (C, T) as torchaudio/librosa return it -> (T, C)
        if not np.issubdtype(audio.dtype, np.number) or np.issubdtype(audio.dtype, np.complexfloating):
            raise AudioError(f"{where}: expected real numeric samples; given dtype {audio.dtype}.")
        if np.issubdtype(audio.dtype, np.integer):
            audio = audio / float(np.iinfo(audio.dtype).max)
        audio = audio.astype(np.float64)
        sr = _check_sample_rate(sample_rate)
    audio = to_mono(audio, mono)
    check_audio(audio, where, allow_silent=allow_silent)
    audio = resample(audio, sr, target_sr)
    check_audio(audio, where, min_samples=min_samples, allow_silent=allow_silent)
    if volume_normalize_audio:
        audio = volume_normalize(audio)
    return audio.astype(np.float32)


def _check_sample_rate(sample_rate: object) -> int:
    integral = isinstance(sample_rate, (int, np.integer)) or (
        isinstance(sample_rate, (float, np.floating)) and float(sample_rate).is_integer())
    if isinstance(sample_rate, bool) or not integral:
        raise AudioError(f"sample_rate must be a whole number of samples per second, got {sample_rate!r}.")
    if not MIN_SAMPLE_RATE <= int(sample_rate) <= MAX_SAMPLE_RATE:
        raise AudioError(
            f"sample_rate {sample_rate} is outside [{MIN_SAMPLE_RATE}, {MAX_SAMPLE_RATE}] Hz; pass the rate the "
            "samples were recorded at (e.g. 16000, 22050, 44100)."
        )
    return int(sample_rate)


def reference_clip(wav: np.ndarray, length: int) -> np.ndarray:
    """The speaker-reference segment: the first ``length`` samples, tiled first when the clip is shorter."""
    if wav.shape[0] < length:
        wav = np.tile(wav, length // wav.shape[0] + 1)
    return wav[:length]


def sound_format(path: str | os.PathLike) -> str:
    """The soundfile container for a file name's extension (WAV when it names none soundfile knows)."""
    import soundfile

    ext = Path(path).suffix.lstrip(".").upper()
    return ext if ext in soundfile.available_formats() else "WAV"


def save_audio(path: str | os.PathLike, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write float audio as 16-bit PCM (WAV unless the extension names another format; folders are created).

    The write is atomic (:func:`sparktts.fileio.atomic_write`): an interrupted save leaves no file, or the
    previous one, under ``path``, never a truncated one.
    """
    import soundfile

    path = Path(path)
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    with atomic_write(path) as fh:
        soundfile.write(fh, np.clip(audio, -1.0, 1.0), int(sample_rate), subtype="PCM_16", format=sound_format(path))
    return path


def wav_bytes(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """The audio as the bytes of a 16-bit PCM WAV file (notebook players: ``Synthesis`` and the panels)."""
    import io

    import soundfile

    buf = io.BytesIO()
    soundfile.write(buf, np.clip(np.asarray(audio, dtype=np.float32), -1, 1), int(sample_rate), format="WAV",
                    subtype="PCM_16")
    return buf.getvalue()
