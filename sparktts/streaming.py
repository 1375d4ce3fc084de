"""Semantic tokens in chunks -> audio chunks, and crossfaded joins of audio pieces.

BiCodec's decoder is a stack of convolutions (prenet ConvNeXt blocks, then the DAC-style wave generator),
so the audio of a token window depends only on tokens within a finite radius: :func:`decoder_context`
computes that radius from the config (67 tokens each side for the release, 36 for the tiny test codec).
:class:`StreamingDecoder` therefore decodes, for every new chunk, the window
``[start - left_context, end + lookahead)`` and keeps only the audio of ``[start, end)``:

* with ``left_context`` and ``lookahead`` >= the radius the chunk equals the full decode up to float
  rounding (the convolutions see exactly the same inputs);
* smaller values trade accuracy for latency (``lookahead`` tokens must be generated before a chunk can
  be emitted); the seams are then crossfaded over ``crossfade`` samples, which hides the small jump.

The receptive-field arithmetic: a ``kernel=7, dilation=d`` convolution reaches ``3*d`` frames each side;
prenet = embedding conv + N ConvNeXt blocks (+ 2 resampling stages of conv + 2 blocks), all at token
rate; the generator = one conv at token rate, then per upsampling stage a transposed conv and residual
units with dilations 1, 3, 9 (39 frames at that stage's rate), then a final conv at the sample rate.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from sparktts import defaults
from sparktts.codec.bicodec import BiCodec, decoder_context
from sparktts.codec.tokens import BiCodecTokens

__all__ = ["StreamingDecoder", "TokenQueueStreamer", "crossfade_concat", "decoder_context", "fade_curves"]


def fade_curves(n: int, equal_power: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Fade-out / fade-in curves of length ``n``, float32.

    Linear (``out + in == 1``) is right for two versions of the SAME signal (streaming seams: a blend
    of near-identical audio stays unchanged). Equal power (``out**2 + in**2 == 1``, cos / sin of a quarter
    period) keeps the loudness constant between two DIFFERENT signals (the ends of two utterances).
    """
    t = (np.arange(n, dtype=np.float64) + 0.5) / max(n, 1)
    if equal_power:
        return np.cos(t * np.pi / 2).astype(np.float32), np.sin(t * np.pi / 2).astype(np.float32)
    return (1.0 - t).astype(np.float32), t.astype(np.float32)


def crossfade_concat(pieces: Sequence[np.ndarray], crossfade: int, equal_power: bool = True) -> np.ndarray:
    """Concatenate 1-D pieces, overlapping consecutive pieces by ``crossfade`` samples.

    Equal-power fades by default: the pieces are separate utterances (see :func:`fade_curves`).

    The overlap is shortened to the shorter piece of each pair when a piece is shorter than
    ``crossfade``. The result has ``sum(len) - sum(overlaps)`` samples, float32.
    """
    pieces = [np.asarray(p, dtype=np.float32).reshape(-1) for p in pieces]
    if not pieces:
        return np.zeros(0, dtype=np.float32)
    out = pieces[0]
    for piece in pieces[1:]:
        n = min(int(crossfade), len(out), len(piece))
        if n <= 0:
            out = np.concatenate([out, piece])
            continue
        fade_out, fade_in = fade_curves(n, equal_power)
        seam = out[-n:] * fade_out + piece[:n] * fade_in
        out = np.concatenate([out[:-n], seam, piece[n:]])
    return out


