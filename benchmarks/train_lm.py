"""Training speed of the LM trainer: optimiser steps per second at a preset (default ``small``) on CPU.

    python benchmarks/train_lm.py                          # small preset, CPU, 2 threads
    python benchmarks/train_lm.py --preset tiny --steps 10 # a smoke run
    python benchmarks/train_lm.py --device cuda --preset release --steps 20

The data folder is synthetic (random global / semantic tokens with labels, written in the
``sparktts prepare`` shard format), so the benchmark needs no audio and no codec: it times exactly the
trainer (collation, forward, backward, optimiser) on realistic sequence lengths (``--seconds`` of speech
per clip = 50 semantic tokens a second). The first ``--warmup`` steps are not timed. Results go to
``benchmarks/results_train_lm_<device>.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def synthetic_data(folder: Path, clips: int, seconds: float, seed: int = 0) -> Path:
    """A data folder of random tokens in the prepare format (``info.json`` + shards + ``clips.jsonl``)."""
    from sparktts.data.shards import INFO_FILE, shard_path, write_shard

    rng = np.random.default_rng(seed)
    rows, glob, sem = [], [], []
    for i in range(clips):
        n = int(50 * seconds * rng.uniform(0.7, 1.3))
        rows.append({"id": f"syn{i:05d}", "audio": "", "duration": n / 50, "text": "the quick brown fox jumps over "
                     "the lazy dog", "speaker": f"s{i % 8}", "lang": "en", "gender": ("female", "male")[i % 2],
                     "pitch": "moderate", "speed": "moderate", "pitch_value": int(rng.integers(150, 350)),
                     "speed_value": int(rng.integers(2, 7)), "num_semantic": n})
        glob.append(rng.integers(0, 4096, 32).tolist())
        sem.append(rng.integers(0, 8192, n).tolist())
    write_shard(shard_path(folder, 0), rows, glob, sem, [], 32)
    (folder / "clips.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / INFO_FILE).write_text(json.dumps({"model_dir": None, "num_globals": 32, "clips": clips}))
    return folder


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="small")
    p.add_argument("--steps", type=int, default=20, help="timed steps")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--seconds", type=float, default=4.0, help="speech per clip (sets the sequence length)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--precision", default=None, choices=["auto", "fp32", "bf16", "fp16"],
                   help="override the preset's precision (bf16 autocast on a CPU is fast only with AMX)")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    from transformers import AutoTokenizer

    from sparktts.data.shards import read_tokenized
    from sparktts.train.config import load_config
    from sparktts.train.lm.config import LMTrainConfig
    from sparktts.train.lm.data import build_examples
    from sparktts.train.lm.trainer import BASE_DIR, LMTrainer, build_model, write_base

    cfg = load_config(LMTrainConfig, args.preset, "lm")
    cfg = dataclasses.replace(cfg, max_steps=max(cfg.max_steps, args.steps + args.warmup),
                              precision=args.precision or cfg.precision)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = synthetic_data(tmp / "data", clips=cfg.batch_size * (args.steps + args.warmup), seconds=args.seconds)
        base = tmp / BASE_DIR
        write_base(base, cfg, None)
        tokenizer = AutoTokenizer.from_pretrained(str(base))
        examples, stats = build_examples(read_tokenized(data), tokenizer, cfg.tasks, cfg.max_length, 32)
        model = build_model(base, cfg, None)
        n_params = sum(p.numel() for p in model.parameters())
        trainer = LMTrainer(cfg, examples, model, tokenizer.pad_token_id, device=args.device)
        for _ in range(args.warmup):
            trainer.train_step()
        tokens = 0.0
        t0 = time.perf_counter()
        for _ in range(args.steps):
            tokens += sum(len(e.input_ids) for e in trainer.global_batch(trainer.step))
            trainer.train_step()
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
    result = {
        "preset": args.preset, "device": args.device, "threads": args.threads, "precision": cfg.precision,
        "parameters": n_params,
        "batch_size": cfg.batch_size, "mean_sequence_tokens": tokens / (args.steps * cfg.batch_size),
        "steps": args.steps, "seconds": round(dt, 3), "steps_per_s": round(args.steps / dt, 4),
        "tokens_per_s": round(tokens / dt, 1), "skipped_too_long": stats.skipped_too_long,
        "torch": torch.__version__, "python": sys.version.split()[0], "machine": platform.machine(),
    }
    out = Path(args.out or Path(__file__).with_name(f"results_train_lm_{args.device.split(':')[0]}.json"))
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
