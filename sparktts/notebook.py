"""Helpers for the notebooks' first cells, so that each notebook stays a few lines long."""

from __future__ import annotations

import os
from pathlib import Path

from .demo import BUILTIN_LABEL, RANDOM_LABEL, find_release, is_builtin


def open_release(model_dir: str | os.PathLike, download: bool = False) -> tuple[Path, bool]:
    """The release to use and whether it is a random stand-in, with a visible notice when it is.

    ``model_dir`` when it is a release directory (downloaded into it first with ``download`` when
    online); otherwise the built-in model, with a plain note naming it; otherwise a tiny random release,
    announced in red because its audio is noise.
    """
    from IPython.display import HTML, display

    release, is_random = find_release(model_dir, download=download)
    if is_random:
        display(HTML("<b style='color:#b42318'>No model at model_dir: running on a tiny random release "
                     f"({RANDOM_LABEL}). The audio is noise.</b>"))
    elif is_builtin(release) and Path(model_dir).expanduser().resolve() != release.resolve():
        display(HTML(f"<p>No model at model_dir: using the built-in model ({BUILTIN_LABEL}).</p>"))
    return release, is_random
