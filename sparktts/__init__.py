"""sparktts-lab: a research toolkit for Spark-TTS (BiCodec + Qwen2 LM)."""

from .audio import load_audio, save_audio
from .codec import BiCodec, BiCodecTokenizer, BiCodecTokens, CodecAnalysis
from .errors import (
    AudioError,
    CheckpointError,
    ConfigError,
    GenerationError,
    PromptError,
    SparkTTSError,
    SparkTTSWarning,
)

__version__ = "0.1.0"

# Imported after __version__: voices.py records it in voice metadata.
from .inference.inputs import LongText  # noqa: E402
from .inference.stream import StreamOptions, SynthesisStream  # noqa: E402
from .inference.synthesis import Synthesis  # noqa: E402
from .inference.tts import SparkTTS  # noqa: E402
from .llm.sampling import SamplingConfig  # noqa: E402
from .voices import Voice  # noqa: E402

__all__ = [
    "AudioError",
    "BiCodec",
    "BiCodecTokenizer",
    "BiCodecTokens",
    "CheckpointError",
    "CodecAnalysis",
    "ConfigError",
    "GenerationError",
    "LongText",
    "PromptError",
    "SamplingConfig",
    "SparkTTS",
    "SparkTTSError",
    "SparkTTSWarning",
    "StreamOptions",
    "Synthesis",
    "SynthesisStream",
    "Voice",
    "__version__",
    "load_audio",
    "save_audio",
]
