"""Test lists: Seed-TTS-eval ``meta.lst`` files and our JSONL lists, read into :class:`EvalItem`.

Seed-TTS-eval line (``|``-separated, no header)::

    utt|prompt_text|prompt_wav|infer_text[|gt_wav]

``prompt_wav`` and ``gt_wav`` are relative to the list's folder; the reference text is ``infer_text``.

JSONL (one object per line; ``#`` lines and blank lines ignored)::

    {"utt": "en_001", "text": "Hello there.", "prompt_wav": "wavs/p.wav", "prompt_text": "...",
     "lang": "en", "gt_wav": null, "gender": "female", "pitch": "high", "speed": "moderate"}

Only ``utt`` (or ``id``) and ``text`` are required; relative paths are relative to the list's folder;
unknown keys are kept in :attr:`EvalItem.extra`. ``audio`` (the recording of ``text`` in a training
manifest, see :mod:`sparktts.data.manifest`) is read as ``gt_wav`` when there is no ``gt_wav``, so a
held-out manifest is an evaluation list as it stands (``python -m sparktts.eval roundtrip`` uses it).

An utterance id becomes a file name (``<wav_dir>/<utt>.wav``), so it must be a plain name: no ``/`` or
``\\``, not ``.`` or ``..``, no NUL or other control characters, at most 200 bytes (:func:`check_utt_id`).
Lists come from other people; an id like ``../../x`` must never make a run write or read outside its
folders.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from sparktts.fileio import atomic_write

from .errors import EvalError
from .normalize import check_language

MAX_UTT_BYTES = 200  # file systems allow 255 bytes per name; leave room for ".wav" and temporary names

_KNOWN_KEYS = ("utt", "id", "text", "prompt_wav", "prompt_text", "gt_wav", "audio", "lang", "gender", "pitch",
               "speed")


@dataclass(frozen=True)
class EvalItem:
    """One utterance to synthesise and/or score.

    Attributes
    ----------
    utt : str
        Utterance id; the generated audio is ``<wav_dir>/<utt>.wav``.
    text : str
        Target text (the WER reference).
    prompt_wav : Path, optional
        Absolute path of the voice prompt (SIM is computed against it).
    prompt_text : str, optional
        Transcript of the prompt.
    gt_wav : Path, optional
        Ground-truth recording of ``text``, when the list has one.
    lang : {"en", "zh"}, optional
        Language; when absent the runner uses its ``lang`` or guesses from the text.
    gender, pitch, speed : str, optional
        Requested attributes for voice-creation (control) lists.
    extra : dict
        Other JSONL keys, kept as they are.
    """

    utt: str
    text: str
    prompt_wav: Path | None = None
    prompt_text: str | None = None
    gt_wav: Path | None = None
    lang: str | None = None
    gender: str | None = None
    pitch: str | None = None
    speed: str | None = None
    extra: dict = field(default_factory=dict)


def utt_id_problem(utt: object) -> str | None:
    """Why ``utt`` cannot be a file name (see the module docstring), or None when it can."""
    if not isinstance(utt, str) or not utt:
        return "it is empty or not a string"
    if "/" in utt or "\\" in utt:
        return "it contains a path separator ('/' or '\\'), so it would name a file in another folder"
    if utt in (".", ".."):
        return "'.' and '..' name folders, not files"
    if any(ord(c) < 32 or ord(c) == 127 for c in utt):
        return "it contains a NUL or another control character"
    if len(utt.encode("utf-8", "surrogatepass")) > MAX_UTT_BYTES:
        return f"it is longer than {MAX_UTT_BYTES} bytes, too long for a file name"
    return None


def check_utt_id(utt: object, where: str = "item") -> str:
    """Return ``utt`` if it can be used as the file name ``<utt>.wav``; else raise :class:`EvalError`."""
    problem = utt_id_problem(utt)
    if problem is not None:
        raise EvalError(
            f"{where}: utterance id {utt!r} cannot be used as a file name: {problem}. Ids become <utt>.wav inside "
            f"the output / --wavs folder, so they must be plain names (no '/', '\\', '..', control characters; "
            f"at most {MAX_UTT_BYTES} bytes). Rename the id in the list."
        )
    return utt  # type: ignore[return-value]


def _resolve(base: Path, value: str | None) -> Path | None:
    if value is None or str(value).strip() == "":
        return None
    path = Path(os.path.expanduser(str(value).strip()))
    # normpath folds "a/../b" (lexically, symlinks untouched) so equal paths compare equal.
    return Path(os.path.normpath(path if path.is_absolute() else base / path))


def _check_unique(items: list[EvalItem], source: Path) -> list[EvalItem]:
    seen: set[str] = set()
    for item in items:
        if item.utt in seen:
            raise EvalError(f"{source}: utterance id {item.utt!r} occurs more than once; ids must be unique.")
        seen.add(item.utt)
    return items


def read_seedtts_list(path: str | os.PathLike, lang: str | None = None) -> list[EvalItem]:
    """Read a Seed-TTS-eval list (``utt|prompt_text|prompt_wav|infer_text[|gt_wav]``).

    Parameters
    ----------
    path : path
        The ``meta.lst`` / ``hardcase.lst`` file.
    lang : {"en", "zh"}, optional
        Language to store in every item.

    Raises
    ------
    EvalError
        Missing file, a line with fewer than 4 or more than 5 fields, an empty id or text, a duplicate id.
    """
    path = Path(path)
    if not path.is_file():
        raise EvalError(f"test list {path} not found.")
    if lang is not None:
        check_language(lang)
    base = path.parent
    items = []
    with open(path, encoding="utf-8") as fh:
        for lineno, raw in enumerate(fh, 1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                continue
            parts = line.split("|")
            if len(parts) not in (4, 5):
                raise EvalError(
                    f"{path}:{lineno}: expected 4 or 5 '|'-separated fields "
                    f"(utt|prompt_text|prompt_wav|infer_text[|gt_wav]), found {len(parts)}: {line[:80]!r}"
                )
            utt, prompt_text, prompt_wav, text = (p.strip() for p in parts[:4])
            if not utt or not text:
                raise EvalError(f"{path}:{lineno}: empty utterance id or target text.")
            check_utt_id(utt, f"{path}:{lineno}")
            items.append(
                EvalItem(
                    utt=utt,
                    text=text,
                    prompt_wav=_resolve(base, prompt_wav),
                    prompt_text=prompt_text or None,
                    gt_wav=_resolve(base, parts[4]) if len(parts) == 5 else None,
                    lang=lang,
                )
            )
    return _check_unique(items, path)


def read_jsonl_list(path: str | os.PathLike) -> list[EvalItem]:
    """Read a JSONL list (see the module docstring for the keys).

    Raises
    ------
    EvalError
        Missing file, invalid JSON, missing ``utt``/``text``, unknown language, duplicate id.
    """
    path = Path(path)
    if not path.is_file():
        raise EvalError(f"test list {path} not found.")
    base = path.parent
    items = []
    with open(path, encoding="utf-8") as fh:
        for lineno, raw in enumerate(fh, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise EvalError(f"{path}:{lineno}: invalid JSON ({exc.msg}).") from exc
            except RecursionError:
                raise EvalError(f"{path}:{lineno}: invalid JSON (nested too deeply).") from None
            if not isinstance(obj, dict):
                raise EvalError(f"{path}:{lineno}: expected a JSON object, found {type(obj).__name__}.")
            utt = obj.get("utt", obj.get("id"))
            text = obj.get("text")
            if not utt or not text:
                raise EvalError(f"{path}:{lineno}: every line needs 'utt' (or 'id') and 'text'.")
            if not isinstance(utt, (str, int)) or isinstance(utt, bool):
                raise EvalError(f"{path}:{lineno}: 'utt' must be a string, got {type(utt).__name__}.")
            check_utt_id(str(utt), f"{path}:{lineno}")
            lang = obj.get("lang")
            if lang is not None:
                check_language(lang)
            items.append(
                EvalItem(
                    utt=str(utt),
                    text=str(text),
                    prompt_wav=_resolve(base, obj.get("prompt_wav")),
                    prompt_text=obj.get("prompt_text"),
                    gt_wav=_resolve(base, obj.get("gt_wav") or obj.get("audio")),
                    lang=lang,
                    gender=obj.get("gender"),
                    pitch=obj.get("pitch"),
                    speed=obj.get("speed"),
                    extra={k: v for k, v in obj.items() if k not in _KNOWN_KEYS},
                )
            )
    return _check_unique(items, path)


def read_list(path: str | os.PathLike, lang: str | None = None) -> list[EvalItem]:
    """Read a list by extension: ``.jsonl``/``.json`` as JSONL, anything else as a Seed-TTS-eval list.

    ``lang`` fills in items that do not name their language.
    """
    path = Path(path)
    if path.suffix.lower() in (".jsonl", ".json"):
        items = read_jsonl_list(path)
        if lang is not None:
            check_language(lang)
            items = [it if it.lang else _with_lang(it, lang) for it in items]
        return items
    return read_seedtts_list(path, lang=lang)


def _with_lang(item: EvalItem, lang: str) -> EvalItem:
    from dataclasses import replace

    return replace(item, lang=lang)


def write_jsonl_list(items: list[EvalItem], path: str | os.PathLike) -> Path:
    """Write items as a JSONL list; paths are written relative to the list's folder when possible."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    base = path.parent.resolve()

    def rel(p: Path | None) -> str | None:
        if p is None:
            return None
        try:
            return os.path.relpath(Path(p).resolve(), base)
        except ValueError:  # another drive on Windows
            return str(p)

    with atomic_write(path, "w") as fh:
        for it in items:
            obj = {
                "utt": it.utt,
                "text": it.text,
                "prompt_wav": rel(it.prompt_wav),
                "prompt_text": it.prompt_text,
                "gt_wav": rel(it.gt_wav),
                "lang": it.lang,
                "gender": it.gender,
                "pitch": it.pitch,
                "speed": it.speed,
                **it.extra,
            }
            fh.write(json.dumps({k: v for k, v in obj.items() if v is not None}, ensure_ascii=False) + "\n")
    return path


__all__ = ["EvalItem", "check_utt_id", "read_jsonl_list", "read_list", "read_seedtts_list", "utt_id_problem",
           "write_jsonl_list"]
