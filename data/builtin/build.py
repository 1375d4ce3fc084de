"""Build the built-in Spark-TTS model end to end with the toolkit's own commands, resumably.

    python data/builtin/build.py --work WORK --out RELEASE                    # the whole recipe
    python data/builtin/build.py --work WORK --out RELEASE --stages codec --max-minutes 120
                                                                              # a session's share of it
    python data/builtin/build.py --work W --out R --n 8 --heldout 2 --codec-config tiny --phase-steps 2
                                                                              # a smoke run (minutes)

The CPU recipe of the built-in model, with the phases of the GPU one (``gpu_build.sh``). Every step is
a plain ``sparktts`` command any user can run on any corpus; this script only chains them. Each stage
resumes or skips what ``WORK`` already holds, so rerun the same command after a kill, a stopped session,
or on another machine with ``WORK`` copied over; ``--max-minutes`` bounds one call (the run in progress
stops with a resumable checkpoint and is exported). The ``codec`` stage and the ``prepare``/``lm`` stages
may run at the same time as two processes once codec phase A is done (phase B does not change its tokens).

1. ``corpus``: ``data/corpus/make_corpus.py`` renders the espeak-ng corpus into ``WORK/corpus``
   (``manifest.jsonl`` for training, ``heldout.jsonl`` never trained on), replaying committed records.
2. ``codec``: two ``sparktts train codec`` runs:

   * ``codec-a``: ``--codec-config`` (``codec_cpu.yaml``), the whole codec from random weights (or from
     ``--codec-a-init EXPORT``, e.g. a committed snapshot) with the small wav2vec2 trained with it, no
     GAN, to step ``--codec-a-steps``; its tokens are the LLM's. The runs of a snapshot (``WORK/records``)
     count toward those steps; a snapshot that holds them all is phase A's export as it is;
   * ``codec-b``: ``--decoder-config`` (``codec_cpu_decoder.yaml``) from codec-a's export: the tokenizer
     side frozen, the decoder side trained on (``--codec-steps``, default its whole schedule;
     ``--codec-steps 0``: no phase B, its export is codec-a's, so the release ships phase A's decoder).

   Each run validates on 20 held-out clips (``--val-data``: the mel loss of their whole reconstructions
   in ``WORK/<phase>-run/validation.csv``), is exported to ``WORK/<phase>`` whenever it stops and, unless
   ``--no-eval``, scored with the round trip of the held-out clips (``WORK/eval/<phase>-<step>``).
3. ``prepare``: ``sparktts prepare`` with the codec-a export into ``WORK/tokens``, and the held-out
   clips into ``WORK/heldout_tokens`` (the LLM's validation, never trained on).
4. ``lm``: ``sparktts train lm`` with ``--lm-config`` (``lm_cpu.yaml``: cloning and voice creation) on
   those tokens (``--lm-steps``, default its whole schedule), ``--val-data WORK/heldout_tokens``: its
   held-out losses and text gap in ``WORK/lm-run/validation.csv``; ``--lm-init`` starts it from an
   earlier run's export (``--init``: its weights, a fresh schedule) instead of random weights.
5. ``release``: ``sparktts export lm --codec codec-b --dtype bfloat16`` to ``--out`` (the export checks
   that codec-b tokenizes exactly as codec-a did; the weights are stored in bfloat16).
6. ``eval``: the release on the held-out sentences (``eval_lists.py``): its codec round trip, cloning
   with speaker identification and voice creation with the attribute checks, in
   ``WORK/eval/{roundtrip,clone,create}-...`` named by what the release holds (:func:`release_evals`);
   then ``OUT/MODEL_CARD.md`` (``model_card.py``) from the runs and these scores.

``--phase-steps N`` stops every phase at step N (a smoke run of the whole chain).
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import shutil
import sys
import time
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
    before: int = 0  # steps the model trained before this phase's run (a continued phase A, an LM snapshot)


class Budget:
    """``--max-minutes`` of one call, counted from its first training run: every call trains at least one
    step (so a tiny budget still moves a run on), and no run starts once it is spent."""

    def __init__(self, minutes: float | None) -> None:
        self.seconds = None if minutes is None else 60 * minutes
        self.start: float | None = None

    def left(self) -> float | None:
        """Seconds the next run may train; None: no budget; 0 or less: spent."""
        if self.seconds is None:
            return None
        if self.start is None:
            self.start = time.monotonic()
            return self.seconds
        return self.seconds - (time.monotonic() - self.start)


def codec_phases(args: argparse.Namespace, before: int = 0) -> tuple[Phase, ...]:
    """``before``: the steps phase A trained in earlier runs (``WORK/records``, with ``--codec-a-init``); they
    count toward ``--codec-a-steps``, phase A's whole training. Its stop is 0 when they trained all of it."""
    stop = max(0 if before else 1, args.codec_a_steps - before)
    # --codec-steps 0: no phase B; its export is phase A's (the release ships phase A's decoder).
    return (Phase("codec-a", "codec", args.codec_config, stop, before),
            Phase("codec-b", "codec", args.decoder_config, 0 if args.codec_steps == 0 else None))


