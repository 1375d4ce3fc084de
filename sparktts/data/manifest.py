"""The manifest JSONL that ``sparktts prepare`` reads: one clip per line.

Each line is a JSON object::

    {"audio": "wavs/a.wav", "text": "Hello there.", "speaker": "spk1", "lang": "en",
     "gender": "female", "pitch": "moderate", "speed": "high", "id": "a"}

``audio`` and ``text`` are required; ``audio`` is relative to the manifest's folder unless absolute.
``speaker`` defaults to ``"unknown"``, ``lang`` to the language detected from the text ("zh" when it has a
Han character, else "en"). ``gender`` / ``pitch`` / ``speed`` are optional labels; a missing one is
measured from the audio. ``pitch_mel`` and ``speed_sps`` (optional, together) are values already
measured on the file with the eval's code (``data/corpus/make_corpus.py`` writes them): ``prepare``
then uses them instead of measuring again (pyin takes ~1 s a clip). ``id`` defaults to a stable hash
of the audio path and the text, so a rerun over the same manifest finds the clips it has already done.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from sparktts.errors import SparkTTSError
from sparktts.format.tokens import GENDER_MAP, LEVELS_MAP

__all__ = ["DataError", "ManifestEntry", "read_manifest"]

_GENDER_ALIASES = {"f": "female", "female": "female", "m": "male", "male": "male"}


class DataError(SparkTTSError, ValueError):
    """Bad training data: a malformed manifest line, an unusable data folder."""


@dataclass(frozen=True)
class ManifestEntry:
    """One checked manifest line.

    Attributes:
        line: 1-based line number in the manifest (for messages).
        id: the clip id (manifest ``id`` or a hash of audio path + text).
        audio: absolute audio path.
        gender / pitch / speed: labels given in the manifest (normalised), or None to measure them.
        pitch_mel / speed_sps: measured values given in the manifest (both or neither), or None.
    """

    line: int
    id: str
    audio: str
    text: str
    speaker: str
    lang: str
    gender: str | None = None
    pitch: str | None = None
    speed: str | None = None
    pitch_mel: float | None = None
    speed_sps: float | None = None


def _label(value: object, allowed: dict[str, int], name: str, where: str) -> str | None:
    if value is None or value == "":
        return None
    key = str(value).strip().lower()
    if name == "gender":
        key = _GENDER_ALIASES.get(key, key)
    if key not in allowed:
        raise DataError(f"{where}: {name} {value!r} is not one of {', '.join(allowed)}; fix the label or drop "
                        f"the field to have it measured from the audio")
    return key


def read_manifest(path: str | os.PathLike) -> list[ManifestEntry]:
    """Read and check a manifest; blank lines are skipped.

    Raises:
        DataError: the file is missing, a line is not a JSON object, lacks ``audio`` or ``text`` (the
            message names the line number), holds an unknown label, or repeats an id.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"{path}: manifest not found; pass a JSONL file with one clip per line")
    base = path.resolve().parent
    entries: list[ManifestEntry] = []
    seen: dict[str, int] = {}
    from sparktts.eval.normalize import detect_language

    with path.open(encoding="utf-8") as f:
        for n, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            where = f"{path} line {n}"
            try:
                row = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise DataError(f"{where}: not valid JSON ({exc.msg}); each line must be one JSON object") from None
            if not isinstance(row, dict):
                raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
            for key in ("audio", "text"):
                if not isinstance(row.get(key), str) or not row[key].strip():
                    raise DataError(f"{where}: no {key!r} field (or it is empty); every line needs \"audio\" "
                                    f"(a path) and \"text\" (its transcript)")
            audio = Path(row["audio"]).expanduser()
            audio = audio if audio.is_absolute() else base / audio
            text = row["text"].strip()
            clip_id = str(row.get("id") or _default_id(str(audio), text))
            if clip_id in seen:
                raise DataError(f"{where}: clip id {clip_id!r} already used on line {seen[clip_id]}; give each "
                                f"line a unique \"id\" (or remove the duplicate line)")
            seen[clip_id] = n
            entries.append(ManifestEntry(
                line=n, id=clip_id, audio=str(audio), text=text,
                speaker=str(row.get("speaker") or "unknown"),
                lang=str(row.get("lang") or detect_language(text)),
                gender=_label(row.get("gender"), GENDER_MAP, "gender", where),
                pitch=_label(row.get("pitch"), LEVELS_MAP, "pitch", where),
                speed=_label(row.get("speed"), LEVELS_MAP, "speed", where),
                **_measured(row, where),
            ))
    if not entries:
        raise DataError(f"{path}: the manifest holds no clips")
    return entries


def _measured(row: dict, where: str) -> dict[str, float]:
    given = {k: row[k] for k in ("pitch_mel", "speed_sps") if row.get(k) is not None}
    if not given:
        return {}
    if len(given) == 1:
        raise DataError(f"{where}: {next(iter(given))!r} without {({'pitch_mel', 'speed_sps'} - set(given)).pop()!r}; "
                        f"give both measured values or neither (then they are measured)")
    for key, value in given.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise DataError(f"{where}: {key} must be a finite number >= 0, got {value!r}")
    return {k: float(v) for k, v in given.items()}


def _default_id(audio: str, text: str) -> str:
    digest = hashlib.sha1(f"{audio}\n{text}".encode()).hexdigest()[:10]
    return f"{Path(audio).stem}-{digest}"
