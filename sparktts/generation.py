"""The old import path of LLM generation, kept so that existing code and notebooks keep working.

The code lives in :mod:`sparktts.llm`: :class:`SpeechGenerator` in :mod:`sparktts.llm.generator`, the
engines in :mod:`sparktts.llm.engines`, sampling settings and seeds in :mod:`sparktts.llm.sampling`, and
the output grammar in :mod:`sparktts.format.grammar`.
"""

from sparktts.format.grammar import GeneratedTokens, Kind, Mode, Phase, SpeechGrammar, SpeechVocab, infer_mode
from sparktts.llm.engines.hf import SpeechConstraint
from sparktts.llm.generator import SpeechGenerator
from sparktts.llm.sampling import GLOBAL_RNG_LOCK, NAN_SCORES_MESSAGE, SamplingConfig, call_generator, new_seed, seeded

__all__ = [
    "GLOBAL_RNG_LOCK", "NAN_SCORES_MESSAGE", "GeneratedTokens", "Kind", "Mode", "Phase",
    "SamplingConfig", "SpeechConstraint", "SpeechGenerator", "SpeechGrammar", "SpeechVocab", "call_generator",
    "infer_mode", "new_seed", "seeded",
]  # fmt: skip
