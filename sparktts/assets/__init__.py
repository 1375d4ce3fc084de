"""Data files the package ships: prompt clips and small test lists, read through :mod:`importlib.resources`.

They are package data, so a wheel install has them too (the repository's ``data/prompts`` and
``data/testlists`` are links to these folders, for the paths the notebooks and docs use). The scripts
that make them (``data/make_prompts.sh``) write here.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def asset_dir(name: str) -> Path:
    """The folder ``sparktts/assets/<name>`` (``"prompts"``, ``"testlists"``) as a filesystem path.

    The package is installed as files (setuptools wheel or editable), so the resource is a real folder;
    a zipped install would need :func:`importlib.resources.as_file` and is not supported.
    """
    return Path(str(resources.files(__name__) / name))


def prompts_dir() -> Path:
    """Shipped prompt clips (``demo_en.wav``: an espeak-ng English prompt, 16 kHz mono)."""
    return asset_dir("prompts")


def testlists_dir() -> Path:
    """Shipped test lists (``espeak_en.lst`` / ``.jsonl``) with their prompt wavs in ``wavs/``."""
    return asset_dir("testlists")


def demo_prompt() -> Path:
    """The demo's prompt clip, ``prompts/demo_en.wav``."""
    return prompts_dir() / "demo_en.wav"


__all__ = ["asset_dir", "demo_prompt", "prompts_dir", "testlists_dir"]
