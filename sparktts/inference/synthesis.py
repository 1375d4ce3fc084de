"""``Synthesis``: the result of one synthesised text (audio, tokens, seed, timings) and its notebook view."""

from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sparktts.audio import save_audio, wav_bytes
from sparktts.codec.tokens import BiCodecTokens
from sparktts.errors import GenerationError
from sparktts.units import mel_to_hz
from sparktts.voices import Voice, _base_metadata

__all__ = ["Synthesis"]


@dataclass
class Synthesis:
    """One synthesised text.

    Attributes:
        audio: ``(T,)`` float32 waveform at ``sample_rate`` (16 kHz).
        sample_rate: 16000 for the release.
        global_tokens: ``(G,)`` int64 speaker tokens used (the voice; predicted by the LM in create mode).
        semantic_tokens: ``(N,)`` int64 generated semantic tokens (50 per second); for a long text the
            concatenation of its segments' tokens (the audio is the crossfaded join of the segments).
        prompt: the LLM prompt string (of the first segment for a long text).
        text: the input text.
        mode: "clone" or "create".
        seed: the seed this result was generated with (pass it again to reproduce the call).
        timings: seconds per stage of the call (``prompt_s`` audio tokenization, ``generate_s``,
            ``decode_s``, ``total_s``) plus ``audio_s`` and ``rtf`` (total / audio duration), and
            ``first_chunk_s`` for streams.
        pitch_value: create mode: the pitch the model decided, in mel (``<|pitch_value_N|>``, 0-1000).
        speed_value: create mode: the speed the model decided, in syllables per second (0-10).
        attributes: create mode: the requested ``{"gender", "pitch", "speed"}`` labels.
        segments: the per-chunk results of a long text (empty for a single chunk).
        finish_reason: "stop" (the model ended the utterance) or "length" (``max_new_tokens`` hit).
        voice_name: name of the voice used, when known.
        error: for an item of a list call that produced no speech, why (its audio and tokens are then empty
            and the other items are unaffected); None for every result with audio.
    """

    audio: np.ndarray
    sample_rate: int
    global_tokens: np.ndarray
    semantic_tokens: np.ndarray
    prompt: str
    text: str
    mode: str
    seed: int | None = None
    timings: dict[str, float] = field(default_factory=dict)
    pitch_value: int | None = None
    speed_value: int | None = None
    attributes: dict[str, str] | None = None
    segments: list[Synthesis] = field(default_factory=list)
    finish_reason: str = "stop"
    voice_name: str | None = None
    voice_metadata: dict[str, Any] = field(default_factory=dict, repr=False)
    error: str | None = None

    @property
    def duration(self) -> float:
        """Audio length in seconds."""
        return len(self.audio) / self.sample_rate

    @property
    def pitch_hz(self) -> float | None:
        """``pitch_value`` converted from mel to Hz (None outside create mode)."""
        return None if self.pitch_value is None else mel_to_hz(self.pitch_value)

    @property
    def tokens(self) -> BiCodecTokens:
        """The tokens as a batch of one (``(1, G)``, ``(1, N)``) for the codec."""
        return BiCodecTokens.from_lists([self.global_tokens.tolist()], [self.semantic_tokens.tolist()])

    def save(self, path: str | os.PathLike) -> Path:
        """Write the audio as a 16-bit WAV file (folders are created; atomic, so an interrupted save leaves
        no truncated file). Returns the path.

        Raises:
            GenerationError: this result has no audio (``error`` says why).
        """
        if self.error is not None:
            raise GenerationError(f"nothing to save for {self.text[:60]!r}: {self.error}")
        return save_audio(path, self.audio, self.sample_rate)

    def voice(self, name: str | None = None, *, with_prompt: bool = False) -> Voice:
        """The voice of this result, to speak later lines in it without re-running the audio tokenizer.

        Args:
            name: a label for the voice.
            with_prompt: also keep this utterance (its semantic tokens and text) as the voice's reference,
                which the LM then continues (more consistent prosody, longer prompts). For a long text the
                first segment is used.
        """
        first = self.segments[0] if self.segments else self
        if self.mode == "create":
            source: dict[str, Any] = {
                "type": "created",
                **(self.attributes or {}),
                "pitch_value": self.pitch_value,
                "speed_value": self.speed_value,
                "seed": self.seed,
                "text": first.text,
            }
            meta = _base_metadata(source)
        else:
            meta = dict(self.voice_metadata) or _base_metadata({"type": "clone"})
        prompt_ids = first.semantic_tokens.copy() if with_prompt else None
        prompt_text = first.text if with_prompt else None
        return Voice(self.global_tokens.copy(), prompt_ids, prompt_text, name or self.voice_name, meta)

    def _repr_html_(self) -> str:
        """Notebook view: an audio player and the main facts."""
        b64 = base64.b64encode(wav_bytes(self.audio, self.sample_rate)).decode("ascii")
        rows = [
            ("text", html.escape(self.text if len(self.text) < 200 else self.text[:200] + "…")),
            ("mode", self.mode),
            ("duration", f"{self.duration:.2f} s"),
            ("seed", str(self.seed)),
        ]
        if self.pitch_value is not None:
            rows.append(("pitch", f"{self.pitch_value} mel ({self.pitch_hz:.0f} Hz)"))
        if self.speed_value is not None:
            rows.append(("speed", f"{self.speed_value} syllables/s"))
        if self.segments:
            rows.append(("segments", str(len(self.segments))))
        if "rtf" in self.timings:
            rows.append(("RTF", f"{self.timings['rtf']:.3f}"))
        table = "".join(f"<tr><th style='text-align:left'>{k}</th><td>{v}</td></tr>" for k, v in rows)
        return (f"<audio controls src='data:audio/wav;base64,{b64}'></audio>"
                f"<table style='font-size:90%'>{table}</table>")

    def __repr__(self) -> str:
        extra = ""
        if self.pitch_value is not None:
            extra = f", pitch={self.pitch_value} mel, speed={self.speed_value} syl/s"
        seg = f", {len(self.segments)} segments" if self.segments else ""
        return (f"Synthesis({self.mode}, {self.duration:.2f} s, {len(self.semantic_tokens)} semantic tokens, "
                f"seed={self.seed}{extra}{seg})")

