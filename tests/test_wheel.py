"""The built wheel works on its own: package data through importlib.resources, no repository ``data/``.

The wheel is built from a copy of the sources (so the build leaves nothing in the checkout), installed
with ``--no-deps --target`` (torch etc. come from this environment) and run from a folder outside the
repository, so ``Path(__file__).parents[...]/data`` could not be found by accident.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Run in the installed copy: a tiny random release, a clone from a packaged prompt clip, the packaged
# test list and the panels' clip list, each checked to come from the install folder.
SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path

    import sparktts
    from sparktts import SparkTTS
    from sparktts.assets import demo_prompt, testlists_dir
    from sparktts.eval.lists import read_list
    from sparktts.testing import make_random_release
    from sparktts.widgets.base import prompt_choices

    release = make_random_release(Path(sys.argv[1]), "tiny")
    tts = SparkTTS.from_pretrained(release, device="cpu")
    out = tts.clone("Hello there.", prompt_audio=str(demo_prompt()), seed=0, max_new_tokens=20, progress=False)
    out.save("hello.wav")
    items = read_list(testlists_dir() / "espeak_en.jsonl")
    print(json.dumps({
        "package": sparktts.__file__,
        "prompt": str(demo_prompt()),
        "samples": int(out.audio.shape[0]),
        "items": len(items),
        "prompts_exist": all(it.prompt_wav.is_file() for it in items if it.prompt_wav is not None),
        "clips": sorted(prompt_choices()),
    }))
    """
)


@pytest.mark.slow
def test_wheel_install_clones_with_packaged_prompt(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(REPO / "sparktts", src / "sparktts", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    dist = tmp_path / "dist"
    # Offline: no build isolation, the environment's own setuptools builds the wheel.
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(dist)], check=True, cwd=tmp_path, timeout=300)
    (wheel,) = dist.glob("sparktts_lab-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "sparktts/assets/prompts/demo_en.wav" in names
    assert "sparktts/assets/testlists/espeak_en.jsonl" in names
    assert "sparktts/assets/testlists/wavs/espeak_m1.wav" in names

    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(site),
                    str(wheel)], check=True, cwd=tmp_path, timeout=300)
    work = tmp_path / "work"  # outside the repository: no data/ next to it
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "release")], cwd=work, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(info["package"]).is_relative_to(site)  # the installed copy, not the checkout
    assert Path(info["prompt"]).is_relative_to(site) and Path(info["prompt"]).is_file()
    assert info["samples"] > 0 and (work / "hello.wav").stat().st_size > 44
    assert info["items"] >= 4 and info["prompts_exist"]
    assert {"demo_en", "espeak_m1", "arctic_a0007"} <= set(info["clips"])
