"""Small building blocks shared by the BiCodec modules.

Weight norm: the released checkpoint stores some convolutions as ``weight_g`` / ``weight_v`` pairs
(legacy ``torch.nn.utils.weight_norm``, dim 0). Here those layers are plain convolutions; the pairs
are folded into ``weight = g * v / ||v||`` when the checkpoint is loaded, so inference pays nothing.
The ``WN*`` subclasses only mark which layers are stored that way on disk.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class WNConv1d(nn.Conv1d):
    """A ``Conv1d`` whose weight is stored weight-normalised (``weight_g``/``weight_v``) on disk."""


class WNConvTranspose1d(nn.ConvTranspose1d):
    """A ``ConvTranspose1d`` whose weight is stored weight-normalised on disk."""


WEIGHT_NORM_TYPES = (WNConv1d, WNConvTranspose1d)


def fold_weight_norm(g: Tensor, v: Tensor) -> Tensor:
    """``g * v / ||v||`` with the norm over every dim but 0, as ``torch._weight_norm(v, g, 0)``."""
    return torch._weight_norm(v, g, 0)


def split_weight_norm(weight: Tensor) -> tuple[Tensor, Tensor]:
    """Inverse of :func:`fold_weight_norm`: ``(g, v)`` with ``v = weight`` and ``g = ||weight||``."""
    dims = tuple(range(1, weight.dim()))
    g = torch.linalg.vector_norm(weight, dim=dims, keepdim=True)
    return g, weight.clone()


def snake(x: Tensor, alpha: Tensor) -> Tensor:
    """Snake activation ``x + sin(alpha x)^2 / alpha`` (the 1e-9 keeps alpha = 0 finite, as in DAC).

    At inference it runs in place on one temporary: the same operations in the same order (so the same
    bits) with half the memory traffic, which matters on the generator's long, wide activations.
    """
    inv_alpha = (alpha + 1e-9).reciprocal()
    if torch.is_grad_enabled() and (x.requires_grad or alpha.requires_grad):
        return x + inv_alpha * torch.sin(alpha * x).pow(2)
    return torch.sin(alpha * x).square_().mul_(inv_alpha).add_(x)


class Snake1d(nn.Module):
    """Per-channel Snake activation on ``(B, C, T)``."""

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        return snake(x, self.alpha)


class ResidualUnit(nn.Module):
    """DAC residual unit: Snake -> dilated conv(7) -> Snake -> conv(1), plus the input. ``(B, C, T)``."""

    def __init__(self, dim: int, dilation: int = 1):
        super().__init__()
        pad = ((7 - 1) * dilation) // 2
        self.block = nn.Sequential(
            Snake1d(dim),
            WNConv1d(dim, dim, kernel_size=7, dilation=dilation, padding=pad),
            Snake1d(dim),
            WNConv1d(dim, dim, kernel_size=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)
