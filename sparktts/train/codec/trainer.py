"""``sparktts train codec``: the BiCodec trainer, following the released recipe.

Losses (weights from the config's ``loss`` section; released values in brackets): multi-resolution
mel L1 [15], wav2vec2-feature MSE through the postnet [1], factorized-VQ commitment + codebook loss
[1; their inner weights ``commitment``/``codebook_loss_weight`` come from the model's quantizer
section], optionally (not released; ``loss.pitch``, default 0) log F0 and voicing predicted from the
quantized latent (:mod:`.pitch`), LSGAN adversarial loss over a multi-period and a multi-band multi-resolution STFT
discriminator [1], and discriminator feature matching [2]. AdamW (betas 0.8, 0.9), linear warm-up
then cosine decay, gradient clipping at 1.0. Before ``speaker_start_step`` the decoder is conditioned
on a zero d-vector (the global path is off), so the semantic path learns the content first.

Scale-out uses accelerate as it is: the same code runs on one CPU, under ``accelerate launch`` or
``torchrun`` (DDP over NCCL or gloo, several GPUs or nodes), with gradient accumulation, mixed
precision (bf16 on GPU), and ``save_state``/``load_state`` checkpoints that restore models,
optimisers, schedules and RNG. Batches come from :mod:`.data`, which draws every sample from its
global index, so a resumed run continues with exactly the batches and losses of an uninterrupted one.

**BatchNorm under DDP**: the ECAPA speaker encoder's BatchNorm layers normalise each process's own
batch (``sync_batchnorm: false``, the default, as per-GPU training of the release does). DDP
broadcasts rank 0's running statistics to the other ranks at every forward, so all ranks, and the
exported model, hold rank 0's statistics. ``sync_batchnorm: true`` converts them to
``torch.nn.SyncBatchNorm`` (statistics over the global batch; CUDA only, in PyTorch).

The factorized VQ's dead-code reset is synchronised: usage counts are all-reduced and replacement
vectors are broadcast from rank 0, so the codebook stays identical on every rank.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ...codec.bicodec import BiCodec
from ...codec.layers import use_fused_snake
from ...errors import ConfigError
from ..config import to_dict
from ..run import (
    CHECKPOINTS_DIR,
    RUN_FILE,
    Deadline,
    MetricsLogger,
    TrainingError,
    Validation,
    prepare_run_dir,
    prune_checkpoints,
    read_run_info,
    validation_period,
    warmup_cosine,
)
from ..run import list_checkpoints as run_checkpoints
from ..run import make_accelerator as run_accelerator
from .config import CodecTrainConfig, check_fixed_tokens, load_codec_config
from .data import make_loader
from .discriminators import Discriminator
from .features import FeatureStage
from .losses import MultiResolutionMelLoss, adversarial_loss, discriminator_loss, feature_matching_loss
from .model import CodecTrainModel, TrainOutput, build_codec
from .pitch import pitch_loss
from .validation import DEFAULT_CLIPS, ValidationClip, heldout_mel_sums, load_validation_clips

log = logging.getLogger(__name__)

CHECKPOINTS = CHECKPOINTS_DIR
STATE_FILE = "trainer_state.json"
ADVERSARIAL_METRICS = ("discriminator", "adversarial", "feature_matching", "grad_norm_d")


def lr_factor(cfg: CodecTrainConfig) -> Callable[[int], float]:
    """Warm-up then cosine decay (:func:`~sparktts.train.run.warmup_cosine`) over the config's
    ``max_steps``, the whole training; with ``optim.schedule_start`` S it goes on from step S."""
    o = cfg.optim
    return warmup_cosine(o.warmup_steps, cfg.max_steps, o.min_lr_ratio, o.schedule_start)


def make_accelerator(cfg: CodecTrainConfig, device: str | None = None) -> Any:
    # The x-vector head of ECAPA is never used by the codec, and the speaker path is off in the first
    # steps: DDP must be told that some parameters get no gradient.
    return run_accelerator(cfg.mixed_precision, device, cfg.grad_accum_steps, find_unused_parameters=True)


class CodecTrainer:
    """Models, optimisers and schedules of one codec run, prepared on an ``accelerate.Accelerator``.

    ``train_step(batches, step)`` runs one optimiser step over ``grad_accum_steps`` micro-batches
    (each ``{"wav": (B, N), "ref_wav": (B, L)}``) and returns the step's metrics (averaged over
    processes); ``generator_losses(batch, step)`` evaluates the losses without training.
    """

    def __init__(self, cfg: CodecTrainConfig, accelerator: Any, init: str | os.PathLike | None = None,
                 compile: bool = False):
        self.cfg = cfg
        self.acc = accelerator
        torch.manual_seed(cfg.seed)  # identical initial weights on every rank
        codec = build_codec(cfg, init)
        for name in cfg.freeze:
            getattr(codec, name).requires_grad_(False).eval()
        stage = FeatureStage.build(cfg.wav2vec2)
        gen = CodecTrainModel.build(cfg, codec, stage if cfg.wav2vec2.trainable else None)
        if compile:
            use_fused_snake(gen)
        self.frozen = None if cfg.wav2vec2.trainable else stage.to(accelerator.device).eval()
        disc = Discriminator(cfg.discriminator)
        if cfg.sync_batchnorm and accelerator.num_processes > 1:
            if accelerator.device.type == "cpu":
                raise ConfigError("sync_batchnorm: torch.nn.SyncBatchNorm runs on GPUs only; set it to false "
                                  "for CPU (gloo) training.")
            gen = nn.SyncBatchNorm.convert_sync_batchnorm(gen)
        o = cfg.optim
        trained = [p for p in gen.parameters() if p.requires_grad]  # not the frozen parts
        opt_g = torch.optim.AdamW(trained, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)
        opt_d = torch.optim.AdamW(disc.parameters(), lr=o.disc_lr or o.lr, betas=tuple(o.betas),
                                  weight_decay=o.weight_decay)
        # Schedules are stepped here once per optimiser step (not prepared: accelerate would step them
        # once per process), and registered so that save_state/load_state keep them.
        self.sched_g = torch.optim.lr_scheduler.LambdaLR(opt_g, lr_factor(cfg))
        self.sched_d = torch.optim.lr_scheduler.LambdaLR(opt_d, lr_factor(cfg))
        self.gen, self.disc, self.opt_g, self.opt_d = accelerator.prepare(gen, disc, opt_g, opt_d)
        accelerator.register_for_checkpointing(self.sched_g, self.sched_d)
        self.mel_loss = MultiResolutionMelLoss(16000, cfg.loss.mel_windows, cfg.loss.mel_bins).to(accelerator.device)

    # -- the pieces of a step ---------------------------------------------------------------------
    @property
    def codec(self) -> BiCodec:
        return self.acc.unwrap_model(self.gen).codec

    def _inputs(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor | None]:
        wav = batch["wav"].to(self.acc.device)
        ref = batch["ref_wav"].to(self.acc.device)
        feats = None
        if self.frozen is not None:
            with torch.no_grad(), self.acc.autocast():  # the frozen stage runs in the run's precision too
                feats = self.frozen(self.frozen.aligned_input(wav))
        return wav, ref, feats

    def _generate(self, batch: dict[str, Tensor], step: int) -> tuple[TrainOutput, Tensor]:
        wav, ref, feats = self._inputs(batch)
        out = self.gen(wav, ref, use_speaker=step >= self.cfg.speaker_start_step, feats=feats)
        return out, wav.unsqueeze(1)[..., : out.wav.shape[-1]]

    def _generator_terms(self, out: TrainOutput, target: Tensor, adversarial: bool) -> dict[str, Tensor]:
        w = self.cfg.loss
        terms = {"mel": self.mel_loss(out.wav, target), "feature": out.losses["feature"], "vq": out.losses["vq"]}
        total = w.mel * terms["mel"] + w.feature * terms["feature"] + w.vq * terms["vq"]
        if w.pitch > 0:
            terms["pitch"] = pitch_loss(out.pitch, target.squeeze(1))
            total = total + w.pitch * terms["pitch"]
        if adversarial:
            # The discriminator's own module, gradients off: the generator step must not leave
            # gradients in the discriminator (they would add to its next update).
            disc = self.acc.unwrap_model(self.disc)
            disc.requires_grad_(False)
            try:
                with self.acc.autocast():
                    fake = disc(out.wav)
                    with torch.no_grad():
                        real = disc(target)
                terms["adversarial"] = adversarial_loss(fake)
                terms["feature_matching"] = feature_matching_loss(real, fake)
            finally:
                disc.requires_grad_(True)
            total = total + w.adversarial * terms["adversarial"] + w.feature_matching * terms["feature_matching"]
        terms["generator"] = total
        terms["commitment"], terms["codebook"] = out.losses["commitment"], out.losses["codebook"]
        terms["codes_used"] = out.codes_used.float()
        return terms

    @torch.no_grad()
    def generator_losses(self, batch: dict[str, Tensor], step: int = 0, adversarial: bool = False
                         ) -> dict[str, float]:
        """The generator's losses on ``batch`` without updating anything but BatchNorm statistics."""
        out, target = self._generate(batch, step)
        return {k: float(v) for k, v in self._generator_terms(out, target, adversarial).items()}

    def validate(self, clips: list[ValidationClip]) -> dict[str, float]:
        """The mel loss of whole held-out clips (:mod:`.validation`), each rank a share; nothing trains.

        The speaker path is always used, as inference uses it (also before ``speaker_start_step``)."""
        sums = heldout_mel_sums(self.acc.unwrap_model(self.gen), clips, self.mel_loss, self.frozen,
                                device=self.acc.device,
                                rank=self.acc.process_index, world=self.acc.num_processes,
                                autocast=self.acc.autocast)
        total, n = self.acc.reduce(sums, reduction="sum").tolist()
        return {"mel": total / n} if n else {}

    def train_step(self, batches: Iterable[dict[str, Tensor]], step: int) -> dict[str, float]:
        """One optimiser step (``step`` counts from 0) over ``grad_accum_steps`` micro-batches."""
        acc, cfg = self.acc, self.cfg
        # Seeded per step and rank (dead-code replacement draws), so resuming reproduces the run.
        torch.manual_seed(cfg.seed * 1_000_003 + step * 1009 + acc.process_index)
        adversarial = step >= cfg.discriminator.start_step
        sums: dict[str, Tensor] = {}
        norms: dict[str, Tensor] = {}
        n = 0
        for batch in batches:
            with acc.accumulate(self.gen, self.disc):
                out, target = self._generate(batch, step)
                terms: dict[str, Tensor] = {}
                if adversarial:
                    # Real and generated audio in one forward: DDP allows one forward per backward.
                    both = self.disc(torch.cat([target, out.wav.detach()]))
                    real = [[f[: len(target)] for f in maps] for maps in both]
                    fake = [[f[len(target):] for f in maps] for maps in both]
                    terms["discriminator"] = discriminator_loss(real, fake)
                    acc.backward(terms["discriminator"])
                    if acc.sync_gradients:
                        norms["grad_norm_d"] = acc.clip_grad_norm_(self.disc.parameters(), cfg.optim.grad_clip)
                    self.opt_d.step()
                    self.opt_d.zero_grad()
                terms.update(self._generator_terms(out, target, adversarial))
                acc.backward(terms["generator"])
                if acc.sync_gradients:
                    norms["grad_norm_g"] = acc.clip_grad_norm_(self.gen.parameters(), cfg.optim.grad_clip)
                self.opt_g.step()
                self.opt_g.zero_grad()
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v.detach().float()
            n += 1
        if n != cfg.grad_accum_steps:
            raise TrainingError(f"train_step got {n} micro-batches; grad_accum_steps is {cfg.grad_accum_steps}.")
        self.sched_g.step()
        with warnings.catch_warnings():
            # Stepped from the first step on, so the discriminator joins at the generator's point of the
            # schedule; before it starts its optimizer has not stepped, which torch warns about.
            warnings.filterwarnings("ignore", r"Detected call of `lr_scheduler\.step\(\)` before", UserWarning)
            self.sched_d.step()
        means = {k: v / n for k, v in sums.items()}
        means.update({k: torch.as_tensor(v, device=acc.device).float() for k, v in norms.items()})
        # The columns of metrics.csv are fixed by its first row: the adversarial terms are logged as 0
        # until the discriminators start.
        for k in ADVERSARIAL_METRICS:
            means.setdefault(k, torch.zeros((), device=acc.device))
        names = sorted(means)
        values = acc.reduce(torch.stack([means[k] for k in names]), reduction="mean")
        metrics = dict(zip(names, values.tolist()))
        metrics["lr"] = self.sched_g.get_last_lr()[0]
        return metrics

    # -- checkpoints ------------------------------------------------------------------------------
    def save(self, run_dir: Path, step: int) -> Path:
        """``save_state`` into ``checkpoints/step_N`` (written as ``.tmp`` and renamed when complete)."""
        acc = self.acc
        final = run_dir / CHECKPOINTS / f"step_{step:08d}"
        # Not fileio.atomic_dir: every rank writes its RNG state into the folder, so the temporary name
        # must be one all ranks know in advance.
        tmp = final.with_name(final.name + ".tmp")
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.parent.mkdir(parents=True, exist_ok=True)
        acc.wait_for_everyone()
        acc.save_state(str(tmp), safe_serialization=True)
        acc.wait_for_everyone()
        if acc.is_main_process:
            state = {"step": step, "model": to_dict(self.cfg)["model"], "wav2vec2": to_dict(self.cfg.wav2vec2)}
            (tmp / STATE_FILE).write_text(json.dumps(state, indent=1))
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            prune_checkpoints(run_dir, self.cfg.keep_checkpoints, STATE_FILE)
        acc.wait_for_everyone()
        return final

    def load(self, checkpoint: Path) -> int:
        """Restore everything from ``checkpoint``; returns the number of steps it had completed."""
        state = read_checkpoint_state(checkpoint)
        mine = to_dict(self.cfg)
        if state.get("model") != mine["model"] or state.get("wav2vec2") != mine["wav2vec2"]:
            raise TrainingError(f"{checkpoint}: written by a run with another model or wav2vec2 config; it "
                                f"does not fit this run's config. Resume with that run's --config or start "
                                f"a new --out.")
        try:
            self.acc.load_state(str(checkpoint))
        except (RuntimeError, ValueError, KeyError, FileNotFoundError) as exc:
            raise TrainingError(f"{checkpoint}: cannot restore the training state ({type(exc).__name__}: "
                                f"{str(exc).splitlines()[0]}). The checkpoint is damaged or from another "
                                f"config; start a new --out.") from exc
        return int(state["step"])


