"""``SparkTTS.stream``: audio chunks of one text while the LM is still generating.

The rows are planned by :class:`sparktts.inference.scheduler.Job` exactly as for one-shot synthesis (a
creation's later chunks clone the voice its first chunk made); each row is generated in a background
thread whose tokens are parsed as they arrive (:class:`sparktts.format.grammar.TokenStreamParser`) and
decoded in windows (:class:`sparktts.streaming.StreamingDecoder`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from sparktts import defaults
from sparktts.errors import GenerationError
from sparktts.format.grammar import GeneratedTokens, Kind, TokenStreamParser
from sparktts.inference.inputs import check_int
from sparktts.inference.scheduler import Job, Pipeline, Row, join, row_result
from sparktts.inference.synthesis import Synthesis
from sparktts.llm.sampling import SamplingConfig
from sparktts.streaming import StreamingDecoder, TokenQueueStreamer, fade_curves

__all__ = ["STREAM_FIELDS", "StreamOptions", "SynthesisStream"]


@dataclass(frozen=True)
class StreamOptions:
    """How a stream cuts its audio.

    Attributes:
        chunk_tokens: semantic tokens per chunk (50 = 1 s of audio).
        first_chunk_tokens: the first chunk's size (smaller = earlier first audio); None = ``chunk_tokens``.
        left_context / lookahead: tokens of context decoded around each chunk; None = the decoder's
            receptive radius, which makes the joined stream equal the one-shot decode up to float
            rounding. A smaller ``lookahead`` gives earlier chunks at a small seam error.
        stream_crossfade: samples of linear crossfade at chunk seams.
    """

    chunk_tokens: int = defaults.STREAM_CHUNK_TOKENS
    first_chunk_tokens: int | None = defaults.STREAM_FIRST_CHUNK_TOKENS
    left_context: int | None = None
    lookahead: int | None = None
    stream_crossfade: int = defaults.STREAM_CROSSFADE

    def __post_init__(self) -> None:
        check_int(self.chunk_tokens, "chunk_tokens", minimum=1)
        check_int(self.first_chunk_tokens, "first_chunk_tokens", minimum=1, allow_none=True)
        check_int(self.left_context, "left_context", minimum=0, allow_none=True)
        check_int(self.lookahead, "lookahead", minimum=0, allow_none=True)
        check_int(self.stream_crossfade, "stream_crossfade", minimum=0)

    def decoder_kwargs(self) -> dict[str, Any]:
        """The :class:`~sparktts.streaming.StreamingDecoder` arguments."""
        return dict(chunk_tokens=self.chunk_tokens, first_chunk_tokens=self.first_chunk_tokens,
                    left_context=self.left_context, lookahead=self.lookahead, crossfade=self.stream_crossfade)


STREAM_FIELDS = tuple(f.name for f in fields(StreamOptions))  # also accepted as keywords by SparkTTS.stream


def _with_end(items: Iterator[np.ndarray]) -> Iterator[np.ndarray | None]:
    """The items, then ``None`` as an end marker (lets a loop finish pending work at the end)."""
    yield from items
    yield None


class SynthesisStream:
    """Audio chunks of one text, produced while the LM generates. Iterate once; then use :meth:`result`.

    Attributes:
        timings: ``prompt_s``, ``first_chunk_s`` (from the call to the first chunk), ``total_s``,
            ``audio_s``, ``rtf``, ``n_chunks``; filled as the stream runs.
        chunks: the float32 chunks yielded so far.

    Generation runs in a background thread that stops within one decoding step when the stream is closed
    (:meth:`close`, ``with``), or when its iterator is abandoned: ``for chunk in tts.stream(...): break``
    frees the iterator, which stops and joins the thread before the loop statement finishes. Each stream
    has its own generation state and random generator, so streams never disturb each other or other calls.
    """

    def __init__(self, tts: Pipeline, job: Job, cfg: SamplingConfig, constrained: bool, legacy_join: bool,
                 decoder_kwargs: dict[str, Any], crossfade: int, t0: float):
        self.tts = tts
        self.job = job
        self.cfg = cfg
        # The chunk generator runs on a separate object that never refers back to this one, so no reference
        # cycle keeps an abandoned iterator (and its generation thread) alive until the garbage collector runs.
        self._state = _StreamRun(tts, job, cfg, constrained, legacy_join, decoder_kwargs, crossfade, t0)
        self.timings = self._state.timings
        self.chunks = self._state.chunks
        self._iter: Iterator[np.ndarray] | None = None

    @property
    def seed(self) -> int | None:
        return self.cfg.seed

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._iter is None:
            self._iter = self._state.run()
        return self._iter

    def __enter__(self) -> SynthesisStream:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop generation early: the background thread ends after its current step and is joined."""
        if self._iter is None:
            self._iter = iter(())  # never started: nothing to stop, and nothing will start
            return
        self._iter.close()  # type: ignore[attr-defined]

    def result(self) -> Synthesis:
        """The complete :class:`Synthesis` (runs the rest of the stream if needed)."""
        for _ in self:
            pass
        state = self._state
        if not state.done:
            raise GenerationError("the stream was closed before it finished; there is no complete result")
        job = self.job
        job.results = list(state.segments)  # type: ignore[arg-type]
        out = join(job, state.crossfade, self.tts.sample_rate)
        out.audio = np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.float32)
        out.timings = dict(self.timings)
        return out


