"""The LLM's CPU kernels: weight-only int8/int4 layers, engine-pinned dynamic int8, and quantize="auto"."""

from __future__ import annotations

import json

import pytest
import torch

from sparktts.device import cpu_features
from sparktts.llm.kernels import (
    AUTO_SCHEMES,
    BF16Linear,
    Int4Linear,
    WeightInt8Linear,
    choose_scheme,
    direct_call,
    dynamic_int8_linear,
    kernel_name,
    make_linear,
)


@pytest.fixture()
def layer():
    gen = torch.Generator().manual_seed(0)
    return torch.randn(96, 128, generator=gen) * 0.05, torch.randn(96, generator=gen), \
        torch.randn(3, 7, 128, generator=gen)


def test_int8_weight_layer_rounds_each_weight_to_its_row_grid(layer):
    weight, bias, x = layer
    q = WeightInt8Linear(weight, bias)
    step = q.scales.float()[:, None]
    assert ((q.dequantized() - weight).abs() <= step / 2 + 1e-6).all()
    assert (step - weight.abs().amax(1, keepdim=True) / 127).abs().max() <= 1e-2 * step.max()
    # The kernel is the float product with the dequantized weight, on bf16-rounded inputs, rounded to bf16.
    want = torch.nn.functional.linear(x.bfloat16().float(), q.dequantized(), bias)
    got = q(x)
    assert got.shape == (3, 7, 96) and got.dtype == torch.float32
    assert (got - want).abs().max() <= 1e-2 * want.abs().max()


def test_int4_layer_rounds_each_weight_to_its_group_grid(layer):
    weight, bias, x = layer
    q = Int4Linear(weight, bias)
    groups = weight.view(96, 4, 32)
    step = ((groups.amax(-1) - groups.amin(-1)) / 15).repeat_interleave(32, dim=1)
    # Half a step of rounding (a step 1 % wider or narrower for the bf16 scale; the extremes may clamp).
    assert ((q.dequantized() - weight).abs() <= 0.5 * step * 1.1 + 1e-6).all()
    want = torch.nn.functional.linear(x.bfloat16().float(), q.dequantized(), bias)
    assert (q(x) - want).abs().max() <= 1e-2 * want.abs().max()
    # 16 levels per group: no more distinct values than that in any group of the dequantized weight.
    assert max(len(set(g.tolist())) for g in q.dequantized().view(-1, 32)) <= 16


def test_bf16_layer_is_the_product_of_bf16_weights_and_inputs(layer, monkeypatch):
    from sparktts.llm import kernels

    weight, bias, x = layer
    want = torch.nn.functional.linear(x.bfloat16().float(), weight.bfloat16().float(), bias)
    packed = BF16Linear(weight, bias)
    monkeypatch.setattr(kernels, "_onednn_bf16_packing", lambda: False)
    plain = BF16Linear(weight, bias)
    assert plain.packed is None and plain.weight.dtype == torch.bfloat16
    for q in (packed, plain):
        got = q(x)
        assert got.shape == (3, 7, 96) and got.dtype == torch.float32
        # bf16 output rounding: within one part in 128 of the largest value
        assert (got - want).abs().max() <= 1e-2 * want.abs().max()
        assert torch.equal(q.dequantized(), weight.bfloat16().float())
        # batch 1 (decoding) gives the rows of a batch (to rounding: kernels may block by batch size)
        assert (q(x[:1, :1]) - got[:1, :1]).abs().max() <= 1e-2 * want.abs().max()


def test_int4_takes_only_shapes_its_kernel_supports():
    with pytest.raises(ValueError, match="divisible by 32"):
        Int4Linear(torch.randn(96, 40), None)
    # make_linear falls back to dynamic int8 for such a layer instead of failing the whole model.
    assert direct_call(make_linear("int4", torch.randn(8, 64), None)) is not None
    with pytest.raises(ValueError, match="unknown kernel scheme"):
        make_linear("int2", torch.randn(16, 32), None)


ENGINES = [e for e in ("fbgemm", "onednn") if e in torch.backends.quantized.supported_engines]


