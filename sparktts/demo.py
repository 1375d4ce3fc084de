"""``make demo``: run the toolkit end to end on a release directory and write wavs and figures.

With the real ``Spark-TTS-0.5B`` directory this shows real results. When it is missing and cannot be
downloaded, the demo runs on the built-in model (``builtin``: small, trained here on espeak-ng
English) when the checkout has it, and otherwise on a tiny random-weight release: every stage runs,
but the audio is noise, labelled "random weights: pipeline check only".
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .assets import demo_prompt, prompts_dir
from .audio import save_audio
from .checkpoint import DEFAULT_REPO_ID, RELEASE_LAYOUT, builtin_model_dir, resolve_model_dir
from .defaults import cache_dir
from .errors import CheckpointError

# The shipped data folder (package data, so a wheel install has it too); tests read DATA / "prompts".
DATA = prompts_dir().parent
RANDOM_LABEL = "random weights: pipeline check only"
BUILTIN_LABEL = "built-in model: small, espeak-ng English only"


def random_release_dir() -> Path:
    """Where the tiny random stand-in release is cached (in :func:`sparktts.defaults.cache_dir`)."""
    from . import __version__

    return cache_dir() / f"random-release-tiny-{__version__}"


def find_release(model: str | os.PathLike, download: bool = True) -> tuple[Path, bool]:
    """The release to use and whether it is a random stand-in.

    ``model`` if it is a directory; else, with ``download``, the hub release downloaded into ``model``;
    else the built-in model when it is there; else a tiny random release (built once, cached). Each
    fallback is announced.
    """
    path = Path(model)
    if path.is_dir():
        return resolve_model_dir(path, require=RELEASE_LAYOUT), False
    if download:
        try:
            print(f"{path} not found; trying to download {DEFAULT_REPO_ID} into it ...")
            return resolve_model_dir(DEFAULT_REPO_ID, require=RELEASE_LAYOUT, local_dir=path), False
        except CheckpointError as exc:
            print(f"No Spark-TTS model available: {str(exc).splitlines()[0]}")
    builtin = builtin_model_dir()
    if (builtin / "LLM" / "config.json").is_file():
        print(f"Running on the built-in model in {builtin} ({BUILTIN_LABEL}).")
        return resolve_model_dir(builtin, require=RELEASE_LAYOUT), False
    from .testing import make_random_release

    random_dir = random_release_dir()
    print(f"Running on a tiny random release in {random_dir} ({RANDOM_LABEL}).")
    if not (random_dir / "LLM" / "config.json").exists():
        # Build aside and rename, so a concurrent reader never sees a half-written release.
        random_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=random_dir.parent))
        make_random_release(tmp, "tiny")
        try:
            os.replace(tmp, random_dir)
        except OSError:  # another process finished first
            shutil.rmtree(tmp, ignore_errors=True)
    return random_dir, True


def is_builtin(release: Path) -> bool:
    """Whether ``release`` is the built-in model's folder."""
    builtin = builtin_model_dir()
    return builtin.is_dir() and Path(release).resolve() == builtin.resolve()


def codec_round_trip(release: Path, prompt: Path, out: Path, label: str) -> dict[str, float]:
    from .codec import BiCodecTokenizer
    from .plotting import codec_overview, save_figure

    t0 = time.perf_counter()
    tok = BiCodecTokenizer.from_pretrained(release, device="cpu")
    t1 = time.perf_counter()
    tokens = tok.encode(prompt)
    t2 = time.perf_counter()
    wav = tok.decode(tokens)[0]
    t3 = time.perf_counter()
    save_audio(out / "codec_roundtrip.wav", wav)
    tokens.save(out / "codec_tokens.json")
    fig = codec_overview(wav, tokens.global_ids[0].numpy(), tokens.semantic_ids[0].numpy(),
                         title=f"BiCodec round trip of {prompt.name} ({label})", reference=tok.load(prompt))
    save_figure(fig, out / "codec_roundtrip.png")
    print(f"codec: {tokens.semantic_ids.shape[1]} semantic + {tokens.global_ids.shape[1]} global tokens; "
          f"load {t1 - t0:.1f} s, tokenize {t2 - t1:.2f} s, detokenize {t3 - t2:.2f} s")
    return {"seconds": len(wav) / 16000, "rms": float(np.sqrt(np.mean(wav**2)))}


def generation(release: Path, prompt: Path, out: Path, label: str, max_new_tokens: int) -> None:
    """One voice clone and one voice creation, with their token figures and the created voice file."""
    from .api import SparkTTS
    from .plotting import codec_overview, save_figure

    tts = SparkTTS.from_pretrained(release, device="cpu")
    runs = {
        "clone": lambda: tts.clone("Hello! This sentence is spoken in the voice of the prompt clip.",
                                   prompt_audio=prompt, seed=0, max_new_tokens=max_new_tokens),
        "create": lambda: tts.create("Hello! This voice was designed from three labels.", gender="female",
                                     pitch="high", speed="moderate", seed=0, max_new_tokens=max_new_tokens),
    }
    for name, run in runs.items():
        result = run()
        result.save(out / f"{name}.wav")
        fig = codec_overview(result.audio, result.global_tokens, result.semantic_tokens,
                             title=f"{name} ({label})")
        save_figure(fig, out / f"{name}.png")
        extra = ""
        if name == "create":
            result.voice("demo-created").save(out / "created_voice.json")
            extra = f"; the model chose pitch {result.pitch_value} mel, speed {result.speed_value} syll/s"
        print(f"{name}: {result.duration:.2f} s of audio from {len(result.semantic_tokens)} semantic tokens "
              f"(seed {result.seed}) in {result.timings.get('total_s', float('nan')):.1f} s{extra}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sparktts.demo", description=__doc__)
    parser.add_argument("--model_dir", default="pretrained_models/Spark-TTS-0.5B")
    parser.add_argument("--prompt", default=str(demo_prompt()))
    parser.add_argument("--out", default="outputs/demo")
    parser.add_argument("--max_new_tokens", type=int, default=None,
                        help="LLM budget per utterance (default: 3000 with real weights, 300 with random ones)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    release, is_random = find_release(args.model_dir)
    label = RANDOM_LABEL if is_random else BUILTIN_LABEL if is_builtin(release) else release.name
    codec_round_trip(release, Path(args.prompt), out, label)
    budget = args.max_new_tokens or (300 if is_random else 3000)
    generation(release, Path(args.prompt), out, label, budget)
    print(f"Done ({label}). Outputs in {out}/:")
    for p in sorted(out.glob("*.*")):
        print(f"  {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
