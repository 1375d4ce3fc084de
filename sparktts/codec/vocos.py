"""Vocos-style ConvNeXt backbones: the BiCodec feature encoder, prenet and postnet.

Module and attribute names follow the released checkpoint (``encoder.encoder.convnext.0.dwconv``,
``prenet.vocos_backbone.norm.scale`` ...), so the state dict loads without renaming.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import DecoderConfig, EncoderConfig


class AdaLayerNorm(nn.Module):
    """LayerNorm whose scale and shift are predicted from a condition vector.

    ``x: (B, T, C)``, ``cond: (B, condition_dim)`` -> ``(B, T, C)``.
    """

    def __init__(self, condition_dim: int, dim: int, eps: float = 1e-6):
        super().__init__()
        self.dim = dim
        self.eps = eps
        self.scale = nn.Linear(condition_dim, dim)
        self.shift = nn.Linear(condition_dim, dim)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        x = F.layer_norm(x, (self.dim,), eps=self.eps)
        return x * self.scale(cond).unsqueeze(1) + self.shift(cond).unsqueeze(1)


class ConvNeXtBlock(nn.Module):
    """Depthwise conv(7) -> (Ada)LayerNorm -> MLP -> layer scale, residual. ``(B, C, T) -> (B, C, T)``."""

    def __init__(self, dim: int, intermediate_dim: int, condition_dim: int | None = None):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = AdaLayerNorm(condition_dim, dim) if condition_dim else nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(intermediate_dim, dim)
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        y = self.dwconv(x).transpose(1, 2)
        y = self.norm(y, cond) if isinstance(self.norm, AdaLayerNorm) else self.norm(y)
        y = self.pwconv2(self.act(self.pwconv1(y)))
        return x + (self.gamma * y).transpose(1, 2)


class VocosBackbone(nn.Module):
    """conv(7) embed -> norm -> N ConvNeXt blocks -> final LayerNorm.

    ``x: (B, input_channels, T)``, ``cond: (B, condition_dim)`` or None -> ``(B, T, dim)`` (channels last).
    """

    def __init__(
        self,
        input_channels: int,
        dim: int,
        intermediate_dim: int,
        num_layers: int,
        condition_dim: int | None = None,
    ):
        super().__init__()
        self.embed = nn.Conv1d(input_channels, dim, kernel_size=7, padding=3)
        self.norm = AdaLayerNorm(condition_dim, dim) if condition_dim else nn.LayerNorm(dim, eps=1e-6)
        self.convnext = nn.ModuleList(
            ConvNeXtBlock(dim, intermediate_dim, condition_dim) for _ in range(num_layers)
        )
        self.final_layer_norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        x = self.embed(x).transpose(1, 2)
        x = self.norm(x, cond) if isinstance(self.norm, AdaLayerNorm) else self.norm(x)
        x = x.transpose(1, 2)
        for block in self.convnext:
            x = block(x, cond)
        return self.final_layer_norm(x.transpose(1, 2))


class SamplingBlock(nn.Module):
    """Resampling block of the feature encoder/decoder. ``(B, T, C) -> (B, C, T * up / down)``.

    Output = learned branch + two skip branches (repeat-upsampled input and average-pooled input).
    With ratio 1 (the release) there are no weights and the three branches are the input itself, so
    the block returns ``3 * x``: the released weights were trained with that gain.
    """

    def __init__(self, dim: int, upsample_scale: int = 1, downsample_scale: int = 1):
        super().__init__()
        self.upsample_scale = upsample_scale
        self.downsample_scale = downsample_scale
        if upsample_scale > 1:
            self.de_conv_upsampler = nn.Sequential(
                nn.LeakyReLU(0.2),
                nn.ConvTranspose1d(
                    dim, dim, kernel_size=upsample_scale * 2, stride=upsample_scale,
                    padding=upsample_scale // 2 + upsample_scale % 2,
                    output_padding=upsample_scale % 2, groups=dim,
                ),
            )
        if downsample_scale > 1:
            self.conv_downsampler = nn.Sequential(
                nn.LeakyReLU(0.2),
                nn.Conv1d(
                    dim, dim, kernel_size=2 * downsample_scale, stride=downsample_scale,
                    padding=downsample_scale // 2 + downsample_scale % 2, groups=dim,
                ),
            )

    def forward(self, x: Tensor) -> Tensor:
        x = x.transpose(1, 2)
        repeated = x
        merged = x
        if self.upsample_scale > 1:
            repeated = x.repeat_interleave(self.upsample_scale, dim=2)
            merged = repeated + self.de_conv_upsampler(x)
        if self.downsample_scale > 1:
            pool = self.downsample_scale
            return (self.conv_downsampler(merged) + F.avg_pool1d(repeated, pool, pool)
                    + F.avg_pool1d(merged, pool, pool))
        # Same summation order as the released model, so float results match bit for bit.
        return merged + repeated + merged


def _sampling_stages(dim: int, intermediate_dim: int, ratios: tuple[int, ...], up: bool) -> nn.Sequential:
    return nn.Sequential(*(
        nn.Sequential(
            SamplingBlock(dim, upsample_scale=r) if up else SamplingBlock(dim, downsample_scale=r),
            VocosBackbone(dim, dim, intermediate_dim, num_layers=2),
        )
        for r in ratios
    ))


class FeatureEncoder(nn.Module):
    """wav2vec2 features -> latents before the factorized VQ. ``(B, D, T) -> (B, out_channels, T)``."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.encoder = VocosBackbone(cfg.input_channels, cfg.vocos_dim, cfg.vocos_intermediate_dim,
                                     cfg.vocos_num_layers)
        self.downsample = _sampling_stages(cfg.vocos_dim, cfg.vocos_intermediate_dim, cfg.sample_ratios,
                                           up=False)
        self.project = nn.Linear(cfg.vocos_dim, cfg.out_channels)

    def forward(self, x: Tensor) -> Tensor:
        x = self.encoder(x)  # (B, T, dim)
        x = self.downsample(x)
        return self.project(x).transpose(1, 2)


class FeatureDecoder(nn.Module):
    """Prenet (conditioned on the d-vector) and postnet. ``(B, C_in, T), (B, cond) -> (B, C_out, T)``.

    The checkpoint calls its resampling stages ``downsample`` although they upsample; the name is kept.
    """

    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.linear_pre = nn.Linear(cfg.input_channels, cfg.vocos_dim)
        self.downsample = _sampling_stages(cfg.vocos_dim, cfg.vocos_intermediate_dim, cfg.sample_ratios,
                                           up=True)
        self.vocos_backbone = VocosBackbone(cfg.vocos_dim, cfg.vocos_dim, cfg.vocos_intermediate_dim,
                                            cfg.vocos_num_layers, condition_dim=cfg.condition_dim)
        self.linear = nn.Linear(cfg.vocos_dim, cfg.out_channels)
        self.use_tanh_at_final = cfg.use_tanh_at_final

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        x = self.linear_pre(x.transpose(1, 2))
        x = self.downsample(x).transpose(1, 2)
        x = self.vocos_backbone(x, cond)
        x = self.linear(x).transpose(1, 2)
        return torch.tanh(x) if self.use_tanh_at_final else x
