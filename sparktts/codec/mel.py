"""Mel front end of the speaker encoder, without torchaudio.

Equivalence: the original builds ``torchaudio.transforms.MelSpectrogram(sample_rate, n_fft, win_length,
hop_length, f_min, f_max, n_mels=num_mels, power=1, norm="slaney", mel_scale="slaney")``. That transform
is ``torch.stft`` (periodic Hann window of ``win_length`` zero-padded to ``n_fft`` by torch.stft,
``center=True``, reflect padding, one-sided) -> magnitude (power 1) -> multiplication by a Slaney
filterbank. ``librosa.filters.mel(..., htk=False, norm="slaney")`` is the same filterbank (they agree
to float32 rounding, <= 3.4e-7), so this module computes the same linear-magnitude mel with
``torch.stft`` and librosa's filters. ``f_max=None`` means ``sample_rate / 2``, as in torchaudio.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..config import MelConfig


class MelSpectrogram(nn.Module):
    """``(B, T) -> (B, num_mels, T // hop + 1)``, linear magnitude (no log)."""

    def __init__(self, cfg: MelConfig):
        super().__init__()
        self.n_fft = cfg.n_fft
        self.hop_length = cfg.hop_length
        self.win_length = cfg.win_length
        fmax = cfg.mel_fmax if cfg.mel_fmax is not None else cfg.sample_rate / 2
        import librosa  # here: code that never builds a codec (LM training on tokens) needs no librosa

        fb = librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.num_mels,
                                 fmin=cfg.mel_fmin, fmax=fmax, htk=False, norm="slaney")
        # Not part of the released state dict: computed from mel_params (torchaudio's names kept).
        self.register_buffer("window", torch.hann_window(cfg.win_length), persistent=False)
        self.register_buffer("fb", torch.from_numpy(fb.T).float().contiguous(), persistent=False)

    def forward(self, wav: Tensor) -> Tensor:
        spec = torch.stft(wav, self.n_fft, self.hop_length, self.win_length, self.window,
                          center=True, pad_mode="reflect", onesided=True, return_complex=True).abs()
        return torch.matmul(spec.transpose(-1, -2), self.fb).transpose(-1, -2)
