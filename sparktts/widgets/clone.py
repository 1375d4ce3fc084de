"""Voice cloning panel: a reference clip + text -> speech in that voice, with its tokens and figures."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as W

from ..errors import PromptError
from .base import (
    Panel,
    SamplingControls,
    prompt_choices,
    seed_box,
    seed_or_none,
    synthesis_widgets,
    uploaded_audio,
    uploaded_name,
)

if TYPE_CHECKING:
    from ..inference.tts import SparkTTS


NO_MODEL = "no model loaded: create the panel with a SparkTTS, e.g. ClonePanel(SparkTTS.from_pretrained(model_dir))"


class ClonePanel(Panel):
    """Clone the voice of a clip from ``data/`` or an uploaded file.

    The same call as ``SparkTTS.clone`` (and the CLI): a prompt clip, its optional transcript (the LM
    then continues the clip's own tokens), the text, a seed (-1 draws one) and the sampling settings.
    After **Generate** the panel shows an audio player, the waveform, mel spectrogram and token strips,
    and the token ids; ``panel.result`` is the :class:`~sparktts.Synthesis`.

    Args:
        tts: a loaded :class:`~sparktts.SparkTTS` (None shows a "no model" message on Generate).
        clips: name -> path of the clips to offer (default: :func:`prompt_choices`).
        text: initial text.
        max_new_tokens: initial token budget (None: the library default; small values keep random-weight
            demos quick).
    """

    title = "Voice cloning"

    def __init__(self, tts: SparkTTS | None, clips: dict[str, str] | None = None,
                 text: str = "Hello! This sentence is spoken in the voice of the reference clip.",
                 max_new_tokens: int | None = None) -> None:
        super().__init__()
        self.tts = tts
        self.clips = clips if clips is not None else prompt_choices()
        names = list(self.clips)
        self.prompt = W.Dropdown(options=names, value=names[0] if names else None, description="prompt clip")
        self.upload = W.FileUpload(accept="audio/*", multiple=False, description="upload a clip")
        self.clear_upload = W.Button(description="clear upload", tooltip="use the prompt clip again")
        self.transcript = W.Text(description="transcript", placeholder="optional: the words spoken in the clip",
                                 layout=W.Layout(width="60%"))
        self.text = W.Textarea(value=text, description="text", layout=W.Layout(width="90%", height="70px"))
        self.seed = seed_box()
        self.sampling = SamplingControls(max_new_tokens)
        self.generate_button = W.Button(description="Generate", button_style="primary", icon="play")
        self.generate_button.on_click(lambda _: self.generate())
        self.clear_upload.on_click(lambda _: self._clear_upload())
        self.busy_widgets = [self.generate_button]
        self.controls = W.VBox([
            W.HBox([self.prompt, self.upload, self.clear_upload]),
            self.transcript,
            self.text,
            self.sampling.widget,
            W.HBox([self.seed, self.generate_button]),
        ])

    def _clear_upload(self) -> None:
        self.upload.value = ()
        self.set_status("upload cleared: the prompt clip is used")

    def prompt_source(self) -> tuple[Any, int | None, str]:
        """``(audio, sample_rate, label)``: the upload when there is one, else the chosen clip's path."""
        up = uploaded_audio(self.upload)
        if up is not None:
            return up[0], up[1], f"upload {uploaded_name(self.upload)}"
        if self.prompt.value is None:
            raise PromptError("no prompt audio: pick a prompt clip or upload a file")
        return self.clips[self.prompt.value], None, str(self.prompt.value)

    def generate(self) -> bool:
        """Run one cloning call with the current settings (what the Generate button does)."""

        def work() -> list[W.Widget]:
            if self.tts is None:
                raise PromptError(NO_MODEL)
            audio, sr, label = self.prompt_source()
            transcript = self.transcript.value.strip() or None
            out = self.tts.clone(self.text.value, prompt_audio=audio, prompt_text=transcript, sample_rate=sr,
                                 seed=seed_or_none(self.seed), progress=False, **self.sampling.kwargs())
            self.result = out
            rows = [("prompt", label + (f" — transcript: {transcript}" if transcript else ""))]
            return synthesis_widgets(out, f"cloned from {label}", rows)

        return self.run("Generating", work)
