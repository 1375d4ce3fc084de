"""Generation on the tiny random release: prompts and ids, constrained decoding, forced sequences, seeds,
batching, long text.

The random LM does not speak, but every property tested here (what gets generated, parsed, decoded, joined)
is independent of the weights. Budgets stay small (max_new_tokens ~20) to keep the suite fast.
"""

from __future__ import annotations

import functools
import json
import re

import numpy as np
import pytest
import soundfile
import torch

from sparktts import GenerationError, PromptError, SamplingConfig, Voice
from sparktts.api import chunk_text, mel_to_hz
from sparktts.errors import ConfigError
from sparktts.generation import infer_mode
from sparktts.prompts import build_clone_prompt, format_global
from sparktts.streaming import crossfade_concat

from .conftest import REFERENCE

REF = json.loads((REFERENCE / "prompts.json").read_text(encoding="utf-8"))
STUB_GLOBAL = np.asarray(REF["stub_tokens"]["global_token_ids"]).reshape(-1)
STUB_SEMANTIC = np.asarray(REF["stub_tokens"]["semantic_token_ids"]).reshape(-1)
TEXT = "Hello world, this is Spark TTS."
FAST = dict(max_new_tokens=20, progress=False)


def expected_ids(tokenizer, prompt: str) -> list[int]:
    """Ids built piece by piece: one id per ``<|...|>`` token, ordinary BPE for the text in between."""
    ids: list[int] = []
    for piece in re.split(r"(<\|[^|]+\|>)", prompt):
        if piece.startswith("<|"):
            ids.append(tokenizer.convert_tokens_to_ids(piece))
        elif piece:
            ids.extend(tokenizer.encode(piece, add_special_tokens=False))
    return ids


class ForceTokens:
    """Logits processor forcing a scripted token at each step (greedy decoding then picks it)."""

    def __init__(self, script: list[int]):
        self.script = script
        self.start: int | None = None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.start is None:  # the first call sees only the prompt
            self.start = input_ids.shape[1]
        step = input_ids.shape[1] - self.start
        out = torch.full_like(scores, float("-inf"))
        out[:, self.script[min(step, len(self.script) - 1)]] = 0.0
        return out


class Boost:
    """Logits processor adding a large bonus to some ids (a model that 'wants' them)."""

    def __init__(self, ids: list[int]):
        self.ids = ids

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        scores = scores.clone()
        scores[:, self.ids] += 1e4
        return scores


@pytest.fixture(scope="module")
def voice(tiny_tts, prompt_wav) -> Voice:
    return tiny_tts.make_voice(prompt_wav)


def tok_id(tts, token: str) -> int:
    return tts.tokenizer.convert_tokens_to_ids(token)


# ---------------------------------------------------------------------------------------------------
# Prompts and input ids
# ---------------------------------------------------------------------------------------------------


def test_clone_and_create_prompts_match_the_official_strings(tiny_tts) -> None:
    """The prompt a call sends is the official string, character for character."""
    plain = next(c for c in REF["clone"] if c["prompt_text"] is None)
    with_text = next(c for c in REF["clone"] if c["prompt_text"] is not None)
    out = tiny_tts.clone(plain["text"], voice=Voice(STUB_GLOBAL), seed=0, **FAST)
    assert out.prompt == plain["prompt"]
    v = Voice(STUB_GLOBAL, STUB_SEMANTIC, with_text["prompt_text"])
    out = tiny_tts.clone(with_text["text"], voice=v, legacy_join=True, seed=0, **FAST)
    assert out.prompt == with_text["prompt"]
    # Default join puts a space between the transcript and the text (the original's bug fixed).
    out = tiny_tts.clone(with_text["text"], voice=v, seed=0, **FAST)
    assert "reference audio. Hello world" in out.prompt
    case = REF["create"][4]
    out = tiny_tts.create(case["text"], case["gender"], case["pitch"], case["speed"], seed=0, max_new_tokens=60)
    assert out.prompt == case["prompt"]


