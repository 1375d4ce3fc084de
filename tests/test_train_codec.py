"""BiCodec training on the tiny preset: model seams, one step, exact resume, 2 processes, export, errors.

Everything runs on CPU with 1 s segments and a handful of steps; speed is measured in
``benchmarks/train_codec.py``, never here.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import yaml

pytest.importorskip("accelerate")

from sparktts import BiCodec, BiCodecTokenizer, CheckpointError, ConfigError  # noqa: E402
from sparktts.codec.fsq import FSQ  # noqa: E402
from sparktts.codec.layers import add_weight_norm, remove_weight_norm, weight_norm_state_dict  # noqa: E402
from sparktts.codec.quantize import FactorizedVectorQuantize  # noqa: E402
from sparktts.config import QuantizerConfig  # noqa: E402
from sparktts.testing import bicodec_config, random_bicodec  # noqa: E402
from sparktts.train.codec import load_codec_config, train_codec  # noqa: E402
from sparktts.train.codec.export import export  # noqa: E402
from sparktts.train.codec.trainer import CodecTrainer, make_accelerator  # noqa: E402
from sparktts.train.run import TrainingError, prepare_run_dir  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# Short runs: every step is logged, checkpoints every 2 steps.
FAST = {"log_every": 1, "checkpoint_every": 2, "max_steps": 6}


def tiny(**overrides):
    return load_codec_config("tiny", overrides={**FAST, **overrides})


def rows(run_dir: Path) -> list[dict[str, float]]:
    with (run_dir / "metrics.csv").open(newline="") as f:
        return [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """Three voiced-like clips (shorter and longer than the segment), a non-audio file and a silent one."""
    d = tmp_path_factory.mktemp("codec_data")
    rng = np.random.default_rng(0)
    lines = []
    for i, (sec, f0) in enumerate([(1.6, 140.0), (2.5, 220.0), (0.8, 180.0)]):
        t = np.arange(int(sec * 16000)) / 16000
        wav = 0.3 * np.sin(2 * np.pi * f0 * t + 3 * np.sin(2 * np.pi * 2 * t)) * (0.6 + 0.4 * np.sin(6 * np.pi * t))
        soundfile.write(d / f"c{i}.wav", (wav + 0.01 * rng.standard_normal(t.size)).astype(np.float32), 16000)
        lines.append({"audio": f"c{i}.wav", "text": "x", "speaker": f"s{i}", "lang": "en"})
    (d / "broken.wav").write_text("not audio")
    soundfile.write(d / "silent.wav", np.zeros(16000, np.float32), 16000)
    lines += [{"audio": "broken.wav", "text": "x"}, {"audio": "silent.wav", "text": "x"}]
    (d / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return d


def fixed_batch(data_dir: Path, cfg) -> dict[str, torch.Tensor]:
    from sparktts.train.codec.data import SegmentDataset, SkipLog, read_clips

    ds = SegmentDataset(read_clips(data_dir / "manifest.jsonl", SkipLog(None)), cfg.data, 0, 320, SkipLog(None))
    items = [ds[i] for i in range(cfg.data.batch_size)]
    return {k: torch.stack([x[k] for x in items]) for k in items[0]}


# -- model seams ------------------------------------------------------------------------------------


def test_weight_norm_parametrisation_keeps_outputs_and_released_names():
    model = random_bicodec(bicodec_config("tiny"), seed=3)
    ids = torch.randint(0, 128, (1, 20))
    from sparktts import BiCodecTokens

    tokens = BiCodecTokens(torch.randint(0, 4096, (1, 32)), ids)
    before = model.decode(tokens)
    add_weight_norm(model)
    torch.testing.assert_close(model.decode(tokens), before, rtol=0, atol=1e-6)
    sd = weight_norm_state_dict(model)
    assert "decoder.model.0.weight_g" in sd and "decoder.model.0.weight_v" in sd
    assert not any("parametrizations" in k for k in sd)
    reloaded = BiCodec(bicodec_config("tiny"))
    reloaded.load_released_state_dict(sd)  # strict
    assert torch.equal(reloaded.eval().decode(tokens), model.eval().decode(tokens))
    remove_weight_norm(model)
    torch.testing.assert_close(model.decode(tokens), before, rtol=0, atol=1e-6)


def test_release_dimensions_export_the_released_keys(reference_dir):
    man = json.loads((reference_dir / "manifest_release.json").read_text())
    expected = {e["key"]: tuple(e["shape"]) for e in man["entries"] if not e["absent_in_released_file"]}
    with torch.device("meta"):
        model = add_weight_norm(BiCodec(load_codec_config("release").bicodec()))
    assert {k: tuple(v.shape) for k, v in weight_norm_state_dict(model).items()} == expected


def test_fsq_straight_through_keeps_ids_and_passes_gradients():
    fsq = FSQ((4, 4, 4, 4, 4, 4))
    z = torch.randn(3, 5, 6, requires_grad=True)
    codes, ids = fsq(z)
    with torch.no_grad():
        hard_codes, hard_ids = fsq(z)
    assert torch.equal(ids, hard_ids) and torch.allclose(codes, hard_codes, atol=1e-6)
    codes.sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


def test_factorized_vq_losses_straight_through_and_dead_code_reset():
    cfg = QuantizerConfig(input_dim=16, codebook_size=32, codebook_dim=4, commitment=0.25,
                          codebook_loss_weight=2.0, threshold_ema_dead_code=0.2)
    vq = FactorizedVectorQuantize(cfg).train()
    z = torch.randn(2, 16, 40, requires_grad=True)
    book_before = vq.codebook.weight.detach().clone()
    out = vq(z)
    # Every code was unused (zero usage): all were reset to frames of this batch before the search.
    assert not torch.equal(vq.codebook.weight, book_before)
    assert torch.equal(out.ids, vq.tokenize(z.detach()))
    torch.testing.assert_close(out.loss, 0.25 * out.commitment_loss + 2.0 * out.codebook_loss)
    out.z_q.sum().backward(retain_graph=True)
    assert z.grad.abs().sum() > 0  # straight through to the encoder
    out.loss.backward()
    assert vq.codebook.weight.grad.abs().sum() > 0
    used = vq.cluster_size > 0.2
    assert used.sum() == torch.unique(out.ids).numel()
    vq.eval()
    with torch.no_grad():
        book = vq.codebook.weight.clone()
        vq(z)
    assert torch.equal(vq.codebook.weight, book)  # inference never touches the codebook


# -- configs ----------------------------------------------------------------------------------------


def test_presets_resolve_with_dimensions():
    for name in ("tiny", "small", "release"):
        cfg = load_codec_config(name)
        assert "audio_tokenizer" in cfg.model and cfg.bicodec().hop_length == 320
    assert load_codec_config("tiny").bicodec() == bicodec_config("tiny")
    release = load_codec_config("release")
    assert release.bicodec() == bicodec_config("full") and release.optim.betas == (0.8, 0.9)
    assert (release.loss.mel, release.loss.feature, release.loss.vq, release.loss.adversarial,
            release.loss.feature_matching) == (15.0, 1.0, 1.0, 1.0, 2.0)
    assert release.discriminator.periods == (2, 3, 5, 7, 11)
    assert (release.data.segment_seconds, release.data.ref_seconds) == (2.4, 6.0)


def test_model_section_accepts_a_release_directory(tiny_codec_release, tmp_path):
    """``model: RELEASE`` is the release's BiCodec config, not its top-level config.yaml beside it."""
    assert (tiny_codec_release / "config.yaml").is_file()
    (tmp_path / "c.yaml").write_text(f"model: {tiny_codec_release}\nwav2vec2: {{pretrained: {tiny_codec_release}}}\n")
    assert load_codec_config(tmp_path / "c.yaml").bicodec() == bicodec_config("tiny")


