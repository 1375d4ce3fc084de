"""Voices: made from a clip or a creation, saved and loaded, reused without the audio tokenizer."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sparktts import PromptError, Voice
from sparktts.voices import VOICE_FORMAT_VERSION

TEXT = "Hello world, this is Spark TTS."


def test_voice_from_audio_matches_the_tokenizer(tiny_tts, prompt_wav) -> None:
    tokens = tiny_tts.audio_tokenizer.encode(prompt_wav)
    plain = Voice.from_audio(tiny_tts, prompt_wav)
    assert plain.global_ids.tolist() == tokens.global_ids[0].tolist() and len(plain.global_ids) == 32
    assert plain.prompt_semantic_ids is None and plain.name == "ref"
    assert plain.metadata["source"]["type"] == "audio"
    assert plain.metadata["source"]["path"] == str(prompt_wav)
    assert plain.metadata["source"]["duration_s"] == pytest.approx(1.5)
    with_text = Voice.from_audio(tiny_tts.audio_tokenizer, prompt_wav, "the reference words")
    assert with_text.global_ids.tolist() == plain.global_ids.tolist()
    assert with_text.prompt_semantic_ids.tolist() == tokens.semantic_ids[0].tolist()
    assert with_text.prompt_text == "the reference words"


@pytest.mark.parametrize("transcript", [None, "the reference words"])
def test_save_load_round_trip(tiny_tts, prompt_wav, tmp_path, transcript) -> None:
    voice = tiny_tts.make_voice(prompt_wav, transcript, name="anna")
    path = voice.save(tmp_path / "voices" / "anna.json")
    data = json.loads(path.read_text())
    assert data["format_version"] == VOICE_FORMAT_VERSION and data["name"] == "anna"
    loaded = Voice.load(path)
    assert loaded == voice
    assert loaded.global_ids.dtype == np.int64
    if transcript:
        assert loaded.prompt_semantic_ids.tolist() == voice.prompt_semantic_ids.tolist()


def test_saved_voice_is_reused_without_the_audio_tokenizer(tiny_tts, prompt_wav, tmp_path, monkeypatch) -> None:
    voice = tiny_tts.make_voice(prompt_wav)
    expected = tiny_tts.clone(TEXT, voice=voice, seed=9, max_new_tokens=15)
    path = voice.save(tmp_path / "v.json")

    def forbidden(*args, **kwargs):
        raise AssertionError("the audio tokenizer must not run for a saved voice")

    for name in ("load", "encode", "encode_prepared", "encode_global"):
        monkeypatch.setattr(tiny_tts.audio_tokenizer, name, forbidden)
    again = tiny_tts.clone(TEXT, voice=Voice.load(path), seed=9, max_new_tokens=15)
    by_path = tiny_tts.clone(TEXT, voice=str(path), seed=9, max_new_tokens=15)
    assert again.semantic_tokens.tolist() == expected.semantic_tokens.tolist() == by_path.semantic_tokens.tolist()
    assert again.global_tokens.tolist() == voice.global_ids.tolist()


def test_same_clip_is_tokenized_once(tiny_tts, prompt_wav, monkeypatch) -> None:
    calls = []
    original = tiny_tts.audio_tokenizer.load

    def counting(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(tiny_tts.audio_tokenizer, "load", counting)
    tiny_tts._voice_cache.clear()
    a = tiny_tts.clone(TEXT, prompt_audio=prompt_wav, seed=1, max_new_tokens=5)
    b = tiny_tts.clone(TEXT, prompt=str(prompt_wav), seed=1, max_new_tokens=5)
    assert len(calls) == 1
    assert a.global_tokens.tolist() == b.global_tokens.tolist()


def test_created_voice_speaks_later_lines(tiny_tts, tmp_path) -> None:
    made = tiny_tts.create(TEXT, "female", "high", "low", seed=4, max_new_tokens=50)
    voice = made.voice("newcomer")
    src = voice.metadata["source"]
    assert src["type"] == "created"
    assert (src["gender"], src["pitch"], src["speed"]) == ("female", "high", "low")
    assert (src["pitch_value"], src["speed_value"], src["seed"]) == (made.pitch_value, made.speed_value, 4)
    assert voice.metadata["created_at"] and voice.metadata["sparktts_version"]
    loaded = Voice.load(voice.save(tmp_path / "newcomer.json"))
    later = tiny_tts.clone("A later line.", voice=loaded, seed=1, max_new_tokens=10)
    assert later.global_tokens.tolist() == made.global_tokens.tolist()
    with_prompt = made.voice(with_prompt=True)
    assert with_prompt.prompt_text == TEXT
    assert with_prompt.prompt_semantic_ids.tolist() == made.semantic_tokens.tolist()
    assert tiny_tts.clone("Go on.", voice=with_prompt, seed=1, max_new_tokens=5).prompt.endswith(
        f"<|bicodec_semantic_{made.semantic_tokens[-1]}|>")


def test_unknown_format_version_is_refused(tmp_path) -> None:
    path = tmp_path / "future.json"
    path.write_text(json.dumps({"format_version": 2, "global_ids": list(range(32))}))
    with pytest.raises(PromptError, match="format_version 2 is not supported.*version 1"):
        Voice.load(path)
    path.write_text(json.dumps({"global_ids": list(range(32))}))
    with pytest.raises(PromptError, match="format_version None"):
        Voice.load(path)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"global_ids": [0, 4096]}, r"outside \[0, 4096\)"),
        ({"global_ids": [-1]}, r"outside \[0, 4096\)"),
        ({"global_ids": []}, "global_ids is empty"),
        ({"global_ids": [1.5, 2.0]}, "must be integers"),
        ({"global_ids": [1], "prompt_text": "words"}, "go together"),
        ({"global_ids": [1], "prompt_text": "words", "prompt_semantic_ids": [9000]}, r"outside \[0, 8192\)"),
        ({"global_ids": [1], "colour": "blue"}, "unknown keys"),
    ],
)
def test_invalid_voice_files_are_refused(tmp_path, fields: dict, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"format_version": 1, **fields}))
    with pytest.raises(PromptError, match=message):
        Voice.load(path)


def test_missing_or_broken_voice_file(tmp_path) -> None:
    with pytest.raises(PromptError, match="voice file not found"):
        Voice.load(tmp_path / "nope.json")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(PromptError, match="not a voice JSON file"):
        Voice.load(tmp_path / "broken.json")


def test_wrong_number_of_global_tokens_for_this_codec(tiny_tts) -> None:
    with pytest.raises(PromptError, match="has 8 ids but the model expects 32"):
        tiny_tts.clone(TEXT, voice=Voice(list(range(8))), max_new_tokens=5)
