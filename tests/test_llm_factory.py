"""The random stand-in LLM directory loads with transformers, offline, and handles Spark-TTS prompts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer

from sparktts.errors import ConfigError
from sparktts.llm import build_tokenizer, make_random_llm
from sparktts.prompts import (
    build_clone_prompt,
    build_create_prompt,
    format_semantic,
    parse_generated,
    spark_special_tokens,
)

from .conftest import REFERENCE

REF = json.loads((REFERENCE / "prompts.json").read_text(encoding="utf-8"))
STUB_GLOBAL = np.asarray(REF["stub_tokens"]["global_token_ids"]).reshape(-1).tolist()
STUB_SEMANTIC = np.asarray(REF["stub_tokens"]["semantic_token_ids"]).reshape(-1).tolist()


@pytest.fixture(scope="module")
def llm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_random_llm(tmp_path_factory.mktemp("llm") / "LLM", preset="tiny", seed=0)


@pytest.fixture(scope="module")
def hf_tokenizer(llm_dir: Path):
    from transformers import AutoTokenizer

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        return AutoTokenizer.from_pretrained(llm_dir, local_files_only=True)


@pytest.fixture(scope="module")
def hf_model(llm_dir: Path):
    from transformers import AutoModelForCausalLM

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        return AutoModelForCausalLM.from_pretrained(llm_dir, local_files_only=True).eval()


def test_released_layout(llm_dir: Path) -> None:
    names = {p.name for p in llm_dir.iterdir()}
    assert {
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
    } <= names
    cfg = json.loads((llm_dir / "config.json").read_text())
    assert cfg["model_type"] == "qwen2" and cfg["architectures"] == ["Qwen2ForCausalLM"]
    assert cfg["rope_theta"] == 1e6  # legacy top-level key, as in the released config.json


def test_tokenizer_loads_as_qwen2_fast_tokenizer(hf_tokenizer) -> None:
    assert type(hf_tokenizer).__name__ in {"Qwen2Tokenizer", "Qwen2TokenizerFast"}
    assert hf_tokenizer.is_fast
    assert hf_tokenizer.eos_token == "<|im_end|>"
    assert hf_tokenizer.pad_token == "<|endoftext|>"
    assert hf_tokenizer.bos_token is None
    # Qwen2 order: <|endoftext|>, <|im_start|>, <|im_end|> are consecutive right after the BPE vocab.
    eot, ims, ime = hf_tokenizer.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    assert (ims, ime) == (eot + 1, eot + 2)


def test_every_spark_token_is_one_id(hf_tokenizer) -> None:
    toks = spark_special_tokens()
    ids = hf_tokenizer("".join(toks), add_special_tokens=False)["input_ids"]
    assert ids == hf_tokenizer.convert_tokens_to_ids(toks)
    assert len(set(ids)) == len(toks) == 13493
    # Same relative layout as the release: the Spark block starts 22 ids after <|endoftext|>.
    assert ids[0] == hf_tokenizer.convert_tokens_to_ids("<|endoftext|>") + 22
    assert ids == list(range(ids[0], ids[0] + len(toks)))
    for tok in ("<|endoftext|>", "<|im_start|>", "<|im_end|>"):
        assert len(hf_tokenizer(tok, add_special_tokens=False)["input_ids"]) == 1


def test_clone_prompt_round_trips_through_tokenizer(hf_tokenizer) -> None:
    case = next(c for c in REF["clone"] if c["prompt_text"] is not None)
    prompt = build_clone_prompt(case["text"], STUB_GLOBAL, case["prompt_text"], STUB_SEMANTIC)
    ids = hf_tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert hf_tokenizer.decode(ids) == prompt
    # The official parser decodes with skip_special_tokens=True: the Spark tokens must survive that.
    decoded = hf_tokenizer.decode(ids, skip_special_tokens=True)
    assert decoded == prompt
    parsed = parse_generated(decoded)
    assert parsed.global_ids == STUB_GLOBAL
    assert parsed.semantic_ids == STUB_SEMANTIC
    # One id per control token: 32 globals + 8 semantics + 6 markers/task tokens + the text's ids.
    text_ids = hf_tokenizer(case["prompt_text"] + " " + case["text"], add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text_ids) + len(STUB_GLOBAL) + len(STUB_SEMANTIC) + 6


def test_generation_markers_and_eos_decode_like_the_release(hf_tokenizer) -> None:
    generation = REF["parse"][0]["decoded_generation"]  # ends with <|im_end|>
    ids = hf_tokenizer(generation, add_special_tokens=False)["input_ids"]
    assert ids[-1] == hf_tokenizer.eos_token_id
    skipped = hf_tokenizer.decode(ids, skip_special_tokens=True)
    assert skipped == generation.removesuffix("<|im_end|>")
    parsed = parse_generated(skipped)
    assert parsed.semantic_ids == REF["parse"][0]["semantic_tokens_passed_to_BiCodecTokenizer.detokenize"][0]
    assert parsed.global_ids == REF["parse"][0]["global_tokens_passed_to_BiCodecTokenizer.detokenize"][0]


@pytest.mark.parametrize(
    "text",
    [
        "Hello world, this is Spark TTS.",
        "你好，世界！可控语音合成。",
        "Mixed 中英文 text with émojis 😀 and tabs\tand\nnewlines, 3.14159!",
        "Ωμέγα русский ﬁ ligature",
    ],
)
def test_any_text_round_trips_and_matches_raw_tokenizer(hf_tokenizer, llm_dir: Path, text: str) -> None:
    raw = Tokenizer.from_file(str(llm_dir / "tokenizer.json"))
    ids = hf_tokenizer(text, add_special_tokens=False)["input_ids"]
    # transformers must not change the saved pipeline (Qwen2Tokenizer rebuilds parts of it on load).
    assert ids == raw.encode(text, add_special_tokens=False).ids
    # Byte-level BPE: any text decodes back exactly (all inputs here are already NFC, Qwen2's normal form).
    assert hf_tokenizer.decode(ids) == text


def test_model_loads_and_gives_logits_of_vocab_size(hf_model, hf_tokenizer) -> None:
    assert type(hf_model).__name__ == "Qwen2ForCausalLM"
    cfg = hf_model.config
    assert (cfg.num_hidden_layers, cfg.num_attention_heads, cfg.num_key_value_heads) == (2, 4, 2)
    assert cfg.vocab_size >= len(hf_tokenizer) and cfg.vocab_size % 64 == 0
    assert cfg.vocab_size - len(hf_tokenizer) < 64
    assert cfg.tie_word_embeddings
    assert cfg.rope_parameters["rope_theta"] == 1e6  # Qwen2.5 value, read back from config.json
    assert cfg.eos_token_id == hf_tokenizer.convert_tokens_to_ids("<|im_end|>")
    prompt = build_create_prompt("Hello there.", "female", "high", "low")
    batch = hf_tokenizer([prompt], return_tensors="pt")
    with torch.no_grad():
        logits = hf_model(**batch).logits
    assert logits.shape == (1, batch["input_ids"].shape[1], cfg.vocab_size)
    assert torch.isfinite(logits).all()
    # Random weights: logits must differ across positions (the model really ran).
    assert not torch.allclose(logits[0, 0], logits[0, -1])


def test_generate_appends_tokens(hf_model, hf_tokenizer) -> None:
    prompt = build_clone_prompt("Hi.", STUB_GLOBAL) + "<|start_semantic_token|>" + format_semantic([1, 2])
    batch = hf_tokenizer([prompt], return_tensors="pt")
    with torch.no_grad():
        out = hf_model.generate(**batch, max_new_tokens=4, do_sample=False, min_new_tokens=4)
    assert out.shape == (1, batch["input_ids"].shape[1] + 4)
    assert torch.equal(out[0, : batch["input_ids"].shape[1]], batch["input_ids"][0])


def test_weights_depend_only_on_seed(llm_dir: Path, tmp_path: Path) -> None:
    state = torch.get_rng_state()
    same = make_random_llm(tmp_path / "same", seed=0)
    other = make_random_llm(tmp_path / "other", seed=1)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's RNG is untouched
    ref = load_file(llm_dir / "model.safetensors")
    a = load_file(same / "model.safetensors")
    b = load_file(other / "model.safetensors")
    assert ref.keys() == a.keys() == b.keys()
    assert all(torch.equal(ref[k], a[k]) for k in ref)
    assert not all(torch.equal(ref[k], b[k]) for k in ref)
    assert (same / "tokenizer.json").read_bytes() == (llm_dir / "tokenizer.json").read_bytes()


def test_unknown_preset() -> None:
    with pytest.raises(ConfigError, match="unknown LLM preset 'huge'; valid presets: tiny, full"):
        make_random_llm("/nonexistent/never-created", preset="huge")


@pytest.mark.slow
def test_full_preset_tokenizer_has_release_ids() -> None:
    # Ids from the SparkAudio tokenizer-expansion script's printed output (public copy:
    # kongyt511/SparkVox egs/speech_synthesis/spark-tts/scripts/expand_tokenizer.py) and Qwen2.5.
    tok = build_tokenizer("full")
    assert tok.get_vocab_size(with_added_tokens=True) == 165158
    release = {
        "<|endoftext|>": 151643,
        "<|im_end|>": 151645,
        "<|bicodec_global_10|>": 151675,
        "<|bicodec_semantic_311|>": 156072,
        "<|bicodec_semantic_1150|>": 156911,
        "<|pitch_value_0|>": 163953,
        "<|speed_label_0|>": 164986,
        "<|gender_0|>": 165032,
        "<|task_prompt_tts|>": 165144,
        "<|start_content|>": 165146,
        "<|end_global_token|>": 165156,
    }
    assert {t: tok.token_to_id(t) for t in release} == release
