"""Finite scalar quantization (FSQ) and its residual stack, as used for the 32 global tokens.

The bound follows the version vendored in Spark-TTS (``tanh(z + shift) * half_l - offset`` with
eps 1e-3), which differs from later vector-quantize-pytorch releases; tokens depend on it.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class FSQ(nn.Module):
    """Quantize each of ``len(levels)`` dims to ``levels[i]`` values; the index is mixed-radix.

    ``forward``: ``(..., d)`` -> (codes in [-1, 1] ``(..., d)``, ids ``(...)`` int64).
    """

    def __init__(self, levels: tuple[int, ...]):
        super().__init__()
        self.register_buffer("_levels", torch.tensor(levels, dtype=torch.int32), persistent=False)
        basis = torch.cumprod(torch.tensor([1, *levels[:-1]]), dim=0).to(torch.int32)
        self.register_buffer("_basis", basis, persistent=False)
        self.codebook_size = math.prod(levels)

    def bound(self, z: Tensor, eps: float = 1e-3) -> Tensor:
        half_l = (self._levels - 1) * (1 + eps) / 2
        offset = torch.where(self._levels % 2 == 0, 0.5, 0.0)
        shift = (offset / half_l).atanh()
        return (z + shift).tanh() * half_l - offset

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        half_width = self._levels // 2
        bounded = self.bound(z.float())
        codes = bounded.round() / half_width
        ids = ((codes * half_width + half_width) * self._basis).sum(dim=-1).to(torch.int32)
        if torch.is_grad_enabled() and z.requires_grad:
            # Straight-through estimator: the forward value is the rounded code, the gradient is that
            # of ``bound``. Only when a gradient is wanted, because ``b + (r - b)`` is not always
            # bit-equal to ``r`` and inference must stay exact.
            soft = bounded / half_width
            codes = soft + (codes - soft).detach()
        return codes.to(z.dtype), ids.long()

    def ids_to_codes(self, ids: Tensor) -> Tensor:
        """``(...)`` int ids -> ``(..., d)`` codes in [-1, 1]."""
        half_width = self._levels // 2
        level_ids = (ids.unsqueeze(-1) // self._basis) % self._levels
        return (level_ids - half_width) / half_width


class ResidualFSQ(nn.Module):
    """Linear in -> ``num_quantizers`` FSQ stages on the residual -> linear out.

    Channel-first like the release: ``forward``: ``(B, dim, N)`` -> (quantized ``(B, dim, N)``,
    ids ``(B, num_quantizers, N)``); ``from_ids``: ``(B, num_quantizers, N)`` -> ``(B, dim, N)``.
    """

    def __init__(self, levels: tuple[int, ...], num_quantizers: int, dim: int):
        super().__init__()
        codebook_dim = len(levels)
        self.project_in: nn.Module = nn.Linear(dim, codebook_dim) if dim != codebook_dim else nn.Identity()
        self.project_out: nn.Module = nn.Linear(codebook_dim, dim) if dim != codebook_dim else nn.Identity()
        self.layers = nn.ModuleList(FSQ(levels) for _ in range(num_quantizers))
        levels_t = torch.tensor(levels, dtype=torch.float32)
        scales = torch.stack([(levels_t - 1) ** -i for i in range(num_quantizers)])
        self.register_buffer("scales", scales, persistent=False)

    @property
    def codebook_size(self) -> int:
        return self.layers[0].codebook_size

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        residual = self.project_in(x.transpose(1, 2))  # (B, N, d)
        quantized = torch.zeros_like(residual)
        all_ids = []
        for layer, scale in zip(self.layers, self.scales):
            codes, ids = layer(residual / scale)
            codes = codes * scale
            residual = residual - codes
            quantized = quantized + codes
            all_ids.append(ids)
        out = self.project_out(quantized).transpose(1, 2)
        return out, torch.stack(all_ids, dim=1)

    def from_ids(self, ids: Tensor) -> Tensor:
        codes = sum(layer.ids_to_codes(ids[:, q]) * self.scales[q] for q, layer in enumerate(self.layers))
        return self.project_out(codes).transpose(1, 2)