def _model_with_unknown_key() -> str:
    model = bicodec_config("tiny").to_dict()
    model["audio_tokenizer"]["encoder"]["bogus"] = 1
    return yaml.safe_dump({"model": model})


@pytest.mark.parametrize("text, named", [
    ("model: tiny\noptim: {lrr: 0.1}\n", "lrr"),
    ("model: tiny\nspeed_up: true\n", "speed_up"),
    (_model_with_unknown_key(), "bogus"),
])
def test_unknown_config_key_is_named(tmp_path, text, named):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=named):
        load_codec_config(path)


# -- training ---------------------------------------------------------------------------------------


def test_one_step_lowers_the_loss_and_export_reloads_with_identical_tokens(tmp_path, data_dir):
    cfg = tiny()
    acc = make_accelerator(cfg, "cpu")
    trainer = CodecTrainer(cfg, acc)
    batch = fixed_batch(data_dir, cfg)
    before = trainer.generator_losses(batch)
    trainer.train_step([batch], step=0)
    after = trainer.generator_losses(batch)
    assert after["generator"] < before["generator"], (before, after)

    run = prepare_run_dir(tmp_path / "run", "codec", cfg, {}, resume=False)
    trainer.save(run, 1)
    release = export(run, tmp_path / "release")
    assert {p.name for p in release.iterdir()} == {"config.yaml", "BiCodec", "wav2vec2-large-xlsr-53"}
    assert not list(tmp_path.glob(".release*"))  # the temporary folder is gone
    loaded = BiCodec.from_pretrained(release)  # strict
    trained = trainer.codec.eval()
    with torch.no_grad():
        stage = trainer.acc.unwrap_model(trainer.gen).features.eval()
        feats = stage(stage.aligned_input(batch["wav"]))
    t_trained, t_loaded = trained.encode(batch["ref_wav"], feats), loaded.encode(batch["ref_wav"], feats)
    assert torch.equal(t_trained.semantic_ids, t_loaded.semantic_ids)
    assert torch.equal(t_trained.global_ids, t_loaded.global_ids)
    assert torch.equal(trained.decode(t_trained), loaded.decode(t_loaded))
    # The whole inference pipeline (with the exported jointly trained wav2vec2) loads it too.
    g, s = BiCodecTokenizer.from_pretrained(release, device="cpu").tokenize(data_dir / "c1.wav")
    assert g.shape == (1, 1, 32) and s.shape[0] == 1
    with pytest.raises(TrainingError, match="not empty"):
        export(run, release)


