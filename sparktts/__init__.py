"""sparktts-lab: a research toolkit for Spark-TTS (BiCodec + Qwen2 LM)."""

from .audio import load_audio, save_audio
from .codec import BiCodec, BiCodecTokenizer, BiCodecTokens, CodecAnalysis
from .errors import AudioError, CheckpointError, ConfigError, PromptError, SparkTTSError

__version__ = "0.1.0"

__all__ = [
    "AudioError",
    "BiCodec",
    "BiCodecTokenizer",
    "BiCodecTokens",
    "CheckpointError",
    "CodecAnalysis",
    "ConfigError",
    "PromptError",
    "SparkTTSError",
    "__version__",
    "load_audio",
    "save_audio",
]
