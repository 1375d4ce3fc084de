"""Helpers for the notebooks' first cells, so that each notebook stays a few lines long."""

from __future__ import annotations

import os
from pathlib import Path

from .demo import RANDOM_LABEL, find_release


def open_release(model_dir: str | os.PathLike, download: bool = False) -> tuple[Path, bool]:
    """The release to use and whether it is a random stand-in, with a visible notice when it is.

    ``model_dir`` when it is a release directory (downloaded into it first with ``download`` when
    online); otherwise a tiny random release, announced in red because its audio is noise.
    """
    release, is_random = find_release(model_dir, download=download)
    if is_random:
        from IPython.display import HTML, display

        display(HTML("<b style='color:#b42318'>No model at model_dir: running on a tiny random release "
                     f"({RANDOM_LABEL}). The audio is noise.</b>"))
    return release, is_random