def test_resume_gives_the_losses_of_an_uninterrupted_run(tmp_path, data_dir, tiny_codec_release):
    cfg = tiny(max_steps=4, speaker_start_step=1)
    straight = train_codec(cfg, data_dir / "manifest.jsonl", tmp_path / "a", device="cpu", init=tiny_codec_release)
    first = train_codec(cfg, data_dir / "manifest.jsonl", tmp_path / "b", max_steps=2, device="cpu",
                        init=tiny_codec_release)
    assert [r["step"] for r in rows(first)] == [1, 2]
    resumed = train_codec(cfg, data_dir / "manifest.jsonl", tmp_path / "b", resume=True, device="cpu")
    a, b = rows(straight), rows(resumed)
    assert [r["step"] for r in b] == [1, 2, 3, 4]
    for ra, rb in zip(a, b):  # the same float32 computation on the same thread count: equal, not close
        for key in ("generator", "mel", "discriminator", "vq", "feature", "codes_used", "lr"):
            assert ra[key] == rb[key], (ra["step"], key)
    assert sorted(p.name for p in (tmp_path / "a" / "checkpoints").iterdir()) == ["step_00000002", "step_00000004"]
    # Stopped before its first checkpoint (killed): resuming starts over from what the run started from
    # (run.json's init, not random weights), with no --init given again; the lost step's row is dropped.
    killed = train_codec(cfg, data_dir / "manifest.jsonl", tmp_path / "c", max_steps=1, device="cpu",
                         init=tiny_codec_release)
    shutil.rmtree(killed / "checkpoints")
    restarted = rows(train_codec(cfg, data_dir / "manifest.jsonl", killed, resume=True, device="cpu"))
    assert [r["step"] for r in restarted] == [1, 2, 3, 4]
    assert [r["generator"] for r in restarted] == [r["generator"] for r in a]
    assert (tmp_path / "a" / "tensorboard").is_dir()
    skipped = [json.loads(x)["audio"] for x in (tmp_path / "a" / "skipped.jsonl").read_text().splitlines()]
    assert any(s.endswith("broken.wav") for s in skipped)