def lm_phases(args: argparse.Namespace, recorded: int = 0) -> tuple[Phase, ...]:
    """``recorded``: the LM steps in the records of a ``--lm-init`` snapshot (its schedule goes on from there)."""
    return (Phase("lm", "lm", args.lm_config, None, recorded if args.lm_init else 0),)


TOKENS_FROM = "codec-a"  # the codec whose tokens the LLM learns; codec-b keeps them
# WORK/records: the records of the runs a --codec-a-init snapshot came from (``transfer.py unpack --work``),
# one folder per run, named in training order; the model card lists them before this machine's runs.
RECORDS = "records"


def _load(name: str, path: Path):
    # On sys.path too: the corpus renderer's worker processes (spawned) import it by name.
    if str(path.parent) not in sys.path:
        sys.path.append(str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _codec_config(phase: Phase, init: Path | None):
    """The phase's config; from an export (``init``: the previous phase's, or ``--codec-a-init``) its ``model``,
    wav2vec2 and audio settings are that export's (a decoder phase must prepare prompts as the codec whose
    tokens it keeps), and the speaker path trains from the first step (it was trained already: holding it
    off again, as a run from random weights does, would waste those steps). A phase that continues
    earlier runs (``phase.before``) continues their learning-rate schedule (``optim.schedule_start``)."""
    import yaml

    from sparktts.train.codec.config import load_codec_config

    if init is None:
        return load_codec_config(phase.config)
    audio = yaml.safe_load((init / "config.yaml").read_text()) or {}
    return load_codec_config(phase.config, {
        "model": str(init), "wav2vec2": {"pretrained": str(init)},
        "data": {"ref_seconds": audio["ref_segment_duration"], "volume_normalize": audio["volume_normalize"]},
        "speaker_start_step": 0, **({"optim": {"schedule_start": phase.before}} if phase.before else {})})


def _lm_config(phase: Phase, init: Path | None):
    """The LM phase's config; from a snapshot of an earlier run (``--lm-init``: ``phase.before`` steps in its
    records) the learning-rate schedule goes on where that run left it (``schedule_start``)."""
    import dataclasses

    from sparktts.train.config import load_config
    from sparktts.train.lm.config import LMTrainConfig

    cfg = load_config(LMTrainConfig, phase.config, "lm")
    return dataclasses.replace(cfg, schedule_start=phase.before) if init is not None and phase.before else cfg


def _stop(phase: Phase, args: argparse.Namespace, last_stop: int | None = None) -> int | None:
    """Where the phase's run stops this time (None: its config's schedule)."""
    stop = phase.stop if phase.stop is not None else last_stop
    if args.phase_steps is not None:
        stop = args.phase_steps if stop is None else min(stop, args.phase_steps)
    return stop


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


def record_runs(work: Path, runs: list[Path]) -> None:
    """Record runs trained outside ``run_phases`` (``gpu_build.sh``) in ``WORK/build.json`` as this recipe
    does (phase name: the run's folder without ``-run``; step: its last logged one), so the ``eval`` stage
    and the model card work on their build too."""
    from sparktts.train.run import read_metrics

    for run in map(Path, runs):
        _record_export(Path(work), run.name.removesuffix("-run"), int(read_metrics(run)["step"].iloc[-1]))


def run_phases(phases: tuple[Phase, ...], work: Path, data: Path, args: argparse.Namespace,
               last_stop: int | None, budget: Budget | None = None, on_export=None,
               init: Path | None = None, val_data: Path | None = None) -> bool:
    """Train each phase from the previous one's export (resumed) and export it to ``WORK/<name>``.

    A phase with a fixed stop is done once exported at that step. An open one is trained on (resumed) at
    every call and exported again when its run has a newer checkpoint; ``WORK/build.json`` records the
    exported steps. ``budget`` bounds the training: a run stopped by it is exported as it is, and the
    phases after an unfinished one wait. ``init``: the first phase starts from this export's weights
    instead of random ones; a phase with stop 0 (its earlier runs trained all of it) takes that export as
    its own, recorded at step 0. ``val_data``: the held-out data the runs validate on (clips for the codec,
    their tokens for the LM). Returns whether every phase ran to its stop.
    """
    from sparktts.fileio import atomic_dir
    from sparktts.train.codec.trainer import train_codec
    from sparktts.train.export import export_run
    from sparktts.train.lm.trainer import train_lm

    for phase in phases:
        run, export = work / f"{phase.name}-run", work / phase.name
        stop = _stop(phase, args, last_stop)
        if phase.stop == 0:
            if _exported_steps(work).get(phase.name) != 0:  # also replaces an export of a trained run
                with atomic_dir(export, replace=True) as tmp:
                    shutil.copytree(init, tmp, dirs_exist_ok=True)
                _record_export(work, phase.name, 0)
            init = export
            continue
        if not (phase.stop is not None and export.is_dir() and _exported_steps(work).get(phase.name, 0) >= stop):
            left = None if budget is None else budget.left()
            if left is not None and left <= 0:
                return False
            resume = (run / "config.yaml").is_file()
            if phase.kind == "codec":
                train_codec(_codec_config(phase, init), data, run, max_steps=stop, resume=resume, init=init,
                            max_time=left, compile=args.compile, val_data=val_data)
            else:
                train_lm(_lm_config(phase, init), data, run, init=init, max_steps=stop, resume=resume,
                         max_time=left, val_data=val_data)
            step = _latest_step(phase, run)
            if not export.is_dir() or _exported_steps(work).get(phase.name) != step:
                with atomic_dir(export, replace=True) as tmp:  # the last export stays until this one is whole
                    export_run(run, tmp)
                _record_export(work, phase.name, step)
                if on_export is not None:
                    on_export(export, f"{phase.name}-{step}")
            if phase.stop is not None and step < stop:
                return False  # stopped by the budget: the next phases start from its final export
        init = export
    return True


CLEAR_MAX_WER = 20.0  # %: the held-out clips whose own espeak-ng audio Whisper hears at least this well


def _eval_codec(args: argparse.Namespace, work: Path, corpus: Path, codec: Path, name: str) -> None:
    """The codec round trip of the held-out clips, in ``WORK/eval/<name>`` (name = phase and step), and
    beside it (``clear/summary.json``) the same on the clips Whisper hears in espeak-ng's own audio."""
    from sparktts.codec.tokenizer import BiCodecTokenizer
    from sparktts.eval.lists import read_list, write_jsonl_list
    from sparktts.eval.runner import ScoringConfig, run_eval
    from sparktts.eval.synthesis import codec_roundtrip_synthesizer, roundtrip_items

    items = roundtrip_items(read_list(corpus / "heldout.jsonl"))
    write_jsonl_list(items, work / "eval" / f"{name}.jsonl")  # what was scored, for the record
    config = ScoringConfig(asr_model=args.asr_model, sim_backend="resemblyzer", lang="en")
    summary = run_eval(items, work / "eval" / name, config=config,
                       synthesize=codec_roundtrip_synthesizer(BiCodecTokenizer(codec, device="cpu"))).summary
    clear = _clear_subset(work / "eval" / name, _espeak_ceiling(args.asr_model, work, corpus))
    signal = _signal_metrics(work / "eval" / name, items)
    print(f"{name} round trip: WER {summary['wer_utt_mean']} % (median {summary['wer_median']} %), "
          f"SIM {summary['sim_mean']}; on the "
          f"{clear['n_scored']} clear clips {clear['wer_utt_mean']} % (espeak's own: {clear['espeak_wer_utt_mean']} %)"
          f"; {', '.join(f'{k} {v:.3g}' for k, v in signal.items() if not k.startswith('n_') and v is not None)}")


PITCH_EVERY = 4  # pYIN takes about real time per signal: the pitch metrics on every 4th clip (50 of 200)


def _signal_metrics(eval_dir: Path, items) -> dict:
    """``<eval_dir>/codec/``: STOI, PESQ, mel distance and MCD of each round trip against its recording,
    and ``<eval_dir>/codec_pitch/``: F0 RMSE and voicing error on every ``PITCH_EVERY``-th clip
    (:func:`sparktts.eval.codec_metrics.score_roundtrip`). They move long before Whisper hears words, so
    they show a codec's progress while its WER still reads 100 %; the pitch says whether the harmonics
    are the voice's (phase A's sat at the 50 Hz frame rate)."""
    from sparktts.eval.codec_metrics import score_roundtrip

    summary = score_roundtrip(eval_dir, items, f0=False)
    pitch = score_roundtrip(eval_dir, items[::PITCH_EVERY], f0=True, folder="codec_pitch")
    return {**summary, "f0_rmse": pitch["f0_rmse"], "vuv_error": pitch["vuv_error"]}


@functools.cache  # once per build: every codec export and both release evals compare with it
def _espeak_ceiling(asr_model: str, work: Path, corpus: Path) -> Path:
    """``WORK/eval/espeak``: Whisper on espeak-ng's own held-out audio, the ceiling of every WER here.

    Scored once (the eval resumes): with names, numbers and invented sentences at every pitch and speed
    level, espeak's own held-out audio is far from a 0 % WER for Whisper."""
    from sparktts.eval.lists import read_list
    from sparktts.eval.runner import ScoringConfig, run_eval

    out = work / "eval" / "espeak"
    run_eval(read_list(corpus / "heldout.jsonl"), out, wav_dir=corpus / "wavs",
             config=ScoringConfig(asr_model=asr_model, lang="en"))
    return out


def _clear_subset(eval_dir: Path, ceiling: Path, prefix: str = "") -> dict:
    """``<eval_dir>/clear/summary.json``: an eval on the held-out sentences whose espeak-ng audio scores at most
    ``CLEAR_MAX_WER`` (the issue's premise: espeak's own audio near 13-16 %), with espeak's figure on them.
    ``prefix``: what the eval's utterance names add to the held-out clips' (``clone_``, ``create_``)."""
    import json

    from sparktts.eval.results import ResultsFile
    from sparktts.eval.summary import summarize_results
    from sparktts.fileio import atomic_write

    espeak = ResultsFile(ceiling / "results.jsonl", read_only=True).rows
    clear = {r["utt"] for r in espeak if r.get("wer") is not None and 100 * r["wer"] <= CLEAR_MAX_WER}
    _, summary = summarize_results([r for r in ResultsFile(eval_dir / "results.jsonl", read_only=True).rows
                                    if r["utt"].removeprefix(prefix) in clear])
    _, own = summarize_results([r for r in espeak if r["utt"] in clear])
    summary.update(espeak_wer_utt_mean=own["wer_utt_mean"], espeak_max_wer=CLEAR_MAX_WER,
                   config=json.loads((eval_dir / "summary.json").read_text()).get("config"))
    (eval_dir / "clear").mkdir(exist_ok=True)
    with atomic_write(eval_dir / "clear" / "summary.json", "w") as f:
        f.write(json.dumps(summary, indent=1))
    return summary


def _eval_release(args: argparse.Namespace, work: Path, corpus: Path, release: Path,
                  evals: dict[str, Path]) -> None:
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
        summary = run_eval(read_list(items), evals[name], synthesize=synthesize, config=config).summary
        clear = _clear_subset(evals[name], _espeak_ceiling(args.asr_model, work, corpus), f"{name}_")
        print(f"text to speech ({name}): WER {summary['wer_utt_mean']} %; on the {clear['n_scored']} clear "
              f"sentences {clear['wer_utt_mean']} % (espeak's own: {clear['espeak_wer_utt_mean']} %)")


def build(args: argparse.Namespace) -> None:
    from sparktts.fileio import atomic_dir

    work, out = Path(args.work).expanduser(), Path(args.out).expanduser()
    corpus = work / "corpus"
    stages = set(args.stages)
    budget = Budget(args.max_minutes)
    earlier = _earlier_runs(work)
    phases = codec_phases(args, 0 if args.codec_a_init is None else _recorded_steps(earlier))
    if "corpus" in stages:
        _load("make_corpus", HERE.parent / "corpus" / "make_corpus.py").build(corpus, args.n, args.heldout,
                                                                              args.seed, jobs=args.jobs)
    if "codec" in stages:
        score = None if args.no_eval else (lambda codec, name: _eval_codec(args, work, corpus, codec, name))
        first = None if args.codec_a_init is None else Path(args.codec_a_init).expanduser().resolve()
        if not run_phases(phases, work, corpus / "manifest.jsonl", args, args.codec_steps, budget,
                          score, init=first, val_data=corpus / "heldout.jsonl"):
            print(f"codec: stopped by --max-minutes at {_exported_steps(work)}; rerun to go on")
            return
    tokens, heldout_tokens = work / "tokens", work / "heldout_tokens"
    if "prepare" in stages:
        from sparktts.data.prepare import prepare

        phase = next(p for p in phases if p.name == TOKENS_FROM)
        if _exported_steps(work).get(TOKENS_FROM, -1) < _stop(phase, args):
            raise SystemExit(f"{work / TOKENS_FROM}: not trained to step {_stop(phase, args)} yet "
                             f"({_exported_steps(work)}); run the codec stage first")
        prepare(corpus / "manifest.jsonl", work / TOKENS_FROM, tokens)
        prepare(corpus / "heldout.jsonl", work / TOKENS_FROM, heldout_tokens)
    if "lm" in stages:
        val = heldout_tokens if (heldout_tokens / "info.json").is_file() else None
        lm_init = None if args.lm_init is None else Path(args.lm_init).expanduser().resolve()
        phases_lm = lm_phases(args, _recorded_steps(earlier, "lm"))
        if not run_phases(phases_lm, work, tokens, args, args.lm_steps, budget, init=lm_init, val_data=val):
            print("lm: --max-minutes spent; rerun to go on")
            return
    if "release" in stages:
        from sparktts.train.export import export_run

        lm, codec = work / f"{lm_phases(args)[-1].name}-run", work / phases[-1].name
        for needed, stage in ((lm, "lm"), (codec, "codec")):
            if not needed.is_dir():
                raise SystemExit(f"{needed}: not there yet; run the {stage} stage first")
        with atomic_dir(out, replace=True) as tmp:  # --out always holds one whole release
            release = export_run(lm, tmp / "release", codec=codec, dtype=RELEASE_DTYPE)
            for part in release.iterdir():
                shutil.move(str(part), tmp / part.name)
            release.rmdir()
    if "eval" in stages and not args.no_eval:
        evals = release_evals(work, out)
        _eval_codec(args, work, corpus, out, evals["roundtrip"].name)  # the shipped (rounded) weights
        _eval_release(args, work, corpus, out, evals)
        _write_card(args, work, corpus, out, earlier, evals)


# The release's weights are stored in bfloat16: half the bytes (the issue's <= 50 MB in the repository),
# loaded as float32 like any release. The tokenizer side is phase A's, bfloat16-exact already (the
# snapshot), so the rounding leaves the LLM's tokens as they were; the decoder side is rounded, and
# the round trip is scored on the shipped weights.
RELEASE_DTYPE = "bfloat16"


def release_evals(work: Path, release: Path) -> dict[str, Path]:
    """``WORK/eval/<check>-<what the release holds>``: its round trip, cloning and voice creation.

    Named by the codec export and LLM step it ships, because an eval resumes what its folder holds: a
    release rebuilt after more training is scored afresh, not from the last one's rows."""
    import json

    info = json.loads((release / "export.json").read_text())
    codec = Path(info["codec_dir"]).name
    shipped = f"{codec}-{_exported_steps(work).get(codec)}-{RELEASE_DTYPE}"
    return {"roundtrip": work / "eval" / f"roundtrip-{shipped}",
            **{name: work / "eval" / f"{name}-lm-{info['step']}-{shipped}" for name in ("clone", "create")}}


def _earlier_runs(work: Path) -> list[tuple[str, Path, int, str]]:
    """(label, run records, last step, config) of each run in ``WORK/records``, in training order."""
    from sparktts.train.run import METRICS_FILE, read_metrics

    folder = work / RECORDS
    runs = []
    for run in sorted(folder.iterdir()) if folder.is_dir() else ():
        if (run / METRICS_FILE).is_file():
            steps = read_metrics(run)["step"]
            runs.append((f"earlier: {run.name}", run, int(steps.iloc[-1]) if len(steps) else 0,
                         str(run / "config.yaml")))
    return runs


def _recorded_steps(earlier: list[tuple[str, Path, int, str]], kind: str = "codec") -> int:
    """The steps of the ``kind`` runs among ``earlier`` (``_earlier_runs``): what a ``--codec-a-init`` (codec)
    or ``--lm-init`` (lm) snapshot trained. Records without a ``run.json`` are codec runs (the oldest)."""
    import json

    def run_kind(run: Path) -> str:
        return json.loads((run / "run.json").read_text()).get("kind") if (run / "run.json").is_file() else "codec"

    return sum(step for _, run, step, _ in earlier if run_kind(run) == kind)


def _write_card(args: argparse.Namespace, work: Path, corpus: Path, out: Path,
                earlier: list[tuple[str, Path, int, str]], scored: dict[str, Path]) -> None:
    """``OUT/MODEL_CARD.md`` from the runs and evals in ``WORK`` (``model_card.py``): every phase that
    ``WORK/build.json`` records (this recipe's, or ``gpu_build.sh``'s, whose configs its runs keep)."""
    card = _load("model_card", HERE / "model_card.py")
    configs = {p.name: p.config for p in (*codec_phases(args), *lm_phases(args))}
    runs = [(name, work / f"{name}-run", step, configs.get(name, str(work / f"{name}-run" / "config.yaml")))
            for name, step in _exported_steps(work).items()
            # Step 0: an adopted export (its runs are among ``earlier``) or no phase B (--codec-steps 0),
            # whatever a run folder left from before holds.
            if step and (work / f"{name}-run").is_dir()]
    runs = earlier + runs
    evals = {**scored, "espeak": work / "eval" / "espeak", "roundtrip_signal": scored["roundtrip"] / "codec",
             "roundtrip_pitch": scored["roundtrip"] / "codec_pitch"}
    for name in ("roundtrip", "clone", "create"):
        evals[f"{name}_clear"] = scored[name] / "clear"
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
    p.add_argument("--codec-config", default=str(HERE / "codec_cpu.yaml"),
                   help="codec phase A's config (a preset or a YAML path)")
    p.add_argument("--codec-a-steps", type=int, default=6000,
                   help="where phase A (and the LLM's tokens) stop: its whole training's steps (with --codec-a-init, "
                        "the steps of the runs in WORK/records count)")
    p.add_argument("--lm-init", default=None,
                   help="start the LLM from this release or LLM/ folder (a committed snapshot: data/builtin/"
                        "lm_snapshot, unpacked) instead of random weights; a fresh schedule")
    p.add_argument("--codec-a-init", default=None,
                   help="start phase A from this codec export (e.g. a committed snapshot) instead of random weights")
    p.add_argument("--decoder-config", default=str(HERE / "codec_cpu_decoder.yaml"),
                   help="codec phase B's config (the decoder side; model and audio settings come from phase A)")
    p.add_argument("--lm-config", default=str(HERE / "lm_cpu.yaml"), help="the LLM's config")
    p.add_argument("--codec-steps", type=int, default=None,
                   help="stop codec phase B here (default: its schedule; 0: none, ship phase A's decoder)")
    p.add_argument("--lm-steps", type=int, default=None, help="stop the LLM here (default: its schedule)")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="train for at most this many minutes in this call (the run stops resumably and is exported)")
    p.add_argument("--compile", action="store_true",
                   help="codec runs with compiled Snake kernels (sparktts train codec --compile: ~25%% faster on CPU)")
    p.add_argument("--phase-steps", type=int, default=None, help="stop every phase at this step (smoke runs)")
    p.add_argument("--asr-model", default="base", help="Whisper model of the evaluations")
    p.add_argument("--no-eval", action="store_true", help="skip the evaluations")
    build(p.parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