def list_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoints of a codec run, oldest first."""
    return run_checkpoints(run_dir, STATE_FILE)


def read_checkpoint_state(checkpoint: str | os.PathLike) -> dict[str, Any]:
    path = Path(checkpoint) / STATE_FILE
    if not path.is_file():
        raise TrainingError(f"{checkpoint}: not a codec checkpoint (no {STATE_FILE}).")
    return json.loads(path.read_text())


def train_codec(config: str | os.PathLike | CodecTrainConfig, data: str | os.PathLike, out: str | os.PathLike,
                max_steps: int | None = None, resume: bool = False, init: str | os.PathLike | None = None,
                device: str | None = None, max_time: float | None = None, compile: bool = False,
                val_data: str | os.PathLike | None = None, val_every: int | None = None,
                val_clips: int | None = DEFAULT_CLIPS) -> Path:
    """Train (or with ``resume`` continue) BiCodec; returns the run directory.

    ``config``: YAML path, preset name (``tiny``, ``small``, ``release``) or :class:`CodecTrainConfig`.
    ``data``: manifest JSONL or a ``sparktts prepare`` folder. ``max_steps``: stop once this many
    optimiser steps are done (default: the config's, less ``optim.schedule_start``; the schedule always
    uses the config's).
    ``init``: a release (or its ``BiCodec/``) to start from instead of random weights.
    ``device``: ``"cpu"`` forces the CPU; default: what accelerate picks (GPU when there is one).
    ``max_time``: also stop, with a checkpoint, after this many seconds of training (a session's budget).
    ``compile``: the wave generator's Snake activations as compiled kernels (:func:`~sparktts.codec.layers.
    fused_snake`: the same function, ~25 % off a CPU step; ~20 s to compile; eager where compiling fails).
    It changes no weight or checkpoint, so a run may be resumed with or without it.
    ``val_data``: held-out clips (manifest or prepare folder; ``val_clips`` of them, spread over the list,
    None: all): the mel loss of their whole reconstructions goes to ``validation.csv`` and TensorBoard's
    ``validation`` run at the start of a fresh run, every ``val_every`` steps (default: the checkpoint
    period) and at the stop (:mod:`sparktts.train.codec.validation`). It changes nothing that trains.
    """
    cfg = load_codec_config(config)
    val_every = validation_period(val_every, cfg.checkpoint_every)
    # Before anything is written: a bad list must not leave a run folder behind.
    clips = [] if val_data is None else load_validation_clips(val_data, cfg, val_clips)
    out = Path(out).expanduser()
    if resume and (out / RUN_FILE).is_file():
        init = read_run_info(out).get("init")  # what the run started from
    checkpoints = list_checkpoints(out) if resume and out.is_dir() else []
    if init is not None and not checkpoints:
        check_fixed_tokens(cfg, init, "codec config")
    logging.getLogger("accelerate").setLevel(logging.WARNING)  # one line per checkpoint file otherwise
    acc = make_accelerator(cfg, device)
    info = {"data": str(Path(data).expanduser().resolve()), "init": str(init) if init else None,
            "processes": acc.num_processes}
    run_dir = prepare_run_dir(out, "codec", cfg, info, resume, acc.is_main_process)
    acc.wait_for_everyone()

    # A run stopped before its first checkpoint starts over from its start (``init`` or random weights):
    # the frozen parts of a decoder run must never be random ones.
    trainer = CodecTrainer(cfg, acc, init=None if checkpoints else init, compile=compile)
    step = trainer.load(checkpoints[-1]) if checkpoints else 0
    stop = cfg.max_steps - cfg.optim.schedule_start if max_steps is None else max_steps
    logger = MetricsLogger(run_dir, enabled=acc.is_main_process, resume_step=step if resume else None)
    validation = Validation(run_dir, (lambda: trainer.validate(clips)) if clips else None, val_every,
                            enabled=acc.is_main_process, resume_step=step if resume else None)
    batches = iter(make_loader(cfg, data, run_dir, step, acc))
    saved = step
    deadline = Deadline(max_time)
    try:
        validation.start(step)
        while step < stop:
            metrics = trainer.train_step([next(batches) for _ in range(cfg.grad_accum_steps)], step)
            step += 1
            if not all(math.isfinite(v) for v in metrics.values()):
                raise TrainingError(f"step {step}: non-finite loss {metrics}; lower optim.lr or check the data.")
            if deadline.reached(acc):
                stop = step
            if step % cfg.log_every == 0 or step == stop:
                logger.log(step, metrics)
                if acc.is_main_process:
                    log.info("step %d: generator %.4g, mel %.4g, discriminator %.4g, codes used %d", step,
                             metrics["generator"], metrics["mel"], metrics["discriminator"], metrics["codes_used"])
            if step % cfg.checkpoint_every == 0 or step == stop:
                trainer.save(run_dir, step)
                saved = step
            validation.after(step, step == stop)
    finally:
        logger.close()
        validation.close()
    if saved != step:
        trainer.save(run_dir, step)
    return run_dir


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--init", default=None, help="Start from this release's BiCodec/ instead of random weights")
    p.add_argument("--device", default=None, choices=["cpu", "cuda"],
                   help="Force a device (default: GPU when available; under accelerate/torchrun, its choice)")
    p.add_argument("--compile", action="store_true",
                   help="Run the generator's Snake activations as torch.compile kernels (~25%% faster CPU steps; "
                        "~20 s to compile; needs a C++ compiler on CPU, falls back to eager without one)")
    p.add_argument("--val-data", "--val_data", dest="val_data", default=None,
                   help="Held-out clips (manifest or prepare folder): mel loss of their whole reconstructions "
                        "in validation.csv")
    p.add_argument("--val-every", "--val_every", dest="val_every", type=int, default=None,
                   help="Validate every N steps (default: the config's checkpoint_every)")
    p.add_argument("--val-clips", "--val_clips", dest="val_clips", type=int, default=DEFAULT_CLIPS,
                   help=f"How many held-out clips, spread over the list (default {DEFAULT_CLIPS})")


def run(args: argparse.Namespace) -> str:
    run_dir = train_codec(args.config, args.data, args.out, max_steps=args.max_steps, resume=args.resume,
                          init=getattr(args, "init", None), device=getattr(args, "device", None),
                          max_time=args.max_time, compile=getattr(args, "compile", False),
                          val_data=getattr(args, "val_data", None), val_every=getattr(args, "val_every", None),
                          val_clips=getattr(args, "val_clips", DEFAULT_CLIPS))
    # Under torchrun / accelerate launch only the main process reports the run directory.
    return str(run_dir) if int(os.environ.get("RANK", "0")) == 0 else ""
