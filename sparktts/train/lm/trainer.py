"""``sparktts train lm``: train or fine-tune the Spark-TTS LLM on prepared tokens.

Engine: an :class:`accelerate.Accelerator` loop, not ``transformers.Trainer``. Accelerate brings what
scale-out needs (DDP under ``torchrun`` / ``accelerate launch`` on GPUs or gloo CPUs, bf16 autocast,
gradient clipping across ranks) while the loop keeps three things exact that Trainer leaves to
version-dependent internals:

* **loss normalisation**: every micro-batch's summed token loss is divided by the number of target tokens
  of the whole global batch (all ranks, all accumulation steps), so N processes, gradient accumulation
  and one process compute the same gradient (up to float rounding), whatever the example lengths;
* **data order**: global batch ``k`` of epoch ``e`` is fixed by ``seed + e`` alone (a permutation, with
  ``group_by_length`` sorted by length in runs of 32 batches and the batches shuffled), each rank taking
  its own slice; nothing depends on sampler or RNG state, so a resumed run sees the batches it would
  have seen;
* **checkpoints**: ``checkpoints/step-NNNNNNNN/`` holds the weights (safetensors), the optimiser and
  scheduler state and ``state.json`` (step, config); loading checks both against the current run.

The run directory (:func:`sparktts.train.run.prepare_run_dir`) also holds ``base/`` (the model config and
tokenizer files the exporter needs), ``examples.json`` (counts, skipped examples), ``metrics.csv`` and
TensorBoard events.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch

from sparktts.data.shards import read_data_info, read_tokenized
from sparktts.errors import ConfigError
from sparktts.fileio import atomic_dir
from sparktts.train.config import load_config, to_dict
from sparktts.train.lm.config import LMTrainConfig
from sparktts.train.lm.data import ExampleStats, TrainingExample, build_examples, collate
from sparktts.train.lm.model import TargetLoss, build_model, write_base
from sparktts.train.lm.validation import HeldOut, check_same_codec, heldout_sums, load_heldout, summarize
from sparktts.train.run import (
    CHECKPOINTS_DIR,
    Deadline,
    MetricsLogger,
    TrainingError,
    Validation,
    list_checkpoints,
    make_accelerator,
    prepare_run_dir,
    prune_checkpoints,
    validation_period,
    warmup_cosine,
)

__all__ = ["LMTrainer", "add_arguments", "latest_checkpoint", "run", "train_lm"]

log = logging.getLogger(__name__)

BASE_DIR = "base"  # model config + tokenizer files of the run (what export writes into LLM/)
CKPT_DIR = CHECKPOINTS_DIR
STATE_FILE = "state.json"
WEIGHTS = "model.safetensors"



def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint folder of a run, or None."""
    ckpts = list_checkpoints(run_dir, STATE_FILE)
    return ckpts[-1] if ckpts else None


