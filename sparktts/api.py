"""The old import path of the user-facing API (``from sparktts.api import SparkTTS, Synthesis``), kept so that
existing code and notebooks keep working. The code lives in :mod:`sparktts.inference`."""

from sparktts.inference.inputs import LongText
from sparktts.inference.stream import StreamOptions, SynthesisStream
from sparktts.inference.synthesis import Synthesis
from sparktts.inference.tts import SparkTTS
from sparktts.text import DEFAULT_MAX_CHARS, chunk_text
from sparktts.units import mel_to_hz

__all__ = [
    "DEFAULT_MAX_CHARS", "LongText", "SparkTTS", "StreamOptions", "Synthesis", "SynthesisStream", "chunk_text",
    "mel_to_hz",
]
