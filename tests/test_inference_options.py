"""The facade's settings objects and the loose keywords they replace give the same results."""

from __future__ import annotations

import numpy as np
import pytest

from sparktts import LongText, SamplingConfig, StreamOptions, Voice

TEXT = "The first sentence is here. A second one follows it. And a third one ends the text."
VOICE = Voice(np.arange(32, dtype=np.int64))


def test_settings_objects_equal_the_old_keywords(tiny_tts) -> None:
    old = tiny_tts.clone(TEXT, voice=VOICE, seed=3, split=True, max_chars=40, crossfade_s=0.01,
                         temperature=0.7, top_k=20, max_new_tokens=12, progress=False)
    new = tiny_tts.clone(TEXT, voice=VOICE, seed=3, long_text=LongText(split=True, max_chars=40, crossfade_s=0.01),
                         sampling=SamplingConfig(temperature=0.7, top_k=20, max_new_tokens=12), progress=False)
    assert len(old.segments) == len(new.segments) > 1
    assert old.semantic_tokens.tolist() == new.semantic_tokens.tolist()
    np.testing.assert_array_equal(old.audio, new.audio)


def test_a_keyword_overrides_its_settings_field(tiny_tts) -> None:
    out = tiny_tts.create(TEXT, "female", "low", "high", seed=1, long_text=LongText(split=True, max_chars=40),
                          split=False, do_sample=False, max_new_tokens=60, progress=False)
    assert out.segments == []  # split=False wins over the LongText's split=True


@pytest.mark.parametrize("method", ["clone", "create", "stream"])
def test_an_unknown_keyword_is_a_type_error(tiny_tts, method: str) -> None:
    args = {"clone": dict(voice=VOICE), "create": dict(gender="male", pitch="low", speed="low"),
            "stream": dict(voice=VOICE)}[method]
    with pytest.raises(TypeError, match="unexpected keyword argument 'temprature'"):
        getattr(tiny_tts, method)("Hello.", temprature=0.5, **args)


def test_stream_options_equal_the_old_keywords(tiny_tts) -> None:
    kw = dict(voice=VOICE, seed=2, do_sample=False, max_new_tokens=30)
    old = tiny_tts.stream("Hello there.", chunk_tokens=4, first_chunk_tokens=2, lookahead=3, stream_crossfade=64, **kw)
    new = tiny_tts.stream("Hello there.", streaming=StreamOptions(chunk_tokens=4, first_chunk_tokens=2, lookahead=3,
                                                                  stream_crossfade=64), **kw)
    old_chunks, new_chunks = list(old), list(new)
    assert len(old_chunks) == len(new_chunks) > 1
    for a, b in zip(old_chunks, new_chunks):
        np.testing.assert_array_equal(a, b)
