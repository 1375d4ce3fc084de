"""Build the built-in Spark-TTS model end to end with the toolkit's own commands, resumably.

    python data/builtin/build.py --work WORK --out RELEASE                    # the whole recipe
    python data/builtin/build.py --work WORK --out RELEASE --stages codec     # only some stages
    python data/builtin/build.py --work W --out R --n 8 --heldout 2 --codec-config tiny --phase-steps 2
                                                                              # a smoke run (a minute)

This is the recipe the built-in model followed on a 2-core CPU. Every step is a plain ``sparktts``
command any user can run on any corpus; this script only chains them. Each stage resumes or skips what
``WORK`` already holds, so rerun the same command after a kill, a stopped session, or on another machine
with ``WORK`` copied over. The ``codec`` stage and the ``prepare``/``lm`` stages may run at the same time
as two processes (the LLM's tokens come from codec phase 2, and phase 3 does not change them).

1. ``corpus``: ``data/corpus/make_corpus.py`` renders the espeak-ng corpus into ``WORK/corpus``
   (``manifest.jsonl`` for training, ``heldout.jsonl`` never trained on).
2. ``codec``: three ``sparktts train codec`` runs, each from the export of the one before:

   * ``codec-1``: ``--codec-config`` (the ``small`` preset), 2,000 steps: the losses without the GAN,
     the small wav2vec2 trained with the codec (its GAN would start at 2,000, at 6-10 s a step here);
   * ``codec-2``: ``codec_cpu_phase2.yaml``, 5,000 steps of its 8,000-step schedule: shorter crops,
     a larger batch, still no GAN;
   * ``codec-3``: ``codec_cpu_phase3.yaml``: the tokenizer side (wav2vec2, encoder, quantizer, speaker
     encoder) frozen, the decoder side trained on (``--codec-steps``, default its whole schedule).

   Each phase is exported to ``WORK/codec-N`` and, unless ``--no-eval``, scored with
   ``python -m sparktts.eval roundtrip`` on the held-out clips (``WORK/eval/codec-N``).
3. ``prepare``: ``sparktts prepare`` with the codec-2 export into ``WORK/tokens``.
4. ``lm``: ``lm-1`` (``lm_cpu_clone.yaml``, cloning only, 750 steps), then ``lm-2`` (``lm_cpu.yaml``,
   cloning and voice creation, from lm-1's export; ``--lm-steps``, default its whole schedule).
5. ``release``: ``sparktts export lm-2 --codec codec-3`` to ``--out`` (the export checks that codec-3
   tokenizes exactly as codec-2 did).
6. ``eval``: the release on the held-out sentences (``eval_lists.py``): cloning with speaker
   identification (``WORK/eval/clone``) and voice creation with the attribute checks (``WORK/eval/create``);
   then ``OUT/MODEL_CARD.md`` (``model_card.py``) from the runs and these scores.

``--phase-steps N`` stops every phase at step N (a smoke run of the whole chain).
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
STAGES = ("corpus", "codec", "prepare", "lm", "release", "eval")


@dataclass(frozen=True)
class Phase:
    """One training run of the recipe: ``codec`` or ``lm``, its config, where it stops (None: the
    schedule's end, or --codec-steps / --lm-steps)."""

    name: str
    kind: str
    config: str
    stop: int | None


def codec_phases(first_config: str) -> tuple[Phase, ...]:
    return (Phase("codec-1", "codec", first_config, 2000),
            Phase("codec-2", "codec", str(HERE / "codec_cpu_phase2.yaml"), 5000),
            Phase("codec-3", "codec", str(HERE / "codec_cpu_phase3.yaml"), None))


LM_PHASES = (Phase("lm-1", "lm", str(HERE / "lm_cpu_clone.yaml"), 750),
             Phase("lm-2", "lm", str(HERE / "lm_cpu.yaml"), None))
TOKENS_FROM = "codec-2"  # the codec whose tokens the LLM learns; codec-3 keeps them


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _codec_config(phase: Phase, init: Path | None):
    """The phase's config, its ``model`` and wav2vec2 taken from the previous phase's export."""
    from sparktts.train.codec.config import load_codec_config

    if init is None:
        return load_codec_config(phase.config)
    return load_codec_config(phase.config, {"model": str(init), "wav2vec2": {"pretrained": str(init)}})


def _latest_step(phase: Phase, run: Path) -> int:
    from sparktts.train.codec.trainer import list_checkpoints
    from sparktts.train.lm.trainer import latest_checkpoint

    last = list_checkpoints(run)[-1] if phase.kind == "codec" else latest_checkpoint(run)
    return int(last.name.replace("-", "_").rsplit("_", 1)[1])  # step_00002000, step-00000750


def _exported_steps(work: Path) -> dict[str, int]:
    """``WORK/build.json``: phase name -> the step of its run that ``WORK/<name>`` was exported from."""
    import json

    path = work / "build.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _record_export(work: Path, name: str, step: int) -> None:
    # Read again and replaced whole: the codec and LM stages may run as two processes writing their own keys.
    import json

    from sparktts.fileio import atomic_write

    record = {**_exported_steps(work), name: step}
    with atomic_write(work / "build.json", "w") as f:
        f.write(json.dumps(record, indent=1))


def run_phases(phases: tuple[Phase, ...], work: Path, data: Path, args: argparse.Namespace,
               last_stop: int | None, on_export=None) -> None:
    """Train each phase from the previous one's export (resumed) and export it to ``WORK/<name>``.

    A phase with a fixed stop is done once exported. An open one is trained on (resumed) at every call and
    exported again when its run has a newer checkpoint; ``WORK/build.json`` records the exported steps.
    """
    from sparktts.train.codec.trainer import train_codec
    from sparktts.train.export import export_run
    from sparktts.train.lm.trainer import train_lm

    init = None
    for phase in phases:
        run, export = work / f"{phase.name}-run", work / phase.name
        if not (phase.stop is not None and export.is_dir()):
            stop = phase.stop if phase.stop is not None else last_stop
            if args.phase_steps is not None:
                stop = args.phase_steps if stop is None else min(stop, args.phase_steps)
            resume = (run / "config.yaml").is_file()
            if phase.kind == "codec":
                train_codec(_codec_config(phase, init), data, run, max_steps=stop, resume=resume, init=init)
            else:
                train_lm(phase.config, data, run, init=init, max_steps=stop, resume=resume)
            step = _latest_step(phase, run)
            if not export.is_dir() or _exported_steps(work).get(phase.name) != step:
                fresh = work / f".{phase.name}.new"
                shutil.rmtree(fresh, ignore_errors=True)
                export_run(run, fresh)
                shutil.rmtree(export, ignore_errors=True)
                fresh.rename(export)
                _record_export(work, phase.name, step)
                if on_export is not None:
                    on_export(export, f"{phase.name}-{step}")
        init = export


def _eval_codec(args: argparse.Namespace, work: Path, corpus: Path, codec: Path, name: str) -> None:
    """The codec round trip of the held-out clips, in ``WORK/eval/<name>`` (name = phase and step)."""
    from sparktts.codec.tokenizer import BiCodecTokenizer
    from sparktts.eval.lists import read_list, write_jsonl_list
    from sparktts.eval.runner import ScoringConfig, run_eval
    from sparktts.eval.synthesis import codec_roundtrip_synthesizer, roundtrip_items

    items = roundtrip_items(read_list(corpus / "heldout.jsonl"))
    write_jsonl_list(items, work / "eval" / f"{name}.jsonl")  # what was scored, for the record
    config = ScoringConfig(asr_model=args.asr_model, sim_backend="resemblyzer", lang="en")
    summary = run_eval(items, work / "eval" / name, config=config,
                       synthesize=codec_roundtrip_synthesizer(BiCodecTokenizer(codec, device="cpu"))).summary
    print(f"{name} round trip: WER {summary['wer_utt_mean']} %, SIM {summary['sim_mean']}")


def _eval_release(args: argparse.Namespace, work: Path, corpus: Path, release: Path) -> None:
    from sparktts import SparkTTS
    from sparktts.eval.lists import read_list
    from sparktts.eval.runner import ScoringConfig, run_eval
    from sparktts.eval.synthesis import sparktts_synthesizer

    clone, create = _load("eval_lists", HERE / "eval_lists.py").build_lists(
        corpus / "heldout.jsonl", corpus / "manifest.jsonl", work / "eval" / "lists")
    synthesize = sparktts_synthesizer(SparkTTS.from_pretrained(release, device="cpu"), seed=0)
    for name, items, config in (
            ("clone", clone, ScoringConfig(asr_model=args.asr_model, sim_backend="resemblyzer", lang="en",
                                           identify=True)),
            ("create", create, ScoringConfig(asr_model=args.asr_model, lang="en", control=True))):
        summary = run_eval(read_list(items), work / "eval" / name, synthesize=synthesize, config=config).summary
        print(f"text to speech ({name}): WER {summary['wer_utt_mean']} %")


def build(args: argparse.Namespace) -> None:
    from sparktts.fileio import atomic_dir

    work, out = Path(args.work).expanduser(), Path(args.out).expanduser()
    corpus = work / "corpus"
    stages = set(args.stages)
    if "corpus" in stages:
        _load("make_corpus", HERE.parent / "corpus" / "make_corpus.py").build(corpus, args.n, args.heldout,
                                                                              args.seed, jobs=args.jobs)
    if "codec" in stages:
        score = None if args.no_eval else (lambda codec, name: _eval_codec(args, work, corpus, codec, name))
        run_phases(codec_phases(args.codec_config), work, corpus / "manifest.jsonl", args, args.codec_steps, score)
    tokens = work / "tokens"
    if "prepare" in stages:
        from sparktts.data.prepare import prepare

        if not (work / TOKENS_FROM).is_dir():
            raise SystemExit(f"{work / TOKENS_FROM}: not there yet; run the codec stage first")
        prepare(corpus / "manifest.jsonl", work / TOKENS_FROM, tokens)
    if "lm" in stages:
        run_phases(LM_PHASES, work, tokens, args, args.lm_steps)
    if "release" in stages:
        from sparktts.train.export import export_run

        lm, codec = work / f"{LM_PHASES[-1].name}-run", work / codec_phases(args.codec_config)[-1].name
        for needed, stage in ((lm, "lm"), (codec, "codec")):
            if not needed.is_dir():
                raise SystemExit(f"{needed}: not there yet; run the {stage} stage first")
        with atomic_dir(out, replace=True) as tmp:  # --out always holds one whole release
            release = export_run(lm, tmp / "release", codec=codec)
            for part in release.iterdir():
                shutil.move(str(part), tmp / part.name)
            release.rmdir()
    if "eval" in stages and not args.no_eval:
        roundtrip = _roundtrip_eval(work, out)
        if not (roundtrip / "summary.json").is_file():  # the codec stage scores its phases; a GPU build does not
            _eval_codec(args, work, corpus, out, roundtrip.name)
        _eval_release(args, work, corpus, out)
        _write_card(args, work, corpus, out)


def _roundtrip_eval(work: Path, release: Path) -> Path:
    """``WORK/eval/<phase>-<step>``: the round trip of the codec the release ships (its export.json names it)."""
    import json

    shipped = Path(json.loads((release / "export.json").read_text())["codec_dir"]).name
    return work / "eval" / f"{shipped}-{_exported_steps(work).get(shipped)}"


def _write_card(args: argparse.Namespace, work: Path, corpus: Path, out: Path) -> None:
    """``OUT/MODEL_CARD.md`` from the runs and evals in ``WORK`` (``model_card.py``): every phase that
    ``WORK/build.json`` records (this recipe's, or ``gpu_build.sh``'s, whose configs its runs keep)."""
    card = _load("model_card", HERE / "model_card.py")
    configs = {p.name: p.config for p in (*codec_phases(args.codec_config), *LM_PHASES)}
    runs = [(name, work / f"{name}-run", step, configs.get(name, str(work / f"{name}-run" / "config.yaml")))
            for name, step in _exported_steps(work).items()]
    evals = {"roundtrip": _roundtrip_eval(work, out), "clone": work / "eval" / "clone",
             "create": work / "eval" / "create"}
    card.write_model_card(out / "MODEL_CARD.md",
                          card.model_card(out, corpus / "manifest.jsonl", corpus / "heldout.jsonl", runs, evals))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--work", required=True, help="working folder: corpus, runs, tokens, evaluations")
    p.add_argument("--out", required=True, help="the release folder to write")
    p.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    p.add_argument("--n", type=int, default=6000, help="training clips")
    p.add_argument("--heldout", type=int, default=200, help="held-out clips")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=2, help="espeak-ng render processes")
    p.add_argument("--codec-config", default="small", help="codec phase 1's config (a preset or a YAML path)")
    p.add_argument("--codec-steps", type=int, default=None, help="stop codec phase 3 here (default: its schedule)")
    p.add_argument("--lm-steps", type=int, default=None, help="stop LM stage 2 here (default: its schedule)")
    p.add_argument("--phase-steps", type=int, default=None, help="stop every phase at this step (smoke runs)")
    p.add_argument("--asr-model", default="base", help="Whisper model of the evaluations")
    p.add_argument("--no-eval", action="store_true", help="skip the evaluations")
    build(p.parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
