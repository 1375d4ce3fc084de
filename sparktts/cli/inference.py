"""``python -m sparktts.cli.inference``: the original ``cli/inference.py`` command line, plus seeds, voices
and streaming.

Original flags: ``--text --device --save_dir --model_dir --prompt_text --prompt_speech_path --gender --pitch
--speed``. Added: ``--seed``, ``--voice`` (a voice JSON instead of ``--prompt_speech_path``),
``--save_voice`` (write the voice used or created), ``--stream`` (write the file chunk by chunk as it is
generated and report the time to the first chunk), ``--dtype``, ``--unconstrained``, ``--legacy_join``.
Like the original it writes ``{save_dir}/{YYYYmmddHHMMSS}.wav``; it prints that path on stdout.

The flags are checked before the model loads (the prompt clip is read, ``--save_dir`` must be writable,
``--device`` must exist), and errors name the flag to fix. The wav is written to a hidden temporary file
and renamed when complete (also with ``--stream``), so Ctrl-C, ``kill -9`` or a full disk never leave a
truncated wav under the final name; Ctrl-C exits with status 130 and one line on stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from sparktts import defaults
from sparktts.device import resolve_device
from sparktts.errors import AudioError, ConfigError, PromptError, SparkTTSError
from sparktts.format.tokens import GENDER_MAP, LEVELS_MAP

__all__ = ["build_parser", "check_output_dir", "check_prompt_audio", "main", "pick_device", "run_cli", "run_tts",
           "timestamped_path"]

log = logging.getLogger("sparktts.cli")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (the original's flags and defaults, then the additions)."""
    p = argparse.ArgumentParser(prog="python -m sparktts.cli.inference", description="Run TTS inference.")
    p.add_argument("--model_dir", type=str, default="pretrained_models/Spark-TTS-0.5B",
                   help="Path to the model directory, builtin (the built-in model) or a hub repo id when online")
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
    p.add_argument("--quantize", choices=defaults.QUANTIZE, default=None, help=defaults.QUANTIZE_HELP)
    p.add_argument("--codec_dtype", choices=defaults.CODEC_DTYPES, default=None, help=defaults.CODEC_DTYPE_HELP)
    p.add_argument("--max_new_tokens", type=int, default=defaults.MAX_NEW_TOKENS)
    p.add_argument("--unconstrained", action="store_true", help="The original's unconstrained generate")
    p.add_argument("--legacy_join", action="store_true",
                   help="Join prompt_text and text without a space, exactly like the original")
    return p


def pick_device(arg: str | None) -> torch.device:
    """The device for ``--device`` (:func:`sparktts.device.resolve_device`, messages naming the flag).

    Raises:
        ConfigError: a ``--device`` that torch does not know, or one this machine does not have.
    """
    return resolve_device(arg, name="--device")


def check_output_dir(folder: str | os.PathLike, flag: str) -> Path:
    """Make sure ``folder`` can take the output before the model is loaded; the error names ``flag``."""
    from sparktts.fileio import check_writable_dir

    try:
        return check_writable_dir(folder)
    except OSError as exc:
        raise ConfigError(f"{flag} {str(folder)!r} cannot be written ({exc.strerror or exc}); choose a folder you "
                          "can write to") from None


def check_prompt_audio(path: str, flag: str) -> None:
    """Read the prompt clip once before the model is loaded, so a bad file fails in seconds, naming ``flag``."""
    from sparktts.audio import load_audio

    try:
        load_audio(path)
    except AudioError as exc:
        raise AudioError(f"{flag}: {exc}") from None