@pytest.mark.parametrize("engine", ENGINES)
def test_dynamic_int8_packed_for_an_engine_matches_the_default_and_restores_it(layer, engine):
    weight, bias, x = layer
    before = torch.backends.quantized.engine
    pinned = dynamic_int8_linear(weight, bias, engine)
    assert torch.backends.quantized.engine == before
    default = dynamic_int8_linear(weight, bias)
    assert torch.equal(pinned.weight().int_repr(), default.weight().int_repr())
    rows = x.view(-1, 128)
    assert (pinned(rows) - default(rows)).abs().max() <= 1e-2 * default(rows).abs().max()


def test_cpu_features_name_the_kernels_torch_has():
    info = cpu_features()
    assert info["torch"] == torch.__version__
    known = {"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8"}
    assert set(info["flags"]) <= known
    assert info["quantized_engine"] in torch.backends.quantized.supported_engines


def test_auto_measures_once_per_machine_and_never_picks_int4(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARKTTS_CACHE", str(tmp_path))
    first = choose_scheme(64, 192, 32, 4)
    assert first.scheme in AUTO_SCHEMES and not first.cached
    assert {"int8-weight", "int4"} <= set(first.ms_per_token) and all(t > 0 for t in first.ms_per_token.values())
    assert first.ms_per_token[kernel_name(first.scheme, first.engine)] == \
        min(t for n, t in first.ms_per_token.items() if n.split("/")[0] in AUTO_SCHEMES)
    again = choose_scheme(64, 192, 32, 4)
    assert again.cached and (again.scheme, again.engine) == (first.scheme, first.engine)
    stored = json.loads((tmp_path / "kernels.json").read_text())
    assert len(stored) == 1 and next(iter(stored.values()))["scheme"] == first.scheme
    assert not choose_scheme(64, 192, 32, 4, use_cache=False).cached


@pytest.mark.parametrize("quantize", ["int8", "int8-weight", "int4", "bf16", "auto"])
def test_each_scheme_loads_and_picks_the_fp32_greedy_tokens(tiny_release, quantize, tmp_path, monkeypatch):
    """Teacher-forced greedy agreement with fp32 on the tiny release (measured: 1.0 for every scheme)."""
    from torch import nn

    from sparktts.format.grammar import Phase
    from sparktts.format.prompts import build_clone_prompt
    from sparktts.llm.generator import SpeechGenerator
    from sparktts.llm.model import load_llm
    from sparktts.llm.sampling import SamplingConfig

    monkeypatch.setenv("SPARKTTS_CACHE", str(tmp_path))
    prompt = build_clone_prompt("The quick brown fox jumps over the lazy dog.", list(range(32)))
    tokenizer, model = load_llm(tiny_release / "LLM", "cpu")
    ref_gen = SpeechGenerator(model, tokenizer)
    inputs = ref_gen.encode_prompts([prompt])
    start = inputs["input_ids"].shape[1]
    ref = ref_gen.fast_decoder.generate(inputs["input_ids"], inputs["attention_mask"], ["clone"],
                                        SamplingConfig(do_sample=False, max_new_tokens=60), min_new_tokens=60)

    _, quantized = load_llm(tiny_release / "LLM", "cpu", quantize=quantize)
    kernel = quantized.sparktts_kernel
    assert kernel == quantize if quantize != "auto" else kernel.split("/")[0] in AUTO_SCHEMES
    assert not any(type(m) is nn.Linear for m in quantized.get_decoder().layers.modules())
    fast = SpeechGenerator(quantized, tokenizer).fast_decoder
    with torch.inference_mode():
        hidden = fast.body(input_ids=ref[:, :-1]).last_hidden_state[0, start - 1:]
        allowed = fast.masks[int(Phase.SEMANTIC_START)] | fast.masks[int(Phase.SEMANTIC)]
        choice = fast.ids[fast._logits(hidden).masked_fill(~allowed, float("-inf")).argmax(-1)]
    agreement = float((choice == ref[0, start:]).float().mean())
    assert agreement >= 0.95, agreement
    # The lean decoder gives the same tokens through the direct kernel calls as the modules above do.
    out = fast.generate(inputs["input_ids"], inputs["attention_mask"], ["clone"],
                        SamplingConfig(do_sample=False, max_new_tokens=60), min_new_tokens=60)
    assert float((out[0, start:] == ref[0, start:]).float().mean()) >= 0.9


# -- the codec's wave generator in bf16 --------------------------------------------------------------


def test_bf16_wave_generator_decodes_within_minus_34_db_of_float32(tiny_release):
    """Measured on the tiny release: -42 dB (0.8 % relative RMS); windowed decoding (700 > 512 tokens) included."""
    import numpy as np

    from sparktts.codec import BiCodecTokens
    from sparktts.codec.tokenizer import BiCodecTokenizer

    fp32 = BiCodecTokenizer(tiny_release, "cpu")
    bf16 = BiCodecTokenizer(tiny_release, "cpu", decoder_dtype="bfloat16")
    assert bf16.decoder_dtype == torch.bfloat16 and next(bf16.model.prenet.parameters()).dtype == torch.float32
    gen = torch.Generator().manual_seed(0)
    tokens = BiCodecTokens(torch.randint(0, 4096, (2, 32), generator=gen),
                           torch.randint(0, fp32.model.quantizer.codebook_size, (2, 700), generator=gen))
    for ref, fast in zip(fp32.decode(tokens), bf16.decode(tokens)):
        assert fast.dtype == np.float32 and fast.shape == ref.shape
        rel = np.sqrt(np.mean((fast - ref) ** 2) / np.mean(ref**2))
        assert 0 < rel < 0.02, rel
    # Tokenization never runs the generator: prompts give the same tokens either way.
    clip = np.sin(np.linspace(0, 2000, 32000)).astype(np.float32) * 0.3
    assert torch.equal(fp32.encode(clip, 16000).semantic_ids, bf16.encode(clip, 16000).semantic_ids)


def test_codec_dtype_auto_follows_the_hardware_and_bad_values_are_named():
    from sparktts.device import native_bf16, resolve_codec_dtype
    from sparktts.errors import ConfigError

    cpu = torch.device("cpu")
    assert resolve_codec_dtype(None, cpu) == torch.float32
    assert resolve_codec_dtype("bf16", cpu) == torch.bfloat16
    assert resolve_codec_dtype("auto", cpu) == (torch.bfloat16 if native_bf16(cpu) else torch.float32)
    assert native_bf16(cpu) == bool({"avx512_bf16", "amx_bf16"} & set(cpu_features()["flags"]))
    with pytest.raises(ConfigError, match="'float32', 'bfloat16' or 'auto', not 'float16'"):
        resolve_codec_dtype("float16", cpu)


def test_bf16_wav2vec2_moves_features_little_and_keeps_the_voice(tiny_release):
    """Measured on the tiny release with the demo prompt: features 1.5 % RMS, 95 % of semantic tokens equal."""
    from sparktts.assets import demo_prompt
    from sparktts.codec.tokenizer import BiCodecTokenizer

    fp32 = BiCodecTokenizer(tiny_release, "cpu")
    bf16 = BiCodecTokenizer(tiny_release, "cpu", features_dtype="bfloat16")
    wav = fp32.load(str(demo_prompt()))
    a, b = fp32.features([wav]).features, bf16.features([wav]).features
    assert b.dtype == torch.float32 and b.shape == a.shape
    rel = float(((a - b).pow(2).mean() / a.pow(2).mean()).sqrt())
    assert 0 < rel < 0.05, rel
    ta, tb = fp32.encode(str(demo_prompt())), bf16.encode(str(demo_prompt()))
    assert torch.equal(ta.global_ids, tb.global_ids)  # the speaker path does not use wav2vec2
    assert float((ta.semantic_ids == tb.semantic_ids).float().mean()) >= 0.85


def test_bf16_wav2vec2_stores_its_weights_in_bf16_with_the_features_of_autocast(tiny_release, monkeypatch):
    """Stored bf16 weights are what autocast casts to on every call: same features to the bit, half the bytes."""
    from sparktts.assets import demo_prompt
    from sparktts.audio import load_audio
    from sparktts.codec import wav2vec2

    root = tiny_release / "wav2vec2-large-xlsr-53"
    stored = wav2vec2.Wav2Vec2Features(root, compute_dtype=torch.bfloat16)
    monkeypatch.setattr(wav2vec2, "_store_matmul_weights", lambda model, dtype: None)
    cast = wav2vec2.Wav2Vec2Features(root, compute_dtype=torch.bfloat16)
    linear = [m for m in stored.model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv1d))]
    assert linear and all(m.weight.dtype == torch.bfloat16 for m in linear)
    norms = [m for m in stored.model.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert norms and all(m.weight.dtype == torch.float32 for m in norms)
    size = [sum(p.numel() * p.element_size() for p in f.parameters()) for f in (stored, cast)]
    assert size[0] < 0.55 * size[1], size
    wav = load_audio(str(demo_prompt()), target_sr=16000)
    batch = [wav[:40000], wav[5000:31000]]  # a ragged batch exercises the attention mask too
    for wavs in ([wav], batch):
        a, b = stored(wavs, keep_hidden=True), cast(wavs, keep_hidden=True)
        assert torch.equal(a.features, b.features)
        assert all(torch.equal(a.hidden[k], b.hidden[k]) for k in a.hidden)


# -- fused q/k/v and gate/up ---------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["int8", "int8-weight", "int4", "bf16"])
def test_fused_projections_are_bit_identical_to_separate_layers(tiny_release, scheme):
    """Fusing q/k/v and gate/up changes no number: transformers' forward, the lean decoder, the layers alone."""
    from sparktts.format.prompts import build_clone_prompt
    from sparktts.llm.generator import SpeechGenerator
    from sparktts.llm.kernels import FusedLinear, OutputSlice
    from sparktts.llm.model import load_llm
    from sparktts.llm.quantize import load_int8
    from sparktts.llm.sampling import SamplingConfig

    tokenizer, _ = load_llm(tiny_release / "LLM", "cpu")
    fused, separate = (load_int8(tiny_release / "LLM", scheme, fuse=f) for f in (True, False))
    layer = fused.get_decoder().layers[0]
    assert isinstance(layer.self_attn.fused_qkv, FusedLinear) and isinstance(layer.mlp.up_proj, OutputSlice)
    assert not hasattr(separate.get_decoder().layers[0].self_attn, "fused_qkv")
    # Not stored twice: each weight lives in the fused layer only.
    assert sum(1 for n, _ in fused.named_buffers() if "q_proj" in n) == 0

    ids = tokenizer(["A test of the fused layers, long enough for a few tokens."], return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        assert torch.equal(fused(input_ids=ids).logits, separate(input_ids=ids).logits)
    assert layer.self_attn.fused_qkv._memo is None and layer.mlp.fused_gate_up._memo is None  # nothing held
    # Called alone, on inputs that change between calls, each part is its own layer.
    x1, x2 = torch.randn(2, 3, layer.self_attn.q_proj.in_features).unbind(0)
    for name in ("q_proj", "k_proj", "v_proj"):
        ours, theirs = getattr(layer.self_attn, name), getattr(separate.get_decoder().layers[0].self_attn, name)
        for x in (x1, x2, x1):
            assert torch.equal(ours(x), theirs(x))

    prompt = build_clone_prompt("The quick brown fox jumps over the lazy dog.", list(range(32)))
    runs = []
    for model in (fused, separate):
        gen = SpeechGenerator(model, tokenizer)
        inputs = gen.encode_prompts([prompt])
        runs.append(gen.fast_decoder.generate(inputs["input_ids"], inputs["attention_mask"], ["clone"],
                                              SamplingConfig(do_sample=False, max_new_tokens=40), min_new_tokens=40))
    assert gen.fast_decoder.lean.layers[0].qkv is None
    assert SpeechGenerator(fused, tokenizer).fast_decoder.lean.layers[0].qkv is not None
    assert torch.equal(runs[0], runs[1])
