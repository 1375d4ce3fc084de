"""data/builtin/gpu_build.sh and transfer.py: the one-command GPU recipe runs end to end (here on the CPU,
with tiny configs and a spent time budget) and its release comes back through the pieces exactly."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from ._scripts import ROOT, load_script

transfer = load_script("data/builtin/transfer.py", "builtin_transfer")
HERE = ROOT / "data" / "builtin"


def test_gpu_configs_load_with_their_intended_settings(tiny_codec_release: Path) -> None:
    from sparktts.train.codec.config import load_codec_config
    from sparktts.train.config import load_config
    from sparktts.train.lm.config import LMTrainConfig

    a = load_codec_config(HERE / "codec_gpu.yaml")
    assert a.bicodec().decoder.channels == 384 and a.wav2vec2.trainable and a.discriminator.start_step > a.max_steps
    # Phase B keeps phase A's tokens, so it must prepare prompts as phase A's export does.
    raw = yaml.safe_load((HERE / "codec_gpu_decoder.yaml").read_text())
    assert raw["data"]["ref_seconds"] == a.data.ref_seconds
    assert raw["data"]["volume_normalize"] == a.data.volume_normalize
    b = load_codec_config(HERE / "codec_gpu_decoder.yaml", {"model": str(tiny_codec_release),
                                                             "wav2vec2": {"pretrained": str(tiny_codec_release)},
                                                             "data": {"ref_seconds": 6.0}})  # the tiny release's
    assert set(b.freeze) == {"encoder", "quantizer", "speaker_encoder"} and not b.wav2vec2.trainable
    assert b.discriminator.start_step == 0
    lm = load_config(LMTrainConfig, HERE / "lm_gpu.yaml", "lm")
    assert set(lm.tasks) == {"clone", "create"} and lm.precision == "bf16"


def test_pack_and_unpack_round_the_weights_to_bfloat16_and_nothing_else(tiny_release: Path, tmp_path: Path,
                                                                        monkeypatch) -> None:
    monkeypatch.setattr(transfer, "PIECE", 200_000)  # several pieces from the tiny release
    files = transfer.pack(tiny_release, tmp_path / "out")
    assert len(files) > 1 and all(f.stat().st_size <= 200_000 for f in files)
    got = transfer.unpack(tmp_path / "out", tmp_path / "release")
    original = sorted(p.relative_to(tiny_release) for p in tiny_release.rglob("*") if p.is_file())
    assert sorted(p.relative_to(got) for p in got.rglob("*") if p.is_file()) == original
    for rel in original:
        if rel.suffix == ".safetensors":
            a, b = load_file(str(tiny_release / rel)), load_file(str(got / rel))
            assert a.keys() == b.keys()
            for k in a:
                want = a[k].to(torch.bfloat16).float() if a[k].dtype == torch.float32 else a[k]
                assert b[k].dtype == a[k].dtype and torch.equal(b[k], want), (rel, k)
        else:
            assert (got / rel).read_bytes() == (tiny_release / rel).read_bytes(), rel
    with pytest.raises(SystemExit, match="no release.tar.NNN pieces"):
        transfer.unpack(tmp_path, tmp_path / "none")


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed; CI installs it")
def test_gpu_recipe_runs_end_to_end_and_its_release_comes_back(tmp_path: Path) -> None:
    from sparktts import SparkTTS
    from sparktts.train.codec.config import load_codec_config

    # The decoder phase as the recipe has it, at the tiny dimensions (tiny data, discriminators).
    tiny = dataclasses.asdict(load_codec_config("tiny"))
    decoder = yaml.safe_load((HERE / "codec_gpu_decoder.yaml").read_text())
    decoder.update(data=tiny["data"], loss=tiny["loss"], discriminator={**tiny["discriminator"], "start_step": 0})
    (tmp_path / "decoder.yaml").write_text(yaml.safe_dump(decoder))
    work, out = tmp_path / "work", tmp_path / "out"
    env = {**os.environ, "WORK": str(work), "OUT": str(out), "N": "16", "HELDOUT": "2", "PYTHON": sys.executable,
           "CODEC_MINUTES": "1e-6", "TRAIN_MINUTES": "1e-6", "CODEC_CONFIG": "tiny", "LM_CONFIG": "tiny",
           "DECODER_CONFIG": str(tmp_path / "decoder.yaml")}
    done = subprocess.run(["bash", str(HERE / "gpu_build.sh")], env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    names = sorted(p.name for p in out.iterdir())
    assert "codec-a" not in names and "work.tar.gz" in names and "release.tar.000" in names
    assert len(names) <= 8 and all(p.stat().st_size <= 16 * 2**20 for p in out.iterdir())  # what the tool returns
    # One step each (the budget was spent at once), with checkpoints the runs resume from.
    for run in ("codec-a-run", "codec-b-run", "lm-run"):
        assert (work / run / "metrics.csv").read_text().splitlines()[1].startswith("1,"), run
    shipped = json.loads((work / "release" / "export.json").read_text())
    assert shipped["codec_dir"] == str((work / "codec-b").resolve())
    home = tmp_path / "home"  # the working folder here, as build.py's eval stage reads it
    release = transfer.unpack(out, tmp_path / "release", work=home)
    assert sorted(p.name for p in home.iterdir()) == ["build.json", "codec-a-run", "codec-b-run", "codec-b.log",
                                                      "corpus.log", "corpus_summary.json", "lm-run"]
    assert json.loads((home / "build.json").read_text()) == {"codec-a": 1, "lm": 1, "codec-b": 1}
    assert (home / "lm-run" / "metrics.csv").is_file() and not (home / "lm-run" / "checkpoints").exists()
    # Every run validated on the held-out clips (at its start and its one step), and the records came back.
    assert (home / "lm-run" / "validation.csv").read_text() == (work / "lm-run" / "validation.csv").read_text()
    for run in ("codec-a-run", "codec-b-run", "lm-run"):
        assert [r.split(",")[0] for r in (home / run / "validation.csv").read_text().splitlines()] == \
            ["step", "0", "1"], run
    assert json.loads((home / "corpus_summary.json").read_text())["config"]["n"] == 16
    tts = SparkTTS.from_pretrained(release, device="cpu")
    result = tts.create("A short test.", "female", "moderate", "moderate", seed=0, max_new_tokens=48)
    assert result.global_tokens.shape[-1] == 32
    # Scored and carded here as the CPU recipe's releases are: the corpus replayed, the shipped codec's
    # round trip, cloning and creation, MODEL_CARD.md from the GPU runs' records.
    build = load_script("data/builtin/build.py", "builtin_build")
    assert build.main(["--work", str(home), "--out", str(release), "--stages", "corpus", "eval", "--n", "16",
                       "--heldout", "2", "--jobs", "1", "--asr-model", "tiny.en"]) == 0
    assert (home / "eval" / "roundtrip-codec-b-1-bfloat16" / "summary.json").is_file()  # the shipped weights
    card = (release / "MODEL_CARD.md").read_text()
    assert "| codec-b |" in card and "| lm |" in card and "codec round trip WER (Whisper tiny.en)" in card
