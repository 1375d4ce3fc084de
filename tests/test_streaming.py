"""Streaming: windowed decoding with context reproduces the one-shot decode; streams yield early and match
the non-streamed call."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from sparktts.codec.tokens import BiCodecTokens
from sparktts.streaming import StreamingDecoder, decoder_context
from sparktts.testing import bicodec_config

TEXT = "Hello world, this is Spark TTS."


@pytest.fixture(scope="module")
def voice(tiny_tts, prompt_wav):
    return tiny_tts.make_voice(prompt_wav)


def test_decoder_context_bounds_the_measured_receptive_field(tiny_tts) -> None:
    """Changing one token changes the decoded audio only within decoder_context tokens of it."""
    radius = decoder_context(tiny_tts.codec.config)
    assert decoder_context(bicodec_config("full")) > radius  # deeper prenet in the release
    n, pos = 2 * radius + 11, radius + 5
    rng = np.random.default_rng(0)
    sem = torch.tensor(rng.integers(0, 128, (1, n)))
    glob = torch.tensor(rng.integers(0, 4096, (1, 32)))
    base = tiny_tts.codec.decode(BiCodecTokens(glob, sem)).reshape(-1)
    sem2 = sem.clone()
    sem2[0, pos] = (sem2[0, pos] + 1) % 128
    changed = torch.nonzero((tiny_tts.codec.decode(BiCodecTokens(glob, sem2)).reshape(-1) - base) != 0).reshape(-1)
    first, last = int(changed.min()) // 320, int(changed.max()) // 320
    assert pos - radius <= first and last <= pos + radius
    assert last - first > 10  # the change does spread: the window context is needed


def _stream_tokens(tts, glob, sem, **kw) -> tuple[np.ndarray, int]:
    dec = StreamingDecoder(tts.codec, glob, **kw)
    chunks = []
    for i in range(0, len(sem), 3):  # tokens arrive a few at a time, as from the LM
        chunks += dec.push(sem[i : i + 3])
    last = dec.flush()
    return np.concatenate(chunks + ([last] if last is not None else [])), len(chunks)


def test_windowed_decode_matches_the_full_decode(tiny_tts, voice) -> None:
    sem = np.random.default_rng(1).integers(0, 128, 60).tolist()
    full = tiny_tts.tokens_to_audio(voice.global_ids, sem)
    # Full context (the default): equal up to float rounding. Measured max |diff| = 1.2e-7 (peak 0.81).
    exact, n_chunks = _stream_tokens(tiny_tts, voice.global_ids, sem, chunk_tokens=8, first_chunk_tokens=4)
    assert n_chunks >= 2 and exact.shape == full.shape == (60 * 320,)
    assert np.abs(exact - full).max() < 1e-5
    # Low-latency setting (8 tokens of lookahead instead of 38, 20 ms crossfade): measured max |diff| = 0.0079
    # on these tokens of this random codec (about 1 % of the peak).
    approx, _ = _stream_tokens(tiny_tts, voice.global_ids, sem, chunk_tokens=20, first_chunk_tokens=10,
                               lookahead=8)
    assert approx.shape == full.shape
    assert np.abs(approx - full).max() < 0.02


def test_stream_yields_chunks_matching_the_non_streamed_call(tiny_tts, voice) -> None:
    stream = tiny_tts.stream(TEXT, voice=voice, seed=1, max_new_tokens=60, chunk_tokens=8, first_chunk_tokens=4)
    chunks = list(stream)
    result = stream.result()
    assert len(chunks) >= 2 and all(c.dtype == np.float32 for c in chunks)
    joined = np.concatenate(chunks)
    n = len(result.semantic_tokens)
    assert joined.shape == (n * 320,)
    # Same tokens decoded in one shot: measured max |diff| = 1.0e-7.
    assert np.abs(joined - tiny_tts.tokens_to_audio(result.global_tokens, result.semantic_tokens)).max() < 1e-5
    assert 0 < stream.timings["first_chunk_s"] <= stream.timings["total_s"]
    # Same seed, same tokens as the non-streamed call.
    plain = tiny_tts.clone(TEXT, voice=voice, seed=1, max_new_tokens=60, batch_size=1)
    assert plain.semantic_tokens.tolist() == result.semantic_tokens.tolist()


def test_streamed_long_creation_equals_the_non_streamed_join(tiny_tts) -> None:
    text = "The first sentence is here. A second one follows it."
    kw = dict(seed=5, max_new_tokens=45, max_chars=30)
    stream = tiny_tts.stream(text, gender="male", pitch="high", speed="low", chunk_tokens=8, **kw)
    streamed = stream.result()
    plain = tiny_tts.create(text, "male", "high", "low", batch_size=1, progress=False, **kw)
    assert len(streamed.segments) == len(plain.segments) == 2
    assert streamed.semantic_tokens.tolist() == plain.semantic_tokens.tolist()
    assert streamed.segments[1].global_tokens.tolist() == streamed.segments[0].global_tokens.tolist()
    assert streamed.pitch_value == plain.pitch_value
    assert streamed.audio.shape == plain.audio.shape
    assert np.abs(streamed.audio - plain.audio).max() < 1e-5


def test_closing_a_stream_stops_its_generation(tiny_tts, voice) -> None:
    stream = tiny_tts.stream(TEXT, voice=voice, seed=1, max_new_tokens=400, chunk_tokens=2, first_chunk_tokens=1,
                             lookahead=0, left_context=4)
    first = next(iter(stream))
    assert len(first) == 320
    stream.close()
    assert not any(t.name == "sparktts-generate" and t.is_alive() for t in threading.enumerate())
    with pytest.raises(Exception, match="closed before it finished"):
        stream.result()


def test_held_streamer_pauses_generation_after_its_step_until_released() -> None:
    """The first chunk's decode holds the LM: ``put`` queues the step's token, then waits for release."""
    from sparktts.streaming import TokenQueueStreamer

    streamer = TokenQueueStreamer()
    streamer.put(torch.tensor([[1, 2, 3]]))  # the prompt: skipped, never waits
    streamer.hold()
    steps = threading.Thread(target=lambda: [streamer.put(torch.tensor([t])) for t in (7, 8)])
    steps.start()
    assert streamer.queue.get(timeout=5) == 7  # the step under way still delivers its token
    steps.join(timeout=0.3)
    assert steps.is_alive() and streamer.queue.empty()  # ... and the next step does not start
    streamer.release()
    steps.join(timeout=5)
    assert not steps.is_alive() and streamer.queue.get(timeout=5) == 8


def test_first_chunk_is_decoded_with_generation_held(tiny_tts, voice, monkeypatch) -> None:
    """While the first window decodes no generation step runs; later windows overlap generation again."""
    from sparktts.streaming import StreamingDecoder, TokenQueueStreamer

    held: list[bool] = []
    push = StreamingDecoder.push
    hold, release = TokenQueueStreamer.hold, TokenQueueStreamer.release
    state = {"held": False}
    monkeypatch.setattr(TokenQueueStreamer, "hold", lambda self: (state.update(held=True), hold(self))[1])
    monkeypatch.setattr(TokenQueueStreamer, "release", lambda self: (state.update(held=False), release(self))[1])

    def recording_push(self, tokens):
        chunks = push(self, tokens)
        if chunks:
            held.append(state["held"])
        return chunks

    monkeypatch.setattr(StreamingDecoder, "push", recording_push)
    stream = tiny_tts.stream(TEXT, voice=voice, seed=1, max_new_tokens=60, chunk_tokens=4, first_chunk_tokens=2,
                             lookahead=1, left_context=4)
    audio = stream.result().audio
    assert len(audio) > 0 and held[0] and not any(held[1:]) and len(held) > 2
