"""Fast decoding for Spark-TTS: a KV-cached loop whose LM head only scores the tokens that can follow.

At every step of a Spark-TTS generation only Spark-TTS tokens are allowed (semantic ids, global ids,
pitch/speed values, a few markers, the end token): about 13k of the release's 166k vocabulary. The
original projects the hidden state onto all 166k rows of the LM head (149 M multiply-adds per token,
~40 % of the whole 0.5B model's work); here the head is sliced once to those rows and the grammar's
per-phase masks are applied in that smaller space. Under greedy decoding the chosen tokens are the
ones ``model.generate`` with the same grammar constraint chooses (the same dot products, the same
first-maximum tie rule); sampled runs draw from the same distribution but consume the random stream
differently, so a seed reproduces results within one engine.

Options that change numbers, for speed on CPU: ``dtype=torch.bfloat16`` and ``quantize="int8"``
(dynamic int8 linear layers in the transformer body; the restricted head stays in float).
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from .. import generation as G


def quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """Dynamic int8 quantization of the transformer body's linear layers (weights int8, activations fp32).

    The LM head is left alone: :class:`FastDecoder` slices it. Returns the model (changed in place).
    """
    from torch.ao.quantization import quantize_dynamic

    body = model.get_decoder() if hasattr(model, "get_decoder") else model.model
    quantize_dynamic(body, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
    return model


def _top_k_top_p(logits: Tensor, top_k: int, top_p: float) -> Tensor:
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


class FastDecoder:
    """Constrained generation with a restricted LM head and a KV cache.

    Args:
        model: a transformers causal LM (Qwen2 for the release).
        grammar: the :class:`sparktts.generation.SpeechGrammar` of its tokenizer.
    """

    def __init__(self, model: Any, grammar: G.SpeechGrammar):
        self.model = model
        self.grammar = grammar
        self.body = model.get_decoder() if hasattr(model, "get_decoder") else model.model
        head = model.get_output_embeddings()
        device = grammar.masks.device
        # Every id any phase can produce (plus pad, which finished rows are fed), ascending: the first
        # maximum in this order is the first maximum over the full vocabulary, as in argmax there.
        union = grammar.masks.any(dim=0)
        union[grammar.vocab.pad_id] = True
        self.ids = union.nonzero().squeeze(1).to(device)  # (U,)
        weight = head.weight if isinstance(head.weight, Tensor) else head.weight()
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

    def _logits(self, hidden: Tensor) -> Tensor:
        logits = hidden.to(self.weight.dtype) @ self.weight.T
        if self.bias is not None:
            logits = logits + self.bias
        return logits.float()

    @torch.inference_mode()
    def generate(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        modes: Sequence[G.Mode],
        sampling: G.SamplingConfig,
        *,
        streamer: Any = None,
        cancel: threading.Event | None = None,
        min_new_tokens: int = 0,
    ) -> Tensor:
        """Left-padded prompts ``(B, L)`` -> ``(B, L + n)`` ids, rows padded with ``pad_id`` after they stop.

        ``min_new_tokens`` forbids the stop tokens before that many steps (fixed-length benchmarks).
        Seeding is the caller's (wrap the call in :func:`sparktts.generation.seeded`).
        """
        from transformers import DynamicCache

        vocab = self.grammar.vocab
        batch = input_ids.shape[0]
        states = [G._RowState(G.SpeechGrammar.start_phase(m)) for m in modes]
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)
        cache = DynamicCache()
        out = self.body(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                        use_cache=True, **{self.cache_arg: cache})
        hidden = out.last_hidden_state[:, -1]
        if streamer is not None:
            streamer.put(input_ids.cpu())
        unfinished = torch.ones(batch, dtype=torch.bool, device=input_ids.device)
        pad = torch.full((batch,), vocab.pad_id, dtype=input_ids.dtype, device=input_ids.device)
        steps: list[Tensor] = []
        for step in range(sampling.max_new_tokens):
            phases = torch.tensor([int(s.phase) for s in states], device=self.masks.device)
            allowed = self.masks[phases]
            if step < min_new_tokens:
                allowed = allowed & ~self.stop
            logits = self._logits(hidden).masked_fill(~allowed, float("-inf"))
            if sampling.do_sample:
                logits = _top_k_top_p(logits / float(sampling.temperature), sampling.top_k, float(sampling.top_p))
                choice = torch.multinomial(logits.softmax(dim=-1), num_samples=1).squeeze(1)
            else:
                choice = logits.argmax(dim=-1)
            tokens = torch.where(unfinished, self.ids[choice].to(input_ids.dtype), pad)
            for state, tok in zip(states, tokens.tolist()):
                self.grammar.advance(state, tok)
            unfinished &= ~self.stop[choice]
            steps.append(tokens)
            if streamer is not None:
                streamer.put(tokens.cpu())
            if not bool(unfinished.any()) or (cancel is not None and cancel.is_set()):
                break
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones(batch, 1)], dim=1)
            position_ids = position_ids[:, -1:] + 1
            out = self.body(input_ids=tokens[:, None], attention_mask=attention_mask, position_ids=position_ids,
                            use_cache=True, **{self.cache_arg: cache})
            hidden = out.last_hidden_state[:, -1]
        if streamer is not None:
            streamer.end()
        return torch.cat([input_ids, torch.stack(steps, dim=1)], dim=1)
