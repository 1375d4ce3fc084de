"""The LM trainer on tiny configs: sequences equal inference prompts, loss mask, one step, resume, 2-process
gloo == 1 process, gradient accumulation, LoRA, export loads in SparkTTS, and bad-input errors."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("accelerate")

from sparktts.errors import ConfigError  # noqa: E402
from sparktts.train.config import load_config  # noqa: E402
from sparktts.train.lm.config import LMTrainConfig  # noqa: E402
from sparktts.train.lm.data import build_examples, collate  # noqa: E402
from sparktts.train.lm.trainer import LMTrainer, build_model, latest_checkpoint, train_lm  # noqa: E402
from sparktts.train.run import TrainingError  # noqa: E402
from tests.test_prepare import write_clips  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STEPS = 4


@pytest.fixture(scope="module")
def data_dir(tiny_release: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sparktts.data.prepare import prepare

    folder = tmp_path_factory.mktemp("lmdata")
    manifest = write_clips(folder / "clips", 6, bad=False)
    return prepare(manifest, tiny_release, folder / "data", batch_size=6, device="cpu", progress=False).out


def tiny(**changes) -> LMTrainConfig:
    cfg = load_config(LMTrainConfig, "tiny", "lm")
    return dataclasses.replace(cfg, **{"save_every": 2, "max_steps": 10, **changes})


def losses(run_dir: Path) -> list[float]:
    return pd.read_csv(run_dir / "metrics.csv")["loss"].tolist()


@pytest.fixture(scope="module")
def reference_run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 uninterrupted steps on one process."""
    return train_lm(tiny(), data_dir, tmp_path_factory.mktemp("runs") / "ref", max_steps=STEPS, device="cpu")


@pytest.fixture(scope="module")
def tokenizer(reference_run: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(reference_run / "base"))


@pytest.fixture(scope="module")
def examples(data_dir: Path, tokenizer):
    from sparktts.data import read_tokenized

    ex, stats = build_examples(read_tokenized(data_dir), tokenizer, ("clone", "create"), 512, 32)
    assert stats.examples == {"clone": 6, "create": 6} and stats.skipped_too_long == 0
    return ex


def test_training_strings_equal_inference_prompts(tiny_tts, data_dir: Path, examples, tokenizer, monkeypatch) -> None:
    from sparktts.data import read_tokenized
    from sparktts.prompts import parse_generated
    from sparktts.voices import Voice

    sent: list[str] = []
    original = tiny_tts.generator.generate

    def spy(prompts, *args, **kwargs):
        sent.extend(prompts)
        return original(prompts, *args, **kwargs)

    monkeypatch.setattr(tiny_tts.generator, "generate", spy)
    clip = read_tokenized(data_dir)[1]
    row = clip.row
    clone = next(e for e in examples if e.clip_id == row["id"] and e.task == "clone")
    create = next(e for e in examples if e.clip_id == row["id"] and e.task == "create")
    tiny_tts.clone(row["text"], voice=Voice(clip.global_ids), max_new_tokens=8, seed=0)
    tiny_tts.create(row["text"], gender=row["gender"], pitch=row["pitch"], speed=row["speed"],
                    max_new_tokens=48, seed=0)
    assert sent == [clone.prompt, create.prompt]  # character for character

    # Targets: what the released model writes, ending with the tokenizer's eos.
    sem = "".join(f"<|bicodec_semantic_{i}|>" for i in clip.semantic_ids)
    glob = "".join(f"<|bicodec_global_{i}|>" for i in clip.global_ids)
    assert clone.target == f"<|start_semantic_token|>{sem}<|im_end|>"
    assert create.target == (f"<|start_acoustic_token|><|pitch_value_{row['pitch_value']}|>"
                             f"<|speed_value_{row['speed_value']}|><|end_acoustic_token|>"
                             f"<|start_global_token|>{glob}<|end_global_token|><|start_semantic_token|>{sem}<|im_end|>")
    parsed = parse_generated(create.target)
    assert (parsed.pitch_value, parsed.speed_value) == (row["pitch_value"], row["speed_value"])
    assert parsed.semantic_ids == clip.semantic_ids.tolist() and parsed.global_ids == clip.global_ids.tolist()
    for e in (clone, create):
        # Prompt ids as SpeechGenerator.encode_prompts makes them, and the joined string's ids.
        sent_ids = tiny_tts.generator.encode_prompts([e.prompt])["input_ids"][0].tolist()
        assert list(e.input_ids[: e.num_prompt]) == sent_ids
        assert list(e.input_ids) == tokenizer(e.prompt + e.target, add_special_tokens=True)["input_ids"]


