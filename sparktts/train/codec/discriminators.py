"""Discriminators of the codec GAN: multi-period (HiFi-GAN) and multi-band multi-resolution STFT (DAC).

Every sub-discriminator maps a waveform ``(B, 1, T)`` to its list of feature maps, the last being the
logits; :class:`Discriminator` returns one such list per sub-discriminator, the input of
:mod:`sparktts.train.codec.losses`. Layers are weight-normalised, as in both references.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from .config import DiscriminatorConfig

LEAK = 0.1


def _normalise(wav: Tensor) -> Tensor:
    """Remove DC and scale the peak to 0.8, so the discriminators judge shape rather than level."""
    wav = wav - wav.mean(dim=-1, keepdim=True)
    return 0.8 * wav / (wav.abs().amax(dim=-1, keepdim=True) + 1e-9)


class PeriodDiscriminator(nn.Module):
    """Fold ``(B, 1, T)`` into ``(B, 1, T / p, p)`` and run 2-D convs over time only."""

    def __init__(self, period: int, channels: tuple[int, ...]):
        super().__init__()
        self.period = period
        dims = (1, *channels)
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv2d(c_in, c_out, (5, 1), (3, 1) if i < len(channels) - 1 else (1, 1), padding=(2, 0)))
            for i, (c_in, c_out) in enumerate(zip(dims[:-1], dims[1:]))
        )
        self.post = weight_norm(nn.Conv2d(channels[-1], 1, (3, 1), padding=(1, 0)))

    def forward(self, wav: Tensor) -> list[Tensor]:
        pad = (-wav.shape[-1]) % self.period
        x = F.pad(wav, (0, pad), mode="reflect") if pad else wav
        x = x.reshape(x.shape[0], 1, -1, self.period)  # (B, 1, T / p, p)
        fmaps = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LEAK)
            fmaps.append(x)
        fmaps.append(self.post(x))
        return fmaps


class BandSTFTDiscriminator(nn.Module):
    """Complex STFT of one window length, split into frequency bands with a conv stack each.

    The STFT ``(B, 2, frames, bins)`` (real, imaginary) of each band goes through its own convs (strided
    over frequency); the bands are joined along frequency for the final conv.
    """

    def __init__(self, window: int, channels: int, bands: tuple[tuple[float, ...], ...]):
        super().__init__()
        self.window, self.hop = window, window // 4
        bins = window // 2 + 1
        self.bands = [(int(lo * bins), int(hi * bins)) for lo, hi in bands]
        self.register_buffer("hann", torch.hann_window(window), persistent=False)

        def stack() -> nn.ModuleList:
            layers = [weight_norm(nn.Conv2d(2, channels, (3, 9), (1, 1), padding=(1, 4)))]
            layers += [weight_norm(nn.Conv2d(channels, channels, (3, 9), (1, 2), padding=(1, 4))) for _ in range(3)]
            layers.append(weight_norm(nn.Conv2d(channels, channels, (3, 3), (1, 1), padding=(1, 1))))
            return nn.ModuleList(layers)

        self.stacks = nn.ModuleList(stack() for _ in self.bands)
        self.post = weight_norm(nn.Conv2d(channels, 1, (3, 3), (1, 1), padding=(1, 1)))

    def forward(self, wav: Tensor) -> list[Tensor]:
        with torch.autocast(wav.device.type, enabled=False):  # torch.stft wants float32
            spec = torch.stft(wav.squeeze(1).float(), self.window, self.hop, window=self.hann, center=True,
                              return_complex=True)  # (B, bins, frames)
        x = torch.view_as_real(spec).permute(0, 3, 2, 1)  # (B, 2, frames, bins)
        fmaps, outs = [], []
        for (lo, hi), layers in zip(self.bands, self.stacks):
            band = x[..., lo:hi]
            for i, conv in enumerate(layers):
                band = F.leaky_relu(conv(band), LEAK)
                if i > 0:
                    fmaps.append(band)
            outs.append(band)
        fmaps.append(self.post(torch.cat(outs, dim=-1)))
        return fmaps


class Discriminator(nn.Module):
    """All sub-discriminators. ``(B, 1, T)`` -> list (one per sub-discriminator) of feature-map lists."""

    def __init__(self, cfg: DiscriminatorConfig):
        super().__init__()
        self.subs = nn.ModuleList(
            [PeriodDiscriminator(p, cfg.period_channels) for p in cfg.periods]
            + [BandSTFTDiscriminator(w, cfg.stft_channels, cfg.bands) for w in cfg.stft_windows]
        )

    def forward(self, wav: Tensor) -> list[list[Tensor]]:
        wav = _normalise(wav)
        return [sub(wav) for sub in self.subs]
