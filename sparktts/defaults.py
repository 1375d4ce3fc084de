"""Defaults the package decides once: where things are cached, and (below) the LLM and sampling defaults.

Every module that needs one of these reads it from here, so a default is changed in one place.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "SPARKTTS_CACHE"


def cache_dir() -> Path:
    """The toolkit's cache folder: ``$SPARKTTS_CACHE``, default ``~/.cache/sparktts`` (not created here).

    Holds what the package builds or assembles once: the tiny random stand-in release of the demo and
    the weights the eval back ends put together (Whisper, SpeechBrain links).
    """
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "sparktts")).expanduser()


# -- LLM sampling: the original's ``model.generate`` arguments (SamplingConfig, SparkTTS.inference, the CLIs).
TEMPERATURE = 0.8
TOP_K = 50
TOP_P = 0.95
MAX_NEW_TOKENS = 3000  # 60 s of speech at 50 semantic tokens per second
DO_SAMPLE = True
ENGINE = "fast"  # see sparktts.llm.engines
# CPU quantization of the LLM body (sparktts.llm.kernels): the choices of --quantize / quantize=.
QUANTIZE = ("int8", "int8-weight", "int4", "bf16", "auto")
QUANTIZE_HELP = ("LLM body on CPU with packed low-bit weights (faster; changes the numbers): int8, int8-weight, int4, "
                 "bf16 (no integer step), or auto (the fastest of bf16 and the 8-bit kernels on this CPU)")
CODEC_DTYPES = ("float32", "bfloat16", "auto")
CODEC_DTYPE_HELP = ("compute dtype of the codec's wave generator: float32 (default, as released), bfloat16 (faster "
                    "where the hardware has bf16; audio within -42 dB), auto")

# -- Long text: texts longer than MAX_CHARS are split into sentence chunks (sparktts.text.chunk_text) that are
# joined with a CROSSFADE_S crossfade; pieces shorter than MIN_CHARS are merged into a neighbour.
MAX_CHARS = 150
MIN_CHARS = 8
CROSSFADE_S = 0.05
BATCH_SIZE = 8  # prompts per generate call

# -- Streaming (SparkTTS.stream, sparktts.streaming.StreamingDecoder): semantic tokens per audio chunk (50 = 1 s),
# a smaller first chunk for earlier first audio, and the linear crossfade at chunk seams in samples.
STREAM_CHUNK_TOKENS = 50
STREAM_FIRST_CHUNK_TOKENS = 25
STREAM_CROSSFADE = 320
