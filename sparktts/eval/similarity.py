"""Speaker similarity (SIM): cosine of speaker embeddings of the generated audio and the prompt.

Back ends, by fidelity to Seed-TTS-eval:

* ``"wavlm-ecapa"``: the protocol's model (UniSpeech ``ECAPA_TDNN_SMALL`` on WavLM-large, checkpoint
  ``wavlm_large_finetune.pth``). Its code is not on PyPI, so it is loaded from the user's checkout of
  Seed-TTS-eval (``code_dir``) with the user's checkpoint (``path``); nothing is loaded otherwise. Only
  this back end gives numbers comparable to the papers' SIM.
* ``"speechbrain"``: ``speechbrain/spkrec-ecapa-voxceleb`` (192-d ECAPA on fbanks), from a local folder or
  the hub.
* ``"resemblyzer"``: the GE2E d-vector (256-d) whose weights ship inside the PyPI package; always
  available offline and good for relative comparisons (same vs different speaker), not for paper tables.

All take 16 kHz mono; other rates are resampled with soxr.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import sys
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ._audio import EVAL_SR, AudioLike, cache_dir, load_16k
from .errors import EvalError, ModelNotAvailableError

SIM_BACKENDS = ("resemblyzer", "speechbrain", "wavlm-ecapa")
SPEECHBRAIN_ECAPA = "speechbrain/spkrec-ecapa-voxceleb"
_SPEECHBRAIN_FILES = ("hyperparams.yaml", "embedding_model.ckpt", "mean_var_norm_emb.ckpt")
_WAVLM_HOWTO = (
    "The Seed-TTS-eval similarity model needs (1) its checkpoint wavlm_large_finetune.pth (Google Drive id "
    "1-aE1NfzpRCLxA4GUxX9ITI3F9LlbtEGP, linked from the seed-tts-eval README), passed as --sim-model PATH "
    "(load_speaker_model(path=...)); (2) a checkout of seed-tts-eval, passed as --sim-code "
    "<seed-tts-eval>/thirdparty/UniSpeech/downstreams/speaker_verification (code_dir=...); (3) pip install "
    "s3prl, with ECAPA_TDNN's torch.hub.load pointing at a local s3prl checkout whose wavlm_large upstream "
    "is cached when offline."
)


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of two embedding vectors, in [-1, 1].

    Raises
    ------
    EvalError
        Shapes differ or one vector is all zeros.
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise EvalError(
            f"embeddings of different sizes {a.shape} and {b.shape}; use one speaker model for both."
        )
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        raise EvalError("an embedding is all zeros; the audio probably contains no speech.")
    return float(np.dot(a, b) / (na * nb))


class SpeakerModel(ABC):
    """A speaker-embedding model: ``embed(audio) -> (D,)`` and ``similarity(a, b) -> float``."""

    backend: str = ""
    model_name: str = ""

    @abstractmethod
    def _embed16k(self, wav: np.ndarray) -> np.ndarray:
        """Embed ``(T,)`` float32 audio at 16 kHz."""

    def embed(self, audio: AudioLike, sample_rate: int | None = None) -> np.ndarray:
        """Speaker embedding of one utterance.

        Parameters
        ----------
        audio : path or np.ndarray
            File, or samples with ``sample_rate``.

        Returns
        -------
        np.ndarray
            ``(D,)`` float32 (D = 256 resemblyzer, 192 speechbrain, 256 wavlm-ecapa).
        """
        return np.asarray(self._embed16k(load_16k(audio, sample_rate)), dtype=np.float32).reshape(-1)

    def similarity(
        self,
        a: AudioLike | np.ndarray,
        b: AudioLike | np.ndarray,
        sample_rate: int | None = None,
    ) -> float:
        """Cosine similarity of the speakers of ``a`` and ``b`` (files, or arrays at ``sample_rate``)."""
        return cosine_similarity(self.embed(a, sample_rate), self.embed(b, sample_rate))


class ResemblyzerModel(SpeakerModel):
    """Resemblyzer GE2E d-vector. Silences are trimmed with webrtcvad first (resemblyzer's preprocessing)."""

    backend = "resemblyzer"

    def __init__(self, path: str | os.PathLike | None = None, device: str = "cpu") -> None:
        try:
            from resemblyzer import VoiceEncoder
        except ImportError as exc:
            raise ModelNotAvailableError(
                "the resemblyzer back end needs: pip install --no-deps resemblyzer==0.1.4 webrtcvad-wheels "
                f"(import failed: {exc})"
            ) from exc
        if path is not None and not Path(path).is_file():
            raise ModelNotAvailableError(
                f"resemblyzer weights {path} not found; omit --sim-model to use the weights shipped in the "
                "resemblyzer package."
            )
        self.model_name = str(path) if path is not None else "resemblyzer/pretrained.pt"
        self._encoder = VoiceEncoder(device=device, verbose=False, weights_fpath=path)

    def _embed16k(self, wav: np.ndarray) -> np.ndarray:
        from resemblyzer import preprocess_wav

        if wav.size == 0 or float(np.max(np.abs(wav))) < 1e-4:  # its volume normaliser divides by zero
            raise EvalError("no speech found in the audio (it is silent).")
        speech = preprocess_wav(wav, source_sr=EVAL_SR)
        if speech.size == 0:
            raise EvalError(
                "no speech found in the audio (resemblyzer's voice activity detector kept nothing)."
            )
        return self._encoder.embed_utterance(speech)


class SpeechBrainECAPA(SpeakerModel):
    """SpeechBrain ECAPA-TDNN (``spkrec-ecapa-voxceleb``), from a local folder or the hub."""

    backend = "speechbrain"

    def __init__(
        self, path: str | os.PathLike | None = None, device: str = "cpu", download: bool = True
    ) -> None:
        try:
            from speechbrain.inference.speaker import EncoderClassifier
        except ImportError as exc:
            raise ModelNotAvailableError(
                "the speechbrain back end needs: pip install speechbrain==1.1.2 torchaudio==2.11.0 "
                f"(import failed: {exc})"
            ) from exc
        source = str(path) if path is not None else SPEECHBRAIN_ECAPA
        overrides: dict = {}
        local = Path(source).expanduser()
        if path is not None and (local.exists() or os.sep in source):
            if not local.is_dir():
                raise ModelNotAvailableError(
                    f"SpeechBrain model folder {local} does not exist. Download {SPEECHBRAIN_ECAPA} "
                    f"({', '.join(_SPEECHBRAIN_FILES)}, classifier.ckpt, label_encoder.txt) into a folder "
                    "and "
                    "pass it with --sim-model DIR."
                )
            missing = [f for f in _SPEECHBRAIN_FILES if not (local / f).is_file()]
            if missing:
                raise ModelNotAvailableError(
                    f"SpeechBrain model folder {local} lacks {', '.join(missing)}; it must hold the files of "
                    f"{SPEECHBRAIN_ECAPA} (hyperparams.yaml, embedding_model.ckpt, mean_var_norm_emb.ckpt, "
                    "classifier.ckpt, label_encoder.txt). Pass the complete folder with --sim-model DIR."
                )
            source = str(local.resolve())
            # The released hyperparams.yaml resolves every checkpoint through `pretrained_path:
            # speechbrain/spkrec-ecapa-voxceleb` (a hub id), whatever `source` is; point it at the folder
            # or loading a local copy still goes to the network.
            hp_text = (local / "hyperparams.yaml").read_text(encoding="utf-8")
            if re.search(r"^pretrained_path\s*:", hp_text, flags=re.MULTILINE):
                overrides = {"pretrained_path": source}
        elif not download:
            raise ModelNotAvailableError(
                f"SpeechBrain model {source!r} would be fetched from the Hugging Face hub but "
                "download=False; "
                f"download {SPEECHBRAIN_ECAPA} to a folder and pass it with --sim-model DIR."
            )
        # One cache folder per source (hub id or resolved path), so two local folders never share links.
        tag = hashlib.sha1(source.encode("utf-8")).hexdigest()[:8]
        savedir = cache_dir() / "speechbrain" / f"{Path(source).name}-{tag}"
        try:
            self._model = EncoderClassifier.from_hparams(
                source=source, savedir=str(savedir), run_opts={"device": device}, overrides=overrides
            )
        except Exception as exc:  # hub/network/yaml errors all mean "cannot use this model"
            raise ModelNotAvailableError(
                f"cannot load SpeechBrain model {source!r} ({type(exc).__name__}: {exc}). Offline, download "
                f"{SPEECHBRAIN_ECAPA} to a folder and pass it with --sim-model DIR."
            ) from exc
        self.model_name = source

    def _embed16k(self, wav: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            emb = self._model.encode_batch(torch.from_numpy(wav)[None, :])
        return emb.reshape(-1).cpu().numpy()


@contextlib.contextmanager
def _on_sys_path(folder: Path):
    """Make ``folder`` importable for the duration of the block (for user-supplied model code)."""
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(str(folder))


def _read_wavlm_checkpoint(path: Path) -> dict:
    """The ``wavlm_large_finetune.pth`` dict (with its ``"model"`` weights), read without running pickled code."""
    import torch

    try:
        # weights_only: a checkpoint downloaded from others must never run code when it is read (torch
        # only made this the default in 2.6, and pyproject allows older versions).
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelNotAvailableError(
            f"wavlm-ecapa: {path} cannot be read as plain weights ({type(exc).__name__}: {exc}); it is "
            f"corrupt, or holds pickled objects that are not loaded for safety. {_WAVLM_HOWTO}"
        ) from exc
    if not isinstance(state, dict) or "model" not in state:
        raise ModelNotAvailableError(
            f"wavlm-ecapa: {path} is not wavlm_large_finetune.pth (no 'model' entry). {_WAVLM_HOWTO}"
        )
    return state


class WavLMECAPA(SpeakerModel):
    """Seed-TTS-eval's WavLM-large + ECAPA-TDNN verifier, from the user's checkout and checkpoint."""

    backend = "wavlm-ecapa"

    def __init__(
        self, path: str | os.PathLike | None, code_dir: str | os.PathLike | None, device: str = "cpu"
    ) -> None:
        if path is None:
            raise ModelNotAvailableError(f"wavlm-ecapa: no checkpoint given. {_WAVLM_HOWTO}")
        if not Path(path).is_file():
            raise ModelNotAvailableError(f"wavlm-ecapa: checkpoint {path} not found. {_WAVLM_HOWTO}")
        if code_dir is None or not (Path(code_dir) / "models" / "ecapa_tdnn.py").is_file():
            raise ModelNotAvailableError(
                f"wavlm-ecapa: the model code was not found (code_dir={code_dir!r} has no "
                "models/ecapa_tdnn.py). "
                f"{_WAVLM_HOWTO}"
            )

        try:
            with _on_sys_path(Path(code_dir).resolve()):
                from models.ecapa_tdnn import ECAPA_TDNN_SMALL  # type: ignore[import-not-found]

                # Same construction and loading as seed-tts-eval's verification.init_model("wavlm_large").
                model = ECAPA_TDNN_SMALL(feat_dim=1024, feat_type="wavlm_large", config_path=None)
        except Exception as exc:
            raise ModelNotAvailableError(
                f"wavlm-ecapa: building ECAPA_TDNN_SMALL(wavlm_large) failed ({type(exc).__name__}: {exc}). "
                f"{_WAVLM_HOWTO}"
            ) from exc
        state = _read_wavlm_checkpoint(Path(path))
        # strict=False as in the protocol; the checkpoint omits frozen upstream buffers.
        model.load_state_dict(state["model"], strict=False)
        self._model = model.to(device).eval()
        self._device = device
        self.model_name = str(path)

    def _embed16k(self, wav: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            emb = self._model(torch.from_numpy(wav)[None, :].to(self._device))
        return emb.reshape(-1).cpu().numpy()


def load_speaker_model(
    backend: str = "resemblyzer",
    path: str | os.PathLike | None = None,
    *,
    device: str = "cpu",
    code_dir: str | os.PathLike | None = None,
    download: bool = True,
) -> SpeakerModel:
    """Load a speaker-embedding model.

    Parameters
    ----------
    backend : {"resemblyzer", "speechbrain", "wavlm-ecapa"}
    path : str or path, optional
        resemblyzer: weights file (default: the packaged one); speechbrain: model folder or hub id
        (default ``speechbrain/spkrec-ecapa-voxceleb``); wavlm-ecapa: ``wavlm_large_finetune.pth`` (required).
    device : str
    code_dir : path, optional
        wavlm-ecapa only: ``<seed-tts-eval>/thirdparty/UniSpeech/downstreams/speaker_verification``.
    download : bool
        speechbrain only: ``False`` refuses to contact the hub.

    Raises
    ------
    ModelNotAvailableError
        Package, weights or code missing; the message says how to provide them.
    EvalError
        Unknown back end.
    """
    if backend == "resemblyzer":
        return ResemblyzerModel(path, device=device)
    if backend == "speechbrain":
        return SpeechBrainECAPA(path, device=device, download=download)
    if backend == "wavlm-ecapa":
        return WavLMECAPA(path, code_dir, device=device)
    raise EvalError(
        f"unknown speaker-similarity back end {backend!r}; choose one of {', '.join(SIM_BACKENDS)}."
    )


@dataclass
class Identification:
    """Which prompt each clone sounds most like: the voice-cloning check of a list with several prompts.

    Attributes
    ----------
    matrix : DataFrame
        Rows: utterances; columns: the distinct prompts; values: SIM of the utterance to that prompt.
    own : Series
        Each utterance's own prompt (a column name).
    """

    matrix: pd.DataFrame
    own: pd.Series

    @property
    def nearest(self) -> pd.Series:
        return self.matrix.idxmax(axis=1)

    @property
    def correct(self) -> pd.Series:
        """True where the utterance is closer to its own prompt than to every other prompt."""
        return self.nearest == self.own

    @property
    def accuracy(self) -> float:
        return float(self.correct.mean()) if len(self.own) else math.nan


def prompt_identification(
    outputs: Mapping[str, AudioLike], prompts: Mapping[str, str | os.PathLike], model: SpeakerModel
) -> Identification:
    """SIM of every output to every distinct prompt of the list, and whether its own prompt is the nearest.

    ``outputs``: utterance -> generated audio; ``prompts``: utterance -> its prompt file. Each audio is
    embedded once. Prompts are named by file name (by full path where two share a name).
    """
    utts = [u for u in outputs if u in prompts]
    if not utts:
        raise EvalError("no utterance has both an output and a prompt: nothing to identify.")
    paths = sorted({str(prompts[u]) for u in utts})
    names = [Path(p).name for p in paths]
    if len(set(names)) < len(names):
        names = paths
    name_of = dict(zip(paths, names))
    book = np.stack([model.embed(p) for p in paths])  # (P, D)
    rows = np.stack([model.embed(outputs[u]) for u in utts])  # (N, D)
    sims = (rows / np.linalg.norm(rows, axis=1, keepdims=True)) @ (book / np.linalg.norm(book, axis=1, keepdims=True)).T
    matrix = pd.DataFrame(sims, index=pd.Index(utts, name="utt"), columns=names)
    return Identification(matrix, pd.Series([name_of[str(prompts[u])] for u in utts], index=matrix.index))


__all__ = [
    "SIM_BACKENDS",
    "Identification",
    "ResemblyzerModel",
    "SpeakerModel",
    "SpeechBrainECAPA",
    "WavLMECAPA",
    "cosine_similarity",
    "load_speaker_model",
    "prompt_identification",
]
