"""Audio loading and the clear errors for bad input (librosa's test_failures in spirit)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from sparktts import AudioError, BiCodecTokens, load_audio, save_audio
from sparktts.audio import reference_clip, volume_normalize

from .conftest import tone


def test_stereo_is_mixed_down(tmp_path):
    left, right = tone(0.5, freq=220), tone(0.5, freq=330)
    path = tmp_path / "stereo.wav"
    soundfile.write(str(path), np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    mixed = load_audio(path)
    np.testing.assert_allclose(mixed, (left + right) / 2, atol=1e-7)
    np.testing.assert_allclose(load_audio(path, mono="first"), left, atol=1e-7)  # the original's choice


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 48000])
def test_other_sample_rates_are_resampled(tmp_path, sr):
    path = tmp_path / f"a{sr}.wav"
    soundfile.write(str(path), tone(1.0, sr=sr, freq=440), sr)
    wav = load_audio(path)
    assert wav.shape == (16000,)
    spectrum = np.abs(np.fft.rfft(wav))
    assert abs(np.argmax(spectrum) - 440) <= 1  # 1 Hz bins: the tone stays at 440 Hz


def test_array_input_needs_sample_rate_and_accepts_channels_first():
    with pytest.raises(AudioError, match="pass sample_rate"):
        load_audio(tone())
    stereo = np.stack([tone(), tone()])  # (C, T) as librosa returns it
    assert load_audio(stereo, 16000).shape == (16000,)
    int16 = (tone() * 32767).astype(np.int16)
    np.testing.assert_allclose(load_audio(int16, 16000), tone(), atol=1e-4)


@pytest.mark.parametrize(
    "audio, message",
    [
        (np.zeros(0, dtype=np.float32), "empty"),
        (np.zeros(16000, dtype=np.float32), "silent"),
        (np.full(16000, np.nan, dtype=np.float32), "NaN/inf"),
    ],
)
def test_bad_arrays(audio, message):
    with pytest.raises(AudioError, match=message):
        load_audio(audio, 16000)


def test_unreadable_and_missing_files(tmp_path):
    bad = tmp_path / "notaudio.wav"
    bad.write_text("hello")
    with pytest.raises(AudioError, match="cannot read audio"):
        load_audio(bad)
    with pytest.raises(AudioError, match="not found"):
        load_audio(tmp_path / "missing.wav")
    with pytest.raises(AudioError, match="is a directory"):
        load_audio(tmp_path)


def test_clip_shorter_than_one_frame_is_refused(reference_tokenizer):
    with pytest.raises(AudioError, match="at least 400 samples"):
        reference_tokenizer.tokenize(tone(0.01), sample_rate=16000)  # 160 samples
    g, s = reference_tokenizer.tokenize(tone(0.03), sample_rate=16000)  # 480 samples: one frame
    assert s.shape == (1, 1) and g.shape == (1, 1, 8)


def loud_level(x):
    loud = np.sort(np.abs(x))
    loud = loud[loud > 0.01]
    return loud[int(0.9 * len(loud)): int(0.99 * len(loud))].mean()


def test_volume_normalisation_rule():
    out = volume_normalize(tone(1.0, amp=0.5).astype(np.float64))
    assert loud_level(out) == pytest.approx(0.2, rel=1e-3)
    # The original measures the level before its quiet-clip boost (peak -> 0.1) and applies the gain
    # after it, so a clip with peak 0.05 ends at 0.2 * 0.1 / 0.05 = 0.4. Matching that keeps tokens equal.
    out = volume_normalize(tone(1.0, amp=0.05).astype(np.float64))
    assert loud_level(out) == pytest.approx(0.4, rel=1e-3)
    clipped = volume_normalize(np.concatenate([tone(1.0, amp=0.5).astype(np.float64), [5.0]]))
    assert np.max(np.abs(clipped)) == pytest.approx(1.0)


def test_reference_clip_tiles_short_audio():
    wav = np.arange(5, dtype=np.float32)
    np.testing.assert_array_equal(reference_clip(wav, 12), [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1])
    np.testing.assert_array_equal(reference_clip(np.arange(20), 12), np.arange(12))


def test_save_audio_round_trip(tmp_path):
    path = save_audio(tmp_path / "sub" / "x.wav", tone())
    back, sr = soundfile.read(str(path), dtype="float32")
    assert sr == 16000
    np.testing.assert_allclose(back, tone(), atol=1 / 32767)


def test_tokens_file_round_trip(tmp_path):
    tokens = BiCodecTokens.from_lists([[1] * 32, [2] * 32], [[5, 6, 7], [8]])
    assert tokens.lengths.tolist() == [3, 1]
    loaded = BiCodecTokens.load(tokens.save(tmp_path / "t.json"))
    assert loaded.semantic_ids.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert loaded.lengths.tolist() == [3, 1] and loaded.global_ids.tolist() == tokens.global_ids.tolist()
    (tmp_path / "v.json").write_text('{"format_version": 99}')
    with pytest.raises(ValueError, match="format_version 99"):
        BiCodecTokens.load(tmp_path / "v.json")


def test_decode_rejects_bad_ids(reference_tokenizer):
    with pytest.raises(ValueError, match=r"semantic ids must lie in \[0, 128\)"):
        reference_tokenizer.decode(BiCodecTokens.from_lists([[0] * 8], [[1, 500]]))
    with pytest.raises(ValueError, match="global_ids has 32 tokens per row; this codec uses 8"):
        reference_tokenizer.decode(BiCodecTokens.from_lists([[0] * 32], [[1, 2]]))
