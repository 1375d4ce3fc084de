"""Training segments for the codec: random 2.4 s crops with a 6 s reference from the same utterance.

``--data`` is a manifest JSONL (``{"audio": path, "text", "speaker", "lang"}`` per line, relative
paths resolved against the manifest's folder) or a data folder written by ``sparktts prepare`` (its
``clips.jsonl``). Every sample is drawn from its global index alone (``rng = default_rng([seed,
index])``), so a resumed run sees exactly the batches an uninterrupted run would, on any number of
processes. A clip that cannot be read is recorded in ``RUN_DIR/skipped.jsonl`` and skipped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ...audio import load_audio, reference_clip
from ..run import TrainingError
from .config import DataConfig

SKIPPED_FILE = "skipped.jsonl"
MANIFEST_IN_DATA_DIR = "clips.jsonl"
MAX_RETRIES = 50


def manifest_path(data: str | os.PathLike) -> Path:
    """The JSONL to read for ``--data``: the file itself, or ``DATA_DIR/clips.jsonl``."""
    path = Path(data).expanduser()
    if path.is_dir():
        path = path / MANIFEST_IN_DATA_DIR
        if not path.is_file():
            raise TrainingError(f"{path.parent}: no {MANIFEST_IN_DATA_DIR}. Pass a manifest JSONL as --data, or "
                                f"a folder written by `sparktts prepare`.")
    elif not path.is_file():
        raise TrainingError(f"{path}: --data not found. Pass a manifest JSONL or a prepared data folder.")
    return path


class SkipLog:
    """Appends ``{"audio", "error"}`` lines to ``skipped.jsonl``; ``path=None`` (other ranks) records nothing."""

    def __init__(self, path: Path | None):
        self.path = path
        self.seen: set[str] = set()

    def record(self, audio: str, error: str) -> None:
        if self.path is None or audio in self.seen:
            return
        self.seen.add(audio)
        with self.path.open("a") as f:
            f.write(json.dumps({"audio": audio, "error": error}) + "\n")


def read_clips(data: str | os.PathLike, skipped: SkipLog) -> list[str]:
    """Audio paths of the manifest whose file header can be read; the others are recorded and skipped."""
    import soundfile

    path = manifest_path(data)
    clips: list[str] = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            audio = Path(item["audio"]).expanduser()
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            skipped.record(f"{path}:{n}", f"bad manifest line ({type(exc).__name__}: {exc}); expected "
                                          f'{{"audio": PATH, ...}}')
            continue
        audio = audio if audio.is_absolute() else path.parent / audio
        try:
            soundfile.info(str(audio))
        except Exception as exc:  # missing file, not audio, unsupported format
            skipped.record(str(audio), f"{type(exc).__name__}: {exc}")
            continue
        clips.append(str(audio))
    if not clips:
        raise TrainingError(f"{path}: no readable audio clips (see {SKIPPED_FILE} in the run directory).")
    return clips


def load_training_clip(path: str, cfg: DataConfig) -> np.ndarray:
    """(N,) float32 at 16 kHz: one clip as training reads it (and validation scores it)."""
    return load_audio(path, volume_normalize_audio=cfg.volume_normalize, min_samples=400)


def frames(seconds: float, hop: int, sample_rate: int) -> int:
    """Samples in ``seconds``, rounded down to whole hops (at least one)."""
    return max(1, int(seconds * sample_rate) // hop) * hop


class SegmentDataset(Dataset):
    """Index ``i`` -> ``{"wav": (segment,), "ref_wav": (ref,)}`` float32 at 16 kHz, drawn from ``i`` alone.

    A segment longer than its clip is zero-padded at the end; the reference is a random ``ref``-sample
    crop, or the whole clip tiled when the clip is shorter (as the inference tokenizer does).
    """

    def __init__(self, clips: list[str], cfg: DataConfig, seed: int, hop: int, skipped: SkipLog,
                 sample_rate: int = 16000):
        self.clips = clips
        self.cfg = cfg
        self.seed = seed
        self.skipped = skipped
        self.sample_rate = sample_rate
        self.segment = frames(cfg.segment_seconds, hop, sample_rate)
        self.ref = frames(cfg.ref_seconds, hop, sample_rate)

    def __len__(self) -> int:
        return 2**62  # indices are drawn by the sampler, not enumerated

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, int(index)])
        for _ in range(MAX_RETRIES):
            path = self.clips[int(rng.integers(len(self.clips)))]
            try:
                wav = load_training_clip(path, self.cfg)
            except Exception as exc:  # corrupt data past the header, silence, too short
                self.skipped.record(path, f"{type(exc).__name__}: {exc}")
                continue
            return {"wav": torch.from_numpy(self._crop(wav, self.segment, rng, pad=True)),
                    "ref_wav": torch.from_numpy(self._crop(wav, self.ref, rng, pad=False))}
        raise TrainingError(f"{MAX_RETRIES} clips in a row could not be loaded; see {SKIPPED_FILE} in the run "
                            f"directory and fix the data.")

    @staticmethod
    def _crop(wav: np.ndarray, length: int, rng: np.random.Generator, pad: bool) -> np.ndarray:
        if wav.shape[0] >= length:
            start = int(rng.integers(wav.shape[0] - length + 1))
            return np.ascontiguousarray(wav[start: start + length])
        if pad:
            return np.pad(wav, (0, length - wav.shape[0]))
        return np.ascontiguousarray(reference_clip(wav, length))


class StepSampler(Sampler[int]):
    """Global sample indices for this process from optimiser step ``start_step`` on.

    Index of sample ``i`` of micro-batch ``m`` of step ``s`` on rank ``r``:
    ``((s * accum + m) * world + r) * batch + i`` -- every sample of the global batch is distinct and
    the stream depends only on the step, so resuming at step ``s`` continues it exactly.
    """

    def __init__(self, start_step: int, batch: int, accum: int, world: int, rank: int):
        self.start, self.batch, self.accum, self.world, self.rank = start_step, batch, accum, world, rank

    def __iter__(self) -> Iterator[int]:
        micro = self.start * self.accum
        while True:
            base = (micro * self.world + self.rank) * self.batch
            yield from range(base, base + self.batch)
            micro += 1

    def __len__(self) -> int:
        return 2**62


def make_loader(cfg: Any, data: str | os.PathLike, run_dir: Path, start_step: int, acc: Any) -> DataLoader:
    """The batches of a codec run (``cfg``: its ``CodecTrainConfig``) from optimiser step ``start_step`` on,
    this process's share; unreadable clips go to ``run_dir/skipped.jsonl`` (main process only)."""
    skipped = SkipLog(run_dir / SKIPPED_FILE if acc.is_main_process else None)
    dataset = SegmentDataset(read_clips(data, skipped), cfg.data, cfg.seed, cfg.bicodec().hop_length, skipped)
    sampler = StepSampler(start_step, cfg.data.batch_size, cfg.grad_accum_steps, acc.num_processes,
                          acc.process_index)
    return DataLoader(dataset, batch_size=cfg.data.batch_size, sampler=sampler,
                      num_workers=cfg.data.num_workers, drop_last=True)