@pytest.mark.parametrize("which", ["clone", "clone_text", "create"])
def test_input_ids_are_one_id_per_special_token(tiny_tts, which: str) -> None:
    if which == "create":
        prompt = REF["create"][0]["prompt"]
    else:
        case = [c for c in REF["clone"] if (c["prompt_text"] is not None) == (which == "clone_text")][0]
        prompt = case["prompt"]
    ids = tiny_tts.generator.encode_prompts([prompt])["input_ids"][0].tolist()
    assert ids == expected_ids(tiny_tts.tokenizer, prompt)
    if which != "create":
        gids = [tok_id(tiny_tts, f"<|bicodec_global_{g}|>") for g in STUB_GLOBAL]
        start = ids.index(tok_id(tiny_tts, "<|start_global_token|>"))
        assert ids[start + 1 : start + 33] == gids
        assert ids[start + 33] == tok_id(tiny_tts, "<|end_global_token|>")
    if which == "clone_text":
        sids = [tok_id(tiny_tts, f"<|bicodec_semantic_{s}|>") for s in STUB_SEMANTIC]
        assert ids[-len(sids) :] == sids


def test_batched_prompts_are_left_padded(tiny_tts) -> None:
    short, long = REF["create"][0]["prompt"], REF["clone"][0]["prompt"]
    enc = tiny_tts.generator.encode_prompts([short, long])
    n_short = len(expected_ids(tiny_tts.tokenizer, short))
    pad = enc["input_ids"].shape[1] - n_short
    assert pad > 0
    assert enc["attention_mask"][0].tolist() == [0] * pad + [1] * n_short
    assert enc["input_ids"][0, :pad].eq(tiny_tts.tokenizer.pad_token_id).all()
    assert enc["input_ids"][0, pad:].tolist() == expected_ids(tiny_tts.tokenizer, short)


def test_infer_mode() -> None:
    assert infer_mode(REF["create"][0]["prompt"]) == "create"
    assert infer_mode(next(c for c in REF["clone"] if c["prompt_text"] is None)["prompt"]) == "clone"
    assert infer_mode(next(c for c in REF["clone"] if c["prompt_text"])["prompt"]) == "clone_continue"
    with pytest.raises(GenerationError, match="neither"):
        infer_mode("Hello")


# ---------------------------------------------------------------------------------------------------
# Forced sequences: parsing and decoding to audio of the expected length
# ---------------------------------------------------------------------------------------------------


def create_script(tts, globals_: list[int], semantic: list[int], pitch: int = 287, speed: int = 4) -> list[int]:
    toks = ["<|start_acoustic_token|>", f"<|pitch_value_{pitch}|>", f"<|speed_value_{speed}|>",
            "<|end_acoustic_token|>", "<|start_global_token|>"]
    toks += [f"<|bicodec_global_{g}|>" for g in globals_] + ["<|end_global_token|>", "<|start_semantic_token|>"]
    toks += [f"<|bicodec_semantic_{s}|>" for s in semantic] + ["<|im_end|>"]
    return [tok_id(tts, t) for t in toks]


def test_forced_creation_is_parsed_and_decoded_to_n_times_320_samples(tiny_tts, monkeypatch) -> None:
    rng = np.random.default_rng(7)
    globals_ = rng.integers(0, 4096, 32).tolist()
    semantic = rng.integers(0, 128, 13).tolist()  # the tiny codec's semantic codebook has 128 entries
    force = ForceTokens(create_script(tiny_tts, globals_, semantic))
    monkeypatch.setattr(tiny_tts.generator, "generate",
                        functools.partial(tiny_tts.generator.generate, logits_processor=[force]))
    out = tiny_tts.create(TEXT, "male", "low", "moderate", do_sample=False, max_new_tokens=100)
    assert out.semantic_tokens.tolist() == semantic
    assert out.global_tokens.tolist() == globals_
    assert (out.pitch_value, out.speed_value) == (287, 4)
    assert out.finish_reason == "stop"
    assert out.audio.dtype == np.float32 and out.audio.shape == (13 * 320,)
    assert out.sample_rate == 16000
    # Same ids straight through the codec -> the same waveform.
    np.testing.assert_allclose(out.audio, tiny_tts.tokens_to_audio(globals_, semantic), atol=1e-6)


