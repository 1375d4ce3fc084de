"""The run directory both trainers write, and its metrics log.

A run directory holds::

    config.yaml        the resolved training config (what was actually run)
    run.json           kind ("codec" or "lm"), the data folder, the init model, package version
    checkpoints/       step-numbered checkpoints (written by the trainer's engine)
    metrics.csv        step, losses, lr, seconds: one row per logging step, appended on resume
    validation.csv     held-out losses (``--val-data``), under the training losses' names
    tensorboard/       TensorBoard event files

Only the main process writes (``is_main``); other DDP ranks get a logger that does nothing. Also here:
what both trainers share around their loops (the validation schedule, the wall-clock budget, the
accelerate precision and state).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError, SparkTTSError
from ..fileio import atomic_write, check_writable_dir
from .config import to_dict

RUN_FILE = "run.json"
CHECKPOINTS_DIR = "checkpoints"
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.csv"
VALIDATION_FILE = "validation.csv"  # held-out losses (--val-data), beside metrics.csv

log = logging.getLogger(__name__)


class TrainingError(SparkTTSError):
    """A training run cannot start or continue (bad data, mismatched checkpoint, unwritable folder)."""


def _session() -> dict[str, Any]:
    """Where and when this process trains: ``run.json`` keeps one entry per start or resumption, so a
    model card can say what hardware a run used (they are often resumed on other machines)."""
    import time

    import torch

    from ..device import cpu_features

    cpu = cpu_features()
    return {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cpu": cpu["cpu"], "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
            "torch": cpu["torch"]}


def prepare_run_dir(out: str | os.PathLike, kind: str, config: Any, info: Mapping[str, Any],
                    resume: bool, is_main: bool = True) -> Path:
    """Create (or, with ``resume``, reopen) a run directory and record the resolved config.

    A fresh run refuses a folder that already holds a run (pass ``--resume`` or another ``--out``);
    a resumed run refuses a config that differs from the recorded one, since its checkpoints would
    not fit the model. ``run.json`` records ``info`` and, per start and resumption, the machine
    (``sessions``).
    """
    out = Path(out).expanduser()
    cfg = to_dict(config)
    recorded = out / CONFIG_FILE
    if resume:
        if not recorded.is_file():
            raise TrainingError(f"{out}: no run to resume (no {CONFIG_FILE}). Drop --resume to start one.")
        old = yaml.safe_load(recorded.read_text())
        if old != cfg:
            diff = sorted(k for k in set(old) | set(cfg) if old.get(k) != cfg.get(k))
            raise ConfigError(f"{out}: --resume with a config that differs from the run's in {diff}. "
                              f"Resume with the same --config, or start a new --out.")
        if is_main and (out / RUN_FILE).is_file():
            record = read_run_info(out)
            record["sessions"] = [*record.get("sessions", []), _session()]
            _write_atomic(out / RUN_FILE, json.dumps(record, indent=2, default=str))
        return out
    if not is_main:
        # The main rank checks and writes; a check here would race with its write and see its own run.
        return out
    if recorded.exists():
        raise TrainingError(f"{out}: already holds a training run. Pass --resume to continue it, or "
                            f"choose another --out.")
    try:
        check_writable_dir(out)
    except OSError as exc:
        raise TrainingError(f"{out}: cannot write there ({exc.strerror}). Choose a writable --out.") from exc
    _write_atomic(recorded, yaml.safe_dump(cfg, sort_keys=False))
    from .. import __version__

    _write_atomic(out / RUN_FILE, json.dumps({"kind": kind, "sparktts_version": __version__, **info,
                                              "sessions": [_session()]}, indent=2, default=str))
    return out


def read_run_info(run_dir: str | os.PathLike) -> dict[str, Any]:
    """``run.json`` of a run directory (its ``kind`` says which trainer wrote it)."""
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        raise TrainingError(f"{run_dir}: not a training run directory (no {RUN_FILE}).")
    return json.loads(path.read_text())


def list_checkpoints(run_dir: str | os.PathLike, marker: str) -> list[Path]:
    """Complete checkpoints of a run, oldest first: folders of ``checkpoints/`` holding ``marker``.

    Each trainer writes ``marker`` last and names its folders with a zero-padded step, so name order
    is step order; hidden and ``.tmp`` folders are checkpoints still being written.
    """
    folder = Path(run_dir) / CHECKPOINTS_DIR
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and not p.name.endswith(".tmp") and (p / marker).is_file())


def find_checkpoint(run_dir: str | os.PathLike, checkpoint: str | os.PathLike | None, marker: str) -> Path:
    """The checkpoint to use: the latest one, or ``checkpoint`` given as a folder or a name in ``checkpoints/``."""
    run_dir = Path(run_dir)
    found = list_checkpoints(run_dir, marker)
    if checkpoint is None:
        if not found:
            raise TrainingError(f"{run_dir}: no checkpoint to export yet; train at least one step first.")
        return found[-1]
    for cand in (Path(checkpoint).expanduser(), run_dir / CHECKPOINTS_DIR / checkpoint):
        if (cand / marker).is_file():
            return cand
    raise TrainingError(f"--checkpoint {checkpoint}: not a checkpoint of {run_dir} (no {marker}); choose one of "
                        f"{[p.name for p in found]}.")


def prune_checkpoints(run_dir: str | os.PathLike, keep: int, marker: str) -> None:
    """Remove all but the newest ``keep`` checkpoints."""
    for old in list_checkpoints(run_dir, marker)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)


def _write_atomic(path: Path, text: str) -> None:
    with atomic_write(path, "w") as f:
        f.write(text)


class MetricsLogger:
    """Append scalars to ``metrics.csv`` and TensorBoard; a no-op on non-main ranks.

    The CSV's columns are fixed by the first row written; later keys that were not in it are
    dropped from the CSV (TensorBoard still gets them). On resume, rows past the resumed step are
    removed first, so a crash between a log and a checkpoint does not leave duplicate steps.
    ``filename`` / ``tensorboard_run``: another CSV and TensorBoard run (a subfolder of ``tensorboard/``)
    for other scalars of the same run, e.g. validation under the training losses' own names, so
    TensorBoard draws the two curves on one chart.
    """

    def __init__(self, run_dir: str | os.PathLike, enabled: bool = True, resume_step: int | None = None,
                 tensorboard: bool = True, filename: str = METRICS_FILE, tensorboard_run: str | None = None):
        self.enabled = enabled
        self.path = Path(run_dir) / filename
        self._t0 = time.perf_counter()
        self._offset = 0.0
        self._columns: list[str] | None = None
        self._tb = None
        if not enabled:
            return
        if self.path.is_file():
            with self.path.open(newline="") as f:
                rows = list(csv.DictReader(f))
            if rows:
                self._columns = list(rows[0].keys())
            keep = [r for r in rows if resume_step is not None and int(r["step"]) <= resume_step]
            if keep:
                self._offset = float(keep[-1].get("seconds") or 0.0)
            if len(keep) != len(rows):
                with self.path.open("w", newline="") as f:
                    writer = csv.DictWriter(f, fieldnames=self._columns or ["step"])
                    writer.writeheader()
                    writer.writerows(keep)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is in the train extra; the CSV is enough without it
                SummaryWriter = None
            if SummaryWriter is not None:
                self._tb = SummaryWriter(str(Path(run_dir) / "tensorboard" / (tensorboard_run or "")))

    def log(self, step: int, values: Mapping[str, float]) -> None:
        if not self.enabled:
            return
        row = {"step": int(step), **{k: float(v) for k, v in values.items()},
               "seconds": round(self._offset + time.perf_counter() - self._t0, 3)}
        new_file = not self.path.is_file() or self.path.stat().st_size == 0
        if self._columns is None:
            self._columns = list(row)
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self._columns, extrasaction="ignore")
            if new_file:
                writer.writeheader()
            writer.writerow(row)
        if self._tb is not None:
            for k, v in values.items():
                self._tb.add_scalar(k, float(v), int(step))

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def read_metrics(run_dir: str | os.PathLike, filename: str = METRICS_FILE):
    """``metrics.csv`` of a run (or ``validation.csv``) as a pandas DataFrame (for plots and notebooks)."""
    import pandas as pd

    path = Path(run_dir) / filename
    if not path.is_file():
        what = "validated (--val-data)" if filename != METRICS_FILE else "logged a step"
        raise TrainingError(f"{run_dir}: no {filename} yet; has the run {what}?")
    return pd.read_csv(path)


def warmup_cosine(warmup_steps: int, max_steps: int, min_ratio: float, start: int = 0) -> Callable[[int], float]:
    """Both trainers' learning-rate factor of optimiser step ``step`` (from 0): a linear warm-up over
    ``warmup_steps``, then a cosine decay to ``min_ratio`` at ``max_steps``.

    ``start``: steps the model already trained with this schedule (a run continued from an export):
    the decay goes on from step ``start + step``, and the warm-up ramps up to that point.
    """
    def factor(step: int) -> float:
        ramp = (step + 1) / warmup_steps if step < warmup_steps else 1.0
        progress = min(1.0, max(0, step + start - warmup_steps) / max(1, max_steps - warmup_steps))
        return ramp * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))

    return factor


def validation_period(val_every: int | None, default: int) -> int:
    """``val_every`` checked (a step count >= 1), or ``default`` (the run's checkpoint period) when None."""
    if val_every is not None and val_every < 1:
        raise ConfigError(f"val_every must be >= 1, got {val_every}")
    return val_every or default


class Validation:
    """A run's held-out scores on one schedule for both trainers: at the start of a fresh run (step 0),
    every ``every`` steps and at the run's last step, each row in ``validation.csv`` and TensorBoard's
    ``validation`` run.

    ``score``: computes the held-out scores (on every rank: it may reduce across processes), or None
    when the run has no held-out data (every call then does nothing). Only ``enabled`` (the main
    process) writes.
    """

    def __init__(self, run_dir: str | os.PathLike, score: Callable[[], Mapping[str, float]] | None, every: int,
                 enabled: bool = True, resume_step: int | None = None):
        self.score, self.every, self.enabled = score, every, enabled and score is not None
        self.logger = MetricsLogger(run_dir, enabled=self.enabled, resume_step=resume_step,
                                    filename=VALIDATION_FILE, tensorboard_run="validation")

    def start(self, step: int) -> None:
        """Before the first training step: score a fresh run's starting point (a resumed one has it)."""
        if step == 0:
            self._run(step)

    def after(self, step: int, last: bool) -> None:
        """After training step ``step`` (``last``: the run stops after it)."""
        if step % self.every == 0 or last:
            self._run(step)

    def _run(self, step: int) -> None:
        if self.score is None:
            return
        values = self.score()
        self.logger.log(step, values)
        if self.enabled:
            log.info("step %d validation: %s", step, ", ".join(f"{k} {v:.4f}" for k, v in values.items()))

    def close(self) -> None:
        self.logger.close()


def accelerate_precision(precision: str, device: str | None) -> str:
    """A config's precision (``auto``, ``fp32``/``no``, ``bf16``, ``fp16``) as accelerate's ``mixed_precision``.

    ``auto``: bf16 on a GPU that has it, else none. fp16 needs a GPU; bf16 on a CPU without bf16 hardware
    trains, with a warning of what it costs.
    """
    import torch

    from ..device import native_bf16

    on_gpu = torch.cuda.is_available() and device != "cpu"
    if precision == "auto":
        return "bf16" if on_gpu and torch.cuda.is_bf16_supported() else "no"
    if precision == "fp16" and not on_gpu:
        raise ConfigError("precision 'fp16' needs a GPU; use precision: bf16, fp32 or auto on CPU")
    if precision == "bf16" and not on_gpu and not native_bf16(torch.device("cpu")):
        # Measured with benchmarks/train_lm.py (small preset, 1 thread, torch 2.14.1) on an AVX2-only AMD
        # EPYC: 63 tokens/s under bf16 autocast against 1,168 in float32.
        log.warning("precision bf16 on a CPU without AVX-512 BF16 or AMX: torch emulates bf16 matrix "
                    "products there, about 18x slower than float32; use precision: fp32 or auto on this CPU")
    return {"fp32": "no"}.get(precision, precision)


class Deadline:
    """A wall-clock budget for a training loop (``max_time`` seconds; None: none), the same on every process.

    ``reached(acc)`` is true on every rank once any rank is past the budget (one reduction a step,
    only when a budget is set), so all processes stop at the same step and write one checkpoint.
    """

    def __init__(self, max_time: float | None):
        if max_time is not None and max_time <= 0:
            raise ConfigError(f"max_time must be a positive number of seconds, got {max_time}")
        self.max_time = max_time
        self.start = time.monotonic()

    def reached(self, acc: Any) -> bool:
        if self.max_time is None:
            return False
        import torch

        late = torch.tensor(float(time.monotonic() - self.start >= self.max_time), device=acc.device)
        return bool(acc.reduce(late, reduction="sum") > 0)


def make_accelerator(precision: str, device: str | None = None, grad_accum_steps: int = 1,
                     find_unused_parameters: bool = False) -> Any:
    """A fresh ``accelerate.Accelerator`` with this run's precision (:func:`accelerate_precision`) and
    accumulation; ``device="cpu"`` forces the CPU, None lets accelerate pick (this rank's GPU if any)."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    reset_accelerator_state()
    handlers = [DistributedDataParallelKwargs(find_unused_parameters=True)] if find_unused_parameters else []
    return Accelerator(cpu=device == "cpu", mixed_precision=accelerate_precision(precision, device),
                       gradient_accumulation_steps=grad_accum_steps, kwargs_handlers=handlers)


def reset_accelerator_state() -> None:
    """Let the next ``accelerate.Accelerator`` take its own precision and accumulation settings.

    accelerate keeps one process-wide state and refuses a second Accelerator with another precision or
    accumulation; a notebook (or a test) runs several trainings in one process, each with its own
    config. The distributed part (PartialState: process group, ranks) is kept.
    """
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()