def test_validation_scores_whole_held_out_clips_and_changes_no_training_step(tmp_path, data_dir,
                                                                         tiny_codec_release):
    """--val-data: the mel loss of whole clips at the start, every val_every steps and at the stop; the
    training losses equal a run without it; a resumed run goes on with the same rows; each row is what
    heldout_mel.py computes from the checkpoint (and the init) afterwards; frozen parts stay in eval mode."""
    from sparktts.train.codec.validation import load_validation_clips

    from ._scripts import load_script

    cfg = tiny(max_steps=4, speaker_start_step=1, freeze=["speaker_encoder"])
    manifest = data_dir / "manifest.jsonl"
    plain = train_codec(cfg, manifest, tmp_path / "plain", device="cpu", init=tiny_codec_release)
    run = train_codec(cfg, manifest, tmp_path / "val", max_steps=2, device="cpu", init=tiny_codec_release,
                      val_data=manifest, val_every=2, val_clips=None)
    run = train_codec(cfg, manifest, run, resume=True, device="cpu", val_data=manifest, val_every=2, val_clips=None)
    assert [r["generator"] for r in rows(run)] == [r["generator"] for r in rows(plain)]
    with (run / "validation.csv").open(newline="") as f:
        val = {int(r["step"]): float(r["mel"]) for r in csv.DictReader(f)}
    assert list(val) == [0, 2, 4] and all(0 < v < 10 for v in val.values()) and val[4] != val[0]
    assert any((run / "tensorboard" / "validation").glob("events.out.tfevents.*"))
    # Whole clips, the unreadable and silent ones skipped (as training skips them).
    clips = load_validation_clips(manifest, cfg, None)
    assert [Path(c.audio).name for c in clips] == ["c0.wav", "c1.wav", "c2.wav"]
    assert [len(c.wav) for c in clips] == [25600, 40000, 12800] and all(len(c.ref) == len(clips[0].ref) for c in clips)
    three = data_dir / "three.jsonl"  # a limit takes clips spread over the list: first and last of three
    three.write_text("".join(json.dumps({"audio": f"c{i}.wav", "text": "x"}) + "\n" for i in range(3)))
    assert [Path(c.audio).name for c in load_validation_clips(three, cfg, 2)] == ["c0.wav", "c2.wav"]
    scores = load_script("data/builtin/heldout_mel.py", "heldout_mel").heldout_mel(run, manifest, clips=None)
    assert scores["init"] == pytest.approx(val[0], rel=1e-5)
    assert scores["step_00000004"] == pytest.approx(val[4], rel=1e-5)
    # The trainer's modules keep their modes through a validation.
    trainer = CodecTrainer(cfg, make_accelerator(cfg, "cpu"), init=tiny_codec_release)
    modes = [m.training for m in trainer.gen.modules()]
    assert not trainer.codec.speaker_encoder.training and trainer.codec.decoder.training
    trainer.validate(clips)
    assert [m.training for m in trainer.gen.modules()] == modes


def test_validation_errors_name_the_fix(tmp_path, data_dir):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"audio": str(data_dir / "silent.wav"), "text": "x"}) + "\n")
    with pytest.raises(TrainingError, match="none of its clips could be read"):
        train_codec(tiny(max_steps=1), data_dir / "manifest.jsonl", tmp_path / "a", device="cpu", val_data=bad)
    with pytest.raises(ConfigError, match="val_every must be >= 1"):
        train_codec(tiny(max_steps=1), data_dir / "manifest.jsonl", tmp_path / "b", device="cpu",
                    val_data=data_dir / "manifest.jsonl", val_every=0)
    with pytest.raises(ConfigError, match=r"val_clips must be >= 1 \(or None: all\), got 0"):
        train_codec(tiny(max_steps=1), data_dir / "manifest.jsonl", tmp_path / "d", device="cpu",
                    val_data=data_dir / "manifest.jsonl", val_clips=0)
    with pytest.raises(ConfigError, match="'fp16' needs a GPU; use precision: bf16, fp32 or auto"):
        train_codec(tiny(max_steps=1, mixed_precision="fp16"), data_dir / "manifest.jsonl", tmp_path / "c",
                    device="cpu")
    # refused before anything is written
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists() and not (tmp_path / "c").exists()
    assert not (tmp_path / "d").exists()


def test_a_continued_run_goes_on_with_the_schedule_where_its_model_left_it(tmp_path, data_dir):
    from sparktts.train.codec.trainer import lr_factor

    base = tiny(max_steps=100, optim={"warmup_steps": 10, "min_lr_ratio": 0.1})
    fresh = lr_factor(base)
    assert fresh(0) == pytest.approx(0.1) and fresh(9) == pytest.approx(1.0)  # the warm-up
    assert fresh(55) == pytest.approx(0.55) and fresh(100) == pytest.approx(0.1)  # cosine half-way, floor
    later = lr_factor(tiny(max_steps=100, optim={"warmup_steps": 10, "min_lr_ratio": 0.1, "schedule_start": 45}))
    for step in range(10, 60):  # past its own warm-up: the first run's schedule 45 steps on
        assert later(step) == pytest.approx(fresh(step + 45))
    for step in range(10):  # its fresh optimizer ramps up to the continued value, not to the peak
        assert later(step) == pytest.approx((step + 1) / 10 * fresh(step + 45))
    # By default it trains what is left of max_steps (the whole training's length).
    cfg = tiny(max_steps=4, optim={"schedule_start": 3})
    assert [r["step"] for r in rows(train_codec(cfg, data_dir / "manifest.jsonl", tmp_path / "run",
                                                device="cpu"))] == [1]
    with pytest.raises(ConfigError, match=r"optim.schedule_start \(4: steps trained before this run\) must be"):
        tiny(max_steps=4, optim={"schedule_start": 4})


