"""Sampling settings, seeds and the top-k / top-p filter: how every engine draws the next token.

Seeds: the fast engine samples from a ``torch.Generator`` made for the call (:func:`call_generator`), so a
seeded result is the same whatever else runs, and torch's global RNG state is never touched.
``model.generate`` (``engine="hf"``, ``constrained=False``) can only draw from torch's global generator: a
seeded call there holds :data:`GLOBAL_RNG_LOCK` (one such call at a time in the process) and runs under
``torch.random.fork_rng`` with ``torch.manual_seed(seed)`` (:func:`seeded`), so the caller's RNG state is
restored afterwards. Both draw the same numbers for one seed.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

from sparktts import defaults
from sparktts.errors import ConfigError

__all__ = [
    "GLOBAL_RNG_LOCK", "SamplingConfig", "call_generator", "new_seed", "resolve_sampling", "seeded", "top_k_top_p",
]

_MAX_SEED = 2**31 - 1
MIN_TEMPERATURE = 1e-5
MAX_TEMPERATURE = 1e6  # far past the point where sampling is uniform; inf would make every score NaN
NAN_SCORES_MESSAGE = (
    "the language model produced NaN scores, so no token can be chosen: its weights are corrupt (NaN/inf) or "
    "overflow in this dtype. Re-download LLM/model.safetensors, or load in float32 (dtype=None)."
)
# The loose keyword arguments that SparkTTS.clone / create / stream accept as overrides of a SamplingConfig.
SAMPLING_FIELDS = ("temperature", "top_k", "top_p", "do_sample", "max_new_tokens")


@dataclass(frozen=True)
class SamplingConfig:
    """Decoding settings. Defaults are the original's ``generate`` arguments.

    Attributes:
        temperature: softmax temperature (> 0); ignored when ``do_sample`` is False.
        top_k: keep the k most likely tokens (0 disables).
        top_p: nucleus mass in (0, 1].
        max_new_tokens: generation budget; 3000 tokens = 60 s of speech at 50 semantic tokens/s.
        do_sample: False = greedy decoding (deterministic, what the batched == unbatched guarantee uses).
        seed: RNG seed for sampling; None draws a fresh one per call (it is recorded on the result).
    """

    temperature: float = defaults.TEMPERATURE
    top_k: int = defaults.TOP_K
    top_p: float = defaults.TOP_P
    max_new_tokens: int = defaults.MAX_NEW_TOKENS
    do_sample: bool = defaults.DO_SAMPLE
    seed: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            raise ConfigError(f"top_k must be an int >= 0 (0 disables it), got {self.top_k!r}")
        # bool is an int: top_p=True would silently mean 1.0 (no nucleus filtering).
        if not _is_number(self.top_p) or not 0.0 < self.top_p <= 1.0:
            raise ConfigError(f"top_p must be a number in (0, 1], got {self.top_p!r}")
        if not _is_number(self.temperature) or not 0.0 <= self.temperature <= MAX_TEMPERATURE:
            raise ConfigError(f"temperature must be a finite number > 0 (at most {MAX_TEMPERATURE:g}), got "
                              f"{self.temperature!r}")
        if not isinstance(self.do_sample, bool):
            raise ConfigError(f"do_sample must be True or False, got {self.do_sample!r}")
        if self.do_sample and float(self.temperature) == 0.0:
            raise ConfigError("temperature=0 cannot sample; for deterministic output use do_sample=False")
        if self.do_sample and float(self.temperature) < MIN_TEMPERATURE:
            # Scores divided by a smaller temperature overflow float32 to inf, and inf - inf is NaN.
            raise ConfigError(f"temperature {self.temperature!r} is too small to sample with (minimum "
                              f"{MIN_TEMPERATURE:g}); for deterministic output use do_sample=False")
        if isinstance(self.max_new_tokens, bool) or not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be an int >= 1, got {self.max_new_tokens!r}")
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**62
        ):
            raise ConfigError(f"seed must be None or an int in [0, 2**62), got {self.seed!r}")

    def replace(self, **changes: Any) -> SamplingConfig:
        """A copy with some fields changed; ``None`` values are ignored (keep the current value)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def generate_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``model.generate`` (sampling knobs only when sampling, to avoid warnings)."""
        kwargs: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "do_sample": self.do_sample}
        if self.do_sample:
            kwargs.update(temperature=float(self.temperature), top_k=self.top_k, top_p=float(self.top_p))
        else:
            # The model's generation_config may carry sampling defaults; neutralise them for greedy decoding.
            kwargs.update(temperature=None, top_k=None, top_p=None)
        return kwargs


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def new_seed() -> int:
    """A fresh random seed in [0, 2**31 - 1], drawn from the OS (independent of torch's RNG state)."""
    return secrets.randbelow(_MAX_SEED + 1)


# Held by every seeded draw from torch's GLOBAL generator (model.generate), so that two seeded calls never
# interleave on it. The fast engine does not need it: it samples from a generator of its own per call.
GLOBAL_RNG_LOCK = threading.RLock()


def call_generator(seed: int, device: torch.device | str) -> torch.Generator:
    """A fresh generator on ``device`` seeded with ``seed``: the same numbers the global one gives after
    ``torch.manual_seed(seed)``, without touching it."""
    return torch.Generator(device=device).manual_seed(seed)


@contextlib.contextmanager
def seeded(seed: int, device: torch.device | str | None = None) -> Iterator[None]:
    """Run a block with torch's global RNGs seeded to ``seed``; the caller's RNG state is restored afterwards.

    ``device``: the CUDA device whose RNG is forked as well (CPU is always forked). The block holds
    :data:`GLOBAL_RNG_LOCK`, so seeded blocks in different threads run one after another.
    """
    dev = torch.device(device) if device is not None else torch.device("cpu")
    devices = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else []
    with GLOBAL_RNG_LOCK, torch.random.fork_rng(devices=devices, device_type="cuda" if devices else "cpu"):
        torch.manual_seed(seed)
        yield



def top_k_top_p(logits: Tensor, top_k: int, top_p: float) -> Tensor:
    """transformers' TopK then TopP warpers (ties at the k-th value are kept; at least one token stays)."""
    if top_k > 0:
        k = min(top_k, logits.shape[-1])
        kth = torch.topk(logits, k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=False, dim=-1)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        remove = cumulative <= (1 - top_p)
        remove[..., -1:] = False
        logits = logits.masked_fill(remove.scatter(-1, order, remove), float("-inf"))
    return logits


def resolve_sampling(sampling: SamplingConfig | None = None, seed: int | None = None, **overrides: Any
                     ) -> SamplingConfig:
    """The settings of one call: ``sampling`` (or the defaults) with the non-None ``overrides`` and ``seed``
    applied, and a fresh seed drawn when none is set, so that every result records the seed it used."""
    if sampling is not None and not isinstance(sampling, SamplingConfig):
        raise ConfigError(f"sampling must be a SamplingConfig, got {type(sampling).__name__}; or pass "
                          "temperature=..., top_k=..., top_p=... directly")
    cfg = (sampling or SamplingConfig()).replace(**overrides)
    if seed is not None:
        cfg = cfg.replace(seed=seed)
    return cfg if cfg.seed is not None else cfg.replace(seed=new_seed())
