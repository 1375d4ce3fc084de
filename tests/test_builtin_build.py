"""data/builtin/build.py: the built-in model's recipe runs end to end, resumes, and writes a loadable release."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                reason="espeak-ng is not installed (apt-get install espeak-ng); CI installs it")


def _build_module():
    spec = importlib.util.spec_from_file_location("builtin_build", ROOT / "data" / "builtin" / "build.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["builtin_build"] = module
    spec.loader.exec_module(module)
    return module


def test_smoke_recipe_writes_a_release_and_a_rerun_only_resumes(tmp_path: Path) -> None:
    from sparktts import SparkTTS
    from sparktts.train.run import read_metrics

    build = _build_module()
    work, out = tmp_path / "work", tmp_path / "release"
    argv = ["--work", str(work), "--out", str(out), "--n", "8", "--heldout", "2", "--jobs", "1",
            "--codec-config", "tiny", "--lm-config", "tiny", "--codec-steps", "2", "--lm-steps", "2",
            "--asr-model", "tiny.en"]
    assert build.main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == ["BiCodec", "LLM", "config.yaml", "export.json",
                                                     "wav2vec2-large-xlsr-53"]
    # Tokens, LM run and release are named by the codec step they belong to.
    assert (work / "tokens-2").is_dir() and (work / "lm-run-2").is_dir() and (work / "release-2-2").is_dir()
    for name in ("codec-2", "tts-2"):
        rows = [json.loads(x) for x in (work / "eval" / name / "results.jsonl").read_text().splitlines()]
        assert len(rows) == 2 and all("wer" in r for r in rows)  # a 2-step model may be silent: rows, not crashes
    codec_rows = [json.loads(x) for x in (work / "eval" / "codec-2.jsonl").read_text().splitlines()]
    assert all(r["prompt_wav"] == r["gt_wav"] for r in codec_rows)  # SIM against the recording itself

    stamp = (out / "LLM" / "model.safetensors").stat().st_mtime_ns
    assert build.main([*argv, "--no-eval"]) == 0  # everything done already: runs resume at their last step
    assert read_metrics(work / "codec-run")["step"].tolist() == [1, 2]
    assert read_metrics(work / "lm-run-2")["step"].max() == 2
    assert (out / "LLM" / "model.safetensors").stat().st_mtime_ns >= stamp
    tts = SparkTTS.from_pretrained(out, device="cpu")
    result = tts.create("A short test.", "female", "moderate", "moderate", seed=0, max_new_tokens=48)
    assert result.sample_rate == 16000
