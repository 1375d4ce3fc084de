"""Training sequences for the LM, built by the same prompt code as inference, and their collation.

Each prepared clip gives one example per task:

* **clone**: ``build_clone_prompt(text, global_ids)`` + ``build_clone_target(semantic_ids)``;
* **create**: ``build_create_prompt(text, gender, pitch, speed)`` + ``build_create_target(pitch_value,
  speed_value, global_ids, semantic_ids)`` (clips without labels get no create example).

The prompt is tokenised exactly as :class:`sparktts.generation.SpeechGenerator` tokenises prompts
(``tokenizer(prompt, add_special_tokens=True)``), the target without special tokens, and the two id lists
are concatenated; every Spark-TTS token is one added token, so this equals tokenising the joined string.
The loss covers the target only: labels are -100 on the prompt and on padding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from sparktts.data.shards import TokenizedClip
from sparktts.format.prompts import build_clone_prompt, build_clone_target, build_create_prompt, build_create_target

__all__ = ["IGNORE_INDEX", "ExampleStats", "TrainingExample", "build_examples", "collate", "example_strings"]

IGNORE_INDEX = -100  # the label torch's cross-entropy skips
TASK_IDS = {"clone": 0, "create": 1}


@dataclass(frozen=True)
class TrainingExample:
    """One training sequence.

    Attributes:
        clip_id / task: where it comes from ("clone" or "create").
        prompt / target: the strings (prompt = what inference sends, target = what the LM must write).
        input_ids: prompt ids followed by target ids.
        num_prompt: how many leading ids are prompt (their labels are -100).
    """

    clip_id: str
    task: str
    prompt: str
    target: str
    input_ids: tuple[int, ...]
    num_prompt: int

    @property
    def num_target(self) -> int:
        return len(self.input_ids) - self.num_prompt


@dataclass
class ExampleStats:
    """Counts of what :func:`build_examples` kept and skipped."""

    examples: dict[str, int] = field(default_factory=lambda: {"clone": 0, "create": 0})
    skipped_too_long: int = 0
    skipped_no_labels: int = 0
    max_length_seen: int = 0


def example_strings(clip: TokenizedClip, task: str, end: str, num_globals: int | None = None) -> tuple[str, str] | None:
    """``(prompt, target)`` of one clip for ``task``; None for "create" when the clip lacks labels."""
    row = clip.row
    if task == "clone":
        prompt = build_clone_prompt(row["text"], clip.global_ids, expected_globals=num_globals)
        return prompt, build_clone_target(clip.semantic_ids, end)
    if any(row.get(k) is None for k in ("gender", "pitch", "speed", "pitch_value", "speed_value")):
        return None
    prompt = build_create_prompt(row["text"], row["gender"], row["pitch"], row["speed"])
    target = build_create_target(row["pitch_value"], row["speed_value"], clip.global_ids, clip.semantic_ids,
                                 end, expected_globals=num_globals)
    return prompt, target


def build_examples(clips: Sequence[TokenizedClip], tokenizer: Any, tasks: Sequence[str], max_length: int,
                   num_globals: int | None = None) -> tuple[list[TrainingExample], ExampleStats]:
    """Training examples of every clip and task, in clip order (clone before create for each clip).

    Examples longer than ``max_length`` tokens are skipped whole (never cut inside the target) and counted.
    The end token is the tokenizer's eos (``<|im_end|>`` for the release).
    """
    stats = ExampleStats()
    end = tokenizer.eos_token
    pending: list[tuple[str, str, str, str]] = []
    for clip in clips:
        for task in tasks:
            strings = example_strings(clip, task, end, num_globals)
            if strings is None:
                stats.skipped_no_labels += 1
                continue
            pending.append((clip.row["id"], task, *strings))
    if not pending:
        return [], stats
    # The same call SpeechGenerator.encode_prompts makes (batched, unpadded); targets have no specials.
    prompt_ids = tokenizer([p[2] for p in pending], add_special_tokens=True)["input_ids"]
    target_ids = tokenizer([p[3] for p in pending], add_special_tokens=False)["input_ids"]
    examples: list[TrainingExample] = []
    for (clip_id, task, prompt, target), p_ids, t_ids in zip(pending, prompt_ids, target_ids):
        n = len(p_ids) + len(t_ids)
        stats.max_length_seen = max(stats.max_length_seen, n)
        if n > max_length:
            stats.skipped_too_long += 1
            continue
        examples.append(TrainingExample(clip_id, task, prompt, target, tuple(p_ids) + tuple(t_ids), len(p_ids)))
        stats.examples[task] += 1
    return examples, stats


def collate(examples: Sequence[TrainingExample], pad_id: int) -> dict[str, Tensor]:
    """Right-padded batch.

    Returns:
        ``input_ids`` (B, L) int64, ``attention_mask`` (B, L) int64 (0 on padding), ``labels`` (B, L)
        int64 (the input ids on target positions, -100 on prompt and padding), ``task`` (B,) int64
        (0 clone, 1 create).
    """
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.int64)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.int64)
    mask = torch.zeros((len(examples), width), dtype=torch.int64)
    for i, e in enumerate(examples):
        row = torch.tensor(e.input_ids, dtype=torch.int64)
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
        labels[i, e.num_prompt: len(row)] = row[e.num_prompt:]
    task = torch.tensor([TASK_IDS[e.task] for e in examples], dtype=torch.int64)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels, "task": task}
