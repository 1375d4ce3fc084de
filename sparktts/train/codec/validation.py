"""Held-out validation of a codec run: the training mel loss on whole clips, reconstructed as at inference.

Training batches are random 1.28-2.4 s crops whose loss moves between batches by more than a late run
changes it; the validation is the same clips every time, whole, each with the speaker reference the
inference tokenizer takes (the first ``ref_seconds`` of the clip, tiled when shorter), through the
model in eval mode. Used by the trainer (``sparktts train codec --val-data HELDOUT``: ``validation.csv``
and TensorBoard's ``validation`` run, under the training loss's name ``mel``) and by
``data/builtin/heldout_mel.py`` on any checkpoint.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ...audio import reference_clip
from ...errors import ConfigError
from ..run import TrainingError
from .config import CodecTrainConfig
from .data import SkipLog, frames, load_training_clip, read_clips
from .losses import MultiResolutionMelLoss
from .model import CodecTrainModel

__all__ = ["ValidationClip", "eval_mode", "heldout_mel_sums", "load_validation_clips"]

DEFAULT_CLIPS = 20


@dataclass(frozen=True)
class ValidationClip:
    """One held-out clip: ``wav`` (N,) float32 cut to whole hops, ``ref`` (R,) its speaker reference."""

    audio: str
    wav: Tensor
    ref: Tensor


def load_validation_clips(data: str | os.PathLike, cfg: CodecTrainConfig, limit: int | None = DEFAULT_CLIPS
                          ) -> list[ValidationClip]:
    """Up to ``limit`` clips of a manifest (or ``sparktts prepare`` folder), spread evenly over it (a list
    sorted by voice or level is sampled across), loaded as the training data is (volume normalisation).

    Unreadable clips are skipped: validation must not stop a run that trains; a list with none readable
    is refused.
    """
    if limit is not None and limit < 1:
        raise ConfigError(f"val_clips must be >= 1 (or None: all), got {limit}")
    paths = read_clips(data, SkipLog(None))
    if limit is not None and len(paths) > limit:
        paths = [paths[int(i)] for i in np.linspace(0, len(paths) - 1, limit).round()]
    hop = cfg.bicodec().hop_length
    ref_len = frames(cfg.data.ref_seconds, hop, 16000)
    clips = []
    for path in paths:
        try:
            wav = load_training_clip(path, cfg.data)
        except Exception:  # noqa: BLE001 - as the training data loader: a bad clip is skipped
            continue
        wav = wav[: max(hop, len(wav) // hop * hop)]
        clips.append(ValidationClip(path, torch.from_numpy(np.ascontiguousarray(wav)),
                                    torch.from_numpy(np.ascontiguousarray(reference_clip(wav, ref_len)))))
    if not clips:
        raise TrainingError(f"{data}: none of its clips could be read as validation data; fix the list or "
                            f"drop --val-data")
    return clips


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """Every submodule in eval mode, each restored to its own mode afterwards (frozen parts of a training
    model stay in eval mode while the rest trains, so ``module.train()`` would not restore them)."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


@torch.no_grad()
def heldout_mel_sums(model: CodecTrainModel, clips: Sequence[ValidationClip], mel_loss: MultiResolutionMelLoss,
                     frozen: nn.Module | None = None, device: Any = "cpu",
                     rank: int = 0, world: int = 1, autocast: Any = contextlib.nullcontext) -> Tensor:
    """(2,) float64: the summed mel loss of this rank's share of ``clips`` and how many it scored.

    ``model``: the training model (not DDP-wrapped); ``frozen``: the run's frozen wav2vec2 stage (None
    when it trains with the codec and ``model.features`` holds it).
    """
    sums = torch.zeros(2, dtype=torch.float64, device=device)
    with eval_mode(model):
        for clip in clips[rank::world]:
            wav, ref = clip.wav.to(device)[None], clip.ref.to(device)[None]
            with autocast():
                feats = None if frozen is None else frozen(frozen.aligned_input(wav))
                out = model(wav, ref, feats=feats)
            sums[0] += mel_loss(out.wav.float(), wav[:, None, : out.wav.shape[-1]]).double()
            sums[1] += 1
    return sums
