"""data/builtin/build.py: the built-in model's recipe runs end to end, resumes, and writes a loadable release."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ._scripts import load_script

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                reason="espeak-ng is not installed (apt-get install espeak-ng); CI installs it")


def _build_module():
    return load_script("data/builtin/build.py", "builtin_build")


def test_smoke_recipe_writes_a_release_and_a_rerun_only_resumes(tmp_path: Path) -> None:
    from sparktts import SparkTTS
    from sparktts.train.run import read_metrics

    build = _build_module()
    work, out = tmp_path / "work", tmp_path / "release"
    argv = ["--work", str(work), "--out", str(out), "--n", "16", "--heldout", "2", "--jobs", "1",
            "--codec-config", "tiny", "--phase-steps", "2", "--asr-model", "tiny.en"]
    assert build.main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == ["BiCodec", "LLM", "MODEL_CARD.md", "config.yaml",
                                                     "export.json", "wav2vec2-large-xlsr-53"]
    assert json.loads((work / "build.json").read_text()) == {"codec-1": 2, "codec-2": 2, "codec-3": 2,
                                                               "lm-1": 2, "lm-2": 2}
    # Each phase starts from the export of the one before; the release ships codec-3 beside lm-2.
    assert json.loads((work / "codec-2-run" / "run.json").read_text())["init"] == str(work / "codec-1")
    shipped = json.loads((out / "export.json").read_text())
    assert shipped["codec_dir"] == str((work / "codec-3").resolve())
    assert shipped["tokens_codec_dir"] == str((work / "codec-2").resolve())
    for name in ("codec-1-2", "codec-2-2", "codec-3-2", "clone", "create"):
        rows = [json.loads(x) for x in (work / "eval" / name / "results.jsonl").read_text().splitlines()]
        assert len(rows) == 2 and all("wer" in r for r in rows)  # a 2-step model may be silent: rows, not crashes
    codec_rows = [json.loads(x) for x in (work / "eval" / "codec-3-2.jsonl").read_text().splitlines()]
    assert all(r["prompt_wav"] == r["gt_wav"] for r in codec_rows)  # SIM against the recording itself
    clone = json.loads((work / "eval" / "clone" / "summary.json").read_text())
    assert "identification" in clone
    card = (out / "MODEL_CARD.md").read_text()  # every figure read from the build's own records
    assert "16 clips" in card and "2 clips" in card and "| lm-2 | " in card
    wer = clone["wer_utt_mean"]
    assert f"| cloning WER (Whisper tiny.en) | {float(wer):g} % | ≤ 30 % | " in card
    assert ("| met |" if wer <= 30 else "not met (off by") in card
    assert "voice creation: pitch within one level" in card and "codec round trip WER" in card

    stamp = (out / "LLM" / "model.safetensors").stat().st_mtime_ns
    logged = {run: read_metrics(work / run)["step"].tolist() for run in ("codec-3-run", "lm-2-run")}
    assert all(steps[-1] == 2 for steps in logged.values())
    assert build.main([*argv, "--no-eval"]) == 0  # everything done already: runs resume at their last step
    assert {run: read_metrics(work / run)["step"].tolist() for run in logged} == logged
    assert (out / "LLM" / "model.safetensors").stat().st_mtime_ns >= stamp
    tts = SparkTTS.from_pretrained(out, device="cpu")
    result = tts.create("A short test.", "female", "moderate", "moderate", seed=0, max_new_tokens=48)
    assert result.sample_rate == 16000
