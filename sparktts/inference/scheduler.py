"""Plans and runs the LLM rows of a call: long texts as chunks, create-then-clone rounds, batches, seeds.

One input text is a :class:`Job`; each of its chunks becomes a :class:`Row` (one prompt). The policy,
used by one-shot synthesis (:func:`run_jobs`) and by streams (:mod:`sparktts.inference.stream`) alike:

* a cloned text: every chunk is a clone prompt with the job's voice;
* a created text: its first chunk is a create prompt (the LM designs the voice); every later chunk is
  cloned with the global tokens the first chunk created, so the whole text has one voice.

One-shot synthesis therefore runs two rounds: every clone chunk and every creation's first chunk, then
the remaining creation chunks. Rows are generated ``batch_size`` at a time; batch ``b`` of a call is
seeded with ``seed + b`` (counted over both rounds), and a stream seeds chunk ``i`` with ``seed + i``,
which is what ``batch_size=1`` gives.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from tqdm.auto import tqdm

from sparktts.codec.tokens import BiCodecTokens
from sparktts.errors import GenerationError, PromptError, SparkTTSWarning
from sparktts.format.grammar import GeneratedTokens, Mode
from sparktts.format.prompts import build_clone_prompt, build_create_prompt
from sparktts.inference.inputs import check_labels, label
from sparktts.inference.synthesis import Synthesis
from sparktts.llm.generator import SpeechGenerator
from sparktts.llm.sampling import SamplingConfig
from sparktts.streaming import crossfade_concat
from sparktts.voices import Voice

__all__ = ["Job", "Pipeline", "Row", "join", "row_result", "run_jobs"]


class Pipeline(Protocol):
    """What the scheduler runs on (a :class:`~sparktts.inference.tts.SparkTTS`)."""

    generator: SpeechGenerator
    audio_tokenizer: Any  # BiCodecTokenizer: decodes rows
    codec: Any  # its BiCodec: streams decode windows with it
    sample_rate: int
    num_globals: int


@dataclass
class Row:
    """One prompt: chunk ``chunk`` of job ``job``; ``global_ids`` None when the LM writes the voice."""

    job: int
    chunk: int
    text: str
    prompt: str
    global_ids: np.ndarray | None
    mode: Mode


@dataclass
class Job:
    """One input text: its chunks and, for cloning, its voice; for creation, the requested labels."""

    text: str
    chunks: list[str]
    mode: str  # "clone" | "create"
    voice: Voice | None = None
    attrs: tuple[Any, Any, Any] | None = None
    results: list[Synthesis | None] = field(default_factory=list)

    @classmethod
    def create(cls, text: str, chunks: list[str], gender: Any, pitch: Any, speed: Any) -> Job:
        """A creation job; the labels are checked here (the message lists the valid ones)."""
        check_labels(gender, pitch, speed)
        build_create_prompt("x", gender, pitch, speed)
        return cls(text, chunks, "create", attrs=(gender, pitch, speed))

    def needs_created_voice(self, chunk: int) -> bool:
        """Whether chunk ``chunk`` is cloned with the voice that this job's first chunk creates."""
        return self.mode == "create" and chunk > 0

    def row(self, index: int, chunk: int, *, legacy_join: bool, num_globals: int,
            created: np.ndarray | None = None) -> Row:
        """The prompt of one chunk (``index``: this job's position in the call; ``created``: the voice the
        first chunk created, for the later chunks of a creation)."""
        text = self.chunks[chunk]
        if self.needs_created_voice(chunk):
            if created is None:
                raise GenerationError("internal error: a creation's later chunk was planned before its voice")
            prompt = build_clone_prompt(text, created, expected_globals=num_globals)
            return Row(index, chunk, text, prompt, np.asarray(created, dtype=np.int64), "clone")
        if self.mode == "create":
            g, p, s = self.attrs  # type: ignore[misc]
            return Row(index, chunk, text, build_create_prompt(text, g, p, s), None, "create")
        v = self.voice
        assert v is not None
        prompt = build_clone_prompt(text, v.global_ids, prompt_text=v.prompt_text, semantic_ids=v.prompt_semantic_ids,
                                    legacy_join=legacy_join, expected_globals=num_globals)
        # A voice with a transcript puts its semantic tokens in the prompt, which the LM then continues.
        return Row(index, chunk, text, prompt, v.global_ids, "clone_continue" if v.prompt_text is not None else "clone")

    @property
    def attributes(self) -> dict[str, str] | None:
        if self.mode != "create":
            return None
        g, p, s = self.attrs  # type: ignore[misc]
        return {"gender": label(g), "pitch": label(p), "speed": label(s)}


