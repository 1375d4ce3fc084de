"""Every notebook runs headless (nbclient) on the random stand-in release, and shows what it should."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import nbformat
import pytest
import soundfile
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def run_notebook(path: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(str(path), as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


def outputs(nb, mime: str) -> list:
    return [o["data"][mime] for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if "data" in o and mime in o["data"]]


AUDIO_SRC = r"""src=["']data:audio/wav;base64,([^"']+)["']"""


def audio_lengths(nb) -> list[int]:
    """Sample counts of the audio players (IPython.display.Audio and a shown Synthesis embed a base64 WAV)."""
    found = []
    for html in outputs(nb, "text/html"):
        for b64 in re.findall(AUDIO_SRC, html):
            found.append(soundfile.info(io.BytesIO(base64.b64decode(b64))).frames)
    return found


def shown_syntheses(nb) -> list[tuple[str, int, int]]:
    """``(mode, semantic tokens, audio samples)`` of every Synthesis shown as a cell result."""
    found = []
    for c in nb.cells:
        for o in c.get("outputs", []) if c.cell_type == "code" else []:
            data = o.get("data", {})
            m = re.match(r"Synthesis\((\w+), [\d.]+ s, (\d+) semantic tokens", data.get("text/plain", ""))
            if m and "text/html" in data:
                (b64,) = re.findall(AUDIO_SRC, data["text/html"])
                found.append((m[1], int(m[2]), soundfile.info(io.BytesIO(base64.b64decode(b64))).frames))
    return found


def printed(nb) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


HOP = 320  # samples per semantic token
BUDGET = 150  # the notebooks' max_new_tokens on the random stand-in


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path):
    nb = run_notebook(path)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and "model_dir" in params[0].source
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    notices = outputs(nb, "text/html")
    assert any("random weights: pipeline check only" in h for h in notices) or "random release" in text
    shown_widgets = [o["data"].get("text/plain", "") for c in nb.cells if c.cell_type == "code"
                     for o in c.get("outputs", []) if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]

    def panel_shown(title: str) -> bool:
        return any(f"<h3>{title}</h3>" in w for w in shown_widgets)
    if path.stem == "01_quickstart":
        shown = shown_syntheses(nb)
        assert [m for m, _, _ in shown] == ["clone", "create", "clone"]  # the last from the fast CPU setting
        # quantize="auto" takes what measures fastest here among bf16, int8 (per engine) and int8-weight: on an
        # AVX2-only EPYC the tiny model's shapes measured bf16 fastest, on AVX-512 ones int8.
        assert re.search(r"LLM kernel: (bf16|int8/(fbgemm|onednn)|int8-weight)\n", text), text
        assert all(0 < n <= BUDGET and samples == n * HOP for _, n, samples in shown), shown
        assert "Voice(name='newcomer', 32 global tokens, source=created)" in text
        assert re.search(r"Synthesis\(clone, [\d.]+ s, \d+ semantic tokens, seed=1\)", text)
    if path.stem == "02_voice_cloning":
        assert panel_shown("Voice cloning"), "the panel was not displayed"
        m = re.search(r"Synthesis\(clone, [\d.]+ s, (\d+) semantic tokens, seed=4\)", text)
        assert m, text
        assert audio_lengths(nb) == [int(m[1]) * HOP]  # the panel's result, played in the next cell
        assert re.search(r"global tokens: \[(\d+, ){31}\d+\]", text)
    if path.stem == "03_voice_creation":
        assert panel_shown("Voice creation"), "the panel was not displayed"
        assert re.search(r"Synthesis\(create, [\d.]+ s, \d+ semantic tokens, seed=1, pitch=\d+ mel, speed=\d+ syl/s\)",
                         text), text
        saved = re.search(r"saved to (\S+created_voice\.json)", text)
        assert saved and Path(saved[1]).is_file()
        assert "Voice(name='created_voice', 32 global tokens, source=created)" in text
        shown = shown_syntheses(nb)
        assert len(shown) == 1 and shown[0][0] == "clone" and shown[0][2] == shown[0][1] * HOP > 0
    if path.stem == "06_evaluation":
        assert panel_shown("Evaluation"), "the panel was not displayed"
        tables = [h for h in outputs(nb, "text/html") if "<table" in h]
        assert any("wer_utt_mean" in h and "sim_mean" in h for h in tables)
        assert any(all(f"en_00{i}" in h for i in range(1, 5)) for h in tables)
        assert len(outputs(nb, "image/png")) >= 1
        run_dir = Path(path.parent, re.search(r"(\S*outputs/eval/espeak_en-\S+)", text)[1])
        assert len((run_dir / "results.jsonl").read_text().splitlines()) == 4
        assert sorted(p.name for p in (run_dir / "wavs").glob("*.wav")) == [f"en_00{i}.wav" for i in range(1, 5)]
    if path.stem == "04_token_explorer":
        assert outputs(nb, "application/vnd.jupyter.widget-view+json"), "the panel was not displayed"
        assert re.search(r"\(\d+,\)", outputs(nb, "text/plain")[-1])  # shape of the swapped audio
    if path.stem == "05_codec_analysis":
        lengths = audio_lengths(nb)
        assert len(lengths) == 2 and lengths[1] % 320 == 0 and abs(lengths[0] - lengths[1]) < 720
        assert len(outputs(nb, "image/png")) >= 3
        assert any("perplexity" in h for h in outputs(nb, "text/html"))
    if path.stem == "07_training":
        assert re.search(r"data: 12 clips, 0 skipped", text), text
        assert "shipped with the further-trained decoder:" in text
        assert re.search(r"refused: .*does not tokenize as", text), text
        assert len(outputs(nb, "image/png")) >= 3  # codec and LM curves, spectrograms
        shown = shown_syntheses(nb)
        assert len(shown) == 1 and shown[0][0] == "clone" and shown[0][2] == shown[0][1] * HOP > 0
        lengths = audio_lengths(nb)  # the clone, then the input clip and its trained-codec reconstruction
        assert len(lengths) == 3 and lengths[2] % HOP == 0 and abs(lengths[1] - lengths[2]) < 720
        tables = [h for h in outputs(nb, "text/html") if "<table" in h]
        assert any("trained" in h and "release" in h and "perplexity" in h for h in tables)
        assert any("trained" in h and "release" in h and "stoi" in h and "mel_distance" in h for h in tables)
        runs = sorted(Path(path.parent, "../outputs/training").glob("*/lm_run"))
        assert runs and (runs[-1] / "metrics.csv").is_file()
        validation = (runs[-1] / "validation.csv").read_text().splitlines()  # the held-out clips, every 5 steps
        assert [row.split(",")[0] for row in validation] == ["step", "0", "5", "10", "15", "20"]
