"""Codec training speed: optimiser steps per second at a preset (default ``small``) on CPU.

    python benchmarks/train_codec.py                       # small preset, CPU, 1 thread, 12 steps
    python benchmarks/train_codec.py --preset tiny --steps 30 --threads 1
    python benchmarks/train_codec.py --data manifest.jsonl --json results_train_codec_cpu.json

Every step is a full step of the recipe: the speaker path and the discriminators are switched on
from step 0 (the presets switch them on later), so the number is the steady-state cost. The first
``--warmup`` steps (allocation, first-call overheads) are left out of the rate, which is read from
the run's own ``metrics.csv`` (its ``seconds`` column). Without ``--data`` a few seconds of synthetic
voiced audio are written to a temporary folder: the speed does not depend on what the audio says.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np


def synthetic_manifest(folder: Path, clips: int = 4, seconds: float = 8.0) -> Path:
    """``clips`` voiced-like clips (a wobbling harmonic tone with noise), 16 kHz, and their manifest."""
    import soundfile

    rng = np.random.default_rng(0)
    lines = []
    for i in range(clips):
        t = np.arange(int(seconds * 16000)) / 16000
        f0 = 110 + 40 * i
        phase = 2 * np.pi * f0 * t + 2 * np.sin(2 * np.pi * 1.5 * t)
        wav = sum(np.sin(k * phase) / k for k in range(1, 6)) * 0.15 + 0.01 * rng.standard_normal(t.size)
        path = folder / f"clip{i}.wav"
        soundfile.write(path, wav.astype(np.float32), 16000)
        lines.append(json.dumps({"audio": path.name, "text": "", "speaker": f"s{i}", "lang": "en"}))
    manifest = folder / "manifest.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="small", help="codec training preset or YAML (default: small)")
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--warmup", type=int, default=2, help="steps left out of the rate")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: steadiest on a shared machine)")
    p.add_argument("--data", default=None, help="manifest JSONL (default: synthetic clips)")
    p.add_argument("--json", default=None, help="also write the result here")
    args = p.parse_args(argv)
    if args.steps <= args.warmup:
        p.error("--steps must exceed --warmup")
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    from sparktts.train.codec import train_codec
    from sparktts.train.codec.config import CodecTrainConfig, validate
    from sparktts.train.config import from_dict, read_config_source

    raw, where = read_config_source(args.preset, "codec")
    raw = {**raw, "speaker_start_step": 0, "log_every": 1, "checkpoint_every": 10**9, "max_steps": args.steps}
    raw["discriminator"] = {**raw.get("discriminator", {}), "start_step": 0}
    raw["data"] = {**raw.get("data", {}), "num_workers": 0}
    cfg = validate(from_dict(CodecTrainConfig, raw, where), where)
    with tempfile.TemporaryDirectory(prefix="bench-codec-") as tmp:
        data = Path(args.data) if args.data else synthetic_manifest(Path(tmp))
        run = train_codec(cfg, data, Path(tmp) / "run", device="cpu")
        with (run / "metrics.csv").open(newline="") as f:
            rows = list(csv.DictReader(f))
    t0, t1 = float(rows[args.warmup - 1]["seconds"]), float(rows[-1]["seconds"])
    measured = len(rows) - args.warmup
    codec = cfg.bicodec()
    result = {
        "preset": args.preset, "device": "cpu", "threads": args.threads, "steps_measured": measured,
        "steps_per_s": round(measured / (t1 - t0), 4), "s_per_step": round((t1 - t0) / measured, 3),
        "batch_size": cfg.data.batch_size, "segment_seconds": cfg.data.segment_seconds,
        "ref_seconds": cfg.data.ref_seconds,
        "codec_parameters": sum(p.numel() for p in _model(codec).parameters()),
        "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


def _model(codec_config):
    from sparktts.codec.bicodec import BiCodec

    return BiCodec(codec_config)


if __name__ == "__main__":
    sys.exit(main())
