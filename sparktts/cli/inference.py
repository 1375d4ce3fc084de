"""``python -m sparktts.cli.inference``: the original ``cli/inference.py`` command line, plus seeds, voices
and streaming.

Original flags: ``--text --device --save_dir --model_dir --prompt_text --prompt_speech_path --gender --pitch
--speed``. Added: ``--seed``, ``--voice`` (a voice JSON instead of ``--prompt_speech_path``),
``--save_voice`` (write the voice used or created), ``--stream`` (write the file chunk by chunk as it is
generated and report the time to the first chunk), ``--dtype``, ``--unconstrained``, ``--legacy_join``.
Like the original it writes ``{save_dir}/{YYYYmmddHHMMSS}.wav``; it prints that path on stdout.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import torch

from sparktts.errors import SparkTTSError
from sparktts.prompts import GENDER_MAP, LEVELS_MAP

__all__ = ["build_parser", "main", "pick_device", "run_tts", "timestamped_path"]

log = logging.getLogger("sparktts.cli")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (the original's flags and defaults, then the additions)."""
    p = argparse.ArgumentParser(prog="python -m sparktts.cli.inference", description="Run TTS inference.")
    p.add_argument("--model_dir", type=str, default="pretrained_models/Spark-TTS-0.5B",
                   help="Path to the model directory (or a hub repo id when online)")
    p.add_argument("--save_dir", type=str, default="example/results", help="Directory to save generated audio files")
    p.add_argument("--device", type=str, default="0",
                   help="CUDA device number as in the original (falls back to MPS / CPU), or cpu / cuda:N / mps")
    p.add_argument("--text", type=str, required=True, help="Text for TTS generation")
    p.add_argument("--prompt_text", type=str, help="Transcript of prompt audio")
    p.add_argument("--prompt_speech_path", type=str, help="Path to the prompt audio file")
    p.add_argument("--gender", choices=list(GENDER_MAP))
    p.add_argument("--pitch", choices=list(LEVELS_MAP))
    p.add_argument("--speed", choices=list(LEVELS_MAP))
    # Additions.
    p.add_argument("--seed", type=int, default=None, help="Sampling seed (printed when not given)")
    p.add_argument("--voice", type=str, default=None, help="Voice JSON to clone (instead of --prompt_speech_path)")
    p.add_argument("--save_voice", type=str, default=None, help="Write the voice used / created to this JSON file")
    p.add_argument("--stream", action="store_true", help="Generate and write the audio chunk by chunk")
    p.add_argument("--dtype", type=str, default=None, help="LLM dtype: float32 (default), bfloat16, float16, auto")
    p.add_argument("--quantize", choices=("int8",), default=None, help="int8 LLM on CPU (faster; changes numbers)")
    p.add_argument("--max_new_tokens", type=int, default=3000)
    p.add_argument("--unconstrained", action="store_true", help="The original's unconstrained generate")
    p.add_argument("--legacy_join", action="store_true",
                   help="Join prompt_text and text without a space, exactly like the original")
    return p


def pick_device(arg: str | None) -> torch.device:
    """The original's rule for a device number: CUDA if available, else Apple MPS, else CPU."""
    if arg is None or arg.isdigit():
        index = int(arg or 0)
        if torch.cuda.is_available():
            return torch.device(f"cuda:{index}")
        if torch.backends.mps.is_available():
            return torch.device(f"mps:{index}")
        return torch.device("cpu")
    return torch.device(arg)


def timestamped_path(save_dir: str | os.PathLike) -> Path:
    """``save_dir/YYYYmmddHHMMSS.wav`` as the original, with ``_1``, ``_2`` ... instead of overwriting."""
    stamp = datetime.now().strftime("%Y%m%d%H%M%S")
    path = Path(save_dir) / f"{stamp}.wav"
    k = 1
    while path.exists():
        path = Path(save_dir) / f"{stamp}_{k}.wav"
        k += 1
    return path


def run_tts(args: argparse.Namespace) -> Path:
    """Synthesise per ``args`` and write the wav; returns its path."""
    import soundfile

    from sparktts.api import SparkTTS
    from sparktts.errors import PromptError
    from sparktts.voices import Voice

    creating = args.gender is not None or args.pitch is not None or args.speed is not None
    if creating and (args.voice or args.prompt_speech_path):
        raise PromptError("--gender/--pitch/--speed create a new voice; drop --voice / --prompt_speech_path, "
                          "or drop the labels to clone")
    if args.voice and args.prompt_speech_path:
        raise PromptError("give either --voice or --prompt_speech_path, not both")
    voice = Voice.load(args.voice) if args.voice else None  # fail fast, before loading the model

    device = pick_device(args.device)
    log.info("Using model from: %s on %s", args.model_dir, device)
    tts = SparkTTS.from_pretrained(args.model_dir, device=device, dtype=args.dtype, quantize=args.quantize)
    os.makedirs(args.save_dir, exist_ok=True)
    save_path = timestamped_path(args.save_dir)
    common = dict(seed=args.seed, max_new_tokens=args.max_new_tokens, constrained=not args.unconstrained)
    if not creating and voice is None:
        voice = tts._resolve_voice(args.prompt_speech_path, args.prompt_text, None, None)
    if args.stream:
        if creating:
            stream = tts.stream(args.text, gender=args.gender, pitch=args.pitch, speed=args.speed, **common)
        else:
            stream = tts.stream(args.text, voice=voice, legacy_join=args.legacy_join, **common)
        with soundfile.SoundFile(str(save_path), "w", samplerate=tts.sample_rate, channels=1,
                                 subtype="PCM_16") as f:
            for chunk in stream:
                f.write(chunk.clip(-1, 1))
                f.flush()
        result = stream.result()
        log.info("First audio after %.3f s", stream.timings.get("first_chunk_s", float("nan")))
    else:
        if creating:
            result = tts.create(args.text, args.gender, args.pitch, args.speed, **common)
        else:
            result = tts.clone(args.text, voice=voice, legacy_join=args.legacy_join, **common)
        result.save(save_path)
    log.info("Seed: %s; %.2f s of audio in %.2f s", result.seed, result.duration, result.timings.get("total_s", 0))
    if args.save_voice:
        out_voice = result.voice() if creating else voice
        out_voice.save(args.save_voice)  # type: ignore[union-attr]
        log.info("Voice saved at: %s", args.save_voice)
    log.info("Audio saved at: %s", save_path)
    return save_path


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 2 for a user error with its message on stderr)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s - %(levelname)s - %(message)s")
    args = build_parser().parse_args(argv)
    try:
        path = run_tts(args)
    except SparkTTSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
