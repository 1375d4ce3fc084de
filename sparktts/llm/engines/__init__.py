"""LLM engines behind one interface (:class:`~sparktts.llm.engines.base.Engine`), chosen by name when the
generator is built: ``fast`` (default), ``hf`` (``model.generate``) and ``vllm`` (GPU servers)."""

from __future__ import annotations

import os
from typing import Any

from sparktts.errors import ConfigError
from sparktts.llm.engines.base import Engine, LMContext, Request

__all__ = ["ENGINE_NAMES", "Engine", "LMContext", "Request", "build_engine", "check_engine"]

ENGINE_NAMES = ("fast", "hf", "vllm")


def check_engine(name: Any) -> str:
    """``name`` if it names an engine (the one check of an engine name in the package)."""
    if name not in ENGINE_NAMES:
        raise ConfigError(f"engine must be 'fast', 'hf' or 'vllm', not {name!r}")
    return name


def build_engine(name: str, ctx: LMContext, llm_dir: str | os.PathLike | None = None) -> Engine:
    """The engine ``name`` over ``ctx``; ``vllm`` loads its own copy of the model from ``llm_dir``."""
    if check_engine(name) == "fast":
        from sparktts.llm.engines.fast import FastEngine

        return FastEngine(ctx)
    if name == "hf":
        from sparktts.llm.engines.hf import HFEngine

        return HFEngine(ctx)
    if llm_dir is None:
        raise ConfigError("engine='vllm' is chosen when the model is loaded: "
                          "SparkTTS.from_pretrained(model_dir, engine='vllm')")
    from sparktts.llm.engines.vllm import VLLMEngine

    return VLLMEngine(ctx, llm_dir)
