"""The Spark-TTS adapter of the runner: list items -> ``(audio, sample_rate)`` with a loaded :class:`SparkTTS`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .errors import EvalError
from .lists import EvalItem


def sparktts_synthesizer(
    tts: Any, seed: int | None = None, **kwargs: Any
) -> Callable[[EvalItem], tuple[np.ndarray, int]]:
    """``synthesize(item) -> (audio, sample_rate)`` over a loaded :class:`sparktts.SparkTTS`.

    Items with a ``prompt_wav`` are cloned from it (with ``prompt_text`` when the list gives one, as the
    Spark-TTS reference inference does); items without one but with a ``gender`` are voice-creation items
    (missing pitch / speed = "moderate"). ``kwargs`` go to the clone / create call (e.g. ``max_new_tokens``).
    """

    def synthesize(item: EvalItem) -> tuple[np.ndarray, int]:
        if item.prompt_wav is not None:
            out = tts.clone(item.text, prompt_audio=str(item.prompt_wav), prompt_text=item.prompt_text, seed=seed,
                            progress=False, **kwargs)
        elif item.gender is not None:
            out = tts.create(item.text, item.gender, item.pitch or "moderate", item.speed or "moderate", seed=seed,
                             progress=False, **kwargs)
        else:
            raise EvalError(f"item {item.utt!r} has neither a prompt_wav (clone) nor a gender (create).")
        return out.audio, out.sample_rate

    return synthesize


def codec_roundtrip_synthesizer(tokenizer: Any) -> Callable[[EvalItem], tuple[np.ndarray, int]]:
    """``synthesize(item)``: the item's own recording (``gt_wav``) encoded and decoded by a codec.

    ``tokenizer`` is a :class:`sparktts.codec.tokenizer.BiCodecTokenizer`. Scoring the result measures
    what the codec keeps: WER against the item's text, SIM against its prompt (see
    :func:`roundtrip_items`, which makes the recording itself the prompt).
    """

    def synthesize(item: EvalItem) -> tuple[np.ndarray, int]:
        if item.gt_wav is None:
            raise EvalError(f"item {item.utt!r} has no recording (gt_wav, or audio in a manifest) to round-trip.")
        return tokenizer.decode(tokenizer.encode(str(item.gt_wav)))[0], tokenizer.sample_rate

    return synthesize


def roundtrip_items(items: list[EvalItem]) -> list[EvalItem]:
    """Items for a codec round trip: each recording is its own SIM reference unless a prompt is given."""
    from dataclasses import replace

    return [it if it.prompt_wav is not None or it.gt_wav is None else replace(it, prompt_wav=it.gt_wav)
            for it in items]


__all__ = ["codec_roundtrip_synthesizer", "roundtrip_items", "sparktts_synthesizer"]
