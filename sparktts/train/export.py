"""``sparktts export RUN_DIR --out MODEL_DIR [--codec CODEC] [--dtype bfloat16]``: a run -> a release directory.

A codec run exports ``config.yaml``, ``BiCodec/`` and ``wav2vec2-large-xlsr-53/``; an LM run exports
``LLM/`` next to the codec its data was tokenized with, so the result is a complete release that
``SparkTTS.from_pretrained`` and both CLIs load like the published one.
"""

from __future__ import annotations

import argparse
import importlib
import os
from pathlib import Path

from .run import TrainingError, read_run_info

_EXPORTERS = {"codec": "sparktts.train.codec.export", "lm": "sparktts.train.lm.export"}


DTYPES = ("float32", "bfloat16", "float16")


def export_run(run_dir: str | os.PathLike, out: str | os.PathLike, checkpoint: str | None = None,
               codec: str | os.PathLike | None = None, dtype: str = "float32") -> Path:
    """Write the release directory ``out`` from the run in ``run_dir`` (its latest checkpoint by default).

    ``codec`` (LM runs): ship this codec release instead of the one the data was prepared with, if it
    tokenizes exactly as that one (:func:`sparktts.train.lm.export.tokenizer_difference`).
    ``dtype``: store the float32 weights as ``bfloat16`` or ``float16`` (half the bytes; every loader
    computes in its own dtype, so a model stored so loads as before, its weights rounded).
    """
    info = read_run_info(run_dir)
    kind = info.get("kind")
    if kind not in _EXPORTERS:
        raise TrainingError(f"{run_dir}: unknown run kind {kind!r} in run.json; expected one of {sorted(_EXPORTERS)}.")
    if dtype not in DTYPES:
        raise TrainingError(f"--dtype {dtype!r}: choose one of {list(DTYPES)}.")
    if codec is not None and kind != "lm":
        raise TrainingError(f"{run_dir}: --codec applies to LM runs (it swaps the codec shipped beside the LLM); "
                            f"this is a {kind} run.")
    exporter = importlib.import_module(_EXPORTERS[kind])
    options = {} if codec is None else {"codec": codec}
    out = Path(out).expanduser()
    if dtype == "float32":
        return exporter.export(Path(run_dir), out, checkpoint=checkpoint, **options)
    import torch

    from ..checkpoint import cast_weights
    from ..fileio import atomic_dir

    if out.exists() and any(out.iterdir()):
        raise TrainingError(f"{out}: exists and is not empty; export to a new --out (or remove it first).")
    with atomic_dir(out) as tmp:  # cast before the release appears under its name
        exporter.export(Path(run_dir), tmp, checkpoint=checkpoint, **options)
        cast_weights(tmp, getattr(torch, dtype))
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", default=None, help="Checkpoint folder to export (default: the latest)")
    p.add_argument("--codec", default=None,
                   help="LM runs: ship this codec release (a decoder trained on with its tokenizer side frozen) "
                        "instead of the one the data was prepared with; refused unless it gives the same tokens")
    p.add_argument("--dtype", default="float32", choices=DTYPES,
                   help="store the weights in this dtype (bfloat16: half the bytes, loaded as before)")


def run(args: argparse.Namespace) -> str:
    return str(export_run(args.run_dir, args.out, checkpoint=args.checkpoint, codec=args.codec, dtype=args.dtype))