def test_forced_creation_unconstrained_matches_the_regex_parse(tiny_tts) -> None:
    semantic = [5, 0, 127, 64]
    globals_ = list(range(32))
    force = ForceTokens(create_script(tiny_tts, globals_, semantic, pitch=0, speed=10))
    prompt = REF["create"][0]["prompt"]
    (res,) = tiny_tts.generator.generate([prompt], SamplingConfig(do_sample=False, max_new_tokens=100),
                                         constrained=False, logits_processor=[force])
    assert (res.semantic_ids, res.global_ids, res.pitch_value, res.speed_value) == (semantic, globals_, 0, 10)


def test_mel_to_hz_matches_the_reference_table() -> None:
    # control_levels.md: male very_low boundary 144.275 mel = 95.6 Hz, female very_high 352.569 mel = 257.1 Hz.
    assert mel_to_hz(144.275) == pytest.approx(95.6, abs=0.1)
    assert mel_to_hz(352.569) == pytest.approx(257.1, abs=0.1)


def test_constraint_blocks_ids_the_codec_cannot_decode(tiny_tts) -> None:
    """A model pushing semantic id 5000 (outside the tiny codec's 128) never gets it when constrained."""
    boost = Boost([tok_id(tiny_tts, "<|bicodec_semantic_5000|>")])
    prompt = REF["clone"][1]["prompt"]
    cfg = SamplingConfig(do_sample=False, max_new_tokens=6)
    (res,) = tiny_tts.generator.generate([prompt], cfg, logits_processor=[boost])
    assert res.semantic_ids and max(res.semantic_ids) < 128
    with pytest.raises(GenerationError, match=r"outside this codec's codebook \[0, 128\).*constrained=True"):
        tiny_tts.generator.generate([prompt], cfg, constrained=False, logits_processor=[boost])


def test_constraint_forbids_stopping_before_speech(tiny_tts) -> None:
    eos = tiny_tts.tokenizer.eos_token_id
    prompt = REF["clone"][1]["prompt"]
    cfg = SamplingConfig(do_sample=False, max_new_tokens=10)
    # Unconstrained, a model that wants to stop at once yields nothing: a clear error, not an empty wav.
    with pytest.raises(GenerationError, match="without generating any semantic token"):
        tiny_tts.generator.generate([prompt], cfg, constrained=False, logits_processor=[Boost([eos])])
    # Constrained: EOS is masked until one semantic token exists, then allowed (and taken).
    (res,) = tiny_tts.generator.generate([prompt], cfg, logits_processor=[Boost([eos])])
    assert len(res.semantic_ids) == 1 and res.finish_reason == "stop"


def test_constrained_creation_always_has_pitch_speed_and_32_globals(tiny_tts) -> None:
    outs = tiny_tts.create(["One.", "Two, three."], "female", "high", "low", seed=3, max_new_tokens=50,
                           progress=False)
    for out in outs:
        assert out.global_tokens.shape == (32,)
        assert 0 <= out.pitch_value <= 1000 and 0 <= out.speed_value <= 10
        assert len(out.semantic_tokens) >= 1
        assert out.audio.shape == (len(out.semantic_tokens) * 320,)
        assert out.attributes == {"gender": "female", "pitch": "high", "speed": "low"}


def test_budget_too_small_for_creation_is_a_clear_error(tiny_tts) -> None:
    with pytest.raises(GenerationError, match="max_new_tokens=10 was used up before any semantic token"):
        tiny_tts.create(TEXT, "male", "moderate", "moderate", max_new_tokens=10)


