"""Scoring one utterance: what to score with (:class:`ScoringConfig`) and the models doing it (:class:`Scorer`).

A :class:`Scorer` transcribes a generated clip and computes its WER/CER against the text, its speaker
similarity to the prompt and, optionally, the measured gender/pitch/speed. The config is picklable so
Ray workers can build their own models from it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from ._audio import EVAL_SR, load_16k
from .errors import EvalError
from .lists import EvalItem
from .normalize import check_language, detect_language
from .wer import utterance_wer

# The eval options have one set of names, the fields of ScoringConfig below, from the command line
# (``--asr-backend``) through YAML configs (``asr_backend:``) to the dataclass. The older short spellings
# stay accepted everywhere as aliases, so existing configs and scripts keep working.
OPTION_ALIASES = {"asr": "asr_backend", "sim": "sim_backend", "sim_code": "sim_code_dir"}


def canonical_option(name: str) -> str:
    """The option name ``name`` stands for (``"asr"`` -> ``"asr_backend"``; canonical names as they are)."""
    return OPTION_ALIASES.get(name, name)


@dataclass(frozen=True)
class ScoringConfig:
    """What to score with; picklable, so Ray workers can build their own models from it.

    Attributes
    ----------
    lang : {"en", "zh"}, optional
        Language of every item without its own; ``None`` guesses per item from the text.
    asr_backend : str or None
        ``"faster-whisper"`` / ``"openai-whisper"``; ``None`` skips WER.
    asr_model : str, optional
        Name or path (see :func:`sparktts.eval.asr.load_asr`).
    sim_backend : str or None
        ``"resemblyzer"`` / ``"speechbrain"`` / ``"wavlm-ecapa"``; ``None`` skips SIM.
    sim_model, sim_code_dir : str, optional
        See :func:`sparktts.eval.similarity.load_speaker_model`.
    control : bool
        Also measure gender/pitch/speed (:mod:`sparktts.eval.control`).
    identify : bool
        After the run, SIM of each cloned output to every distinct prompt of the list, and the share whose
        own prompt is the nearest (:func:`sparktts.eval.similarity.prompt_identification`).
    device : str
    """

    lang: str | None = None
    asr_backend: str | None = "faster-whisper"
    asr_model: str | None = None
    sim_backend: str | None = "resemblyzer"
    sim_model: str | None = None
    sim_code_dir: str | None = None
    control: bool = False
    identify: bool = False
    device: str = "cpu"

    @classmethod
    def from_options(cls, options: Mapping[str, object]) -> ScoringConfig:
        """The config from option values (CLI / YAML), by canonical name or alias; ``"none"`` switches a
        back end off. Keys that are not scoring options (``engine``, ``workers``, ...) are ignored."""
        given = {canonical_option(k): v for k, v in options.items()}
        values = {f.name: given[f.name] for f in fields(cls) if f.name in given}
        for key in ("asr_backend", "sim_backend"):
            if values.get(key) == "none":
                values[key] = None
        for key in ("control", "identify"):
            if key in values:
                values[key] = bool(values[key])
        return cls(**values)

    def build(self) -> Scorer:
        """Load the models and return a :class:`Scorer`."""
        from .asr import load_asr
        from .similarity import load_speaker_model

        if self.lang is not None:
            check_language(self.lang)
        asr = load_asr(self.asr_backend, self.asr_model, device=self.device) if self.asr_backend else None
        spk = (
            load_speaker_model(
                self.sim_backend, self.sim_model, device=self.device, code_dir=self.sim_code_dir
            )
            if self.sim_backend
            else None
        )
        return Scorer(asr=asr, speaker=spk, lang=self.lang, control=self.control)


class Scorer:
    """Scores one generated utterance: ASR + WER/CER against the text, SIM against the prompt.

    Parameters
    ----------
    asr : object with ``transcribe(audio, language=..., sample_rate=...)``, optional
    speaker : :class:`~sparktts.eval.similarity.SpeakerModel`, optional
    lang : {"en", "zh"}, optional
        Default language for items without one (else guessed from the text).
    control : bool
        Also measure gender/pitch/speed.
    """

    def __init__(self, asr=None, speaker=None, lang: str | None = None, control: bool = False) -> None:
        self.asr = asr
        self.speaker = speaker
        self.lang = check_language(lang) if lang is not None else None
        self.control = control
        self._prompt_cache: dict[str, np.ndarray] = {}

    def _prompt_embedding(self, path: Path) -> np.ndarray:
        key = str(path)
        if key not in self._prompt_cache:
            if len(self._prompt_cache) > 256:  # lists rarely reuse prompts; keep memory bounded
                self._prompt_cache.clear()
            self._prompt_cache[key] = self.speaker.embed(path)
        return self._prompt_cache[key]

    def score(
        self, item: EvalItem, audio: str | os.PathLike | np.ndarray, sample_rate: int | None = None
    ) -> dict:
        """Score one utterance and return its result row (never raises for a bad item; see ``error``)."""
        lang = item.lang or self.lang or detect_language(item.text)
        row: dict = {
            "utt": item.utt,
            "text": item.text,
            "lang": lang,
            "hyp": None,
            "sim": None,
            "error": None,
        }
        errors: list[str] = []
        t0 = time.perf_counter()
        try:
            wav = load_16k(audio, sample_rate)
        except Exception as exc:
            row["error"] = f"audio: {type(exc).__name__}: {exc}"
            row["total_s"] = time.perf_counter() - t0
            return row
        row["audio_s"] = wav.shape[0] / EVAL_SR
        if self.asr is not None:
            t = time.perf_counter()
            try:
                hyp = self.asr.transcribe(wav, language=lang, sample_rate=EVAL_SR)
                res = utterance_wer(item.text, hyp, lang)
                row.update(hyp=hyp, errors=res.errors, ref_len=res.ref_len, unit=res.unit)
                row[res.metric] = res.wer
            except Exception as exc:
                errors.append(f"asr: {type(exc).__name__}: {exc}")
            row["asr_s"] = time.perf_counter() - t
            row["asr_model"] = getattr(self.asr, "model_name", None)
        if self.speaker is not None and item.prompt_wav is not None:  # no prompt (voice creation): no SIM
            t = time.perf_counter()
            try:
                row["sim"] = float(
                    np.dot(
                        _unit(self.speaker.embed(wav, EVAL_SR)),
                        _unit(self._prompt_embedding(item.prompt_wav)),
                    )
                )
            except Exception as exc:
                errors.append(f"sim: {type(exc).__name__}: {exc}")
            row["sim_s"] = time.perf_counter() - t
            row["sim_model"] = f"{self.speaker.backend}:{self.speaker.model_name}"
        if self.control:
            from .control import measure_attributes

            try:
                att = measure_attributes(wav, item.text, EVAL_SR, lang=lang, gender=item.gender)
                row.update(
                    gender=item.gender,
                    pitch=item.pitch,
                    speed=item.speed,
                    gender_measured=att.gender,
                    pitch_measured=att.pitch_level,
                    speed_measured=att.speed_level,
                    pitch_mel=att.pitch_mel,
                    speed_sps=att.speed_sps,
                )
            except Exception as exc:
                errors.append(f"control: {type(exc).__name__}: {exc}")
        row["error"] = "; ".join(errors) or None
        row["total_s"] = time.perf_counter() - t0
        return row


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64).reshape(-1)
    n = np.linalg.norm(v)
    if n == 0:
        raise EvalError("an embedding is all zeros; the audio probably contains no speech.")
    return v / n


__all__ = ["OPTION_ALIASES", "Scorer", "ScoringConfig", "canonical_option"]
