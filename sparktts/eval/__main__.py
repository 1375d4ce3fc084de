"""Command line: ``python -m sparktts.eval score|roundtrip|run ...``.

Examples
--------
Score wavs that already exist (``<wavs>/<utt>.wav``)::

    python -m sparktts.eval score --list seedtts_testset/en/meta.lst --wavs gen/en --out results/en \\
        --lang en --asr-backend faster-whisper --asr-model large-v3 --sim-backend resemblyzer

Round-trip each item's recording (``gt_wav``, or ``audio`` in a manifest) through a codec, then score
(SIM against the recording itself)::

    python -m sparktts.eval roundtrip --list corpus/heldout.jsonl --model_dir runs/codec-release \\
        --out results/codec --asr-model base --signal

(``--signal``: also STOI, PESQ, mel distance, MCD, F0 RMSE and voicing error of each clip against its
recording, in ``results/codec/codec/``; ``--no-f0`` skips the two pitch metrics, the slow ones.)

Synthesise with a Spark-TTS checkpoint, then score::

    python -m sparktts.eval run --list seedtts_testset/en/meta.lst \\
        --model_dir pretrained_models/Spark-TTS-0.5B --out results/en --config eval/configs/seedtts_en.yaml

``--config`` reads a YAML file whose keys are the long option names, the same as the fields of
:class:`~sparktts.eval.runner.ScoringConfig` (``asr_backend``, ``asr_model``, ``sim_backend``, ``sim_model``,
``sim_code_dir``, ``lang``, ``device``, ``control``, ``identify``) plus ``engine`` and ``workers``; the older spellings
``asr``, ``sim`` and ``sim_code`` (keys and ``--asr`` / ``--sim`` / ``--sim-code``) are accepted as aliases.
Command-line options win. ``--retry-errors`` redoes items whose earlier row has an error.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

from sparktts import defaults
from sparktts.errors import SparkTTSError

from .asr import ASR_BACKENDS
from .codec_metrics import SIGNAL_DIR, score_roundtrip
from .errors import EvalError
from .lists import read_list
from .runner import ScoringConfig, run_eval, sparktts_synthesizer
from .scoring import OPTION_ALIASES, canonical_option
from .similarity import SIM_BACKENDS
from .synthesis import codec_roundtrip_synthesizer, roundtrip_items

# Defaults by canonical name: the scoring options are ScoringConfig's own defaults, read rather than copied.
_DEFAULTS: dict[str, object] = {
    **{f.name: f.default for f in fields(ScoringConfig)},
    "engine": "local",
    "workers": 1,
}


class EvalOptions(dict):
    """Resolved option values by canonical name; the old spellings (``"asr"``, ...) read as aliases."""

    def __getitem__(self, key: str) -> object:
        return super().__getitem__(canonical_option(key))

    def __contains__(self, key: object) -> bool:
        return super().__contains__(canonical_option(key) if isinstance(key, str) else key)

    def get(self, key: str, default: object = None) -> object:
        return super().get(canonical_option(key), default)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--list", required=True, type=Path, help="Seed-TTS-eval meta.lst or a JSONL list")
    p.add_argument("--out", required=True, type=Path, help="output folder (results.jsonl, summary.json)")
    p.add_argument("--config", type=Path, help="YAML file with defaults for the options below")
    p.add_argument(
        "--lang", choices=("en", "zh"), default=None, help="language of the list (default: guess per item)"
    )
    p.add_argument("--asr-backend", "--asr", dest="asr_backend", choices=(*ASR_BACKENDS, "none"), default=None,
                   help="ASR back end (default faster-whisper)")
    p.add_argument("--asr-model", dest="asr_model", default=None, help="Whisper name or local model path")
    p.add_argument("--sim-backend", "--sim", dest="sim_backend", choices=(*SIM_BACKENDS, "none"), default=None,
                   help="speaker model (default resemblyzer)")
    p.add_argument("--sim-model", dest="sim_model", default=None, help="speaker model weights / folder")
    p.add_argument(
        "--sim-code-dir",
        "--sim-code",
        dest="sim_code_dir",
        default=None,
        help="wavlm-ecapa: seed-tts-eval's thirdparty/UniSpeech/downstreams/speaker_verification",
    )
    p.add_argument("--control", action="store_true", default=None, help="also measure gender/pitch/speed")
    p.add_argument("--identify", action="store_true", default=None,
                   help="voice cloning with several prompts: SIM of each output to every prompt, and how often "
                        "its own prompt is the nearest (sim_matrix.csv, summary 'identification')")
    p.add_argument("--device", default=None, help="cpu or cuda (default cpu)")
    p.add_argument("--engine", choices=("local", "ray"), default=None, help="run items locally or on Ray")
    p.add_argument("--workers", type=int, default=None, help="Ray actors (engine=ray)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--retry-errors", action="store_true", help="redo items whose earlier row has an error")


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m sparktts.eval`` argument parser."""
    parser = argparse.ArgumentParser(prog="python -m sparktts.eval", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    score = sub.add_parser("score", help="score existing <wavs>/<utt>.wav files")
    _add_common(score)
    score.add_argument("--wavs", required=True, type=Path, help="folder of generated <utt>.wav")
    trip = sub.add_parser("roundtrip", help="encode and decode each item's recording with a codec, then score it")
    _add_common(trip)
    trip.add_argument("--model_dir", "--model-dir", dest="model_dir", required=True, type=Path,
                      help="release (or codec) folder with config.yaml, BiCodec/ and wav2vec2-large-xlsr-53/")
    trip.add_argument("--signal", action="store_true",
                      help="also score each round trip against its recording: STOI, PESQ, mel distance, MCD, "
                           "F0 RMSE and voicing error (OUT/codec/metrics.csv and summary.json)")
    trip.add_argument("--no-f0", dest="f0", action="store_false",
                      help="with --signal: skip F0 RMSE and voicing error (pYIN, about real time per clip)")
    run = sub.add_parser("run", help="synthesise each item with Spark-TTS, then score it")
    _add_common(run)
    run.add_argument(
        "--model_dir",
        "--model-dir",
        dest="model_dir",
        required=True,
        type=Path,
        help="Spark-TTS checkpoint folder (e.g. pretrained_models/Spark-TTS-0.5B)",
    )
    run.add_argument("--seed", type=int, default=None, help="seed passed to every synthesis call")
    run.add_argument("--dtype", default=None, help="LLM dtype: float32 (default), bfloat16 (GPUs), auto")
    run.add_argument("--quantize", choices=defaults.QUANTIZE, default=None,
                     help=defaults.QUANTIZE_HELP + "; report it with the results")
    return parser


def _resolve_options(args: argparse.Namespace) -> EvalOptions:
    """Defaults, then the ``--config`` YAML, then the command line; keys by canonical name."""
    opts = EvalOptions(_DEFAULTS)
    if args.config is not None:
        import yaml

        if not args.config.is_file():
            raise EvalError(f"config file {args.config} not found.")
        loaded = yaml.safe_load(args.config.read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise EvalError(f"{args.config}: expected a mapping of option names to values.")
        unknown = sorted(str(k) for k in loaded if canonical_option(str(k)) not in _DEFAULTS)
        if unknown:
            raise EvalError(
                f"{args.config}: unknown keys {', '.join(unknown)}; allowed: {', '.join(_DEFAULTS)} "
                f"(aliases: {', '.join(OPTION_ALIASES)})."
            )
        opts.update({canonical_option(str(k)): v for k, v in loaded.items()})
    for key in _DEFAULTS:
        value = getattr(args, key, None)
        if value is not None:
            opts[key] = value
    return opts


def _sparktts_synthesizer(model_dir: Path, device: str, seed: int | None, dtype: str | None = None,
                          quantize: str | None = None):
    """``synthesize(item)`` over :class:`sparktts.SparkTTS`.

    Items with a ``prompt_wav`` are cloned from it (with ``prompt_text`` when the list gives one, as the
    Spark-TTS reference inference does); items without one but with ``gender`` are voice-creation items.
    """
    try:
        from sparktts import SparkTTS
    except ImportError as exc:
        raise EvalError(
            "`run` needs sparktts.SparkTTS (the synthesis API), which this installation does not provide; "
            "synthesise the list yourself and use `python -m sparktts.eval score --wavs DIR`, or call "
            "sparktts.eval.runner.run_eval(items, out, synthesize=your_function)."
        ) from exc
    if not Path(model_dir).is_dir():
        raise EvalError(
            f"Spark-TTS model folder {model_dir} does not exist; pass the checkpoint folder with --model_dir "
            "(e.g. pretrained_models/Spark-TTS-0.5B, containing config.yaml, BiCodec/, LLM/)."
        )
    tts = SparkTTS.from_pretrained(str(model_dir), device=device, dtype=dtype, quantize=quantize)
    return sparktts_synthesizer(tts, seed)


def _codec_roundtrip(model_dir: Path, device: str | None):
    from sparktts.codec.tokenizer import BiCodecTokenizer

    if not Path(model_dir).is_dir():
        raise EvalError(f"codec folder {model_dir} does not exist; pass a release (or `sparktts export` of a "
                        "codec run) with --model_dir: config.yaml, BiCodec/, wav2vec2-large-xlsr-53/.")
    return codec_roundtrip_synthesizer(BiCodecTokenizer(model_dir, device=device or "cpu"))


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code (0 ok, 2 usage/model errors, 130 Ctrl-C)."""
    args = build_parser().parse_args(argv)
    try:
        opts = _resolve_options(args)
        config = ScoringConfig.from_options(opts)
        items = read_list(args.list, lang=opts["lang"])
        common = dict(
            config=config,
            engine=opts["engine"],
            num_workers=int(opts["workers"]),
            progress=not args.no_progress,
            retry_errors=args.retry_errors,
        )
        if args.command == "score":
            run = run_eval(items, args.out, wav_dir=args.wavs, **common)
        elif args.command == "roundtrip":
            items = roundtrip_items(items)
            run = run_eval(items, args.out, synthesize=_codec_roundtrip(args.model_dir, opts["device"]), **common)
            if args.signal:
                signal = score_roundtrip(args.out, items, f0=args.f0, progress=not args.no_progress)
        else:
            synthesize = _sparktts_synthesizer(args.model_dir, opts["device"], args.seed, args.dtype, args.quantize)
            run = run_eval(items, args.out, synthesize=synthesize, **common)
    except SparkTTSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # an unwritable --out, a full disk: the message, not a traceback
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        print(f"error: {where}{exc.strerror or exc}; check --out (it must be writable) and --list / --wavs.",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted (Ctrl-C): the rows written so far are in {args.out / 'results.jsonl'}; run the same "
              "command again to resume.", file=sys.stderr)
        return 130
    s = run.summary
    print(run.table.to_string() if len(run.table) else "(no results)")
    print(
        f"items {s['n_items']}: scored {s['n_scored']}, errors {s['n_errors']}, "
        f"missing wavs {s['n_missing']}; "
        f"{s['metric'].upper()} (utterance mean) {s['wer_utt_mean']} %, SIM {s['sim_mean']}"
    )
    if getattr(args, "signal", False):
        print("signal (means over clips): " + ", ".join(f"{k} {v:.4g}" for k, v in signal.items()
                                                          if not k.startswith("n_") and v is not None)
              + f"; {signal['n_scored']} clips ({signal['n_errors']} failed), per clip in "
                f"{args.out / SIGNAL_DIR / 'metrics.csv'}")
    print(f"results: {args.out / 'results.jsonl'}  summary: {args.out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
