"""Build the built-in Spark-TTS model end to end with the toolkit's own commands, resumably.

    python data/builtin/build.py --work WORK --out RELEASE                    # the full recipe
    python data/builtin/build.py --work WORK --out RELEASE --stages codec     # only some stages
    python data/builtin/build.py --work W --out R --n 8 --heldout 2 --codec-config tiny --lm-config tiny \\
        --codec-steps 2 --lm-steps 2                                          # a smoke run (seconds)

Stages, each skipped or resumed when its result is already in ``WORK`` (rerun the same command after a
kill, a stopped session or on another machine with ``WORK`` copied over):

1. ``corpus``: ``data/corpus/make_corpus.py`` renders the espeak-ng corpus into ``WORK/corpus``
   (``manifest.jsonl`` for training, ``heldout.jsonl`` never trained on).
2. ``codec``: ``sparktts train codec`` on the manifest (``WORK/codec-run``, resumed), then
   ``sparktts export`` to ``WORK/codec`` and, unless ``--no-eval``, ``python -m sparktts.eval roundtrip``
   on the held-out clips (``WORK/eval/codec``).
3. ``prepare``: ``sparktts prepare`` with that codec into ``WORK/tokens-<codec step>`` (tokens belong to
   one codec: a codec trained further gets a new folder, and the LM stage starts a new run on it).
4. ``lm``: ``sparktts train lm`` on the tokens (``WORK/lm-run-<codec step>``, resumed), then
   ``sparktts export`` to ``--out``: a release in the released layout, LLM and codec together.
5. ``eval``: ``python -m sparktts.eval run`` of the release on the held-out sentences (``WORK/eval/tts``).

Nothing here is special to the built-in model: it is the recipe a user follows for any corpus.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
STAGES = ("corpus", "codec", "prepare", "lm", "eval")


def _make_corpus():
    spec = importlib.util.spec_from_file_location("make_corpus", HERE.parent / "corpus" / "make_corpus.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_corpus"] = module
    spec.loader.exec_module(module)
    return module


def _step(checkpoint: Path | None, stage: str) -> int:
    """The step of a checkpoint folder (its name ends in the zero-padded step: ``step_N`` or ``step-N``)."""
    if checkpoint is None:
        raise SystemExit(f"no {stage} checkpoint in --work yet: run the {stage} stage first")
    return int(checkpoint.name.replace("-", "_").rsplit("_", 1)[1])


def _export(run: Path, folder: Path) -> Path:
    """``sparktts export`` of a run's latest checkpoint into ``folder`` (kept when already there)."""
    from sparktts.train.export import export_run

    return folder if folder.is_dir() else export_run(run, folder)


def _eval(items: list, out: Path, asr_model: str, synthesize, sim: bool) -> dict:
    from sparktts.eval.runner import ScoringConfig, run_eval

    config = ScoringConfig(asr_model=asr_model, sim_backend="resemblyzer" if sim else None, lang="en",
                           control=not sim)
    return run_eval(items, out, synthesize=synthesize, config=config).summary


def build(args: argparse.Namespace) -> None:
    from sparktts.train.codec.trainer import list_checkpoints as codec_checkpoints
    from sparktts.train.lm.trainer import latest_checkpoint

    work, out = Path(args.work).expanduser(), Path(args.out).expanduser()
    corpus, codec_run = work / "corpus", work / "codec-run"
    stages = set(args.stages)
    if "corpus" in stages:
        _make_corpus().build(corpus, args.n, args.heldout, args.seed, jobs=args.jobs)
    if "codec" in stages:
        from sparktts.train.codec.trainer import train_codec

        train_codec(args.codec_config, corpus / "manifest.jsonl", codec_run, max_steps=args.codec_steps,
                    resume=(codec_run / "config.yaml").is_file())
    if not stages & {"codec", "prepare", "lm", "eval"}:
        return
    step = _step((codec_checkpoints(codec_run) or [None])[-1], "codec")
    codec = work / f"codec-{step}"
    if "codec" in stages:
        _export(codec_run, codec)
        if not args.no_eval:
            from sparktts.codec.tokenizer import BiCodecTokenizer
            from sparktts.eval.lists import read_list, write_jsonl_list
            from sparktts.eval.synthesis import codec_roundtrip_synthesizer, roundtrip_items

            items = roundtrip_items(read_list(corpus / "heldout.jsonl"))
            write_jsonl_list(items, work / "eval" / f"codec-{step}.jsonl")  # what was scored, for the record
            summary = _eval(items, work / "eval" / f"codec-{step}", args.asr_model,
                            codec_roundtrip_synthesizer(BiCodecTokenizer(codec, device="cpu")), sim=True)
            print(f"codec round trip at step {step}: WER {summary['wer_utt_mean']} %, SIM {summary['sim_mean']}")
    tokens, lm_run = work / f"tokens-{step}", work / f"lm-run-{step}"
    if "prepare" in stages:
        from sparktts.data.prepare import prepare

        prepare(corpus / "manifest.jsonl", codec, tokens)
    if "lm" in stages:
        from sparktts.fileio import atomic_dir
        from sparktts.train.lm.trainer import train_lm

        train_lm(args.lm_config, tokens, lm_run, max_steps=args.lm_steps, resume=(lm_run / "config.yaml").is_file())
        lm_step = _step(latest_checkpoint(lm_run), "lm")
        release = _export(lm_run, work / f"release-{step}-{lm_step}")
        with atomic_dir(out, replace=True) as tmp:  # --out always holds one whole release
            shutil.copytree(release, tmp, dirs_exist_ok=True)
    if "eval" in stages and not args.no_eval:
        from sparktts import SparkTTS
        from sparktts.eval.lists import read_list
        from sparktts.eval.synthesis import sparktts_synthesizer

        tts = SparkTTS.from_pretrained(out, device="cpu")
        summary = _eval(read_list(corpus / "heldout.jsonl"), work / "eval" / f"tts-{step}", args.asr_model,
                        sparktts_synthesizer(tts, seed=0), sim=False)
        print(f"text to speech (voice creation): WER {summary['wer_utt_mean']} %")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--work", required=True, help="working folder: corpus, runs, tokens, evaluations")
    p.add_argument("--out", required=True, help="the release folder to write")
    p.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    p.add_argument("--n", type=int, default=6000, help="training clips")
    p.add_argument("--heldout", type=int, default=200, help="held-out clips")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=2, help="espeak-ng render processes")
    p.add_argument("--codec-config", default="small")
    p.add_argument("--codec-steps", type=int, default=None, help="stop the codec run here (default: the config's)")
    p.add_argument("--lm-config", default="small")
    p.add_argument("--lm-steps", type=int, default=None, help="stop the LM run here (default: the config's)")
    p.add_argument("--asr-model", default="base", help="Whisper model of the evaluations")
    p.add_argument("--no-eval", action="store_true", help="skip the evaluations")
    build(p.parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
