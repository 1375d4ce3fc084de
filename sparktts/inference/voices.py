"""The voice of a cloning call: from a Voice, a voice JSON or a reference clip, and an LRU cache of the voices
made from clips, so that a clip is tokenized once per model."""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sparktts.errors import PromptError
from sparktts.voices import Voice

__all__ = ["VoiceCache", "resolve_voice"]


class VoiceCache:
    """Voices keyed by their clip: a file's path + size + mtime, or an array's content hash.

    Thread-safe: calls from several notebook threads share one cache.
    """

    def __init__(self, size: int = 32):
        self.size = size
        self._items: OrderedDict[tuple[Any, ...], Voice] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(audio: Any, transcript: str | None, sample_rate: int | None) -> tuple[Any, ...] | None:
        """The cache key of a clip (None: do not cache)."""
        key: tuple[Any, ...] | None = None
        if isinstance(audio, (str, os.PathLike)):
            p = Path(audio)
            if not p.is_file():
                return None  # let Voice.from_audio raise the clear AudioError
            st = p.stat()
            key = ("file", str(p.resolve()), st.st_size, st.st_mtime_ns, transcript)
        elif isinstance(audio, np.ndarray):
            digest = hashlib.sha1(np.ascontiguousarray(audio).tobytes()).hexdigest()
            key = ("array", digest, audio.shape, str(audio.dtype), sample_rate, transcript)
        try:
            hash(key)
        except TypeError:  # an odd sample_rate / transcript: not cached; loading then says what is wrong
            return None
        return key

    def get(self, key: tuple[Any, ...] | None) -> Voice | None:
        if key is None:
            return None
        with self._lock:
            voice = self._items.get(key)
            if voice is not None:
                self._items.move_to_end(key)
            return voice

    def put(self, key: tuple[Any, ...] | None, voice: Voice) -> None:
        if key is None:
            return
        with self._lock:
            self._items[key] = voice
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def resolve_voice(make_voice: Callable[..., Voice], prompt_audio: Any = None, prompt_text: str | None = None,
                  voice: Any = None, sample_rate: int | None = None) -> Voice:
    """The voice of a cloning call: ``voice`` (a Voice or a voice JSON path) or one made from ``prompt_audio``.

    Raises:
        PromptError: both or neither given, or ``prompt_text`` without prompt audio.
    """
    if voice is not None:
        if prompt_audio is not None:
            raise PromptError("give either voice=... or prompt_audio=..., not both")
        if prompt_text is not None:
            raise PromptError(
                "prompt_text was given with voice=...; a voice carries its own transcript. Make the voice "
                "with it instead: tts.make_voice(audio, transcript=...)"
            )
        if isinstance(voice, (str, os.PathLike)):
            return Voice.load(voice)
        if not isinstance(voice, Voice):
            raise PromptError(f"voice must be a Voice or the path of a voice JSON file, got {type(voice).__name__}")
        return voice
    if prompt_audio is None:
        if prompt_text is not None:
            raise PromptError(
                "prompt_text was given without prompt audio: it is the transcript of the reference clip, so "
                "pass the clip too (prompt_audio=... / prompt_speech_path=...), or drop prompt_text"
            )
        raise PromptError(
            "voice cloning needs a voice: pass prompt_audio=... (a reference clip) or voice=... (a saved "
            "Voice); for a new voice without a reference use create(text, gender, pitch, speed)"
        )
    return make_voice(prompt_audio, prompt_text, sample_rate=sample_rate)
