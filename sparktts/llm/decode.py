"""Fast decoding for Spark-TTS: a KV-cached loop whose LM head only scores the tokens that can follow.

At every step of a Spark-TTS generation only Spark-TTS tokens are allowed (semantic ids, global ids,
pitch/speed values, a few markers, the end token): about 13k of the release's 166k vocabulary. The
original projects the hidden state onto all 166k rows of the LM head (149 M multiply-adds per token,
~40 % of the whole 0.5B model's work); here the head is sliced once to those rows and the grammar's
per-phase masks are applied in that smaller space. Under greedy decoding the chosen tokens are the
ones ``model.generate`` with the same grammar constraint chooses (the same dot products, the same
first-maximum tie rule); sampled runs draw from the same distribution but consume the random stream
differently, so a seed reproduces results within one engine.

The transformer itself runs through :class:`sparktts.llm.qwen2.LeanQwen2` (same arithmetic as
transformers' Qwen2, without its per-step overhead) and a KV cache written in place.

Options that change numbers, for speed on CPU: ``dtype=torch.bfloat16`` and ``quantize="int8"``
(dynamic int8 linear layers in the transformer body, per-row weight scales; the restricted head stays
in float).
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from sparktts.errors import GenerationError
from sparktts.format.grammar import Mode, Phase, RowState, SpeechGrammar
from sparktts.llm.qwen2 import LeanQwen2, decoder_body
from sparktts.llm.sampling import NAN_SCORES_MESSAGE, SamplingConfig
from sparktts.llm.sampling import top_k_top_p as _top_k_top_p

__all__ = ["FastDecoder"]


# Phases after the first semantic token can be reached: their ids form the leading block of the head.
_LATE_PHASES = (Phase.SEMANTIC_START, Phase.SEMANTIC_OPEN, Phase.SEMANTIC, Phase.DONE)


class FastDecoder:
    """Constrained generation with a restricted LM head and a KV cache.

    Args:
        model: a transformers causal LM (Qwen2 for the release).
        grammar: the :class:`sparktts.format.grammar.SpeechGrammar` of its tokenizer.
    """

    def __init__(self, model: Any, grammar: SpeechGrammar):
        self.model = model
        self.grammar = grammar
        self.body = decoder_body(model)
        head = model.get_output_embeddings()
        device = grammar.masks.device
        # Qwen2 (every Spark-TTS release) runs through the lean forward; other LMs through transformers.
        self.lean = LeanQwen2(model) if LeanQwen2.supports(model) else None
        # Every id any phase can produce (plus pad, which finished rows are fed). The ids allowed once the
        # semantic tokens have begun come first, so that those steps -- nearly all of them -- score only
        # that leading block of rows; the rest (global, pitch, speed ids, markers) follow.
        union = grammar.masks.any(dim=0)
        union[grammar.vocab.pad_id] = True
        late = grammar.masks[list(_LATE_PHASES)].any(dim=0)
        late[grammar.vocab.pad_id] = True
        self.ids = torch.cat([late.nonzero(), (union & ~late).nonzero()]).squeeze(1).to(device)  # (U,)
        self.late_rows = int(late.sum())
        self.late_phase = torch.zeros(len(Phase), dtype=torch.bool, device=device)
        self.late_phase[list(_LATE_PHASES)] = True
        weight = head.weight if isinstance(head.weight, Tensor) else head.weight()
        # The head keeps the weights' stored dtype (bf16 rows for an int8 body loaded from the bf16 release:
        # half the bytes per step, and the hidden state's rounding to bf16 is far below int8's).
        self.weight = weight.detach()[self.ids].contiguous()  # (U, H)
        bias = getattr(head, "bias", None)
        self.bias = None if bias is None or not isinstance(bias, Tensor) else bias.detach()[self.ids]
        self.masks = grammar.masks[:, self.ids]  # (phases, U)
        # transformers 5 renamed the cache argument of the base model's forward.
        params = inspect.signature(self.body.forward).parameters
        self.cache_arg = "cache" if "cache" in params else "past_key_values"
        stop_ids = torch.tensor(grammar.vocab.stop_ids, device=device)
        self.stop = torch.isin(self.ids, stop_ids)

    @property
    def head_rows(self) -> int:
        return int(self.ids.numel())

    def _logits(self, hidden: Tensor, rows: int | None = None) -> Tensor:
        """``(B, H)`` -> float logits ``(B, rows)`` over the first ``rows`` restricted ids (default: all)."""
        weight = self.weight if rows is None else self.weight[:rows]
        logits = hidden.to(weight.dtype) @ weight.T
        if self.bias is not None:
            logits = logits + self.bias[: weight.shape[0]]
        return logits.float()

    def _greedy(self, logits: Tensor, ids: Tensor) -> Tensor:
        """Index of the maximum per row; on exact ties the smallest token id, as argmax over the vocabulary."""
        best = logits.max(dim=-1, keepdim=True).values
        big = torch.iinfo(ids.dtype).max
        tied_ids = torch.where(logits == best, ids, big)
        return tied_ids.argmin(dim=-1)

    def _lean_forward(self, input_ids: Tensor, attention_mask: Tensor, sampling: SamplingConfig) -> Any:
        """``forward(ids, positions) -> (B, H)`` through :class:`LeanQwen2` with one cache for the call."""
        lean = self.lean
        batch, length = input_ids.shape
        # Sized for typical outputs; the cache doubles if a generation runs longer.
        cache = lean.new_cache(batch, length + min(sampling.max_new_tokens, 1024))
        key_mask = None if bool(attention_mask.all()) else attention_mask.bool()

        def forward(ids: Tensor, positions: Tensor) -> Tensor:
            nonlocal key_mask
            if key_mask is not None and cache.length:
                key_mask = torch.cat([key_mask, key_mask.new_ones(batch, ids.shape[1])], dim=1)
            return lean(ids, positions, cache, key_mask)

        return forward

    def _hf_forward(self, attention_mask: Tensor) -> Any:
        """The same contract through the transformers body (any causal LM) and its DynamicCache."""
        from transformers import DynamicCache

        cache = DynamicCache()
        mask = attention_mask[:, :0]

        def forward(ids: Tensor, positions: Tensor) -> Tensor:
            nonlocal mask
            new = attention_mask if mask.shape[1] == 0 else mask.new_ones(ids.shape)
            mask = torch.cat([mask, new], dim=1)
            out = self.body(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                            **{self.cache_arg: cache})
            return out.last_hidden_state[:, -1]

        return forward

    @torch.inference_mode()
    def generate(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        modes: Sequence[Mode],
        sampling: SamplingConfig,
        *,
        streamer: Any = None,
        cancel: threading.Event | None = None,
        min_new_tokens: int = 0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Left-padded prompts ``(B, L)`` -> ``(B, L + n)`` ids, rows padded with ``pad_id`` after they stop.

        ``min_new_tokens`` forbids the stop tokens before that many steps (fixed-length benchmarks).
        ``generator``: where sampling draws its random numbers (one per call keeps concurrent calls apart;
        see :func:`sparktts.llm.sampling.call_generator`); None = torch's global generator.
        Every call has its own cache and grammar states: calls may run concurrently on one decoder.

        Raises:
            GenerationError: the model's scores are NaN (corrupt weights), so no token can be chosen.
        """
        vocab = self.grammar.vocab
        batch = input_ids.shape[0]
        states = [RowState(SpeechGrammar.start_phase(m)) for m in modes]
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)
        if self.lean is not None:
            forward = self._lean_forward(input_ids, attention_mask, sampling)
        else:
            forward = self._hf_forward(attention_mask)
        hidden = forward(input_ids, position_ids)
        if streamer is not None:
            streamer.put(input_ids.cpu())
        unfinished = torch.ones(batch, dtype=torch.bool, device=input_ids.device)
        pad = torch.full((batch,), vocab.pad_id, dtype=input_ids.dtype, device=input_ids.device)
        steps: list[Tensor] = []
        for step in range(sampling.max_new_tokens):
            phases = torch.tensor([int(s.phase) for s in states], device=self.masks.device)
            rows = self.late_rows if bool(self.late_phase[phases].all()) else self.head_rows
            allowed = self.masks[phases, :rows]
            if step < min_new_tokens:
                allowed = allowed & ~self.stop[:rows]
            logits = self._logits(hidden, rows).masked_fill(~allowed, float("-inf"))
            if sampling.do_sample:
                logits = _top_k_top_p(logits / float(sampling.temperature), sampling.top_k, float(sampling.top_p))
                probs = logits.softmax(dim=-1)
                if bool(torch.isnan(probs).any()):  # NaN weights (torch.multinomial would fail obscurely)
                    raise GenerationError(NAN_SCORES_MESSAGE)
                choice = torch.multinomial(probs, num_samples=1, generator=generator).squeeze(1)
            else:
                if bool(torch.isnan(logits).any()):
                    raise GenerationError(NAN_SCORES_MESSAGE)
                choice = self._greedy(logits, self.ids[:rows])
            tokens = torch.where(unfinished, self.ids[choice].to(input_ids.dtype), pad)
            for state, tok in zip(states, tokens.tolist()):
                self.grammar.advance(state, tok)
            unfinished &= ~self.stop[choice]
            steps.append(tokens)
            if streamer is not None:
                streamer.put(tokens.cpu())
            if not bool(unfinished.any()) or (cancel is not None and cancel.is_set()):
                break
            position_ids = position_ids[:, -1:] + 1
            hidden = forward(tokens[:, None], position_ids)
        if streamer is not None:
            streamer.end()
        return torch.cat([input_ids, torch.stack(steps, dim=1)], dim=1)
