"""Defaults the package decides once: where things are cached, and (below) the LLM and sampling defaults.

Every module that needs one of these reads it from here, so a default is changed in one place.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "SPARKTTS_CACHE"


def cache_dir() -> Path:
    """The toolkit's cache folder: ``$SPARKTTS_CACHE``, default ``~/.cache/sparktts`` (not created here).

    Holds what the package builds or assembles once: the tiny random stand-in release of the demo and
    the weights the eval back ends put together (Whisper, SpeechBrain links).
    """
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "sparktts")).expanduser()
