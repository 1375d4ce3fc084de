"""Speed benchmark at full model size: the original's way of computing vs this toolkit's fast paths.

    python benchmarks/run.py                      # CPU, 2 threads, all paths, JSON + table
    python benchmarks/run.py --device cuda --paths baseline fast bf16
    python benchmarks/run.py --quick              # fewer tokens (a smoke run)

A full-size random-weight release (released BiCodec, wav2vec2-large, Qwen2.5-0.5B dims with a
166,000-entry vocabulary) is built once and cached (``--release``). Every path runs in its own
subprocess, so its load time and peak RSS are its own:

* ``baseline``: what the original computes, the way it computes it: fp32, ``model.generate`` without
  constraints, the full-vocabulary head, all 24 wav2vec2 layers, batch 1 run one item after another.
* ``fast``: the default here: 16 wav2vec2 layers, the restricted-head KV-cached decoder, batching.
* ``bf16``: ``fast`` with the LLM in bfloat16.  ``int8``: ``fast`` with dynamic int8 linear layers.
* ``bf16-all``: no integer quantization anywhere: the LLM body on the ``bf16`` kernel (packed bf16
  weights, fp32 elsewhere), the wave generator and the wav2vec2 stage in bf16.
* ``int4``: ``fast`` with int4 weights (groups of 32, bf16 activations).
* ``auto``: ``quantize="auto"`` and ``codec_dtype="auto"``: the kernels this machine measures fastest.
* ``fastest``: int4 LLM, the codec's wave generator and the wav2vec2 stage in bf16.

``--original FILE`` adds a column of figures measured with the original implementation (a JSON object of
the metric keys below, plus ``"machine"``), e.g. ``benchmarks/original_sapphire_rapids.json``. The
machine's CPU model, instruction-set flags and torch's kernels are recorded with the results.

Random weights decide nothing about the lengths here: every generation is forced to an exact token
count (``min_new_tokens`` = ``max_new_tokens``), so paths are compared on identical work. The
end-to-end real-time factor is for ~5 s of cloned speech: tokenize a 6 s prompt + generate 250 tokens
+ detokenize 250 tokens, divided by 5 s. Timings are medians over ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

PATHS = ("baseline", "fast", "bf16", "bf16-all", "int8", "int4", "auto", "fastest")
# (LLM dtype, quantize, codec dtype, wav2vec2 dtype) of every non-baseline path.
SETTINGS = {
    "fast": (None, None, None, None),
    "bf16": ("bfloat16", None, None, None),
    "bf16-all": (None, "bf16", "bfloat16", "bfloat16"),  # no integer quantization anywhere
    "int8": (None, "int8", None, None),
    "int4": (None, "int4", None, None),
    "auto": (None, "auto", "auto", None),  # what this machine's measured kernel choice and native bf16 give
    "fastest": (None, "int4", "bfloat16", "bfloat16"),
}


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up: first calls pay one-time kernel and allocator set-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def speech_like(seconds: float, sr: int = 16000, seed: int = 0) -> np.ndarray:
    """A voiced, syllable-modulated test signal (the weights are random: content does not matter)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    voiced = np.sign(np.sin(2 * np.pi * np.cumsum(f0) / sr)) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)) ** 2
    return (0.25 * voiced + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def run_path(path: str, release: Path, device: str, quick: bool, repeats: int) -> dict:
    import torch

    from sparktts import SparkTTS
    from sparktts.codec import BiCodecTokens
    from sparktts.format.grammar import infer_mode
    from sparktts.format.prompts import build_clone_prompt, build_create_prompt
    from sparktts.llm.sampling import SamplingConfig

    torch.manual_seed(0)
    n_llm = 40 if quick else 100
    n_e2e = 250
    n_batch = 16 if quick else 32
    res: dict = {"path": path}

    t = time.perf_counter()
    dtype, quantize, codec_dtype, features_dtype = SETTINGS.get(path, (None, None, None, None))
    tts = SparkTTS.from_pretrained(release, device=device, dtype=dtype, engine="hf" if path == "baseline" else "fast",
                                   quantize=quantize, codec_dtype=codec_dtype, features_dtype=features_dtype)
    res["kernel"] = getattr(tts.model, "sparktts_kernel", None)
    res["codec_dtype"] = str(tts.audio_tokenizer.decoder_dtype).removeprefix("torch.")
    if path == "baseline":  # the original runs every wav2vec2 layer
        from sparktts.codec.wav2vec2 import Wav2Vec2Features

        tok = tts.audio_tokenizer
        tok.features = Wav2Vec2Features(release / "wav2vec2-large-xlsr-53", all_layers=True).to(tts.device)
    res["load_s"] = time.perf_counter() - t

    tok = tts.audio_tokenizer
    clips = {"6s": speech_like(6.0), "20s": speech_like(20.0, seed=1)}
    for name, clip in clips.items():
        wav = tok.load(clip, 16000)
        feats = median_time(lambda wav=wav: tok.features([wav]), repeats)
        total = median_time(lambda wav=wav: tok.encode_prepared([wav]), repeats)
        res[f"tokenize_{name}_s"] = total
        res[f"tokenize_{name}_wav2vec2_s"] = feats
    gen = torch.Generator().manual_seed(0)
    n_sem = tts.codec.quantizer.codebook_size
    for n in (250, 1000):
        tokens = BiCodecTokens(torch.randint(0, 4096, (1, tts.num_globals), generator=gen),
                               torch.randint(0, n_sem, (1, n), generator=gen))
        res[f"detokenize_{n}_s"] = median_time(lambda tokens=tokens: tok.decode(tokens), repeats)

    voice = tts.make_voice(clips["6s"], sample_rate=16000)
    clone_prompt = build_clone_prompt("The quick brown fox jumps over the lazy dog.", voice.global_ids)
    create_prompt = build_create_prompt("The quick brown fox jumps over the lazy dog.", "female", "high", "moderate")

    def generate(prompts: list[str], n: int) -> float:
        cfg = SamplingConfig(max_new_tokens=n, seed=0)
        g = tts.generator
        inputs = g.encode_prompts(prompts)
        t0 = time.perf_counter()
        with torch.inference_mode():
            if path == "baseline":
                out = tts.model.generate(**inputs, **cfg.generate_kwargs(), min_new_tokens=n,
                                         pad_token_id=g.vocab.pad_id)
            else:
                modes = [infer_mode(p) for p in prompts]
                out = g.fast_decoder.generate(inputs["input_ids"], inputs["attention_mask"], modes, cfg,
                                              min_new_tokens=n)
        elapsed = time.perf_counter() - t0
        assert out.shape[1] - inputs["input_ids"].shape[1] == n, "forced length not reached"
        return elapsed

    generate([clone_prompt], 4)  # warm-up
    for mode, prompt in (("clone", clone_prompt), ("create", create_prompt)):
        secs = statistics.median(generate([prompt], n_llm) for _ in range(repeats))
        res[f"llm_{mode}_tok_s"] = n_llm / secs

    # End to end for ~5 s of cloned speech, from the components with exact token counts.
    prompt_s = median_time(lambda: tok.encode_global(clips["6s"], 16000), repeats)
    gen_s = generate([clone_prompt], n_e2e)
    tokens = BiCodecTokens(torch.as_tensor(voice.global_ids)[None],
                           torch.randint(0, n_sem, (1, n_e2e), generator=gen))
    dec_s = median_time(lambda: tok.decode(tokens), 1)
    res["e2e_clone_5s_s"] = prompt_s + gen_s + dec_s
    res["e2e_clone_5s_rtf"] = res["e2e_clone_5s_s"] / (n_e2e / 50)
    # A saved voice: its global tokens are stored, so no prompt is tokenized.
    res["e2e_saved_voice_5s_rtf"] = (gen_s + dec_s) / (n_e2e / 50)

    # Throughput: B prompts of n_batch new tokens each. The baseline runs them one after another.
    for b in (1, 4, 8):
        prompts = [clone_prompt] * b
        if path == "baseline":
            secs = sum(generate([p], n_batch) for p in prompts)
        else:
            secs = generate(prompts, n_batch)
        res[f"throughput_b{b}_tok_s"] = b * n_batch / secs

    if path != "baseline":  # the original has no streaming
        # The benchmark's historical setting (25 / 8), then the smaller first windows a player would use.
        for key, first, lookahead in (("first_chunk_s", 25, 8), ("first_chunk_5_2_s", 5, 2),
                                      ("first_chunk_3_1_s", 3, 1)):
            def first_chunk(first: int = first, lookahead: int = lookahead) -> None:
                stream = tts.stream("The quick brown fox jumps over the lazy dog again and again.", voice=voice,
                                    first_chunk_tokens=first, chunk_tokens=25, lookahead=lookahead, seed=0,
                                    max_new_tokens=200)
                next(iter(stream))
                stream.close()
            res[key] = median_time(first_chunk, repeats)

    res["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    return res


def token_agreement(release: Path, n: int = 100) -> dict:
    """Quality cost of bf16 / int8 / int4 as greedy token agreement with fp32 (teacher-forced top-1).

    fp32 generates ``n`` greedy clone tokens; each variant then scores the same sequence in one forward
    pass and we count the positions where its restricted-head argmax equals fp32's token.
    """
    import torch

    from sparktts.format.grammar import Phase
    from sparktts.format.prompts import build_clone_prompt
    from sparktts.llm.generator import SpeechGenerator
    from sparktts.llm.model import load_llm
    from sparktts.llm.sampling import SamplingConfig

    prompt = build_clone_prompt("The quick brown fox jumps over the lazy dog.", list(range(32)))
    out: dict = {}
    reference = None
    # "bf16-dtype": the whole LLM in bf16 (dtype=); the others are kernel schemes of the body (quantize=).
    for variant in ("fp32", "bf16-dtype", "bf16", "int8", "int8-weight", "int4"):
        tokenizer, model = load_llm(release / "LLM", "cpu", "bfloat16" if variant == "bf16-dtype" else None,
                                    quantize=None if variant in ("fp32", "bf16-dtype") else variant)
        gen = SpeechGenerator(model, tokenizer)
        inputs = gen.encode_prompts([prompt])
        fast = gen.fast_decoder
        if reference is None:
            ids = fast.generate(inputs["input_ids"], inputs["attention_mask"], ["clone"],
                                SamplingConfig(do_sample=False, max_new_tokens=n), min_new_tokens=n)
            reference = ids
            continue
        with torch.inference_mode():
            hidden = fast.body(input_ids=reference[:, :-1]).last_hidden_state[:, inputs["input_ids"].shape[1] - 1:]
            allowed = fast.masks[int(Phase.SEMANTIC_START)] | fast.masks[int(Phase.SEMANTIC)]
            choice = fast._logits(hidden[0]).masked_fill(~allowed, float("-inf")).argmax(-1)
        predicted = fast.ids[choice]
        target = reference[0, inputs["input_ids"].shape[1]:]
        out[f"agreement_{variant}"] = float((predicted == target).float().mean())
    return out


def machine() -> dict:
    import torch

    from sparktts.device import cpu_features

    info = {"python": platform.python_version(), "threads": torch.get_num_threads(), **cpu_features()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def describe(info: dict) -> str:
    """One line naming the machine a table was measured on."""
    flags = ", ".join(info.get("flags", [])) or "no AVX2"
    return (f"{info.get('cpu', '?')} ({flags}), {info.get('threads', '?')} threads, torch {info.get('torch', '?')}, "
            f"quantized engine {info.get('quantized_engine', '?')}")


RATIOS = [  # (key, label, higher is better)
    ("load_s", "load (s)", False),
    ("tokenize_6s_s", "tokenize 6 s clip (s)", False),
    ("tokenize_6s_wav2vec2_s", "  of which wav2vec2 (s)", False),
    ("tokenize_20s_s", "tokenize 20 s clip (s)", False),
    ("detokenize_250_s", "detokenize 250 tokens (s)", False),
    ("detokenize_1000_s", "detokenize 1000 tokens (s)", False),
    ("llm_clone_tok_s", "LLM clone (tokens/s)", True),
    ("llm_create_tok_s", "LLM create (tokens/s)", True),
    ("e2e_clone_5s_rtf", "clone 5 s end to end (RTF)", False),
    ("e2e_saved_voice_5s_rtf", "saved voice 5 s end to end (RTF)", False),
    ("throughput_b1_tok_s", "batch 1 (tokens/s)", True),
    ("throughput_b4_tok_s", "batch 4 (tokens/s)", True),
    ("throughput_b8_tok_s", "batch 8 (tokens/s)", True),
    ("first_chunk_s", "first streamed chunk (s)", False),
    ("first_chunk_5_2_s", "first streamed chunk at 5 / 2 (s)", False),
    ("first_chunk_3_1_s", "first streamed chunk at 3 / 1 (s)", False),
    ("peak_rss_gb", "peak RSS (GB)", False),
    ("greedy_token_agreement", "greedy tokens equal to fp32 (fraction)", True),
]


def table(results: dict[str, dict], original: dict | None = None) -> str:
    """Markdown table; ratios are against the in-run baseline path. ``original``: an extra first column."""
    if original:
        results = {"original": original, **results}
    paths = list(results)
    base = results.get("baseline", {})
    head = f"| metric | {' | '.join(paths)} |\n|---|{'---|' * len(paths)}"
    rows = [head]
    for key, label, higher in RATIOS:
        cells = []
        for p in paths:
            v = results[p].get(key)
            if v is None:
                cells.append("–")
                continue
            cell = f"{v:.3g}"
            b = base.get(key)
            if p not in ("baseline", "original") and b:
                ratio = v / b if higher else b / v
                cell += f" ({ratio:.1f}x)"
            cells.append(cell)
        rows.append(f"| {label} | {' | '.join(cells)} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--release", default=None, help="default: ~/.cache/sparktts/random-release-<preset>")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--paths", nargs="+", default=list(PATHS), choices=PATHS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--preset", default="full", choices=("full", "tiny"), help="tiny: check the script only")
    parser.add_argument("--out", default="benchmarks/results.json")
    parser.add_argument("--original", default=None, help="JSON of the original implementation's figures")
    parser.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    release = Path(args.release or os.path.expanduser(f"~/.cache/sparktts/random-release-{args.preset}"))
    if args._child == "agreement":
        print(json.dumps(token_agreement(release)))
        return 0
    if args._child:
        print(json.dumps(run_path(args._child, release, args.device, args.quick, args.repeats)))
        return 0

    from sparktts.testing import make_random_release

    t = time.perf_counter()
    make_random_release(release, args.preset)
    print(f"full-size random release at {release} ({time.perf_counter() - t:.0f} s to build or find)")
    results = {}
    for path in args.paths:
        cmd = [sys.executable, __file__, "--release", str(release), "--device", args.device, "--threads",
               str(args.threads), "--repeats", str(args.repeats), "--_child", path]
        cmd += ["--quick"] if args.quick else []
        t = time.perf_counter()
        # The baseline keeps glibc's default allocator behaviour, as the original runs (see sparktts.runtime).
        env = dict(os.environ, SPARKTTS_NO_MALLOC_TUNING="1") if path == "baseline" else None
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            print(f"{path}: failed\n{proc.stderr[-3000:]}")
            continue
        results[path] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{path}: done in {time.perf_counter() - t:.0f} s")
    if {"bf16", "bf16-all", "int8", "int4", "fastest"} & set(args.paths):
        cmd = [sys.executable, __file__, "--release", str(release), "--threads", str(args.threads),
               "--_child", "agreement"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode == 0:
            agreement = json.loads(proc.stdout.strip().splitlines()[-1])
            for path, variant in (("bf16", "bf16-dtype"), ("bf16-all", "bf16"), ("int8", "int8"), ("int4", "int4"),
                                  ("fastest", "int4")):
                if path in results:
                    results[path]["greedy_token_agreement"] = agreement[f"agreement_{variant}"]
            if "auto" in results and results["auto"].get("kernel"):
                scheme = results["auto"]["kernel"].split("/")[0]
                results["auto"]["greedy_token_agreement"] = agreement.get(f"agreement_{scheme}")
        else:
            print(f"agreement: failed\n{proc.stderr[-3000:]}")
    original = json.loads(Path(args.original).read_text()) if args.original else None
    report = {"machine": machine(), "device": args.device, "quick": args.quick, "results": results,
              "original": original}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"Measured on: {describe(report['machine'])}")
    if original:
        print(f"original column: {original.get('machine', 'its own run')}")
    print(table(results, original))
    print(f"JSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
