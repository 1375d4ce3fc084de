"""Evaluation plots: WER/SIM distributions and attribute confusion matrices.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot, so it works with any
backend (Agg in CI, inline in Jupyter, where a returned Figure is displayed) and never opens a window.
Save with ``fig.savefig("wer.png")``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .errors import EvalError


def _values(data: pd.DataFrame | pd.Series | np.ndarray | list, column: str) -> np.ndarray:
    if isinstance(data, pd.DataFrame):
        if column not in data.columns:
            raise EvalError(
                f"no column {column!r} in the results; columns are {', '.join(map(str, data.columns))}."
            )
        data = data[column]
    values = (
        pd.to_numeric(pd.Series(np.asarray(data, dtype=object)), errors="coerce").dropna().to_numpy(float)
    )
    return values


def plot_distribution(
    data: pd.DataFrame | pd.Series | np.ndarray | list,
    column: str = "wer",
    *,
    bins: int = 30,
    title: str | None = None,
    percent: bool | None = None,
) -> Figure:
    """Histogram of one per-utterance metric with its mean (dashed) and median (dotted) marked.

    Parameters
    ----------
    data : DataFrame (e.g. ``EvalRun.results``) or 1-D values
    column : str
        ``"wer"``, ``"cer"``, ``"sim"``, ... when ``data`` is a DataFrame.
    percent : bool, optional
        Show x100 (default: True for wer/cer).
    """
    values = _values(data, column)
    percent = column in ("wer", "cer") if percent is None else percent
    scale = 100.0 if percent else 1.0
    fig = Figure(figsize=(6, 3.5), layout="constrained")
    ax = fig.add_subplot()
    if values.size:
        ax.hist(values * scale, bins=bins, color="#4c72b0", alpha=0.85)
        ax.axvline(values.mean() * scale, color="k", ls="--", label=f"mean {values.mean() * scale:.3g}")
        ax.axvline(
            np.median(values) * scale, color="k", ls=":", label=f"median {np.median(values) * scale:.3g}"
        )
        ax.legend(frameon=False)
    else:
        ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(f"{column.upper()}{' (%)' if percent else ''}")
    ax.set_ylabel("utterances")
    ax.set_title(title or f"{column.upper()} per utterance (n={values.size})")
    return fig


def plot_wer_sim(results: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Two panels: WER/CER histogram and SIM histogram of an eval run's results."""
    metric = "cer" if "cer" in results.columns and results["cer"].notna().any() else "wer"
    fig = Figure(figsize=(10, 3.5), layout="constrained")
    for ax, col, pct in zip(fig.subplots(1, 2), (metric, "sim"), (True, False), strict=True):
        values = _values(results, col) if col in results.columns else np.array([])
        scale = 100.0 if pct else 1.0
        if values.size:
            ax.hist(values * scale, bins=30, color="#4c72b0" if pct else "#55a868", alpha=0.85)
            ax.axvline(values.mean() * scale, color="k", ls="--", label=f"mean {values.mean() * scale:.3g}")
            ax.legend(frameon=False)
        else:
            ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel(f"{col.upper()}{' (%)' if pct else ''}")
        ax.set_ylabel("utterances")
    if title:
        fig.suptitle(title)
    return fig


def plot_confusion(cm: pd.DataFrame, *, title: str = "", normalize: bool = True) -> Figure:
    """Heat map of a requested x measured confusion matrix (:func:`sparktts.eval.control.confusion_matrix`).

    Parameters
    ----------
    normalize : bool
        Colour by row fraction (each requested level sums to 1); cells are annotated with counts.
    """
    counts = cm.to_numpy(dtype=float)
    rows = counts.sum(axis=1, keepdims=True)
    shown = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0) if normalize else counts
    fig = Figure(figsize=(5, 4.2), layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    ax.set_xticks(range(cm.shape[1]), [str(c) for c in cm.columns], rotation=45, ha="right")
    ax.set_yticks(range(cm.shape[0]), [str(i) for i in cm.index])
    ax.set_xlabel(cm.columns.name or "measured")
    ax.set_ylabel(cm.index.name or "requested")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(
                j,
                i,
                f"{int(counts[i, j])}",
                ha="center",
                va="center",
                color="white" if shown[i, j] > 0.6 * (shown.max() or 1) else "black",
            )
    fig.colorbar(im, ax=ax, label="row fraction" if normalize else "count")
    total = counts.sum()
    acc = np.trace(counts) / total if total else float("nan")
    ax.set_title(f"{title} (accuracy {acc:.1%})" if title else f"accuracy {acc:.1%}")
    return fig


__all__ = ["plot_confusion", "plot_distribution", "plot_wer_sim"]
