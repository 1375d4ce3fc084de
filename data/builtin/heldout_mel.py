"""Held-out mel loss of a codec run's checkpoints beside the export it started from: a cheap validation.

    python data/builtin/heldout_mel.py RUN HELDOUT_JSONL [--every 10] [--checkpoints step_00000500 ...]

The trainer's own multi-resolution mel loss (``loss.mel_windows`` / ``mel_bins`` of the run's config) on
whole held-out clips (every ``--every``-th line of the list), for the run's ``init`` (``run.json``) and
each checkpoint (default: all kept). Training batches are random 1.28 s crops whose loss moves by more
than a decoder run changes it; this is the same clips every time. One thread, about a minute for 20
clips, so it runs beside training. Whisper's verdict stays ``build.py``'s codec eval at each export.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def heldout_mel(run: Path, heldout: Path, every: int = 10, checkpoints: list[str] | None = None) -> dict[str, float]:
    """``{"init": loss, "<checkpoint>": loss, ...}``: mean mel loss over the chosen held-out clips."""
    import soundfile as sf
    import torch

    from sparktts.checkpoint import read_state_dict
    from sparktts.train.codec.config import load_codec_config
    from sparktts.train.codec.export import MODEL_FILE
    from sparktts.train.codec.features import FeatureStage
    from sparktts.train.codec.losses import MultiResolutionMelLoss
    from sparktts.train.codec.model import CodecTrainModel, build_codec
    from sparktts.train.codec.trainer import list_checkpoints
    from sparktts.train.run import read_run_info

    cfg = load_codec_config(run / "config.yaml")
    init = read_run_info(run).get("init")
    if cfg.wav2vec2.trainable:
        raise SystemExit(f"{run}: its wav2vec2 trains with the codec; this check is for runs with a frozen one")
    stage = FeatureStage.build(cfg.wav2vec2).eval()
    mel = MultiResolutionMelLoss(16000, cfg.loss.mel_windows, cfg.loss.mel_bins)
    rows = [json.loads(line) for line in heldout.read_text().splitlines() if line.strip()][::every]
    hop = cfg.bicodec().hop_length
    clips = []
    for row in rows:
        wav, sr = sf.read(heldout.parent / row["audio"], dtype="float32")
        if sr != 16000:
            raise SystemExit(f"{row['audio']}: {sr} Hz; the held-out list must be 16 kHz (the corpus is)")
        clips.append(torch.from_numpy(wav[: len(wav) // hop * hop])[None])

    @torch.no_grad()
    def score(codec) -> float:
        codec.eval()
        losses = []
        for wav in clips:
            out = codec(stage(stage.aligned_input(wav)), wav)
            losses.append(float(mel(out.wav, wav[:, None, : out.wav.shape[-1]])))
        return sum(losses) / len(losses)

    scores = {}
    if init is not None:
        scores["init"] = score(build_codec(cfg, init))
    kept = list_checkpoints(run)
    for ckpt in kept if checkpoints is None else [run / "checkpoints" / c for c in checkpoints]:
        model = CodecTrainModel.build(cfg, build_codec(cfg, init), None)
        model.load_state_dict(read_state_dict(ckpt / MODEL_FILE), strict=True)
        scores[ckpt.name] = score(model.codec)
    return scores


def main(argv: list[str] | None = None) -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run", type=Path)
    p.add_argument("heldout", type=Path)
    p.add_argument("--every", type=int, default=10, help="every N-th held-out clip (default 10: 20 of 200)")
    p.add_argument("--checkpoints", nargs="*", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    for name, loss in heldout_mel(args.run, args.heldout, args.every, args.checkpoints).items():
        print(f"{name}\t{loss:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
