"""An auxiliary pitch loss for small codecs trained from scratch (training only; not part of a release).

A small BiCodec trained on a few hours of speech with the mel loss alone learns tokens that carry the
phones but not the pitch: a linear probe of the built-in model's quantized latents recovered none of
the frame-level log F0 of held-out espeak-ng clips at step 1,000 (R² 0.0), and its wave generator
painted a noise-excited envelope with a few tones at fixed frequencies instead of harmonics. With no
pitch in its input, the decoder's best answer under an L1 log-mel loss is that average. The released
model learnt its pitch from wav2vec2 features pretrained on 56,000 hours and from its GAN; here
``loss.pitch > 0`` asks the quantized latent ``z_q`` itself to predict each frame's log F0 and voicing
through a one-layer head, so the pitch reaches the tokens (and the decoder) from the first steps. The
head is discarded at export: the release has the released layout and inference is unchanged.

Shapes: ``wav (B, N)`` 16 kHz; frames are the codec's (hop 320), frame ``t`` centred on sample
``320 t + 200`` (the centre of the wav2vec2 frame it comes from).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LOG_F0_CENTRE = math.log(150.0)  # the head predicts log F0 around this (Hz), so its output starts near 0
# Frame t's analysis window is centred where wav2vec2's t-th frame (a 400-sample receptive field every
# 320 samples) is, so the target lines up with the latent the head reads.
FRAME_OFFSET = 200


def yin_pitch(wav: Tensor, frames: int, sample_rate: int = 16000, hop: int = 320, window: int = 1024,
              fmin: float = 60.0, fmax: float = 500.0, threshold: float = 0.15, voiced_max: float = 0.35,
              silence_db: float = -45.0, floor_db: float = -70.0) -> tuple[Tensor, Tensor]:
    """YIN (de Cheveigné & Kawahara 2002) on every frame of a batch: ``(B, N)`` -> ``f0 (B, frames)`` in
    Hz and ``voiced (B, frames)`` bool.

    The difference function comes from FFT autocorrelation and cumulative energies, is normalised by its
    cumulative mean, and the period is the first dip below ``threshold`` within ``[fmin, fmax]`` (else
    the deepest one), refined by parabolic interpolation. A frame is voiced when that dip is below
    ``voiced_max`` and its energy is within ``silence_db`` of the clip's loudest frame and above
    ``floor_db`` (dB of full scale). Unvoiced frames get f0 0.
    """
    n = wav.shape[-1]
    wav = wav.float()
    centres = torch.arange(frames, device=wav.device) * hop + FRAME_OFFSET
    padded = F.pad(wav, (window // 2, window // 2 + max(0, int(centres[-1]) + window // 2 - n)))
    idx = centres[:, None] + torch.arange(window, device=wav.device)[None, :]  # (frames, window)
    x = padded[:, idx]  # (B, frames, window)
    x = x - x.mean(-1, keepdim=True)
    tau_max = min(window // 2, int(sample_rate / fmin) + 2)
    w = window - tau_max  # compare the first w samples with those tau later
    spec = torch.fft.rfft(x, n=2 * window)
    acf = torch.fft.irfft(spec * torch.fft.rfft(x[..., :w], n=2 * window).conj(), n=2 * window)
    acf = acf[..., :tau_max]  # r(tau) = sum_{j<w} x_j x_{j+tau}
    energy = torch.cumsum(F.pad(x * x, (1, 0)), -1)  # energy[k] = sum_{j<k} x_j^2
    e0 = energy[..., w:w + 1]  # sum_{j<w} x_j^2
    taus = torch.arange(tau_max, device=wav.device)
    e_tau = energy[..., taus + w] - energy[..., taus]  # sum_{j<w} x_{j+tau}^2
    diff = (e0 + e_tau - 2 * acf).clamp_min(0)  # (B, frames, tau_max)
    cum = torch.cumsum(diff[..., 1:], -1) / torch.arange(1, tau_max, device=wav.device)
    cmnd = torch.ones_like(diff)
    cmnd[..., 1:] = diff[..., 1:] / cum.clamp_min(1e-9)
    lo = int(sample_rate / fmax)
    band = cmnd[..., lo:]
    below = band < threshold
    # The first dip below the threshold, walked down to its local minimum; else the global minimum.
    first = torch.where(below.any(-1), below.float().argmax(-1), band.argmin(-1))
    steps = band.shape[-1]
    for _ in range(8):  # a dip below 0.15 spans a few lags: follow it down
        nxt = (first + 1).clamp_max(steps - 1)
        go = band.gather(-1, nxt[..., None])[..., 0] < band.gather(-1, first[..., None])[..., 0]
        first = torch.where(go, nxt, first)
    tau = first + lo
    depth = cmnd.gather(-1, tau[..., None])[..., 0]
    left = cmnd.gather(-1, (tau - 1).clamp_min(1)[..., None])[..., 0]
    right = cmnd.gather(-1, (tau + 1).clamp_max(tau_max - 1)[..., None])[..., 0]
    shift = 0.5 * (left - right) / (left - 2 * depth + right).clamp_min(1e-9)
    f0 = sample_rate / (tau.float() + shift.clamp(-1, 1))
    level = 10 * torch.log10(e0[..., 0] / w + 1e-10)
    loud = (level > level.amax(-1, keepdim=True) + silence_db) & (level > floor_db)
    voiced = (depth < voiced_max) & loud & (f0 >= fmin) & (f0 <= fmax)
    return torch.where(voiced, f0, torch.zeros_like(f0)), voiced


class PitchHead(nn.Module):
    """``z_q (B, D, T)`` -> ``(B, 2, T)``: log F0 around ``LOG_F0_CENTRE`` and a voicing logit."""

    def __init__(self, dim: int):
        super().__init__()
        self.proj = nn.Conv1d(dim, 2, kernel_size=3, padding=1)

    def forward(self, z_q: Tensor) -> Tensor:
        return self.proj(z_q)


def pitch_loss(pred: Tensor, wav: Tensor) -> Tensor:
    """L1 of log F0 on the voiced frames plus the voicing cross-entropy; ``pred (B, 2, T)``, ``wav (B, N)``."""
    with torch.no_grad():
        f0, voiced = yin_pitch(wav, pred.shape[-1])
    pred = pred.float()
    voicing = F.binary_cross_entropy_with_logits(pred[:, 1], voiced.float())
    if not voiced.any():
        return voicing + 0 * pred[:, 0].sum()
    target = torch.log(f0[voiced]) - LOG_F0_CENTRE
    return F.l1_loss(pred[:, 0][voiced], target) + voicing
