"""Has an LLM learnt to read its text? Held-out cloning loss with each clip's own text vs another clip's.

    python data/builtin/lm_alignment.py RELEASE HELDOUT_DATA_DIR

``HELDOUT_DATA_DIR`` is a ``sparktts prepare`` folder of held-out clips made with the release's codec
(``--no_labels`` is enough). Before the model attends to the text, both losses are the same; the gap
(nats per target token) grows as it learns to read. It is :func:`sparktts.train.lm.validation.release_validation`,
what ``sparktts train lm --val-data`` logs during training, for an exported model.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from sparktts.train.lm.validation import release_validation

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("release", help="a release folder (LLM/ is read)")
    p.add_argument("data_dir", help="prepared held-out clips (same codec)")
    args = p.parse_args(argv)
    v = release_validation(args.release, args.data_dir)
    print(f"held-out clone loss: right text {v['loss_clone']:.4f}, wrong text {v['loss_clone_wrong_text']:.4f}, "
          f"gap {v['text_gap']:.4f} nats/token")
    return 0


if __name__ == "__main__":
    sys.exit(main())