class LMTrainer:
    """The training loop over a fixed list of examples (see the module docstring for the guarantees).

    Args:
        cfg: the run config.
        examples: training examples (:func:`sparktts.train.lm.data.build_examples`).
        model: the causal LM (float32 master weights).
        pad_id: padding id of the tokenizer.
        accelerator: an ``accelerate.Accelerator`` (one is made from ``cfg.precision`` when None).
    """

    def __init__(self, cfg: LMTrainConfig, examples: list[TrainingExample], model: Any, pad_id: int,
                 accelerator: Any = None, device: str | None = None):
        if accelerator is None:
            accelerator = make_accelerator(cfg.precision, device)
        self.acc = accelerator
        self.cfg = cfg
        world = self.acc.num_processes
        if cfg.batch_size % (world * cfg.grad_accum):
            raise ConfigError(f"batch_size {cfg.batch_size} must be a multiple of processes x grad_accum = "
                              f"{world} x {cfg.grad_accum}; change batch_size or the number of processes")
        if len(examples) < cfg.batch_size:
            raise TrainingError(f"only {len(examples)} training examples, fewer than batch_size {cfg.batch_size}; "
                                "prepare more clips or lower batch_size")
        self.examples = examples
        self.pad_id = pad_id
        self.micro = cfg.batch_size // (world * cfg.grad_accum)
        params = [p for p in model.parameters() if p.requires_grad]
        decay = [p for p in params if p.dim() >= 2]
        no_decay = [p for p in params if p.dim() < 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}],
                                lr=cfg.lr, betas=tuple(cfg.betas))
        self.model, self.optimizer = self.acc.prepare(TargetLoss(model), opt)
        # Not prepared: accelerate would step a prepared scheduler once per process.
        schedule = warmup_cosine(cfg.warmup_steps, cfg.max_steps, cfg.min_lr_ratio, cfg.schedule_start)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer.optimizer, schedule)
        self.step = 0
        self._epoch_cache: tuple[int, list[list[int]]] = (-1, [])

    @property
    def lm(self) -> Any:
        """The causal LM being trained (without the loss wrapper and DDP)."""
        return self.acc.unwrap_model(self.model).lm

    # -- data order ---------------------------------------------------------------------------------
    @property
    def steps_per_epoch(self) -> int:
        return len(self.examples) // self.cfg.batch_size

    def global_batch(self, step: int) -> list[TrainingExample]:
        """The examples of optimiser step ``step`` (0-based), over all ranks and micro-steps."""
        epoch, k = divmod(step, self.steps_per_epoch)
        return [self.examples[i] for i in self._epoch_batches(epoch)[k]]

    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        """Epoch ``epoch``'s batches of example indices, from ``seed + epoch`` alone.

        With ``group_by_length`` each run of 32 batches of the permutation is sorted by length before it
        is cut into batches, and the batches are then shuffled: a batch holds examples of similar
        length, so little of it is padding, and the order stays random.
        """
        if self._epoch_cache[0] != epoch:
            gen = torch.Generator().manual_seed(self.cfg.seed + epoch)
            b = self.cfg.batch_size
            perm = torch.randperm(len(self.examples), generator=gen)[: self.steps_per_epoch * b].tolist()
            if self.cfg.group_by_length:
                group = 32 * b
                perm = [i for start in range(0, len(perm), group) for i in
                        sorted(perm[start: start + group], key=lambda i: -len(self.examples[i].input_ids))]
            batches = [perm[j: j + b] for j in range(0, len(perm), b)]
            if self.cfg.group_by_length:
                batches = [batches[j] for j in torch.randperm(len(batches), generator=gen).tolist()]
            self._epoch_cache = (epoch, batches)
        return self._epoch_cache[1]

    def micro_batches(self, batch: list[TrainingExample]) -> list[list[TrainingExample]]:
        """This rank's micro-batches of a global batch: micro-step m, rank r -> a contiguous slice."""
        world, rank, n = self.acc.num_processes, self.acc.process_index, self.micro
        out = []
        for m in range(self.cfg.grad_accum):
            start = (m * world + rank) * n
            out.append(batch[start: start + n])
        return out

    # -- loss -----------------------------------------------------------------------------------------
    def token_losses(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-row summed target-token cross-entropy (B,) and target-token counts (B,)."""
        with self.acc.autocast():
            return self.model(batch["input_ids"], batch["attention_mask"], batch["labels"])

    def loss(self, examples: list[TrainingExample]) -> float:
        """Mean target-token loss of ``examples`` on this process, without a gradient (for tests/eval)."""
        batch = {k: v.to(self.acc.device) for k, v in collate(examples, self.pad_id).items()}
        with torch.no_grad():
            s, n = self.token_losses(batch)
        return float(s.sum() / n.sum())

    def validate(self, heldout: HeldOut) -> dict[str, float]:
        """Held-out losses and text gap (:mod:`sparktts.train.lm.validation`), each rank a share, reduced."""
        sums = heldout_sums(self.acc.unwrap_model(self.model), heldout, self.pad_id, self.micro, self.acc.device,
                            self.acc.process_index, self.acc.num_processes, self.acc.autocast)
        return summarize(self.acc.reduce(sums, reduction="sum"))

    def train_step(self) -> dict[str, float]:
        """One optimiser step on global batch ``self.step``; returns the logged metrics."""
        batch = self.global_batch(self.step)
        total_tokens = sum(e.num_target for e in batch)  # every rank knows the whole global batch
        scale = self.acc.num_processes / total_tokens  # DDP averages gradients over ranks
        self.model.train()
        # sums[task] = (loss sum, tokens) of this rank; reduced over ranks for logging only.
        sums = torch.zeros(4, dtype=torch.float64, device=self.acc.device)
        micros = self.micro_batches(batch)
        for m, examples in enumerate(micros):
            b = {k: v.to(self.acc.device) for k, v in collate(examples, self.pad_id).items()}
            sync = m == len(micros) - 1
            # Gradients are all-reduced once per optimiser step, on the last micro-batch.
            ctx = self.acc.no_sync(self.model) if not sync else contextlib.nullcontext()
            with ctx:
                s, n = self.token_losses(b)
                self.acc.backward(s.sum() * scale)
            for t in (0, 1):
                sel = b["task"] == t
                sums[2 * t] += s[sel].sum().double().detach()
                sums[2 * t + 1] += n[sel].sum().double()
        grad_norm = self.acc.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        lr = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        sums = self.acc.reduce(sums, reduction="sum")
        out = {"loss": float((sums[0] + sums[2]) / (sums[1] + sums[3])), "lr": lr,
               "grad_norm": float(grad_norm), "target_tokens": float(total_tokens)}
        for t, name in ((0, "loss_clone"), (1, "loss_create")):
            if sums[2 * t + 1] > 0:
                out[name] = float(sums[2 * t] / sums[2 * t + 1])
        return out

    # -- checkpoints ----------------------------------------------------------------------------------
    def save(self, run_dir: Path) -> Path:
        """Write ``checkpoints/step-NNNNNNNN`` (main process; temp folder renamed) and prune old ones."""
        from safetensors.torch import save_model

        folder = run_dir / CKPT_DIR / f"step-{self.step:08d}"
        self.acc.wait_for_everyone()
        if self.acc.is_main_process:
            with atomic_dir(folder, replace=True) as tmp:
                # save_model handles the tied embedding / LM head that save_file refuses.
                save_model(self.lm, str(tmp / WEIGHTS))
                torch.save({"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()},
                           tmp / "optimizer.pt")
                state = {"step": self.step, "config": to_dict(self.cfg)}
                (tmp / STATE_FILE).write_text(json.dumps(state, indent=2))
            prune_checkpoints(run_dir, self.cfg.keep_checkpoints, STATE_FILE)
        self.acc.wait_for_everyone()
        return folder

    def load(self, folder: Path) -> None:
        """Restore weights, optimiser, scheduler and step from a checkpoint of this run's config.

        Raises:
            ConfigError: the checkpoint was written with another config.
            TrainingError: its weights do not fit the model (names or shapes).
        """
        from safetensors.torch import load_model

        state = json.loads((folder / STATE_FILE).read_text())
        if state.get("config") != to_dict(self.cfg):
            old, new = state.get("config") or {}, to_dict(self.cfg)
            diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise ConfigError(f"{folder}: checkpoint from another config (differs in {diff}); resume with the "
                              "config it was trained with, or start a new --out")
        try:
            load_model(self.lm, str(folder / WEIGHTS), strict=True,
                       device=str(self.acc.device))
        except RuntimeError as exc:
            raise TrainingError(f"{folder}: checkpoint weights do not fit this model ({str(exc)[:400]}); it "
                                "comes from another model config") from exc
        opt = torch.load(folder / "optimizer.pt", map_location=self.acc.device, weights_only=True)
        self.optimizer.load_state_dict(opt["optimizer"])
        self.scheduler.load_state_dict(opt["scheduler"])
        self.step = int(state["step"])


def train_lm(config: str | os.PathLike | LMTrainConfig, data: str | os.PathLike, out: str | os.PathLike,
             init: str | os.PathLike | None = None, max_steps: int | None = None, resume: bool = False,
             device: str | None = None, lora: bool | None = None, max_time: float | None = None,
             val_data: str | os.PathLike | None = None, val_every: int | None = None) -> Path:
    """Train (or, with ``init``, fine-tune) the LLM on a prepared data folder; returns the run directory.

    Args:
        config: an :class:`LMTrainConfig`, a YAML path or a preset name ("tiny", "small", "release").
        data: folder written by :func:`sparktts.data.prepare.prepare`.
        out: run directory (created; must not hold a run unless ``resume``).
        init: a release directory (or its ``LLM/``) to fine-tune; None trains from the config's dimensions.
        max_steps: stop after this many optimiser steps in total (default ``config.max_steps``, less
            ``config.schedule_start``); the learning-rate schedule always spans ``config.max_steps``.
        resume: continue the run in ``out`` from its latest checkpoint.
        device: "cpu" forces CPU; None lets accelerate pick (the GPU of this rank when there is one).
        lora: override ``config.lora.enabled``.
        max_time: also stop, with a checkpoint, after this many seconds of training (a session's budget).
        val_data: a ``sparktts prepare`` folder of held-out clips (same codec as ``data``): its losses and
            text gap (:mod:`sparktts.train.lm.validation`) go to ``validation.csv`` and TensorBoard's
            ``validation`` run at the start of a fresh run, every ``val_every`` steps (default: the
            checkpoint period) and at the last step. Validation never changes what is trained.

    Raises:
        ConfigError: bad or changed config, a checkpoint from another config.
        TrainingError: unwritable ``out``, no data, a run already in ``out`` (without ``resume``).
    """
    from transformers import AutoTokenizer

    cfg = config if isinstance(config, LMTrainConfig) else load_config(LMTrainConfig, config, "lm")
    if lora is not None and lora != cfg.lora.enabled:
        cfg = dataclasses.replace(cfg, lora=dataclasses.replace(cfg.lora, enabled=lora))
    data = Path(data).expanduser()
    data_info = read_data_info(data)
    val_every = validation_period(val_every, cfg.save_every)
    if val_data is not None:
        check_same_codec(data_info, Path(val_data).expanduser())
    acc = make_accelerator(cfg.precision, device)
    out = Path(out).expanduser()
    if resume and (out / "run.json").is_file():
        init = json.loads((out / "run.json").read_text()).get("init")
    info = {"data": str(data.resolve()), "codec_dir": data_info.get("model_dir"),
            "init": str(Path(init).expanduser().resolve()) if init and Path(init).expanduser().exists() else init,
            "processes": acc.num_processes}
    run_dir = prepare_run_dir(out, "lm", cfg, info, resume, acc.is_main_process)
    acc.wait_for_everyone()
    base = run_dir / BASE_DIR
    # A run stopped before its first checkpoint starts over from its start (``init`` or random weights).
    ckpt = latest_checkpoint(run_dir) if resume else None
    if ckpt is None and acc.is_main_process:
        write_base(base, cfg, info["init"])
    acc.wait_for_everyone()
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    examples, stats = build_examples(read_tokenized(data), tokenizer, cfg.tasks, cfg.max_length,
                                     data_info.get("num_globals"))
    _report_examples(run_dir, stats, acc.is_main_process)
    heldout = None
    if val_data is not None:
        heldout = load_heldout(Path(val_data).expanduser(), tokenizer, cfg.tasks, cfg.max_length,
                               data_info.get("num_globals"))
        if not len(heldout):
            raise TrainingError(f"--val-data {val_data}: no held-out example fits (max_length "
                                f"{cfg.max_length}, tasks {list(cfg.tasks)}); check the folder")
    model = build_model(base, cfg, None if ckpt is not None else info["init"])
    trainer = LMTrainer(cfg, examples, model, tokenizer.pad_token_id, accelerator=acc, device=device)
    if ckpt is not None:
        trainer.load(ckpt)
        log.info("resumed from %s", ckpt)
    total = cfg.max_steps - cfg.schedule_start  # the schedule's steps left to this run
    stop = total if max_steps is None else min(max_steps, total)
    metrics = MetricsLogger(run_dir, enabled=acc.is_main_process, resume_step=trainer.step if resume else None)
    validation = Validation(run_dir, None if heldout is None else lambda: trainer.validate(heldout), val_every,
                            enabled=acc.is_main_process, resume_step=trainer.step if resume else None)
    deadline = Deadline(max_time)
    try:
        validation.start(trainer.step)
        while trainer.step < stop:
            values = trainer.train_step()
            last = trainer.step == stop or deadline.reached(acc)
            if trainer.step % cfg.log_every == 0 or last:
                metrics.log(trainer.step, values)
                log.info("step %d loss %.4f lr %.2e", trainer.step, values["loss"], values["lr"])
            validation.after(trainer.step, last)
            if trainer.step % cfg.save_every == 0 or last:
                trainer.save(run_dir)
            if last:
                break
    finally:
        metrics.close()
        validation.close()
    acc.wait_for_everyone()
    return run_dir


def _report_examples(run_dir: Path, stats: ExampleStats, is_main: bool) -> None:
    if stats.skipped_too_long:
        log.warning("skipped %d examples longer than max_length (longest: %d tokens)", stats.skipped_too_long,
                    stats.max_length_seen)
    if is_main:
        (run_dir / "examples.json").write_text(json.dumps(dataclasses.asdict(stats), indent=2))


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``sparktts train lm`` beyond ``--config --data --out --max-steps --resume --init``."""
    p.add_argument("--lora", action="store_true", default=None, help="Train LoRA adapters (overrides the config)")
    p.add_argument("--device", default=None, help="'cpu' forces CPU; default: the GPU of this process if any")
    p.add_argument("--val-data", "--val_data", dest="val_data", default=None,
                   help="Prepared held-out clips (same codec): losses and text gap in validation.csv")
    p.add_argument("--val-every", "--val_every", dest="val_every", type=int, default=None,
                   help="Validate every N steps (default: the config's save_every)")


def run(args: argparse.Namespace) -> str:
    """``sparktts train lm``: train, print the run directory."""
    return str(train_lm(args.config, args.data, args.out, init=args.init, max_steps=args.max_steps,
                        resume=args.resume, device=args.device, lora=args.lora, max_time=args.max_time,
                        val_data=args.val_data, val_every=args.val_every))
