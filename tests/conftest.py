"""Shared fixtures: the reference ("golden") data made with the original code, and random releases."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Random stand-in releases built by the demo and notebooks are cached per test session (~175 MB), in a
# folder that goes with the session: a developer's machine would otherwise keep one per run.
if "SPARKTTS_CACHE" not in os.environ:
    os.environ["SPARKTTS_CACHE"] = tempfile.mkdtemp(prefix="sparktts-cache-")
    atexit.register(shutil.rmtree, os.environ["SPARKTTS_CACHE"], ignore_errors=True)

ROOT = Path(__file__).resolve().parents[1]


def _find_reference() -> Path | None:
    env = os.environ.get("SPARKTTS_REFERENCE")
    if env:
        return Path(env)
    for parent in [ROOT, *ROOT.parents]:
        cand = parent / "shared" / "reference"
        if (cand / "tiny" / "cases.json").is_file():
            return cand
    return None


REFERENCE = _find_reference()


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    if REFERENCE is None:
        pytest.fail("reference data not found: set SPARKTTS_REFERENCE to the shared/reference directory")
    return REFERENCE


@pytest.fixture(scope="session")
def tiny_reference_release(reference_dir: Path) -> Path:
    return reference_dir / "tiny" / "Spark-TTS-tiny"


@pytest.fixture(scope="session")
def cases(reference_dir: Path) -> dict:
    return {c["name"]: c for c in json.loads((reference_dir / "tiny" / "cases.json").read_text())["cases"]}


@pytest.fixture(scope="session")
def reference_tokenizer(tiny_reference_release: Path):
    from sparktts import BiCodecTokenizer

    return BiCodecTokenizer.from_pretrained(tiny_reference_release, device="cpu")


@pytest.fixture(scope="session")
def tiny_codec_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny release without the LLM (codec tests)."""
    from sparktts.testing import make_random_release

    return make_random_release(tmp_path_factory.mktemp("tiny_codec"), "tiny", parts=("bicodec", "wav2vec2"))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def tone(seconds: float = 1.0, sr: int = 16000, freq: float = 220.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


# --- generation (SparkTTS on a random tiny release with the LLM) -----------------------------------------


@pytest.fixture(scope="session")
def tiny_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete random tiny release (BiCodec, wav2vec2, LLM) in the released layout."""
    from sparktts.testing import make_random_release

    return make_random_release(tmp_path_factory.mktemp("tiny_release") / "Spark-TTS-tiny", "tiny")


@pytest.fixture(scope="session")
def tiny_tts(tiny_release: Path):
    """SparkTTS on the tiny release, on CPU (shared: tests must not change its state)."""
    from sparktts import SparkTTS

    return SparkTTS.from_pretrained(tiny_release, device="cpu")


@pytest.fixture(scope="session")
def prompt_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1.5 s, 16 kHz reference clip (a modulated tone: the codec only needs non-silent audio)."""
    import soundfile

    t = np.arange(24000) / 16000
    wav = tone(1.5, freq=180.0) * (1.0 + 0.5 * np.sin(2 * np.pi * 3 * t)).astype(np.float32)
    path = tmp_path_factory.mktemp("prompt") / "ref.wav"
    soundfile.write(str(path), wav, 16000)
    return path
