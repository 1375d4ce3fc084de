"""Has an LLM learnt to read its text? Held-out cloning loss with each clip's own text vs another clip's.

    python data/builtin/lm_alignment.py RELEASE HELDOUT_DATA_DIR

``HELDOUT_DATA_DIR`` is a ``sparktts prepare`` folder of held-out clips made with the release's codec
(``--no_labels`` is enough). Before the model attends to the text, both losses are the same; the gap
(nats per target token) grows as it learns to read. Cheap enough to run beside a training run
(one thread, seconds for 30 clips).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys


def losses(release: str, data_dir: str, shift: int = 7) -> tuple[float, float]:
    """Mean target-token loss of the cloning layout with the right texts, and with texts shifted by ``shift``."""
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sparktts.data.shards import read_tokenized
    from sparktts.train.lm.data import build_examples

    tok = AutoTokenizer.from_pretrained(f"{release}/LLM")
    model = AutoModelForCausalLM.from_pretrained(f"{release}/LLM", dtype=torch.float32).eval()
    clips = read_tokenized(data_dir)
    wrong = [dataclasses.replace(c, row={**c.row, "text": clips[(i + shift) % len(clips)].row["text"]})
             for i, c in enumerate(clips)]

    def mean_loss(cs) -> float:
        examples, _ = build_examples(cs, tok, ["clone"], 1 << 16, len(cs[0].global_ids))
        total = count = 0.0
        for e in examples:
            ids = torch.tensor([e.input_ids])
            with torch.no_grad():
                logits = model(input_ids=ids).logits[0, e.num_prompt - 1: -1]
            total += F.cross_entropy(logits, ids[0, e.num_prompt:], reduction="sum").item()
            count += len(e.input_ids) - e.num_prompt
        return total / count

    return mean_loss(clips), mean_loss(wrong)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("release", help="a release folder (LLM/ is read)")
    p.add_argument("data_dir", help="prepared held-out clips (same codec)")
    args = p.parse_args(argv)
    right, wrong = losses(args.release, args.data_dir)
    print(f"held-out clone loss: right text {right:.4f}, wrong text {wrong:.4f}, gap {wrong - right:.4f} nats/token")
    return 0


if __name__ == "__main__":
    sys.exit(main())
