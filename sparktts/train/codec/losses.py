"""Codec training losses: multi-resolution mel L1, LSGAN adversarial terms and feature matching.

The codec's own terms (VQ commitment/codebook, wav2vec2-feature MSE through the postnet) come from
:meth:`sparktts.codec.bicodec.BiCodec.forward`; :func:`generator_loss` weighs them all.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

FeatureMaps = list[list[Tensor]]  # per sub-discriminator: feature maps, the last being the logits


class MultiResolutionMelLoss(nn.Module):
    """Mean over resolutions of the L1 distance of log10 mel spectrograms. ``(B, 1, T)`` pairs -> ``()``.

    One STFT per window length (hop = window / 4, Hann), magnitude, a Slaney mel filterbank with the
    paired number of bins, log10 after clamping at ``eps``.
    """

    def __init__(self, sample_rate: int, windows: tuple[int, ...], bins: tuple[int, ...], eps: float = 1e-5):
        super().__init__()
        self.windows = tuple(windows)
        self.eps = eps
        for w, n in zip(windows, bins):
            with warnings.catch_warnings():  # small windows leave some high mel bins empty: harmless
                warnings.simplefilter("ignore")
                import librosa

                fb = librosa.filters.mel(sr=sample_rate, n_fft=w, n_mels=n, fmin=0.0, fmax=sample_rate / 2)
            self.register_buffer(f"fb_{w}", torch.from_numpy(fb).float(), persistent=False)
            self.register_buffer(f"hann_{w}", torch.hann_window(w), persistent=False)

    def log_mel(self, wav: Tensor, window: int) -> Tensor:
        spec = torch.stft(wav.squeeze(1).float(), window, window // 4, window=getattr(self, f"hann_{window}"),
                          center=True, return_complex=True).abs()  # (B, bins, frames)
        mel = getattr(self, f"fb_{window}") @ spec
        return mel.clamp_min(self.eps).log10()

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        with torch.autocast(pred.device.type, enabled=False):
            losses = [F.l1_loss(self.log_mel(pred, w), self.log_mel(target, w)) for w in self.windows]
        return torch.stack(losses).mean()


def discriminator_loss(real: FeatureMaps, fake: FeatureMaps) -> Tensor:
    """LSGAN: real logits towards 1, fake towards 0, summed over sub-discriminators."""
    return sum(((1 - r[-1].float()) ** 2).mean() + (f[-1].float() ** 2).mean() for r, f in zip(real, fake))


def adversarial_loss(fake: FeatureMaps) -> Tensor:
    """LSGAN generator term: fake logits towards 1."""
    return sum(((1 - f[-1].float()) ** 2).mean() for f in fake)


def feature_matching_loss(real: FeatureMaps, fake: FeatureMaps) -> Tensor:
    """L1 between the discriminators' hidden feature maps of real (fixed) and generated audio."""
    return sum(F.l1_loss(f.float(), r.detach().float()) for rs, fs in zip(real, fake) for r, f in zip(rs[:-1], fs[:-1]))
