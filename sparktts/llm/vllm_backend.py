"""Optional vLLM back end for the language model (GPU servers): same prompts, same parsing.

``SparkTTS.from_pretrained(dir, engine="vllm")`` swaps ``model.generate`` for a vLLM engine over the
release's ``LLM/`` directory. Prompts are built by :mod:`sparktts.prompts` and results parsed by the
same :class:`~sparktts.generation.SpeechGenerator` code as the other engines. vLLM cannot run the
per-step grammar, so it samples from the Spark-TTS tokens only (``allowed_token_ids``: semantic
tokens and the end token for cloning; every speech token for creation) and the parser then checks the
structure (a creation that did not produce exactly 32 global tokens is a ``GenerationError``).

Install with ``pip install "sparktts-lab[vllm]"`` on a CUDA machine. Not exercised by this project's
CI (no GPU there); without vLLM, selecting it fails with an error that says how to install it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ..errors import ConfigError
from ..generation import GeneratedTokens, Kind, SamplingConfig, SpeechGenerator, infer_mode, new_seed


def require_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise ConfigError(
            "engine='vllm' needs the vLLM package (CUDA GPUs only): pip install 'sparktts-lab[vllm]'. "
            "Use engine='fast' (the default) on this machine."
        ) from exc
    return vllm


class VLLMGenerator:
    """Generates Spark-TTS token rows with vLLM; parsing is delegated to a :class:`SpeechGenerator`.

    Args:
        llm_dir: the release's ``LLM/`` directory.
        parser: a SpeechGenerator built for the same tokenizer and codec (its vocab and parsers are used).
        dtype: vLLM dtype ("bfloat16" by default on GPUs).
        engine_kwargs: passed to ``vllm.LLM`` (e.g. ``gpu_memory_utilization``).
    """

    def __init__(self, llm_dir: str | os.PathLike, parser: SpeechGenerator, dtype: str = "bfloat16",
                 **engine_kwargs: Any):
        vllm = require_vllm()
        self.vllm = vllm
        self.parser = parser
        self.llm = vllm.LLM(model=str(llm_dir), dtype=dtype, **engine_kwargs)
        vocab = parser.vocab
        semantic = (vocab.kind == Kind.SEMANTIC).nonzero().squeeze(1).tolist()
        speech = (vocab.kind != Kind.OTHER).nonzero().squeeze(1).tolist()
        markers = list(vocab.markers.values())
        self.allowed = {"clone": sorted({*semantic, *vocab.stop_ids, vocab.markers["start_semantic"]}),
                        "create": sorted({*speech, *markers, *vocab.stop_ids})}

    def generate(self, prompts: Sequence[str], sampling: SamplingConfig, modes: Sequence[str] | None = None
                 ) -> list[GeneratedTokens]:
        modes = list(modes) if modes is not None else [infer_mode(p) for p in prompts]
        seed = sampling.seed if sampling.seed is not None else new_seed()
        params = [
            self.vllm.SamplingParams(
                temperature=float(sampling.temperature) if sampling.do_sample else 0.0,
                top_k=sampling.top_k if sampling.do_sample and sampling.top_k > 0 else -1,
                top_p=float(sampling.top_p) if sampling.do_sample else 1.0,
                max_tokens=sampling.max_new_tokens,
                seed=seed + i,
                stop_token_ids=list(self.parser.vocab.stop_ids),
                allowed_token_ids=self.allowed["create" if m == "create" else "clone"],
                detokenize=False,
            )
            for i, m in enumerate(modes)
        ]
        outputs = self.llm.generate(list(prompts), params, use_tqdm=False)
        rows = []
        for out, mode in zip(outputs, modes):
            ids = list(out.outputs[0].token_ids)
            row = self.parser.parse_ids(ids, mode)  # type: ignore[arg-type]
            if mode == "create" and len(row.global_ids) != self.parser.vocab.num_globals:
                from ..errors import GenerationError

                raise GenerationError(f"vLLM produced {len(row.global_ids)} global tokens instead of "
                                      f"{self.parser.vocab.num_globals}; use engine='fast' for grammar-constrained "
                                      "creation.")
            rows.append(row)
        return rows
