"""BiCodec, the Spark-TTS audio codec: modules, loading, and the clip-level tokenizer."""

from .bicodec import BiCodec
from .tokenizer import BiCodecTokenizer, CodecAnalysis
from .tokens import BiCodecTokens

__all__ = ["BiCodec", "BiCodecTokenizer", "BiCodecTokens", "CodecAnalysis"]
