"""Reconstruction metrics for a codec: reference audio vs decoded audio.

Both signals are brought to 16 kHz mono (soxr) and cut to the shorter length; no time shift is searched
for, so a codec that delays its output is penalised (BiCodec is sample-aligned, so this is fair to it).

==================  =========================================================  ==========  ==========
metric              how                                                        identical   better
==================  =========================================================  ==========  ==========
``stoi``            pystoi, classic STOI (``extended=False``), 16 kHz          1.0         higher
``pesq_wb``         ``pesq`` package, ITU-T P.862.2 wide band, 16 kHz          ~4.64       higher
``pesq_nb``         ``pesq`` package, ITU-T P.862 narrow band, on 16 kHz input ~4.55       higher
``mel_distance``    mean L1 of log10 mel spectra (80 mels, 1024 FFT, hop 256)  0.0         lower
``mcd``             mel-cepstral distortion, DTW-aligned (see :func:`mcd`)     0.0         lower
``f0_rmse``         RMSE of F0 in cents over frames voiced in both (pYIN)      0.0         lower
``vuv_error``       fraction of frames whose voicing decision differs (pYIN)   0.0         lower
``utmos``           UTMOS of the *decoded* audio, only with a model supplied   -           higher
==================  =========================================================  ==========  ==========

PESQ raises on inputs it cannot score (e.g. no speech found); such a metric is NaN and the reason is kept
in :attr:`CodecMetrics.notes`. :func:`score_roundtrip` scores a whole round-trip evaluation folder
(``python -m sparktts.eval roundtrip --signal``).

F0 RMSE and the voicing error say what a Whisper WER cannot: whether the codec keeps the voice's pitch.
A decoder that cannot tell the F0 from its input learns, under a mel loss, a comb at its own frame rate
(50 Hz for BiCodec) that covers every candidate harmonic; pYIN then tracks 50 Hz and the RMSE reads
~2,000 cents for a voice near 160 Hz.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._audio import EVAL_SR, AudioLike, load_16k
from .errors import EvalError, ModelNotAvailableError

# Mel front end of mel_distance/mcd: a common vocoder-eval setting at 16 kHz.
N_FFT = 1024
HOP = 256
N_MELS = 80
N_MCEP = 24  # c1..c24, c0 (energy) excluded as usual for MCD
_LOG_FLOOR = 1e-5
F0_MIN, F0_MAX = 50.0, 600.0  # speech range; a narrower pYIN grid is faster and avoids octave jumps


def align(reference: np.ndarray, degraded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cut both signals to the shorter length (start-aligned; no delay search)."""
    n = min(reference.shape[-1], degraded.shape[-1])
    if n == 0:
        raise EvalError("cannot compare empty audio.")
    return reference[..., :n], degraded[..., :n]


def stoi(reference: np.ndarray, degraded: np.ndarray, sr: int = EVAL_SR) -> float:
    """Short-time objective intelligibility (pystoi, classic), in [0, 1]; 1.0 for identical signals."""
    from pystoi import stoi as _stoi

    ref, deg = align(_as16k(reference, sr), _as16k(degraded, sr))
    return float(_stoi(ref.astype(np.float64), deg.astype(np.float64), EVAL_SR, extended=False))


def pesq(reference: np.ndarray, degraded: np.ndarray, sr: int = EVAL_SR, mode: str = "wb") -> float:
    """PESQ (``mode="wb"``: P.862.2, ``"nb"``: P.862) at 16 kHz, MOS-LQO scale (max ~4.64 wb, ~4.55 nb)."""
    from pesq import pesq as _pesq

    if mode not in ("wb", "nb"):
        raise EvalError(f"PESQ mode must be 'wb' or 'nb', not {mode!r}.")
    ref, deg = align(_as16k(reference, sr), _as16k(degraded, sr))
    return float(_pesq(EVAL_SR, ref.astype(np.float64), deg.astype(np.float64), mode))


def _log_mel(wav: np.ndarray) -> np.ndarray:
    import librosa

    mel = librosa.feature.melspectrogram(
        y=wav.astype(np.float32), sr=EVAL_SR, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS, power=1.0
    )
    return np.log10(np.maximum(mel, _LOG_FLOOR))


def mel_distance(reference: np.ndarray, degraded: np.ndarray, sr: int = EVAL_SR) -> float:
    """Mean absolute difference of log10 magnitude-mel spectrograms (80 mels); 0 for identical signals."""
    ref, deg = align(_as16k(reference, sr), _as16k(degraded, sr))
    return float(np.mean(np.abs(_log_mel(ref) - _log_mel(deg))))


