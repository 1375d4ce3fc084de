"""The summary of a run: per-language WER/CER (utterance mean and corpus), SIM, counts and timings."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import pandas as pd

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
        (%, the protocol number), ``wer_corpus`` (%), ``sim_mean``, ``n_errors``.
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
        sims = sub["sim"].dropna().astype(float)
        zh = (sub["lang"] == "zh").all() and len(sub) > 0
        return {
            "n": int(len(sub)),
            "metric": "cer" if zh else "wer",
            "n_scored": int(w.n),
            "wer_utt_mean": _json_safe(round(100 * w.utterance_mean, 3)),
            "wer_corpus": _json_safe(round(100 * w.corpus, 3)),
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
        **{k: overall[k] for k in ("metric", "wer_utt_mean", "wer_corpus", "sim_mean", "sim_var", "sim_n")},
        "by_lang": by_lang,
        "timing": timing,
    }
    return table, summary


__all__ = ["SUMMARY_FILE", "summarize_results"]
