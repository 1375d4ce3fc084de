"""Speaker encoder: mel -> ECAPA-TDNN -> perceiver resampler -> residual FSQ -> 32 global tokens.

``tokenize``: mel ``(B, T, 128)`` -> global ids ``(B, 1, token_num)``.
``detokenize``: ids ``(B, 1, token_num)`` -> d-vector ``(B, out_dim)`` (the codec's speaker condition).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import SpeakerEncoderConfig
from .fsq import ResidualFSQ

# -- ECAPA-TDNN (channels fixed at 512 in the release, whatever the config says) ---------------------


class Conv1dReluBn(nn.Module):
    """conv -> ReLU -> BatchNorm (this order, as trained)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 1, padding: int = 0, dilation: int = 1):
        super().__init__()
        self.conv = nn.Conv1d(in_ch, out_ch, kernel_size, 1, padding, dilation)
        self.bn = nn.BatchNorm1d(out_ch)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(F.relu(self.conv(x)))


class Res2Conv1dReluBn(nn.Module):
    """Res2Net multi-scale conv: ``scale`` channel groups, each added to the next group's output."""

    def __init__(self, channels: int, kernel_size: int, padding: int, dilation: int, scale: int):
        super().__init__()
        self.width = channels // scale
        self.nums = scale - 1 if scale > 1 else 1
        self.convs = nn.ModuleList(
            nn.Conv1d(self.width, self.width, kernel_size, 1, padding, dilation) for _ in range(self.nums)
        )
        self.bns = nn.ModuleList(nn.BatchNorm1d(self.width) for _ in range(self.nums))

    def forward(self, x: Tensor) -> Tensor:
        chunks = torch.split(x, self.width, 1)
        out = []
        sp = chunks[0]
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            if i >= 1:
                sp = sp + chunks[i]
            sp = bn(F.relu(conv(sp)))
            out.append(sp)
        if len(chunks) > self.nums:
            out.append(chunks[self.nums])
        return torch.cat(out, dim=1)


class SEConnect(nn.Module):
    """Squeeze-and-excitation over time. ``(B, C, T) -> (B, C, T)``."""

    def __init__(self, channels: int, bottleneck: int = 128):
        super().__init__()
        self.linear1 = nn.Linear(channels, bottleneck)
        self.linear2 = nn.Linear(bottleneck, channels)

    def forward(self, x: Tensor) -> Tensor:
        s = torch.sigmoid(self.linear2(F.relu(self.linear1(x.mean(dim=2)))))
        return x * s.unsqueeze(2)


