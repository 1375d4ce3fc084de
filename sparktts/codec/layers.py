"""Small building blocks shared by the BiCodec modules.

Weight norm: the released checkpoint stores some convolutions as ``weight_g`` / ``weight_v`` pairs
(legacy ``torch.nn.utils.weight_norm``, dim 0). For inference those layers are plain convolutions;
the pairs are folded into ``weight = g * v / ||v||`` when the checkpoint is loaded, so inference pays
nothing. The ``WN*`` subclasses mark which layers are stored that way on disk. For training,
:func:`add_weight_norm` turns the marked layers into a real parametrisation (``g`` and ``v`` are the
trained parameters, as in the original recipe); :func:`weight_norm_state_dict` writes them back under
the released names, and loading folds them again.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class WNConv1d(nn.Conv1d):
    """A ``Conv1d`` whose weight is stored weight-normalised (``weight_g``/``weight_v``) on disk."""


class WNConvTranspose1d(nn.ConvTranspose1d):
    """A ``ConvTranspose1d`` whose weight is stored weight-normalised on disk."""


WEIGHT_NORM_TYPES = (WNConv1d, WNConvTranspose1d)

# Key suffixes of torch's weight-norm parametrisation and the released names they stand for.
_PARAM_KEYS = {".parametrizations.weight.original0": ".weight_g", ".parametrizations.weight.original1": ".weight_v"}


def add_weight_norm(model: nn.Module) -> nn.Module:
    """Parametrise every ``WN*`` layer of ``model`` as ``g * v / ||v||`` (dim 0), in place.

    Starts from ``g = ||weight||``, ``v = weight``, so the function computed does not change. Layers
    already parametrised are left alone.
    """
    from torch.nn.utils import parametrize
    from torch.nn.utils.parametrizations import weight_norm

    for module in model.modules():
        if isinstance(module, WEIGHT_NORM_TYPES) and not parametrize.is_parametrized(module, "weight"):
            weight_norm(module, name="weight", dim=0)
    return model


def remove_weight_norm(model: nn.Module) -> nn.Module:
    """Fold every weight-norm parametrisation back into a plain ``weight`` (the inference form), in place."""
    from torch.nn.utils import parametrize

    for module in model.modules():
        if isinstance(module, WEIGHT_NORM_TYPES) and parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
    return model


def weight_norm_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """State dict of a parametrised model under the released names (``X.weight_g`` / ``X.weight_v``)."""
    out: dict[str, Tensor] = {}
    for key, value in model.state_dict().items():
        for suffix, released in _PARAM_KEYS.items():
            if key.endswith(suffix):
                key = key[: -len(suffix)] + released
                break
        out[key] = value.detach().contiguous()
    return out


@torch.no_grad()
def load_weight_norm_pairs(model: nn.Module, state_dict: dict[str, Tensor]) -> nn.Module:
    """Set a parametrised model's ``g``/``v`` to the released ``weight_g``/``weight_v`` pairs, exactly.

    :func:`add_weight_norm` re-derives ``g``/``v`` from the folded weight, which moves them by float
    rounding; a part that is not trained must come out bit for bit as it went in.
    """
    for key, value in model.state_dict(keep_vars=True).items():
        for suffix, released in _PARAM_KEYS.items():
            if key.endswith(suffix) and key[: -len(suffix)] + released in state_dict:
                value.copy_(state_dict[key[: -len(suffix)] + released])
    return model


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


_compiled_snake = None  # torch.compile of the training expression, built on first use


def fused_snake(x: Tensor, alpha: Tensor) -> Tensor:
    """:func:`snake` as one compiled kernel forward and one backward (``torch.compile``, inductor).

    Eager autograd keeps four full-size intermediates per call and walks them again backward, which on a
    CPU made the wave generator's Snakes about a third of a training step; the fused kernels take about
    a fifth of that time (within 1e-6 of :func:`snake`). Compiling takes ~20 s once per process and needs
    a C++ compiler on CPU (Triton on GPU); where it fails, this warns once and runs :func:`snake`.
    """
    global _compiled_snake
    if _compiled_snake is None:
        _compiled_snake = torch.compile(_snake_expression, dynamic=True)
    if _compiled_snake is not snake:
        try:
            return _compiled_snake(x, alpha)
        except Exception as exc:  # any compiler failure: the eager kernel is always right
            import warnings

            warnings.warn(f"torch.compile of the Snake activation failed ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''}); it runs eagerly.", stacklevel=2)
            _compiled_snake = snake
    return snake(x, alpha)


def _snake_expression(x: Tensor, alpha: Tensor) -> Tensor:
    return x + (alpha + 1e-9).reciprocal() * torch.sin(alpha * x).pow(2)


class Snake1d(nn.Module):
    """Per-channel Snake activation on ``(B, C, T)``. ``fused``: with gradients on, run
    :func:`fused_snake` (set by :func:`use_fused_snake`; training only)."""

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, channels, 1))
        self.fused = False

    def forward(self, x: Tensor) -> Tensor:
        if self.fused and torch.is_grad_enabled():
            return fused_snake(x, self.alpha)
        return snake(x, self.alpha)


def use_fused_snake(module: nn.Module, on: bool = True) -> int:
    """Switch every :class:`Snake1d` in ``module`` to :func:`fused_snake` (or back); returns how many."""
    n = 0
    for m in module.modules():
        if isinstance(m, Snake1d):
            m.fused = on
            n += 1
    return n


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