def _mel_cepstrum(wav: np.ndarray) -> np.ndarray:
    """c1..c24 of the log-amplitude mel spectrum, in nepers, ``(24, frames)``."""
    import librosa

    mel_power = librosa.feature.melspectrogram(
        y=wav.astype(np.float32), sr=EVAL_SR, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS, power=2.0
    )
    # dB floor 80 dB under each signal's peak, so that digital silence does not dominate the distance.
    log_mel_db = librosa.power_to_db(mel_power, ref=1.0, amin=1e-10, top_db=80.0)
    dct = librosa.feature.mfcc(S=log_mel_db, n_mfcc=N_MCEP + 1, dct_type=2, norm="ortho")[1:]
    # Orthonormal DCT-II of N bands is sqrt(2N) times the cepstral coefficient c_k of
    # log|X| = c_0 + 2 sum c_k cos(k w); 10*log10 power = 20/ln10 nepers of amplitude.
    return dct / np.sqrt(2.0 * N_MELS) * (np.log(10.0) / 20.0)


def mcd(reference: np.ndarray, degraded: np.ndarray, sr: int = EVAL_SR, use_dtw: bool = True) -> float:
    """Mel-cepstral distortion in dB, mean over (DTW-aligned) frames.

    ``MCD = 10 / ln 10 * sqrt(2 * sum_{k=1..24} (c_k - c'_k)**2)`` with ``c_k`` the cepstrum of the
    log-amplitude (nepers) 80-band mel spectrum, obtained from librosa's orthonormal DCT (MFCC) rescaled to
    cepstral units. This approximates, but does not equal, MCD from SPTK mel-cepstra (``pysptk.mcep``:
    all-pass frequency warping of a WORLD/STRAIGHT envelope), so compare values only within this toolkit.
    Each log spectrum is floored 80 dB under its peak.

    Parameters
    ----------
    use_dtw : bool
        Align frames with dynamic time warping (``librosa.sequence.dtw``, Euclidean cost) before averaging,
        as MCD is usually reported; ``False`` compares frame ``t`` with frame ``t``.
    """
    import librosa

    ref, deg = _as16k(reference, sr), _as16k(degraded, sr)
    if not use_dtw:
        ref, deg = align(ref, deg)
    c_ref, c_deg = _mel_cepstrum(ref), _mel_cepstrum(deg)
    if use_dtw:
        _cost, path = librosa.sequence.dtw(X=c_ref, Y=c_deg, metric="euclidean")
        c_ref, c_deg = c_ref[:, path[::-1, 0]], c_deg[:, path[::-1, 1]]
    else:
        n = min(c_ref.shape[1], c_deg.shape[1])
        c_ref, c_deg = c_ref[:, :n], c_deg[:, :n]
    diff = c_ref - c_deg
    return float(np.mean(10.0 / np.log(10.0) * np.sqrt(2.0 * np.sum(diff**2, axis=0))))


def f0_track(wav: np.ndarray, sr: int = EVAL_SR) -> tuple[np.ndarray, np.ndarray]:
    """pYIN F0 (Hz, NaN where unvoiced) and voicing flags, 50-600 Hz, hop 256 at 16 kHz."""
    import librosa

    f0, voiced, _prob = librosa.pyin(
        _as16k(wav, sr).astype(np.float64),
        fmin=F0_MIN,
        fmax=F0_MAX,
        sr=EVAL_SR,
        frame_length=N_FFT,
        hop_length=HOP,
    )
    return f0, voiced.astype(bool)


def f0_metrics(reference: np.ndarray, degraded: np.ndarray, sr: int = EVAL_SR) -> tuple[float, float]:
    """F0 RMSE (cents, over frames voiced in both) and voicing-decision error rate (frames differing).

    Returns NaN for the RMSE when no frame is voiced in both.
    """
    ref, deg = align(_as16k(reference, sr), _as16k(degraded, sr))
    f_ref, v_ref = f0_track(ref)
    f_deg, v_deg = f0_track(deg)
    n = min(len(v_ref), len(v_deg))
    f_ref, v_ref, f_deg, v_deg = f_ref[:n], v_ref[:n], f_deg[:n], v_deg[:n]
    both = v_ref & v_deg
    vuv = float(np.mean(v_ref != v_deg)) if n else math.nan
    if not np.any(both):
        return math.nan, vuv
    cents = 1200.0 * np.log2(f_deg[both] / f_ref[both])
    return float(np.sqrt(np.mean(cents**2))), vuv


