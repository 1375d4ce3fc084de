"""Held-out validation of the LM: target-token loss per task, and whether it reads the text.

A falling training loss says little about a TTS language model: it can learn the codec's token
statistics and the voice from the global tokens without ever attending to the text. The **text gap**
measures the reading directly: the held-out cloning loss with each clip's texts swapped for another
clip's, minus the loss with the right texts (nats per target token). It is ~0 until the model reads,
and grows as the alignment forms.

Used by the trainer (``sparktts train lm --val-data HELDOUT``: ``validation.csv`` and TensorBoard's
``validation`` run) and on any exported model (:func:`release_validation`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sparktts.data.shards import TokenizedClip, read_data_info, read_tokenized
from sparktts.train.lm.data import TASK_IDS, TrainingExample, build_examples, collate
from sparktts.train.run import TrainingError

__all__ = ["HeldOut", "check_same_codec", "heldout_sums", "load_heldout", "release_validation", "summarize"]

log = logging.getLogger(__name__)

# Sums layout: (loss, tokens) of clone, create, and clone with another clip's text.
_WRONG = 2


@dataclass(frozen=True)
class HeldOut:
    """Held-out examples: ``examples`` (every task the run trains) and ``wrong_text`` (the cloning
    examples of the same clips, each with another clip's text; empty with fewer than two clips)."""

    examples: tuple[TrainingExample, ...]
    wrong_text: tuple[TrainingExample, ...]

    def __len__(self) -> int:
        return len(self.examples)


def _swap_texts(clips: Sequence[TokenizedClip], shift: int) -> list[TokenizedClip]:
    n = len(clips)
    return [dataclasses.replace(c, row={**c.row, "text": clips[(i + shift) % n].row["text"]})
            for i, c in enumerate(clips)]


def load_heldout(data: str | os.PathLike, tokenizer: Any, tasks: Sequence[str], max_length: int,
                 num_globals: int | None = None, shift: int = 7) -> HeldOut:
    """Examples of a ``sparktts prepare`` folder of held-out clips (same codec as the training data).

    Clips without labels give no "create" example. The wrong-text examples pair clip ``i``'s tokens with
    clip ``i + shift``'s text; the cloning examples of both sets are limited to the clips present in both
    (an example longer than ``max_length`` is dropped from both), so the gap compares the same targets.
    """
    clips = read_tokenized(data)
    if num_globals is None:
        num_globals = read_data_info(data).get("num_globals")
    examples, _ = build_examples(clips, tokenizer, tasks, max_length, num_globals)
    if "clone" not in tasks or len(clips) < 2:
        return HeldOut(tuple(examples), ())
    shift = shift % len(clips) or 1
    wrong, _ = build_examples(_swap_texts(clips, shift), tokenizer, ["clone"], max_length, num_globals)
    both = {e.clip_id for e in wrong} & {e.clip_id for e in examples if e.task == "clone"}
    return HeldOut(tuple(e for e in examples if e.task != "clone" or e.clip_id in both),
                   tuple(e for e in wrong if e.clip_id in both))


def check_same_codec(data_info: dict[str, Any], val_data: Path) -> None:
    """Held-out tokens must come from the training data's codec, or their losses mean nothing."""
    val_info = read_data_info(val_data)
    keys = ("num_globals", "semantic_codebook_size", "global_codebook_size", "sample_rate")
    differ = [k for k in keys if val_info.get(k) != data_info.get(k)]
    if differ:
        raise TrainingError(f"--val-data {val_data}: prepared with another codec than --data (differs in "
                            f"{differ}); prepare the held-out clips with the same --model_dir")
    if val_info.get("model_dir") != data_info.get("model_dir"):
        # A copy of the same codec is fine; another codec of the same sizes is not, and only looks alike.
        log.warning("--val-data was prepared with %s, --data with %s: make sure they are the same codec",
                    val_info.get("model_dir"), data_info.get("model_dir"))


@torch.no_grad()
def heldout_sums(loss_module: torch.nn.Module, heldout: HeldOut, pad_id: int, batch_size: int,
                 device: Any = "cpu", rank: int = 0, world: int = 1,
                 autocast: Any = contextlib.nullcontext) -> torch.Tensor:
    """(6,) float64 sums of this rank's share: loss and target tokens of clone, create, wrong-text clone.

    ``loss_module`` is a :class:`sparktts.train.lm.model.TargetLoss` (not DDP-wrapped: ranks hold
    different numbers of batches). Examples are batched by length, so little of a batch is padding.
    """
    sums = torch.zeros(6, dtype=torch.float64, device=device)
    was_training = loss_module.training
    loss_module.eval()
    try:
        for group, examples in enumerate((heldout.examples, heldout.wrong_text)):
            mine = sorted(examples[rank::world], key=lambda e: len(e.input_ids))
            for start in range(0, len(mine), batch_size):
                b = {k: v.to(device) for k, v in collate(mine[start: start + batch_size], pad_id).items()}
                with autocast():
                    s, n = loss_module(b["input_ids"], b["attention_mask"], b["labels"])
                for task in (0, 1):
                    slot = _WRONG if group else task
                    sel = b["task"] == task
                    sums[2 * slot] += s[sel].sum().double()
                    sums[2 * slot + 1] += n[sel].sum().double()
    finally:
        loss_module.train(was_training)
    return sums


def summarize(sums: torch.Tensor) -> dict[str, float]:
    """Mean losses from :func:`heldout_sums` (over all ranks): ``loss`` (every task), ``loss_clone``,
    ``loss_create``, ``loss_clone_wrong_text`` and ``text_gap`` (the last two where there are pairs)."""
    s = [float(x) for x in sums]
    out: dict[str, float] = {}
    if s[1] + s[3]:
        out["loss"] = (s[0] + s[2]) / (s[1] + s[3])
    for slot, name in ((TASK_IDS["clone"], "loss_clone"), (TASK_IDS["create"], "loss_create"),
                       (_WRONG, "loss_clone_wrong_text")):
        if s[2 * slot + 1]:
            out[name] = s[2 * slot] / s[2 * slot + 1]
    if "loss_clone_wrong_text" in out and "loss_clone" in out:
        out["text_gap"] = out["loss_clone_wrong_text"] - out["loss_clone"]
    return out


def release_validation(model_dir: str | os.PathLike, data: str | os.PathLike, tasks: Sequence[str] = ("clone",),
                       batch_size: int = 8, max_length: int = 1 << 16) -> dict[str, float]:
    """The same validation for an exported model: a release directory (its ``LLM/`` is read) or an ``LLM/``.

    ``data`` must be prepared with the release's codec; ``tasks`` ("clone", "create") as trained.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sparktts.train.lm.model import TargetLoss

    llm = Path(model_dir).expanduser()
    llm = llm / "LLM" if (llm / "LLM").is_dir() else llm
    tokenizer = AutoTokenizer.from_pretrained(str(llm))
    model = AutoModelForCausalLM.from_pretrained(str(llm), dtype=torch.float32)
    heldout = load_heldout(data, tokenizer, tasks, max_length)
    return summarize(heldout_sums(TargetLoss(model), heldout, tokenizer.pad_token_id, batch_size))
