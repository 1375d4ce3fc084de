"""Bad input to SparkTTS gets a clear error that names the problem and the fix."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from sparktts import AudioError, PromptError

TEXT = "Hello world, this is Spark TTS."


@pytest.fixture(scope="module")
def voice(tiny_tts, prompt_wav):
    return tiny_tts.make_voice(prompt_wav)


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_text(tiny_tts, voice, text: str) -> None:
    with pytest.raises(PromptError, match="empty or whitespace"):
        tiny_tts.clone(text, voice=voice)
    with pytest.raises(PromptError, match="empty or whitespace"):
        tiny_tts.create(text, "male", "low", "low")
    with pytest.raises(PromptError, match="empty or whitespace"):
        tiny_tts.clone(["fine", text], voice=voice)
    with pytest.raises(PromptError, match="empty or whitespace"):
        tiny_tts.stream(text, voice=voice)


def test_text_must_be_a_string(tiny_tts, voice) -> None:
    with pytest.raises(PromptError, match="must be a str"):
        tiny_tts.clone([None], voice=voice)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (("robot", "low", "low"), "unknown gender 'robot'; valid genders: female, male"),
        (("male", "medium", "low"), "unknown pitch level 'medium'; valid levels: very_low, low, moderate, high, "
                                    "very_high"),
        (("male", "low", "fast"), "unknown speed level 'fast'; valid levels: very_low"),
        ((None, "low", "low"), "missing gender"),
        (("female", None, None), "missing pitch, speed"),
    ],
)
def test_bad_creation_labels(tiny_tts, labels, message: str) -> None:
    with pytest.raises(PromptError, match=message):
        tiny_tts.create(TEXT, *labels)
    if labels[0] is not None:  # the original's call reports the same problem (it used bare asserts)
        with pytest.raises(PromptError, match=message):
            tiny_tts.inference(TEXT, gender=labels[0], pitch=labels[1], speed=labels[2])


def test_prompt_audio_missing_silent_or_too_short(tiny_tts, tmp_path) -> None:
    with pytest.raises(AudioError, match="not found"):
        tiny_tts.clone(TEXT, prompt_audio=tmp_path / "missing.wav")
    soundfile.write(str(tmp_path / "silent.wav"), np.zeros(16000, np.float32), 16000)
    with pytest.raises(AudioError, match="silent"):
        tiny_tts.clone(TEXT, prompt_audio=tmp_path / "silent.wav")
    soundfile.write(str(tmp_path / "short.wav"), 0.3 * np.ones(100, np.float32), 16000)
    with pytest.raises(AudioError, match="at least 400 samples"):
        tiny_tts.inference(TEXT, prompt_speech_path=str(tmp_path / "short.wav"))
    with pytest.raises(AudioError, match="sample rate"):
        tiny_tts.clone(TEXT, prompt_audio=np.ones(16000, np.float32))


def test_prompt_text_without_prompt_audio(tiny_tts, voice) -> None:
    with pytest.raises(PromptError, match="prompt_text was given without prompt audio"):
        tiny_tts.inference(TEXT, prompt_text="the reference words")
    with pytest.raises(PromptError, match="prompt_text was given with voice"):
        tiny_tts.clone(TEXT, voice=voice, prompt_text="words")


def test_voice_sources(tiny_tts, voice, prompt_wav) -> None:
    with pytest.raises(PromptError, match="needs a voice"):
        tiny_tts.clone(TEXT)
    with pytest.raises(PromptError, match="not both"):
        tiny_tts.clone(TEXT, prompt_audio=prompt_wav, voice=voice)
    with pytest.raises(PromptError, match="one per text"):
        tiny_tts.clone(["a", "b"], voice=[voice])
    with pytest.raises(PromptError, match="without gender"):
        tiny_tts.inference(TEXT, prompt_speech_path=str(prompt_wav), pitch="low")
    with pytest.raises(PromptError, match="either gender"):
        tiny_tts.stream(TEXT, voice=voice, gender="male", pitch="low", speed="low")
