"""Checks of the facade's arguments, shared by one-shot synthesis and streams: texts and lists of them,
per-text arguments, numbers, voice-creation labels. Each error names the argument and the fix."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from sparktts import defaults
from sparktts.errors import ConfigError, PromptError
from sparktts.format.tokens import Gender, Level
from sparktts.text import check_text, chunk_text

__all__ = [
    "LONG_TEXT_FIELDS", "LongText", "as_list", "check_int", "check_labels", "check_number", "label", "text_chunks",
    "texts", "token_ids",
]


def as_list(value: Any, n: int, name: str) -> list[Any]:
    """Broadcast a scalar argument to ``n`` items, or check a list/tuple has ``n`` items."""
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise PromptError(
                f"{name} has {len(value)} items but there are {n} texts; give one per text or one for all"
            )
        return list(value)
    return [value] * n


def texts(text: Any) -> tuple[list[Any], bool]:
    """``(texts, single)``: a str is one text; a list, tuple or other iterable of texts is a batch."""
    if isinstance(text, str):
        return [text], True
    if isinstance(text, (bytes, bytearray, memoryview)):
        raise PromptError(f"text must be a str, got {type(text).__name__}; decode it first, e.g. text.decode('utf-8')")
    if text is None or isinstance(text, dict) or not isinstance(text, Iterable):
        raise PromptError(f"text must be a str or a list of str, got {type(text).__name__}")
    items = list(text)
    if not items:
        raise PromptError("text is an empty list; give at least one text")
    return items, False


def check_number(value: Any, name: str, *, minimum: float = 0.0, maximum: float = math.inf) -> float:
    # Comparisons, not float(): NaN fails both, and a huge int compares without overflowing.
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and minimum <= value <= maximum
    if not ok or value in (math.inf, -math.inf):
        raise ConfigError(f"{name} must be a finite number in [{minimum:g}, {maximum:g}], got {value!r}")
    return float(value)


def check_int(value: Any, name: str, *, minimum: int, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        none = " or None" if allow_none else ""
        raise ConfigError(f"{name} must be an int >= {minimum}{none}, got {value!r}")
    return value


@dataclass(frozen=True)
class LongText:
    """How a long text is synthesised: split into sentence chunks, joined with a crossfade.

    Attributes:
        split: split into chunks; None = when longer than ``max_chars``.
        max_chars: chunk size in characters.
        crossfade_s: crossfade between the chunks, in seconds.
    """

    split: bool | None = None
    max_chars: int = defaults.MAX_CHARS
    crossfade_s: float = defaults.CROSSFADE_S


LONG_TEXT_FIELDS = ("split", "max_chars", "crossfade_s")  # also accepted as keywords by the facade


def text_chunks(text: Any, long_text: LongText, item: int | None = None, n: int = 1) -> list[str]:
    """The checked text as the chunks it is synthesised in; ``item`` (0-based) names the entry of a list."""
    split, max_chars = long_text.split, long_text.max_chars
    where = f"text item {item + 1} of {n}" if item is not None and n > 1 else "text"
    text = check_text(text, where, in_list=True, warn_no_words=True, stacklevel=4)
    if split not in (None, True, False):
        raise ConfigError(f"split must be None, True or False, got {split!r}")
    check_int(max_chars, "max_chars", minimum=1)
    if split is False or (split is None and len(text) <= max_chars):
        return [text]
    return chunk_text(text, max_chars) or [text]


def label(value: Any) -> str:
    """A gender / level label as its official string."""
    return value.label if isinstance(value, (Gender, Level)) else str(value)


def check_labels(gender: Any, pitch: Any, speed: Any) -> None:
    missing = [n for n, v in (("gender", gender), ("pitch", pitch), ("speed", speed)) if v is None]
    if missing:
        raise PromptError(
            f"voice creation needs gender, pitch and speed; missing {', '.join(missing)} (gender: female | male; "
            "pitch / speed: very_low | low | moderate | high | very_high)"
        )


def token_ids(ids: Any, name: str, upper: int) -> np.ndarray:
    """One row of token ids as an int64 array, checked against the codebook size ``upper``."""
    try:
        arr = np.asarray(ids.detach().cpu() if hasattr(ids, "detach") else ids)
    except (TypeError, ValueError) as exc:
        raise PromptError(f"{name} must be a sequence of ints ({exc})") from None
    if arr.size and arr.dtype.kind not in "iu":
        raise PromptError(f"{name} must be integers, got dtype {arr.dtype}")
    if arr.size != max(arr.shape, default=1):
        raise PromptError(f"{name} must be one row of ids, got shape {arr.shape}")
    arr = arr.reshape(-1).astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= upper):
        raise PromptError(f"{name} has ids outside [0, {upper}) (range {arr.min()}..{arr.max()})")
    return arr
