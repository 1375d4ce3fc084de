"""MODEL_CARD.md of a built-in release, written from what the build recorded (nothing typed in by hand).

    python data/builtin/model_card.py --release R --manifest M --heldout H \
        --run codec-b=RUN:STEP:CONFIG --run lm=RUN:STEP:CONFIG \
        --eval roundtrip=EVAL_DIR --eval clone=EVAL_DIR --eval create=EVAL_DIR

``build.py`` calls :func:`model_card` after its eval stage. Sizes and parameter counts come from the
release's safetensors headers, the data from the manifests, training time and hardware from each run's
``metrics.csv`` and ``run.json``, and every score from an eval folder's ``summary.json``, next to the
target it is held to and whether it meets it.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

PARTS = ("BiCodec", "wav2vec2-large-xlsr-53", "LLM")


@dataclass(frozen=True)
class Target:
    """One "done when" line: ``summary[keys...] <= or >= bound`` on the eval named ``eval`` (no bound:
    reported only)."""

    eval: str
    label: str
    keys: tuple[str, ...]
    bound: float | None
    at_most: bool = False  # True: lower is better (WER)
    unit: str = ""


TARGETS = (
    Target("roundtrip", "codec round trip WER", ("wer_utt_mean",), 20.0, True, " %"),
    Target("roundtrip", "codec round trip WER, median", ("wer_median",), None, True, " %"),
    Target("roundtrip", "codec round trip WER, each clip capped at 100 %", ("wer_capped_mean",), None, True, " %"),
    Target("roundtrip", "codec round trip SIM (to the recording)", ("sim_mean",), None),
    Target("roundtrip_signal", "codec round trip STOI (to the recording)", ("stoi",), None),
    Target("roundtrip_signal", "codec round trip PESQ wide band", ("pesq_wb",), None),
    Target("roundtrip_signal", "codec round trip mel distance (log10 mel L1)", ("mel_distance",), None, True),
    Target("roundtrip_pitch", "codec round trip F0 RMSE (cents, every 4th clip)", ("f0_rmse",), None, True),
    Target("roundtrip_pitch", "codec round trip voicing error (every 4th clip)", ("vuv_error",), None, True),
    Target("espeak", "espeak-ng's own held-out audio WER (the ceiling)", ("wer_utt_mean",), None, True, " %"),
    Target("roundtrip_clear", "codec round trip WER, clips Whisper hears in espeak's audio (≤ 20 %)",
           ("wer_utt_mean",), 20.0, True, " %"),
    Target("roundtrip_clear", "espeak-ng's own WER on those clips", ("espeak_wer_utt_mean",), None, True, " %"),
    Target("clone", "cloning WER", ("wer_utt_mean",), 30.0, True, " %"),
    Target("clone", "cloning WER, median", ("wer_median",), None, True, " %"),
    Target("clone_clear", "cloning WER, sentences Whisper hears in espeak's audio (≤ 20 %)", ("wer_utt_mean",),
           30.0, True, " %"),
    Target("clone", "cloning SIM (to its prompt)", ("sim_mean",), None),
    Target("clone", "cloning: nearest its own prompt", ("identification", "accuracy"), 0.8),
    Target("create", "voice creation WER", ("wer_utt_mean",), 30.0, True, " %"),
    Target("create", "voice creation WER, median", ("wer_median",), None, True, " %"),
    Target("create_clear", "voice creation WER, sentences Whisper hears in espeak's audio (≤ 20 %)",
           ("wer_utt_mean",), 30.0, True, " %"),
    Target("create", "voice creation: requested gender heard", ("control", "gender_accuracy"), 0.9),
    Target("create", "voice creation: pitch within one level", ("control", "pitch_within_one"), 0.8),
)


def _tensor_counts(folder: Path) -> tuple[int, int]:
    """(parameters, bytes) of the safetensors files in ``folder``, from their headers."""
    from safetensors import safe_open

    params = size = 0
    for f in sorted(folder.glob("*.safetensors")):
        size += f.stat().st_size
        with safe_open(str(f), framework="pt") as handle:
            for key in handle.keys():
                n = 1
                for d in handle.get_slice(key).get_shape():
                    n *= d
                params += n
    return params, size


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _duration(row: dict, root: Path) -> float:
    """A manifest row's seconds: its ``duration_s``, else read from the audio file's header."""
    if "duration_s" in row:
        return float(row["duration_s"])
    import soundfile as sf

    path = Path(row["audio"])
    return float(sf.info(str(path if path.is_absolute() else root / path)).duration)


def _run_hours(run: Path) -> float | None:
    from sparktts.train.run import METRICS_FILE, read_metrics

    if not (run / METRICS_FILE).is_file():
        return None
    metrics = read_metrics(run)
    return float(metrics["seconds"].iloc[-1]) / 3600 if len(metrics) and "seconds" in metrics else None


def _hardware(run: Path) -> str:
    from sparktts.train.run import RUN_FILE, read_run_info

    info = read_run_info(run) if (run / RUN_FILE).is_file() else {}
    seen = Counter(f"{s['cpu']} ({s['cores']} cores, {s['torch_threads']} torch threads"
                   + (f", {', '.join(s['gpus'])}" if s.get("gpus") else "") + ")"
                   for s in info.get("sessions", []))
    return "; ".join(seen) or "not recorded (run started before run.json kept sessions)"


def _value(summary: dict, keys: tuple[str, ...]) -> float | None:
    node = summary
    for k in keys:
        if not isinstance(node, dict) or k not in node:
            return None
        node = node[k]
    return None if node is None else float(node)


def score_rows(evals: dict[str, Path]) -> list[tuple[str, str, str, str, str]]:
    """(check, eval folder, measured, target, met) for every target whose eval was run."""
    out = []
    for t in TARGETS:
        if t.eval not in evals:
            continue
        summary_path = Path(evals[t.eval]) / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
        asr = (summary.get("config") or {}).get("asr_model")
        value = _value(summary, t.keys)
        label = f"{t.label} (Whisper {asr})" if asr and "WER" in t.label else t.label
        if value is None:
            out.append((label, str(evals[t.eval]), "not measured", "", ""))
            continue
        if t.bound is None:
            out.append((label, str(evals[t.eval]), f"{value:g}{t.unit}", "", ""))
            continue
        met = value <= t.bound if t.at_most else value >= t.bound
        gap = abs(value - t.bound)
        out.append((label, str(evals[t.eval]), f"{value:g}{t.unit}",
                    f"{'≤' if t.at_most else '≥'} {t.bound:g}{t.unit}",
                    "met" if met else f"not met (off by {gap:.3g}{t.unit})"))
    return out


LEVEL_EVALS = (("roundtrip", "codec round trip, by the recording's voice"),
               ("clone", "cloning, by the prompt's voice"),
               ("create", "voice creation, by the requested attributes"))


def _by_level(folder: Path | None) -> dict[tuple[str, str], dict]:
    """``summary.json``'s ``by_level`` (``sparktts.eval.summary.summarize_by``), keyed by (attribute, value)."""
    path = None if folder is None else Path(folder) / "summary.json"
    if path is None or not path.is_file():
        return {}
    return {(r["by"], r["value"]): r for r in json.loads(path.read_text()).get("by_level") or ()}


