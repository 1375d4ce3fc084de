"""Loading the Spark-TTS language model (``LLM/``: a Qwen2.5-0.5B causal LM and its expanded tokenizer).

The original loads ``AutoTokenizer`` and ``AutoModelForCausalLM`` from ``{model_dir}/LLM`` with the
transformers defaults (float32 weights under transformers 4.x). :func:`load_llm` does the same, offline
(``local_files_only``), in eval mode, with a dtype option, and checks that the tokenizer really is a
Spark-TTS one and fits the model's embedding table, and that the weights are finite, so that a wrong or
damaged directory fails at load time with a message instead of producing garbage during generation:

* the tokenizer must round-trip a test string (an ``LLM/`` folder without ``tokenizer.json`` loads a
  tokenizer that encodes every text to no ids at all, so every text would give the same audio);
* every token the prompts and the output grammar use must be one known id: the semantic, global,
  pitch/speed value and label, gender, task and marker tokens and the end-of-sequence token;
* no weight may be NaN or infinite (sampling would fail deep inside ``torch.multinomial``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from sparktts import defaults
from sparktts.checkpoint import quiet_transformers_loading
from sparktts.errors import CheckpointError, ConfigError
from sparktts.format.tokens import (
    GLOBAL_CODEBOOK_SIZE,
    MARKER_TOKENS,
    PITCH_VALUE_MAX,
    SEMANTIC_CODEBOOK_SIZE,
    SPEED_VALUE_MAX,
    TASK_TOKEN_MAP,
)

__all__ = ["DTYPES", "QUANTIZE", "auto_kernel", "check_quantize", "load_llm", "resolve_dtype"]

# Names accepted for ``dtype`` (besides torch.dtype objects). "auto" keeps the checkpoint's own dtype.
DTYPES: dict[str, torch.dtype | str] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "auto": "auto",
}

# Encoded one by one as a spot check that prompt strings tokenise to the single ids (first / last of each range).
_REQUIRED_TOKENS = (
    "<|bicodec_semantic_0|>",
    "<|bicodec_semantic_8191|>",
    "<|bicodec_global_0|>",
    "<|bicodec_global_4095|>",
    "<|task_tts|>",
    "<|task_controllable_tts|>",
    "<|start_semantic_token|>",
    "<|end_global_token|>",
)


# Every token family prompts and the output grammar use: (format, count).
_GRAMMAR_TOKENS = (
    ("<|bicodec_semantic_{}|>", SEMANTIC_CODEBOOK_SIZE),
    ("<|bicodec_global_{}|>", GLOBAL_CODEBOOK_SIZE),
    ("<|pitch_value_{}|>", PITCH_VALUE_MAX + 1),
    ("<|speed_value_{}|>", SPEED_VALUE_MAX + 1),
    ("<|pitch_label_{}|>", 5),
    ("<|speed_label_{}|>", 5),
    ("<|gender_{}|>", 2),
)
_NAMED_TOKENS = (TASK_TOKEN_MAP["tts"], TASK_TOKEN_MAP["controllable_tts"], *MARKER_TOKENS)
# Text that any byte-level BPE of Qwen2's kind encodes and decodes unchanged (NFC, no clean-up spaces).
ROUND_TRIP_TEXT = "Hello, world! 123 你好，世界。"
_FIX = ("Use the release's LLM/ folder as it was downloaded (tokenizer.json, tokenizer_config.json, "
        "special_tokens_map.json, vocab.json, merges.txt).")


# None (float), the kernel schemes of sparktts.llm.kernels, and "auto" (the fastest 8-bit scheme on this CPU).
QUANTIZE = (None, *defaults.QUANTIZE)


def check_quantize(quantize: Any, device: str | torch.device = "cpu") -> str | None:
    """``quantize`` if :func:`load_llm` can do it on ``device`` (the one check of the option in the package)."""
    if quantize not in QUANTIZE:
        names = ", ".join(repr(q) for q in QUANTIZE[1:])
        raise ConfigError(f"quantize must be None or one of {names}, not {quantize!r}")
    if quantize and torch.device(device).type != "cpu":
        raise ConfigError(f"quantize={quantize!r} uses CPU kernels; on a GPU use dtype='bfloat16' instead.")
    return quantize


def auto_kernel(llm_dir: str | os.PathLike) -> Any:
    """The :class:`sparktts.llm.kernels.KernelChoice` ``quantize="auto"`` makes for this model on this CPU."""
    from transformers import AutoConfig

    from sparktts.llm.kernels import choose_scheme

    cfg = AutoConfig.from_pretrained(str(llm_dir), local_files_only=True)
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    return choose_scheme(cfg.hidden_size, cfg.intermediate_size, cfg.num_key_value_heads * head_dim,
                         cfg.num_hidden_layers)


def resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype | str:
    """``None`` -> float32 (the original's dtype); a name of :data:`DTYPES` or a floating torch.dtype as is.

    Raises:
        ConfigError: unknown name or a non-floating dtype.
    """
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        if not dtype.is_floating_point:
            raise ConfigError(f"dtype must be a floating-point dtype, got {dtype}")
        return dtype
    if isinstance(dtype, str):
        key = dtype.lower().removeprefix("torch.")
        if key in DTYPES:
            return DTYPES[key]
    raise ConfigError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)} or a torch.dtype")


def load_llm(
    llm_dir: str | os.PathLike,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype | None = None,
    quantize: str | None = None,
    **model_kwargs: Any,
) -> tuple[Any, Any]:
    """Load the tokenizer and the causal LM of a Spark-TTS ``LLM/`` directory.

    Args:
        llm_dir: the ``LLM`` directory of a release (config.json, model.safetensors, tokenizer files).
        device: where to put the model.
        dtype: weight dtype: None (float32, as the original), "bfloat16", "float16", "auto" (checkpoint
            dtype) or a torch.dtype. Half precision is for GPUs; on CPU it is slow.
        quantize: CPU only; None (float), "int8" (dynamic int8), "int8-weight" (int8 weights, bf16
            activations), "int4" (int4 weights in groups of 32, bf16 activations), "bf16" (bf16 weights and
            activations, no integer step) or "auto" (the fastest of bf16 and the 8-bit schemes, measured once
            per CPU: :func:`auto_kernel`). The linear layers are quantized
            tensor by tensor as the checkpoint is read (:func:`sparktts.llm.quantize.load_int8`);
            ``dtype`` is then ignored. The scheme used is ``model.sparktts_kernel``.
        **model_kwargs: passed to ``AutoModelForCausalLM.from_pretrained`` (e.g. ``attn_implementation``).

    Returns:
        ``(tokenizer, model)``; the model is in eval mode on ``device``. The tokenizer pads on the left,
        which batched generation needs.

    Raises:
        CheckpointError: the directory is missing or incomplete, transformers cannot load it, or the
            tokenizer lacks the Spark-TTS tokens / does not fit the model's vocabulary.
        ConfigError: unknown ``dtype`` or ``quantize``, or ``quantize`` on a GPU.
    """
    # Imported here: importing sparktts (codec only) should not pay for transformers' import time.
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(llm_dir)
    if not path.is_dir():
        raise CheckpointError(
            f"{path}: LLM directory not found. A Spark-TTS release has an LLM/ folder with config.json, "
            "model.safetensors and the tokenizer files; pass the release root to SparkTTS.from_pretrained."
        )
    missing = [name for name in ("config.json", "tokenizer_config.json") if not (path / name).is_file()]
    if missing:
        raise CheckpointError(f"{path}: incomplete LLM directory, missing {missing}; re-download the release.")
    check_quantize(quantize, device)
    torch_dtype = resolve_dtype(dtype)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception as exc:  # transformers raises OSError / ValueError / JSON errors for broken files
        raise CheckpointError(f"{path}: cannot load the tokenizer ({type(exc).__name__}: {exc})") from exc
    try:
        with quiet_transformers_loading():
            if quantize:
                from sparktts.llm.quantize import load_int8

                scheme, engine = quantize, None
                if quantize == "auto":
                    choice = auto_kernel(path)
                    scheme, engine = choice.scheme, choice.engine
                model = load_int8(path, scheme, engine)
            else:
                model = AutoModelForCausalLM.from_pretrained(
                    str(path), local_files_only=True, dtype=torch_dtype, **model_kwargs
                )
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointError(f"{path}: cannot load the language model ({type(exc).__name__}: {exc})") from exc
    _check_tokenizer(tokenizer, model, path)
    _check_finite(model, path)
    # Batched generation left-pads: every row's last prompt token then sits at the same position.
    tokenizer.padding_side = "left"
    return tokenizer, model.to(device).eval()


def _missing_tokens(tokenizer: Any) -> list[str]:
    """The grammar's tokens the tokenizer does not know, summarised per family (first and last missing)."""
    unk = getattr(tokenizer, "unk_token_id", None)
    missing: list[str] = []

    def unknown(names: list[str]) -> list[str]:
        ids = tokenizer.convert_tokens_to_ids(names)
        return [n for n, i in zip(names, ids) if i is None or i == unk or i < 0]

    for fmt, count in _GRAMMAR_TOKENS:
        lost = unknown([fmt.format(i) for i in range(count)])
        if len(lost) == 1:
            missing.append(lost[0])
        elif lost:
            missing.append(f"{len(lost)} of the {count} {fmt.format('N')} tokens ({lost[0]} ... {lost[-1]})")
    missing += unknown(list(_NAMED_TOKENS))
    if getattr(tokenizer, "eos_token_id", None) is None:
        missing.append("the end-of-sequence token (eos_token, <|im_end|> in the release)")
    return missing


def _check_tokenizer(tokenizer: Any, model: Any, path: Path) -> None:
    """The tokenizer round-trips text, knows every grammar token, and fits the model's vocabulary."""
    try:
        ids = tokenizer.encode(ROUND_TRIP_TEXT, add_special_tokens=False)
        back = tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    except Exception as exc:  # a broken vocabulary can fail inside the Rust or Python tokenizer
        ids, back = [], f"<error: {type(exc).__name__}: {exc}>"
    if back != ROUND_TRIP_TEXT:
        raise CheckpointError(
            f"{path}: the tokenizer does not round-trip text: {ROUND_TRIP_TEXT!r} encodes to {len(ids)} ids and "
            f"decodes to {back!r}, so every text would be spoken as the same sound. Its vocabulary is missing or "
            f"broken (no tokenizer.json?). {_FIX}"
        )
    missing = _missing_tokens(tokenizer)
    if missing:
        raise CheckpointError(
            f"{path}: the tokenizer lacks Spark-TTS tokens that prompts and generation need: {'; '.join(missing)}. "
            f"This is not a Spark-TTS LLM directory (its tokenizer adds the BiCodec and control tokens), or its "
            f"tokenizer files are incomplete. {_FIX}"
        )
    vocab_size = int(model.get_input_embeddings().weight.shape[0])
    unk = getattr(tokenizer, "unk_token_id", None)
    for tok in _REQUIRED_TOKENS:
        ids = tokenizer.encode(tok, add_special_tokens=False)
        if len(ids) != 1 or ids[0] == unk:
            raise CheckpointError(
                f"{path}: the tokenizer does not know {tok} as one token (got ids {ids[:5]}); this is not a "
                "Spark-TTS LLM directory (its tokenizer adds the BiCodec and control tokens)."
            )
        if ids[0] >= vocab_size:
            raise CheckpointError(
                f"{path}: token {tok} has id {ids[0]} but the model's vocabulary has {vocab_size} rows; the "
                "tokenizer and model.safetensors come from different checkpoints."
            )


def _check_finite(model: Any, path: Path) -> None:
    """Refuse NaN / inf weights now rather than as a RuntimeError from torch.multinomial mid-generation."""
    for name, param in model.named_parameters():
        if not torch.is_floating_point(param):
            continue
        finite = getattr(param, "sparktts_finite", None)  # set by load_int8 for the file-mapped table
        if finite is None:  # in pieces: one boolean copy of a 600 MB table would add 150 MB to the peak
            finite = all(bool(torch.isfinite(piece).all()) for piece in param.detach().reshape(-1).split(1 << 22))
        if not finite:
            raise CheckpointError(
                f"{path}: weight {name} contains NaN or inf values; model.safetensors is corrupt. Download the "
                "release's LLM/model.safetensors again."
            )
