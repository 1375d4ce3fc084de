"""Voice creation panel: gender / pitch / speed labels -> a new voice, saved to a file and reused."""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as W

from ..errors import PromptError
from ..format.tokens import GENDER_MAP, LEVELS_MAP
from .base import Panel, SamplingControls, audio_widget, seed_box, seed_or_none, synthesis_widgets
from .clone import NO_MODEL

if TYPE_CHECKING:
    from ..inference.tts import SparkTTS

# (shown, value) pairs; the values are the API's labels, in the order of the prompt tokens' ids.
GENDERS = [(g, g) for g in GENDER_MAP]
LEVELS = [(name.replace("_", " "), name) for name in LEVELS_MAP]


class CreatePanel(Panel):
    """Design a voice without a reference clip, as ``SparkTTS.create`` (and the CLI) does.

    **Generate** speaks the text in a voice made from the gender, pitch and speed labels; the panel shows
    the audio, the codec overview figure and the model's own decision, which it writes before the voice:
    the pitch (mel, and Hz) and the speed (syllables/s). **Save voice** writes the created voice (its 32
    global tokens and the labels) as a voice JSON file; **Speak with this voice** clones a new line with
    the created voice's global tokens.

    Results: ``panel.result`` (the creation's :class:`~sparktts.Synthesis`), ``panel.voice`` (the last
    saved :class:`~sparktts.Voice`), ``panel.spoken`` (the last line spoken with the voice).
    """

    title = "Voice creation"

    def __init__(self, tts: SparkTTS | None, text: str = "Hi, I am a voice that did not exist a minute ago.",
                 max_new_tokens: int | None = None, voice_path: str = "voices/created_voice.json") -> None:
        super().__init__()
        self.tts = tts
        self.voice: Any = None
        self.saved_path: Path | None = None
        self.spoken: Any = None
        self._created: list[W.Widget] = []  # the creation's view, kept above the spoken lines
        self.gender = W.ToggleButtons(options=GENDERS, value="female", description="gender")
        self.pitch = W.ToggleButtons(options=LEVELS, value="moderate", description="pitch")
        self.speed = W.ToggleButtons(options=LEVELS, value="moderate", description="speed")
        for toggle in (self.gender, self.pitch, self.speed):
            toggle.style.button_width = "90px"
        self.text = W.Textarea(value=text, description="text", layout=W.Layout(width="90%", height="70px"))
        self.seed = seed_box()
        self.sampling = SamplingControls(max_new_tokens)
        self.generate_button = W.Button(description="Generate", button_style="primary", icon="play")
        self.voice_path = W.Text(value=voice_path, description="voice file", layout=W.Layout(width="50%"))
        self.save_button = W.Button(description="Save voice", icon="save")
        self.speak_text = W.Textarea(value="And this is another line in the same voice.", description="new line",
                                     layout=W.Layout(width="90%", height="50px"))
        self.speak_button = W.Button(description="Speak with this voice", layout=W.Layout(width="200px"))
        self.generate_button.on_click(lambda _: self.generate())
        self.save_button.on_click(lambda _: self.save_voice())
        self.speak_button.on_click(lambda _: self.speak())
        self.busy_widgets = [self.generate_button, self.save_button, self.speak_button]
        self.controls = W.VBox([
            self.gender, self.pitch, self.speed,
            self.text,
            self.sampling.widget,
            W.HBox([self.seed, self.generate_button]),
            W.HBox([self.voice_path, self.save_button]),
            W.HBox([self.speak_text, self.speak_button]),
        ])

    def generate(self) -> bool:
        """Create a voice from the labels and speak the text (what the Generate button does)."""

        def work() -> list[W.Widget]:
            if self.tts is None:
                raise PromptError(NO_MODEL)
            out = self.tts.create(self.text.value, self.gender.value, self.pitch.value, self.speed.value,
                                  seed=seed_or_none(self.seed), progress=False, **self.sampling.kwargs())
            self.result, self.spoken = out, None
            asked = f"{self.gender.value}, pitch {self.pitch.value}, speed {self.speed.value}"
            decided = "not written (no preamble)" if out.pitch_value is None else (
                f"pitch {out.pitch_value} mel ≈ {out.pitch_hz:.0f} Hz, speed {out.speed_value} syllables/s")
            rows = [("requested", asked), ("model's decision", decided)]
            self._created = synthesis_widgets(out, f"created voice: {asked}", rows)
            return self._created

        return self.run("Generating", work)

    def _created_voice(self) -> Any:
        if self.result is None:
            raise PromptError("no voice yet: press Generate first to create one")
        return self.result.voice(Path(self.voice_path.value).stem or "created")

    def save_voice(self) -> bool:
        """Write the created voice to the path in the voice-file box (folders are created)."""

        def work() -> None:
            if not self.voice_path.value.strip():
                raise PromptError("no voice file given: type a path such as voices/my_voice.json")
            voice = self._created_voice()
            self.saved_path = voice.save(self.voice_path.value.strip()).resolve()
            self.voice = voice

        ok = self.run("Saving voice", work)
        if ok:
            self.set_status(f"Saved voice {self.voice.name!r} to {self.saved_path}", "ok")
        return ok

    def speak(self) -> bool:
        """Clone the new line with the created voice's global tokens (what "Speak with this voice" does)."""

        def work() -> list[W.Widget]:
            voice = self._created_voice()
            out = self.tts.clone(self.speak_text.value, voice=voice, seed=seed_or_none(self.seed), progress=False,
                                 **self.sampling.kwargs())
            self.spoken = out
            head = W.HTML(f"<hr><b>In the created voice:</b> {html.escape(out.text)} "
                          f"({out.duration:.2f} s, seed {out.seed})")
            return [*self._created, head, audio_widget(out.audio, out.sample_rate)]

        return self.run("Speaking with the created voice", work)