def test_time_budget_stops_with_a_checkpoint_that_resumes(tmp_path, data_dir):
    cfg = tiny(max_steps=3)
    run = train_codec(cfg, data_dir / "manifest.jsonl", tmp_path / "run", device="cpu", max_time=1e-6)
    assert [r["step"] for r in rows(run)] == [1]  # past the budget after the first step: stopped there
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step_00000001"]
    train_codec(cfg, data_dir / "manifest.jsonl", run, resume=True, device="cpu", max_time=3600)
    assert [r["step"] for r in rows(run)] == [1, 2, 3]
    with pytest.raises(ConfigError, match="max_time must be a positive"):
        train_codec(cfg, data_dir / "manifest.jsonl", tmp_path / "bad", device="cpu", max_time=0)


# -- compiled Snake kernels (--compile) ---------------------------------------------------------------

def test_fused_snake_is_snake_forward_and_backward():
    from sparktts.codec.layers import fused_snake, snake

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 300, generator=gen)
    alpha = (torch.rand(1, 5, 1, generator=gen) * 2 + 0.05).requires_grad_()
    grads = []
    for fn in (snake, fused_snake):
        xi = x.clone().requires_grad_()
        a = alpha.detach().clone().requires_grad_()
        y = fn(xi, a)
        (y * torch.linspace(-1, 1, 300)).sum().backward()  # a non-uniform upstream gradient
        grads.append((y.detach(), xi.grad, a.grad))
    for eager, fused in zip(*grads):
        torch.testing.assert_close(fused, eager, rtol=1e-5, atol=1e-5)


def test_fused_snake_warns_once_and_runs_eagerly_where_compiling_fails(monkeypatch):
    from sparktts.codec import layers

    def broken(fn, **kwargs):
        def call(*args):
            raise RuntimeError("no C++ compiler\nmore detail")
        return call

    monkeypatch.setattr(layers, "_compiled_snake", None)
    monkeypatch.setattr(torch, "compile", broken)
    x, alpha = torch.randn(1, 3, 40), torch.full((1, 3, 1), 0.7)
    with pytest.warns(UserWarning, match=r"failed \(RuntimeError: no C\+\+ compiler\); it runs eagerly"):
        y = layers.fused_snake(x, alpha)
    assert torch.equal(y, layers.snake(x, alpha))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once: later calls go straight to the eager kernel
        assert torch.equal(layers.fused_snake(x, alpha), y)


def test_compiled_run_trains_like_the_eager_one(tmp_path, data_dir):
    """``compile=True`` swaps kernels, not the computation: the same losses (to float rounding) step by step,
    and the checkpoints resume either way."""
    from sparktts.codec.layers import Snake1d

    cfg = tiny(max_steps=3)
    snakes = [m for m in CodecTrainer(cfg, make_accelerator(cfg, "cpu"), compile=True).gen.modules()
              if isinstance(m, Snake1d)]
    assert snakes and all(m.fused for m in snakes)
    eager = rows(train_codec(cfg, data_dir / "manifest.jsonl", tmp_path / "eager", device="cpu"))
    compiled_run = train_codec(cfg, data_dir / "manifest.jsonl", tmp_path / "compiled", device="cpu",
                               max_steps=2, compile=True)
    train_codec(cfg, data_dir / "manifest.jsonl", compiled_run, resume=True, device="cpu")  # eager again
    compiled = rows(compiled_run)
    assert [r["step"] for r in compiled] == [1, 2, 3]
    for re_, rc in zip(eager, compiled):
        for key in ("generator", "mel", "vq", "feature"):
            assert rc[key] == pytest.approx(re_[key], rel=1e-3, abs=1e-5), (re_["step"], key)


