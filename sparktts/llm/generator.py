"""LLM generation of BiCodec tokens: prompts -> engine -> parsed rows.

The original calls ``model.generate(max_new_tokens=3000, do_sample=True, top_k=50, top_p=0.95,
temperature=0.8)`` on one prompt and regex-parses the decoded text. :class:`SpeechGenerator` runs the
same step for a batch and adds:

* **Constrained decoding** (default): the output grammar (:mod:`sparktts.format.grammar`) masks every
  token that would make the output malformed, so every result parses into codec-valid ids.
  ``constrained=False`` reproduces the original exactly: plain ``generate``, ``batch_decode(...,
  skip_special_tokens=True)``, regex parsing; ids the codec cannot decode then raise a clear error.
* **Engines** (:mod:`sparktts.llm.engines`), chosen by name when the generator is built: ``fast``,
  ``hf``, ``vllm``. A request an engine cannot serve goes to its fallback.
* **Seeds** (:mod:`sparktts.llm.sampling`): a seeded result is the same whatever else runs.
* **Batching**: prompts are left-padded with the pad token and an attention mask; with greedy decoding
  each row equals its unbatched result.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from sparktts.errors import GenerationError
from sparktts.format.grammar import (
    GeneratedTokens,
    Mode,
    SpeechGrammar,
    SpeechVocab,
    infer_mode,
    parse_ids,
)
from sparktts.format.tokens import (
    GLOBAL_CODEBOOK_SIZE,
    RELEASE_NUM_GLOBAL_TOKENS,
    SEMANTIC_CODEBOOK_SIZE,
    parse_generated,
)
from sparktts.llm.engines import Engine, Request, build_engine, check_engine
from sparktts.llm.sampling import SamplingConfig

__all__ = ["SpeechGenerator"]


class SpeechGenerator:
    """Spark-TTS prompts -> :class:`GeneratedTokens`, with constrained decoding, seeds, batching and parsing.

    Args:
        model: the HF causal LM.
        tokenizer: its tokenizer (Spark-TTS tokens added).
        semantic_size / global_size / num_globals: the codec's sizes (ids the codec can decode).
        engine: the default engine ("fast", "hf" or "vllm"); a call may pass another.
        llm_dir: the ``LLM/`` directory (needed by ``engine="vllm"``, which loads its own copy).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        semantic_size: int = SEMANTIC_CODEBOOK_SIZE,
        global_size: int = GLOBAL_CODEBOOK_SIZE,
        num_globals: int = RELEASE_NUM_GLOBAL_TOKENS,
        engine: str = "fast",
        llm_dir: str | os.PathLike | None = None,
    ):
        self.model = model
        self.tokenizer = tokenizer
        gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        gen_eos = [] if gen_eos is None else [gen_eos] if isinstance(gen_eos, int) else list(gen_eos)
        # Where the unconstrained (original) generate stops: the generation config's EOS, else the tokenizer's.
        self.generate_eos: tuple[int, ...] = tuple(int(i) for i in gen_eos) or (int(tokenizer.eos_token_id),)
        vocab_size = int(model.get_output_embeddings().weight.shape[0])
        self.vocab = SpeechVocab.from_tokenizer(tokenizer, vocab_size, eos_ids=gen_eos, semantic_size=semantic_size,
                                                global_size=global_size, num_globals=num_globals)
        self._grammar: SpeechGrammar | None = None
        # HF fast tokenizers are Rust objects that refuse concurrent use ("Already borrowed") when one call
        # changes their padding settings; every use of the tokenizer by generation takes this lock.
        self.tokenizer_lock = threading.Lock()
        self.engine = check_engine(engine)  # the default engine's name
        self._engines: dict[str, Engine] = {}
        if engine == "vllm":  # built now: a missing vLLM fails at load time, not at the first call
            self._engines["vllm"] = build_engine("vllm", self, llm_dir)

    def engine_for(self, name: str | None, request: Request) -> Engine:
        """The engine ``name`` (default :attr:`engine`), or the first fallback that can serve ``request``."""
        engine = self._engine(check_engine(name or self.engine))
        while not engine.supports(request) and engine.fallback is not None:
            engine = self._engine(engine.fallback)
        return engine

    def _engine(self, name: str) -> Engine:
        if name not in self._engines:  # fast and hf are built on first use (vllm only at load time)
            self._engines[name] = build_engine(name, self)
        return self._engines[name]

    @property
    def fast_decoder(self) -> Any:
        """The fast engine's :class:`~sparktts.llm.decode.FastDecoder` (restricted head, KV cache)."""
        return self._engine("fast").decoder  # type: ignore[attr-defined]

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def grammar(self) -> SpeechGrammar:
        # Built lazily and kept: the masks are (11, V) booleans on the model's device.
        if self._grammar is None or self._grammar.masks.device != self.device:
            self._grammar = SpeechGrammar(self.vocab, self.device)
        return self._grammar

    def encode_prompts(self, prompts: Sequence[str]) -> dict[str, Tensor]:
        """Left-padded ``input_ids`` / ``attention_mask`` (B, L) for a list of prompt strings."""
        if not prompts:
            raise GenerationError("no prompts given: pass at least one text")
        with self.tokenizer_lock:
            enc = self.tokenizer(
                list(prompts), return_tensors="pt", padding=True, padding_side="left", add_special_tokens=True
            )
        return {"input_ids": enc["input_ids"].to(self.device), "attention_mask": enc["attention_mask"].to(self.device)}

    @torch.inference_mode()
    def generate(
        self,
        prompts: Sequence[str],
        sampling: SamplingConfig | None = None,
        *,
        constrained: bool = True,
        modes: Sequence[Mode] | None = None,
        logits_processor: Sequence[Any] = (),
        stopping_criteria: Sequence[Any] = (),
        streamer: Any = None,
        cancel: threading.Event | None = None,
        allow_empty: bool = False,
        engine: str | None = None,
    ) -> list[GeneratedTokens]:
        """Generate for a batch of prompts and parse each row.

        Args:
            prompts: B prompt strings (clone and create may be mixed).
            sampling: decoding settings; ``sampling.seed`` None means unseeded (global RNG, as the original).
            constrained: apply the output grammar; False = the original.
            modes: per-prompt modes; inferred from the prompt strings when None.
            logits_processor: extra processors, run after the constraint (e.g. to force tokens in tests).
            stopping_criteria: extra stopping criteria.
            streamer: a transformers streamer (gets the prompt ids first, then each step's (B,) tokens).
            cancel: when set (from another thread), generation stops after the current step.
            allow_empty: return rows without semantic tokens instead of raising (streams check themselves).
            engine: "fast", "hf" or "vllm" (default: :attr:`engine`). The fast engine serves constrained calls
                without extra processors / stopping criteria; everything else goes through ``model.generate``.

        Returns:
            One :class:`GeneratedTokens` per prompt, in order.

        Raises:
            GenerationError: a row has no semantic tokens (the message says why), or, unconstrained, the
                model produced ids the codec cannot decode / the wrong number of global tokens.
        """
        sampling = sampling or SamplingConfig()
        modes = list(modes) if modes is not None else [infer_mode(p) for p in prompts]
        if len(modes) != len(prompts):
            raise GenerationError(f"{len(prompts)} prompts but {len(modes)} modes")
        inputs = self.encode_prompts(prompts)
        request = Request(inputs["input_ids"], inputs["attention_mask"], list(prompts), modes, sampling,
                          constrained=constrained, logits_processor=logits_processor,
                          stopping_criteria=stopping_criteria, streamer=streamer, cancel=cancel)
        chosen = self.engine_for(engine, request)
        new_ids = chosen.generate(request)
        cancelled = cancel is not None and cancel.is_set()
        results = [self._parse_row(ids, mode, constrained, sampling.max_new_tokens, cancelled)
                   for ids, mode in zip(new_ids, modes)]
        if not chosen.enforces_grammar:
            for row in results:
                if row.mode == "create" and len(row.global_ids) != self.vocab.num_globals:
                    raise GenerationError(f"the engine produced {len(row.global_ids)} global tokens instead of "
                                          f"{self.vocab.num_globals}; use engine='fast' for grammar-constrained "
                                          "creation.")
        if not allow_empty:
            for i, res in enumerate(results):
                if not res.semantic_ids:
                    raise GenerationError(self.empty_reason(res, sampling.max_new_tokens, i, len(results)))
        return results

    # -- parsing ----------------------------------------------------------------------------------
    def stop_ids(self, constrained: bool) -> set[int]:
        """The ids that end a row: the grammar's stops, or (unconstrained) where the original stops."""
        return set(self.vocab.stop_ids) if constrained else set(self.generate_eos)

    def _parse_row(
        self, ids: list[int], mode: Mode, constrained: bool, max_new_tokens: int, cancelled: bool
    ) -> GeneratedTokens:
        """Cut a generated row at its first stop token and parse it."""
        stops = self.stop_ids(constrained)
        end = next((i for i, t in enumerate(ids) if t in stops), None)
        if end is not None:
            ids, reason = ids[: end + 1], "stop"
        else:
            reason = "cancelled" if cancelled and len(ids) < max_new_tokens else "length"
        res = self.parse_ids(ids, mode) if constrained else self.parse_text(ids, mode)
        res.finish_reason = reason  # type: ignore[assignment]
        return res

    def parse_ids(self, ids: Sequence[int], mode: Mode = "clone") -> GeneratedTokens:
        """Parse generated ids directly (no text round trip): every semantic / global id in order."""
        return parse_ids(self.vocab, ids, mode)

    def parse_text(self, ids: Sequence[int], mode: Mode = "clone") -> GeneratedTokens:
        """The original's parsing: ``batch_decode(skip_special_tokens=True)`` then the regexes.

        Raises:
            GenerationError: ids outside the codec's codebooks, or (create) not exactly ``num_globals``
                global ids: the codec could not decode them.
        """
        with self.tokenizer_lock:
            text = self.tokenizer.batch_decode([list(ids)], skip_special_tokens=True)[0]
        parsed = parse_generated(text)
        sem_size, glob_size = self.vocab.semantic_size, self.vocab.global_size
        bad = [i for i in parsed.semantic_ids if i >= sem_size]
        if bad:
            raise GenerationError(
                f"the model generated {len(bad)} semantic ids outside this codec's codebook [0, {sem_size}) "
                f"(e.g. {bad[:3]}); unconstrained decoding cannot prevent that. Use constrained=True."
            )
        globals_: list[int] = []
        if mode == "create":
            globals_ = parsed.global_ids
            if len(globals_) != self.vocab.num_globals or any(g >= glob_size for g in globals_):
                raise GenerationError(
                    f"the model generated {len(globals_)} global tokens (the codec needs exactly "
                    f"{self.vocab.num_globals} ids in [0, {glob_size})); the voice cannot be decoded. "
                    "Use constrained=True, which guarantees a well-formed voice."
                )
        return GeneratedTokens(semantic_ids=parsed.semantic_ids, global_ids=globals_, pitch_value=parsed.pitch_value,
                               speed_value=parsed.speed_value, token_ids=list(ids), mode=mode)

    def empty_reason(self, res: GeneratedTokens, max_new_tokens: int, row: int = 0, rows: int = 1) -> str:
        """Why a row produced no semantic tokens, and what to do about it."""
        where = f"row {row} of {rows}: " if rows > 1 else ""
        n = len(res.token_ids)
        if res.finish_reason == "cancelled":
            return f"{where}generation was cancelled after {n} tokens, before any semantic token"
        if res.finish_reason == "length":
            need = "about 40 tokens of pitch/speed/global preamble plus speech" if res.mode == "create" else "speech"
            return (
                f"{where}max_new_tokens={max_new_tokens} was used up before any semantic token was generated "
                f"(create mode needs {need}); raise max_new_tokens (the original uses 3000)"
            )
        return (
            f"{where}the model stopped after {n} tokens without generating any semantic token (it emitted its "
            "end-of-sequence token first). Try another seed or constrained=True, which forbids stopping before speech"
        )
