"""`make demo` without a model: it says so, falls back to a labelled random release, writes its outputs."""

from __future__ import annotations

import json

import pytest
import soundfile

from sparktts import demo
from sparktts.checkpoint import BUILTIN_ENV, resolve_model_dir
from sparktts.errors import CheckpointError


def test_demo_falls_back_to_random_release(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv(BUILTIN_ENV, str(tmp_path / "no-builtin"))
    out = tmp_path / "out"
    assert demo.main(["--model_dir", str(tmp_path / "no-model"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "No Spark-TTS model available" in printed
    assert demo.RANDOM_LABEL in printed
    wav, sr = soundfile.read(str(out / "codec_roundtrip.wav"))
    tokens = json.loads((out / "codec_tokens.json").read_text())
    prompt_frames = (soundfile.info(str(demo.DATA / "prompts" / "demo_en.wav")).frames - 400) // 320 + 1
    assert sr == 16000 and len(tokens["semantic_ids"][0]) == prompt_frames
    assert len(wav) == prompt_frames * 320 and len(tokens["global_ids"][0]) == 32
    assert (out / "codec_roundtrip.png").stat().st_size > 10_000


def test_demo_clone_and_create_outputs(tmp_path, monkeypatch):
    """The demo also clones and creates: both wavs exist and match their token counts."""
    from sparktts.voices import Voice

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv(BUILTIN_ENV, str(tmp_path / "no-builtin"))
    out = tmp_path / "out"
    assert demo.main(["--model_dir", str(tmp_path / "no-model"), "--out", str(out), "--max_new_tokens", "60"]) == 0
    for name in ("clone", "create"):
        info = soundfile.info(str(out / f"{name}.wav"))
        assert info.samplerate == 16000 and info.frames > 0 and info.frames % 320 == 0
        assert (out / f"{name}.png").is_file()
    voice = Voice.load(out / "created_voice.json")
    assert len(voice.global_ids) == 32


def test_builtin_name_resolves_like_any_release(tmp_path, monkeypatch, tiny_release):
    """``builtin`` names the built-in release's folder; a missing one is an error that says how to build it."""
    from sparktts import SparkTTS

    monkeypatch.setenv(BUILTIN_ENV, str(tmp_path / "absent"))
    with pytest.raises(CheckpointError, match="data/builtin/build.py"):
        SparkTTS.from_pretrained("builtin", device="cpu")
    monkeypatch.setenv(BUILTIN_ENV, str(tiny_release))
    assert resolve_model_dir("builtin") == tiny_release
    tts = SparkTTS.from_pretrained("builtin", device="cpu")
    assert tts.model_dir == tiny_release


def test_demo_prefers_the_builtin_model_to_random_weights(tmp_path, capsys, monkeypatch, tiny_release):
    from sparktts.notebook import open_release

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv(BUILTIN_ENV, str(tiny_release))
    assert demo.find_release(tmp_path / "no-model", download=False) == (tiny_release, False)
    assert demo.BUILTIN_LABEL in capsys.readouterr().out
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj.data))
    assert open_release(tmp_path / "no-model") == (tiny_release, False)
    assert len(shown) == 1 and "built-in model" in shown[0] and "color" not in shown[0]
    shown.clear()
    assert open_release(tiny_release) == (tiny_release, False) and not shown  # asked for by path: no note


def test_round_trip_figure_puts_the_input_above_the_reconstruction_on_one_scale():
    import numpy as np

    from sparktts.plotting import codec_overview

    t = np.arange(16000) / 16000
    loud = (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    quiet = (0.01 * np.sin(2 * np.pi * 440 * t[:15680])).astype(np.float32)  # shorter, as decodes can be
    fig = codec_overview(quiet, np.arange(32), np.arange(49), reference=loud)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[1:3] == ["input", "reconstruction"] and len(fig.axes) == 5
    clims = [ax.images[0].get_clim() for ax in fig.axes[1:3]]
    assert clims[0] == clims[1]  # the same colour scale: the quiet output looks quiet
    assert all(ax.get_xlim() == (0, 1.0) for ax in fig.axes[:4])
    assert len(codec_overview(quiet, np.arange(32), np.arange(49)).axes) == 4
