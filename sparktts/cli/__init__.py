"""``sparktts`` command line: ``sparktts clone | create | voice | tokenize | inference``, thin over the API.

Examples::

    sparktts clone  --model_dir M --text "Hello." --prompt_audio ref.wav --out hello.wav --seed 0
    sparktts voice  --model_dir M ref.wav --out anna.json [--transcript "..."]
    sparktts clone  --model_dir M --text "Hello again." --voice anna.json --out again.wav
    sparktts create --model_dir M --text "Hi." --gender female --pitch high --speed moderate --out hi.wav \\
                    --save_voice new.json
    sparktts tokenize --model_dir M ref.wav --out ref.tokens.json
    sparktts inference --text ... (the original flags; same as python -m sparktts.cli.inference)
    sparktts prepare | train codec | train lm | export   (training, see sparktts.cli.train)
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from sparktts import defaults
from sparktts.format.tokens import GENDER_MAP, LEVELS_MAP

__all__ = ["build_parser", "main"]

TRAINING_COMMANDS = ("prepare", "train", "export")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model_dir", default="pretrained_models/Spark-TTS-0.5B",
                   help="Release directory, builtin (the built-in model) or hub id")
    p.add_argument("--device", default=None, help="cpu, cuda:N, mps or a CUDA index (default: GPU if available)")


def _synthesis_options(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--text", required=True, help="Text to speak (long texts are split into sentences)")
    p.add_argument("--out", required=True, help="Output wav path")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--dtype", default=None, help="LLM dtype: float32 (default), bfloat16, float16, auto")
    p.add_argument("--quantize", choices=defaults.QUANTIZE, default=None, help=defaults.QUANTIZE_HELP)
    p.add_argument("--codec_dtype", choices=defaults.CODEC_DTYPES, default=None, help=defaults.CODEC_DTYPE_HELP)
    p.add_argument("--temperature", type=float, default=defaults.TEMPERATURE)
    p.add_argument("--top_k", type=int, default=defaults.TOP_K)
    p.add_argument("--top_p", type=float, default=defaults.TOP_P)
    p.add_argument("--max_new_tokens", type=int, default=defaults.MAX_NEW_TOKENS)
    p.add_argument("--greedy", action="store_true", help="Greedy decoding (deterministic)")
    p.add_argument("--unconstrained", action="store_true", help="The original's unconstrained generate")
    p.add_argument("--save_voice", default=None, help="Write the voice used / created to this JSON file")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sparktts", description="Spark-TTS toolkit")
    sub = parser.add_subparsers(dest="command", required=True)

    clone = sub.add_parser("clone", help="Speak text in the voice of a reference clip or a voice file")
    _synthesis_options(clone)
    src = clone.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt_audio", help="Reference clip")
    src.add_argument("--voice", help="Voice JSON (from `sparktts voice` or --save_voice)")
    clone.add_argument("--prompt_text", default=None, help="Transcript of --prompt_audio")

    create = sub.add_parser("create", help="Design a voice from gender / pitch / speed and speak text")
    _synthesis_options(create)
    create.add_argument("--gender", required=True, choices=list(GENDER_MAP))
    create.add_argument("--pitch", required=True, choices=list(LEVELS_MAP))
    create.add_argument("--speed", required=True, choices=list(LEVELS_MAP))

    voice = sub.add_parser("voice", help="Tokenize a reference clip into a reusable voice JSON")
    _common(voice)
    voice.add_argument("audio")
    voice.add_argument("--out", required=True)
    voice.add_argument("--transcript", default=None, help="Transcript: keeps the clip's tokens as a prompt")
    voice.add_argument("--name", default=None)

    tok = sub.add_parser("tokenize", help="Write a clip's BiCodec tokens (global + semantic) as JSON")
    _common(tok)
    tok.add_argument("audio")
    tok.add_argument("--out", required=True)

    sub.add_parser("inference", help="The original cli/inference.py flags (see its --help)", add_help=False)
    for name in TRAINING_COMMANDS:
        sub.add_parser(name, help=f"Training: see `sparktts {name} --help`", add_help=False)
    return parser


def _check_args(args: argparse.Namespace) -> None:
    """What can be checked before a model loads, with errors naming the flags (see sparktts.cli.inference)."""
    from sparktts.cli.inference import check_output_dir, check_prompt_audio
    from sparktts.errors import PromptError

    if args.command in ("clone", "create") and not args.text.strip():
        raise PromptError("--text is empty; give the words to speak")
    if args.command == "clone":
        if args.voice and args.prompt_text is not None:
            raise PromptError("--prompt_text was given with --voice; a voice file carries its own transcript. Drop "
                              "--prompt_text, or clone from --prompt_audio with it")
        if args.prompt_text is not None and not args.prompt_text.strip():
            raise PromptError("--prompt_text is empty; give the transcript of --prompt_audio, or drop it")
        if args.prompt_audio:
            check_prompt_audio(args.prompt_audio, "--prompt_audio")
    if args.command in ("voice", "tokenize"):
        check_prompt_audio(args.audio, "audio")
    check_output_dir(Path(args.out).parent, "--out")
    if getattr(args, "save_voice", None):
        check_output_dir(Path(args.save_voice).parent, "--save_voice")


def _run(args: argparse.Namespace) -> str:
    from sparktts.cli.inference import pick_device
    from sparktts.inference.tts import SparkTTS

    _check_args(args)
    voice = None
    if args.command == "clone" and args.voice:
        from sparktts.voices import Voice

        voice = Voice.load(args.voice)  # a bad voice file fails before the model loads
    device = pick_device(args.device) if args.device is not None else None
    if args.command == "tokenize":
        from sparktts.codec.tokenizer import BiCodecTokenizer

        tokens = BiCodecTokenizer.from_pretrained(args.model_dir, device=device).encode(args.audio)
        return str(tokens.save(args.out))
    if args.command == "voice":
        from sparktts.codec.tokenizer import BiCodecTokenizer
        from sparktts.voices import Voice

        tokenizer = BiCodecTokenizer.from_pretrained(args.model_dir, device=device)
        return str(Voice.from_audio(tokenizer, args.audio, args.transcript, name=args.name).save(args.out))

    tts = SparkTTS.from_pretrained(args.model_dir, device=device, dtype=args.dtype, quantize=args.quantize,
                                   codec_dtype=args.codec_dtype)
    common = dict(seed=args.seed, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                  max_new_tokens=args.max_new_tokens, do_sample=not args.greedy, constrained=not args.unconstrained)
    if args.command == "clone":
        voice = voice or tts.make_voice(args.prompt_audio, args.prompt_text)
        result = tts.clone(args.text, voice=voice, **common)
    else:
        result = tts.create(args.text, args.gender, args.pitch, args.speed, **common)
    path = result.save(args.out)
    if args.save_voice:
        result.voice().save(args.save_voice)
    logging.getLogger("sparktts.cli").info("seed %s, %.2f s of audio", result.seed, result.duration)
    return str(Path(path))


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point (``sparktts``). Returns 0, 2 for a user error (message on stderr), 130 for Ctrl-C."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "inference":
        from sparktts.cli.inference import main as inference_main

        return inference_main(argv[1:])
    if argv and argv[0] in TRAINING_COMMANDS:
        from sparktts.cli.train import main as train_main

        return train_main(argv)
    from sparktts.cli.inference import run_cli

    logging.basicConfig(level=logging.INFO, format="%(levelname)s - %(message)s")
    args = build_parser().parse_args(argv)
    return run_cli(_run, args)