def test_loss_mask_covers_exactly_the_target(examples, tokenizer) -> None:
    batch = collate(examples[:5], tokenizer.pad_token_id)
    for i, e in enumerate(examples[:5]):
        n = len(e.input_ids)
        labels, ids = batch["labels"][i], batch["input_ids"][i]
        assert (labels[: e.num_prompt] == -100).all() and (labels[n:] == -100).all()
        assert labels[e.num_prompt: n].tolist() == ids[e.num_prompt: n].tolist() == list(e.input_ids[e.num_prompt:])
        assert batch["attention_mask"][i].sum() == n
        assert tokenizer.decode(labels[labels != -100].tolist()) == e.target
        assert tokenizer.decode(ids[: e.num_prompt].tolist()) == e.prompt


def test_long_examples_are_skipped_and_counted(data_dir: Path, tokenizer, examples) -> None:
    from sparktts.data import read_tokenized

    limit = sorted(len(e.input_ids) for e in examples)[6]
    kept, stats = build_examples(read_tokenized(data_dir), tokenizer, ("clone", "create"), limit, 32)
    too_long = sum(len(e.input_ids) > limit for e in examples)
    assert stats.skipped_too_long == too_long > 0 and len(kept) == len(examples) - too_long
    assert all(len(e.input_ids) <= limit for e in kept)
    assert {e.input_ids for e in kept} <= {e.input_ids for e in examples}  # whole examples, never cut


def test_one_step_lowers_the_loss_on_a_fixed_batch(reference_run: Path, examples, tokenizer) -> None:
    cfg = tiny()
    trainer = LMTrainer(cfg, examples, build_model(reference_run / "base", cfg, None), tokenizer.pad_token_id,
                        device="cpu")
    fixed = trainer.global_batch(0)
    before = trainer.loss(fixed)
    metrics = trainer.train_step()
    assert metrics["loss"] == pytest.approx(before, rel=1e-5)
    assert trainer.loss(fixed) < before - 0.01