def test_two_processes_gloo_loss_falls(tmp_path, data_dir):
    cfg_path = tmp_path / "tiny.yaml"
    data = yaml.safe_load((ROOT / "sparktts/train/presets/codec/tiny.yaml").read_text())
    # With the pitch head on: it must train through the DDP-wrapped forward (its gradients all-reduced).
    data.update(max_steps=8, checkpoint_every=8, log_every=1, discriminator={**data["discriminator"], "start_step": 4},
                loss={**data.get("loss", {}), "pitch": 1.0})
    cfg_path.write_text(yaml.safe_dump(data))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "sparktts.cli",
           "train", "codec", "--config", str(cfg_path), "--data", str(data_dir / "manifest.jsonl"),
           "--out", str(tmp_path / "run"), "--device", "cpu"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[:4000] + "\n...\n" + done.stderr[-4000:]
    got = rows(tmp_path / "run")
    assert [r["step"] for r in got] == list(range(1, 9))
    assert json.loads((tmp_path / "run" / "run.json").read_text())["processes"] == 2
    assert got[0]["discriminator"] == 0.0 and got[-1]["discriminator"] > 0  # a column from the first row on
    # Before the adversarial start (step 5) the generator loss is reconstruction only: it must fall.
    assert got[3]["generator"] < got[0]["generator"]
    assert got[3]["mel"] < got[0]["mel"]
    assert all(r["pitch"] > 0 for r in got)


def test_frozen_release_wav2vec2_and_init_from_a_release(tmp_path, data_dir, tiny_codec_release):
    """The released recipe: wav2vec2 frozen from a release, BiCodec started from that release's weights."""
    from sparktts.train.codec.config import FeatureModelConfig

    cfg = dataclasses.replace(tiny(max_steps=1), wav2vec2=FeatureModelConfig(pretrained=str(tiny_codec_release)))
    run = train_codec(cfg, data_dir / "manifest.jsonl", tmp_path / "run", init=tiny_codec_release, device="cpu")
    release = export(run, tmp_path / "release")
    w2v = "wav2vec2-large-xlsr-53/model.safetensors"
    assert (release / w2v).read_bytes() == (tiny_codec_release / w2v).read_bytes()
    g, s = BiCodecTokenizer.from_pretrained(release, device="cpu").tokenize(data_dir / "c1.wav")
    assert g.shape == (1, 1, 32)


def test_frozen_tokenizer_side_keeps_every_token_while_the_decoder_trains(tmp_path, data_dir, tiny_codec_release):
    """``freeze: [encoder, quantizer, speaker_encoder]`` + a frozen wav2vec2: the codec's tokens stay valid."""
    from safetensors.torch import load_file

    from sparktts.train.codec.config import FeatureModelConfig

    base = tiny(max_steps=2)
    # The release's prompt length (ref_segment_duration), which the export writes from data.ref_seconds.
    cfg = dataclasses.replace(base, wav2vec2=FeatureModelConfig(pretrained=str(tiny_codec_release)),
                              data=dataclasses.replace(base.data, ref_seconds=6.0),
                              freeze=("encoder", "quantizer", "speaker_encoder"))
    run = train_codec(cfg, data_dir / "manifest.jsonl", tmp_path / "run", init=tiny_codec_release, device="cpu")
    release = export(run, tmp_path / "release")
    before, after = (load_file(r / "BiCodec" / "model.safetensors") for r in (tiny_codec_release, release))
    frozen = ("encoder.", "quantizer.", "speaker_encoder.")
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith(frozen))  # BatchNorm stats too
    assert not all(torch.equal(before[k], after[k]) for k in before if k.startswith("decoder."))
    old, new = (BiCodecTokenizer.from_pretrained(r, device="cpu") for r in (tiny_codec_release, release))
    for clip in ("c0.wav", "c1.wav"):
        a, b = old.encode(data_dir / clip), new.encode(data_dir / clip)
        assert torch.equal(a.semantic_ids, b.semantic_ids) and torch.equal(a.global_ids, b.global_ids)
    # data/builtin/heldout_mel.py: the run's held-out mel loss beside its init's, on the same whole clips.
    from ._scripts import load_script

    heldout = data_dir / "two.jsonl"
    heldout.write_text("".join(json.dumps({"audio": f"c{i}.wav", "text": "x"}) + "\n" for i in (0, 1)))
    scores = load_script("data/builtin/heldout_mel.py", "heldout_mel").heldout_mel(run, heldout, clips=None)
    assert list(scores) == ["init", "step_00000002"] and all(0 < v < 10 for v in scores.values())
    assert scores["init"] != scores["step_00000002"]  # the decoder moved; the same clips both times