# ---------------------------------------------------------------------------------------------------
# Seeds and batching
# ---------------------------------------------------------------------------------------------------


def test_seed_reproduces_and_leaves_the_global_rng_alone(tiny_tts, voice) -> None:
    torch.manual_seed(5)
    expected_next = torch.rand(3)
    torch.manual_seed(5)
    a = tiny_tts.clone(TEXT, voice=voice, seed=123, **FAST)
    assert torch.equal(torch.rand(3), expected_next)  # generation ran in a forked RNG
    b = tiny_tts.clone(TEXT, voice=voice, seed=123, **FAST)
    c = tiny_tts.clone(TEXT, voice=voice, seed=124, **FAST)
    assert a.seed == 123
    assert np.array_equal(a.semantic_tokens, b.semantic_tokens) and np.array_equal(a.audio, b.audio)
    assert not np.array_equal(a.semantic_tokens, c.semantic_tokens)


def test_unseeded_call_records_a_seed_that_reproduces_it(tiny_tts, voice) -> None:
    a = tiny_tts.clone(TEXT, voice=voice, **FAST)
    assert isinstance(a.seed, int)
    b = tiny_tts.clone(TEXT, voice=voice, seed=a.seed, **FAST)
    assert np.array_equal(a.semantic_tokens, b.semantic_tokens)


def test_greedy_batch_equals_unbatched(tiny_tts, voice, prompt_wav) -> None:
    v2 = tiny_tts.make_voice(prompt_wav, transcript="A reference sentence.")
    texts = ["Hi.", "A much longer sentence, so that the batch needs left padding.", "你好，世界！"]
    voices = [voice, v2, voice]
    batched = tiny_tts.clone_batch(texts, voices, do_sample=False, **FAST)
    assert len(batched) == 3
    for text, v, got in zip(texts, voices, batched):
        alone = tiny_tts.clone(text, voice=v, do_sample=False, **FAST)
        assert got.semantic_tokens.tolist() == alone.semantic_tokens.tolist()
        np.testing.assert_allclose(got.audio, alone.audio, atol=1e-5)
        assert got.text == text


def test_greedy_create_batch_equals_unbatched(tiny_tts) -> None:
    texts = ["Short.", "A longer line for the second row of the batch."]
    batched = tiny_tts.create_batch(texts, "male", ["low", "high"], "moderate", do_sample=False,
                                    max_new_tokens=45, progress=False)
    for text, pitch, got in zip(texts, ["low", "high"], batched):
        alone = tiny_tts.create(text, "male", pitch, "moderate", do_sample=False, max_new_tokens=45)
        assert got.global_tokens.tolist() == alone.global_tokens.tolist()
        assert got.semantic_tokens.tolist() == alone.semantic_tokens.tolist()
        assert (got.pitch_value, got.speed_value) == (alone.pitch_value, alone.speed_value)


def test_original_inference_returns_float32_audio(tiny_tts, prompt_wav) -> None:
    wav = tiny_tts.inference(TEXT, prompt_speech_path=str(prompt_wav), seed=1, max_new_tokens=15)
    assert isinstance(wav, np.ndarray) and wav.dtype == np.float32 and wav.ndim == 1
    assert len(wav) % 320 == 0 and 0 < len(wav) <= 15 * 320
    wav = tiny_tts.inference(TEXT, gender="female", pitch="low", speed="high", seed=1, max_new_tokens=50)
    assert wav.dtype == np.float32 and len(wav) % 320 == 0 and len(wav) > 0


# ---------------------------------------------------------------------------------------------------
# Long text
# ---------------------------------------------------------------------------------------------------

LONG = ("The first sentence is here. A second one follows it! Does the third ask a question? "
        "And the fourth one closes the paragraph.")


