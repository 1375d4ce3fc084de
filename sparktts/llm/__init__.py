"""Language-model side of Spark-TTS: random stand-in LLM directories for tests and benchmarks."""

from sparktts.llm.factory import (
    PRESETS,
    QWEN2_ADDED_TOKENS,
    QWEN2_BASE_VOCAB_SIZE,
    LLMPreset,
    build_tokenizer,
    make_random_llm,
)

__all__ = [
    "PRESETS",
    "QWEN2_ADDED_TOKENS",
    "QWEN2_BASE_VOCAB_SIZE",
    "LLMPreset",
    "build_tokenizer",
    "make_random_llm",
]