def row_result(pipe: Pipeline, job: Job, row: Row, gen: GeneratedTokens, wav: np.ndarray, seed: int) -> Synthesis:
    """The :class:`Synthesis` of one generated and decoded row."""
    globals_ = row.global_ids if row.global_ids is not None else np.asarray(gen.global_ids, dtype=np.int64)
    created = row.global_ids is None
    return Synthesis(
        audio=np.asarray(wav, dtype=np.float32),
        sample_rate=pipe.sample_rate,
        global_tokens=np.asarray(globals_, dtype=np.int64),
        semantic_tokens=np.asarray(gen.semantic_ids, dtype=np.int64),
        prompt=row.prompt,
        text=row.text,
        mode=job.mode,
        seed=seed,
        timings={"n_tokens": float(len(gen.token_ids))},
        pitch_value=gen.pitch_value if created else None,
        speed_value=gen.speed_value if created else None,
        attributes=job.attributes,
        finish_reason=gen.finish_reason,
        voice_name=job.voice.name if job.voice is not None else None,
        voice_metadata=dict(job.voice.metadata) if job.voice is not None else {},
    )


def _failed_result(pipe: Pipeline, job: Job, reason: str, finish_reason: str, seed: int) -> Synthesis:
    """The result of a list item without speech: no audio, ``error`` says why."""
    empty = np.zeros(0, dtype=np.int64)
    return Synthesis(
        audio=np.zeros(0, dtype=np.float32), sample_rate=pipe.sample_rate,
        global_tokens=job.voice.global_ids.copy() if job.voice is not None else empty, semantic_tokens=empty,
        prompt="", text=job.text, mode=job.mode, seed=seed, attributes=job.attributes, finish_reason=finish_reason,
        voice_name=job.voice.name if job.voice is not None else None,
        voice_metadata=dict(job.voice.metadata) if job.voice is not None else {}, error=reason,
    )


def join(job: Job, crossfade: int, sample_rate: int) -> Synthesis:
    """One result for a job from its chunks' results (crossfaded audio, concatenated tokens)."""
    segs: list[Synthesis] = job.results  # type: ignore[assignment]
    if len(segs) == 1:
        segs[0].text = job.text
        return segs[0]
    first = segs[0]
    return Synthesis(
        audio=crossfade_concat([s.audio for s in segs], crossfade),
        sample_rate=sample_rate,
        global_tokens=first.global_tokens,
        semantic_tokens=np.concatenate([s.semantic_tokens for s in segs]),
        prompt=first.prompt,
        text=job.text,
        mode=job.mode,
        seed=first.seed,
        timings={"n_tokens": float(sum(s.timings.get("n_tokens", 0) for s in segs))},
        pitch_value=first.pitch_value,
        speed_value=first.speed_value,
        attributes=first.attributes,
        segments=segs,
        finish_reason="length" if any(s.finish_reason == "length" for s in segs) else "stop",
        voice_name=first.voice_name,
        voice_metadata=first.voice_metadata,
    )


def _generate_rows(pipe: Pipeline, rows: list[Row], cfg: SamplingConfig, constrained: bool, batch_size: int,
                   batch_offset: int, on_batch: Callable[[int], Any], stats: dict[str, float],
                   failed: dict[int, tuple[str, str]]) -> list[GeneratedTokens]:
    """Generate rows in batches; batch b is seeded with ``cfg.seed + batch_offset + b``.

    A row without speech tokens records ``(why, finish_reason)`` for its job in ``failed``; the other rows
    are unaffected (their batches and seeds do not change).
    """
    gen = pipe.generator
    out: list[GeneratedTokens] = []
    for b, start in enumerate(range(0, len(rows), batch_size)):
        batch = rows[start : start + batch_size]
        seed = cfg.seed + batch_offset + b  # type: ignore[operator]
        t = time.perf_counter()
        rows_out = gen.generate([r.prompt for r in batch], cfg.replace(seed=seed), constrained=constrained,
                                modes=[r.mode for r in batch], allow_empty=True)
        stats["generate_s"] += time.perf_counter() - t
        for r, g in zip(batch, rows_out):
            if not g.semantic_ids and r.job not in failed:
                snippet = r.text if len(r.text) <= 60 else r.text[:57] + "..."
                failed[r.job] = (f"no speech for {snippet!r}: {gen.empty_reason(g, cfg.max_new_tokens)}",
                                 g.finish_reason)
        out.extend(rows_out)
        on_batch(len(batch))
    return out


