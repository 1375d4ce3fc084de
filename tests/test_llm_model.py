"""Loading the LLM directory: dtypes, layout errors, and what SparkTTS loads."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from sparktts import CheckpointError, SparkTTS
from sparktts.errors import ConfigError
from sparktts.llm.model import load_llm, resolve_dtype


def test_resolve_dtype() -> None:
    assert resolve_dtype(None) is torch.float32  # the original's transformers-4 default
    assert resolve_dtype("bf16") is torch.bfloat16 and resolve_dtype("torch.float16") is torch.float16
    assert resolve_dtype("auto") == "auto"
    with pytest.raises(ConfigError, match="unknown dtype 'float8'.*bfloat16"):
        resolve_dtype("float8")
    with pytest.raises(ConfigError, match="floating-point"):
        resolve_dtype(torch.int64)


def test_load_llm_in_bfloat16_eval_mode(tiny_release) -> None:
    tokenizer, model = load_llm(tiny_release / "LLM", "cpu", "bfloat16")
    assert next(model.parameters()).dtype == torch.bfloat16 and not model.training
    assert tokenizer.padding_side == "left"


def test_missing_or_incomplete_llm_dir(tiny_release, tmp_path) -> None:
    with pytest.raises(CheckpointError, match="LLM directory not found"):
        load_llm(tmp_path / "LLM")
    llm = tmp_path / "LLM"
    shutil.copytree(tiny_release / "LLM", llm)
    (llm / "tokenizer_config.json").unlink()
    with pytest.raises(CheckpointError, match=r"missing \['tokenizer_config.json'\]"):
        load_llm(llm)
    root = tmp_path / "release"
    root.mkdir()
    (root / "config.yaml").write_text((tiny_release / "config.yaml").read_text())
    with pytest.raises(CheckpointError, match="not a complete Spark-TTS release"):
        SparkTTS.from_pretrained(root, device="cpu")


def test_tokenizer_without_spark_tokens_is_refused(tiny_release, tmp_path) -> None:
    """A plain Qwen-style tokenizer (no BiCodec tokens) is not a Spark-TTS LLM."""
    from tokenizers import Tokenizer

    llm = tmp_path / "LLM"
    shutil.copytree(tiny_release / "LLM", llm)
    obj = json.loads(Tokenizer.from_file(str(llm / "tokenizer.json")).to_str())
    obj["added_tokens"] = [t for t in obj["added_tokens"] if "bicodec" not in t["content"]]
    (llm / "tokenizer.json").write_text(json.dumps(obj))
    cfg = json.loads((llm / "tokenizer_config.json").read_text())
    decoder = cfg["added_tokens_decoder"]
    cfg["added_tokens_decoder"] = {k: v for k, v in decoder.items() if "bicodec" not in v["content"]}
    (llm / "tokenizer_config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="not a Spark-TTS LLM directory"):
        load_llm(llm)


def test_synthesis_notebook_view(tiny_tts, prompt_wav) -> None:
    out = tiny_tts.clone("Hi there.", prompt_audio=prompt_wav, seed=0, max_new_tokens=5)
    view = out._repr_html_()
    assert "<audio controls src='data:audio/wav;base64,UklGR" in view  # "RIFF" in base64
    assert "Hi there." in view and "seed" in view
