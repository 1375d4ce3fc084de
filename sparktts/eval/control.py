"""Attribute control: measure gender, pitch and speed of generated audio and bin them into 5 levels.

Measurement follows VoxBox's annotation (how Spark-TTS's training labels were made):

1. 16 kHz mono; volume normalised (90th-99th percentile of |x| to 0.2;
   :func:`sparktts.audio.volume_normalize`).
2. End silences trimmed: RMS over 0.1 s windows with a 10 ms step, speech where RMS >= 0.01, 0.2 s margin
   kept; the trimmed length is the speech duration.
3. Pitch = mean F0 (Hz) over voiced frames, then mel = 2595 log10(1 + f/700), clipped to [0, 1000].
   F0 from pYIN (librosa, 50-600 Hz, 10 ms hop) by default, or WORLD dio + stonemask (as VoxBox) with
   ``f0_method="pyworld"`` when pyworld is installed. Frames outside 50-2400 Hz count as unvoiced.
4. Speed = syllables of the target text / speech duration. Syllables: each CJK character is one; an English
   word counts its vowel groups (a, e, i, o, u, y runs), less a silent final "e" (not "-le"), at least one;
   digits are read one by one ("2024" = two-oh-two-four = 4 syllables; "7" = 2). VoxBox uses g2p_en + a
   sonority syllabifier, which needs NLTK data downloads; the heuristic agrees with it on most words and
   is off by about one syllable on words like "every" or "fire".

Levels use the boundaries of ``control_levels.md`` (percentiles of the training corpus): pitch boundaries
depend on gender, speed boundaries on language; ``x < very_low_lt`` -> very_low, ``< low_lt`` -> low,
``> very_high_gt`` -> very_high, ``> high_gt`` -> high, else moderate.

**Gender rule** (no classifier weights are published): female when the mel of the mean F0 is above
240.14 mel (about 166 Hz). That is the point where the training corpus's male (mean 196.387, sd 39.206)
and female (mean 294.414, sd 48.629) mel-pitch distributions are the same number of standard deviations
away: ``(x - 196.387) / 39.206 = (294.414 - x) / 48.629``. A WavLM classifier like the paper's can be
plugged in as ``gender_classifier(wav16k) -> "female" | "male"``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from sparktts.audio import volume_normalize
from sparktts.text import CJK_LETTER_RE
from sparktts.units import hz_to_mel, mel_to_hz

from ._audio import EVAL_SR, AudioLike, load_16k
from .errors import EvalError
from .normalize import detect_language

LEVELS = ("very_low", "low", "moderate", "high", "very_high")
GENDERS = ("female", "male")

# (very_low if x <, low if x <, high if x >, very_high if x >), from control_levels.md.
PITCH_BOUNDARIES_MEL = {
    "male": (144.275, 163.172, 211.044, 249.549),
    "female": (224.325, 257.532, 313.213, 352.569),
}
SPEED_BOUNDARIES_SPS = {
    "zh": (2.677, 3.540, 5.166, 6.072),
    "en": (2.553, 3.306, 4.720, 5.464),
}
_PITCH_STATS = {"male": (196.387, 39.206), "female": (294.414, 48.629)}
_m, _f = _PITCH_STATS["male"], _PITCH_STATS["female"]
GENDER_THRESHOLD_MEL = (_m[0] * _f[1] + _f[0] * _m[1]) / (_m[1] + _f[1])  # 240.14 mel ~ 166 Hz

_RMS_WIN_S, _RMS_HOP_S, _RMS_MIN, _MARGIN_S = 0.1, 0.01, 0.01, 0.2
_F0_VALID = (50.0, 2400.0)

_CJK = CJK_LETTER_RE  # one CJK letter is one syllable
_WORD = re.compile(r"[A-Za-z']+|\d")
_DIGIT_SYLLABLES = {"0": 2, "7": 2}  # zero, seven; every other digit name is one syllable


def _english_word_syllables(word: str) -> int:
    word = word.lower().strip("'")
    if not word:
        return 0
    groups = re.findall(r"[aeiouy]+", word)
    n = len(groups)
    # A final silent "e" ("make", "time") adds no syllable; "-le" after a consonant ("table") does.
    if word.endswith("e") and not word.endswith(("le", "ee", "ye")) and n > 1 and word[-2] not in "aeiouy":
        n -= 1
    elif word.endswith("es") and n > 1 and len(word) > 3 and word[-3] not in "aeiouy":
        # "makes", "times": the "e" of "-es" is silent, except after sibilants ("horses", "boxes", "pages").
        # "-les" after a consonant keeps its syllable like "-le" ("tables", "apples").
        sibilant = word[:-2].endswith(("s", "sh", "ch", "x", "z", "c", "g"))
        syllabic_le = word.endswith("les") and len(word) > 4 and word[-4] not in "aeiouy"
        if not sibilant and not syllabic_le:
            n -= 1
    return max(n, 1)


def count_syllables(text: str, lang: str | None = None) -> int:
    """Syllables of a text: CJK characters count 1 each, English words by vowel groups, digits one by one.

    Examples
    --------
    >>> count_syllables("你好，世界")
    4
    >>> count_syllables("The table is beautiful.")
    7
    """
    del lang  # the rule is per character/word, so mixed text needs no language switch
    n = len(_CJK.findall(text))
    latin = _CJK.sub(" ", text)
    for tok in _WORD.findall(latin):
        n += _DIGIT_SYLLABLES.get(tok, 1) if tok.isdigit() else _english_word_syllables(tok)
    return n


def trim_silence(wav: np.ndarray, sr: int = EVAL_SR) -> np.ndarray:
    """Cut leading/trailing silence (RMS < 0.01 over 0.1 s windows, 10 ms step), keeping 0.2 s margins."""
    win, hop = int(_RMS_WIN_S * sr), int(_RMS_HOP_S * sr)
    if wav.shape[0] <= win:
        return wav
    frames = np.lib.stride_tricks.sliding_window_view(wav, win)[::hop]
    rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
    speech = np.flatnonzero(rms >= _RMS_MIN)
    if speech.size == 0:
        return wav[:0]
    start = max(0, speech[0] * hop - int(_MARGIN_S * sr))
    end = min(wav.shape[0], speech[-1] * hop + win + int(_MARGIN_S * sr))
    return wav[start:end]


def mean_f0(wav: np.ndarray, sr: int = EVAL_SR, method: str = "pyin") -> float:
    """Mean F0 in Hz over voiced frames (NaN if none); ``method`` is ``"pyin"`` or ``"pyworld"``."""
    if method == "pyin":
        import librosa

        f0, voiced, _p = librosa.pyin(
            wav.astype(np.float64), fmin=50.0, fmax=600.0, sr=sr, frame_length=1024, hop_length=sr // 100
        )
        f0 = np.where(voiced, f0, 0.0)
    elif method == "pyworld":
        try:
            import pyworld
        except ImportError as exc:  # pyworld 0.3.5 also fails to import without setuptools' pkg_resources
            raise EvalError(
                f"f0_method='pyworld' needs an importable pyworld (pip install pyworld): {exc}"
            ) from exc
        x = wav.astype(np.float64)
        f0, t = pyworld.dio(x, sr, frame_period=5.0)
        f0 = pyworld.stonemask(x, f0, t, sr)
    else:
        raise EvalError(f"unknown F0 method {method!r}; use 'pyin' or 'pyworld'.")
    f0 = np.nan_to_num(f0)
    f0 = f0[(f0 >= _F0_VALID[0]) & (f0 <= _F0_VALID[1])]
    return float(f0.mean()) if f0.size else math.nan


def level_of(x: float, boundaries: Sequence[float]) -> str:
    """Level name of ``x`` given ``(very_low_lt, low_lt, high_gt, very_high_gt)``."""
    vl, lo, hi, vh = boundaries
    if x < vl:
        return "very_low"
    if x < lo:
        return "low"
    if x > vh:
        return "very_high"
    if x > hi:
        return "high"
    return "moderate"


def pitch_level(mel: float, gender: str) -> str:
    """Pitch level of a mel value for ``gender`` ("female" or "male")."""
    if gender not in PITCH_BOUNDARIES_MEL:
        raise EvalError(f"gender must be 'female' or 'male', not {gender!r}.")
    return level_of(mel, PITCH_BOUNDARIES_MEL[gender])


def speed_level(sps: float, lang: str) -> str:
    """Speed level of syllables per second for ``lang`` ("en" or "zh")."""
    if lang not in SPEED_BOUNDARIES_SPS:
        raise EvalError(f"speed levels exist for 'en' and 'zh', not {lang!r}.")
    return level_of(sps, SPEED_BOUNDARIES_SPS[lang])


def gender_from_pitch(mel: float) -> str:
    """The documented F0 rule: ``"female"`` above :data:`GENDER_THRESHOLD_MEL` (~166 Hz), else ``"male"``."""
    return "female" if mel > GENDER_THRESHOLD_MEL else "male"


@dataclass(frozen=True)
class Attributes:
    """Measured attributes of one utterance."""

    gender: str
    f0_mean_hz: float
    pitch_mel: float
    pitch_level: str
    syllables: int
    duration_s: float
    speed_sps: float
    speed_level: str
    lang: str

    def to_dict(self) -> dict:
        """Plain dict, for DataFrames and JSON."""
        return asdict(self)


def attribute_levels(pitch_mel: float, speed_sps: float, lang: str | None, gender: str | None = None,
                     measured_gender: str | None = None) -> tuple[str, str, str | None]:
    """Measured values -> ``(measured gender, pitch level, speed level)``: the one rule of the eval and of
    ``sparktts prepare``'s labels.

    ``measured_gender`` comes from a gender classifier when one is used, else the F0 rule
    (:func:`gender_from_pitch`). Pitch is binned with ``gender`` (the requested one) when given, else the
    measured gender. The speed level is None for a ``lang`` without speed boundaries (None).
    """
    measured_gender = measured_gender or gender_from_pitch(pitch_mel)
    speed = speed_level(speed_sps, lang) if lang is not None else None
    return measured_gender, pitch_level(pitch_mel, gender or measured_gender), speed


def measure_attributes(
    audio: AudioLike,
    text: str,
    sample_rate: int | None = None,
    *,
    lang: str | None = None,
    gender: str | None = None,
    gender_classifier: Callable[[np.ndarray], str] | None = None,
    f0_method: str = "pyin",
) -> Attributes:
    """Measure gender, pitch (mel + level) and speed (syllables/s + level) of one utterance.

    Parameters
    ----------
    audio : path or np.ndarray
    text : str
        What was said (the target text); syllables are counted from it.
    lang : {"en", "zh"}, optional
        Default: "zh" if the text has a Han character.
    gender : {"female", "male"}, optional
        Gender whose pitch boundaries are used. Default: the measured gender. Pass the *requested* gender to
        bin pitch the way the control prompt meant it.
    gender_classifier : callable, optional
        ``f(wav16k) -> "female" | "male"`` replacing the F0 rule.
    f0_method : {"pyin", "pyworld"}

    Raises
    ------
    EvalError
        No speech above the RMS threshold, or no voiced frame.
    """
    wav = volume_normalize(load_16k(audio, sample_rate).astype(np.float64))
    speech = trim_silence(wav)
    if speech.size == 0:
        raise EvalError("no speech found (RMS never reaches 0.01 after volume normalisation).")
    f0 = mean_f0(speech, method=f0_method)
    if math.isnan(f0):
        raise EvalError("no voiced frame found; pitch and gender cannot be measured.")
    mel = min(max(hz_to_mel(f0), 0.0), 1000.0)
    lang = lang or detect_language(text)
    syl = count_syllables(text, lang)
    dur = speech.shape[0] / EVAL_SR
    sps = syl / dur
    measured_gender, pitch, speed = attribute_levels(
        mel, sps, lang, gender, gender_classifier(speech.astype(np.float32)) if gender_classifier else None)
    return Attributes(
        gender=measured_gender,
        f0_mean_hz=f0,
        pitch_mel=mel,
        pitch_level=pitch,
        syllables=syl,
        duration_s=dur,
        speed_sps=sps,
        speed_level=speed,
        lang=lang,
    )


def confusion_matrix(
    requested: Sequence[str], measured: Sequence[str], labels: Sequence[str] = LEVELS
) -> pd.DataFrame:
    """Counts of (requested level, measured level), rows = requested, columns = measured, in level order."""
    if len(requested) != len(measured):
        raise EvalError(f"{len(requested)} requested levels but {len(measured)} measured ones.")
    for name in (*requested, *measured):
        if name not in labels:
            raise EvalError(f"unknown level {name!r}; expected one of {', '.join(labels)}.")
    cm = pd.DataFrame(0, index=pd.Index(labels, name="requested"), columns=pd.Index(labels, name="measured"))
    for r, m in zip(requested, measured, strict=True):
        cm.loc[r, m] += 1
    return cm


def level_accuracy(cm: pd.DataFrame, within: int = 0) -> float:
    """Fraction of a confusion matrix at most ``within`` levels off its diagonal (NaN when empty).

    ``within=0`` is exact agreement; ``within=1`` also counts a neighbouring level (``low`` for ``moderate``).
    """
    counts = cm.to_numpy()
    total = counts.sum()
    rows, cols = np.indices(counts.shape)
    return float(counts[np.abs(rows - cols) <= within].sum() / total) if total else math.nan


def gender_accuracy(requested: Sequence[str], measured: Sequence[str]) -> float:
    """Fraction of utterances whose measured gender equals the requested one."""
    if len(requested) != len(measured):
        raise EvalError(f"{len(requested)} requested genders but {len(measured)} measured ones.")
    if not requested:
        return math.nan
    return sum(r == m for r, m in zip(requested, measured, strict=True)) / len(requested)


@dataclass(frozen=True)
class ControlReport:
    """Control scores of a set of utterances."""

    per_item: pd.DataFrame
    pitch_confusion: pd.DataFrame
    speed_confusion: pd.DataFrame
    gender_accuracy: float
    pitch_accuracy: float
    speed_accuracy: float
    pitch_within_one: float
    speed_within_one: float

    def summary(self) -> dict[str, float | int]:
        """The scalar scores, as the eval runner's ``summary.json`` holds them (``control``)."""
        names = ("gender_accuracy", "pitch_accuracy", "pitch_within_one", "speed_accuracy", "speed_within_one")
        values = {k: float(getattr(self, k)) for k in names}
        return {"n": len(self.per_item), **{k: None if math.isnan(v) else round(v, 4) for k, v in values.items()}}


