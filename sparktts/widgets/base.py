"""Shared pieces of the notebook panels: audio players, figures as images, error display, progress."""

from __future__ import annotations

import html
import io
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as W
import numpy as np
import soundfile

DATA = Path(__file__).resolve().parents[2] / "data"


def wav_bytes(audio: np.ndarray, sample_rate: int = 16000) -> bytes:
    buf = io.BytesIO()
    soundfile.write(buf, np.clip(np.asarray(audio, dtype=np.float32), -1, 1), sample_rate, format="WAV",
                    subtype="PCM_16")
    return buf.getvalue()


def audio_widget(audio: np.ndarray, sample_rate: int = 16000) -> W.Audio:
    """An HTML5 audio player (renders as an ``<audio>`` element)."""
    return W.Audio(value=wav_bytes(audio, sample_rate), format="wav", autoplay=False, loop=False)


def figure_widget(fig: Any, width: str = "100%") -> W.Image:
    """A matplotlib figure as a PNG image widget."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return W.Image(value=buf.getvalue(), format="png", layout=W.Layout(width=width))


def prompt_choices() -> dict[str, str]:
    """Prompt clips shipped in ``data/`` (name -> path), for the clip pickers."""
    clips = sorted((DATA / "prompts").glob("*.wav")) + sorted((DATA / "testlists").glob("**/*.wav"))
    return {p.stem: str(p) for p in clips}


def uploaded_audio(upload: W.FileUpload) -> tuple[np.ndarray, int] | None:
    """The last file of a ``FileUpload`` decoded with soundfile, or None when nothing was uploaded."""
    files = upload.value
    if not files:
        return None
    item = files[-1] if isinstance(files, (list, tuple)) else list(files.values())[-1]
    content = item["content"] if isinstance(item, dict) else item.content
    audio, sr = soundfile.read(io.BytesIO(bytes(content)), dtype="float32")
    return audio, sr


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
        try:
            children = fn()
        except Exception as exc:  # the panel must survive any error
            self.error = f"{type(exc).__name__}: {exc}"
            self.set_status(self.error, "error")
            self.last_traceback = traceback.format_exc()
            return False
        if children is not None:
            self.output.children = tuple(children)
        self.set_status(f"{label}: done", "ok")
        return True