def _decode_rows(pipe: Pipeline, rows: list[Row], gens: list[GeneratedTokens], stats: dict[str, float],
                 batch_size: int) -> list[np.ndarray]:
    """Decode rows ``batch_size`` at a time (whole-utterance decodes of many rows can be large on a GPU)."""
    t = time.perf_counter()
    globals_ = [(r.global_ids.tolist() if r.global_ids is not None else g.global_ids) for r, g in zip(rows, gens)]
    wavs: list[np.ndarray] = []
    for i in range(0, len(rows), batch_size):
        tokens = BiCodecTokens.from_lists(globals_[i : i + batch_size],
                                          [g.semantic_ids for g in gens[i : i + batch_size]])
        wavs.extend(pipe.audio_tokenizer.decode(tokens))
    stats["decode_s"] += time.perf_counter() - t
    return wavs


def run_jobs(pipe: Pipeline, jobs: list[Job], cfg: SamplingConfig, *, constrained: bool, legacy_join: bool,
             crossfade_s: float, batch_size: int, progress: bool | None, prompt_s: float, t0: float,
             single: bool = True) -> list[Synthesis]:
    """Generate and decode every job. A text without speech raises for a single-text call; in a list call
    that item's result carries ``error`` (and a warning names it) while the others are returned as usual."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise PromptError(f"batch_size must be an int >= 1, got {batch_size!r}")
    stats = {"prompt_s": prompt_s, "generate_s": 0.0, "decode_s": 0.0}
    n_chunks = sum(len(j.chunks) for j in jobs)
    show = n_chunks > 1 if progress is None else progress
    for j in jobs:
        j.results = [None] * len(j.chunks)
    opts = dict(legacy_join=legacy_join, num_globals=pipe.num_globals)
    rows1 = [job.row(ji, ci, **opts) for ji, job in enumerate(jobs)  # type: ignore[arg-type]
             for ci in range(len(job.chunks)) if not job.needs_created_voice(ci)]
    failed: dict[int, tuple[str, str]] = {}
    with tqdm(total=n_chunks, desc="Synthesising", unit="chunk", disable=not show, leave=False) as bar:
        gens1 = _generate_rows(pipe, rows1, cfg, constrained, batch_size, 0, bar.update, stats, failed)
        if single and failed:
            raise GenerationError(failed[0][0])
        rows2 = [jobs[row.job].row(row.job, ci, created=np.asarray(gen.global_ids, dtype=np.int64),
                                   **opts)  # type: ignore[arg-type]
                 for row, gen in zip(rows1, gens1) if row.mode == "create" and row.job not in failed
                 for ci in range(1, len(jobs[row.job].chunks))]
        n_batches1 = -(-len(rows1) // batch_size)
        gens2 = (_generate_rows(pipe, rows2, cfg, constrained, batch_size, n_batches1, bar.update, stats, failed)
                 if rows2 else [])
    if single and failed:
        raise GenerationError(failed[0][0])
    ok = [(row, gen) for row, gen in zip(rows1 + rows2, gens1 + gens2) if row.job not in failed]
    wavs = _decode_rows(pipe, [r for r, _ in ok], [g for _, g in ok], stats, batch_size)
    for (row, gen), wav in zip(ok, wavs):
        job = jobs[row.job]
        job.results[row.chunk] = row_result(pipe, job, row, gen, wav, cfg.seed)  # type: ignore[arg-type]
    crossfade = int(round(crossfade_s * pipe.sample_rate))
    results = []
    for ji, job in enumerate(jobs):
        if ji in failed:
            reason, finish = failed[ji]
            warnings.warn(f"text item {ji + 1} of {len(jobs)}: {reason}. Its result has no audio (.error says "
                          "why); the other items are unaffected.", SparkTTSWarning, stacklevel=3)
            results.append(_failed_result(pipe, job, reason, finish, cfg.seed))  # type: ignore[arg-type]
        else:
            results.append(join(job, crossfade, pipe.sample_rate))
    total = time.perf_counter() - t0
    audio_total = sum(r.duration for r in results) or float("nan")
    for r in results:
        r.timings = {**stats, "total_s": total, "audio_s": r.duration, "rtf": total / audio_total,
                     "batch_size": float(batch_size), **({"n_tokens": r.timings["n_tokens"]} if r.timings else {})}
    return results
