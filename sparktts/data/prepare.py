"""``sparktts prepare MANIFEST --model_dir DIR --out DATA_DIR``: clips -> BiCodec tokens + attribute labels.

Clips are read, tokenized in batches with the release's audio tokenizer (:class:`BiCodecTokenizer`) and
written one shard per batch (see :mod:`sparktts.data.shards` for the folder layout). A clip that cannot be
read or tokenized is recorded in ``errors.jsonl`` and skipped; it never stops the run.

**Resuming.** A shard is written to a temp file and renamed, and a clip counts as done only once its
shard is on disk; ``clips.jsonl`` / ``errors.jsonl`` are rebuilt from the shards at start. Rerunning the
same command after a kill therefore continues where the last whole shard ended and yields every clip
exactly once.

**Labels** (for voice creation) are measured with the eval module's own code,
:func:`sparktts.eval.control.measure_attributes` (volume normalisation, end-silence trim, mean F0 -> mel,
gender-specific pitch boundaries, syllables per second with language-specific speed boundaries; see
``control_levels.md``). A label given in the manifest wins over the measured one; the measured values are
kept next to it. ``pitch_value`` / ``speed_value`` are what the released model writes as
``<|pitch_value_N|>`` / ``<|speed_value_N|>``: int(mel) clipped to [0, 1000] and int(round(sps, 1))
clipped to [0, 10], as the SparkAudio data preparation computes them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sparktts.data.manifest import DataError, ManifestEntry, read_manifest
from sparktts.data.shards import (
    CLIPS_FILE,
    ERRORS_FILE,
    INFO_FILE,
    iter_shards,
    read_clips,
    shard_path,
    write_shard,
)
from sparktts.fileio import atomic_write, check_writable_dir
from sparktts.format.tokens import PITCH_VALUE_MAX, SPEED_VALUE_MAX

__all__ = ["PrepareReport", "add_arguments", "clip_labels", "prepare", "run"]

_SPEED_LANGS = ("en", "zh")


@dataclass
class PrepareReport:
    """What a ``prepare`` call did.

    Attributes:
        out: the data folder.
        total: clips in the manifest.
        done_before: clips (accepted or skipped) already done by an earlier, interrupted run.
        accepted: clips in ``clips.jsonl`` now (all runs).
        errors: clips in ``errors.jsonl`` now (all runs).
        new: clips processed by this call.
        seconds: wall time of this call.
    """

    out: Path
    total: int
    done_before: int
    accepted: int
    errors: int
    new: int
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)

    def clips(self):
        """``clips.jsonl`` as a pandas DataFrame."""
        return read_clips(self.out)

    def error_rows(self):
        """``errors.jsonl`` as a pandas DataFrame."""
        import pandas as pd

        path = self.out / ERRORS_FILE
        return pd.read_json(path, lines=True) if path.is_file() and path.stat().st_size else pd.DataFrame()

    def __str__(self) -> str:
        return (f"{self.out}: {self.accepted} clips, {self.errors} skipped (see {ERRORS_FILE}); "
                f"{self.new} processed now, {self.done_before} were done before")


def _speed_lang(lang: str) -> str | None:
    key = lang.strip().lower().replace("_", "-").split("-")[0]
    key = {"cmn": "zh", "chi": "zh", "zho": "zh", "eng": "en"}.get(key, key)
    return key if key in _SPEED_LANGS else None


def clip_labels(wav: np.ndarray, entry: ManifestEntry, f0_method: str = "pyin") -> dict[str, Any]:
    """Gender / pitch / speed labels and measured values of one 16 kHz clip (``clips.jsonl`` fields).

    Manifest labels win; measured ones fill the gaps. Values measured before (the manifest's ``pitch_mel``
    and ``speed_sps``) are taken as they are, and the audio is not measured again. When the clip has no
    voiced frame the measured fields are None and ``labels_error`` says why (the clip still serves voice cloning).
    """
    from sparktts.eval.control import attribute_levels, measure_attributes
    from sparktts.eval.errors import EvalError

    lang = _speed_lang(entry.lang)
    out: dict[str, Any] = {"gender": entry.gender, "pitch": entry.pitch, "speed": entry.speed,
                           "gender_source": "manifest" if entry.gender else None, "gender_measured": None,
                           "f0_hz": None, "pitch_mel": None, "syllables": None, "speech_duration": None,
                           "speed_sps": None, "pitch_value": None, "speed_value": None, "labels_error": None,
                           "measured_source": None}
    if entry.pitch_mel is not None and entry.speed_sps is not None:
        # Measured already (with this code, on this file): levels from the values by the eval's rule.
        mel, sps = entry.pitch_mel, entry.speed_sps
        measured_gender, *levels = attribute_levels(mel, sps, lang, entry.gender)
        out.update(gender_measured=measured_gender, pitch_mel=round(mel, 3), speed_sps=round(sps, 4),
                   measured_source="manifest")
    else:
        try:
            # Speed boundaries exist for en / zh only; other languages are measured with the en counter and
            # get no measured speed level.
            att = measure_attributes(wav, entry.text, 16000, lang=lang or "en", gender=entry.gender,
                                     f0_method=f0_method)
        except EvalError as exc:
            out["labels_error"] = str(exc)
            return out
        mel, sps, measured_gender = att.pitch_mel, att.speed_sps, att.gender
        out.update(measured_source="audio", gender_measured=att.gender, f0_hz=round(att.f0_mean_hz, 3),
                   pitch_mel=round(mel, 3), syllables=att.syllables, speech_duration=round(att.duration_s, 4),
                   speed_sps=round(sps, 4))
        levels = (att.pitch_level, att.speed_level)
    if entry.gender is None:
        out["gender"], out["gender_source"] = measured_gender, "measured"
    if entry.pitch is None:
        out["pitch"] = levels[0]
    if entry.speed is None and lang is not None:
        out["speed"] = levels[1]
    out["pitch_value"] = min(PITCH_VALUE_MAX, max(0, int(mel)))
    out["speed_value"] = min(SPEED_VALUE_MAX, max(0, int(round(sps, 1))))
    return out


def _check_writable(out: Path) -> None:
    try:
        check_writable_dir(out)
    except OSError as exc:
        raise DataError(f"{out}: cannot write the data folder there ({exc.strerror}); choose a writable --out") from exc


def _write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    with atomic_write(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def _append_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    with path.open("a", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def _error_row(entry: ManifestEntry, stage: str, exc: BaseException) -> dict[str, Any]:
    return {"id": entry.id, "line": entry.line, "audio": entry.audio, "stage": stage,
            "error": f"{type(exc).__name__}: {exc}"}


def prepare(manifest: str | os.PathLike, model_dir: str | os.PathLike, out: str | os.PathLike,
            batch_size: int = 8, device: Any = None, labels: bool = True, f0_method: str = "pyin",
            progress: bool | None = None) -> PrepareReport:
    """Tokenize every clip of ``manifest`` with the audio tokenizer of ``model_dir`` into the folder ``out``.

    Args:
        manifest: JSONL with ``audio``, ``text`` and optional ``speaker``, ``lang``, ``gender``, ``pitch``,
            ``speed``, ``id`` (see :mod:`sparktts.data.manifest`).
        model_dir: release directory (``config.yaml``, ``BiCodec/``, ``wav2vec2-large-xlsr-53/``).
        out: data folder; rerunning into the same folder resumes.
        batch_size: clips per tokenizer batch (and per shard).
        device: tokenizer device (None: first GPU, else CPU).
        labels: measure gender / pitch / speed (False skips it: cloning-only data).
        f0_method: "pyin" (librosa) or "pyworld" (as VoxBox), see :func:`sparktts.eval.control.mean_f0`.
        progress: show a progress bar (default: yes).

    Returns:
        A :class:`PrepareReport`; ``report.clips()`` is ``clips.jsonl`` as a DataFrame.

    Raises:
        DataError: a malformed manifest line (named by its number), an unwritable ``out``, or a data folder
            made with another codec.
    """
    from tqdm.auto import tqdm

    from sparktts.codec.tokenizer import BiCodecTokenizer

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise DataError(f"batch_size must be an int >= 1, got {batch_size!r}")
    t0 = time.perf_counter()
    entries = read_manifest(manifest)
    out = Path(out).expanduser()
    _check_writable(out)
    tokenizer = BiCodecTokenizer(model_dir, device=device)
    info_path = out / INFO_FILE
    model_dir_abs = str(Path(tokenizer.model_dir).resolve())
    if info_path.is_file():
        old = json.loads(info_path.read_text())
        if old.get("model_dir") != model_dir_abs:
            raise DataError(f"{out}: was prepared with the codec of {old.get('model_dir')}, not {model_dir_abs}; "
                            "tokens of two codecs cannot be mixed. Use the same --model_dir or a new --out")

    # The shards are the record: rebuild the row files from them (a kill may have come between a shard's
    # rename and the append of its rows).
    rows: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    next_shard = 0
    for path, r, e, _t in iter_shards(out, with_tokens=False):
        rows += r
        errors += e
        next_shard = int(path.stem.split("-")[1]) + 1
    _write_jsonl(out / CLIPS_FILE, rows)
    _write_jsonl(out / ERRORS_FILE, errors)
    done = {r["id"] for r in rows} | {e["id"] for e in errors}
    todo = [e for e in entries if e.id not in done]
    done_before = len(entries) - len(todo)
    num_globals = tokenizer.model.config.speaker_encoder.token_num

    bar = tqdm(total=len(entries), initial=done_before, desc="Preparing", unit="clip",
               disable=progress is False)
    for start in range(0, len(todo), batch_size):
        batch = todo[start: start + batch_size]
        b_rows, b_glob, b_sem, b_err = _process_batch(tokenizer, batch, labels, f0_method)
        write_shard(shard_path(out, next_shard), b_rows, b_glob, b_sem, b_err, num_globals)
        next_shard += 1
        _append_jsonl(out / CLIPS_FILE, b_rows)
        _append_jsonl(out / ERRORS_FILE, b_err)
        rows += b_rows
        errors += b_err
        bar.update(len(batch))
    bar.close()

    info = {
        "model_dir": model_dir_abs,
        "manifest": str(Path(manifest).expanduser().resolve()),
        "sample_rate": tokenizer.sample_rate,
        "num_globals": num_globals,
        "semantic_codebook_size": tokenizer.model.quantizer.codebook_size,
        "global_codebook_size": tokenizer.model.speaker_encoder.quantizer.codebook_size,
        "clips": len(rows),
        "errors": len(errors),
        "semantic_tokens": int(sum(r["num_semantic"] for r in rows)),
        "global_tokens": len(rows) * num_globals,
        "hours": round(sum(r["duration"] for r in rows) / 3600.0, 4),
        "labels": labels,
    }
    with atomic_write(info_path, "w") as f:
        f.write(json.dumps(info, indent=2))
    return PrepareReport(out, len(entries), done_before, len(rows), len(errors), len(todo),
                         round(time.perf_counter() - t0, 3), info)


def _process_batch(tokenizer: Any, batch: Sequence[ManifestEntry], labels: bool, f0_method: str
                   ) -> tuple[list[dict[str, Any]], list[list[int]], list[list[int]], list[dict[str, Any]]]:
    """Read, tokenize and label one batch; bad clips become error rows instead of exceptions."""
    ok: list[tuple[ManifestEntry, np.ndarray]] = []
    errors: list[dict[str, Any]] = []
    for entry in batch:
        try:
            ok.append((entry, tokenizer.load(entry.audio)))
        except Exception as exc:  # any unreadable / empty / corrupt file is one skipped clip, never fatal
            errors.append(_error_row(entry, "read", exc))
    tokens: list[tuple[list[int], list[int]] | None] = []
    try:
        enc = tokenizer.encode_prepared([w for _, w in ok]) if ok else None
        tokens = [(enc[i].global_ids[0].tolist(), enc[i].semantic_ids[0].tolist()) for i in range(len(ok))]
    except Exception:
        # One clip broke the batch: encode one by one so only that clip is skipped.
        tokens = []
        for entry, wav in ok:
            try:
                one = tokenizer.encode_prepared([wav])
                tokens.append((one.global_ids[0].tolist(), one.semantic_ids[0].tolist()))
            except Exception as exc:
                errors.append(_error_row(entry, "tokenize", exc))
                tokens.append(None)
    rows, glob, sem = [], [], []
    sr = tokenizer.sample_rate
    for (entry, wav), tok in zip(ok, tokens):
        if tok is None:
            continue
        row: dict[str, Any] = {"id": entry.id, "audio": entry.audio, "duration": round(len(wav) / sr, 4),
                               "text": entry.text, "speaker": entry.speaker, "lang": entry.lang,
                               "num_semantic": len(tok[1]), "line": entry.line}
        if labels:
            row.update(clip_labels(wav, entry, f0_method))
        else:
            row.update(gender=entry.gender, pitch=entry.pitch, speed=entry.speed)
        rows.append(_finite(row))
        glob.append(tok[0])
        sem.append(tok[1])
    return rows, glob, sem, errors


def _finite(row: dict[str, Any]) -> dict[str, Any]:
    # JSON has no NaN; a measurement that produced one is recorded as missing.
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``sparktts prepare`` beyond ``manifest``, ``--model_dir`` and ``--out``."""
    p.add_argument("--batch_size", "--batch-size", type=int, default=8, help="Clips per tokenizer batch / shard")
    p.add_argument("--device", default=None, help="Tokenizer device (default: first GPU, else cpu)")
    p.add_argument("--no_labels", "--no-labels", action="store_true",
                   help="Skip gender/pitch/speed measurement (data for voice cloning only)")
    p.add_argument("--f0_method", "--f0-method", choices=("pyin", "pyworld"), default="pyin",
                   help="F0 tracker for the pitch labels (pyworld is what VoxBox used)")
    p.add_argument("--no_progress", "--no-progress", action="store_true", help="Hide the progress bar")


def run(args: argparse.Namespace) -> str:
    """``sparktts prepare``: prepare, print the report line."""
    report = prepare(args.manifest, args.model_dir, args.out, batch_size=args.batch_size, device=args.device,
                     labels=not args.no_labels, f0_method=args.f0_method,
                     progress=False if args.no_progress else None)
    return str(report)
