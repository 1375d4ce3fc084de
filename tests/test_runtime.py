"""The allocator setting is applied once on Linux glibc and can be switched off."""

from __future__ import annotations

import subprocess
import sys

import pytest


def run(code: str, **env: str) -> str:
    import os

    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, **env}).stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt is Linux-only")
def test_tune_allocator_on_and_off():
    code = "from sparktts.runtime import tune_allocator; print(tune_allocator(), tune_allocator())"
    assert run(code) == "True True"
    assert run(code, SPARKTTS_NO_MALLOC_TUNING="1") == "False False"
