"""Evaluation panel: a test list, the scoring back ends, a progress bar, then the results table and plots.

A view over :func:`sparktts.eval.runner.run_eval` (what ``python -m sparktts.eval`` runs): the rows, the
summary and the resumable ``results.jsonl`` are the runner's; the figures are :mod:`sparktts.eval.plots`.
"""

from __future__ import annotations

import html
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as W
import pandas as pd

from ..errors import PromptError
from .base import DATA, Panel, audio_widget, figure_widget
from .clone import NO_MODEL

if TYPE_CHECKING:
    from ..inference.tts import SparkTTS


SOURCES = ("synthesise with the model", "score a folder of <utt>.wav")
NONE = "none"
# Result columns worth reading in the table, in this order (the runner writes more: timings, model names).
COLUMNS = ("utt", "text", "hyp", "wer", "cer", "sim", "gender", "gender_measured", "pitch", "pitch_measured",
           "speed", "speed_measured", "error", "synth_s")
MAX_PLAYERS = 12  # audio players shown under the table; a long list would make the page huge


def list_choices(folder: str | Path | None = None) -> dict[str, str]:
    """Test lists in ``folder`` (default ``data/testlists``): file name -> path, ``.lst`` and ``.jsonl``."""
    folder = Path(folder) if folder is not None else DATA / "testlists"
    files = sorted(p for p in folder.glob("*") if p.suffix.lower() in (".lst", ".jsonl"))
    return {p.name: str(p) for p in files}


def _new_run_dir(root: Path, stem: str) -> Path:
    """A folder that does not exist yet: a fresh run never resumes someone else's results by accident."""
    base = root / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