class SERes2Block(nn.Module):
    def __init__(self, channels: int, kernel_size: int, padding: int, dilation: int, scale: int):
        super().__init__()
        self.se_res2block = nn.Sequential(
            Conv1dReluBn(channels, channels),
            Res2Conv1dReluBn(channels, kernel_size, padding, dilation, scale),
            Conv1dReluBn(channels, channels),
            SEConnect(channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.se_res2block(x)


class AttentiveStatsPool(nn.Module):
    """Attentive statistics pooling with global context. ``(B, C, T) -> (B, 2C)`` (weighted mean, std)."""

    def __init__(self, in_dim: int, bottleneck: int = 128):
        super().__init__()
        self.linear1 = nn.Conv1d(in_dim * 3, bottleneck, kernel_size=1)
        self.linear2 = nn.Conv1d(bottleneck, in_dim, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean(dim=-1, keepdim=True).expand_as(x)
        std = torch.sqrt(torch.var(x, dim=-1, keepdim=True) + 1e-7).expand_as(x)
        alpha = torch.softmax(self.linear2(torch.tanh(self.linear1(torch.cat((x, mean, std), dim=1)))), dim=2)
        w_mean = torch.sum(alpha * x, dim=2)
        w_var = torch.sum(alpha * x**2, dim=2) - w_mean**2
        return torch.cat([w_mean, torch.sqrt(w_var.clamp(min=1e-7))], dim=1)


class ECAPATDNN(nn.Module):
    """ECAPA-TDNN (512 channels, global-context attentive pooling).

    ``x: (B, T, feat_dim)`` -> (x-vector ``(B, embed_dim)``, frame latent ``(B, 1536, T)``).
    """

    def __init__(self, feat_dim: int, embed_dim: int, channels: int = 512):
        super().__init__()
        self.layer1 = Conv1dReluBn(feat_dim, channels, kernel_size=5, padding=2)
        self.layer2 = SERes2Block(channels, kernel_size=3, padding=2, dilation=2, scale=8)
        self.layer3 = SERes2Block(channels, kernel_size=3, padding=3, dilation=3, scale=8)
        self.layer4 = SERes2Block(channels, kernel_size=3, padding=4, dilation=4, scale=8)
        self.conv = nn.Conv1d(channels * 3, 512 * 3, kernel_size=1)
        self.pool = AttentiveStatsPool(512 * 3)
        self.bn = nn.BatchNorm1d(512 * 3 * 2)
        self.linear = nn.Linear(512 * 3 * 2, embed_dim)

    def latent(self, x: Tensor) -> Tensor:
        out1 = self.layer1(x.transpose(1, 2))
        out2 = self.layer2(out1)
        out3 = self.layer3(out2)
        out4 = self.layer4(out3)
        return F.relu(self.conv(torch.cat([out2, out3, out4], dim=1)))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        latent = self.latent(x)
        return self.linear(self.bn(self.pool(latent))), latent


# -- Perceiver resampler ----------------------------------------------------------------------------


class RMSNorm(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.scale = dim**0.5
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(x, dim=-1) * self.scale * self.gamma


class CrossAttention(nn.Module):
    """Latents attend to ``[latents; context]``. ``x: (B, N, dim)``, ``context: (B, T, dim)``."""

    def __init__(self, dim: int, heads: int = 8, dim_head: int = 64):
        super().__init__()
        self.heads = heads
        inner = heads * dim_head
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        context = torch.cat((x, context), dim=-2)
        q = self.to_q(x)
        k, v = self.to_kv(context).chunk(2, dim=-1)
        b = x.shape[0]
        q, k, v = (t.reshape(b, t.shape[1], self.heads, -1).transpose(1, 2) for t in (q, k, v))
        sim = torch.einsum("bhid,bhjd->bhij", q, k) * q.shape[-1] ** -0.5
        out = torch.einsum("bhij,bhjd->bhid", sim.softmax(dim=-1), v)
        return self.to_out(out.transpose(1, 2).reshape(b, x.shape[1], -1))


class GEGLU(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        x, gate = x.chunk(2, dim=-1)
        return F.gelu(gate) * x


def _feed_forward(dim: int, mult: int = 4) -> nn.Sequential:
    inner = int(dim * mult * 2 / 3)
    return nn.Sequential(nn.Linear(dim, inner * 2), GEGLU(), nn.Linear(inner, dim))


class PerceiverResampler(nn.Module):
    """``num_latents`` learned queries summarise a variable-length sequence.

    ``x: (B, T, dim_context)`` -> ``(B, num_latents, dim)``.
    """

    def __init__(self, dim: int, dim_context: int, num_latents: int, depth: int = 2):
        super().__init__()
        self.proj_context: nn.Module = nn.Linear(dim_context, dim) if dim_context != dim else nn.Identity()
        self.latents = nn.Parameter(torch.randn(num_latents, dim) * 0.02)
        self.layers = nn.ModuleList(
            nn.ModuleList([CrossAttention(dim), _feed_forward(dim)]) for _ in range(depth)
        )
        self.norm = RMSNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        x = self.proj_context(x)
        latents = self.latents.unsqueeze(0).expand(x.shape[0], -1, -1)
        for attn, ff in self.layers:
            latents = attn(latents, x) + latents
            latents = ff(latents) + latents
        return self.norm(latents)


# -- The speaker encoder ----------------------------------------------------------------------------


@dataclass
class SpeakerEncoding:
    """Everything the speaker branch computes for one batch of reference mels."""

    x_vector: Tensor  # (B, out_dim): ECAPA embedding (not used by the codec; useful for analysis)
    ecapa_latent: Tensor  # (B, 1536, T) frame features fed to the perceiver
    latent: Tensor  # (B, latent_dim, token_num) perceiver output, before FSQ
    quantized: Tensor  # (B, latent_dim, token_num) after residual FSQ
    global_ids: Tensor  # (B, 1, token_num) int64
    d_vector: Tensor  # (B, out_dim)


class SpeakerEncoder(nn.Module):
    def __init__(self, cfg: SpeakerEncoderConfig):
        super().__init__()
        self.speaker_encoder = ECAPATDNN(cfg.input_dim, cfg.out_dim)
        self.perceiver_sampler = PerceiverResampler(cfg.latent_dim, 512 * 3, cfg.token_num)
        self.quantizer = ResidualFSQ(cfg.fsq_levels, cfg.fsq_num_quantizers, cfg.latent_dim)
        self.project = nn.Linear(cfg.latent_dim * cfg.token_num, cfg.out_dim)

    def encode(self, mels: Tensor, with_x_vector: bool = False) -> SpeakerEncoding:
        """``mels: (B, T, n_mels)``. The x-vector head only runs when asked for."""
        if with_x_vector:
            x_vector, ecapa_latent = self.speaker_encoder(mels)
        else:
            ecapa_latent = self.speaker_encoder.latent(mels)
            x_vector = torch.empty(0)
        latent = self.perceiver_sampler(ecapa_latent.transpose(1, 2)).transpose(1, 2)
        quantized, ids = self.quantizer(latent)
        d_vector = self.project(quantized.reshape(quantized.shape[0], -1))
        return SpeakerEncoding(x_vector, ecapa_latent, latent, quantized, ids, d_vector)

    def tokenize(self, mels: Tensor) -> Tensor:
        return self.encode(mels).global_ids

    def detokenize(self, ids: Tensor) -> Tensor:
        """``(B, 1, token_num)`` global ids -> d-vector ``(B, out_dim)``."""
        zq = self.quantizer.from_ids(ids)
        return self.project(zq.reshape(zq.shape[0], -1))
