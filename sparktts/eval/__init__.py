"""Evaluation of Spark-TTS output: Seed-TTS-eval WER/CER and SIM, codec metrics, attribute control.

Submodules (import what you need; model back ends load their packages only when used):

* :mod:`.normalize` / :mod:`.wer`: protocol text normalisation, per-utterance WER/CER, utterance mean and
  corpus WER;
* :mod:`.asr`: ``load_asr("faster-whisper" | "openai-whisper", model=...)`` with
  ``.transcribe(wav, language=...)``;
* :mod:`.similarity`: ``load_speaker_model("resemblyzer" | "speechbrain" | "wavlm-ecapa")``;
* :mod:`.codec_metrics`: STOI, PESQ, mel distance, MCD, F0 RMSE, UTMOS (with user weights);
* :mod:`.control`: gender / pitch / speed measurement, 5-level binning, confusion matrices;
* :mod:`.lists` / :mod:`.runner`: test lists and the resumable JSONL runner (``python -m sparktts.eval``),
  over :mod:`.scoring`, :mod:`.results`, :mod:`.summary`, :mod:`.process`, :mod:`.ray_engine` and
  :mod:`.synthesis`;
* :mod:`.plots`: figures of the above.
"""

from .errors import EvalError, ModelNotAvailableError
from .lists import EvalItem, read_list
from .normalize import detect_language, normalize_text
from .runner import Scorer, ScoringConfig, run_eval, summarize_results
from .wer import score_texts, summarize_wer, utterance_wer, word_error_rate

__all__ = [
    "EvalError",
    "EvalItem",
    "ModelNotAvailableError",
    "Scorer",
    "ScoringConfig",
    "detect_language",
    "normalize_text",
    "read_list",
    "run_eval",
    "score_texts",
    "summarize_results",
    "summarize_wer",
    "utterance_wer",
    "word_error_rate",
]
