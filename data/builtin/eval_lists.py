"""The built-in model's evaluation lists, from the corpus's held-out sentences.

    python data/builtin/eval_lists.py --heldout CORPUS/heldout.jsonl --train CORPUS/manifest.jsonl --out DIR

Writes into ``DIR`` (paths in the lists are absolute):

* ``clone.jsonl``: each held-out sentence, to be spoken in the voice of its own held-out clip, cloned
  from one fixed training clip of that voice (the same prompt for every sentence of a voice, so the
  prompts are as many as the voices and ``--identify`` asks "which voice is this?"). ``gt_wav`` is
  espeak's own rendering of the sentence in that voice: scoring it (``python -m sparktts.eval score
  --wavs``) gives the ceiling of each figure.
* ``create.jsonl``: each held-out sentence with the gender, pitch and speed levels it was rendered at
  (voice creation; score with ``--control``).

The sentences are never trained on (the corpus keeps them apart); the prompt clips are training audio,
as a user's prompt would be a recording of a voice the model may know.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _abs(row: dict, manifest: Path) -> str:
    audio = Path(row["audio"])
    return str(audio if audio.is_absolute() else (manifest.parent / audio).resolve())


def build_lists(heldout: Path, train: Path, out: Path) -> tuple[Path, Path]:
    """Write ``clone.jsonl`` and ``create.jsonl`` into ``out``; returns their paths."""
    prompts: dict[str, dict] = {}
    for row in _rows(train):
        prompts.setdefault(row["speaker"], row)  # the first training clip of each voice
    clone, create = [], []
    for row in _rows(heldout):
        utt = row.get("utt") or Path(row["audio"]).stem
        prompt = prompts.get(row["speaker"])
        if prompt is None:
            raise SystemExit(f"{heldout}: voice {row['speaker']!r} has no training clip in {train} to clone from")
        clone.append({"utt": f"clone_{utt}", "text": row["text"], "lang": row.get("lang", "en"),
                      "prompt_wav": _abs(prompt, train), "gt_wav": _abs(row, heldout), "speaker": row["speaker"]})
        create.append({"utt": f"create_{utt}", "text": row["text"], "lang": row.get("lang", "en"),
                       "gender": row["gender"], "pitch": row["pitch"], "speed": row["speed"],
                       "gt_wav": _abs(row, heldout)})
    out.mkdir(parents=True, exist_ok=True)
    paths = out / "clone.jsonl", out / "create.jsonl"
    for path, rows in zip(paths, (clone, create)):
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return paths


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--heldout", required=True, type=Path, help="the corpus's heldout.jsonl")
    p.add_argument("--train", required=True, type=Path, help="the corpus's training manifest (prompt clips)")
    p.add_argument("--out", required=True, type=Path, help="folder for clone.jsonl and create.jsonl")
    args = p.parse_args(argv)
    for path in build_lists(args.heldout, args.train, args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