def run_cli(run: Any, args: argparse.Namespace) -> int:
    """Run ``run(args)`` for a command line: print its result, or one line on stderr with the exit status
    (2 for a user error or a file that cannot be written, 130 for Ctrl-C) instead of a traceback."""
    try:
        print(run(args))
    except SparkTTSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. the disk filled up while writing; the atomic write left nothing behind
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        print(f"error: {where}{exc.strerror or exc}; nothing was written there. Free space or choose another "
              "output folder.", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted (Ctrl-C): stopped; no partial output file was left behind.", file=sys.stderr)
        return 130
    return 0


def timestamped_path(save_dir: str | os.PathLike) -> Path:
    """``save_dir/YYYYmmddHHMMSS.wav`` as the original, with ``_1``, ``_2`` ... instead of overwriting."""
    stamp = datetime.now().strftime("%Y%m%d%H%M%S")
    path = Path(save_dir) / f"{stamp}.wav"
    k = 1
    while path.exists():
        path = Path(save_dir) / f"{stamp}_{k}.wav"
        k += 1
    return path


def _check_args(args: argparse.Namespace, creating: bool) -> None:
    """Everything about the flags that can be checked without the model, in the flags' own names."""
    if not args.text.strip():
        raise PromptError("--text is empty; give the words to speak")
    if creating:
        missing = [f"--{n}" for n in ("gender", "pitch", "speed") if getattr(args, n) is None]
        if missing:
            raise PromptError(f"voice creation needs --gender, --pitch and --speed; missing {', '.join(missing)}")
        if args.voice or args.prompt_speech_path or args.prompt_text:
            raise PromptError("--gender/--pitch/--speed create a new voice; drop --voice / --prompt_speech_path / "
                              "--prompt_text, or drop the labels to clone")
        return
    if args.voice and args.prompt_speech_path:
        raise PromptError("give either --voice or --prompt_speech_path, not both")
    if args.prompt_text is not None and args.voice:
        raise PromptError("--prompt_text was given with --voice; a voice file carries its own transcript. Drop "
                          "--prompt_text, or clone from --prompt_speech_path with it")
    if args.prompt_text is not None and not args.prompt_speech_path:
        raise PromptError("--prompt_text was given without prompt audio: it is the transcript of the reference "
                          "clip, so pass the clip too (--prompt_speech_path), or drop --prompt_text")
    if not args.voice and not args.prompt_speech_path:
        raise PromptError("voice cloning needs a voice: pass --prompt_speech_path (a reference clip) or --voice (a "
                          "voice JSON); to create a new voice give --gender, --pitch and --speed")
    if args.prompt_text is not None and not args.prompt_text.strip():
        raise PromptError("--prompt_text is empty; give the transcript of --prompt_speech_path, or drop it")


def run_tts(args: argparse.Namespace) -> Path:
    """Synthesise per ``args`` and write the wav; returns its path."""
    import soundfile

    from sparktts.fileio import atomic_write
    from sparktts.inference.tts import SparkTTS
    from sparktts.voices import Voice

    creating = args.gender is not None or args.pitch is not None or args.speed is not None
    _check_args(args, creating)
    # Fail fast, before minutes of model loading: the voice file, the prompt clip, the output folders, the device.
    voice = Voice.load(args.voice) if args.voice else None
    if args.prompt_speech_path:
        check_prompt_audio(args.prompt_speech_path, "--prompt_speech_path")
    check_output_dir(args.save_dir, "--save_dir")
    if args.save_voice:
        check_output_dir(Path(args.save_voice).parent, "--save_voice")
    device = pick_device(args.device)
    log.info("Using model from: %s on %s", args.model_dir, device)
    tts = SparkTTS.from_pretrained(args.model_dir, device=device, dtype=args.dtype, quantize=args.quantize,
                                   codec_dtype=args.codec_dtype)
    save_path = timestamped_path(args.save_dir)
    common = dict(seed=args.seed, max_new_tokens=args.max_new_tokens, constrained=not args.unconstrained)
    if not creating and voice is None:
        voice = tts.resolve_voice(args.prompt_speech_path, args.prompt_text)
    if args.stream:
        if creating:
            stream = tts.stream(args.text, gender=args.gender, pitch=args.pitch, speed=args.speed, **common)
        else:
            stream = tts.stream(args.text, voice=voice, legacy_join=args.legacy_join, **common)
        # Chunks go to a hidden temporary file as they arrive; the wav appears under its name only when complete.
        with stream, atomic_write(save_path) as fh, soundfile.SoundFile(
                fh, "w", samplerate=tts.sample_rate, channels=1, subtype="PCM_16", format="WAV") as f:
            for chunk in stream:
                f.write(chunk.clip(-1, 1))
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
    """Entry point; returns the exit status (0 ok, 2 for a user error with its message on stderr, 130 for
    Ctrl-C)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s - %(levelname)s - %(message)s")
    args = build_parser().parse_args(argv)
    return run_cli(run_tts, args)


if __name__ == "__main__":
    sys.exit(main())
