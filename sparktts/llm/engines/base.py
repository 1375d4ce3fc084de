"""The one interface every LLM engine implements: a batch of tokenized prompts in, generated ids out.

An engine does not parse: :class:`sparktts.llm.generator.SpeechGenerator` encodes the prompts, picks the
engine (falling back along ``fallback`` when an engine cannot serve a request, e.g. vLLM cannot stream),
and parses every engine's ids the same way.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor

from sparktts.format.grammar import Mode, SpeechGrammar, SpeechVocab
from sparktts.llm.sampling import SamplingConfig

__all__ = ["Engine", "LMContext", "Request"]


@dataclass
class Request:
    """One batched generation.

    Attributes:
        input_ids / attention_mask: ``(B, L)`` left-padded prompts on the model's device.
        prompts: the B prompt strings (engines that tokenize themselves, like vLLM, use these).
        modes: the grammar mode of every row.
        constrained: apply the output grammar; False = the original's plain ``generate``.
        logits_processor / stopping_criteria: extra transformers processors (tests force tokens with them).
        streamer: gets the prompt ids, then each step's ``(B,)`` tokens, then ``end()``.
        cancel: set from another thread to stop after the current step.
    """

    input_ids: Tensor
    attention_mask: Tensor
    prompts: list[str]
    modes: list[Mode]
    sampling: SamplingConfig
    constrained: bool = True
    logits_processor: Sequence[Any] = ()
    stopping_criteria: Sequence[Any] = ()
    streamer: Any = None
    cancel: threading.Event | None = None

    @property
    def prompt_length(self) -> int:
        return int(self.input_ids.shape[1])

    @property
    def seed(self) -> int | None:
        """The seed to draw with; None for greedy decoding, which draws no random numbers."""
        return self.sampling.seed if self.sampling.do_sample else None


class LMContext(Protocol):
    """What engines read from their generator: the model, its Spark-TTS vocabulary and grammar."""

    model: Any
    vocab: SpeechVocab

    @property
    def grammar(self) -> SpeechGrammar: ...

    @property
    def device(self) -> torch.device: ...


class Engine(Protocol):
    """An LLM engine.

    Attributes:
        fallback: the engine that serves the requests this one does not support (None: it serves all).
        enforces_grammar: True when every constrained row follows the grammar step by step; False (vLLM)
            makes the generator check the parsed structure instead.
    """

    fallback: str | None
    enforces_grammar: bool

    def supports(self, request: Request) -> bool:
        """Whether this engine can run ``request``."""
        ...

    def generate(self, request: Request) -> list[list[int]]:
        """The new ids of every row, in order (rows may carry padding after their stop token)."""
        ...
