"""Language-model side of Spark-TTS: loading the released LLM, and random stand-ins for tests and benchmarks."""

from sparktts.llm.factory import (
    PRESETS,
    QWEN2_ADDED_TOKENS,
    QWEN2_BASE_VOCAB_SIZE,
    LLMPreset,
    build_tokenizer,
    make_random_llm,
)
from sparktts.llm.model import load_llm, resolve_dtype

__all__ = [
    "PRESETS",
    "QWEN2_ADDED_TOKENS",
    "QWEN2_BASE_VOCAB_SIZE",
    "LLMPreset",
    "build_tokenizer",
    "load_llm",
    "make_random_llm",
    "resolve_dtype",
]
