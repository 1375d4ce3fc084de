"""The fast decoding path gives the baseline's tokens under greedy decoding (and the same audio)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sparktts.generation import SamplingConfig
from sparktts.llm.decode import FastDecoder, _top_k_top_p
from sparktts.llm.quantize import quantize_int8
from sparktts.prompts import build_clone_prompt, build_create_prompt

GREEDY = SamplingConfig(do_sample=False, max_new_tokens=80)


@pytest.fixture(scope="module")
def prompts(tiny_tts, prompt_wav):
    voice = tiny_tts.make_voice(prompt_wav)
    return [
        build_clone_prompt("Hello there, this is a test.", voice.global_ids, expected_globals=32),
        build_clone_prompt("A second and longer sentence, to make the batch ragged.", voice.global_ids),
        build_create_prompt("Designed voice.", "female", "high", "low"),
        build_create_prompt("Another one.", "male", "very_low", "moderate"),
    ]


def test_restricted_head_is_a_small_slice(tiny_tts):
    fast = tiny_tts.generator.fast_decoder
    vocab = tiny_tts.generator.vocab
    assert fast.head_rows < vocab.vocab_size
    # Every semantic and global id of the codec is in the slice, each once.
    assert fast.ids.unique().numel() == fast.head_rows
    kinds = vocab.kind[fast.ids]
    assert int((kinds == 1).sum()) == vocab.semantic_size and int((kinds == 2).sum()) == vocab.global_size
    # The leading block serves the semantic steps: all semantic ids and the stop ids, no global ids.
    late = fast.ids[: fast.late_rows]
    assert int((vocab.kind[late] == 1).sum()) == vocab.semantic_size
    assert int((vocab.kind[late] == 2).sum()) == 0
    assert set(vocab.stop_ids) <= set(late.tolist())


@pytest.mark.parametrize("batched", [False, True])
def test_greedy_tokens_equal_model_generate(tiny_tts, prompts, batched):
    gen = tiny_tts.generator
    groups = [prompts] if batched else [[p] for p in prompts]
    for group in groups:
        fast = gen.generate(group, GREEDY, engine="fast", allow_empty=True)
        slow = gen.generate(group, GREEDY, engine="hf", allow_empty=True)
        for f, s in zip(fast, slow):
            assert f.token_ids == s.token_ids
            assert f.semantic_ids == s.semantic_ids and f.global_ids == s.global_ids
        assert any(len(f.semantic_ids) > 0 for f in fast)


def test_same_audio_through_the_api(tiny_tts, prompt_wav):
    gen = tiny_tts.generator
    try:
        gen.engine = "hf"
        slow = tiny_tts.clone("Same words, two engines.", prompt_audio=prompt_wav, do_sample=False, max_new_tokens=60)
        gen.engine = "fast"
        fast = tiny_tts.clone("Same words, two engines.", prompt_audio=prompt_wav, do_sample=False, max_new_tokens=60)
    finally:
        gen.engine = "fast"
    assert np.array_equal(fast.semantic_tokens, slow.semantic_tokens)
    np.testing.assert_allclose(fast.audio, slow.audio, atol=1e-6)


def test_sampling_is_seeded_and_stays_in_grammar(tiny_tts, prompts):
    gen = tiny_tts.generator
    cfg = SamplingConfig(max_new_tokens=60, seed=3)
    a = gen.generate(prompts, cfg, engine="fast", allow_empty=True)
    b = gen.generate(prompts, cfg, engine="fast", allow_empty=True)
    assert [r.token_ids for r in a] == [r.token_ids for r in b]
    for row in a[2:]:  # create rows: a complete voice whenever the budget allowed it
        assert row.pitch_value is not None and row.speed_value is not None
        assert len(row.global_ids) in (0, 32) or len(row.token_ids) == 60


def test_top_k_top_p_match_transformers_warpers():
    from transformers import TopKLogitsWarper, TopPLogitsWarper

    logits = torch.randn(3, 50, generator=torch.Generator().manual_seed(0))
    ours = _top_k_top_p(logits.clone(), 7, 0.8)
    theirs = TopPLogitsWarper(0.8)(None, TopKLogitsWarper(7)(None, logits.clone()))
    assert torch.equal(torch.isinf(ours), torch.isinf(theirs))
    assert torch.equal(ours[~torch.isinf(ours)], theirs[~torch.isinf(theirs)])


@pytest.mark.parametrize("scheme", ["int8", "int8-weight", "int4"])
def test_quantization_keeps_the_grammar(tiny_release, prompts, scheme):
    """Quantization changes the numbers (its quality cost is measured in benchmarks), never the output format."""
    from sparktts.generation import SpeechGenerator
    from sparktts.llm.model import load_llm

    tokenizer, model = load_llm(tiny_release / "LLM", "cpu")
    quantize_int8(model, scheme)
    gen = SpeechGenerator(model, tokenizer, semantic_size=128, global_size=4096, num_globals=32)
    assert isinstance(gen.fast_decoder, FastDecoder)
    rows = gen.generate(prompts, GREEDY, allow_empty=True)
    for row in rows[2:]:
        assert row.pitch_value is not None and len(row.global_ids) in (0, 32)
    assert all(0 <= i < 128 for r in rows for i in r.semantic_ids)


def test_vllm_engine_without_vllm_says_how_to_install(tiny_release):
    try:
        import vllm  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("vLLM is installed here; the missing-package error cannot be shown")
    from sparktts import ConfigError, SparkTTS

    with pytest.raises(ConfigError, match=r"pip install 'sparktts-lab\[vllm\]'"):
        SparkTTS.from_pretrained(tiny_release, device="cpu", engine="vllm")
    with pytest.raises(ConfigError, match="engine must be 'fast', 'hf' or 'vllm'"):
        SparkTTS.from_pretrained(tiny_release, device="cpu", engine="turbo")


# -- the lean Qwen2 forward and int8 loading ------------------------------------------------------------


def _ragged_batch(tokenizer):
    enc = tokenizer(["Hi.", "A longer prompt, so that the first row is left-padded."], return_tensors="pt",
                    padding=True)
    mask = enc["attention_mask"]
    return enc["input_ids"], mask, (mask.cumsum(-1) - 1).clamp_min(0)


# Measured: fp32 prefill bit-identical, decoding steps 2e-7 of the largest value; bf16 identical.
@pytest.mark.parametrize("dtype, tol", [(None, 1e-6), ("bfloat16", 1e-2)])
def test_lean_forward_equals_transformers_on_a_ragged_batch(tiny_release, dtype, tol):
    """Prefill of left-padded prompts, then two decoding steps (the cache grows past its capacity)."""
    from sparktts.llm.model import load_llm
    from sparktts.llm.qwen2 import LeanQwen2

    tokenizer, model = load_llm(tiny_release / "LLM", "cpu", dtype)
    assert LeanQwen2.supports(model)
    lean = LeanQwen2(model)
    ids, mask, pos = _ragged_batch(tokenizer)
    cache = lean.new_cache(2, 3)
    got = [lean(ids, pos, cache, mask.bool())]
    for token in (11, 12):
        step = torch.full((2, 1), token)
        ids, mask, pos = torch.cat([ids, step], 1), torch.cat([mask, torch.ones_like(step)], 1), \
            torch.cat([pos, pos[:, -1:] + 1], 1)
        got.append(lean(step, pos[:, -1:], cache, mask.bool()))
    assert cache.length == ids.shape[1] and cache.capacity >= cache.length
    with torch.inference_mode():
        for k, hidden in enumerate(got):
            end = ids.shape[1] - 2 + k
            ref = model.model(input_ids=ids[:, :end], attention_mask=mask[:, :end],
                              position_ids=pos[:, :end]).last_hidden_state[:, -1]
            scale = ref.abs().max()
            assert (hidden.float() - ref.float()).abs().max() <= tol * scale, k


def _bf16_copy(llm_dir, out):
    """The tiny LLM directory with its weights stored in bfloat16, as the release stores them."""
    import json
    import shutil

    from safetensors.torch import load_file, save_file

    shutil.copytree(llm_dir, out)
    weights = {k: v.to(torch.bfloat16) for k, v in load_file(str(out / "model.safetensors")).items()}
    save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})
    config = json.loads((out / "config.json").read_text())
    config["dtype"] = "bfloat16"
    (out / "config.json").write_text(json.dumps(config))
    return out


@pytest.mark.parametrize("stored", ["float32", "bfloat16"])
def test_int8_loaded_tensor_by_tensor_equals_quantizing_the_loaded_model(tiny_release, tmp_path, stored):
    from torch import nn

    from sparktts.llm.model import load_llm

    llm_dir = tiny_release / "LLM" if stored == "float32" else _bf16_copy(tiny_release / "LLM", tmp_path / "LLM")
    tokenizer, streamed = load_llm(llm_dir, "cpu", quantize="int8")
    _, model = load_llm(llm_dir, "cpu", "auto")
    quantize_int8(model)
    ids, mask, pos = _ragged_batch(tokenizer)
    with torch.inference_mode():
        a = streamed(input_ids=ids, attention_mask=mask, position_ids=pos).logits
        b = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
    assert a.dtype == torch.float32 and torch.equal(a, b)
    body = streamed.get_decoder()
    assert not any(type(m) is nn.Linear for m in body.modules())
    assert not any(p.is_meta for p in streamed.parameters())
    # The table keeps its stored dtype; the tied head shares it.
    assert body.embed_tokens.weight.dtype == getattr(torch, stored)
    assert streamed.get_output_embeddings().weight is body.embed_tokens.weight


def test_int8_loading_names_a_broken_checkpoint(tiny_release, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    from sparktts.errors import CheckpointError, ConfigError
    from sparktts.llm.model import load_llm

    with pytest.raises(ConfigError, match="CPU"):
        load_llm(tiny_release / "LLM", "cuda", quantize="int8")
    with pytest.raises(ConfigError, match="'int8', 'int8-weight', 'int4', 'bf16', 'auto', not 'int3'"):
        load_llm(tiny_release / "LLM", "cpu", quantize="int3")
    broken = tmp_path / "LLM"
    shutil.copytree(tiny_release / "LLM", broken)
    weights = load_file(str(broken / "model.safetensors"))
    key = "model.layers.0.mlp.up_proj.weight"
    save_file({k: v for k, v in weights.items() if k != key}, str(broken / "model.safetensors"),
              metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="up_proj"):
        load_llm(broken, "cpu", quantize="int8")
    weights[key] = weights[key][:, :-1].contiguous()
    save_file(weights, str(broken / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="shape"):
        load_llm(broken, "cpu", quantize="int8")


def test_int8_layer_equals_torch_dynamic_quantization():
    """Our int8 layer builder is torch's per-channel dynamic quantization, without its load-time costs."""
    import warnings

    from torch import nn
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear
    from torch.ao.quantization import per_channel_dynamic_qconfig

    from sparktts.llm.kernels import dynamic_int8_linear

    gen = torch.Generator().manual_seed(0)
    float_layer = nn.Linear(64, 48)
    with torch.no_grad():
        float_layer.weight.copy_(torch.randn(48, 64, generator=gen))
    float_layer.qconfig = per_channel_dynamic_qconfig
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = DynamicLinear.from_float(float_layer)
    ours = dynamic_int8_linear(float_layer.weight, float_layer.bias)
    x = torch.randn(5, 64, generator=gen)
    assert (ours.in_features, ours.out_features) == (64, 48)
    assert torch.equal(ours(x), theirs(x))
    assert torch.equal(ours.weight().int_repr(), theirs.weight().int_repr())