def test_decoder_only_run_must_prepare_prompts_as_its_release(tmp_path, data_dir, tiny_codec_release):
    """With the tokenizer side frozen, a data section that would change the release's prompts (and so its
    global tokens) is refused before training, whether the release comes as ``model:`` or as ``init``."""
    from sparktts.train.codec.config import FeatureModelConfig

    keep = {"freeze": ["encoder", "quantizer", "speaker_encoder"],
            "wav2vec2": {"pretrained": str(tiny_codec_release), "trainable": False}}
    with pytest.raises(ConfigError, match=r"data.ref_seconds is 2.0 but .*config.yaml has ref_segment_duration: 6"):
        tiny(model=str(tiny_codec_release), data={"ref_seconds": 2.0}, **keep)
    with pytest.raises(ConfigError, match=r"data.volume_normalize is False .*set data.volume_normalize: True"):
        tiny(model=str(tiny_codec_release), data={"ref_seconds": 6.0, "volume_normalize": False}, **keep)
    cfg = tiny(model=str(tiny_codec_release), data={"ref_seconds": 6.0}, **keep)
    assert cfg.data.ref_seconds == 6.0 and cfg.data.batch_size == tiny().data.batch_size  # merged, not replaced
    base = tiny(max_steps=1)
    bad = dataclasses.replace(base, wav2vec2=FeatureModelConfig(pretrained=str(tiny_codec_release)),
                              data=dataclasses.replace(base.data, ref_seconds=2.0), freeze=tuple(keep["freeze"]))
    with pytest.raises(ConfigError, match="ref_segment_duration"):
        train_codec(bad, data_dir / "manifest.jsonl", tmp_path / "run", init=tiny_codec_release, device="cpu")
    assert not (tmp_path / "run").exists()
    tiny(model=str(tiny_codec_release), data={"ref_seconds": 2.0})  # tokenizer side training: anything goes


@pytest.mark.parametrize("freeze, message", [
    (["decoders"], "unknown part"),
    (["encoder", "quantizer", "speaker_encoder", "prenet", "postnet", "decoder"], "nothing would train"),
])
def test_bad_freeze_lists_are_named(freeze, message):
    with pytest.raises(ConfigError, match=message):
        tiny(freeze=tuple(freeze))


def test_gradient_accumulation_and_bf16_autocast_run(tmp_path, data_dir):
    cfg = tiny(max_steps=2, grad_accum_steps=2, mixed_precision="bf16", checkpoint_every=2)
    run = train_codec(cfg, data_dir / "manifest.jsonl", tmp_path / "run", device="cpu")
    got = rows(run)
    assert [r["step"] for r in got] == [1, 2] and all(np.isfinite(list(r.values())).all() for r in got)


# -- bad input --------------------------------------------------------------------------------------


def test_unwritable_out_names_the_fix(tmp_path, data_dir):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(TrainingError, match="writable --out"):
        train_codec(tiny(), data_dir / "manifest.jsonl", blocker / "run", device="cpu")


def test_checkpoint_from_another_config_is_refused(tmp_path, data_dir, tiny_codec_release):
    small_model = load_codec_config("small").model
    other = dataclasses.replace(tiny(), model=small_model, wav2vec2=load_codec_config("small").wav2vec2)
    with pytest.raises(CheckpointError, match="wrong shapes"):
        train_codec(other, data_dir / "manifest.jsonl", tmp_path / "init", init=tiny_codec_release, device="cpu")
    run = train_codec(tiny(max_steps=1), data_dir / "manifest.jsonl", tmp_path / "run", device="cpu")
    with pytest.raises(ConfigError, match="--resume with a config that differs"):
        train_codec(tiny(max_steps=1, seed=5), data_dir / "manifest.jsonl", run, resume=True, device="cpu")
    with pytest.raises(TrainingError, match="already holds a training run"):
        train_codec(tiny(max_steps=1), data_dir / "manifest.jsonl", run, device="cpu")


