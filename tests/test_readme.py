"""The README's Python examples run (vector-quantize-pytorch's tests/test_readme.py idea), so the docs cannot rot.

Every fenced ``python`` block is executed, in order, in one namespace per ``##`` section, on the tiny
random release, in a temporary folder that holds the sample files the examples name. A block whose first
line is ``# readme-test: skip (why)`` is skipped; the reason is required.
"""

from __future__ import annotations

import functools
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
RELEASE_IN_README = "pretrained_models/Spark-TTS-0.5B"
SKIP = re.compile(r"^#\s*readme-test:\s*skip\s*\((?P<why>[^)]+)\)")
# The random release never stops on its own: cap generation so the examples take seconds.
MAX_NEW_TOKENS = 60  # create mode writes ~40 tokens (pitch, speed, 32 globals) before speech
LONG_TEXT = ("The first sentence of the chapter is here. A second one follows it without any hurry at all. "
             "Then a third sentence closes the short chapter, long enough to be split.")


def readme_sections() -> dict[str, list[str]]:
    """``##`` section title -> its ``python`` blocks, in README order (``###`` subsections join their section)."""
    sections: dict[str, list[str]] = {}
    title = "(top)"
    block: list[str] | None = None
    for line in README.read_text(encoding="utf-8").splitlines():
        if block is not None:
            if line.startswith("```"):
                sections.setdefault(title, []).append("\n".join(block) + "\n")
                block = None
            else:
                block.append(line)
        elif line.startswith("```python"):
            block = []
        elif line.startswith("## "):
            title = line[3:].strip()
    return sections


SECTIONS = readme_sections()


def sample_files(folder: Path) -> None:
    """The file names the README's examples use, made from the packaged prompt clip."""
    from sparktts.assets import demo_prompt

    for name in ("ref.wav", "prompt.wav", "a.wav"):
        shutil.copy(demo_prompt(), folder / name)
    audio, sr = sf.read(demo_prompt(), dtype="float32")
    sf.write(folder / "b.flac", audio[: sr], sr)  # a second, shorter clip in another format
    (folder / "chapter.txt").write_text(LONG_TEXT, encoding="utf-8")


def capped(method: Any) -> Any:
    """``method`` with a small default ``max_new_tokens`` (an explicit one or a ``sampling=`` wins)."""

    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("sampling") is None:
            kwargs.setdefault("max_new_tokens", MAX_NEW_TOKENS)
        return method(self, *args, **kwargs)

    return call


def test_readme_has_python_examples() -> None:
    assert {"The audio tokenizer (BiCodec)", "Speech generation", "Notebooks and panels"} <= set(SECTIONS)


@pytest.mark.parametrize("title", sorted(SECTIONS))
def test_readme_section_runs(title: str, tiny_release: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sparktts import SparkTTS

    for name in ("clone", "create", "stream"):
        monkeypatch.setattr(SparkTTS, name, capped(getattr(SparkTTS, name)))
    sample_files(tmp_path)
    monkeypatch.chdir(tmp_path)  # outputs (hello.wav, tokens.json, ...) land here
    array, sr = sf.read(tmp_path / "a.wav", dtype="float32")
    # Names the README leaves to the reader: "an array and its sample rate".
    namespace: dict[str, Any] = {"__name__": "readme", "array": array, "sr": sr, "np": np}
    ran = 0
    for i, code in enumerate(SECTIONS[title]):
        skip = SKIP.match(code.lstrip())
        if skip:
            continue
        code = code.replace(RELEASE_IN_README, str(tiny_release))
        exec(compile(code, f"README.md [{title}] block {i + 1}", "exec"), namespace)  # noqa: S102
        ran += 1
    assert ran or all(SKIP.match(c.lstrip()) for c in SECTIONS[title])


def test_skip_markers_say_why() -> None:
    markers = [c.lstrip().splitlines()[0] for blocks in SECTIONS.values() for c in blocks
               if c.lstrip().startswith("# readme-test")]
    assert all(SKIP.match(m) for m in markers), markers
    assert len(markers) <= 2  # keep the untested examples few
