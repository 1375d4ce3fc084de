"""One list item's work: its wav path, synthesis when asked (saved atomically), and its score row."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from sparktts.audio import save_audio

from .errors import EvalError
from .lists import EvalItem, check_utt_id
from .scoring import Scorer

Synthesizer = Callable[[EvalItem], tuple[np.ndarray, int]]


def item_wav_path(folder: str | os.PathLike, item: EvalItem) -> Path:
    """``<folder>/<utt>.wav``, refusing ids that would name a file anywhere else (:class:`EvalError`)."""
    base = Path(folder)
    path = base / f"{check_utt_id(item.utt, f'list item {item.utt!r}')}.wav"
    # Belt and braces: lexically the file must sit directly in the folder whatever the id check allows.
    if Path(os.path.normpath(path)).parent != Path(os.path.normpath(base)):
        raise EvalError(f"list item {item.utt!r}: its wav path {path} is outside {base}; rename the id.")
    return path


def process_item(item: EvalItem, scorer: Scorer, wav_path: Path, synthesize: Synthesizer | None) -> dict:
    """Synthesise (if needed and not already on disk) and score one item; never raises for item errors."""
    synth_s = None
    if synthesize is not None and not wav_path.exists():
        t = time.perf_counter()
        try:
            audio, sr = synthesize(item)
            save_audio(wav_path, audio, sr)  # atomic: a kill mid-write never leaves a truncated <utt>.wav
        except Exception as exc:
            return {
                "utt": item.utt,
                "text": item.text,
                "lang": item.lang,
                "hyp": None,
                "sim": None,
                "error": f"synthesis: {type(exc).__name__}: {exc}",
                "synth_s": time.perf_counter() - t,
            }
        synth_s = time.perf_counter() - t
    row = scorer.score(item, wav_path)
    if synth_s is not None:
        row["synth_s"] = synth_s
    row["wav"] = str(wav_path)
    return row


__all__ = ["Synthesizer", "item_wav_path", "process_item"]