class UTMOSModel:
    """UTMOS22 (strong) predictor from user-supplied weights.

    Accepted ``model``:

    * an exported program (``.pt2``, ``torch.export.save``) or a TorchScript file (``torch.jit.load``)
      mapping ``(B, T)`` float 16 kHz audio to ``(B,)`` MOS, or
    * a local checkout of ``tarepan/SpeechMOS`` (has ``hubconf.py``); its ``utmos22_strong`` entry is loaded
      with ``torch.hub.load(dir, "utmos22_strong", source="local")``, which needs its weights already in
      the torch hub cache when offline.
    """

    def __init__(self, model: str | os.PathLike, device: str = "cpu") -> None:
        import torch

        path = Path(model)
        if path.is_dir() and (path / "hubconf.py").is_file():
            try:
                self._model = torch.hub.load(str(path), "utmos22_strong", source="local", trust_repo=True)
                self._pass_sr = True  # SpeechMOS's UTMOS22Strong.forward(wave, sr)
            except Exception as exc:
                raise ModelNotAvailableError(
                    f"cannot load utmos22_strong from {path} ({type(exc).__name__}: {exc}); offline, put its "
                    f"weights in {torch.hub.get_dir()}/checkpoints first."
                ) from exc
        elif path.is_file() and path.suffix == ".pt2":
            self._model = torch.export.load(str(path)).module()
            self._pass_sr = False  # an export takes the 16 kHz wave only
        elif path.is_file():
            self._model = torch.jit.load(str(path), map_location=device)
            self._pass_sr = False
        else:
            raise ModelNotAvailableError(
                f"UTMOS model {path} not found: pass a TorchScript UTMOS file or a local tarepan/SpeechMOS "
                "checkout (utmos_model=..., --utmos-model PATH)."
            )
        if path.suffix != ".pt2":  # exported programs are fixed to the device they were exported on
            self._model = self._model.to(device).eval()
        self._device = device
        self.model_name = str(path)

    def __call__(self, audio: AudioLike, sample_rate: int | None = None) -> float:
        """Predicted MOS of one utterance (any rate; resampled to 16 kHz)."""
        import torch

        wav = torch.from_numpy(load_16k(audio, sample_rate))[None, :].to(self._device)
        with torch.no_grad():
            score = self._model(wav, EVAL_SR) if self._pass_sr else self._model(wav)
        return float(torch.as_tensor(score).reshape(-1)[0])


def utmos(
    audio: AudioLike, sample_rate: int | None = None, *, model: UTMOSModel | str | None = None
) -> float:
    """UTMOS of one utterance; raises :class:`ModelNotAvailableError` when no model is supplied.

    UTMOS weights are not on PyPI and cannot be fetched offline, so there is no default.
    """
    if model is None:
        raise ModelNotAvailableError(
            "UTMOS needs model weights, which are not bundled: pass utmos_model= (an exported/TorchScript "
            "UTMOS file or "
            "a local tarepan/SpeechMOS checkout with its utmos22_strong weights cached), or leave UTMOS out."
        )
    if not isinstance(model, UTMOSModel):
        model = UTMOSModel(model)
    return model(audio, sample_rate)


@dataclass
class CodecMetrics:
    """All reconstruction metrics of one (reference, decoded) pair; NaN where not computed."""

    stoi: float = math.nan
    pesq_wb: float = math.nan
    pesq_nb: float = math.nan
    mel_distance: float = math.nan
    mcd: float = math.nan
    f0_rmse: float = math.nan
    vuv_error: float = math.nan
    utmos: float = math.nan
    duration_s: float = math.nan
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """Plain dict (notes joined with '; ') for a DataFrame row or JSON."""
        out = asdict(self)
        out["notes"] = "; ".join(self.notes)
        return out


def _as16k(audio: np.ndarray, sr: int) -> np.ndarray:
    return load_16k(np.asarray(audio), sr)


