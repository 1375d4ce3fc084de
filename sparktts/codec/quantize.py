"""Factorized vector quantizer for the semantic tokens (50 per second, 8192 codes in the release)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import QuantizerConfig
from .layers import WNConv1d


class FactorizedVectorQuantize(nn.Module):
    """Project to a low-dimensional code space, pick the nearest L2-normalised codebook entry.

    ``tokenize``: latents ``(B, D, T)`` -> ids ``(B, T)`` int64.
    ``detokenize``: ids ``(B, T)`` -> quantized latents ``(B, D, T)``.
    """

    def __init__(self, cfg: QuantizerConfig):
        super().__init__()
        if cfg.input_dim != cfg.codebook_dim:
            self.in_project: nn.Module = WNConv1d(cfg.input_dim, cfg.codebook_dim, kernel_size=1)
            self.out_project: nn.Module = WNConv1d(cfg.codebook_dim, cfg.input_dim, kernel_size=1)
        else:
            self.in_project = nn.Identity()
            self.out_project = nn.Identity()
        self.codebook = nn.Embedding(cfg.codebook_size, cfg.codebook_dim)
        # Training statistic (EMA of code usage); stored in the checkpoint, unused at inference.
        self.register_buffer("cluster_size", torch.zeros(cfg.codebook_size))

    @property
    def codebook_size(self) -> int:
        return self.codebook.num_embeddings

    def project(self, z: Tensor) -> Tensor:
        """``(B, D, T) -> (B, codebook_dim, T)``, the space the nearest-neighbour search runs in."""
        return self.in_project(z)

    def tokenize(self, z: Tensor) -> Tensor:
        z_e = self.in_project(z)
        b = z_e.shape[0]
        enc = F.normalize(z_e.transpose(1, 2).reshape(-1, z_e.shape[1]))  # (B*T, d)
        book = F.normalize(self.codebook.weight)  # (K, d)
        # Squared distance between unit vectors, written out as the original computes it so that
        # near-ties break the same way.
        dist = enc.pow(2).sum(1, keepdim=True) - 2 * enc @ book.t() + book.pow(2).sum(1, keepdim=True).t()
        return (-dist).max(1)[1].reshape(b, -1)

    def detokenize(self, ids: Tensor) -> Tensor:
        z_q = F.embedding(ids, self.codebook.weight).transpose(1, 2)
        return self.out_project(z_q)
