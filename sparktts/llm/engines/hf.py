"""``engine="hf"``: transformers' ``model.generate``, the original's way of computing (serves every request)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from sparktts.errors import GenerationError
from sparktts.format.grammar import Mode, RowState, SpeechGrammar
from sparktts.llm.engines.base import LMContext, Request
from sparktts.llm.sampling import NAN_SCORES_MESSAGE, seeded

__all__ = ["HFEngine", "SpeechConstraint"]


class SpeechConstraint:
    """Logits processor: masks, per row, every token the output grammar does not allow next.

    It keeps one grammar state per row and consumes the tokens appended since its last call, so each step
    costs O(batch) Python work plus one masked fill. Create a fresh instance per ``generate`` call. The
    mask is applied before temperature / top-k / top-p (transformers runs custom processors first), so
    sampling renormalises over the allowed tokens.
    """

    def __init__(self, grammar: SpeechGrammar, modes: Sequence[Mode], prompt_length: int):
        self.grammar = grammar
        self.states = [RowState(SpeechGrammar.start_phase(m)) for m in modes]
        self.consumed = prompt_length

    def __call__(self, input_ids: Tensor, scores: Tensor) -> Tensor:
        """``input_ids``: (B, L) prompt + generated so far; ``scores``: (B, V) logits -> masked (B, V)."""
        if input_ids.shape[0] != len(self.states):
            raise GenerationError(
                f"the constraint was built for {len(self.states)} rows but generate passed {input_ids.shape[0]}; "
                "beam search and num_return_sequences > 1 are not supported with constrained decoding"
            )
        new = input_ids[:, self.consumed :].tolist()
        self.consumed = input_ids.shape[1]
        for state, toks in zip(self.states, new):
            for tok in toks:
                self.grammar.advance(state, tok)
        phases = torch.tensor([int(s.phase) for s in self.states], device=self.grammar.masks.device)
        allowed = self.grammar.masks[phases]
        if allowed.shape[-1] != scores.shape[-1]:
            raise GenerationError(
                f"the model produced {scores.shape[-1]} logits but the vocabulary has {allowed.shape[-1]} entries"
            )
        return scores.masked_fill(~allowed.to(scores.device), float("-inf"))


def _refuse_nan_scores(input_ids: Tensor, scores: Tensor) -> Tensor:
    """Logits processor: NaN scores (corrupt weights) end generation with a clear error; greedy decoding would
    otherwise pick an arbitrary token in silence, and sampling fail inside torch.multinomial."""
    if bool(torch.isnan(scores).any()):
        raise GenerationError(NAN_SCORES_MESSAGE)
    return scores


class _Cancel:
    """Stopping criterion set from another thread (a closed stream stops its generation)."""

    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids: Tensor, scores: Tensor, **kwargs: Any) -> Tensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


class HFEngine:
    """``model.generate`` with the grammar as a logits processor (or without it, unconstrained).

    Seeded sampling draws from torch's global generator under :func:`sparktts.llm.sampling.seeded`.
    """

    fallback = None
    enforces_grammar = True

    def __init__(self, ctx: LMContext):
        self.ctx = ctx

    def supports(self, request: Request) -> bool:
        return True

    def generate(self, request: Request) -> list[list[int]]:
        from transformers import LogitsProcessorList, StoppingCriteriaList

        ctx = self.ctx
        processors: list[Any] = [_refuse_nan_scores]
        kwargs = request.sampling.generate_kwargs()
        if request.constrained:
            processors.append(SpeechConstraint(ctx.grammar, request.modes, request.prompt_length))
            # <|end_semantic_token|> also ends a row: the grammar allows nothing useful after it.
            kwargs["eos_token_id"] = list(ctx.vocab.stop_ids)
        processors.extend(request.logits_processor)
        criteria = list(request.stopping_criteria)
        if request.cancel is not None:
            criteria.append(_Cancel(request.cancel))
        seed = request.seed
        with seeded(seed, ctx.device) if seed is not None else contextlib.nullcontext():
            try:
                out = ctx.model.generate(
                    input_ids=request.input_ids,
                    attention_mask=request.attention_mask,
                    **kwargs,
                    pad_token_id=ctx.vocab.pad_id,
                    logits_processor=LogitsProcessorList(processors),
                    stopping_criteria=StoppingCriteriaList(criteria),
                    streamer=request.streamer,
                )
            except RuntimeError as exc:
                if "probability tensor contains" in str(exc):  # torch.multinomial on NaN scores
                    raise GenerationError(NAN_SCORES_MESSAGE) from exc
                raise
        return out[:, request.prompt_length :].tolist()
