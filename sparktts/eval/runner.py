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
"""

from __future__ import annotations

import json
import math
import os
import time

try:  # POSIX; elsewhere runs are not locked against each other
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sparktts.audio import save_audio
from sparktts.fileio import atomic_write

from ._audio import EVAL_SR, load_16k
from .errors import EvalError
from .lists import EvalItem, check_utt_id
from .normalize import check_language, detect_language
from .wer import summarize_wer, utterance_wer

RESULTS_FILE = "results.jsonl"
SUMMARY_FILE = "summary.json"
Synthesizer = Callable[[EvalItem], tuple[np.ndarray, int]]


@dataclass(frozen=True)
class ScoringConfig:
    """What to score with; picklable, so Ray workers can build their own models from it.

    Attributes
    ----------
    lang : {"en", "zh"}, optional
        Language of every item without its own; ``None`` guesses per item from the text.
    asr_backend : str or None
        ``"faster-whisper"`` / ``"openai-whisper"``; ``None`` skips WER.
    asr_model : str, optional
        Name or path (see :func:`sparktts.eval.asr.load_asr`).
    sim_backend : str or None
        ``"resemblyzer"`` / ``"speechbrain"`` / ``"wavlm-ecapa"``; ``None`` skips SIM.
    sim_model, sim_code_dir : str, optional
        See :func:`sparktts.eval.similarity.load_speaker_model`.
    control : bool
        Also measure gender/pitch/speed (:mod:`sparktts.eval.control`).
    device : str
    """

    lang: str | None = None
    asr_backend: str | None = "faster-whisper"
    asr_model: str | None = None
    sim_backend: str | None = "resemblyzer"
    sim_model: str | None = None
    sim_code_dir: str | None = None
    control: bool = False
    device: str = "cpu"

    def build(self) -> Scorer:
        """Load the models and return a :class:`Scorer`."""
        from .asr import load_asr
        from .similarity import load_speaker_model

        if self.lang is not None:
            check_language(self.lang)
        asr = load_asr(self.asr_backend, self.asr_model, device=self.device) if self.asr_backend else None
        spk = (
            load_speaker_model(
                self.sim_backend, self.sim_model, device=self.device, code_dir=self.sim_code_dir
            )
            if self.sim_backend
            else None
        )
        return Scorer(asr=asr, speaker=spk, lang=self.lang, control=self.control)


class Scorer:
    """Scores one generated utterance: ASR + WER/CER against the text, SIM against the prompt.

    Parameters
    ----------
    asr : object with ``transcribe(audio, language=..., sample_rate=...)``, optional
    speaker : :class:`~sparktts.eval.similarity.SpeakerModel`, optional
    lang : {"en", "zh"}, optional
        Default language for items without one (else guessed from the text).
    control : bool
        Also measure gender/pitch/speed.
    """

    def __init__(self, asr=None, speaker=None, lang: str | None = None, control: bool = False) -> None:
        self.asr = asr
        self.speaker = speaker
        self.lang = check_language(lang) if lang is not None else None
        self.control = control
        self._prompt_cache: dict[str, np.ndarray] = {}

    def _prompt_embedding(self, path: Path) -> np.ndarray:
        key = str(path)
        if key not in self._prompt_cache:
            if len(self._prompt_cache) > 256:  # lists rarely reuse prompts; keep memory bounded
                self._prompt_cache.clear()
            self._prompt_cache[key] = self.speaker.embed(path)
        return self._prompt_cache[key]

    def score(
        self, item: EvalItem, audio: str | os.PathLike | np.ndarray, sample_rate: int | None = None
    ) -> dict:
        """Score one utterance and return its result row (never raises for a bad item; see ``error``)."""
        lang = item.lang or self.lang or detect_language(item.text)
        row: dict = {
            "utt": item.utt,
            "text": item.text,
            "lang": lang,
            "hyp": None,
            "sim": None,
            "error": None,
        }
        errors: list[str] = []
        t0 = time.perf_counter()
        try:
            wav = load_16k(audio, sample_rate)
        except Exception as exc:
            row["error"] = f"audio: {type(exc).__name__}: {exc}"
            row["total_s"] = time.perf_counter() - t0
            return row
        row["audio_s"] = wav.shape[0] / EVAL_SR
        if self.asr is not None:
            t = time.perf_counter()
            try:
                hyp = self.asr.transcribe(wav, language=lang, sample_rate=EVAL_SR)
                res = utterance_wer(item.text, hyp, lang)
                row.update(hyp=hyp, errors=res.errors, ref_len=res.ref_len, unit=res.unit)
                row[res.metric] = res.wer
            except Exception as exc:
                errors.append(f"asr: {type(exc).__name__}: {exc}")
            row["asr_s"] = time.perf_counter() - t
            row["asr_model"] = getattr(self.asr, "model_name", None)
        if self.speaker is not None and item.prompt_wav is not None:  # no prompt (voice creation): no SIM
            t = time.perf_counter()
            try:
                row["sim"] = float(
                    np.dot(
                        _unit(self.speaker.embed(wav, EVAL_SR)),
                        _unit(self._prompt_embedding(item.prompt_wav)),
                    )
                )
            except Exception as exc:
                errors.append(f"sim: {type(exc).__name__}: {exc}")
            row["sim_s"] = time.perf_counter() - t
            row["sim_model"] = f"{self.speaker.backend}:{self.speaker.model_name}"
        if self.control:
            from .control import measure_attributes

            try:
                att = measure_attributes(wav, item.text, EVAL_SR, lang=lang, gender=item.gender)
                row.update(
                    gender=item.gender,
                    pitch=item.pitch,
                    speed=item.speed,
                    gender_measured=att.gender,
                    pitch_measured=att.pitch_level,
                    speed_measured=att.speed_level,
                    pitch_mel=att.pitch_mel,
                    speed_sps=att.speed_sps,
                )
            except Exception as exc:
                errors.append(f"control: {type(exc).__name__}: {exc}")
        row["error"] = "; ".join(errors) or None
        row["total_s"] = time.perf_counter() - t0
        return row


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64).reshape(-1)
    n = np.linalg.norm(v)
    if n == 0:
        raise EvalError("an embedding is all zeros; the audio probably contains no speech.")
    return v / n


class ResultsFile:
    """Append-only JSONL of result rows that survives being killed mid-write.

    Opening it reads the rows already there. A last line without its newline (the process died while
    writing it) is cut off, so the next append starts on a clean line and that utterance is redone.

    A writer (the default) holds an exclusive lock on ``<path's folder>/.<name>.lock`` until :meth:`close`
    (or the end of a ``with`` block): a second writer on the same file is refused with an
    :class:`EvalError` saying so, so two runs can never both write every row. ``read_only=True`` takes no
    lock, never changes the file (a partial last line is skipped, not cut) and refuses :meth:`append`.

    Parameters
    ----------
    path : path
    drop_errors : bool
        Remove rows that carry an ``error`` (rewriting the file atomically), so those utterances are
        redone: for errors that were transient (out of memory, a file that was still being written).
    read_only : bool
        Only read the rows (for summaries and views while a run may be writing).
    """

    def __init__(self, path: str | os.PathLike, *, drop_errors: bool = False, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self.rows: list[dict] = []
        self.done: set[str] = set()
        self.dropped_partial = False
        self.dropped_errors: list[str] = []
        self._lock_fd: int | None = None
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock()
        try:
            if self.path.exists():
                self._load()
                if drop_errors and not read_only:
                    self._drop_errors()
        except BaseException:
            self.close()
            raise

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(f".{self.path.name}.lock")

    def _lock(self) -> None:
        if fcntl is None:
            return
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 64).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise EvalError(
                f"another evaluation (pid {holder}) is writing {self.path} right now; two runs on one output "
                "folder would score and write every item twice. Wait for it to finish (then run again to "
                "resume), or give this run another --out folder."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())  # who holds it, for the message above
        self._lock_fd = fd

    def close(self) -> None:
        """Release the writer's lock (the rows stay readable)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def __enter__(self) -> ResultsFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    def _load(self) -> None:
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1  # 0 when there is no complete line
        if end < len(data) and not self.read_only:
            with open(self.path, "r+b") as fh:
                fh.truncate(end)
                fh.flush()
                os.fsync(fh.fileno())
            self.dropped_partial = True
        for lineno, line in enumerate(data[:end].splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except (json.JSONDecodeError, RecursionError) as exc:
                raise EvalError(
                    f"{self.path}:{lineno} is not valid JSON ({getattr(exc, 'msg', exc)}); the file was edited or "
                    "corrupted. Fix or delete that line, then run again."
                ) from exc
            if not isinstance(row, dict):
                raise EvalError(f"{self.path}:{lineno} is not a result row (a JSON object); the file was edited or "
                                "corrupted. Fix or delete that line, then run again.")
            if row.get("utt") in self.done:
                continue  # never count a duplicate twice, whatever wrote it
            self.rows.append(row)
            self.done.add(row.get("utt"))

    def _drop_errors(self) -> None:
        keep = [r for r in self.rows if not r.get("error")]
        self.dropped_errors = [r.get("utt") for r in self.rows if r.get("error")]
        if not self.dropped_errors:
            return
        with atomic_write(self.path, "w") as fh:  # a kill leaves the old or the new file, never half of one
            for row in keep:
                fh.write(json.dumps(row, ensure_ascii=False, default=_json_default) + "\n")
        self.rows = keep
        self.done = {r.get("utt") for r in keep}

    def append(self, row: dict) -> None:
        """Write one row durably (write + flush + fsync); a row for an utterance already done is an error."""
        if self.read_only:
            raise EvalError(f"{self.path} was opened read-only; open it without read_only=True to add rows.")
        utt = row.get("utt")
        if utt in self.done:
            raise EvalError(f"utterance {utt!r} is already in {self.path}; refusing to write it twice.")
        line = json.dumps(row, ensure_ascii=False, default=_json_default) + "\n"
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        self.rows.append(row)
        self.done.add(utt)


def _json_default(obj):
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _json_safe(value):
    """NaN/inf are not JSON: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def summarize_results(
    rows: Sequence[dict] | str | os.PathLike, *, n_items: int | None = None, missing: Sequence[str] = ()
) -> tuple[pd.DataFrame, dict]:
    """Aggregate result rows (or a ``results.jsonl``) into a table and a JSON-able summary.

    Returns
    -------
    table : pandas.DataFrame
        One row per language (plus ``all`` when there are several): ``n``, ``metric``, ``wer_utt_mean``
        (%, the protocol number), ``wer_corpus`` (%), ``sim_mean``, ``n_errors``.
    summary : dict
        Counts (``n_items``, ``n_results``, ``n_scored``, ``n_errors``, ``n_missing``, ``missing``),
        per-language metrics under ``by_lang``, and timing totals (``synth_s``, ``asr_s``, ``sim_s``,
        ``audio_s``, ``rtf``).
    """
    if isinstance(rows, (str, os.PathLike)):
        rows = ResultsFile(rows, read_only=True).rows
    df = pd.DataFrame(list(rows))
    for col in ("utt", "lang", "error", "sim", "wer", "cer", "errors", "ref_len", "unit"):
        if col not in df.columns:
            df[col] = None

    def block(sub: pd.DataFrame) -> dict:
        sub = sub.copy()
        sub["wer"] = sub["wer"].where(sub["wer"].notna(), sub["cer"])
        w = summarize_wer(sub[["wer", "errors", "ref_len", "unit"]])
        sims = sub["sim"].dropna().astype(float)
        zh = (sub["lang"] == "zh").all() and len(sub) > 0
        return {
            "n": int(len(sub)),
            "metric": "cer" if zh else "wer",
            "n_scored": int(w.n),
            "wer_utt_mean": _json_safe(round(100 * w.utterance_mean, 3)),
            "wer_corpus": _json_safe(round(100 * w.corpus, 3)),
            "sim_n": int(len(sims)),
            "sim_mean": _json_safe(round(float(sims.mean()), 3)) if len(sims) else None,
            "sim_var": _json_safe(float(sims.var(ddof=0))) if len(sims) else None,
            "n_errors": int(sub["error"].notna().sum()),
        }

    by_lang = {str(lang): block(sub) for lang, sub in df.groupby("lang", dropna=False)} if len(df) else {}
    overall = block(df) if len(df) else block(df.iloc[0:0])
    table = pd.DataFrame.from_dict(by_lang, orient="index")
    if len(by_lang) > 1:
        table.loc["all"] = overall
    timing = {
        k: float(df[k].fillna(0).sum()) if k in df.columns else 0.0
        for k in ("synth_s", "asr_s", "sim_s", "audio_s")
    }
    timing["rtf"] = timing["synth_s"] / timing["audio_s"] if timing["audio_s"] else None
    summary = {
        "n_items": n_items if n_items is not None else int(len(df)) + len(missing),
        "n_results": int(len(df)),
        "n_scored": overall["n_scored"],
        "n_errors": overall["n_errors"],
        "n_missing": len(missing),
        "missing": list(missing)[:100],
        **{k: overall[k] for k in ("metric", "wer_utt_mean", "wer_corpus", "sim_mean", "sim_var", "sim_n")},
        "by_lang": by_lang,
        "timing": timing,
    }
    return table, summary


@dataclass
class EvalRun:
    """What :func:`run_eval` returns."""

    results: pd.DataFrame
    table: pd.DataFrame
    summary: dict
    missing: list[str] = field(default_factory=list)
    out_dir: Path | None = None


def item_wav_path(folder: str | os.PathLike, item: EvalItem) -> Path:
    """``<folder>/<utt>.wav``, refusing ids that would name a file anywhere else (:class:`EvalError`)."""
    base = Path(folder)
    path = base / f"{check_utt_id(item.utt, f'list item {item.utt!r}')}.wav"
    # Belt and braces: lexically the file must sit directly in the folder whatever the id check allows.
    if Path(os.path.normpath(path)).parent != Path(os.path.normpath(base)):
        raise EvalError(f"list item {item.utt!r}: its wav path {path} is outside {base}; rename the id.")
    return path


def _process(item: EvalItem, scorer: Scorer, wav_path: Path, synthesize: Synthesizer | None) -> dict:
    """Synthesise (if needed and not already on disk) and score one item; never raises for item errors."""
    synth_s = None
    if synthesize is not None and not wav_path.exists():
        t = time.perf_counter()
        try:
            audio, sr = synthesize(item)
            save_audio(wav_path, audio, sr)  # atomic: a kill mid-write never leaves a truncated <utt>.wav
        except Exception as exc:
            return {
                "utt": item.utt,
                "text": item.text,
                "lang": item.lang,
                "hyp": None,
                "sim": None,
                "error": f"synthesis: {type(exc).__name__}: {exc}",
                "synth_s": time.perf_counter() - t,
            }
        synth_s = time.perf_counter() - t
    row = scorer.score(item, wav_path)
    if synth_s is not None:
        row["synth_s"] = synth_s
    row["wav"] = str(wav_path)
    return row


class _RayWorker:
    """Ray actor body: builds its own models once, then processes items."""

    def __init__(self, config: ScoringConfig, synthesize: Synthesizer | None) -> None:
        self.scorer = config.build()
        self.synthesize = synthesize

    def process(self, item: EvalItem, wav_path: str) -> dict:
        return _process(item, self.scorer, Path(wav_path), self.synthesize)


def _iter_ray(
    jobs: list[tuple[EvalItem, Path]], config: ScoringConfig, synthesize: Synthesizer | None, num_workers: int
) -> Iterable[dict]:
    try:
        import ray
    except ImportError as exc:
        raise EvalError("engine='ray' needs Ray: pip install ray (or use engine='local').") from exc
    started = not ray.is_initialized()
    if started:  # a private local cluster, shut down again when the run ends
        ray.init(num_cpus=max(1, num_workers), include_dashboard=False, log_to_driver=False)
    try:
        actor_cls = ray.remote(_RayWorker)
        actors = [actor_cls.remote(config, synthesize) for _ in range(max(1, num_workers))]
        pending: dict = {}
        queue = list(jobs)
        next_actor = 0
        while queue or pending:
            while queue and len(pending) < 2 * len(actors):  # bounded in-flight work: results stream back
                item, path = queue.pop(0)
                ref = actors[next_actor % len(actors)].process.remote(item, str(path))
                next_actor += 1
                pending[ref] = item
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                pending.pop(ref)
                try:
                    row = ray.get(ref)
                except Exception as exc:
                    # Item errors come back as rows; an exception here means the worker itself failed
                    # (e.g. its models could not load). Stop rather than write every item as failed.
                    raise EvalError(f"Ray worker failed ({type(exc).__name__}): {exc}") from exc
                yield row
    finally:
        if started:
            ray.shutdown()


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

    if not jobs:  # everything done (or missing): do not load models for nothing
        stream: Iterable[dict] = iter(())
    elif engine == "ray":
        stream = _iter_ray(jobs, config or ScoringConfig(), synthesize, num_workers)
    else:
        local = scorer if scorer is not None else (config or ScoringConfig()).build()
        _check_asr_covers(local, [item for item, _ in jobs])
        stream = (_process(item, local, path, synthesize) for item, path in jobs)

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
    summary["config"] = asdict(config) if config is not None else None
    with atomic_write(out_dir / SUMMARY_FILE, "w") as fh:
        json.dump(summary, fh, indent=2, ensure_ascii=False, default=_json_default)
    return EvalRun(results=pd.DataFrame(rows), table=table, summary=summary, missing=missing, out_dir=out_dir)


__all__ = [
    "RESULTS_FILE",
    "SUMMARY_FILE",
    "EvalRun",
    "ResultsFile",
    "Scorer",
    "ScoringConfig",
    "item_wav_path",
    "run_eval",
    "summarize_results",
]


def sparktts_synthesizer(
    tts: Any, seed: int | None = None, **kwargs: Any
) -> Callable[[EvalItem], tuple[np.ndarray, int]]:
    """``synthesize(item) -> (audio, sample_rate)`` over a loaded :class:`sparktts.SparkTTS`.

    Items with a ``prompt_wav`` are cloned from it (with ``prompt_text`` when the list gives one, as the
    Spark-TTS reference inference does); items without one but with a ``gender`` are voice-creation items
    (missing pitch / speed = "moderate"). ``kwargs`` go to the clone / create call (e.g. ``max_new_tokens``).
    """

    def synthesize(item: EvalItem) -> tuple[np.ndarray, int]:
        if item.prompt_wav is not None:
            out = tts.clone(item.text, prompt_audio=str(item.prompt_wav), prompt_text=item.prompt_text, seed=seed,
                            progress=False, **kwargs)
        elif item.gender is not None:
            out = tts.create(item.text, item.gender, item.pitch or "moderate", item.speed or "moderate", seed=seed,
                             progress=False, **kwargs)
        else:
            raise EvalError(f"item {item.utt!r} has neither a prompt_wav (clone) nor a gender (create).")
        return out.audio, out.sample_rate

    return synthesize
