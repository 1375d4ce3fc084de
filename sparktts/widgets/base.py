"""Shared pieces of the notebook panels: audio players, figures as images, error display, progress."""

from __future__ import annotations

import html
import io
import traceback
from collections.abc import Callable
from typing import Any

import ipywidgets as W
import numpy as np
import soundfile

from ..assets import asset_dir, prompts_dir, testlists_dir
from ..audio import wav_bytes
from ..errors import AudioError

# The shipped data (package data, present in a wheel install too); kept under its old name for panels.
DATA = asset_dir("prompts").parent


def audio_widget(audio: np.ndarray, sample_rate: int = 16000) -> W.Audio:
    """An HTML5 audio player (renders as an ``<audio>`` element)."""
    return W.Audio(value=wav_bytes(audio, sample_rate), format="wav", autoplay=False, loop=False)


def figure_widget(fig: Any, width: str = "100%") -> W.Image:
    """A matplotlib figure as a PNG image widget."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return W.Image(value=buf.getvalue(), format="png", layout=W.Layout(width=width))


def prompt_choices() -> dict[str, str]:
    """Prompt clips shipped with the package (:mod:`sparktts.assets`; name -> path), for the clip pickers."""
    clips = sorted(prompts_dir().glob("*.wav")) + sorted(testlists_dir().glob("**/*.wav"))
    return {p.stem: str(p) for p in clips}


def _last_upload(upload: W.FileUpload) -> Any | None:
    files = upload.value
    if not files:
        return None
    return files[-1] if isinstance(files, (list, tuple)) else list(files.values())[-1]


def uploaded_name(upload: W.FileUpload) -> str | None:
    """File name of the last upload of a ``FileUpload``, or None when nothing was uploaded."""
    item = _last_upload(upload)
    if item is None:
        return None
    return str(item["name"] if isinstance(item, dict) else item.name)


def uploaded_audio(upload: W.FileUpload) -> tuple[np.ndarray, int] | None:
    """The last file of a ``FileUpload`` decoded with soundfile, or None when nothing was uploaded.

    Raises:
        AudioError: the file is not audio soundfile can read (the message names the file).
    """
    item = _last_upload(upload)
    if item is None:
        return None
    content = item["content"] if isinstance(item, dict) else item.content
    try:
        audio, sr = soundfile.read(io.BytesIO(bytes(content)), dtype="float32")
    except Exception as exc:  # libsndfile's own message is cryptic without the file name
        raise AudioError(
            f"the uploaded file {uploaded_name(upload)!r} is not readable audio ({exc}); upload a WAV, FLAC or "
            "OGG file, or clear the upload to use the chosen clip"
        ) from None
    return audio, sr


def seed_or_none(box: W.IntText) -> int | None:
    """The seed typed in a seed box; a negative value means "draw a fresh seed" (None for the API)."""
    return None if box.value < 0 else int(box.value)


def seed_box(value: int = -1) -> W.IntText:
    """The seed field of the panels: -1 draws a fresh seed per call (the seed used is shown afterwards)."""
    return W.IntText(value=value, description="seed (-1 = random)", style={"description_width": "initial"},
                     tooltip="-1 draws a fresh seed; the seed actually used is shown with each result",
                     layout=W.Layout(width="220px"))


class SamplingControls:
    """Temperature / top-k / top-p sliders and the token budget, shared by the generating panels.

    Defaults are the original's ``generate`` settings (:class:`sparktts.SamplingConfig`).
    """

    def __init__(self, max_new_tokens: int | None = None) -> None:
        from ..llm.sampling import SamplingConfig

        d = SamplingConfig()  # read, not copied, so the panels follow the library's defaults
        max_new_tokens = d.max_new_tokens if max_new_tokens is None else max_new_tokens
        wide = {"description_width": "initial"}  # the default width cuts "temperature" short
        self.temperature = W.FloatSlider(value=d.temperature, min=0.05, max=2.0, step=0.05, description="temperature",
                                         style=wide)
        self.top_k = W.IntSlider(value=d.top_k, min=0, max=200, description="top-k", tooltip="0 disables top-k",
                                 style=wide)
        self.top_p = W.FloatSlider(value=d.top_p, min=0.05, max=1.0, step=0.01, description="top-p", style=wide)
        self.max_new_tokens = W.BoundedIntText(value=max_new_tokens, min=1, max=100_000, description="max tokens",
                                               tooltip="generation budget; 50 semantic tokens = 1 s of speech",
                                               style=wide, layout=W.Layout(width="200px"))
        self.widget = W.HBox([self.temperature, self.top_k, self.top_p, self.max_new_tokens],
                             layout=W.Layout(flex_flow="row wrap"))

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``SparkTTS.clone`` / ``create``."""
        return {"temperature": float(self.temperature.value), "top_k": int(self.top_k.value),
                "top_p": float(self.top_p.value), "max_new_tokens": int(self.max_new_tokens.value)}


