"""data/builtin/build.py: the built-in model's recipe runs end to end, resumes, and writes a loadable release."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from ._scripts import ROOT, load_script

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                reason="espeak-ng is not installed (apt-get install espeak-ng); CI installs it")


def _build_module():
    return load_script("data/builtin/build.py", "builtin_build")


def test_smoke_recipe_writes_a_release_and_a_rerun_only_resumes(tmp_path: Path) -> None:
    from sparktts import SparkTTS
    from sparktts.train.run import read_metrics

    build = _build_module()
    work, out = tmp_path / "work", tmp_path / "release"
    # Two render processes: spawned workers must import the renderer that build.py loads from its path.
    argv = ["--work", str(work), "--out", str(out), "--n", "16", "--heldout", "2", "--jobs", "2",
            "--codec-config", "tiny", "--phase-steps", "2", "--asr-model", "tiny.en"]
    # The records of a run this build continues from (a snapshot's): the card lists it first.
    earlier = work / "records" / "01-codec-cpu"
    earlier.mkdir(parents=True)
    (earlier / "metrics.csv").write_text("step,mel,seconds\n20,0.9,1800.0\n40,0.8,3600.0\n")
    assert build.main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == ["BiCodec", "LLM", "MODEL_CARD.md", "config.yaml",
                                                     "export.json", "wav2vec2-large-xlsr-53"]
    assert json.loads((work / "build.json").read_text()) == {"codec-a": 2, "codec-b": 2, "lm": 2}
    # Phase B starts from phase A's export; the release ships codec-b beside the LLM trained on A's tokens.
    assert json.loads((work / "codec-b-run" / "run.json").read_text())["init"] == str(work / "codec-a")
    shipped = json.loads((out / "export.json").read_text())
    assert shipped["codec_dir"] == str((work / "codec-b").resolve())
    assert shipped["tokens_codec_dir"] == str((work / "codec-a").resolve())
    # The shipped weights are stored in bfloat16 and scored as shipped, in evals named by what it holds.
    from safetensors import safe_open

    for weights in out.rglob("*.safetensors"):
        with safe_open(str(weights), framework="pt") as f:
            assert {str(f.get_slice(k).get_dtype()) for k in f.keys()} <= {"BF16", "I64", "I32"}, weights
    evals = build.release_evals(work, out)
    assert {k: v.name for k, v in evals.items()} == {"roundtrip": "roundtrip-codec-b-2-bfloat16",
                                                     "clone": "clone-lm-2-codec-b-2-bfloat16",
                                                     "create": "create-lm-2-codec-b-2-bfloat16"}
    for folder in (work / "eval" / "codec-a-2", work / "eval" / "codec-b-2", *evals.values()):
        rows = [json.loads(x) for x in (folder / "results.jsonl").read_text().splitlines()]
        assert len(rows) == 2 and all("wer" in r for r in rows)  # a 2-step model may be silent: rows, not crashes
    codec_rows = [json.loads(x) for x in (work / "eval" / "codec-b-2.jsonl").read_text().splitlines()]
    assert all(r["prompt_wav"] == r["gt_wav"] for r in codec_rows)  # SIM against the recording itself
    clone = json.loads((evals["clone"] / "summary.json").read_text())
    assert "identification" in clone
    card = (out / "MODEL_CARD.md").read_text()  # every figure read from the build's own records
    assert "16 clips" in card and "2 clips" in card and "| lm | " in card
    assert card.index("| earlier: 01-codec-cpu | ") < card.index("| codec-a | ")
    assert f"| earlier: 01-codec-cpu | `{earlier / 'config.yaml'}` | 40 | 1.0 |" in card
    wer = clone["wer_utt_mean"]
    assert f"| cloning WER (Whisper tiny.en) | {float(wer):g} % | ≤ 30 % | " in card
    assert ("| met |" if wer <= 30 else "not met (off by") in card
    assert "voice creation: pitch within one level" in card and "codec round trip WER" in card
    # Every WER beside its ceiling: Whisper on espeak-ng's own held-out audio, and the round trip on the
    # clips it hears well there.
    espeak = {json.loads(x)["utt"]: json.loads(x)["wer"] for x in
              (work / "eval" / "espeak" / "results.jsonl").read_text().splitlines()}
    assert len(espeak) == 2
    clear = json.loads((evals["roundtrip"] / "clear" / "summary.json").read_text())
    assert clear["n_items"] == sum(100 * w <= 20 for w in espeak.values()) and clear["espeak_max_wer"] == 20
    assert "espeak-ng's own held-out audio WER (the ceiling)" in card
    for name in ("clone", "create"):
        subset = json.loads((evals[name] / "clear" / "summary.json").read_text())
        assert subset["n_items"] == clear["n_items"], name  # the same sentences, named clone_<utt>, create_<utt>
    assert "cloning WER, sentences Whisper hears in espeak's audio" in card
    # Signal metrics of each round trip against its recording, per clip and their means, in the card too.
    signal = json.loads((evals["roundtrip"] / "codec" / "summary.json").read_text())
    table = (evals["roundtrip"] / "codec" / "metrics.csv").read_text().splitlines()
    assert table[0] == "utt,stoi,pesq_wb,mel_distance,mcd,notes" and len(table) == 3 and signal["n_scored"] == 2
    assert signal["mel_distance"] > 0 and -1 <= signal["stoi"] <= 1
    assert f"| codec round trip mel distance (log10 mel L1) | {signal['mel_distance']:g} |" in card
    pitch = json.loads((evals["roundtrip"] / "codec_pitch" / "summary.json").read_text())
    assert pitch["n_scored"] == 1 and {"f0_rmse", "vuv_error"} <= set(pitch)  # every 4th clip: the first of 2
    assert "| codec round trip voicing error (every 4th clip) |" in card

    # The LLM validated on the held-out clips' tokens (never trained on), with both layouts.
    val = read_metrics(work / "lm-run", "validation.csv")
    assert val["step"].tolist() == [0, 2] and val[["loss_clone", "loss_create", "text_gap"]].notna().all().all()
    assert json.loads((work / "heldout_tokens" / "info.json").read_text())["clips"] == 2
    assert read_metrics(work / "codec-b-run", "validation.csv")["mel"].notna().all()  # the held-out clips, whole
    stamp = (out / "LLM" / "model.safetensors").stat().st_mtime_ns
    logged = {run: read_metrics(work / run)["step"].tolist() for run in ("codec-b-run", "lm-run")}
    assert all(steps[-1] == 2 for steps in logged.values())
    assert build.main([*argv, "--no-eval"]) == 0  # everything done already: runs resume at their last step
    assert {run: read_metrics(work / run)["step"].tolist() for run in logged} == logged
    assert (out / "LLM" / "model.safetensors").stat().st_mtime_ns >= stamp
    tts = SparkTTS.from_pretrained(out, device="cpu")
    result = tts.create("A short test.", "female", "moderate", "moderate", seed=0, max_new_tokens=48)
    assert result.sample_rate == 16000
    # --lm-init: another machine's LLM (a committed snapshot) goes on from that export's weights.
    # Its records (here: this build's own LM run, 2 steps) say where its learning-rate schedule goes on.
    again = tmp_path / "again"
    shutil.copytree(work, again, ignore=shutil.ignore_patterns("lm-run", "lm", "eval"))
    shutil.copytree(work / "lm-run", again / "records" / "05-lm-run", ignore=shutil.ignore_patterns("checkpoints"))
    assert build.main([*argv[:1], str(again), *argv[2:], "--stages", "lm", "--lm-init", str(out)]) == 0
    assert json.loads((again / "lm-run" / "run.json").read_text())["init"] == str(out.resolve())
    assert read_metrics(again / "lm-run")["step"].tolist()[-1] == 2
    # (what schedule_start does to the rates: tests/test_train_lm.py)
    assert yaml.safe_load((again / "lm-run" / "config.yaml").read_text())["schedule_start"] == 2


def test_a_spent_budget_exports_phase_a_as_it_is_and_the_next_call_goes_on(tmp_path: Path) -> None:
    from sparktts.train.run import read_metrics

    build = _build_module()
    work, out = tmp_path / "work", tmp_path / "release"
    config = tmp_path / "tiny.yaml"  # the tiny preset with its speaker path held off, as from random weights
    preset = yaml.safe_load((ROOT / "sparktts/train/presets/codec/tiny.yaml").read_text())
    config.write_text(yaml.safe_dump({**preset, "speaker_start_step": 2}))
    argv = ["--work", str(work), "--out", str(out), "--n", "8", "--heldout", "2", "--jobs", "1",
            "--codec-config", str(config), "--codec-a-steps", "3", "--no-eval"]
    # A budget spent at once: phase A stops after its first step, is exported, and nothing after it runs.
    assert build.main([*argv, "--stages", "corpus", "codec", "prepare", "--max-minutes", "1e-6"]) == 0
    assert json.loads((work / "build.json").read_text()) == {"codec-a": 1}
    assert (work / "codec-a" / "BiCodec").is_dir() and not (work / "codec-b-run").exists()
    assert not (work / "tokens").exists()
    with pytest.raises(SystemExit, match="not trained to step 3 yet"):
        build.main([*argv, "--stages", "prepare"])  # the LLM's tokens wait for phase A's last step
    # The next call resumes phase A to its stop, then phase B begins from that export.
    assert build.main([*argv, "--stages", "codec", "--codec-steps", "1"]) == 0
    assert read_metrics(work / "codec-a-run")["step"].tolist() == [1, 2, 3]  # resumed, not restarted
    assert json.loads((work / "build.json").read_text()) == {"codec-a": 3, "codec-b": 1}
    # Another machine goes on from that export (a committed snapshot): phase A starts from its weights.
    # Its records (WORK/records, as transfer.py unpacks a snapshot's) say it trained 2 of phase A's 3 steps.
    other = tmp_path / "other"
    shutil.copytree(work / "corpus", other / "corpus")
    shutil.copytree(work / "codec-a-run", other / "records" / "01-codec-a-run",
                    ignore=shutil.ignore_patterns("checkpoints", "tensorboard"))
    (other / "records" / "01-codec-a-run" / "metrics.csv").write_text("step,mel,seconds\n2,0.9,60.0\n")
    assert build.main(["--work", str(other), *argv[2:], "--stages", "codec", "--codec-steps", "1",
                       "--codec-a-init", str(work / "codec-a")]) == 0
    assert read_metrics(other / "codec-a-run")["step"].tolist() == [1]  # 3 - 2 steps left
    assert yaml.safe_load((other / "codec-a-run" / "config.yaml").read_text())["optim"]["schedule_start"] == 2
    assert json.loads((other / "build.json").read_text()) == {"codec-a": 1, "codec-b": 1}
    assert json.loads((other / "codec-a-run" / "run.json").read_text())["init"] == str((work / "codec-a").resolve())
    # Its speaker path was trained already: it trains from the first step (the random start holds it off).
    assert yaml.safe_load((work / "codec-a-run" / "config.yaml").read_text())["speaker_start_step"] == 2
    assert yaml.safe_load((other / "codec-a-run" / "config.yaml").read_text())["speaker_start_step"] == 0
    # A snapshot whose records hold all of phase A: it is phase A's export as it is (nothing trains, its
    # tokens are the LLM's), and phase B and the tokens go on from it.
    done = tmp_path / "done"
    shutil.copytree(work / "corpus", done / "corpus")
    shutil.copytree(other / "records", done / "records")
    (done / "records" / "01-codec-a-run" / "metrics.csv").write_text("step,mel,seconds\n3,0.9,60.0\n")
    assert build.main(["--work", str(done), *argv[2:], "--stages", "codec", "prepare", "--codec-steps", "1",
                       "--codec-a-init", str(work / "codec-a")]) == 0
    assert not (done / "codec-a-run").exists()
    assert json.loads((done / "build.json").read_text()) == {"codec-a": 0, "codec-b": 1}
    for part in ("BiCodec/model.safetensors", "config.yaml"):
        assert (done / "codec-a" / part).read_bytes() == (work / "codec-a" / part).read_bytes()
    assert json.loads((done / "codec-b-run" / "run.json").read_text())["init"] == str(done / "codec-a")
    info = json.loads((done / "tokens" / "info.json").read_text())
    assert info["model_dir"] == str((done / "codec-a").resolve())
    # --codec-steps 0: no phase B (it did not help); codec-b becomes phase A's export, replacing the
    # trained one, and the release would ship phase A's decoder.
    assert build.main(["--work", str(done), *argv[2:], "--stages", "codec", "--codec-steps", "0",
                       "--codec-a-init", str(work / "codec-a")]) == 0
    assert json.loads((done / "build.json").read_text()) == {"codec-a": 0, "codec-b": 0}
    for part in ("BiCodec/model.safetensors", "config.yaml"):
        assert (done / "codec-b" / part).read_bytes() == (done / "codec-a" / part).read_bytes()


def test_committed_snapshots_unpack_into_what_build_py_continues_from(tmp_path: Path) -> None:
    """data/builtin/snapshot (codec phase A) and data/builtin/lm_snapshot (the LLM) unpack as the README
    says: a codec release and an LLM/ of lm_cpu.yaml's dimensions, with records that end where the
    weights were taken (the model card counts their steps)."""
    import tarfile

    from transformers import AutoConfig

    from sparktts.train.config import load_config
    from sparktts.train.lm.config import LMTrainConfig

    transfer = load_script("data/builtin/transfer.py", "transfer")
    here = ROOT / "data" / "builtin"
    codec = transfer.unpack(here / "snapshot", tmp_path / "codec", work=tmp_path / "records")
    assert (codec / "BiCodec" / "model.safetensors").is_file() and (codec / "config.yaml").is_file()
    llm = transfer.unpack(here / "lm_snapshot", tmp_path / "lm", work=tmp_path / "records")
    cfg = load_config(LMTrainConfig, here / "lm_cpu.yaml", "lm")
    shipped = AutoConfig.from_pretrained(llm / "LLM")
    assert (shipped.hidden_size, shipped.num_hidden_layers) == (cfg.model.hidden_size, cfg.model.num_hidden_layers)
    with tarfile.open(here / "lm_snapshot" / "work.tar.gz") as t:
        names = t.getnames()
    assert sorted(names) == sorted(f"05-lm-run/{f}" for f in ("config.yaml", "run.json", "metrics.csv",
                                                              "validation.csv", "examples.json"))
    records = sorted(p.name for p in (tmp_path / "records").iterdir() if p.is_dir())
    assert records[-1] == "05-lm-run" and records[:-1] == ["01-codec-cpu", "02-codec-a-run", "03-codec-a-run",
                                                          "04-codec-a-run"]
    run = tmp_path / "records" / "05-lm-run"
    assert json.loads((run / "run.json").read_text())["kind"] == "lm"  # not counted as phase A's steps
    last = [int(line.split(",")[0]) for f in ("metrics.csv", "validation.csv")
            for line in (run / f).read_text().splitlines()[-1:]]
    assert last[0] == last[1] == 3500


def test_cpu_configs_are_the_gpu_recipe_at_a_cpu_batch() -> None:
    import dataclasses

    from sparktts.train.codec.config import load_codec_config

    here = Path(__file__).resolve().parents[1] / "data" / "builtin"
    cpu, gpu = load_codec_config(here / "codec_cpu.yaml"), load_codec_config(here / "codec_gpu.yaml")
    assert cpu.bicodec() == gpu.bicodec() and cpu.wav2vec2 == gpu.wav2vec2  # the same phase-A model
    assert cpu.data.batch_size * cpu.data.segment_seconds < gpu.data.batch_size * gpu.data.segment_seconds
    assert cpu.discriminator.start_step > cpu.max_steps  # no GAN on the CPU
    # Phase B: every key but the batch, the schedule and the GAN is the GPU phase B's.
    a = {"model": "tiny", "wav2vec2": {"pretrained": None, "trainable": True}}
    b_cpu = dataclasses.asdict(load_codec_config(here / "codec_cpu_decoder.yaml", a))
    b_gpu = dataclasses.asdict(load_codec_config(here / "codec_gpu_decoder.yaml", a))
    assert b_cpu["freeze"] == b_gpu["freeze"] and b_cpu["data"]["ref_seconds"] == b_gpu["data"]["ref_seconds"]
    assert b_cpu["discriminator"]["start_step"] > b_cpu["max_steps"]
    # The CPU GAN experiment: phase B's frozen tokenizer side, the discriminators from its first step.
    gan = dataclasses.asdict(load_codec_config(here / "codec_cpu_decoder_gan.yaml", a))
    assert gan["freeze"] == b_cpu["freeze"] and gan["discriminator"]["start_step"] == 0
    assert gan["data"] == b_cpu["data"] and gan["wav2vec2"] == b_cpu["wav2vec2"]
    # The CPU pitch experiment: phase A's training (nothing frozen, no GAN) with a stronger pitch loss.
    pitch = load_codec_config(here / "codec_cpu_pitch.yaml", a)
    assert pitch.freeze == () and pitch.discriminator.start_step > pitch.max_steps
    assert pitch.loss.pitch > cpu.loss.pitch and pitch.data == cpu.data and pitch.loss.mel == cpu.loss.mel


def test_pitch_probe_finds_pitch_where_it_is_and_not_where_it_is_not():
    import numpy as np

    probe = load_script("data/builtin/pitch_probe.py", "pitch_probe")
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(40), 50)
    logf0 = np.log(rng.uniform(80, 300, 40))[groups] + 0.1 * rng.standard_normal(2000)
    carrying = np.c_[logf0 + 0.01 * rng.standard_normal(2000), rng.standard_normal((2000, 7))]
    assert probe.probe_r2(carrying, logf0, groups) > 0.95
    assert probe.probe_r2(rng.standard_normal((2000, 8)), logf0, groups) < 0.05
