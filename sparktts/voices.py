"""Voices: a speaker's 32 BiCodec global tokens (plus, optionally, a reference to continue), saved as JSON.

A :class:`Voice` is everything cloning needs from a reference clip, so a saved voice is reused without
running the audio tokenizer again:

* ``global_ids`` ``(G,)``: the speaker tokens (G = 32 for the release), in [0, 4096);
* optionally ``prompt_semantic_ids`` ``(T,)`` + ``prompt_text``: the reference's semantic tokens and its
  transcript, which the LM then continues (the original's ``prompt_text`` path);
* ``name`` and ``metadata`` (``source``: where it came from — an audio clip, or a voice creation with its
  requested attributes and the model's predicted pitch / speed values; ``created_at``; versions).

File format (``format_version`` 1; an unknown version is refused, never guessed)::

    {"format_version": 1, "name": "anna", "global_ids": [..32 ints..],
     "prompt_semantic_ids": null | [ints], "prompt_text": null | "transcript", "metadata": {...}}
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from sparktts.errors import PromptError
from sparktts.fileio import atomic_write
from sparktts.format.tokens import GLOBAL_CODEBOOK_SIZE, SEMANTIC_CODEBOOK_SIZE

__all__ = ["VOICE_FORMAT_VERSION", "Voice"]

VOICE_FORMAT_VERSION = 1


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _ids(values: Any, name: str, upper: int, where: str) -> np.ndarray:
    """Validate a flat sequence of ints in [0, upper) and return it as ``(N,)`` int64."""
    try:
        arr = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values)
    except Exception as exc:  # ragged lists etc.
        raise PromptError(f"{where}: {name} must be a list of ints ({exc})") from exc
    arr = arr.reshape(-1) if arr.ndim > 1 and arr.size == max(arr.shape) else arr
    if arr.ndim != 1:
        raise PromptError(f"{where}: {name} must be 1-D (one voice), got shape {arr.shape}")
    if arr.size and arr.dtype.kind not in "iu":
        raise PromptError(f"{where}: {name} must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= upper):
        raise PromptError(
            f"{where}: {name} has ids outside [0, {upper}) (range {arr.min()}..{arr.max()}); the voice file is "
            "corrupt or from another codec"
        )
    return arr


@dataclass
class Voice:
    """A reusable speaker. See the module docstring for the fields and the file format."""

    global_ids: np.ndarray
    prompt_semantic_ids: np.ndarray | None = None
    prompt_text: str | None = None
    name: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f"voice {self.name!r}" if self.name else "voice"
        self.global_ids = _ids(self.global_ids, "global_ids", GLOBAL_CODEBOOK_SIZE, where)
        if self.global_ids.size == 0:
            raise PromptError(f"{where}: global_ids is empty; a voice needs its speaker tokens (32 for the release)")
        if (self.prompt_semantic_ids is None) != (self.prompt_text is None):
            raise PromptError(
                f"{where}: prompt_semantic_ids and prompt_text go together (the LM continues the reference's "
                "tokens after reading its transcript); give both or neither"
            )
        if self.prompt_semantic_ids is not None:
            self.prompt_semantic_ids = _ids(self.prompt_semantic_ids, "prompt_semantic_ids", SEMANTIC_CODEBOOK_SIZE,
                                            where)
            if self.prompt_semantic_ids.size == 0:
                raise PromptError(f"{where}: prompt_semantic_ids is empty; drop prompt_text or re-tokenize the clip")
            if not isinstance(self.prompt_text, str) or not self.prompt_text.strip():
                raise PromptError(f"{where}: prompt_text must be the non-empty transcript of the reference clip")

    # -- construction -------------------------------------------------------------------------------
    @classmethod
    def from_audio(
        cls,
        tokenizer_or_tts: Any,
        audio: str | os.PathLike | np.ndarray,
        transcript: str | None = None,
        *,
        sample_rate: int | None = None,
        name: str | None = None,
    ) -> Voice:
        """Tokenize a reference clip once.

        Args:
            tokenizer_or_tts: a :class:`~sparktts.codec.BiCodecTokenizer` or a :class:`~sparktts.SparkTTS`.
            audio: a file path or a float array (then ``sample_rate`` is required).
            transcript: the clip's transcript. With it, the clip's semantic tokens are kept too (this needs
                the wav2vec2 pass); without it only the speaker branch runs (fast).
            sample_rate: rate of an array ``audio``.
            name: a label for the voice (default: the file's stem).

        Raises:
            AudioError: missing, unreadable, silent or too short audio.
            PromptError: an empty transcript.
        """
        tok = getattr(tokenizer_or_tts, "audio_tokenizer", tokenizer_or_tts)
        if transcript is not None and (not isinstance(transcript, str) or not transcript.strip()):
            raise PromptError(f"transcript is empty ({transcript!r}); pass the words spoken in the clip, or None")
        wav = tok.load(audio, sample_rate)  # raises AudioError with the path and the fix
        source: dict[str, Any] = {
            "type": "audio",
            "path": str(audio) if isinstance(audio, (str, os.PathLike)) else None,
            "duration_s": round(len(wav) / tok.sample_rate, 3),
            # Identifies the exact prepared samples, so a voice can be matched to its clip later.
            "sha256": hashlib.sha256(np.ascontiguousarray(wav).tobytes()).hexdigest(),
        }
        if transcript is None:
            import torch

            ref = torch.from_numpy(tok.get_ref_clip(wav)).float().unsqueeze(0).to(tok.device)
            global_ids = tok.model.encode_global(ref)[0].cpu().numpy()
            semantic = None
        else:
            tokens = tok.encode_prepared([wav])
            global_ids = tokens.global_ids[0].cpu().numpy()
            semantic = tokens.semantic_ids[0].cpu().numpy()
        if name is None and source["path"]:
            name = Path(source["path"]).stem
        return cls(global_ids, semantic, transcript, name, _base_metadata(source))

    # -- files ----------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The JSON object written by :meth:`save`."""
        return {
            "format_version": VOICE_FORMAT_VERSION,
            "name": self.name,
            "global_ids": self.global_ids.tolist(),
            "prompt_semantic_ids": None if self.prompt_semantic_ids is None else self.prompt_semantic_ids.tolist(),
            "prompt_text": self.prompt_text,
            "metadata": self.metadata,
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the voice as JSON (parent folders are created; atomic: never a half-written file). Returns the path.

        Raises:
            PromptError: metadata that JSON cannot hold (non-string keys, objects, nesting too deep).
        """
        path = Path(path)
        try:
            text = json.dumps(self.to_dict(), ensure_ascii=False, indent=1) + "\n"
        except (TypeError, ValueError, RecursionError) as exc:
            raise PromptError(f"voice {self.name!r}: cannot be written as JSON ({exc}); keep metadata to plain "
                              "strings, numbers, lists and objects") from None
        with atomic_write(path, "w") as fh:
            fh.write(text)
        return path

    @classmethod
    def from_dict(cls, data: Any, where: str = "voice") -> Voice:
        """Build from a :meth:`to_dict` object. Raises PromptError for another format version or bad fields."""
        if not isinstance(data, dict):
            raise PromptError(f"{where}: expected a JSON object, got {type(data).__name__}")
        version = data.get("format_version")
        if version != VOICE_FORMAT_VERSION:
            raise PromptError(
                f"{where}: voice format_version {version!r} is not supported; this sparktts reads version "
                f"{VOICE_FORMAT_VERSION}. Upgrade sparktts, or re-create the voice with Voice.from_audio."
            )
        unknown = set(data) - {"format_version", "name", "global_ids", "prompt_semantic_ids", "prompt_text", "metadata"}
        if unknown:
            raise PromptError(f"{where}: unknown keys {sorted(unknown)} in a version-1 voice file")
        if "global_ids" not in data:
            raise PromptError(f"{where}: missing 'global_ids'")
        metadata = data.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise PromptError(f"{where}: 'metadata' must be an object")
        name = data.get("name")
        if name is not None and not isinstance(name, str):
            raise PromptError(f"{where}: 'name' must be a string or null")
        try:
            return cls(data["global_ids"], data.get("prompt_semantic_ids"), data.get("prompt_text"), name, metadata)
        except PromptError as exc:
            raise PromptError(f"{where}: {exc}") from None

    @classmethod
    def load(cls, path: str | os.PathLike) -> Voice:
        """Read a voice JSON file written by :meth:`save`.

        Raises:
            PromptError: missing file, invalid JSON, unknown ``format_version`` or invalid fields.
        """
        path = Path(path)
        if not path.is_file():
            raise PromptError(f"{path}: voice file not found; create one with Voice.from_audio(...).save(path)")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise PromptError(f"{path}: not a voice JSON file ({exc})") from exc
        except RecursionError:
            # A voice file is a flat object; thousands of nested brackets are damage or an attack.
            raise PromptError(f"{path}: not a voice JSON file (nested too deeply to parse); a voice file is one "
                              "flat object written by Voice.save") from None
        except OSError as exc:
            raise PromptError(f"{path}: cannot read the voice file ({exc})") from exc
        return cls.from_dict(data, where=str(path))

    # -- misc -----------------------------------------------------------------------------------------
    @property
    def has_prompt(self) -> bool:
        """True when the voice carries a reference transcript + semantic tokens to continue."""
        return self.prompt_semantic_ids is not None

    def without_prompt(self) -> Voice:
        """The same speaker tokens without the reference transcript / semantic tokens."""
        return Voice(self.global_ids.copy(), None, None, self.name, dict(self.metadata))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Voice):
            return NotImplemented
        same_prompt = (self.prompt_semantic_ids is None and other.prompt_semantic_ids is None) or (
            self.prompt_semantic_ids is not None
            and other.prompt_semantic_ids is not None
            and np.array_equal(self.prompt_semantic_ids, other.prompt_semantic_ids)
        )
        return (
            np.array_equal(self.global_ids, other.global_ids)
            and same_prompt
            and self.prompt_text == other.prompt_text
            and self.name == other.name
            and self.metadata == other.metadata
        )

    def __repr__(self) -> str:
        src = self.metadata.get("source", {}).get("type", "?")
        prompt = f", prompt {len(self.prompt_semantic_ids)} tokens" if self.prompt_semantic_ids is not None else ""
        return f"Voice(name={self.name!r}, {len(self.global_ids)} global tokens, source={src}{prompt})"


def _base_metadata(source: dict[str, Any]) -> dict[str, Any]:
    from sparktts import __version__

    return {"source": source, "created_at": _now(), "sparktts_version": __version__}