def level_tables(evals: dict[str, Path]) -> list[str]:
    """Markdown: WER per gender, pitch and speed level of each eval that recorded them. A mean over 40
    utterances moves a lot with one the recognizer loops on, so the median and the mean with each
    utterance capped at 100 % stand beside it; the round trip also shows espeak-ng's own audio per level."""
    def fmt(v) -> str:
        return "" if v is None else f"{v:.1f}"

    lines: list[str] = []
    espeak = _by_level(evals.get("espeak"))
    for name, title in LEVEL_EVALS:
        levels = _by_level(evals.get(name))
        if not levels:
            continue
        ceiling = espeak if name == "roundtrip" and espeak else {}
        head = "| attribute | level | n | mean | median | capped mean |"
        lines += ["", f"### WER (%) per level: {title}", "",
                  head + (" espeak-ng's own, capped mean |" if ceiling else ""),
                  "|---|---|---|---|---|---|" + ("---|" if ceiling else "")]
        for (by, value), r in levels.items():
            row = f"| {by} | {value} | {r['n_scored']} | {fmt(r['wer_utt_mean'])} | {fmt(r['wer_median'])} | " \
                  f"{fmt(r['wer_capped_mean'])} |"
            if ceiling:
                row += f" {fmt(ceiling.get((by, value), {}).get('wer_capped_mean'))} |"
            lines.append(row)
    return lines


