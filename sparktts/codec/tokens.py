"""The codec's token container, and its small JSON/NPZ file format."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import TokenError
from ..fileio import atomic_write

TOKENS_FORMAT_VERSION = 1


@dataclass
class BiCodecTokens:
    """Tokens of a batch of clips.

    global_ids : (B, G) int64, G = 32 for the release: the speaker/global tokens, FSQ ids in [0, 4096).
    semantic_ids : (B, N) int64, 50 per second: factorized-VQ ids in [0, 8192); right-padded with 0
        when clips differ in length (see ``lengths``).
    lengths : (B,) int64 number of valid semantic tokens per row, or None when all rows are full.
    """

    global_ids: Tensor
    semantic_ids: Tensor
    lengths: Tensor | None = None

    def __post_init__(self) -> None:
        if self.global_ids.dim() == 3:  # (B, 1, G) as BiCodec.tokenize returns it in the original
            self.global_ids = self.global_ids.squeeze(1)
        if self.global_ids.dim() == 1:
            self.global_ids = self.global_ids.unsqueeze(0)
        if self.semantic_ids.dim() == 1:
            self.semantic_ids = self.semantic_ids.unsqueeze(0)
        if self.global_ids.shape[0] != self.semantic_ids.shape[0]:
            raise TokenError(
                f"batch sizes differ: global_ids {tuple(self.global_ids.shape)}, "
                f"semantic_ids {tuple(self.semantic_ids.shape)}"
            )

    def __len__(self) -> int:
        return self.global_ids.shape[0]

    def __getitem__(self, i: int) -> BiCodecTokens:
        """Row ``i`` as a batch of one, trimmed to its length."""
        n = int(self.lengths[i]) if self.lengths is not None else self.semantic_ids.shape[1]
        return BiCodecTokens(self.global_ids[i: i + 1], self.semantic_ids[i: i + 1, :n])

    def to(self, device: torch.device | str) -> BiCodecTokens:
        lengths = None if self.lengths is None else self.lengths.to(device)
        return BiCodecTokens(self.global_ids.to(device), self.semantic_ids.to(device), lengths)

    @property
    def num_semantic(self) -> list[int]:
        if self.lengths is None:
            return [self.semantic_ids.shape[1]] * len(self)
        return [int(n) for n in self.lengths]

    def save(self, path: str | Path) -> Path:
        """Save as JSON (``{"format_version", "global_ids", "semantic_ids"}``; lists per row)."""
        path = Path(path)
        rows = [self[i] for i in range(len(self))]
        data = {
            "format_version": TOKENS_FORMAT_VERSION,
            "global_ids": [r.global_ids[0].tolist() for r in rows],
            "semantic_ids": [r.semantic_ids[0].tolist() for r in rows],
        }
        with atomic_write(path, "w") as fh:  # never a half-written file under the final name
            fh.write(json.dumps(data))
        return path

    @classmethod
    def load(cls, path: str | Path) -> BiCodecTokens:
        data = json.loads(Path(path).read_text())
        version = data.get("format_version")
        if version != TOKENS_FORMAT_VERSION:
            raise TokenError(f"{path}: tokens format_version {version!r}; this sparktts reads "
                             f"version {TOKENS_FORMAT_VERSION}.")
        return cls.from_lists(data["global_ids"], data["semantic_ids"])

    @classmethod
    def from_lists(cls, global_ids: list[list[int]], semantic_ids: list[list[int]]) -> BiCodecTokens:
        """Build a (padded) batch from per-clip id lists."""
        lengths = [len(s) for s in semantic_ids]
        sem = np.zeros((len(semantic_ids), max(lengths)), dtype=np.int64)
        for i, s in enumerate(semantic_ids):
            sem[i, : len(s)] = s
        ragged = len(set(lengths)) > 1
        return cls(torch.tensor(np.asarray(global_ids, dtype=np.int64)), torch.from_numpy(sem),
                   torch.tensor(lengths) if ragged else None)