def test_target_only_loss_equals_the_full_logits_cross_entropy(reference_run: Path, examples, tokenizer) -> None:
    import torch
    import torch.nn.functional as F

    cfg = tiny()
    trainer = LMTrainer(cfg, examples, build_model(reference_run / "base", cfg, None), tokenizer.pad_token_id,
                        device="cpu")
    batch = collate(examples[:5], tokenizer.pad_token_id)
    with torch.no_grad():
        sums, counts = trainer.token_losses(batch)
        logits = trainer.lm(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    labels = batch["labels"][:, 1:]
    full = F.cross_entropy(logits[:, :-1].transpose(1, 2), labels, ignore_index=-100, reduction="none").sum(1)
    torch.testing.assert_close(sums, full, rtol=1e-5, atol=1e-4)
    assert counts.tolist() == (labels != -100).sum(1).tolist()


def test_length_grouping_keeps_each_example_once_with_less_padding(reference_run: Path, examples,
                                                                    tokenizer) -> None:
    def epoch(cfg, e):
        trainer = LMTrainer(cfg, examples, build_model(reference_run / "base", cfg, None), tokenizer.pad_token_id,
                            device="cpu")
        return [trainer.global_batch(e * trainer.steps_per_epoch + k) for k in range(trainer.steps_per_epoch)]

    def padding(batches):
        return sum(len(b) * max(len(x.input_ids) for x in b) - sum(len(x.input_ids) for x in b) for b in batches)

    grouped, plain = epoch(tiny(batch_size=3), 0), epoch(tiny(batch_size=3, group_by_length=False), 0)
    ids = [id(x) for b in grouped for x in b]
    assert len(ids) == len(set(ids)) == len(examples)  # every example once per epoch
    assert padding(grouped) < padding(plain)
    assert [[id(x) for x in b] for b in epoch(tiny(batch_size=3), 1)] != [[id(x) for x in b] for b in grouped]


def test_bf16_autocast_trains_on_cpu(data_dir: Path, tmp_path: Path, caplog, monkeypatch) -> None:
    import sparktts.device as device_module
    import sparktts.train.run as run_module

    run = train_lm(tiny(precision="bf16"), data_dir, tmp_path / "bf16", max_steps=3, device="cpu")
    got = losses(run)
    assert len(got) == 3 and np.isfinite(got).all()
    # Where the CPU has no bf16 hardware the run still trains, and says what it costs and what to use.
    for native, warned in ((False, True), (True, False)):
        monkeypatch.setattr(device_module, "native_bf16", lambda device, native=native: native)
        caplog.clear()
        with caplog.at_level("WARNING", logger="sparktts.train.run"):
            assert run_module.accelerate_precision("bf16", "cpu") == "bf16"
        assert ("about 18x slower than float32; use precision: fp32 or auto" in caplog.text) is warned
    assert run_module.accelerate_precision("auto", "cpu") == "no"
    # fp16 on a CPU is refused with the fix (the codec trainer's test checks its side).
    with pytest.raises(ConfigError, match="'fp16' needs a GPU; use precision: bf16, fp32 or auto"):
        run_module.accelerate_precision("fp16", "cpu")


def test_a_run_from_a_snapshot_goes_on_with_the_schedule_where_the_snapshot_left_it(data_dir: Path,
                                                                                     tmp_path: Path) -> None:
    from sparktts.train.export import export_run

    # The snapshot's run: 6 steps of a 10-step schedule (lr logged before each step's update).
    first = train_lm(tiny(lr=1e-2, warmup_steps=2, log_every=1), data_dir, tmp_path / "first", max_steps=6,
                     device="cpu")
    release = export_run(first, tmp_path / "snapshot")
    later = train_lm(tiny(lr=1e-2, warmup_steps=2, log_every=1, schedule_start=6), data_dir, tmp_path / "later",
                     init=release, device="cpu")
    lr = pd.read_csv(later / "metrics.csv")["lr"].tolist()
    full = pd.read_csv(train_lm(tiny(lr=1e-2, warmup_steps=2, log_every=1), data_dir, tmp_path / "full",
                                device="cpu") / "metrics.csv")["lr"].tolist()
    assert len(lr) == 4  # what is left of the 10-step schedule
    # Past its own warm-up the rates are the uninterrupted run's from step 6 on, not a fresh decay from 1e-2;
    # during the warm-up they ramp up to that point, not to the peak.
    assert lr[2:] == pytest.approx(full[8:10]) and lr[0] == pytest.approx(full[6] / 2)
    with pytest.raises(ConfigError, match=r"schedule_start \(10: steps trained before this run\) must lie in"):
        tiny(schedule_start=10)


def test_resume_gives_the_same_next_losses(reference_run: Path, data_dir: Path, tmp_path: Path) -> None:
    run = train_lm(tiny(), data_dir, tmp_path / "run", max_steps=2, device="cpu")
    assert latest_checkpoint(run).name == "step-00000002"
    train_lm(tiny(), data_dir, run, max_steps=STEPS, resume=True, device="cpu")
    df = pd.read_csv(run / "metrics.csv")
    assert df["step"].tolist() == [1, 2, 3, 4]
    np.testing.assert_allclose(df["loss"], losses(reference_run), rtol=1e-6)
    # A run stopped before its first checkpoint starts over from its start when resumed.
    killed = train_lm(tiny(), data_dir, tmp_path / "killed", max_steps=1, device="cpu")
    shutil.rmtree(latest_checkpoint(killed))
    train_lm(tiny(), data_dir, killed, max_steps=STEPS, resume=True, device="cpu")
    np.testing.assert_allclose(losses(killed), losses(reference_run), rtol=1e-6)


def test_gradient_accumulation_gives_the_same_losses(reference_run: Path, data_dir: Path, tmp_path: Path) -> None:
    run = train_lm(tiny(grad_accum=2), data_dir, tmp_path / "acc", max_steps=STEPS, device="cpu")
    np.testing.assert_allclose(losses(run), losses(reference_run), rtol=1e-5)


_DDP_CHILD = """
import dataclasses, sys
from sparktts.train.config import load_config
from sparktts.train.lm.config import LMTrainConfig
from sparktts.train.lm.trainer import train_lm
cfg = dataclasses.replace(load_config(LMTrainConfig, "tiny", "lm"), save_every=2, max_steps=10)
train_lm(cfg, sys.argv[1], sys.argv[2], max_steps=int(sys.argv[3]), device="cpu")
"""


def test_two_gloo_processes_give_the_losses_of_one(reference_run: Path, data_dir: Path, tmp_path: Path) -> None:
    torchrun = Path(sys.executable).with_name("torchrun")
    script = tmp_path / "child.py"
    script.write_text(_DDP_CHILD)
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", str(script), str(data_dir),
                           str(run), str(STEPS)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[:4000] + "\n...\n" + proc.stderr[-4000:]
    assert json.loads((run / "run.json").read_text())["processes"] == 2
    np.testing.assert_allclose(losses(run), losses(reference_run), rtol=1e-5)


_NO_AUDIO_CHILD = """
import sys
for name in ("soundfile", "soxr", "librosa"):
    sys.modules[name] = None  # as if not installed: import fails, find_spec says absent
import dataclasses
from sparktts.train.config import load_config
from sparktts.train.lm.config import LMTrainConfig
from sparktts.train.lm.trainer import train_lm
cfg = dataclasses.replace(load_config(LMTrainConfig, "tiny", "lm"), save_every=2, max_steps=10)
train_lm(cfg, sys.argv[1], sys.argv[2], max_steps=2, device="cpu")
"""


def test_lm_trains_on_prepared_tokens_without_audio_libraries(data_dir: Path, tmp_path: Path) -> None:
    """A GPU machine with no soundfile/soxr/librosa can train the LM on a carried data folder."""
    script = tmp_path / "child.py"
    script.write_text(_NO_AUDIO_CHILD)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, str(script), str(data_dir), str(tmp_path / "run")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert len(losses(tmp_path / "run")) == 2


def test_fine_tune_starts_from_the_release_weights(tiny_release: Path, data_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = train_lm(tiny(), data_dir, tmp_path / "ft", init=tiny_release, max_steps=1, device="cpu")
    assert json.loads((run / "run.json").read_text())["init"] == str(tiny_release.resolve())
    assert (run / "base" / "tokenizer.json").read_bytes() == (tiny_release / "LLM" / "tokenizer.json").read_bytes()
    # The first logged loss is the release model's own loss on the first batch.
    from sparktts.data import read_tokenized

    tok = AutoTokenizer.from_pretrained(str(tiny_release / "LLM"))
    ex, _ = build_examples(read_tokenized(data_dir), tok, ("clone", "create"), 512, 32)
    release = AutoModelForCausalLM.from_pretrained(str(tiny_release / "LLM"))
    trainer = LMTrainer(tiny(), ex, release, tok.pad_token_id, device="cpu")
    assert losses(run)[0] == pytest.approx(trainer.loss(trainer.global_batch(0)), rel=1e-5)


def test_export_loads_in_sparktts_and_generates(reference_run: Path, tmp_path: Path) -> None:
    from sparktts import SparkTTS
    from sparktts.train.export import export_run

    out = export_run(reference_run, tmp_path / "release")
    assert {p.name for p in out.iterdir()} >= {"LLM", "BiCodec", "wav2vec2-large-xlsr-53", "config.yaml"}
    tts = SparkTTS.from_pretrained(out, device="cpu")
    syn = tts.create("hello there", gender="female", pitch="moderate", speed="moderate", max_new_tokens=48, seed=0)
    assert syn.audio.size > 0
    with pytest.raises(TrainingError, match="not empty"):
        export_run(reference_run, out)


def test_export_in_bfloat16_stores_the_rounded_weights_and_loads(reference_run: Path, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    from sparktts import SparkTTS
    from sparktts.train.export import export_run

    full = export_run(reference_run, tmp_path / "fp32")
    half = export_run(reference_run, tmp_path / "bf16", dtype="bfloat16")
    files = sorted(p.relative_to(full) for p in full.rglob("*.safetensors"))
    assert files == sorted(p.relative_to(half) for p in half.rglob("*.safetensors")) and len(files) >= 3
    for rel in files:
        a, b = load_file(str(full / rel)), load_file(str(half / rel))
        assert a.keys() == b.keys()
        for k in a:
            expected = a[k].to(torch.bfloat16) if a[k].dtype == torch.float32 else a[k]
            assert b[k].dtype == expected.dtype and torch.equal(b[k], expected), (rel, k)
    assert sum(p.stat().st_size for p in half.rglob("*.safetensors")) < 0.6 * sum(
        p.stat().st_size for p in full.rglob("*.safetensors"))
    tts = SparkTTS.from_pretrained(half, device="cpu")  # computes in float32 as before
    assert next(tts.model.parameters()).dtype == torch.float32
    assert tts.create("hello", gender="male", pitch="low", speed="low", max_new_tokens=48, seed=0).audio.size > 0
    with pytest.raises(TrainingError, match=r"--dtype 'int8': choose one of"):
        export_run(reference_run, tmp_path / "bad", dtype="int8")
    assert not (tmp_path / "bad").exists()


def test_export_ships_a_further_trained_decoder_only_if_it_gives_the_same_tokens(
        reference_run: Path, tiny_release: Path, tmp_path: Path) -> None:
    """--codec: a decoder trained on after the tokens were prepared ships beside the LLM; a codec whose
    tokenizer side moved by one weight is refused, named, and nothing is written."""
    import json
    import shutil

    from safetensors.torch import load_file, save_file

    from sparktts.train.export import export_run

    def codec_copy(name: str, prefix: str, folder: str = "BiCodec") -> Path:
        root = tmp_path / name
        root.mkdir()
        for part in ("config.yaml", "BiCodec", "wav2vec2-large-xlsr-53"):
            src = tiny_release / part
            (shutil.copytree if src.is_dir() else shutil.copy2)(src, root / part)
        weights = load_file(str(root / folder / "model.safetensors"))
        key = next(k for k in weights if k.startswith(prefix) and weights[k].is_floating_point())
        weights[key] = weights[key] + 1e-3
        save_file(weights, str(root / folder / "model.safetensors"))
        return root

    decoder = codec_copy("decoder_trained", "decoder.")
    out = export_run(reference_run, tmp_path / "release", codec=decoder)
    shipped = out / "BiCodec" / "model.safetensors"
    assert shipped.read_bytes() == (decoder / "BiCodec" / "model.safetensors").read_bytes()
    record = json.loads((out / "export.json").read_text())
    assert record["codec_dir"] == str(decoder.resolve()) and record["tokens_codec_dir"] == str(tiny_release.resolve())
    moved = codec_copy("encoder_moved", "encoder.")
    with pytest.raises(TrainingError, match=r"does not tokenize as .*BiCodec encoder\.\S+ differs"):
        export_run(reference_run, tmp_path / "refused", codec=moved)
    assert not (tmp_path / "refused").exists()
    features_moved = codec_copy("wav2vec2_moved", "", folder="wav2vec2-large-xlsr-53")
    with pytest.raises(TrainingError, match=r"wav2vec2-large-xlsr-53 \S+ differs"):
        export_run(reference_run, tmp_path / "refused", codec=features_moved)
    with pytest.raises(TrainingError, match="is not a codec release"):
        export_run(reference_run, tmp_path / "refused", codec=tmp_path / "nowhere")


def test_lora_run_exports_merged_weights(data_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("peft")
    from safetensors import safe_open

    from sparktts.train.export import export_run

    run = train_lm(tiny(), data_dir, tmp_path / "lora", max_steps=1, device="cpu", lora=True)
    assert np.isfinite(losses(run)).all()
    out = export_run(run, tmp_path / "release")
    with safe_open(str(out / "LLM" / "model.safetensors"), framework="pt") as f:
        assert not any("lora" in k for k in f.keys())


def test_config_errors(tmp_path: Path, reference_run: Path, examples, tokenizer, data_dir: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['learning_rate'\]"):
        load_config(LMTrainConfig, bad, "lm")
    # A checkpoint written under another config is refused, naming what differs.
    other = tiny(lr=0.5)
    trainer = LMTrainer(other, examples, build_model(reference_run / "base", other, None), tokenizer.pad_token_id,
                        device="cpu")
    with pytest.raises(ConfigError, match=r"checkpoint from another config \(differs in \['lr'\]\)"):
        trainer.load(latest_checkpoint(reference_run))
    with pytest.raises(ConfigError, match="differs"):
        train_lm(other, data_dir, reference_run, resume=True, device="cpu")
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(TrainingError, match="cannot write there"):
        train_lm(tiny(), data_dir, blocker / "run", device="cpu")
    with pytest.raises(TrainingError, match="already holds a training run"):
        train_lm(tiny(), data_dir, reference_run, device="cpu")


def test_cli_prepare_train_resume_export(tiny_release: Path, tmp_path: Path, capsys) -> None:
    pytest.importorskip("sparktts.train.codec.trainer")  # the CLI builds every training command's parser
    from sparktts.cli import main

    manifest = write_clips(tmp_path / "clips", 4)
    data, run, out = tmp_path / "data", tmp_path / "run", tmp_path / "release"
    assert main(["prepare", str(manifest), "--model_dir", str(tiny_release), "--out", str(data),
                 "--device", "cpu", "--no_progress"]) == 0
    assert "4 clips, 2 skipped" in capsys.readouterr().out
    common = ["train", "lm", "--config", "tiny", "--data", str(data), "--out", str(run), "--device", "cpu"]
    assert main([*common, "--max-steps", "1"]) == 0
    assert main([*common, "--max-steps", "2", "--resume"]) == 0
    assert pd.read_csv(run / "metrics.csv")["step"].tolist() == [1, 2]
    # A budget already spent after one step: the run stops there with a checkpoint.
    assert main([*common, "--max-steps", "4", "--resume", "--max-minutes", "1e-9"]) == 0
    assert pd.read_csv(run / "metrics.csv")["step"].tolist() == [1, 2, 3]
    assert latest_checkpoint(run).name == "step-00000003"
    assert main(["export", str(run), "--out", str(out)]) == 0
    assert (out / "LLM" / "model.safetensors").is_file()
    assert main([*common]) == 2  # a second fresh run into the same folder
    assert "already holds a training run" in capsys.readouterr().err


def test_validation_losses_are_the_trainers_own_on_the_heldout_examples(reference_run: Path, data_dir: Path,
                                                                        tokenizer, examples) -> None:
    """The validation sums equal the trainer's loss per task, and the wrong-text examples keep each
    clip's target and change only its text."""
    from sparktts.train.lm.validation import heldout_sums, load_heldout, summarize

    heldout = load_heldout(data_dir, tokenizer, ("clone", "create"), 512)
    assert [e.input_ids for e in heldout.examples] == [e.input_ids for e in examples]
    right = {e.clip_id: e for e in examples if e.task == "clone"}
    assert len(heldout.wrong_text) == len(right) == 6
    for wrong in heldout.wrong_text:
        ok = right[wrong.clip_id]
        assert wrong.target == ok.target and wrong.prompt != ok.prompt
        assert wrong.input_ids[wrong.num_prompt:] == ok.input_ids[ok.num_prompt:]
    cfg = tiny()
    trainer = LMTrainer(cfg, list(examples), build_model(reference_run / "base", cfg, None), tokenizer.pad_token_id,
                        device="cpu")
    values = summarize(heldout_sums(trainer.acc.unwrap_model(trainer.model), heldout, tokenizer.pad_token_id, 4))
    assert values == pytest.approx(trainer.validate(heldout), rel=1e-6)
    for task in ("clone", "create"):
        assert values[f"loss_{task}"] == pytest.approx(trainer.loss([e for e in examples if e.task == task]),
                                                       rel=1e-5)
    wrong = trainer.loss(list(heldout.wrong_text))
    assert values["text_gap"] == pytest.approx(wrong - values["loss_clone"], rel=1e-4, abs=1e-6)
    assert values["loss"] == pytest.approx(trainer.loss(list(examples)), rel=1e-5)


def test_training_with_val_data_logs_validation_and_resumes_it(reference_run: Path, data_dir: Path,
                                                              tmp_path: Path) -> None:
    """--val-data: rows at the start, every val_every steps and at the stop; TensorBoard's validation run;
    a resumed run goes on with the same rows; the last row equals the exported model's validation;
    validation changes no training loss."""
    from sparktts.train.export import export_run
    from sparktts.train.lm.validation import release_validation

    run = train_lm(tiny(), data_dir, tmp_path / "run", max_steps=3, device="cpu", val_data=data_dir, val_every=2)
    val = pd.read_csv(run / "validation.csv")
    assert val["step"].tolist() == [0, 2, 3]
    assert set(val.columns) >= {"loss", "loss_clone", "loss_create", "loss_clone_wrong_text", "text_gap"}
    assert any((run / "tensorboard" / "validation").glob("events.out.tfevents.*"))
    train_lm(tiny(), data_dir, run, max_steps=STEPS, resume=True, device="cpu", val_data=data_dir, val_every=2)
    val = pd.read_csv(run / "validation.csv")
    assert val["step"].tolist() == [0, 2, 3, 4]  # resumed from step 3's checkpoint; no step-0 row again
    np.testing.assert_allclose(losses(run), losses(reference_run), rtol=1e-6)
    # The loss on the training clips falls as they are learnt.
    assert val["loss"].iloc[-1] < val["loss"].iloc[0]
    exported = release_validation(export_run(run, tmp_path / "release"), data_dir, tasks=("clone", "create"))
    assert exported == pytest.approx(val.iloc[-1][list(exported)].to_dict(), rel=1e-4)
    # The plot draws held-out points over the training curve of the same name, and the text gap.
    from sparktts.plotting import training_curves
    from sparktts.train.run import read_metrics

    fig = training_curves(read_metrics(run), ["loss", "grad_norm"], validation=read_metrics(run, "validation.csv"))
    panels = {ax.get_title(): ax for ax in fig.axes if ax.get_visible()}
    assert list(panels) == ["loss", "grad_norm", "text_gap", "lr"]
    assert [line.get_label() for line in panels["loss"].lines] == ["training", "held out"]
    np.testing.assert_allclose(panels["loss"].lines[1].get_ydata(), val["loss"])
    assert [line.get_label() for line in panels["grad_norm"].lines] == ["training"]


def test_val_data_errors(data_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(data_dir, other)
    info = json.loads((other / "info.json").read_text())
    (other / "info.json").write_text(json.dumps({**info, "semantic_codebook_size": 17}))
    with pytest.raises(TrainingError, match=r"another codec.*semantic_codebook_size"):
        train_lm(tiny(), data_dir, tmp_path / "a", max_steps=1, device="cpu", val_data=other)
    with pytest.raises(ConfigError, match="val_every must be >= 1"):
        train_lm(tiny(), data_dir, tmp_path / "b", max_steps=1, device="cpu", val_data=data_dir, val_every=0)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()  # refused before anything is written


def test_builtin_alignment_check_is_the_validation_of_the_exported_model(reference_run: Path, data_dir: Path,
                                                                         tmp_path: Path, capsys) -> None:
    """data/builtin/lm_alignment.py prints the library's validation of a release."""
    from sparktts.train.export import export_run
    from sparktts.train.lm.validation import release_validation

    from ._scripts import load_script

    module = load_script("data/builtin/lm_alignment.py", "lm_alignment")
    release = export_run(reference_run, tmp_path / "release")
    assert module.main([str(release), str(data_dir)]) == 0
    values = release_validation(release, data_dir)
    out = capsys.readouterr().out
    assert f"right text {values['loss_clone']:.4f}" in out and f"gap {values['text_gap']:.4f}" in out