def model_card(release: Path, manifest: Path, heldout: Path, runs: list[tuple[str, Path, int, str]],
               evals: dict[str, Path], notes: str = "") -> str:
    """The card's markdown. ``runs``: (phase, run folder, exported step, config); ``evals``: name -> eval folder
    (``roundtrip``, ``clone``, ``create``)."""
    train, held = _rows(manifest), _rows(heldout)
    hours = sum(_duration(r, manifest.parent) for r in train) / 3600
    voices = Counter(r.get("speaker", "?") for r in train)
    genders = Counter(r.get("gender", "?") for r in train)
    lines = [
        "# Built-in Spark-TTS model (espeak-ng English)",
        "",
        "A small Spark-TTS trained from scratch with this toolkit's own commands (`sparktts prepare`, "
        "`sparktts train codec`, `sparktts train lm`, `sparktts export`) on English speech rendered by "
        "espeak-ng. It speaks only espeak-style synthetic English: it has never heard a human voice, "
        "and its voices are espeak's. It exists so that the demo, the notebooks and the evaluation work "
        "offline on a model that was really trained; it is no substitute for the released Spark-TTS-0.5B.",
        "",
        "## Files",
        "",
        "| part | parameters | size (MB) |",
        "|---|---|---|",
    ]
    for part in PARTS:
        if (release / part).is_dir():
            params, size = _tensor_counts(release / part)
            lines.append(f"| `{part}/` | {params / 1e6:.2f} M | {size / 1e6:.1f} |")
    lines += [
        "",
        "## Data",
        "",
        f"- Training: {len(train)} clips, {hours:.2f} h, from `{manifest.name}`; {len(voices)} espeak voices "
        f"({', '.join(f'{v} {n}' for v, n in sorted(voices.items()))}); "
        f"{', '.join(f'{g} {n}' for g, n in sorted(genders.items()))}.",
        f"- Held out (never trained on; every score below): {len(held)} clips from `{heldout.name}`.",
        "- Rendered by `data/corpus/make_corpus.py` (espeak-ng voices with per-clip pitch `-p` and speed `-s`; "
        "the labels are measured the way the eval module measures outputs).",
        "",
        "## Training",
        "",
        "| phase | config | exported step | training time (h) | hardware |",
        "|---|---|---|---|---|",
    ]
    for name, run, step, config in runs:
        h = _run_hours(run)
        lines.append(f"| {name} | `{config}` | {step} | {'' if h is None else f'{h:.1f}'} | {_hardware(run)} |")
    lines += [
        "",
        "## Scores (held-out sentences, `python -m sparktts.eval`)",
        "",
        "| check | measured | target | |",
        "|---|---|---|---|",
    ]
    for label, _folder, value, target, met in score_rows(evals):
        lines.append(f"| {label} | {value} | {target} | {met} |")
    lines += level_tables(evals)
    if notes:
        lines += ["", "## Notes", "", notes.strip()]
    return "\n".join(lines) + "\n"


def write_model_card(path: Path, text: str) -> Path:
    """Write the card to ``path`` whole or not at all (``sparktts.fileio.atomic_write``)."""
    from sparktts.fileio import atomic_write

    with atomic_write(path, "w") as f:
        f.write(text)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--release", required=True, type=Path)
    p.add_argument("--manifest", required=True, type=Path)
    p.add_argument("--heldout", required=True, type=Path)
    p.add_argument("--run", action="append", default=[], help="PHASE=RUN_DIR:STEP:CONFIG")
    p.add_argument("--eval", action="append", default=[], help="NAME=EVAL_DIR (roundtrip, clone, create)")
    p.add_argument("--notes", type=Path, default=None, help="markdown appended as the card's notes")
    p.add_argument("--out", type=Path, default=None, help="default: RELEASE/MODEL_CARD.md")
    args = p.parse_args(argv)
    runs = []
    for spec in args.run:
        name, rest = spec.split("=", 1)
        run, step, config = rest.rsplit(":", 2)
        runs.append((name, Path(run), int(step), config))
    evals = {name: Path(folder) for name, folder in (e.split("=", 1) for e in args.eval)}
    notes = args.notes.read_text() if args.notes else ""
    write_model_card(args.out or args.release / "MODEL_CARD.md",
                     model_card(args.release, args.manifest, args.heldout, runs, evals, notes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