def tokens_widget(global_ids: np.ndarray, semantic_ids: np.ndarray) -> W.HTML:
    """The token ids as text (monospace, wrapped), so they can be read and copied."""
    g = " ".join(str(int(i)) for i in np.asarray(global_ids).reshape(-1))
    s = " ".join(str(int(i)) for i in np.asarray(semantic_ids).reshape(-1))
    style = "font-family:monospace;font-size:85%;white-space:pre-wrap;word-break:break-all;margin:2px 0"
    return W.HTML(f"<div><b>global tokens ({len(g.split())})</b><div style='{style}'>{g}</div>"
                  f"<b>semantic tokens ({len(s.split())}, 50 per second)</b><div style='{style}'>{s}</div></div>")


def synthesis_widgets(out: Any, title: str, rows: list[tuple[str, str]] | None = None) -> list[W.Widget]:
    """Facts table, audio player, codec overview figure and token ids of one :class:`~sparktts.Synthesis`."""
    from ..plotting import codec_overview

    facts = [("text", out.text), ("duration", f"{out.duration:.2f} s ({len(out.semantic_tokens)} semantic tokens)"),
             ("seed", f"{out.seed} (type it in the seed box to reproduce this result)"),
             *(rows or [])]
    if out.finish_reason == "length":
        facts.append(("note", "stopped at max tokens: the utterance may be cut; raise the budget"))
    if "total_s" in out.timings:
        facts.append(("time", f"{out.timings['total_s']:.2f} s (RTF {out.timings.get('rtf', float('nan')):.2f})"))
    table = "".join(f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(k)}</th>"
                    f"<td>{html.escape(v)}</td></tr>" for k, v in facts)
    fig = codec_overview(out.audio, out.global_tokens, out.semantic_tokens, sr=out.sample_rate, title=title)
    return [W.HTML(f"<b>{html.escape(title)}</b><table style='font-size:90%'>{table}</table>"),
            audio_widget(out.audio, out.sample_rate), figure_widget(fig),
            tokens_widget(out.global_tokens, out.semantic_tokens)]


class Panel:
    """Base of the panels: a status line, an output area, and error handling that keeps the panel alive.

    Subclasses build ``self.controls`` and call :meth:`run` from button handlers; the last result is
    kept on the panel (``panel.result``) for the next notebook cell.
    """

    title = "panel"

    def __init__(self) -> None:
        self.status = W.HTML()
        self.output = W.VBox()
        self.error: str | None = None
        self.result: Any = None
        self.controls: W.Widget = W.VBox()
        self.busy_widgets: list[W.Widget] = []  # disabled while :meth:`run` works
        self.last_traceback: str | None = None

    @property
    def widget(self) -> W.Widget:
        return W.VBox([W.HTML(f"<h3>{html.escape(self.title)}</h3>"), self.controls, self.status, self.output])

    def show(self) -> Panel:
        from IPython.display import display

        display(self.widget)
        return self

    def _ipython_display_(self) -> None:
        self.show()

    def set_status(self, text: str, kind: str = "info") -> None:
        colour = {"info": "#555", "ok": "#1a7f37", "error": "#b42318"}[kind]
        self.status.value = f'<span style="color:{colour}">{html.escape(text)}</span>'

    def run(self, label: str, fn: Callable[[], list[W.Widget] | None]) -> bool:
        """Run ``fn`` with a busy message; show its widgets, or a readable error instead of a traceback."""
        self.error = None
        self.set_status(f"{label} ...")
        # Buttons are disabled while working so a second click cannot start a run on top of this one.
        busy = [b for b in self.busy_widgets if not b.disabled]
        for b in busy:
            b.disabled = True
        try:
            children = fn()
        except Exception as exc:  # the panel must survive any error
            self.error = f"{type(exc).__name__}: {exc}"
            self.set_status(self.error, "error")
            self.last_traceback = traceback.format_exc()
            return False
        finally:
            for b in busy:
                b.disabled = False
        if children is not None:
            self.output.children = tuple(children)
        self.set_status(f"{label}: done", "ok")
        return True
