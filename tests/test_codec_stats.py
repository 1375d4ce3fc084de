"""Codebook usage statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sparktts.codec.stats import codebook_stats
from sparktts.errors import SparkTTSError


def test_uniform_use_has_perplexity_equal_to_codes_used():
    stats = codebook_stats(np.tile(np.arange(16), 5), 64)
    assert stats["tokens"] == 80 and stats["distinct"] == 16 and stats["usage"] == 0.25
    assert stats["perplexity"] == pytest.approx(16.0)
    assert stats["entropy_bits"] == pytest.approx(4.0)


def test_skewed_use_has_lower_perplexity_and_torch_input_works():
    ids = torch.tensor([[0, 0, 0, 0, 0, 0, 1, 2]])
    stats = codebook_stats(ids, 8)
    p = np.array([6, 1, 1]) / 8
    assert stats["distinct"] == 3
    assert stats["perplexity"] == pytest.approx(float(np.exp(-(p * np.log(p)).sum())))
    assert 1.0 < stats["perplexity"] < 3.0


@pytest.mark.parametrize("ids, needle", [([], "no token ids"), ([0.5], "must be integers"), ([9], r"\[0, 8\)"),
                                         ([-1], r"\[0, 8\)")])
def test_bad_ids_are_named(ids, needle):
    with pytest.raises(SparkTTSError, match=needle):
        codebook_stats(np.asarray(ids), 8)