class EvaluatePanel(Panel):
    """Score a test list with ASR (WER/CER) and speaker similarity, optionally synthesising it first.

    Choose a list (``data/testlists`` by default), whether to synthesise it with the model or score a
    folder of existing ``<utt>.wav`` files, and the back ends; **Run evaluation** shows a progress bar,
    then the summary, the per-utterance table, the WER/SIM histograms and, with attribute control on,
    the pitch / speed confusion matrices. ``panel.result`` is the runner's
    :class:`~sparktts.eval.runner.EvalRun` (``results`` DataFrame, ``table``, ``summary``, ``out_dir``).

    The output folder box, when left empty, gets a new folder under ``out_root`` for each run; a folder
    typed there is resumed (utterances already in its ``results.jsonl`` are not redone).

    Args:
        tts: a loaded :class:`~sparktts.SparkTTS` for synthesis (None: only folder scoring works).
        lists: name -> path of the lists to offer (default :func:`list_choices`).
        out_root: where new run folders are made.
        asr_model: initial Whisper model name or path (empty = the best installed offline model).
        max_new_tokens: token budget of each synthesis (None: the library default).
        device: device of the scoring models.
    """

    title = "Evaluation"

    def __init__(self, tts: SparkTTS | None = None, lists: dict[str, str] | None = None,
                 out_root: str | Path = "outputs/eval", asr_model: str | None = None,
                 max_new_tokens: int | None = None, device: str = "cpu") -> None:
        from ..eval.asr import ASR_BACKENDS
        from ..eval.similarity import SIM_BACKENDS
        from ..llm.sampling import SamplingConfig

        super().__init__()
        self.tts = tts
        self.out_root = Path(out_root)
        self.device = device
        self.lists = lists if lists is not None else list_choices()
        names = list(self.lists)
        self.list = W.Dropdown(options=names, value=names[0] if names else None, description="test list")
        self.limit = W.BoundedIntText(value=0, min=0, max=1_000_000, description="first N",
                                      tooltip="evaluate only the first N items (0 = all)",
                                      layout=W.Layout(width="160px"))
        self.source = W.ToggleButtons(options=SOURCES, value=SOURCES[0] if tts is not None else SOURCES[1],
                                      description="audio")
        self.source.style.button_width = "220px"
        self.wav_dir = W.Text(description="wav folder", placeholder="folder of <utt>.wav (score mode)",
                              layout=W.Layout(width="60%"))
        self.asr = W.Dropdown(options=(*ASR_BACKENDS, NONE), value=ASR_BACKENDS[0], description="ASR")
        self.asr_model = W.Text(value=asr_model or "", description="ASR model",
                                placeholder="empty = best installed offline Whisper")
        self.sim = W.Dropdown(options=(*SIM_BACKENDS, NONE), value=SIM_BACKENDS[0], description="speaker SIM")
        self.control = W.Checkbox(value=False, description="measure gender / pitch / speed")
        self.seed = W.IntText(value=0, description="seed", tooltip="seed of every synthesis call",
                              layout=W.Layout(width="160px"))
        budget = SamplingConfig().max_new_tokens if max_new_tokens is None else max_new_tokens
        self.max_new_tokens = W.BoundedIntText(value=budget, min=1, max=100_000, description="max tokens")
        self.out_dir = W.Text(description="output folder", placeholder=f"empty = a new folder in {self.out_root}",
                              layout=W.Layout(width="60%"))
        self.run_button = W.Button(description="Run evaluation", button_style="primary", icon="play")
        self.progress = W.IntProgress(value=0, min=0, max=1, description="progress")
        self.run_button.on_click(lambda _: self.run_evaluation())
        self.busy_widgets = [self.run_button]
        self._scorers: dict[Any, Any] = {}  # loaded back ends by config: Whisper takes seconds to load
        self.controls = W.VBox([
            W.HBox([self.list, self.limit]),
            self.source,
            self.wav_dir,
            W.HBox([self.asr, self.asr_model]),
            W.HBox([self.sim, self.control]),
            W.HBox([self.seed, self.max_new_tokens]),
            self.out_dir,
            W.HBox([self.run_button, self.progress]),
        ])

    def config(self) -> Any:
        """The :class:`~sparktts.eval.runner.ScoringConfig` of the chosen back ends."""
        from ..eval.runner import ScoringConfig

        asr = None if self.asr.value == NONE else self.asr.value
        sim = None if self.sim.value == NONE else self.sim.value
        if asr is None and sim is None and not self.control.value:
            raise PromptError("nothing to score: choose an ASR or a speaker-similarity back end, or attribute control")
        return ScoringConfig(asr_backend=asr, asr_model=self.asr_model.value.strip() or None, sim_backend=sim,
                             control=bool(self.control.value), device=self.device)

    def _scorer(self, config: Any) -> Any:
        if config not in self._scorers:
            self._scorers[config] = config.build()
        return self._scorers[config]

    def run_evaluation(self) -> bool:
        """Run the runner with the current settings (what the Run evaluation button does)."""

        def work() -> list[W.Widget]:
            from ..eval.lists import read_list
            from ..eval.runner import RESULTS_FILE, ResultsFile, run_eval

            if self.list.value is None:
                raise PromptError("no test list: put .lst / .jsonl files in data/testlists or pass lists=")
            items = read_list(self.lists[self.list.value])
            if self.limit.value:
                items = items[: self.limit.value]
            synth = self.source.value == SOURCES[0]
            if synth and self.tts is None:
                raise PromptError(NO_MODEL.replace("ClonePanel", "EvaluatePanel") + ", or score a folder of wavs")
            if not synth and not self.wav_dir.value.strip():
                raise PromptError("score mode needs the wav folder: type the folder that holds <utt>.wav")
            config = self.config()
            out_dir = (Path(self.out_dir.value.strip()) if self.out_dir.value.strip()
                       else _new_run_dir(self.out_root, Path(self.list.value).stem))
            done = (ResultsFile(out_dir / RESULTS_FILE, read_only=True).done if (out_dir / RESULTS_FILE).exists()
                    else set())
            self.progress.max = max(1, len(items))
            self.progress.value = sum(it.utt in done for it in items)
            self.progress.bar_style = "info"
            self.set_status("Loading the scoring models ...")
            scorer = self._scorer(config)

            def on_item(row: dict) -> None:
                self.progress.value += 1
                self.set_status(f"Evaluating ... {self.progress.value}/{len(items)} ({row.get('utt')})")

            common: dict[str, Any] = dict(scorer=scorer, config=config, progress=False, on_item=on_item)
            if synth:
                from ..eval.runner import sparktts_synthesizer

                synthesize = sparktts_synthesizer(self.tts, self.seed.value, max_new_tokens=self.max_new_tokens.value)
                run = run_eval(items, out_dir, synthesize=synthesize, **common)
            else:
                run = run_eval(items, out_dir, wav_dir=self.wav_dir.value.strip(), **common)
            self.progress.value = self.progress.max
            self.progress.bar_style = "success"
            self.result = run
            return self._view(run)

        ok = self.run("Evaluating", work)
        if not ok:
            self.progress.bar_style = "danger"
        return ok

    def _view(self, run: Any) -> list[W.Widget]:
        from ..eval.control import score_control
        from ..eval.plots import plot_confusion, plot_wer_sim

        s = run.summary
        metric = str(s.get("metric") or "wer").upper()
        wer = "—" if s.get("wer_utt_mean") is None else f"{s['wer_utt_mean']} %"
        sim = "—" if s.get("sim_mean") is None else str(s["sim_mean"])
        head = (f"<b>{s['n_items']} items</b>: {s['n_scored']} scored, {s['n_errors']} with errors, "
                f"{s['n_missing']} missing wavs — {metric} (utterance mean) <b>{wer}</b>, SIM <b>{sim}</b>"
                f"<br>results: <code>{html.escape(str(run.out_dir))}</code>")
        children: list[W.Widget] = [W.HTML(head)]
        if len(run.table):
            children.append(W.HTML(run.table.to_html(na_rep="—")))
        results: pd.DataFrame = run.results
        if len(results):
            cols = [c for c in COLUMNS if c in results.columns and results[c].notna().any()]
            table = results[cols].to_html(index=False, na_rep="—", float_format=lambda x: f"{x:.3f}")
            children.append(W.HTML(f"<div style='max-height:320px;overflow:auto'>{table}</div>"))
            if any(c in results.columns for c in ("wer", "cer", "sim")):
                children.append(figure_widget(plot_wer_sim(results, title=str(self.list.value))))
            report = score_control(results.to_dict("records")) if "pitch_measured" in results.columns else None
            if report is not None and len(report.per_item):
                children.append(W.HTML(f"gender accuracy {report.gender_accuracy:.0%} over {len(report.per_item)} "
                                       "voice-creation items"))
                children.append(W.HBox([figure_widget(plot_confusion(report.pitch_confusion, title="pitch"), "48%"),
                                        figure_widget(plot_confusion(report.speed_confusion, title="speed"), "48%")]))
            children += self._players(results)
        return children

    @staticmethod
    def _players(results: pd.DataFrame) -> list[W.Widget]:
        import soundfile

        rows = []
        if "wav" not in results.columns:
            return rows
        for _, r in results.head(MAX_PLAYERS).iterrows():
            wav = r.get("wav")
            if not isinstance(wav, str) or not Path(wav).is_file():
                continue
            audio, sr = soundfile.read(wav, dtype="float32")
            rows.append(W.HBox([W.HTML(f"<code>{html.escape(str(r['utt']))}</code>&nbsp;",
                                       layout=W.Layout(width="90px")), audio_widget(audio, sr)]))
        return rows