def score_control(rows: Sequence[dict]) -> ControlReport:
    """Aggregate rows holding requested ``gender``/``pitch``/``speed`` and measured ``*_measured`` values.

    Parameters
    ----------
    rows : sequence of dict
        Each with keys ``gender``, ``pitch``, ``speed`` (requested levels) and ``gender_measured``,
        ``pitch_measured``, ``speed_measured``; rows missing any (None or NaN) are skipped.
    """
    keys = ("gender", "pitch", "speed", "gender_measured", "pitch_measured", "speed_measured")
    # None and NaN (what a DataFrame holds for a missing label) both mean "not measured / not requested".
    df = pd.DataFrame([r for r in rows if all(isinstance(r.get(k), str) for k in keys)], columns=None)
    if df.empty:
        df = pd.DataFrame(columns=list(keys))
    pcm = confusion_matrix(df["pitch"].tolist(), df["pitch_measured"].tolist())
    scm = confusion_matrix(df["speed"].tolist(), df["speed_measured"].tolist())
    return ControlReport(
        per_item=df,
        pitch_confusion=pcm,
        speed_confusion=scm,
        gender_accuracy=gender_accuracy(df["gender"].tolist(), df["gender_measured"].tolist()),
        pitch_accuracy=level_accuracy(pcm),
        speed_accuracy=level_accuracy(scm),
        pitch_within_one=level_accuracy(pcm, within=1),
        speed_within_one=level_accuracy(scm, within=1),
    )


__all__ = [
    "GENDER_THRESHOLD_MEL",
    "LEVELS",
    "PITCH_BOUNDARIES_MEL",
    "SPEED_BOUNDARIES_SPS",
    "Attributes",
    "ControlReport",
    "attribute_levels",
    "confusion_matrix",
    "count_syllables",
    "gender_accuracy",
    "gender_from_pitch",
    "hz_to_mel",
    "level_accuracy",
    "measure_attributes",
    "mel_to_hz",
    "pitch_level",
    "score_control",
    "speed_level",
    "trim_silence",
]
