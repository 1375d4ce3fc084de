"""Codec reconstruction metrics on a real recording: perfect against itself, worse when degraded."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.signal
import soundfile as sf

from sparktts.eval.codec_metrics import codec_metrics, mcd, mel_distance, stoi, utmos
from sparktts.eval.errors import ModelNotAvailableError

from ._eval_audio import ARCTIC, require


def setup_module() -> None:
    require("pystoi", "pip install pystoi")
    require("pesq", "pip install pesq")


@pytest.fixture(scope="module")
def clip() -> tuple[np.ndarray, int]:
    wav, sr = sf.read(ARCTIC)
    return wav, sr


@pytest.fixture(scope="module")
def degraded(clip):
    wav, sr = clip
    rng = np.random.default_rng(0)
    noisy = wav + 0.2 * np.std(wav) * rng.standard_normal(wav.shape)  # about 14 dB SNR
    b, a = scipy.signal.butter(8, 2000 / (sr / 2))
    lowpass = scipy.signal.filtfilt(b, a, wav)  # telephone-like band limit
    return {"noise": noisy, "lowpass": lowpass}


@pytest.fixture(scope="module")
def perfect(clip):
    wav, sr = clip
    return codec_metrics(wav, wav.copy(), sr)


def test_identical_audio_scores_perfectly(perfect) -> None:
    assert perfect.stoi == pytest.approx(1.0, abs=1e-6)
    # P.862.2 / P.862 map an undistorted signal to their ceilings, 4.64 (wb) and 4.55 (nb).
    assert perfect.pesq_wb > 4.6
    assert perfect.pesq_nb > 4.5
    assert perfect.mel_distance == 0.0
    assert perfect.mcd == 0.0
    assert perfect.f0_rmse == 0.0
    assert perfect.vuv_error == 0.0
    assert perfect.duration_s == pytest.approx(4.0)


@pytest.mark.parametrize("kind", ["noise", "lowpass"])
def test_degraded_audio_scores_worse(clip, degraded, perfect, kind) -> None:
    wav, sr = clip
    m = codec_metrics(wav, degraded[kind], sr)
    assert m.stoi < perfect.stoi - 0.02
    assert m.pesq_wb < perfect.pesq_wb - 1.0
    assert m.pesq_nb < perfect.pesq_nb - 0.3
    assert m.mel_distance > 0.1
    assert m.mcd > 1.0
    assert m.f0_rmse > 0.0 or m.vuv_error > 0.0


def test_more_noise_is_worse(clip) -> None:
    wav, sr = clip
    rng = np.random.default_rng(1)
    noise = np.std(wav) * rng.standard_normal(wav.shape)
    light, heavy = wav + 0.05 * noise, wav + 0.5 * noise
    assert stoi(wav, light, sr) > stoi(wav, heavy, sr)
    assert mel_distance(wav, light, sr) < mel_distance(wav, heavy, sr)
    assert mcd(wav, light, sr) < mcd(wav, heavy, sr)


def test_dtw_makes_mcd_tolerant_to_a_delay(clip) -> None:
    wav, sr = clip
    delayed = np.concatenate([np.zeros(800), wav])[: len(wav)]  # 50 ms late
    assert mcd(wav, delayed, sr, use_dtw=True) < mcd(wav, delayed, sr, use_dtw=False)


def test_sample_rate_is_handled(clip) -> None:
    import soxr

    wav, sr = clip
    up = soxr.resample(wav, sr, 24000)
    m = codec_metrics(up, up, 24000, f0=False)
    assert m.stoi == pytest.approx(1.0, abs=1e-6) and m.duration_s == pytest.approx(4.0, abs=1e-3)


def test_utmos_without_weights(clip, perfect) -> None:
    wav, sr = clip
    assert math.isnan(perfect.utmos)
    assert any("no UTMOS model" in n for n in perfect.notes)
    with pytest.raises(ModelNotAvailableError, match="utmos_model="):
        utmos(wav, sr)
    with pytest.raises(ModelNotAvailableError, match="not found"):
        utmos(wav, sr, model="/nonexistent/utmos.pt")


def test_utmos_exported_model_gets_16k_audio(clip, tmp_path) -> None:
    # Real UTMOS weights are not obtainable offline; this checks the loader's contract with any exported
    # program: a (1, T) float tensor at 16 kHz goes in, the first output element comes out.
    import torch

    class Seconds(torch.nn.Module):
        def forward(self, wav: torch.Tensor) -> torch.Tensor:
            return (wav * 0).sum(dim=1) + wav.shape[1] / 16000.0

    path = tmp_path / "seconds.pt2"
    t = torch.export.Dim("t", min=16000, max=16000 * 60)
    torch.export.save(
        torch.export.export(Seconds(), (torch.zeros(1, 32000),), dynamic_shapes=({1: t},)), str(path)
    )
    wav, sr = clip
    import soxr

    assert utmos(soxr.resample(wav, sr, 48000), 48000, model=str(path)) == pytest.approx(4.0, abs=1e-3)