class _StreamRun:
    """What one :class:`SynthesisStream` computes; its generators hold this, never the stream."""

    def __init__(self, tts: Pipeline, job: Job, cfg: SamplingConfig, constrained: bool, legacy_join: bool,
                 decoder_kwargs: dict[str, Any], crossfade: int, t0: float):
        self.tts = tts
        self.job = job
        self.cfg = cfg
        self.constrained = constrained
        self.legacy_join = legacy_join
        self.decoder_kwargs = decoder_kwargs
        self.crossfade = crossfade
        self.t0 = t0
        self.timings: dict[str, float] = {"prompt_s": time.perf_counter() - t0}
        self.chunks: list[np.ndarray] = []
        self.segments: list[Synthesis] = []
        self.done = False

    def _emit(self, chunk: np.ndarray) -> np.ndarray:
        if not self.chunks:
            self.timings["first_chunk_s"] = time.perf_counter() - self.t0
        self.chunks.append(chunk)
        return chunk

    def run(self) -> Iterator[np.ndarray]:
        """Stream every chunk of the text; segment seams get the same crossfade as the non-streamed join.

        ``crossfade_concat`` overlaps the end of the output so far with the start of the next segment, so the
        last ``crossfade`` samples of each non-final segment are held back until the next segment's first
        samples arrive; the joined stream then equals ``crossfade_concat`` of the segments exactly.
        """
        tts, job = self.tts, self.job
        x = self.crossfade
        created_globals: np.ndarray | None = None
        hold = np.zeros(0, dtype=np.float32)  # samples not yet emitted (a non-final segment's tail)
        last_ci = len(job.chunks) - 1
        for ci in range(len(job.chunks)):
            row = job.row(0, ci, legacy_join=self.legacy_join, num_globals=tts.num_globals, created=created_globals)
            # Same seeds as the non-streamed call with batch_size=1 (one batch per chunk).
            seed = self.cfg.seed + ci  # type: ignore[operator]
            tail = hold if ci > 0 and x > 0 else None  # the previous segment's end, to fade out
            if tail is None:
                hold = np.zeros(0, dtype=np.float32)
            head = np.zeros(0, dtype=np.float32)
            seg_audio: list[np.ndarray] = []
            box: dict[str, GeneratedTokens] = {}
            pieces = self._segment(row, self.cfg.replace(seed=seed), box)
            try:
                for piece in _with_end(pieces):
                    if piece is not None:
                        seg_audio.append(piece)
                    if tail is not None:
                        # Collect the new segment's start until it covers the tail (or the segment ended).
                        if piece is not None:
                            head = np.concatenate([head, piece])
                            if len(head) < len(tail):
                                continue
                        n = min(len(tail), len(head))
                        fade_out, fade_in = fade_curves(n, equal_power=True)
                        piece = np.concatenate([tail[: len(tail) - n], tail[len(tail) - n :] * fade_out
                                                + head[:n] * fade_in, head[n:]])
                        tail, hold = None, np.zeros(0, dtype=np.float32)
                    if piece is None:
                        continue
                    combined = np.concatenate([hold, piece])
                    keep = x if ci < last_ci else 0
                    hold = combined[len(combined) - keep :] if keep else np.zeros(0, dtype=np.float32)
                    out = combined[: len(combined) - keep] if keep else combined
                    if len(out):
                        yield self._emit(out)
            finally:
                pieces.close()  # a closed stream must stop this segment's generation thread
            gen = box["gen"]
            seg = row_result(tts, job, row, gen, np.concatenate(seg_audio), self.cfg.seed)  # type: ignore[arg-type]
            self.segments.append(seg)
            if job.mode == "create" and ci == 0:
                created_globals = seg.global_tokens
        if len(hold):
            yield self._emit(hold)
        self.done = True
        total = time.perf_counter() - self.t0
        audio_s = sum(len(c) for c in self.chunks) / tts.sample_rate
        self.timings.update(total_s=total, audio_s=audio_s, rtf=total / audio_s if audio_s else float("nan"),
                            n_chunks=float(len(self.chunks)))

    def _segment(self, row: Row, cfg: SamplingConfig, box: dict[str, GeneratedTokens]) -> Iterator[np.ndarray]:
        """Stream one prompt: generation in a background thread, windows decoded here as tokens arrive."""
        tts = self.tts
        gen = tts.generator
        vocab = gen.vocab
        with gen.tokenizer_lock:
            n_tokenizer = len(gen.tokenizer)
        streamer = TokenQueueStreamer()
        cancel = threading.Event()
        state: dict[str, Any] = {}

        def work() -> None:
            try:
                state["rows"] = gen.generate([row.prompt], cfg, constrained=self.constrained, modes=[row.mode],
                                             streamer=streamer, cancel=cancel, allow_empty=True)
            except BaseException as exc:  # surfaced in the consumer thread
                state["error"] = exc
                streamer.queue.put(None)

        thread = threading.Thread(target=work, name="sparktts-generate", daemon=True)
        thread.start()
        decoder: StreamingDecoder | None = None
        parser = TokenStreamParser(vocab, gen.stop_ids(self.constrained),
                                   None if row.global_ids is None else row.global_ids.tolist())
        buffered: list[int] = []
        try:
            while True:
                tok = streamer.queue.get()
                if tok is None:
                    break
                if parser.stopped or not isinstance(tok, int):
                    continue  # after the stop token: padding
                k, semantic = parser.feed(tok)
                buffered.extend(semantic)
                if k == Kind.OTHER and not parser.stopped and not self.constrained and tok < n_tokenizer:
                    with gen.tokenizer_lock:
                        name = gen.tokenizer.convert_ids_to_tokens(tok) or ""
                    if "bicodec_semantic_" in name:
                        # A semantic token beyond this codec's codebook (only possible unconstrained).
                        raise GenerationError(f"the model generated {name}, outside this codec's codebook "
                                              f"[0, {vocab.semantic_size}); use constrained=True")
                if decoder is None and parser.has_voice:
                    decoder = StreamingDecoder(tts.codec, parser.global_ids, **self.decoder_kwargs)
                if decoder is not None and buffered:
                    if not self.chunks:  # the first chunk decodes with the cores to itself
                        streamer.hold()
                    try:
                        chunks = decoder.push(buffered)
                    finally:
                        streamer.release()
                    buffered = []
                    yield from chunks
            thread.join()
            if "error" in state:
                raise state["error"]
            result = state["rows"][0]
            box["gen"] = result
            if not result.semantic_ids:
                reason = gen.empty_reason(result, cfg.max_new_tokens)
                raise GenerationError(f"no speech for {row.text[:60]!r}: {reason}")
            if decoder is None:
                if len(result.global_ids) != tts.num_globals:
                    raise GenerationError(f"the model generated {len(result.global_ids)} global tokens; the codec "
                                          f"needs {tts.num_globals}. Use constrained=True")
                decoder = StreamingDecoder(tts.codec, result.global_ids, **self.decoder_kwargs)
            if buffered:
                yield from decoder.push(buffered)
            # The generation's own parse is the reference; the streamed ids must agree with it.
            if decoder.tokens != result.semantic_ids:
                raise GenerationError("internal error: streamed semantic tokens differ from the generated ones")
            last = decoder.flush()
            if last is not None:
                yield last
        finally:
            cancel.set()
            streamer.release()  # a held generation could not see the cancel
            thread.join()