class StreamingDecoder:
    """Incremental decoding of a growing semantic-token sequence into audio chunks.

    Feed tokens with :meth:`push`; it returns an audio chunk whenever ``chunk_tokens`` new tokens plus the
    lookahead are available. :meth:`flush` decodes the rest at the end. The concatenated chunks have
    exactly ``N * hop`` samples for N tokens, like the full decode.

    Args:
        codec: the BiCodec model.
        global_ids: the voice, ``(G,)`` or ``(1, G)`` int ids.
        chunk_tokens: tokens per emitted chunk (50 tokens = 1 s of audio). The first chunk may be given a
            different size with ``first_chunk_tokens`` (smaller = lower time to first audio).
        left_context: past tokens decoded with each window; None = the decoder's full receptive radius.
        lookahead: future tokens each window waits for; None = the full radius (exact, more latency).
        crossfade: samples of linear crossfade at each seam (capped at the lookahead's audio length).
    """

    def __init__(
        self,
        codec: BiCodec,
        global_ids: Any,
        *,
        chunk_tokens: int = defaults.STREAM_CHUNK_TOKENS,
        first_chunk_tokens: int | None = None,
        left_context: int | None = None,
        lookahead: int | None = None,
        crossfade: int = defaults.STREAM_CROSSFADE,
    ):
        radius = decoder_context(codec.config)
        self.codec = codec
        self.hop = codec.hop_length
        self.global_ids = torch.as_tensor(np.asarray(global_ids, dtype=np.int64)).reshape(1, -1)
        self.chunk_tokens = int(chunk_tokens)
        self.first_chunk_tokens = int(first_chunk_tokens) if first_chunk_tokens is not None else self.chunk_tokens
        self.left_context = radius if left_context is None else int(left_context)
        self.lookahead = radius if lookahead is None else int(lookahead)
        if self.chunk_tokens < 1 or self.first_chunk_tokens < 1:
            raise ValueError(f"chunk_tokens must be >= 1, got {chunk_tokens} / {first_chunk_tokens}")
        if self.left_context < 0 or self.lookahead < 0:
            raise ValueError("left_context and lookahead must be >= 0")
        # The crossfade tail comes from the lookahead's audio, so it cannot be longer than that.
        self.crossfade = max(0, min(int(crossfade), self.lookahead * self.hop))
        self.tokens: list[int] = []
        self.emitted = 0  # tokens whose audio has been emitted (except the held-back crossfade tail)
        self._tail: np.ndarray | None = None  # previous window's audio just past `emitted`, to fade from

    def _decode(self, start: int, end: int) -> np.ndarray:
        sem = torch.tensor(self.tokens[start:end], dtype=torch.int64).unsqueeze(0)
        wav = self.codec.decode(BiCodecTokens(self.global_ids, sem))
        return wav.reshape(-1).float().cpu().numpy()

    def _emit(self, end: int, final: bool) -> np.ndarray:
        """Audio for tokens [emitted, end), decoded with context, seam crossfaded with the previous tail."""
        start = self.emitted
        w0 = max(0, start - self.left_context)
        w1 = len(self.tokens) if final else min(len(self.tokens), end + self.lookahead)
        window = self._decode(w0, w1)
        a = (start - w0) * self.hop
        b = (end - w0) * self.hop
        chunk = window[a:b].copy()
        if self._tail is not None and len(self._tail):
            n = min(len(self._tail), len(chunk))
            fade_out, fade_in = fade_curves(n)
            chunk[:n] = self._tail[:n] * fade_out + chunk[:n] * fade_in
        self._tail = None if final else window[b : b + self.crossfade].copy()
        self.emitted = end
        return chunk

    def push(self, semantic_ids: Sequence[int]) -> list[np.ndarray]:
        """Add tokens; return the chunks (float32 arrays) that became ready (often none)."""
        self.tokens.extend(int(t) for t in semantic_ids)
        chunks = []
        while True:
            size = self.first_chunk_tokens if self.emitted == 0 else self.chunk_tokens
            end = self.emitted + size
            if end + self.lookahead > len(self.tokens):
                break
            chunks.append(self._emit(end, final=False))
        return chunks

    def flush(self) -> np.ndarray | None:
        """The audio of every remaining token (None when nothing is left)."""
        if self.emitted >= len(self.tokens):
            return None
        return self._emit(len(self.tokens), final=True)


class TokenQueueStreamer:
    """A transformers streamer that hands each generation step's tokens to a queue (for one prompt).

    ``generate`` calls ``put`` with the prompt first (skipped), then once per step with a ``(1,)``
    tensor; ``end`` puts ``None``. The consumer reads ints from :attr:`queue` until ``None``.

    :meth:`hold` lets the consumer pause generation while it decodes audio: ``put`` waits at the end of
    a step until :meth:`release`. On a CPU the two would otherwise share its cores (the codec's window
    then takes about twice as long, which is what delays the first chunk); with the hold, generation
    overlaps a decode by at most the one step already under way.
    """

    def __init__(self) -> None:
        self.queue: queue.Queue[int | None | BaseException] = queue.Queue()
        self._prompt_seen = False
        self._go = threading.Event()
        self._go.set()

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        for tok in value.reshape(-1).tolist():
            self.queue.put(int(tok))
        self._go.wait()

    def end(self) -> None:
        self.queue.put(None)

    def hold(self) -> None:
        """Pause generation after its current step (until :meth:`release`)."""
        self._go.clear()

    def release(self) -> None:
        self._go.set()
