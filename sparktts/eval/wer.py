"""Per-utterance WER/CER with jiwer, and the two ways to aggregate them.

Seed-TTS-eval reports the **utterance mean**: the arithmetic mean of per-utterance WER (x 100, 3 dp), with
no clipping, so one hallucinated utterance with WER 3.0 weighs as much as thirty perfect ones. The
**corpus** WER (total errors / total reference words) is what most ASR papers report; both are returned
so that a table can say which one it shows.

For ``zh`` the unit is the character (CER): :func:`sparktts.eval.normalize.normalize_text` spaces the
characters out and jiwer's word error rate then counts characters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import pandas as pd

from .errors import EvalError
from .normalize import check_language, normalize_pair


@dataclass(frozen=True)
class UtteranceWER:
    """Word (en) or character (zh) error counts of one utterance, after protocol normalisation.

    Attributes
    ----------
    ref, hyp : str
        Raw reference and hypothesis.
    ref_norm, hyp_norm : str
        Normalised texts that were scored.
    wer : float
        ``(substitutions + deletions + insertions) / ref_len``; can exceed 1.
    substitutions, deletions, insertions, hits : int
        Alignment counts from ``jiwer.process_words``.
    ref_len : int
        Number of reference words (en) or characters (zh).
    unit : {"word", "char"}
    """

    ref: str
    hyp: str
    ref_norm: str
    hyp_norm: str
    wer: float
    substitutions: int
    deletions: int
    insertions: int
    hits: int
    ref_len: int
    unit: str

    @property
    def errors(self) -> int:
        """Total edit errors, the numerator of the WER."""
        return self.substitutions + self.deletions + self.insertions

    @property
    def metric(self) -> str:
        """``"wer"`` for words, ``"cer"`` for characters: the key the runner writes."""
        return "cer" if self.unit == "char" else "wer"


def utterance_wer(ref: str, hyp: str, lang: str) -> UtteranceWER:
    """Score one hypothesis against its reference with the Seed-TTS-eval normalisation.

    Parameters
    ----------
    ref : str
        Target text (the list's ``infer_text``).
    hyp : str
        ASR transcript of the generated audio. An empty transcript is scored (WER 1.0), not rejected.
    lang : {"en", "zh"}

    Returns
    -------
    UtteranceWER

    Raises
    ------
    EvalError
        The reference is empty after normalisation (WER would divide by zero), or ``lang`` is unknown.

    Examples
    --------
    >>> utterance_wer("The cat sat.", "the cat sat on", "en").wer
    0.3333333333333333
    """
    import jiwer

    check_language(lang)
    ref_norm, hyp_norm = normalize_pair(ref, hyp, lang)
    if not ref_norm.split():
        raise EvalError(f"reference text {ref!r} is empty after normalisation; it cannot be scored.")
    if hyp_norm.split():
        out = jiwer.process_words(ref_norm, hyp_norm)
        subs, dels, ins, hits = out.substitutions, out.deletions, out.insertions, out.hits
    else:
        # jiwer rejects empty strings on some versions; an empty transcript deletes every reference word.
        subs, ins, hits = 0, 0, 0
        dels = len(ref_norm.split())
    ref_len = subs + dels + hits
    return UtteranceWER(
        ref=ref,
        hyp=hyp,
        ref_norm=ref_norm,
        hyp_norm=hyp_norm,
        wer=(subs + dels + ins) / ref_len,
        substitutions=subs,
        deletions=dels,
        insertions=ins,
        hits=hits,
        ref_len=ref_len,
        unit="char" if lang == "zh" else "word",
    )


def word_error_rate(ref: str, hyp: str, lang: str) -> float:
    """WER (en) or CER (zh) of one utterance as a fraction; see :func:`utterance_wer`."""
    return utterance_wer(ref, hyp, lang).wer


@dataclass(frozen=True)
class WERSummary:
    """Aggregate of many utterances.

    Attributes
    ----------
    n : int
        Utterances scored.
    utterance_mean : float
        Mean of per-utterance WER, a fraction: the Seed-TTS-eval number (report ``100 * x``, 3 dp).
    corpus : float
        Sum of errors over sum of reference words/characters.
    unit : {"word", "char"}
    """

    n: int
    utterance_mean: float
    corpus: float
    unit: str

    @property
    def protocol_percent(self) -> float:
        """``round(100 * utterance_mean, 3)``, the number Seed-TTS-eval's ``average_wer.py`` prints."""
        return round(100 * self.utterance_mean, 3)


def summarize_wer(results: Sequence[UtteranceWER] | pd.DataFrame) -> WERSummary:
    """Aggregate per-utterance results into the utterance mean and the corpus WER.

    Parameters
    ----------
    results : sequence of UtteranceWER, or DataFrame
        A DataFrame needs the columns ``wer``, ``errors`` and ``ref_len`` (as made by :func:`score_texts`
        or the runner's results). Rows with a missing ``wer`` are ignored.

    Returns
    -------
    WERSummary
        ``utterance_mean`` and ``corpus`` are NaN when nothing was scored.
    """
    if isinstance(results, pd.DataFrame):
        df = results
        if "wer" not in df.columns and "cer" in df.columns:
            df = df.rename(columns={"cer": "wer"})
        df = df[df["wer"].notna()] if "wer" in df.columns else df.iloc[0:0]
        wers = df["wer"].astype(float).tolist() if len(df) else []
        errors = float(df["errors"].sum()) if len(df) else 0.0
        ref_len = float(df["ref_len"].sum()) if len(df) else 0.0
        unit = str(df["unit"].iloc[0]) if len(df) and "unit" in df.columns else "word"
    else:
        wers = [r.wer for r in results]
        errors = float(sum(r.errors for r in results))
        ref_len = float(sum(r.ref_len for r in results))
        unit = results[0].unit if results else "word"
    n = len(wers)
    return WERSummary(
        n=n,
        utterance_mean=sum(wers) / n if n else math.nan,
        corpus=errors / ref_len if ref_len else math.nan,
        unit=unit,
    )


def score_texts(
    refs: Sequence[str], hyps: Sequence[str], lang: str, ids: Sequence[str] | None = None
) -> pd.DataFrame:
    """Score many (reference, hypothesis) pairs; one row per utterance.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``ids`` (or 0..n-1), columns: every :class:`UtteranceWER` field plus ``errors``.
        Aggregate with :func:`summarize_wer`.
    """
    if len(refs) != len(hyps):
        raise EvalError(
            f"{len(refs)} references but {len(hyps)} hypotheses; give one hypothesis per reference."
        )
    if ids is not None and len(ids) != len(refs):
        raise EvalError(f"{len(ids)} ids for {len(refs)} references.")
    rows = []
    for ref, hyp in zip(refs, hyps, strict=True):
        res = utterance_wer(ref, hyp, lang)
        rows.append({**asdict(res), "errors": res.errors})
    return pd.DataFrame(rows, index=list(ids) if ids is not None else None)
