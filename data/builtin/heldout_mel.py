"""Held-out mel loss of a codec run's checkpoints beside the export it started from: a cheap validation.

    python data/builtin/heldout_mel.py RUN HELDOUT_JSONL [--clips 20] [--checkpoints step_00000500 ...]

What ``sparktts train codec --val-data`` logs while training (:mod:`sparktts.train.codec.validation`:
the trainer's own multi-resolution mel loss on whole held-out clips, spread over the list), here for the
run's ``init`` (``run.json``) and each kept checkpoint, for runs trained without ``--val-data`` or to
compare with where they started. One thread, about a minute for 20 clips, so it runs beside training.
Whisper's verdict stays ``build.py``'s codec eval at each export.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def heldout_mel(run: Path, heldout: Path, clips: int = 20, checkpoints: list[str] | None = None) -> dict[str, float]:
    """``{"init": loss, "<checkpoint>": loss, ...}``: mean mel loss over the chosen held-out clips."""
    import torch

    from sparktts.checkpoint import read_state_dict
    from sparktts.train.codec.config import load_codec_config
    from sparktts.train.codec.export import MODEL_FILE
    from sparktts.train.codec.features import FeatureStage
    from sparktts.train.codec.losses import MultiResolutionMelLoss
    from sparktts.train.codec.model import CodecTrainModel, build_codec
    from sparktts.train.codec.trainer import list_checkpoints
    from sparktts.train.codec.validation import heldout_mel_sums, load_validation_clips
    from sparktts.train.run import read_run_info

    cfg = load_codec_config(run / "config.yaml")
    init = read_run_info(run).get("init")
    frozen = None if cfg.wav2vec2.trainable else FeatureStage.build(cfg.wav2vec2).eval()
    mel = MultiResolutionMelLoss(16000, cfg.loss.mel_windows, cfg.loss.mel_bins)
    chosen = load_validation_clips(heldout, cfg, clips)

    def model():
        torch.manual_seed(cfg.seed)  # what the trainer draws: its init is the run's step 0
        codec = build_codec(cfg, init)
        return CodecTrainModel.build(cfg, codec, FeatureStage.build(cfg.wav2vec2) if frozen is None else None)

    def score(m) -> float:
        total, n = heldout_mel_sums(m, chosen, mel, frozen).tolist()
        return total / n

    scores = {}
    if init is not None:
        scores["init"] = score(model())
    for ckpt in list_checkpoints(run) if checkpoints is None else [run / "checkpoints" / c for c in checkpoints]:
        m = model()
        m.load_state_dict(read_state_dict(ckpt / MODEL_FILE), strict=True)
        scores[ckpt.name] = score(m)
    return scores


def main(argv: list[str] | None = None) -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run", type=Path)
    p.add_argument("heldout", type=Path)
    p.add_argument("--clips", type=int, default=20, help="held-out clips, spread over the list (default 20)")
    p.add_argument("--checkpoints", nargs="*", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    for name, loss in heldout_mel(args.run, args.heldout, args.clips, args.checkpoints).items():
        print(f"{name}\t{loss:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
