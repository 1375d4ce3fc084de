"""Codec reconstruction metrics on a real recording: perfect against itself, worse when degraded."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import scipy.signal
import soundfile as sf

from sparktts.eval.codec_metrics import codec_metrics, f0_metrics, mcd, mel_distance, score_roundtrip, stoi, utmos
from sparktts.eval.errors import EvalError, ModelNotAvailableError

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


def test_pitch_error_is_measured_in_cents(clip) -> None:
    import librosa

    wav, sr = clip
    higher = librosa.effects.pitch_shift(wav.astype(np.float32), sr=sr, n_steps=2)  # 200 cents up
    rmse, vuv = f0_metrics(wav, higher, sr)
    assert 150 < rmse < 260 and vuv < 0.25  # the phase vocoder blurs some voicing edges


def _harmonics(f0: float, seconds: float = 2.0, sr: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, int(4000 / f0))) * 0.1


def test_a_frame_rate_comb_reads_as_the_octaves_between_it_and_the_voice() -> None:
    # What a decoder that cannot tell the F0 learns under a mel loss: a comb at its 50 Hz frame rate.
    rmse, vuv = f0_metrics(_harmonics(160.0), _harmonics(50.0), 16000)
    assert rmse == pytest.approx(1200 * np.log2(160 / 50), abs=60) and vuv < 0.1


def test_score_roundtrip_writes_a_row_per_decoded_clip_and_their_means(clip, degraded, tmp_path) -> None:
    from types import SimpleNamespace

    wav, sr = clip
    (tmp_path / "wavs").mkdir()
    sf.write(tmp_path / "ref.wav", wav, sr)
    sf.write(tmp_path / "wavs" / "same.wav", wav, sr)
    sf.write(tmp_path / "wavs" / "noisy.wav", degraded["noise"], sr)
    (tmp_path / "wavs" / "corrupt.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    items = [SimpleNamespace(utt=u, gt_wav=tmp_path / "ref.wav") for u in ("same", "noisy", "corrupt", "failed")]
    summary = score_roundtrip(tmp_path, items, progress=False)
    table = pd.read_csv(tmp_path / "codec" / "metrics.csv")
    # "failed" has no decoded file (its error is in results.jsonl); a corrupt one gets NaNs and the reason.
    assert table["utt"].tolist() == ["same", "noisy", "corrupt"]
    corrupt = table.set_index("utt").loc["corrupt"]
    assert math.isnan(corrupt["stoi"]) and "Error" in corrupt["notes"]
    same = table.set_index("utt").loc["same"]
    assert same["stoi"] == pytest.approx(1.0, abs=1e-6) and same["mcd"] == 0.0 and same["f0_rmse"] == 0.0
    noisy = codec_metrics(tmp_path / "ref.wav", tmp_path / "wavs" / "noisy.wav")
    assert summary["n_scored"] == 2 and summary["n_errors"] == 1
    assert summary["stoi"] == pytest.approx((1.0 + noisy.stoi) / 2, abs=1e-6)
    assert json.loads((tmp_path / "codec" / "summary.json").read_text()) == pytest.approx(summary)
    assert sorted(p.name for p in (tmp_path / "codec").iterdir()) == ["metrics.csv", "summary.json"]
    # Without F0 the slow columns are not there; a decoded clip without a recording is named.
    assert "f0_rmse" not in score_roundtrip(tmp_path, items[:1], f0=False, folder="fast", progress=False)
    with pytest.raises(EvalError, match="same has no recording"):
        score_roundtrip(tmp_path, [SimpleNamespace(utt="same", gt_wav=None)], progress=False)


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
