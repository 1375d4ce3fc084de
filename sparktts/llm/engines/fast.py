"""``engine="fast"`` (the default): :class:`sparktts.llm.decode.FastDecoder`, a KV-cached loop over the
restricted LM head; the same greedy tokens as ``model.generate`` with the grammar. Serves constrained
requests without extra transformers processors; the rest falls back to ``hf``."""

from __future__ import annotations

from sparktts.llm.decode import FastDecoder
from sparktts.llm.engines.base import LMContext, Request
from sparktts.llm.sampling import call_generator

__all__ = ["FastEngine"]


class FastEngine:
    fallback = "hf"
    enforces_grammar = True

    def __init__(self, ctx: LMContext):
        self.ctx = ctx
        self._decoder: FastDecoder | None = None

    @property
    def decoder(self) -> FastDecoder:
        """Built on first use and rebuilt when the grammar is (the model moved to another device)."""
        grammar = self.ctx.grammar
        if self._decoder is None or self._decoder.grammar is not grammar:
            self._decoder = FastDecoder(self.ctx.model, grammar)
        return self._decoder

    def supports(self, request: Request) -> bool:
        return request.constrained and not request.logits_processor and not request.stopping_criteria

    def generate(self, request: Request) -> list[list[int]]:
        seed = request.seed
        # A generator of the call's own: concurrent calls never share a random stream.
        generator = call_generator(seed, self.ctx.device) if seed is not None else None
        out = self.decoder.generate(request.input_ids, request.attention_mask, request.modes, request.sampling,
                                    streamer=request.streamer, cancel=request.cancel, generator=generator)
        return out[:, request.prompt_length :].tolist()
