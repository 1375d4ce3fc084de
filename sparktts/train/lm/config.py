"""The LM trainer's config: typed frozen dataclasses read from YAML or a preset (``tiny``, ``small``, ``release``).

``batch_size`` is the global batch (examples per optimiser step over all processes and accumulation
steps), so one config trains the same model on 1 CPU, 8 GPUs or 2 nodes: each process takes
``batch_size / (processes * grad_accum)`` examples per micro-step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sparktts.errors import ConfigError

__all__ = ["LMModelConfig", "LMTrainConfig", "LoraConfig", "TASKS"]

TASKS = ("clone", "create")
_PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class LMModelConfig:
    """Qwen2 dimensions for training from scratch (ignored with ``--init``, which brings its own).

    ``tokenizer``: a :mod:`sparktts.llm.factory` preset ("tiny": a small byte-level BPE; "full": padded so
    every Spark-TTS token has its released id) or a folder holding Spark-TTS tokenizer files (e.g. a
    release's ``LLM/``). ``vocab_size`` None = tokenizer size rounded up to ``vocab_multiple``.
    """

    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    intermediate_size: int = 192
    vocab_size: int | None = None
    vocab_multiple: int = 64
    max_position_embeddings: int = 32768
    rope_theta: float = 1_000_000.0
    rms_norm_eps: float = 1e-6
    tie_word_embeddings: bool = True
    tokenizer: str = "tiny"


@dataclass(frozen=True)
class LoraConfig:
    """Optional LoRA adapters (``peft``); exported models have them merged into the weights."""

    enabled: bool = False
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class LMTrainConfig:
    """Everything that decides what an LM run computes (the run directory records it as ``config.yaml``).

    Attributes:
        tasks: layouts trained jointly: "clone" (prompt up to the global tokens, target = semantic tokens +
            end) and "create" (style labels, target = pitch/speed values, globals, semantic tokens, end).
        max_length: longest training sequence in tokens; longer examples are skipped and counted.
        batch_size: global batch size (examples per optimiser step).
        grad_accum: micro-steps per optimiser step.
        lr / min_lr_ratio / warmup_steps: linear warm-up then cosine decay to ``lr * min_lr_ratio`` at
            ``max_steps`` (``--max-steps`` stops earlier without changing the schedule, so a run stopped
            and resumed follows the same curve).
        schedule_start: steps the model was already trained on this schedule (a run from a snapshot of
            another run, ``--init``): the decay goes on from there instead of restarting at ``lr``, and
            the run stops at ``max_steps - schedule_start`` steps of its own.
        group_by_length: batch examples of similar length (less padding; the order stays random).
        precision: "auto" (bf16 on a GPU that has it, else fp32), "fp32", "bf16" (autocast; on CPU too,
            where AVX-512 BF16 / AMX make it faster), "fp16" (GPU).
        save_every / keep_checkpoints: checkpoint period in steps, and how many to keep.
    """

    model: LMModelConfig = field(default_factory=LMModelConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    tasks: tuple[str, ...] = TASKS
    max_length: int = 2048
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 3e-4
    min_lr_ratio: float = 0.1
    warmup_steps: int = 0
    weight_decay: float = 0.01
    betas: tuple[float, ...] = (0.9, 0.95)
    grad_clip: float = 1.0
    max_steps: int = 1000
    schedule_start: int = 0
    group_by_length: bool = True
    precision: str = "auto"
    seed: int = 0
    log_every: int = 10
    save_every: int = 500
    keep_checkpoints: int = 2

    def __post_init__(self) -> None:
        bad = [t for t in self.tasks if t not in TASKS]
        if bad or not self.tasks:
            raise ConfigError(f"tasks {list(self.tasks)}: choose one or both of {list(TASKS)}")
        if self.precision not in _PRECISIONS:
            raise ConfigError(f"precision {self.precision!r}: choose one of {list(_PRECISIONS)}")
        for name in ("max_length", "batch_size", "grad_accum", "max_steps", "log_every", "save_every",
                     "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.schedule_start < self.max_steps:
            raise ConfigError(f"schedule_start ({self.schedule_start}: steps trained before this run) must lie in "
                              f"[0, max_steps {self.max_steps})")
        if self.batch_size % self.grad_accum:
            raise ConfigError(f"batch_size {self.batch_size} is not a multiple of grad_accum {self.grad_accum}")
        if len(self.betas) != 2:
            raise ConfigError(f"betas must be two numbers, got {list(self.betas)}")
