"""Codebook usage statistics of token sequences (what a codec uses of its codebook).

Used by the codec-analysis and training notebooks and by evaluations: a healthy codec spreads its
semantic tokens over many codes; a collapsed one (no dead-code reset) uses a few dozen.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import SparkTTSError


def codebook_stats(ids: Any, codebook_size: int) -> dict[str, float]:
    """Usage of a codebook by token ids (any shape; numpy or torch; padding must be removed first).

    Returns ``tokens`` (count), ``distinct`` codes, ``usage`` (distinct / codebook size),
    ``perplexity`` (exp of the entropy of the code histogram: the number of equally used codes with
    the same entropy) and ``entropy_bits``.
    """
    arr = np.asarray(ids.detach().cpu() if hasattr(ids, "detach") else ids).reshape(-1)
    if arr.size == 0:
        raise SparkTTSError("codebook_stats: no token ids given.")
    if not np.issubdtype(arr.dtype, np.integer):
        raise SparkTTSError(f"codebook_stats: token ids must be integers, got dtype {arr.dtype}.")
    if arr.min() < 0 or arr.max() >= codebook_size:
        raise SparkTTSError(f"codebook_stats: ids must lie in [0, {codebook_size}); given range "
                            f"[{arr.min()}, {arr.max()}].")
    counts = np.bincount(arr, minlength=codebook_size)
    p = counts[counts > 0] / arr.size
    entropy = float(-(p * np.log(p)).sum())
    distinct = int((counts > 0).sum())
    return {"tokens": int(arr.size), "distinct": distinct, "usage": distinct / codebook_size,
            "perplexity": float(np.exp(entropy)), "entropy_bits": entropy / np.log(2)}
