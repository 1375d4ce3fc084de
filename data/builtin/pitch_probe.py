"""Do a codec's tokens carry the pitch? A linear probe from its latents to each frame's log F0.

    python data/builtin/pitch_probe.py CODEC CORPUS/heldout.jsonl [--clips 40]

For each held-out clip: the quantized latent ``z_q`` (what the semantic tokens give the decoder) and the
encoder's latent before the VQ, frame by frame, against YIN's log F0 of the clip's voiced frames
(``sparktts.train.codec.pitch``). A ridge regression is fitted on three clips in four and scored on the
fourth (R² on held-out clips), once on log F0 and once on log F0 minus its clip's mean (the intonation,
which the global tokens cannot give). R² near 0: the decoder gets no pitch from the tokens, and its
best answer under a mel loss is a noise-excited envelope. One thread, a minute for 40 clips.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def probe_r2(features: np.ndarray, target: np.ndarray, groups: np.ndarray, ridge: float = 1e-2) -> float:
    """R² of a ridge regression ``features (n, d) -> target (n,)`` fitted on the groups ``g % 4 != 0``
    and scored on the others (standardised features, an intercept)."""
    x = (features - features.mean(0)) / (features.std(0) + 1e-6)
    x = np.c_[x, np.ones(len(x))]
    train, test = groups % 4 != 0, groups % 4 == 0
    w = np.linalg.solve(x[train].T @ x[train] + ridge * np.eye(x.shape[1]), x[train].T @ target[train])
    err = target[test] - x[test] @ w
    return float(1 - (err ** 2).mean() / target[test].var())


def probe(codec: str | Path, heldout: str | Path, clips: int = 40) -> dict[str, float]:
    import torch

    from sparktts import BiCodecTokenizer
    from sparktts.train.codec.pitch import yin_pitch

    tok = BiCodecTokenizer.from_pretrained(codec, device="cpu")
    heldout = Path(heldout)
    rows = [json.loads(x) for x in heldout.read_text().splitlines() if x.strip()][:clips]
    zq, z, logf0, groups = [], [], [], []
    for i, row in enumerate(rows):
        a = tok.analyze(heldout.parent / row["audio"])
        with torch.inference_mode():
            q = tok.model.quantizer.detokenize(a.tokens.semantic_ids.long())[0].T.numpy()  # (T, D)
        frames = q.shape[0]
        f0, voiced = (x[0].numpy() for x in yin_pitch(torch.from_numpy(a.wav)[None], frames))
        zq.append(q[voiced]), z.append(a.z[0].T.numpy()[:frames][voiced])
        logf0.append(np.log(f0[voiced])), groups.append(np.full(int(voiced.sum()), i))
    zq, z, y, g = (np.concatenate(v) for v in (zq, z, logf0, groups))
    intonation = y - np.array([y[g == k].mean() for k in g])
    return {"frames": len(y), "z_q": probe_r2(zq, y, g), "z_q_intonation": probe_r2(zq, intonation, g),
            "pre_vq": probe_r2(z, y, g), "pre_vq_intonation": probe_r2(z, intonation, g)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("codec", help="a release or codec export (config.yaml, BiCodec/, wav2vec2-large-xlsr-53/)")
    p.add_argument("heldout", help="the corpus's heldout.jsonl")
    p.add_argument("--clips", type=int, default=40)
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)  # beside a training run
    for k, v in probe(args.codec, args.heldout, args.clips).items():
        print(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
