"""Score a test list: WER/CER + speaker similarity per utterance, written as JSONL as each one finishes.

Two modes:

* **score** existing audio: ``<wav_dir>/<utt>.wav`` for each list item (missing files are skipped and
  counted, as Seed-TTS-eval does; they are not written, so a later run scores them once they exist);
* **synthesise and score**: ``synthesize(item) -> (audio, sample_rate)`` is called for each item, the audio is
  saved as ``<out>/wavs/<utt>.wav`` (atomically) and scored.

``<out>/results.jsonl`` gets one object per item (``utt``, ``text``, ``hyp``, ``wer`` or ``cer``, ``sim``,
``error`` and timings), each line flushed and fsynced. A run that is killed can be started again with the
same arguments: utterances already in the file are skipped, a truncated last line (the kill hit a write)
is cut off and that utterance redone, and a wav synthesised before the kill is reused. A failing item
(unreadable wav, synthesis error, ...) is written with its ``error`` and the run goes on; interrupts
(Ctrl-C, ``KeyboardInterrupt``) stop it. At the end ``<out>/summary.json`` holds the aggregate.

Safety: every audio path is ``<folder>/<utt>.wav`` with ``utt`` checked to be a plain file name
(:func:`sparktts.eval.lists.check_utt_id`), so a list cannot make a run write or read outside the folders
it was given. One run at a time writes a results file: a second run on the same ``out`` folder (another
process, or the same one) is refused while the first holds the lock (``fcntl.flock`` on
``<out>/.results.jsonl.lock``), instead of both scoring every item and writing every row twice. Wavs,
rewritten results and ``summary.json`` are written atomically (:func:`sparktts.fileio.atomic_write`).

``engine="ray"`` spreads items over Ray actors, each building its own models from a
:class:`ScoringConfig`; the driver still writes every row.

This module is the run loop; the parts it drives have a module each: :mod:`.scoring` (``ScoringConfig``,
``Scorer``), :mod:`.results` (``ResultsFile``), :mod:`.summary` (``summarize_results``), :mod:`.process`
(one item), :mod:`.ray_engine` and :mod:`.synthesis` (the Spark-TTS adapter). Their public names are
importable from here too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from sparktts.fileio import atomic_write

from .errors import EvalError
from .lists import EvalItem
from .normalize import detect_language

# The runner's parts live in modules of their own; their public names are re-exported here, so
# ``from sparktts.eval.runner import ...`` keeps working for tests, notebooks and the CLI.
from .process import Synthesizer, item_wav_path, process_item
from .ray_engine import iter_ray
from .results import RESULTS_FILE, ResultsFile, json_default
from .scoring import Scorer, ScoringConfig
from .summary import SUMMARY_FILE, summarize_by, summarize_results
from .synthesis import sparktts_synthesizer

SIM_MATRIX_FILE = "sim_matrix.csv"  # --identify: SIM of every cloned output to every prompt


@dataclass
class EvalRun:
    """What :func:`run_eval` returns."""

    results: pd.DataFrame
    table: pd.DataFrame
    summary: dict
    missing: list[str] = field(default_factory=list)
    out_dir: Path | None = None
    by_level: pd.DataFrame | None = None  # :func:`summarize_by` when the items carry gender/pitch/speed


def _check_asr_covers(scorer: Scorer, items: Sequence[EvalItem]) -> None:
    """Refuse to start when the recogniser cannot do a language of the list.

    Otherwise every such item would be written with an error and then skipped by every later run.
    """
    if scorer.asr is None or getattr(scorer.asr, "multilingual", True):
        return
    zh = [it.utt for it in items if (it.lang or scorer.lang or detect_language(it.text)) == "zh"]
    if zh:
        raise EvalError(
            f"ASR model {getattr(scorer.asr, 'model_name', '?')} is English-only but {len(zh)} item(s) "
            f"are Chinese "
            f"(first: {zh[0]}); use a multilingual Whisper (e.g. --asr-model base or large-v3)."
        )


def run_eval(
    items: Sequence[EvalItem],
    out_dir: str | os.PathLike,
    *,
    wav_dir: str | os.PathLike | None = None,
    synthesize: Synthesizer | None = None,
    scorer: Scorer | None = None,
    config: ScoringConfig | None = None,
    engine: str = "local",
    num_workers: int = 1,
    progress: bool = True,
    on_item: Callable[[dict], None] | None = None,
    retry_errors: bool = False,
) -> EvalRun:
    """Score (and optionally synthesise) a list, resumably; see the module docstring.

    Parameters
    ----------
    items : sequence of EvalItem
        From :func:`sparktts.eval.lists.read_list`.
    out_dir : path
        Gets ``results.jsonl``, ``summary.json`` and, when synthesising, ``wavs/``.
    wav_dir : path, optional
        Score ``<wav_dir>/<utt>.wav`` (exclusive with ``synthesize``).
    synthesize : callable, optional
        ``synthesize(item) -> (audio, sample_rate)``.
    scorer : Scorer, optional
        Already-loaded models (local engine). Default: ``config.build()``.
    config : ScoringConfig, optional
        Default ``ScoringConfig()`` (faster-whisper on the best installed model, resemblyzer).
    engine : {"local", "ray"}
        ``"ray"`` needs ``config`` (each actor loads its own models); call ``ray.init`` first to choose the
        cluster, else a local one with ``num_workers`` CPUs is started.
    num_workers : int
        Ray actors.
    progress : bool
        Show a tqdm progress bar.
    on_item : callable, optional
        Called with each row right after it is written (for live plots, or to stop a run).
    retry_errors : bool
        Redo utterances whose earlier row has an ``error`` (their rows are removed first).

    Returns
    -------
    EvalRun
        ``results`` (all rows of the list's utterances, this run and earlier ones), ``table``, ``summary``,
        ``missing`` (utterances without a wav in score mode).

    Raises
    ------
    EvalError
        Bad arguments, an utterance id that is not a plain file name, or another run writing ``out_dir``.
    """
    if (wav_dir is None) == (synthesize is None):
        raise EvalError(
            "give exactly one of wav_dir= (score existing audio) or synthesize= (generate, then score)."
        )
    if engine not in ("local", "ray"):
        raise EvalError(f"unknown engine {engine!r}; use 'local' or 'ray'.")
    out_dir = Path(out_dir)
    wav_base = Path(wav_dir) if wav_dir is not None else out_dir / "wavs"
    # Every id is checked before anything is created or read: a bad list changes nothing on disk.
    paths = {item.utt: item_wav_path(wav_base, item) for item in items}
    if wav_dir is not None and not wav_base.is_dir():
        raise EvalError(f"audio folder {wav_base} does not exist; --wavs must hold <utt>.wav files.")
    if engine == "ray" and scorer is not None:
        raise EvalError(
            "engine='ray' builds the models in each worker: pass config=ScoringConfig(...), not scorer=."
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    with ResultsFile(out_dir / RESULTS_FILE, drop_errors=retry_errors) as results:
        return _run_locked(items, out_dir, results, paths, synthesize, scorer, config, engine, num_workers,
                           progress, on_item)


def _identify(items: Sequence[EvalItem], rows: list[dict], paths: dict[str, Path], out_dir: Path,
              scorer: Scorer | None, config: ScoringConfig) -> dict:
    """``config.identify``: write ``sim_matrix.csv`` and return the summary's ``identification`` block."""
    from .similarity import load_speaker_model, prompt_identification

    ok = {r["utt"] for r in rows if not r.get("error")}
    prompts = {it.utt: it.prompt_wav for it in items if it.prompt_wav is not None and it.utt in ok}
    if len(set(map(str, prompts.values()))) < 2:
        return {"skipped": "identification needs cloned items with at least 2 different prompts"}
    if not config.sim_backend:
        return {"skipped": "identification needs a speaker model (sim_backend)"}
    model = scorer.speaker if scorer is not None and scorer.speaker is not None else load_speaker_model(
        config.sim_backend, config.sim_model, device=config.device, code_dir=config.sim_code_dir)
    found = prompt_identification({u: paths[u] for u in prompts}, prompts, model)
    with atomic_write(out_dir / SIM_MATRIX_FILE, "w") as fh:
        found.matrix.assign(own_prompt=found.own, nearest=found.nearest).to_csv(fh, float_format="%.4f")
    return {"accuracy": round(found.accuracy, 4), "n": len(found.own), "prompts": found.matrix.shape[1]}


def _run_locked(items: Sequence[EvalItem], out_dir: Path, results: ResultsFile, paths: dict[str, Path],
                synthesize: Synthesizer | None, scorer: Scorer | None, config: ScoringConfig | None, engine: str,
                num_workers: int, progress: bool, on_item: Callable[[dict], None] | None) -> EvalRun:
    """The body of :func:`run_eval`, run while ``results`` holds the output folder's lock."""
    from tqdm.auto import tqdm

    jobs: list[tuple[EvalItem, Path]] = []
    missing: list[str] = []
    for item in items:
        if item.utt in results.done:
            continue
        path = paths[item.utt]
        if synthesize is None and not path.is_file():
            missing.append(item.utt)
            continue
        jobs.append((item, path))

    local: Scorer | None = scorer
    if not jobs:  # everything done (or missing): do not load models for nothing
        stream: Iterable[dict] = iter(())
    elif engine == "ray":
        stream = iter_ray(jobs, config or ScoringConfig(), synthesize, num_workers)
    else:
        local = scorer if scorer is not None else (config or ScoringConfig()).build()
        _check_asr_covers(local, [item for item, _ in jobs])
        stream = (process_item(item, local, path, synthesize) for item, path in jobs)

    bar = tqdm(total=len(jobs), desc="eval", unit="utt", disable=not progress)
    try:
        for row in stream:
            results.append(row)
            bar.update(1)
            if row.get("error"):
                bar.set_postfix_str(f"last error: {row['utt']}", refresh=False)
            if on_item is not None:
                on_item(row)
    finally:
        bar.close()

    wanted = {it.utt for it in items}
    rows = [r for r in results.rows if r.get("utt") in wanted]
    table, summary = summarize_results(rows, n_items=len(items), missing=missing)
    if config is not None and config.identify:
        summary["identification"] = _identify(items, rows, paths, out_dir, local, config)
    if any("gender_measured" in r for r in rows):  # control scoring ran (config.control or the scorer's)
        from .control import score_control

        summary["control"] = score_control(rows).summary()
    by_level = summarize_by(rows, items)
    if len(by_level):
        summary["by_level"] = by_level.to_dict("records")
    summary["config"] = asdict(config) if config is not None else None
    with atomic_write(out_dir / SUMMARY_FILE, "w") as fh:
        json.dump(summary, fh, indent=2, ensure_ascii=False, default=json_default)
    return EvalRun(results=pd.DataFrame(rows), table=table, summary=summary, missing=missing, out_dir=out_dir,
                   by_level=by_level if len(by_level) else None)


__all__ = [
    "RESULTS_FILE",
    "SUMMARY_FILE",
    "EvalRun",
    "ResultsFile",
    "Scorer",
    "ScoringConfig",
    "Synthesizer",
    "item_wav_path",
    "run_eval",
    "sparktts_synthesizer",
    "summarize_results",
]