def test_chunk_text_packs_sentences_without_cutting_words() -> None:
    chunks = chunk_text(LONG, max_chars=60)
    assert len(chunks) >= 2 and all(len(c) <= 60 for c in chunks)
    assert " ".join(chunks).split() == LONG.split()


def test_long_clone_is_one_file_in_one_voice(tiny_tts, voice, tmp_path) -> None:
    out = tiny_tts.clone(LONG, voice=voice, seed=4, max_chars=60, crossfade_s=0.01, **FAST)
    segs = out.segments
    assert len(segs) == len(chunk_text(LONG, 60)) >= 2
    assert [s.text for s in segs] == chunk_text(LONG, 60)
    for s in segs:
        assert s.global_tokens.tolist() == voice.global_ids.tolist()
        assert format_global(voice.global_ids) in s.prompt
    overlap = 160  # 0.01 s at 16 kHz
    assert len(out.audio) == sum(len(s.audio) for s in segs) - overlap * (len(segs) - 1)
    # Away from the seams the joined audio is each segment's audio unchanged.
    np.testing.assert_array_equal(out.audio[: len(segs[0].audio) - overlap], segs[0].audio[:-overlap])
    np.testing.assert_array_equal(out.audio[-(len(segs[-1].audio) - overlap) :], segs[-1].audio[overlap:])
    assert out.semantic_tokens.tolist() == sum((s.semantic_tokens.tolist() for s in segs), [])
    path = out.save(tmp_path / "long.wav")
    data, sr = soundfile.read(str(path))
    assert sr == 16000 and data.ndim == 1 and len(data) == len(out.audio)


def test_long_create_keeps_the_created_voice_for_every_chunk(tiny_tts) -> None:
    out = tiny_tts.create(LONG, "female", "moderate", "moderate", seed=2, max_chars=60, max_new_tokens=45,
                          progress=False)
    first, rest = out.segments[0], out.segments[1:]
    assert rest and first.prompt.startswith("<|task_controllable_tts|>")
    assert first.pitch_value is not None and out.pitch_value == first.pitch_value
    for s in rest:
        assert s.prompt == build_clone_prompt(s.text, first.global_tokens)
        assert s.global_tokens.tolist() == first.global_tokens.tolist()
    assert out.global_tokens.tolist() == first.global_tokens.tolist()


def test_crossfade_concat_properties() -> None:
    a, b = np.full(1000, 0.5, np.float32), np.full(800, 0.5, np.float32)
    out = crossfade_concat([a, b], 100, equal_power=False)
    assert len(out) == 1700
    np.testing.assert_allclose(out, 0.5, atol=1e-6)  # linear fades of one constant signal leave it unchanged
    out = crossfade_concat([a, -b], 100)
    assert out[0] == 0.5 and out[-1] == -0.5 and len(out) == 1700
    assert len(crossfade_concat([a, b[:30]], 100)) == 1000  # overlap shortened to the shorter piece


# ---------------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------------


def test_sampling_config_defaults_are_the_originals() -> None:
    kw = SamplingConfig().generate_kwargs()
    assert kw == {"max_new_tokens": 3000, "do_sample": True, "temperature": 0.8, "top_k": 50, "top_p": 0.95}


@pytest.mark.parametrize("bad", [dict(temperature=0), dict(top_p=0), dict(top_p=1.5), dict(top_k=-1),
                                 dict(top_k=2.5), dict(max_new_tokens=0), dict(seed=-1)])
def test_sampling_config_rejects_bad_values(bad: dict) -> None:
    with pytest.raises(ConfigError, match=next(iter(bad))):
        SamplingConfig(**bad)


def test_prompt_error_for_empty_batch(tiny_tts, voice) -> None:
    with pytest.raises(PromptError, match="empty list"):
        tiny_tts.clone([], voice=voice)
    with pytest.raises(PromptError, match="batch_size"):
        tiny_tts.clone(TEXT, voice=voice, batch_size=0)