def codec_metrics(
    reference: AudioLike,
    decoded: AudioLike,
    sample_rate: int | None = None,
    *,
    utmos_model: UTMOSModel | str | None = None,
    f0: bool = True,
) -> CodecMetrics:
    """Compute every reconstruction metric of ``decoded`` against ``reference``.

    Parameters
    ----------
    reference, decoded : path or np.ndarray
        Files, or arrays at ``sample_rate`` (both at the same rate).
    utmos_model : UTMOSModel or path, optional
        Without it ``utmos`` is NaN and a note says why.
    f0 : bool
        pYIN is the slowest metric (about real time on one core); ``False`` skips F0 RMSE / voicing error.

    Returns
    -------
    CodecMetrics
    """
    ref = load_16k(reference, sample_rate)
    deg = load_16k(decoded, sample_rate)
    ref, deg = align(ref, deg)
    out = CodecMetrics(duration_s=ref.shape[0] / EVAL_SR)
    out.stoi = stoi(ref, deg)
    for mode in ("wb", "nb"):
        try:
            setattr(out, f"pesq_{mode}", pesq(ref, deg, mode=mode))
        except Exception as exc:  # pesq.NoUtterancesError, BufferTooShortError
            out.notes.append(f"pesq_{mode}: {type(exc).__name__}: {exc}")
    out.mel_distance = mel_distance(ref, deg)
    out.mcd = mcd(ref, deg)
    if f0:
        out.f0_rmse, out.vuv_error = f0_metrics(ref, deg)
    if utmos_model is None:
        out.notes.append("utmos: no UTMOS model supplied (utmos_model=...)")
    else:
        out.utmos = utmos(deg, EVAL_SR, model=utmos_model)
    return out


SIGNAL_DIR = "codec"  # under a round-trip eval folder: metrics.csv (per clip) and summary.json (means)
SIGNAL_METRICS = ("stoi", "pesq_wb", "mel_distance", "mcd")
F0_METRICS = ("f0_rmse", "vuv_error")


def score_roundtrip(eval_dir: str | os.PathLike, items: Iterable[Any], *, f0: bool = True,
                    folder: str = SIGNAL_DIR, progress: bool = True) -> dict:
    """Reconstruction metrics of every round trip in an eval folder against its recording.

    ``eval_dir``: a round-trip evaluation (``<eval_dir>/wavs/<utt>.wav``, as ``python -m sparktts.eval
    roundtrip`` writes); ``items``: its list (each with ``utt`` and ``gt_wav``). Writes
    ``<eval_dir>/<folder>/metrics.csv`` (one row per clip) and ``summary.json`` (each metric's mean over
    the clips where it is defined, ``None`` where it is nowhere, ``n_scored`` and ``n_errors``), and returns the
    summary. Clips whose decoded file is missing (a failed item, with its error in ``results.jsonl``)
    are left out; one that cannot be scored gets NaNs and its reason in the ``notes`` column.
    ``f0``: also F0 RMSE and voicing error (pYIN: about real time per signal on one core).
    """
    import json

    import pandas as pd
    from tqdm.auto import tqdm

    from ..fileio import atomic_write

    eval_dir = Path(eval_dir)
    names = SIGNAL_METRICS + (F0_METRICS if f0 else ())
    rows = []
    for item in tqdm(list(items), desc="signal metrics", disable=not progress):
        decoded = eval_dir / "wavs" / f"{item.utt}.wav"
        if not decoded.is_file():
            continue
        if item.gt_wav is None:
            raise EvalError(f"item {item.utt} has no recording (gt_wav) to compare its round trip with.")
        try:
            scores = codec_metrics(item.gt_wav, decoded, f0=f0).to_dict()
        except Exception as exc:  # noqa: BLE001 - empty or unreadable audio: this clip's row says why
            scores = {"notes": f"{type(exc).__name__}: {exc}"}
        rows.append({"utt": item.utt, **{k: scores.get(k, math.nan) for k in names}, "notes": scores["notes"]})
    table = pd.DataFrame(rows, columns=["utt", *names, "notes"])
    summary = {k: None if table[k].isna().all() else float(table[k].mean()) for k in names}
    failed = table[list(names)].isna().all(axis=1)
    summary["n_scored"], summary["n_errors"] = int((~failed).sum()), int(failed.sum())
    (eval_dir / folder).mkdir(parents=True, exist_ok=True)
    with atomic_write(eval_dir / folder / "metrics.csv", "w") as f:
        table.to_csv(f, index=False)
    with atomic_write(eval_dir / folder / "summary.json", "w") as f:
        f.write(json.dumps(summary, indent=1))
    return summary


__all__ = [
    "CodecMetrics",
    "UTMOSModel",
    "align",
    "codec_metrics",
    "f0_metrics",
    "f0_track",
    "mcd",
    "mel_distance",
    "pesq",
    "score_roundtrip",
    "stoi",
    "utmos",
]
