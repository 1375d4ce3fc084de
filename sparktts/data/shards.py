"""Token shards of a data folder, and reading a data folder back.

A data folder written by ``sparktts prepare``::

    clips.jsonl               one row per accepted clip (id, audio, duration, text, speaker, lang, labels)
    errors.jsonl              one row per skipped clip (id, line, audio, error)
    info.json                 model_dir (the release whose codec made the tokens), token counts
    tokens/shard-NNNNN.safetensors

A shard holds the tokens of one extraction batch as three int tensors, ``global_ids`` (N, G) int32,
``semantic_ids`` (sum of T_i,) int32 (all clips concatenated) and ``offsets`` (N + 1,) int64 (clip i is
``semantic_ids[offsets[i]:offsets[i+1]]``), plus, in the safetensors metadata, the JSON rows of its clips
and of the batch's skipped clips. The shards are the record of what is done: ``clips.jsonl`` and
``errors.jsonl`` are rebuilt from them when a killed run restarts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sparktts.data.manifest import DataError

__all__ = [
    "CLIPS_FILE",
    "ERRORS_FILE",
    "INFO_FILE",
    "SHARD_FORMAT",
    "TokenizedClip",
    "iter_shards",
    "read_clips",
    "read_data_info",
    "read_tokenized",
    "write_shard",
]

CLIPS_FILE = "clips.jsonl"
ERRORS_FILE = "errors.jsonl"
INFO_FILE = "info.json"
TOKENS_DIR = "tokens"
SHARD_FORMAT = "sparktts-tokens/1"


@dataclass
class TokenizedClip:
    """One prepared clip: its ``clips.jsonl`` row and its tokens.

    Attributes:
        row: the clip's row (``id``, ``text``, ``speaker``, ``lang``, ``gender``, ``pitch``, ``speed``,
            ``pitch_value``, ``speed_value``, ...).
        global_ids: (G,) int64 global ids, G = 32 for the release.
        semantic_ids: (T,) int64 semantic ids, 50 per second.
    """

    row: dict[str, Any]
    global_ids: np.ndarray
    semantic_ids: np.ndarray


def shard_path(data_dir: Path, index: int) -> Path:
    """Path of shard number ``index`` of a data folder."""
    return data_dir / TOKENS_DIR / f"shard-{index:05d}.safetensors"


def write_shard(path: Path, rows: Sequence[dict[str, Any]], global_ids: Sequence[Sequence[int]],
                semantic_ids: Sequence[Sequence[int]], errors: Sequence[dict[str, Any]], num_globals: int) -> None:
    """Write one shard atomically: a temp file renamed into place, so a shard on disk is always whole."""
    from safetensors.numpy import save

    from sparktts.fileio import atomic_write

    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(s) for s in semantic_ids])
    flat = [np.asarray(s, dtype=np.int32) for s in semantic_ids]
    tensors = {
        "global_ids": np.asarray(global_ids, dtype=np.int32).reshape(len(rows), num_globals),
        "semantic_ids": np.concatenate(flat) if flat else np.zeros(0, dtype=np.int32),
        "offsets": offsets,
    }
    meta = {"format": SHARD_FORMAT, "clips": json.dumps(list(rows), ensure_ascii=False),
            "errors": json.dumps(list(errors), ensure_ascii=False)}
    with atomic_write(path, "wb") as f:
        f.write(save(tensors, metadata=meta))


def _shard_files(data_dir: Path) -> list[Path]:
    return sorted((data_dir / TOKENS_DIR).glob("shard-*.safetensors"))


def iter_shards(data_dir: str | os.PathLike, with_tokens: bool = True
                ) -> Iterator[tuple[Path, list[dict[str, Any]], list[dict[str, Any]], dict[str, np.ndarray]]]:
    """Yield ``(path, clip rows, error rows, tensors)`` for every shard, in order (tensors empty if not asked)."""
    from safetensors import safe_open

    for path in _shard_files(Path(data_dir)):
        with safe_open(str(path), framework="np") as f:
            meta = f.metadata() or {}
            if meta.get("format") != SHARD_FORMAT:
                raise DataError(f"{path}: not a {SHARD_FORMAT} shard (format {meta.get('format')!r}); "
                                "rerun `sparktts prepare` into a new --out")
            tensors = {k: f.get_tensor(k) for k in f.keys()} if with_tokens else {}
        yield path, json.loads(meta["clips"]), json.loads(meta["errors"]), tensors


def read_data_info(data_dir: str | os.PathLike) -> dict[str, Any]:
    """``info.json`` of a data folder.

    Raises:
        DataError: not a folder written by ``sparktts prepare``.
    """
    path = Path(data_dir).expanduser() / INFO_FILE
    if not path.is_file():
        raise DataError(f"{data_dir}: not a prepared data folder (no {INFO_FILE}); run "
                        "`sparktts prepare MANIFEST --model_dir DIR --out DATA_DIR` first")
    return json.loads(path.read_text())


def read_clips(data_dir: str | os.PathLike):
    """``clips.jsonl`` of a data folder as a pandas DataFrame (one row per clip, for notebooks)."""
    import pandas as pd

    read_data_info(data_dir)
    path = Path(data_dir).expanduser() / CLIPS_FILE
    return pd.read_json(path, lines=True) if path.stat().st_size else pd.DataFrame()


def read_tokenized(data_dir: str | os.PathLike) -> list[TokenizedClip]:
    """Every prepared clip with its tokens, in shard order.

    Raises:
        DataError: not a data folder, or it holds no clips.
    """
    read_data_info(data_dir)
    clips: list[TokenizedClip] = []
    for _path, rows, _errors, t in iter_shards(data_dir):
        off = t["offsets"]
        for i, row in enumerate(rows):
            clips.append(TokenizedClip(row, t["global_ids"][i].astype(np.int64),
                                       t["semantic_ids"][off[i]: off[i + 1]].astype(np.int64)))
    if not clips:
        raise DataError(f"{data_dir}: the data folder holds no clips (see its {ERRORS_FILE})")
    return clips
