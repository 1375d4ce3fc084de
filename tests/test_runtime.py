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


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt is Linux-only")
def test_release_memory_returns_freed_blocks_to_the_os():
    """With the tuning, a freed 400 MB block stays resident (for reuse) until release_memory()."""
    code = """
import torch
from sparktts.runtime import release_memory, tune_allocator
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 1e6
assert tune_allocator()
before = rss()
x = torch.ones(100_000_000)
del x
kept = rss() - before
release_memory()
print(round(kept), round(rss() - before))
"""
    kept, after = map(int, run(code).split())
    assert kept > 300 and after < 100, (kept, after)
