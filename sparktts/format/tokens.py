"""Spark-TTS token strings <-> ids: the special-token names, label maps and codebook sizes of the release.

A leaf of the package (it imports only :mod:`sparktts.errors`): prompts (:mod:`sparktts.format.prompts`),
the output grammar (:mod:`sparktts.format.grammar`), the LLM loader's checks and training all read the
token strings from here. Values as in the official ``sparktts/utils/token_parser.py``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from sparktts.errors import PromptError

__all__ = [
    "AGE_MAP", "EMO_MAP", "END_ACOUSTIC", "END_CONTENT", "END_GLOBAL", "END_OF_SPEECH", "END_SEMANTIC",
    "END_STYLE_LABEL", "GENDER_MAP", "GLOBAL_CODEBOOK_SIZE", "LEVELS_MAP", "LEVELS_MAP_UI", "MARKER_TOKENS",
    "PITCH_VALUE_MAX", "ParsedTokens", "RELEASE_NUM_GLOBAL_TOKENS", "SEMANTIC_CODEBOOK_SIZE", "SPEED_VALUE_MAX",
    "START_ACOUSTIC",
    "START_CONTENT", "START_GLOBAL", "START_SEMANTIC", "START_STYLE_LABEL", "TASK_TOKEN_MAP", "Gender", "Level",
    "format_global", "format_semantic", "gender_token", "global_token", "id_list", "parse_generated",
    "parse_global", "parse_semantic", "pitch_label_token",
    "pitch_value_token", "semantic_token", "spark_special_tokens", "speed_label_token", "speed_value_token",
    "task_token",
]  # fmt: skip

# ----------------------------------------------------------------------------------------------------
# Constants and maps (values as in the official sparktts/utils/token_parser.py)
# ----------------------------------------------------------------------------------------------------

SEMANTIC_CODEBOOK_SIZE = 8192  # BiCodec factorized-VQ codebook: semantic ids in [0, 8192)
GLOBAL_CODEBOOK_SIZE = 4096  # speaker FSQ (levels 4^6): global ids in [0, 4096)
RELEASE_NUM_GLOBAL_TOKENS = 32  # token_num of the released BiCodec; a tiny model may use fewer
PITCH_VALUE_MAX = 1000  # <|pitch_value_N|>: mean pitch in mel, clipped to [0, 1000]
SPEED_VALUE_MAX = 10  # <|speed_value_N|>: syllables per second, clipped to [0, 10]

TASK_TOKEN_MAP: dict[str, str] = {
    "vc": "<|task_vc|>",
    "tts": "<|task_tts|>",
    "asr": "<|task_asr|>",
    "s2s": "<|task_s2s|>",
    "t2s": "<|task_t2s|>",
    "understand": "<|task_understand|>",
    "caption": "<|task_cap|>",
    "controllable_tts": "<|task_controllable_tts|>",
    "prompt_tts": "<|task_prompt_tts|>",
    "speech_edit": "<|task_edit|>",
}
LEVELS_MAP: dict[str, int] = {"very_low": 0, "low": 1, "moderate": 2, "high": 3, "very_high": 4}
# The web UI's 1..5 slider positions.
LEVELS_MAP_UI: dict[int, str] = {1: "very_low", 2: "low", 3: "moderate", 4: "high", 5: "very_high"}
GENDER_MAP: dict[str, int] = {"female": 0, "male": 1}
# Not used by the released prompts, but their tokens exist in the vocabulary.
AGE_MAP: dict[str, int] = {"Child": 0, "Teenager": 1, "Youth-Adult": 2, "Middle-aged": 3, "Elderly": 4}
EMO_MAP: dict[str, int] = {
    name: i
    for i, name in enumerate(
        (
            "UNKNOWN", "NEUTRAL", "ANGRY", "HAPPY", "SAD", "FEARFUL", "DISGUSTED", "SURPRISED",
            "SARCASTIC", "EXCITED", "SLEEPY", "CONFUSED", "EMPHASIS", "LAUGHING", "SINGING", "WORRIED",
            "WHISPER", "ANXIOUS", "NO-AGREEMENT", "APOLOGETIC", "CONCERNED", "ENUNCIATED", "ASSERTIVE",
            "ENCOURAGING", "CONTEMPT",
        )
    )
}  # fmt: skip


class Gender(IntEnum):
    """Speaker gender label; the value is the id in ``<|gender_N|>``."""

    FEMALE = 0
    MALE = 1

    @property
    def label(self) -> str:
        """The official string label ("female" / "male")."""
        return self.name.lower()


class Level(IntEnum):
    """Five-step pitch / speed level; the value is the id in ``<|pitch_label_N|>`` / ``<|speed_label_N|>``."""

    VERY_LOW = 0
    LOW = 1
    MODERATE = 2
    HIGH = 3
    VERY_HIGH = 4

    @property
    def label(self) -> str:
        """The official string label ("very_low" ... "very_high")."""
        return self.name.lower()


# Structural markers used in prompts / generations.
START_CONTENT = "<|start_content|>"
END_CONTENT = "<|end_content|>"
START_GLOBAL = "<|start_global_token|>"
END_GLOBAL = "<|end_global_token|>"
START_SEMANTIC = "<|start_semantic_token|>"
END_SEMANTIC = "<|end_semantic_token|>"
START_STYLE_LABEL = "<|start_style_label|>"
END_STYLE_LABEL = "<|end_style_label|>"
START_ACOUSTIC = "<|start_acoustic_token|>"
END_ACOUSTIC = "<|end_acoustic_token|>"
# The released tokenizer's eos; the SparkAudio training data ends every target with it, and the released
# generation config stops on it.
END_OF_SPEECH = "<|im_end|>"
# All markers of the release vocabulary, in the order the release tokenizer added them
# (style-prompt / acoustic markers are unused by the released prompts but present in the vocabulary).
MARKER_TOKENS: tuple[str, ...] = (
    "<|start_content|>",
    "<|start_style_label|>",
    "<|start_style_prompt|>",
    "<|start_acoustic_token|>",
    "<|start_global_token|>",
    "<|start_semantic_token|>",
    "<|end_content|>",
    "<|end_style_label|>",
    "<|end_style_prompt|>",
    "<|end_acoustic_token|>",
    "<|end_global_token|>",
    "<|end_semantic_token|>",
)
# Task tokens in vocabulary order (differs from TASK_TOKEN_MAP's order: "caption" precedes "understand").
_TASK_TOKENS_VOCAB_ORDER: tuple[str, ...] = (
    "<|task_vc|>",
    "<|task_tts|>",
    "<|task_asr|>",
    "<|task_s2s|>",
    "<|task_t2s|>",
    "<|task_cap|>",
    "<|task_understand|>",
    "<|task_controllable_tts|>",
    "<|task_prompt_tts|>",
    "<|task_edit|>",
)


def spark_special_tokens() -> list[str]:
    """Every token Spark-TTS adds to the Qwen2.5 vocabulary, in the release's order (13 493 strings).

    Order (as the SparkAudio tokenizer-expansion script adds them, so that appending this list after
    Qwen2.5's 151 665 tokens reproduces the released ids, e.g. ``<|bicodec_global_0|>`` = 151665,
    ``<|bicodec_semantic_0|>`` = 155761): 4096 global, 8192 semantic, pitch_value 0..1000,
    pitch_var_value 0..10, pitch_label 0..4, pitch_var_label 0..4, speed_value 0..10, speed_label 0..4,
    loudness_value 0..30, loudness_label 0..4, age 0..4, gender 0..2, emotion 0..100, then the 10 task
    tokens and the 12 start/end markers.
    """
    toks: list[str] = [f"<|bicodec_global_{i}|>" for i in range(GLOBAL_CODEBOOK_SIZE)]
    toks += [f"<|bicodec_semantic_{i}|>" for i in range(SEMANTIC_CODEBOOK_SIZE)]
    toks += [f"<|pitch_value_{i}|>" for i in range(PITCH_VALUE_MAX + 1)]
    toks += [f"<|pitch_var_value_{i}|>" for i in range(11)]
    toks += [f"<|pitch_label_{i}|>" for i in range(5)]
    toks += [f"<|pitch_var_label_{i}|>" for i in range(5)]
    toks += [f"<|speed_value_{i}|>" for i in range(SPEED_VALUE_MAX + 1)]
    toks += [f"<|speed_label_{i}|>" for i in range(5)]
    toks += [f"<|loudness_value_{i}|>" for i in range(31)]
    toks += [f"<|loudness_label_{i}|>" for i in range(5)]
    toks += [f"<|age_{i}|>" for i in range(5)]
    # Three gender ids exist in the vocabulary although only 0 (female) and 1 (male) are used.
    toks += [f"<|gender_{i}|>" for i in range(3)]
    toks += [f"<|emotion_{i}|>" for i in range(101)]
    toks += list(_TASK_TOKENS_VOCAB_ORDER)
    toks += list(MARKER_TOKENS)
    return toks


# ----------------------------------------------------------------------------------------------------
# Token-name helpers
# ----------------------------------------------------------------------------------------------------


def _check_index(value: Any, name: str, upper: int) -> int:
    """Return ``value`` as an int after checking it is an integer in ``[0, upper)``."""
    # bool is an int subclass but never a valid token id; a float id means the caller passed features.
    if isinstance(value, bool) or not _is_integer(value):
        raise PromptError(
            f"{name} must be an integer in [0, {upper}), got {value!r} ({type(value).__name__})"
        )
    iv = int(value)
    if not 0 <= iv < upper:
        raise PromptError(f"{name} {iv} is out of range: valid ids are 0..{upper - 1}")
    return iv


def _is_integer(value: Any) -> bool:
    """True for Python ints and numpy / torch integer scalars."""
    if isinstance(value, int):
        return True
    # numpy and torch integer scalars expose a dtype; check its kind without importing either library.
    dtype = getattr(value, "dtype", None)
    if dtype is None:
        return False
    kind = getattr(dtype, "kind", None)
    if kind is not None:  # numpy
        return kind in "iu"
    is_fp = getattr(dtype, "is_floating_point", None)
    is_cx = getattr(dtype, "is_complex", None)
    return is_fp is False and is_cx is False and "bool" not in str(dtype)


def global_token(i: int) -> str:
    """``<|bicodec_global_{i}|>`` for a speaker (global) id ``i`` in [0, 4096)."""
    return f"<|bicodec_global_{_check_index(i, 'global id', GLOBAL_CODEBOOK_SIZE)}|>"


def semantic_token(i: int) -> str:
    """``<|bicodec_semantic_{i}|>`` for a semantic id ``i`` in [0, 8192)."""
    return f"<|bicodec_semantic_{_check_index(i, 'semantic id', SEMANTIC_CODEBOOK_SIZE)}|>"


def task_token(task: str) -> str:
    """Task token for a task name of :data:`TASK_TOKEN_MAP` (e.g. "tts" -> ``<|task_tts|>``)."""
    try:
        return TASK_TOKEN_MAP[task]
    except (KeyError, TypeError):
        raise PromptError(f"unknown task {task!r}; valid tasks: {', '.join(TASK_TOKEN_MAP)}") from None


def _gender_id(gender: str | Gender) -> int:
    if isinstance(gender, Gender):
        return int(gender)
    if isinstance(gender, str) and gender in GENDER_MAP:
        return GENDER_MAP[gender]
    raise PromptError(f"unknown gender {gender!r}; valid genders: {', '.join(GENDER_MAP)}")


def _level_id(level: str | Level, what: str) -> int:
    if isinstance(level, Level):
        return int(level)
    if isinstance(level, str) and level in LEVELS_MAP:
        return LEVELS_MAP[level]
    raise PromptError(f"unknown {what} level {level!r}; valid levels: {', '.join(LEVELS_MAP)}")


def gender_token(gender: str | Gender) -> str:
    """``<|gender_N|>`` for "female" (0) / "male" (1) or a :class:`Gender`."""
    return f"<|gender_{_gender_id(gender)}|>"


def pitch_label_token(level: str | Level) -> str:
    """``<|pitch_label_N|>`` for a level label ("very_low".."very_high") or a :class:`Level`."""
    return f"<|pitch_label_{_level_id(level, 'pitch')}|>"


def speed_label_token(level: str | Level) -> str:
    """``<|speed_label_N|>`` for a level label ("very_low".."very_high") or a :class:`Level`."""
    return f"<|speed_label_{_level_id(level, 'speed')}|>"


def _clipped_int(value: float, upper: int, name: str) -> int:
    # Official TokenParser: int() truncates toward zero, then the value is clipped to [0, upper].
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not _is_integer(value):
        raise PromptError(f"{name} must be a number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):  # NaN / inf have no meaningful token
        raise PromptError(f"{name} must be a finite number, got {value!r}")
    return min(upper, max(0, int(value)))


def pitch_value_token(mel: float) -> str:
    """``<|pitch_value_N|>`` for a mean pitch in mel, truncated to int and clipped to [0, 1000]."""
    return f"<|pitch_value_{_clipped_int(mel, PITCH_VALUE_MAX, 'pitch value')}|>"


def speed_value_token(sps: float) -> str:
    """``<|speed_value_N|>`` for a speed in syllables/s, truncated to int and clipped to [0, 10]."""
    return f"<|speed_value_{_clipped_int(sps, SPEED_VALUE_MAX, 'speed value')}|>"


# ----------------------------------------------------------------------------------------------------
# Id sequences
# ----------------------------------------------------------------------------------------------------


def id_list(ids: Any, name: str, upper: int) -> list[int]:
    """Turn a sequence / numpy array / torch tensor of ids into a validated ``list[int]``.

    Arrays and tensors may have leading singleton dims ((T,), (1, T), (1, 1, T) as BiCodec returns them);
    anything with more than one non-singleton dim is a batch, which a single prompt cannot hold.
    """
    if isinstance(ids, (str, bytes)):
        raise PromptError(f"{name} must be a sequence of ints, got a {type(ids).__name__}")
    shape = getattr(ids, "shape", None)
    if shape is not None:
        shape = tuple(int(s) for s in shape)
        if len(shape) == 0 or any(s != 1 for s in shape[:-1]):
            raise PromptError(
                f"{name} must be 1-D (leading singleton dims allowed, e.g. (1, 1, T)), got shape {shape}"
            )
        dtype = getattr(ids, "dtype", None)
        kind = getattr(dtype, "kind", None)
        is_fp = getattr(dtype, "is_floating_point", None)
        if kind is not None and kind not in "iu" or is_fp is True or "bool" in str(dtype):
            raise PromptError(f"{name} must have an integer dtype, got {dtype}")
        flat = ids.reshape(-1).tolist()
    else:
        try:
            flat = list(ids)
        except TypeError:
            raise PromptError(f"{name} must be a sequence of ints, got {type(ids).__name__}") from None
        # Nested lists mirror the tensor case: [[[...]]] of shape (1, 1, K) is accepted like a tensor.
        while len(flat) == 1 and isinstance(flat[0], (list, tuple)):
            flat = list(flat[0])
    return [_check_index(v, f"{name}[{k}]", upper) for k, v in enumerate(flat)]


def format_semantic(ids: Sequence[int] | Any) -> str:
    """Concatenate ``<|bicodec_semantic_N|>`` for every id (sequence or (T,)/(1, T) int array/tensor)."""
    return "".join(f"<|bicodec_semantic_{i}|>" for i in id_list(ids, "semantic_ids", SEMANTIC_CODEBOOK_SIZE))


def format_global(ids: Sequence[int] | Any) -> str:
    """Concatenate ``<|bicodec_global_N|>`` for every id (sequence or (K,)/(1, 1, K) int array/tensor)."""
    return "".join(f"<|bicodec_global_{i}|>" for i in id_list(ids, "global_ids", GLOBAL_CODEBOOK_SIZE))


# The official parser matches the bare names (no "<|" / "|>"), so it also works on text whose markup
# was stripped; kept identical so parse results agree with cli/SparkTTS.py on any input.
_SEMANTIC_RE = re.compile(r"bicodec_semantic_(\d+)")
_GLOBAL_RE = re.compile(r"bicodec_global_(\d+)")
_PITCH_VALUE_RE = re.compile(r"<\|pitch_value_(\d+)\|>")
_SPEED_VALUE_RE = re.compile(r"<\|speed_value_(\d+)\|>")
# Any "<|name|>" markup inside user text would be tokenised as a control token and hijack the prompt.
_MARKUP_RE = re.compile(r"<\|[A-Za-z0-9_\-]+\|>")


def _parse_ids(pattern: re.Pattern[str], text: str, name: str, upper: int) -> list[int]:
    if not isinstance(text, str):
        raise PromptError(f"generated text must be a str, got {type(text).__name__}")
    ids = [int(m) for m in pattern.findall(text)]
    for k, v in enumerate(ids):
        if v >= upper:
            raise PromptError(f"{name}[{k}] = {v} is out of range: valid ids are 0..{upper - 1}")
    return ids


def parse_semantic(text: str) -> list[int]:
    """Ids of every ``bicodec_semantic_N`` in ``text``, in order (inverse of :func:`format_semantic`)."""
    return _parse_ids(_SEMANTIC_RE, text, "semantic id", SEMANTIC_CODEBOOK_SIZE)


def parse_global(text: str) -> list[int]:
    """Ids of every ``bicodec_global_N`` in ``text``, in order (inverse of :func:`format_global`)."""
    return _parse_ids(_GLOBAL_RE, text, "global id", GLOBAL_CODEBOOK_SIZE)


@dataclass
class ParsedTokens:
    """Token ids recovered from the LM's decoded output.

    Attributes:
        semantic_ids: semantic ids in order; the codec wants them as a (1, T) int64 tensor.
        global_ids: global ids in order (create mode); the codec wants (1, 1, K) -> squeeze(0) -> (1, K).
            Empty in clone mode, where the global ids come from the reference audio instead.
        pitch_value: the first ``<|pitch_value_N|>`` (create mode chain of thought), else None.
        speed_value: the first ``<|speed_value_N|>``, else None.
    """

    semantic_ids: list[int] = field(default_factory=list)
    global_ids: list[int] = field(default_factory=list)
    pitch_value: int | None = None
    speed_value: int | None = None


def parse_generated(text: str) -> ParsedTokens:
    """Parse the decoded generation (``tokenizer.batch_decode(new_ids, skip_special_tokens=True)[0]``).

    Semantic / global ids are found with the official regexes ``bicodec_semantic_(\\d+)`` /
    ``bicodec_global_(\\d+)`` (every occurrence, in order). Pitch / speed values come from
    ``<|pitch_value_N|>`` / ``<|speed_value_N|>``; the model emits each once, so the first one is taken.

    Raises:
        PromptError: ``text`` is not a str, or an id is outside its codebook / value range.
    """
    semantic = parse_semantic(text)
    glob = parse_global(text)
    pitch = _PITCH_VALUE_RE.search(text)
    speed = _SPEED_VALUE_RE.search(text)
    pitch_value = int(pitch.group(1)) if pitch else None
    speed_value = int(speed.group(1)) if speed else None
    if pitch_value is not None and pitch_value > PITCH_VALUE_MAX:
        raise PromptError(f"pitch value {pitch_value} is out of range: valid values are 0..{PITCH_VALUE_MAX}")
    if speed_value is not None and speed_value > SPEED_VALUE_MAX:
        raise PromptError(f"speed value {speed_value} is out of range: valid values are 0..{SPEED_VALUE_MAX}")
    return ParsedTokens(
        semantic_ids=semantic, global_ids=glob, pitch_value=pitch_value, speed_value=speed_value
    )
