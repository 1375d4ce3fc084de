"""Figures of audio and tokens, shared by the demo, the notebooks, the widget panels and the evals.

Every function returns a ``matplotlib.figure.Figure`` (or draws on given axes). Figures are made
with ``Figure()`` rather than pyplot: no global state, no backend to choose, no duplicate display in
notebooks (where the returned figure renders inline), and ``savefig`` works headless.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import librosa
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

SAMPLE_RATE = 16000
TOKEN_RATE = 50  # semantic tokens per second


def log_mel(audio: np.ndarray, sr: int = SAMPLE_RATE, n_mels: int = 80, hop_length: int = 160) -> np.ndarray:
    """Log-mel spectrogram in dB, ``(n_mels, frames)``, for display."""
    audio = np.asarray(audio, dtype=np.float32)
    if len(audio) < 1024:  # very short clips (a few tokens): pad so one full frame exists
        audio = np.pad(audio, (0, 1024 - len(audio)))
    mel = librosa.feature.melspectrogram(y=audio, sr=sr, n_fft=1024,
                                         hop_length=hop_length, n_mels=n_mels, fmax=sr / 2)
    return librosa.power_to_db(mel, ref=np.max(mel) if np.max(mel) > 0 else 1.0, top_db=80)


def plot_waveform(audio: np.ndarray, sr: int = SAMPLE_RATE, ax: Axes | None = None, title: str = "") -> Axes:
    ax = ax or Figure(figsize=(10, 2)).gca()
    t = np.arange(len(audio)) / sr
    ax.plot(t, audio, linewidth=0.5, color="tab:blue")
    ax.set_xlim(0, max(t[-1] if len(t) else 0, 1e-3))
    ax.set_ylabel("amplitude")
    ax.set_title(title)
    return ax


def plot_mel(audio: np.ndarray, sr: int = SAMPLE_RATE, ax: Axes | None = None, title: str = "",
             vmin: float | None = None, vmax: float | None = None, mel: np.ndarray | None = None) -> Axes:
    """Log-mel spectrogram; ``vmin``/``vmax`` fix the colour scale (to compare clips side by side);
    ``mel``: ``log_mel(audio, sr, hop_length=160)`` when the caller has it already."""
    ax = ax or Figure(figsize=(10, 3)).gca()
    mel = log_mel(audio, sr, hop_length=160) if mel is None else mel
    duration = len(audio) / sr
    ax.imshow(mel, origin="lower", aspect="auto", cmap="magma", extent=(0, duration, 0, mel.shape[0]),
              vmin=vmin, vmax=vmax)
    ax.set_ylabel("mel bin")
    ax.set_title(title)
    return ax


def plot_semantic_tokens(semantic_ids: Sequence[int] | np.ndarray, ax: Axes | None = None,
                         title: str = "semantic tokens") -> Axes:
    """Token ids as a timeline at 50 per second, so it lines up under a spectrogram of the same audio."""
    ids = np.asarray(semantic_ids).reshape(-1)
    ax = ax or Figure(figsize=(10, 1.5)).gca()
    t = np.arange(len(ids)) / TOKEN_RATE
    # Categorical colours: ids are labels, not magnitudes, so neighbouring ids get unrelated colours.
    ax.imshow((ids % 20)[None, :], aspect="auto", cmap="tab20", interpolation="nearest",
              extent=(0, len(ids) / TOKEN_RATE, 0, 1), vmin=0, vmax=19)
    ax.set_yticks([])
    ax.set_xlabel("time (s)")
    ax.set_title(f"{title} ({len(ids)} tokens, {len(np.unique(ids))} distinct)")
    if len(ids) <= 80:  # small enough to print the ids themselves
        for x, i in zip(t, ids):
            ax.text(x + 0.5 / TOKEN_RATE, 0.5, str(int(i)), ha="center", va="center", fontsize=5, rotation=90)
    return ax


def plot_global_tokens(global_ids: np.ndarray | Sequence[Sequence[int]], labels: Sequence[str] | None = None,
                       ax: Axes | None = None, codebook_size: int = 4096) -> Axes:
    """Global (speaker) tokens of one or more voices as a heat-map: one row per voice, 32 columns."""
    ids = np.atleast_2d(np.asarray(global_ids))
    ax = ax or Figure(figsize=(10, 0.5 + 0.4 * len(ids))).gca()
    ax.imshow(ids, aspect="auto", cmap="viridis", vmin=0, vmax=codebook_size - 1, interpolation="nearest")
    for r in range(ids.shape[0]):
        for c in range(ids.shape[1]):
            ax.text(c, r, str(int(ids[r, c])), ha="center", va="center", fontsize=6, color="white")
    ax.set_yticks(range(len(ids)), labels if labels is not None else [f"voice {i}" for i in range(len(ids))])
    ax.set_xlabel("global token index")
    ax.set_title("global tokens")
    return ax


def codec_overview(audio: np.ndarray, global_ids: np.ndarray, semantic_ids: np.ndarray,
                   sr: int = SAMPLE_RATE, title: str = "", reference: np.ndarray | None = None) -> Figure:
    """Waveform, mel spectrogram, semantic-token timeline and global-token strip of one clip.

    ``reference``: the input of a round trip; its spectrogram goes above the reconstruction's, on the same
    colour scale and time axis, so what the codec kept and lost shows at a glance.
    """
    rows = [1.2, 2.2, 0.8, 0.6] if reference is None else [1.2, 2.0, 2.0, 0.8, 0.6]
    fig = Figure(figsize=(11, 7.5 if reference is None else 9.5), constrained_layout=True)
    wave_ax, *mel_axes, token_ax, global_ax = fig.subplots(len(rows), 1, height_ratios=rows)
    plot_waveform(audio, sr, wave_ax, title=title)
    if reference is None:
        plot_mel(audio, sr, mel_axes[0])
        duration = len(audio) / sr
    else:
        mels = [log_mel(a, sr, hop_length=160) for a in (reference, audio)]
        scale = {"vmin": min(float(m.min()) for m in mels), "vmax": max(float(m.max()) for m in mels)}
        plot_mel(reference, sr, mel_axes[0], title="input", mel=mels[0], **scale)
        plot_mel(audio, sr, mel_axes[1], title="reconstruction", mel=mels[1], **scale)
        duration = max(len(audio), len(reference)) / sr
    plot_semantic_tokens(semantic_ids, token_ax)
    for ax in (wave_ax, *mel_axes, token_ax):
        ax.set_xlim(0, duration)
    plot_global_tokens(np.asarray(global_ids).reshape(1, -1), ["global"], global_ax)
    return fig


def compare_spectrograms(clips: dict[str, np.ndarray], sr: int = SAMPLE_RATE) -> Figure:
    """Mel spectrograms of several clips (e.g. prompt vs output) stacked with a shared colour scale."""
    fig = Figure(figsize=(10, 2.4 * len(clips)), constrained_layout=True)
    axes = fig.subplots(len(clips), 1, squeeze=False)
    for ax, (name, audio) in zip(axes[:, 0], clips.items()):
        plot_mel(audio, sr, ax, title=name)
    axes[-1, 0].set_xlabel("time (s)")
    return fig


def global_tokens_figure(global_ids: np.ndarray, labels: Sequence[str] | None = None) -> Figure:
    """:func:`plot_global_tokens` on a figure sized for the number of voices."""
    ids = np.atleast_2d(np.asarray(global_ids))
    fig = Figure(figsize=(10, 0.8 + 0.45 * len(ids)), constrained_layout=True)
    plot_global_tokens(ids, labels, fig.gca())
    return fig


def training_curves(metrics, columns: Sequence[str] | None = None, title: str = "", validation=None) -> Figure:
    """Loss curves of a training run: one panel per loss, the learning rate in the last.

    ``metrics`` is the DataFrame of a run's ``metrics.csv`` (``sparktts.train.run.read_metrics``) or
    anything with a ``step`` column. ``columns`` picks the losses (default: every column but ``step``,
    ``lr`` and ``seconds``). Losses with several orders of magnitude of range get a log axis.
    ``validation``: the run's ``validation.csv`` (``read_metrics(run, "validation.csv")``): drawn over the
    training curve of the same name as "held out", and the LM's ``text_gap`` in a panel of its own.
    """
    skip = {"step", "lr", "seconds"}
    names = list(columns) if columns is not None else [c for c in metrics.columns if c not in skip]
    if validation is not None and "text_gap" in validation.columns and "text_gap" not in names:
        names.append("text_gap")
    panels = names + (["lr"] if "lr" in metrics.columns else [])
    cols = min(3, max(1, len(panels)))
    rows = -(-len(panels) // cols)
    fig = Figure(figsize=(4 * cols, 2.4 * rows), constrained_layout=True)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False).ravel())
    for ax, name in zip(axes, panels):
        drawn = []
        for frame, label, style in ((metrics, "training", {"color": "#b42318" if name == "lr" else "#1f4e79"}),
                                    (validation, "held out", {"color": "#d97706", "marker": "o", "ms": 3})):
            if frame is None or name not in frame.columns:
                continue
            values = np.asarray(frame[name], dtype=float)
            ax.plot(np.asarray(frame["step"]), values, lw=1.2, label=label, **style)
            drawn.append(values[np.isfinite(values)])
        finite = np.concatenate(drawn) if drawn else np.array([])
        if name != "lr" and len(finite) and finite.min() > 0 and finite.max() / finite.min() > 30:
            ax.set_yscale("log")
        if len(drawn) > 1:
            ax.legend(fontsize=7)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path