def test_unreadable_clips_are_recorded_and_skipped(tmp_path, data_dir):
    from sparktts.train.codec.data import SegmentDataset, SkipLog, read_clips

    log = tmp_path / "skipped.jsonl"
    clips = read_clips(data_dir / "manifest.jsonl", SkipLog(log))
    assert not any(c.endswith("broken.wav") for c in clips)  # header unreadable: dropped up front
    ds = SegmentDataset(clips, tiny().data, 0, 320, SkipLog(log))
    for i in range(12):  # the silent clip passes the header check and fails on load
        item = ds[i]
        assert item["wav"].shape == (16000,) and item["ref_wav"].shape == (32000,)
    errors = {Path(json.loads(x)["audio"]).name: json.loads(x)["error"] for x in log.read_text().splitlines()}
    assert set(errors) == {"broken.wav", "silent.wav"} and "silent" in errors["silent.wav"]
    with pytest.raises(TrainingError, match="prepare"):
        train_codec(tiny(), tmp_path, tmp_path / "run", device="cpu")  # a folder without clips.jsonl
    # A folder written by `sparktts prepare`: clips.jsonl with absolute paths and ids.
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    (prepared / "clips.jsonl").write_text(json.dumps({"id": "c0", "audio": str(data_dir / "c0.wav"),
                                                      "duration": 1.6}) + "\n")
    assert read_clips(prepared, SkipLog(None)) == [str(data_dir / "c0.wav")]


# -- the auxiliary pitch loss (small codecs from scratch) --------------------------------------------

def test_yin_pitch_agrees_with_librosa_pyin_on_espeak_speech():
    import librosa

    from sparktts.train.codec.pitch import yin_pitch

    wav, sr = soundfile.read(ROOT / "sparktts/assets/testlists/wavs/espeak_f3.wav", dtype="float32")
    assert sr == 16000
    frames = len(wav) // 320
    f0, voiced = (x[0].numpy() for x in yin_pitch(torch.from_numpy(wav)[None], frames))
    ref, ref_voiced, _ = librosa.pyin(wav, fmin=60, fmax=500, sr=16000, frame_length=1024, hop_length=320)
    centres = np.arange(frames) * 320 + 200  # ours; librosa's frame k is centred on sample 320 k
    ref = np.interp(centres, np.arange(len(ref)) * 320, np.nan_to_num(ref))
    ref_voiced = np.interp(centres, np.arange(len(ref_voiced)) * 320, ref_voiced.astype(float)) > 0.5
    both = voiced & ref_voiced & (ref > 0)
    assert both.sum() > 0.3 * frames
    assert np.mean(np.abs(np.log(f0[both] / ref[both])) < 0.05) > 0.9  # within 5 % on 90 % of the frames
    assert np.mean(voiced == ref_voiced) > 0.8
    t = torch.arange(16000) / 16000
    f0, voiced = yin_pitch(torch.stack([0.3 * torch.sin(2 * np.pi * 173 * t), torch.zeros(16000)]), 50)
    assert voiced[0, 2:-2].all() and not voiced[1].any()
    assert torch.allclose(f0[0, 2:-2], torch.full((46,), 173.0), rtol=0.01)


def test_pitch_loss_reaches_the_encoder_falls_and_is_not_exported(tmp_path, data_dir):
    from sparktts.train.codec.pitch import pitch_loss

    cfg = tiny(loss={"pitch": 1.0})
    trainer = CodecTrainer(cfg, make_accelerator(cfg, "cpu"))
    batch = fixed_batch(data_dir, cfg)
    out, target = trainer._generate(batch, 0)
    head = trainer.acc.unwrap_model(trainer.gen).pitch
    pitch_loss(head(out.z_q), target.squeeze(1)).backward()
    # Through the quantizer's straight-through path: the pitch is asked of the tokens, not only the head.
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainer.codec.encoder.parameters())
    trainer.opt_g.zero_grad()
    before = trainer.generator_losses(batch)
    for step in range(6):
        logged = trainer.train_step([batch], step)
    assert "pitch" in logged and trainer.generator_losses(batch)["pitch"] < before["pitch"]
    run = prepare_run_dir(tmp_path / "run", "codec", cfg, {}, resume=False)
    trainer.save(run, 6)
    release = export(run, tmp_path / "release")
    BiCodec.from_pretrained(release)  # strict: the head's weights are not in the release
    assert not [k for k in CodecTrainer(tiny(), make_accelerator(tiny(), "cpu")).gen.state_dict() if "pitch" in k]
