"""Wave generator: DAC-style decoder from latent frames to a 16 kHz waveform."""

from __future__ import annotations

from torch import Tensor, nn

from ..config import WaveGeneratorConfig
from .layers import ResidualUnit, Snake1d, WNConv1d, WNConvTranspose1d


class DecoderBlock(nn.Module):
    """Snake -> transposed conv (upsample by ``stride``) -> 3 residual units (dilations 1, 3, 9)."""

    def __init__(self, input_dim: int, output_dim: int, kernel_size: int, stride: int):
        super().__init__()
        self.block = nn.Sequential(
            Snake1d(input_dim),
            WNConvTranspose1d(input_dim, output_dim, kernel_size=kernel_size, stride=stride,
                              padding=(kernel_size - stride) // 2),
            ResidualUnit(output_dim, dilation=1),
            ResidualUnit(output_dim, dilation=3),
            ResidualUnit(output_dim, dilation=9),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x)


class WaveGenerator(nn.Module):
    """``(B, input_channel, N) -> (B, 1, N * prod(rates))``, in [-1, 1] (tanh output), float32.

    Computes in the dtype of its weights: ``generator.to(torch.bfloat16)`` runs the convolutions in bf16
    (what :func:`sparktts.codec.tokenizer.BiCodecTokenizer` does for ``decoder_dtype="bfloat16"``) while
    callers keep passing and receiving float32.
    """

    def __init__(self, cfg: WaveGeneratorConfig):
        super().__init__()
        layers: list[nn.Module] = [WNConv1d(cfg.input_channel, cfg.channels, kernel_size=7, padding=3)]
        out_dim = cfg.channels
        for i, (kernel_size, stride) in enumerate(zip(cfg.kernel_sizes, cfg.rates)):
            in_dim, out_dim = cfg.channels // 2**i, cfg.channels // 2 ** (i + 1)
            layers.append(DecoderBlock(in_dim, out_dim, kernel_size, stride))
        layers += [Snake1d(out_dim), WNConv1d(out_dim, 1, kernel_size=7, padding=3), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        dtype = next(self.parameters()).dtype
        return self.model(x.to(dtype)).float()
