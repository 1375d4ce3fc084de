"""``sparktts prepare | train codec | train lm | export``: the training command line.

The contract scripts and CI rely on (options may be added, never removed)::

    sparktts prepare MANIFEST --model_dir DIR --out DATA_DIR
    sparktts train codec --config FILE|PRESET --data DATA --out RUN_DIR [--max-steps N] [--max-minutes M] [--resume]
    sparktts train lm --config FILE|PRESET --data DATA_DIR --out RUN_DIR [--init MODEL_DIR] [--max-steps N]
        [--max-minutes M] [--resume]
    sparktts export RUN_DIR --out MODEL_DIR

Each command is a thin wrapper: the module that does the work adds its own options
(``add_arguments``) and runs them (``run``), so the notebook, tests and CLI call the same functions.
The trainers run unchanged under ``accelerate launch -m sparktts.cli train ...`` or ``torchrun``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from sparktts.errors import SparkTTSError

__all__ = ["build_parser", "main"]

# command -> module with add_arguments(parser) and run(args) -> str
_MODULES = {
    "prepare": "sparktts.data.prepare",
    "codec": "sparktts.train.codec.trainer",
    "lm": "sparktts.train.lm.trainer",
    "export": "sparktts.train.export",
}


def _trainer_options(p: argparse.ArgumentParser, kind: str) -> None:
    p.add_argument("--config", required=True, help="YAML file or preset name: tiny, small, release")
    p.add_argument("--data", required=True, help="Data folder written by `sparktts prepare`"
                   + (" (or a manifest JSONL)" if kind == "codec" else ""))
    p.add_argument("--out", required=True, help="Run directory (checkpoints, metrics.csv, tensorboard/)")
    p.add_argument("--max-steps", "--max_steps", dest="max_steps", type=int, default=None,
                   help="Stop after this many optimiser steps (default: the config's)")
    p.add_argument("--resume", action="store_true", help="Continue the run in --out from its last checkpoint")
    p.add_argument("--max-minutes", "--max_minutes", dest="max_time", type=lambda m: float(m) * 60, default=None,
                   help="Also stop, with a checkpoint, after this many minutes of training (a session's budget)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sparktts", description="Spark-TTS training")
    sub = parser.add_subparsers(dest="command", required=True)

    prep = sub.add_parser("prepare", help="Manifest JSONL -> token shards and attribute labels")
    prep.add_argument("manifest", help="JSONL: audio, text, speaker, lang, optional gender/pitch/speed")
    prep.add_argument("--model_dir", required=True, help="Release whose audio tokenizer makes the tokens")
    prep.add_argument("--out", required=True, help="Data folder (resumable: rerun to continue)")

    train = sub.add_parser("train", help="Train the codec or the language model")
    which = train.add_subparsers(dest="kind", required=True)
    codec = which.add_parser("codec", help="Train BiCodec (from random weights or a release's BiCodec/)")
    _trainer_options(codec, "codec")
    lm = which.add_parser("lm", help="Train or fine-tune the LLM on prepared tokens")
    _trainer_options(lm, "lm")
    lm.add_argument("--init", default=None, help="Release (or LLM/ folder) to fine-tune; default: from scratch")

    export = sub.add_parser("export", help="Run directory -> release directory")
    export.add_argument("run_dir")
    export.add_argument("--out", required=True, help="Release directory to write")

    for name, p in (("prepare", prep), ("codec", codec), ("lm", lm), ("export", export)):
        module = _load(name)
        if module is not None:
            module.add_arguments(p)
    return parser


def _load(name: str):
    try:
        return importlib.import_module(_MODULES[name])
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("sparktts"):
            raise
        # A missing training dependency: say which extra brings it, at run time.
        return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s - %(message)s")
    args = build_parser().parse_args(argv)
    name = args.kind if args.command == "train" else args.command
    try:
        module = importlib.import_module(_MODULES[name])
    except ModuleNotFoundError as exc:
        print(f"error: `sparktts {' '.join(argv[:2])}` needs {exc.name!r}; install the training extra: "
              f"pip install 'sparktts-lab[train]'", file=sys.stderr)
        return 2
    try:
        result = module.run(args)
    except SparkTTSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun with --resume to continue from the last checkpoint", file=sys.stderr)
        return 130
    if result:
        print(result)
    return 0
