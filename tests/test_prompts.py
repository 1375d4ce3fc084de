"""Prompt strings and parsing against the official Spark-TTS outputs (shared/reference/prompts.json).

prompts.json holds strings produced by the official cli/SparkTTS.py (process_prompt,
process_prompt_control, inference parsing) with stub tokens; it is read in place, never copied.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from sparktts.errors import PromptError
from sparktts.prompts import (
    GENDER_MAP,
    LEVELS_MAP,
    TASK_TOKEN_MAP,
    Gender,
    Level,
    ParsedTokens,
    build_clone_prompt,
    build_create_prompt,
    format_global,
    format_semantic,
    gender_token,
    global_token,
    parse_generated,
    parse_global,
    parse_semantic,
    pitch_label_token,
    pitch_value_token,
    semantic_token,
    spark_special_tokens,
    speed_label_token,
    speed_value_token,
    task_token,
)

from .conftest import REFERENCE

if REFERENCE is None:  # pragma: no cover - CI always has shared/reference beside the clone
    raise RuntimeError("shared/reference not found; set SPARKTTS_REFERENCE")
REF = json.loads((REFERENCE / "prompts.json").read_text(encoding="utf-8"))
STUB_GLOBAL = REF["stub_tokens"]["global_token_ids"]  # nested list, shape (1, 1, 32)
STUB_SEMANTIC = REF["stub_tokens"]["semantic_token_ids"]  # nested list, shape (1, 8)
CLONE_WITH_TRANSCRIPT = next(c for c in REF["clone"] if c["prompt_text"] is not None)
CLONE_PLAIN = next(c for c in REF["clone"] if c["prompt_text"] is None)


# ---------------------------------------------------------------------------------------------------
# Exact agreement with the official strings
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", REF["clone"], ids=lambda c: f"prompt_text={c['prompt_text'] is not None}")
@pytest.mark.parametrize("container", ["list", "torch", "numpy", "flat"])
def test_clone_prompt_matches_official(case: dict, container: str) -> None:
    conv = {
        "list": lambda x: x,
        "torch": lambda x: torch.tensor(x, dtype=torch.long),
        "numpy": lambda x: np.asarray(x, dtype=np.int64),
        "flat": lambda x: np.asarray(x, dtype=np.int32).reshape(-1).tolist(),
    }[container]
    semantic = conv(STUB_SEMANTIC) if case["prompt_text"] is not None else None
    prompt = build_clone_prompt(
        case["text"],
        conv(STUB_GLOBAL),
        prompt_text=case["prompt_text"],
        semantic_ids=semantic,
        legacy_join=True,
    )
    assert prompt == case["prompt"]


def test_clone_prompt_without_transcript_ignores_join_mode() -> None:
    for legacy in (False, True):
        prompt = build_clone_prompt(CLONE_PLAIN["text"], STUB_GLOBAL, legacy_join=legacy, expected_globals=32)
        assert prompt == CLONE_PLAIN["prompt"]


@pytest.mark.parametrize("case", REF["create"], ids=lambda c: f"{c['gender']}-{c['pitch']}-{c['speed']}")
def test_create_prompt_matches_official(case: dict) -> None:
    assert build_create_prompt(case["text"], case["gender"], case["pitch"], case["speed"]) == case["prompt"]
    # The enum spelling gives the same string.
    as_enums = build_create_prompt(
        case["text"],
        Gender[case["gender"].upper()],
        Level[case["pitch"].upper()],
        Level[case["speed"].upper()],
    )
    assert as_enums == case["prompt"]


def test_maps_match_official() -> None:
    assert TASK_TOKEN_MAP == REF["maps"]["TASK_TOKEN_MAP"]
    assert LEVELS_MAP == REF["maps"]["LEVELS_MAP"]
    assert GENDER_MAP == REF["maps"]["GENDER_MAP"]
    assert {g.label: int(g) for g in Gender} == REF["maps"]["GENDER_MAP"]
    assert {lv.label: int(lv) for lv in Level} == REF["maps"]["LEVELS_MAP"]


def test_token_helpers_follow_official_formats() -> None:
    fmt = REF["token_formats"]
    assert semantic_token(8191) == fmt["semantic"].format(i=8191)
    assert global_token(4095) == fmt["global"].format(i=4095)
    assert gender_token("male") == fmt["gender"].format(id=1)
    assert pitch_label_token("very_high") == fmt["pitch_label"].format(level=4)
    assert speed_label_token(Level.LOW) == fmt["speed_label"].format(level=1)
    assert task_token("caption") == "<|task_cap|>"


@pytest.mark.parametrize("case", REF["parse"], ids=lambda c: c["mode"])
def test_parse_matches_official(case: dict) -> None:
    parsed = parse_generated(case["decoded_generation"])
    assert parsed.semantic_ids == case["semantic_tokens_passed_to_BiCodecTokenizer.detokenize"][0]
    if case["mode"] == "create":
        # Create mode: the official code takes the global ids from the generation.
        assert parsed.global_ids == case["global_tokens_passed_to_BiCodecTokenizer.detokenize"][0]
    else:
        # Clone mode: the generation holds no global tokens (they come from the reference audio).
        assert parsed.global_ids == []
        assert (
            parse_global(case["llm_prompt"]) == case["global_tokens_passed_to_BiCodecTokenizer.detokenize"][0]
        )
    assert parsed.pitch_value is None and parsed.speed_value is None


# ---------------------------------------------------------------------------------------------------
# Join of prompt_text and text
# ---------------------------------------------------------------------------------------------------


def _content(prompt: str) -> str:
    return prompt.split("<|start_content|>", 1)[1].split("<|end_content|>", 1)[0]


def test_default_join_inserts_one_space_for_latin_text() -> None:
    case = CLONE_WITH_TRANSCRIPT
    prompt = build_clone_prompt(case["text"], STUB_GLOBAL, case["prompt_text"], STUB_SEMANTIC)
    assert (
        _content(prompt) == "This is the transcript of the reference audio. Hello world, this is Spark TTS."
    )
    # Everything outside the content is identical to the official prompt.
    assert prompt == case["prompt"].replace("audio.Hello", "audio. Hello")


@pytest.mark.parametrize(
    ("prompt_text", "text", "expected"),
    [
        ("这是参考音频。", "你好世界。", "这是参考音频。你好世界。"),  # CJK both sides
        ("Reference audio.", "你好世界。", "Reference audio.你好世界。"),  # CJK on the right
        ("这是参考音频", "Hello there.", "这是参考音频Hello there."),  # CJK on the left
        ("这是参考音频，", "Hello there.", "这是参考音频，Hello there."),  # full-width comma is CJK
        ("Reference audio. ", "Hello.", "Reference audio. Hello."),  # already has a space
        ("Reference audio.", " Hello.", "Reference audio. Hello."),
        ("Reference audio.", "Hello.", "Reference audio. Hello."),
    ],
)
def test_default_join_rules(prompt_text: str, text: str, expected: str) -> None:
    prompt = build_clone_prompt(text, STUB_GLOBAL, prompt_text, STUB_SEMANTIC)
    assert _content(prompt) == expected
    legacy = build_clone_prompt(text, STUB_GLOBAL, prompt_text, STUB_SEMANTIC, legacy_join=True)
    assert _content(legacy) == prompt_text + text


# ---------------------------------------------------------------------------------------------------
# Round trips and create-mode chain of thought
# ---------------------------------------------------------------------------------------------------


def test_semantic_and_global_round_trip() -> None:
    rng = np.random.default_rng(0)
    sem = [0, 8191, *rng.integers(0, 8192, size=300).tolist()]
    glo = [0, 4095, *rng.integers(0, 4096, size=30).tolist()]
    sem_text = format_semantic(sem)
    assert sem_text.count("<|bicodec_semantic_") == len(sem)
    assert parse_semantic(sem_text) == sem
    assert parse_global(format_global(glo)) == glo
    # Tensors of shape (1, T) are accepted like the codec returns them.
    assert parse_semantic(format_semantic(torch.tensor([sem]))) == sem


def test_clone_prompt_round_trips_through_parser() -> None:
    glo = np.asarray(STUB_GLOBAL).reshape(-1).tolist()
    sem = np.asarray(STUB_SEMANTIC).reshape(-1).tolist()
    prompt = build_clone_prompt("Hi there.", glo, "Reference.", sem)
    parsed = parse_generated(prompt)
    assert parsed.global_ids == glo
    assert parsed.semantic_ids == sem


def test_create_mode_generation_with_pitch_and_speed_values() -> None:
    glo = list(range(100, 132))
    sem = [5, 6, 7, 8191]
    generation = (
        "<|start_acoustic_token|>"
        + pitch_value_token(287)
        + speed_value_token(4)
        + "<|end_acoustic_token|><|start_global_token|>"
        + format_global(glo)
        + "<|end_global_token|><|start_semantic_token|>"
        + format_semantic(sem)
        + "<|end_semantic_token|>"
    )
    assert "<|pitch_value_287|><|speed_value_4|>" in generation
    parsed = parse_generated(generation)
    assert parsed == ParsedTokens(semantic_ids=sem, global_ids=glo, pitch_value=287, speed_value=4)
    # pitch_var_value tokens must not be mistaken for pitch values.
    assert parse_generated("<|pitch_var_value_7|>").pitch_value is None


@pytest.mark.parametrize(
    ("value", "pitch", "speed"),
    # Official TokenParser: int() truncates toward zero, then clips to [0, 1000] / [0, 10].
    [(250.9, 250, 10), (-3.5, 0, 0), (1234, 1000, 10), (7, 7, 7), (0, 0, 0)],
)
def test_value_tokens_truncate_and_clip(value: float, pitch: int, speed: int) -> None:
    assert pitch_value_token(value) == f"<|pitch_value_{pitch}|>"
    assert speed_value_token(value) == f"<|speed_value_{speed}|>"


def test_special_token_list_reproduces_release_ids() -> None:
    # Ids printed by the SparkAudio tokenizer-expansion script (public copy: kongyt511/SparkVox,
    # egs/speech_synthesis/spark-tts/scripts/expand_tokenizer.py) for the released vocabulary:
    # Qwen2.5 has 151665 tokens, the Spark tokens follow ("Added 13493 tokens", new size 165158).
    release_ids = {
        "<|bicodec_global_10|>": 151675,
        "<|bicodec_global_31|>": 151696,
        "<|bicodec_semantic_240|>": 156001,
        "<|bicodec_semantic_8191|>": 163952,
        "<|pitch_value_0|>": 163953,
        "<|pitch_var_value_0|>": 164954,
        "<|pitch_label_0|>": 164965,
        "<|pitch_var_label_0|>": 164970,
        "<|speed_value_0|>": 164975,
        "<|speed_label_0|>": 164986,
        "<|loudness_value_0|>": 164991,
        "<|loudness_label_0|>": 165022,
        "<|age_0|>": 165027,
        "<|gender_0|>": 165032,
        "<|emotion_0|>": 165035,
        "<|task_prompt_tts|>": 165144,
        "<|start_content|>": 165146,
        "<|start_style_label|>": 165147,
        "<|start_style_prompt|>": 165148,
        "<|start_acoustic_token|>": 165149,
        "<|start_global_token|>": 165150,
        "<|start_semantic_token|>": 165151,
        "<|end_content|>": 165152,
        "<|end_style_label|>": 165153,
        "<|end_style_prompt|>": 165154,
        "<|end_acoustic_token|>": 165155,
        "<|end_global_token|>": 165156,
    }
    toks = spark_special_tokens()
    assert len(toks) == 13493 == len(set(toks))
    position = {t: i for i, t in enumerate(toks)}
    for tok, rid in release_ids.items():
        assert 151665 + position[tok] == rid, tok
    assert 151665 + len(toks) == 165158
    # Every control token the official prompts / parse cases use is in the list.
    used = set()
    for group in ("clone", "create"):
        for case in REF[group]:
            used |= set(re.findall(r"<\|[^|]+\|>", case["prompt"]))
    for case in REF["parse"]:
        used |= set(re.findall(r"<\|[^|]+\|>", case["decoded_generation"]))
    used -= {"<|im_end|>"}  # a Qwen token, not a Spark addition
    assert used <= set(toks), sorted(used - set(toks))
    assert set(TASK_TOKEN_MAP.values()) <= set(toks)


# ---------------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_text_is_rejected(text: str) -> None:
    with pytest.raises(PromptError, match="empty"):
        build_create_prompt(text, "female", "moderate", "moderate")
    with pytest.raises(PromptError, match="empty"):
        build_clone_prompt(text, STUB_GLOBAL)
    with pytest.raises(PromptError, match="prompt_text is empty"):
        build_clone_prompt("Hello.", STUB_GLOBAL, prompt_text=text, semantic_ids=STUB_SEMANTIC)


def test_unknown_labels_list_valid_ones() -> None:
    with pytest.raises(PromptError) as exc:
        build_create_prompt("Hi.", "Female", "moderate", "moderate")
    assert "'Female'" in str(exc.value) and "female, male" in str(exc.value)
    with pytest.raises(PromptError) as exc:
        build_create_prompt("Hi.", "male", "medium", "moderate")
    assert "pitch" in str(exc.value) and "'medium'" in str(exc.value)
    assert "very_low, low, moderate, high, very_high" in str(exc.value)
    with pytest.raises(PromptError) as exc:
        build_create_prompt("Hi.", "male", "low", 3)
    assert "speed" in str(exc.value) and "very_low, low, moderate, high, very_high" in str(exc.value)
    with pytest.raises(PromptError, match="valid tasks: vc, tts"):
        task_token("speak")


def test_id_range_errors_name_value_and_range() -> None:
    with pytest.raises(PromptError, match=r"global_ids\[2\] 4096 is out of range: valid ids are 0\.\.4095"):
        build_clone_prompt("Hi.", [1, 2, 4096])
    with pytest.raises(PromptError, match=r"global_ids\[0\] -1 is out of range"):
        build_clone_prompt("Hi.", torch.tensor([-1, 2]))
    with pytest.raises(PromptError, match=r"semantic_ids\[1\] 8192 is out of range: valid ids are 0\.\.8191"):
        build_clone_prompt("Hi.", [1, 2], "Ref.", [0, 8192])
    with pytest.raises(PromptError, match=r"semantic id\[0\] = 9000 is out of range"):
        parse_generated("<|bicodec_semantic_9000|>")
    with pytest.raises(PromptError, match="pitch value 1001 is out of range"):
        parse_generated("<|pitch_value_1001|>")


def test_global_count_and_shape_errors() -> None:
    with pytest.raises(PromptError, match="global_ids is empty"):
        build_clone_prompt("Hi.", [])
    with pytest.raises(PromptError, match="has 8 ids but the model expects 32"):
        build_clone_prompt("Hi.", list(range(8)), expected_globals=32)
    # Any non-empty count is fine without expected_globals (tiny codecs use fewer tokens).
    assert build_clone_prompt("Hi.", list(range(8))).count("<|bicodec_global_") == 8
    with pytest.raises(PromptError, match=r"must be 1-D .* got shape \(2, 32\)"):
        build_clone_prompt("Hi.", torch.zeros(2, 32, dtype=torch.long))
    with pytest.raises(PromptError, match="integer dtype"):
        build_clone_prompt("Hi.", torch.zeros(32))
    with pytest.raises(PromptError, match="must be an integer"):
        build_clone_prompt("Hi.", [1.5, 2])
    with pytest.raises(PromptError, match="must be an integer"):
        build_clone_prompt("Hi.", [True, 2])


def test_transcript_and_semantic_ids_go_together() -> None:
    with pytest.raises(PromptError, match="prompt_text was given without semantic_ids"):
        build_clone_prompt("Hi.", STUB_GLOBAL, prompt_text="Reference.")
    with pytest.raises(PromptError, match="semantic_ids were given without prompt_text"):
        build_clone_prompt("Hi.", STUB_GLOBAL, semantic_ids=STUB_SEMANTIC)


def test_control_markup_in_text_is_rejected() -> None:
    with pytest.raises(PromptError, match=r"'<\|bicodec_semantic_5\|>'"):
        build_create_prompt("Say <|bicodec_semantic_5|> now.", "male", "low", "low")
    with pytest.raises(PromptError, match=r"prompt_text contains .*'<\|end_content\|>'"):
        build_clone_prompt("Hi.", STUB_GLOBAL, "Ref <|end_content|>", STUB_SEMANTIC)
