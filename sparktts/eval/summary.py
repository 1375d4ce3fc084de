"""The summary of a run: per-language WER/CER (utterance mean and corpus), SIM, counts and timings."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import pandas as pd

from ..format.tokens import LEVELS_MAP
from .results import ResultsFile
from .wer import summarize_wer

SUMMARY_FILE = "summary.json"


def _json_safe(value):
    """NaN/inf are not JSON: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def summarize_results(
    rows: Sequence[dict] | str | os.PathLike, *, n_items: int | None = None, missing: Sequence[str] = ()
) -> tuple[pd.DataFrame, dict]:
    """Aggregate result rows (or a ``results.jsonl``) into a table and a JSON-able summary.

    Returns
    -------
    table : pandas.DataFrame
        One row per language (plus ``all`` when there are several): ``n``, ``metric``, ``wer_utt_mean``
        (%, the protocol number), ``wer_corpus`` (%), ``wer_median`` and ``wer_capped_mean`` (%, each
        utterance's WER capped at 100 %), ``sim_mean``, ``n_errors``.
    summary : dict
        Counts (``n_items``, ``n_results``, ``n_scored``, ``n_errors``, ``n_missing``, ``missing``),
        per-language metrics under ``by_lang``, and timing totals (``synth_s``, ``asr_s``, ``sim_s``,
        ``audio_s``, ``rtf``).
    """
    if isinstance(rows, (str, os.PathLike)):
        rows = ResultsFile(rows, read_only=True).rows
    df = pd.DataFrame(list(rows))
    for col in ("utt", "lang", "error", "sim", "wer", "cer", "errors", "ref_len", "unit"):
        if col not in df.columns:
            df[col] = None

    def block(sub: pd.DataFrame) -> dict:
        sub = sub.copy()
        sub["wer"] = sub["wer"].where(sub["wer"].notna(), sub["cer"])
        w = summarize_wer(sub[["wer", "errors", "ref_len", "unit"]])
        wers = sub["wer"].dropna().astype(float)
        sims = sub["sim"].dropna().astype(float)
        zh = (sub["lang"] == "zh").all() and len(sub) > 0
        return {
            "n": int(len(sub)),
            "metric": "cer" if zh else "wer",
            "n_scored": int(w.n),
            "wer_utt_mean": _json_safe(round(100 * w.utterance_mean, 3)),
            "wer_corpus": _json_safe(round(100 * w.corpus, 3)),
            # Robust beside the protocol's mean: one utterance the recognizer loops on (WER >> 100 %)
            # can move the mean of hundreds by several points.
            "wer_median": _percent(wers.median()),
            "wer_capped_mean": _percent(wers.clip(upper=1.0).mean()),
            "sim_n": int(len(sims)),
            "sim_mean": _json_safe(round(float(sims.mean()), 3)) if len(sims) else None,
            "sim_var": _json_safe(float(sims.var(ddof=0))) if len(sims) else None,
            "n_errors": int(sub["error"].notna().sum()),
        }

    by_lang = {str(lang): block(sub) for lang, sub in df.groupby("lang", dropna=False)} if len(df) else {}
    overall = block(df) if len(df) else block(df.iloc[0:0])
    table = pd.DataFrame.from_dict(by_lang, orient="index")
    if len(by_lang) > 1:
        table.loc["all"] = overall
    timing = {
        k: float(df[k].fillna(0).sum()) if k in df.columns else 0.0
        for k in ("synth_s", "asr_s", "sim_s", "audio_s")
    }
    timing["rtf"] = timing["synth_s"] / timing["audio_s"] if timing["audio_s"] else None
    summary = {
        "n_items": n_items if n_items is not None else int(len(df)) + len(missing),
        "n_results": int(len(df)),
        "n_scored": overall["n_scored"],
        "n_errors": overall["n_errors"],
        "n_missing": len(missing),
        "missing": list(missing)[:100],
        **{k: overall[k] for k in ("metric", "wer_utt_mean", "wer_corpus", "wer_median", "wer_capped_mean",
                                   "sim_mean", "sim_var", "sim_n")},
        "by_lang": by_lang,
        "timing": timing,
    }
    return table, summary


def _percent(fraction: float) -> float | None:
    """A fraction as a JSON-able percentage (3 dp); None for the NaN of an empty group."""
    return _json_safe(round(100 * float(fraction), 3))


def summarize_by(rows: Sequence[dict] | str | os.PathLike, items: Sequence,
                 by: Sequence[str] = ("gender", "pitch", "speed")) -> pd.DataFrame:
    """WER and SIM per value of item attributes: which voices (genders, pitch or speed levels) a model
    gets wrong.

    Parameters
    ----------
    rows : result rows, or a ``results.jsonl``
    items : the eval's items (:class:`~sparktts.eval.lists.EvalItem`); an attribute is read from the item
        (``gender``, ``pitch``, ``speed``) or its ``extra`` keys. Requested levels for a voice-creation
        list; the recording's labels for a round trip of a labelled corpus.
    by : attributes to break down by; one with no value on any item is left out.

    Returns
    -------
    pandas.DataFrame
        One row per (``by``, ``value``), levels in their natural order: ``n`` (items with that value),
        ``n_scored``, ``wer_utt_mean`` (%), ``wer_median`` (%), ``wer_capped_mean`` (%, each utterance
        capped at 100 % so that one utterance the recognizer loops on cannot dominate a level) and
        ``sim_mean``.
    """
    if isinstance(rows, (str, os.PathLike)):
        rows = ResultsFile(rows, read_only=True).rows
    scored = {r["utt"]: r for r in rows}
    out = []
    for attr in by:
        values = {}
        for it in items:
            value = getattr(it, attr, None)
            if value is None:
                value = (getattr(it, "extra", None) or {}).get(attr)
            if value is not None:
                values.setdefault(str(value), []).append(scored.get(it.utt, {}))
        for value in sorted(values, key=lambda v: (LEVELS_MAP.get(v, len(LEVELS_MAP)), v)):
            group = values[value]
            wer = pd.Series([r.get("wer") if r.get("wer") is not None else r.get("cer") for r in group],
                            dtype=float).dropna()
            sim = pd.Series([r.get("sim") for r in group], dtype=float).dropna()
            out.append({"by": attr, "value": value, "n": len(group), "n_scored": len(wer),
                        "wer_utt_mean": _percent(wer.mean()), "wer_median": _percent(wer.median()),
                        "wer_capped_mean": _percent(wer.clip(upper=1.0).mean()),
                        "sim_mean": round(float(sim.mean()), 3) if len(sim) else None})
    return pd.DataFrame(out, columns=["by", "value", "n", "n_scored", "wer_utt_mean", "wer_median",
                                      "wer_capped_mean", "sim_mean"])


__all__ = ["SUMMARY_FILE", "summarize_by", "summarize_results"]
