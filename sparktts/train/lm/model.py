"""The model an LM run trains: its base folder (tokenizer + config), random or ``--init`` weights, LoRA.

``write_base`` writes ``RUN/base/`` (tokenizer files and ``config.json``) from a release's ``LLM/`` or
from the config's ``model`` section; ``build_model`` makes the model from it; the exporter reads the
same folder, so the exported ``LLM/`` carries exactly the tokenizer the run trained with.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from sparktts.errors import ConfigError
from sparktts.train.lm.config import LMTrainConfig
from sparktts.train.lm.data import IGNORE_INDEX
from sparktts.train.run import TrainingError

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
                    "merges.txt", "added_tokens.json", "chat_template.jinja")


def _llm_dir(init: str | os.PathLike) -> Path:
    """A release root or an ``LLM/`` folder -> the folder holding config.json and the tokenizer."""
    from sparktts.checkpoint import resolve_model_dir

    path = Path(init).expanduser()
    if not path.exists():
        path = Path(resolve_model_dir(init))  # a hub id when online, as every other loader accepts
    return path / "LLM" if (path / "LLM" / "config.json").is_file() else path


def write_base(base: Path, cfg: LMTrainConfig, init: str | None) -> None:
    """Write ``base/``: tokenizer files and the model's config.json / generation_config.json."""
    from transformers import AutoConfig, GenerationConfig, Qwen2Config

    base.mkdir(parents=True, exist_ok=True)
    if init is not None:
        src = _llm_dir(init)
        if not (src / "config.json").is_file():
            raise TrainingError(f"--init {init}: no LLM config.json there; pass a release directory or its LLM/")
        for name in (*_TOKENIZER_FILES, "config.json", "generation_config.json"):
            if (src / name).is_file():
                shutil.copy2(src / name, base / name)
        AutoConfig.from_pretrained(str(src))  # fail here, with the path, if transformers cannot read it
        return
    from sparktts.llm import factory

    m = cfg.model
    src = Path(m.tokenizer).expanduser()
    if src.is_dir():
        for name in _TOKENIZER_FILES:
            if (src / name).is_file():
                shutil.copy2(src / name, base / name)
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(base / "tokenizer.json"))
    else:
        if m.tokenizer not in factory.PRESETS:
            raise ConfigError(f"model.tokenizer {m.tokenizer!r} is neither a folder with tokenizer files nor one "
                              f"of the presets {list(factory.PRESETS)}")
        tok = factory.build_tokenizer(m.tokenizer)
        # The factory's writer gives the released LLM/'s tokenizer files (Qwen2Tokenizer, eos <|im_end|>).
        factory._write_tokenizer_files(tok, base, m.max_position_embeddings)
    n_tokens = tok.get_vocab_size(with_added_tokens=True)
    vocab = m.vocab_size or -(-n_tokens // m.vocab_multiple) * m.vocab_multiple
    if vocab < n_tokens:
        raise ConfigError(f"model.vocab_size {vocab} is smaller than the tokenizer ({n_tokens} tokens)")
    bos, eos = tok.token_to_id("<|endoftext|>"), tok.token_to_id("<|im_end|>")
    config = Qwen2Config(
        vocab_size=vocab, hidden_size=m.hidden_size, intermediate_size=m.intermediate_size,
        num_hidden_layers=m.num_hidden_layers, num_attention_heads=m.num_attention_heads,
        num_key_value_heads=m.num_key_value_heads, max_position_embeddings=m.max_position_embeddings,
        rope_theta=m.rope_theta, rms_norm_eps=m.rms_norm_eps, tie_word_embeddings=m.tie_word_embeddings,
        use_sliding_window=False, max_window_layers=m.num_hidden_layers, bos_token_id=bos, eos_token_id=eos,
    )
    config.save_pretrained(str(base))
    GenerationConfig(bos_token_id=bos, eos_token_id=eos, pad_token_id=bos).save_pretrained(str(base))
    cfg_json = json.loads((base / "config.json").read_text())
    cfg_json.setdefault("rope_theta", m.rope_theta)  # transformers 4.x reads only the top-level key
    (base / "config.json").write_text(json.dumps(cfg_json, indent=2, sort_keys=True) + "\n")


def build_model(base: Path, cfg: LMTrainConfig, init: str | None) -> Any:
    """The model to train: ``--init`` weights or a seeded random init, wrapped with LoRA when enabled."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from sparktts.checkpoint import quiet_transformers_loading

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        with quiet_transformers_loading():
            if init is not None:
                model = AutoModelForCausalLM.from_pretrained(str(_llm_dir(init)), dtype=torch.float32)
            else:
                model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(str(base)), dtype=torch.float32)
        if cfg.lora.enabled:
            model = wrap_lora(model, cfg)
    return model


def wrap_lora(model: Any, cfg: LMTrainConfig) -> Any:
    """``model`` with ``cfg.lora``'s adapters (only they train); the exporter merges them back."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    lc = cfg.lora
    return get_peft_model(model, PeftLoraConfig(r=lc.r, lora_alpha=lc.alpha, lora_dropout=lc.dropout,
                                                target_modules=list(lc.target_modules), task_type="CAUSAL_LM"))


class TargetLoss(torch.nn.Module):
    """The causal LM with its loss over target positions only: ``(B,)`` summed cross-entropy, ``(B,)`` counts.

    The LM head runs on the target positions alone (the released vocabulary has 166 000 rows: full
    logits of a 64 x 3072 batch would be 130 GB in float32, and on a small model they are half the
    step). The result equals the cross-entropy of the full logits. It is the module DDP wraps, so
    gradients are synchronised as for the plain model; ``lm`` is what checkpoints hold.
    """

    def __init__(self, lm: Any):
        super().__init__()
        self.lm = lm

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.lm.get_decoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        targets = labels[:, 1:]
        valid = targets != IGNORE_INDEX
        rows = valid.nonzero()[:, 0]
        logits = self.lm.get_output_embeddings()(hidden[:, :-1][valid])  # (N, V)
        ce = F.cross_entropy(logits.float(), targets[valid], reduction="none")
        return ce.new_zeros(len(input_ids)).index_add_(0, rows, ce), valid.sum(dim=1)
