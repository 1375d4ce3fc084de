"""Factorized vector quantizer for the semantic tokens (50 per second, 8192 codes in the release).

Inference (``tokenize`` / ``detokenize``) is the released computation. Training (``forward`` in
``train()`` mode with gradients on) adds what the original recipe trains with: a straight-through
estimator, the codebook and commitment losses, an EMA of code usage (``cluster_size``) and the reset
of codes whose usage falls below ``threshold_ema_dead_code`` to encoder outputs of the current batch.
Without that reset the codebook collapses to a few dozen codes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import QuantizerConfig
from .layers import WNConv1d


@dataclass
class VQOutput:
    """What :meth:`FactorizedVectorQuantize.forward` returns."""

    z_q: Tensor  # (B, D, T) quantized latents (after out_project); gradients pass straight through to z
    ids: Tensor  # (B, T) int64 code ids, equal to tokenize(z)
    commitment_loss: Tensor  # () mean squared distance of z_e to its (fixed) code
    codebook_loss: Tensor  # () mean squared distance of the code to (fixed) z_e
    loss: Tensor  # () commitment * commitment_loss + codebook_loss_weight * codebook_loss
    codes_used: Tensor  # () number of distinct codes in this batch (on this process)


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class FactorizedVectorQuantize(nn.Module):
    """Project to a low-dimensional code space, pick the nearest L2-normalised codebook entry.

    ``tokenize``: latents ``(B, D, T)`` -> ids ``(B, T)`` int64.
    ``detokenize``: ids ``(B, T)`` -> quantized latents ``(B, D, T)``.
    ``forward``: latents ``(B, D, T)`` -> :class:`VQOutput` (training and inference alike; the
    codebook is only updated in ``train()`` mode with gradients enabled).
    """

    def __init__(self, cfg: QuantizerConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.input_dim != cfg.codebook_dim:
            self.in_project: nn.Module = WNConv1d(cfg.input_dim, cfg.codebook_dim, kernel_size=1)
            self.out_project: nn.Module = WNConv1d(cfg.codebook_dim, cfg.input_dim, kernel_size=1)
        else:
            self.in_project = nn.Identity()
            self.out_project = nn.Identity()
        self.codebook = nn.Embedding(cfg.codebook_size, cfg.codebook_dim)
        # EMA of code usage (codes per step); drives the dead-code reset, unused at inference.
        self.register_buffer("cluster_size", torch.zeros(cfg.codebook_size))

    @property
    def codebook_size(self) -> int:
        return self.codebook.num_embeddings

    def project(self, z: Tensor) -> Tensor:
        """``(B, D, T) -> (B, codebook_dim, T)``, the space the nearest-neighbour search runs in."""
        return self.in_project(z)

    def _nearest(self, z_e: Tensor) -> Tensor:
        """``(B, d, T)`` projected latents -> ``(B, T)`` ids of the nearest normalised code."""
        b = z_e.shape[0]
        enc = F.normalize(z_e.transpose(1, 2).reshape(-1, z_e.shape[1]))  # (B*T, d)
        book = F.normalize(self.codebook.weight)  # (K, d)
        # Squared distance between unit vectors, written out as the original computes it so that
        # near-ties break the same way.
        dist_ = enc.pow(2).sum(1, keepdim=True) - 2 * enc @ book.t() + book.pow(2).sum(1, keepdim=True).t()
        return (-dist_).max(1)[1].reshape(b, -1)

    def tokenize(self, z: Tensor) -> Tensor:
        return self._nearest(self.in_project(z))

    def detokenize(self, ids: Tensor) -> Tensor:
        z_q = F.embedding(ids, self.codebook.weight).transpose(1, 2)
        return self.out_project(z_q)

    def forward(self, z: Tensor) -> VQOutput:
        z_e = self.in_project(z)  # (B, d, T)
        updating = self.training and torch.is_grad_enabled()
        if updating:
            self._reset_dead_codes(z_e.detach().transpose(1, 2).reshape(-1, z_e.shape[1]))
        with torch.no_grad():
            ids = self._nearest(z_e)
        q = F.embedding(ids, self.codebook.weight).transpose(1, 2)  # (B, d, T)
        commitment = F.mse_loss(z_e, q.detach())
        codebook = F.mse_loss(q, z_e.detach())
        q = z_e + (q - z_e).detach()  # straight-through: forward value q, gradient to z_e
        if updating:
            self._update_usage(ids)
        loss = self.cfg.commitment * commitment + self.cfg.codebook_loss_weight * codebook
        return VQOutput(self.out_project(q), ids, commitment, codebook, loss,
                        torch.unique(ids).numel() * torch.ones((), device=z.device))

    @torch.no_grad()
    def _update_usage(self, ids: Tensor) -> None:
        counts = torch.bincount(ids.reshape(-1), minlength=self.codebook_size).to(self.cluster_size.dtype)
        if _distributed():
            dist.all_reduce(counts)  # usage of the global batch, identical on every rank
        self.cluster_size.mul_(self.cfg.decay).add_(counts, alpha=1 - self.cfg.decay)

    @torch.no_grad()
    def _reset_dead_codes(self, frames: Tensor) -> None:
        """Replace codes whose usage EMA is below the threshold by random frames ``(N, d)`` of the batch.

        Every rank holds the same ``cluster_size`` (counts are all-reduced), so all agree on which
        codes are dead; the replacement vectors are rank 0's, broadcast, so the codebooks stay equal.
        The replaced codes get a usage of exactly the threshold: unless they are picked at the next
        step they are replaced again, which is the fast reset the recipe relies on.
        """
        dead = self.cluster_size < self.cfg.threshold_ema_dead_code
        n_dead = int(dead.sum())
        if n_dead == 0 or frames.shape[0] == 0:
            return
        pick = torch.randint(0, frames.shape[0], (n_dead,), device=frames.device)
        new = frames[pick].to(self.codebook.weight.dtype)
        if _distributed():
            dist.broadcast(new, src=0)
        self.codebook.weight[dead] = new
        self.cluster_size[dead] = self.cfg.threshold_ema_dead_code
