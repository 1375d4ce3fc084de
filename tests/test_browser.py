"""A real browser: JupyterLab on localhost, a notebook run in headless Chromium, a panel button clicked.

Needs Debian's chromium (/usr/bin/chromium) and the Python playwright package; the browser build that
`playwright install` would download is never used. The screenshot is kept in outputs/test-artifacts/.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "outputs" / "test-artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]

# The kernel indicator of the notebook on screen (hidden tabs have their own).
IDLE = ".jp-Notebook-ExecutionIndicator[data-status='idle'] >> visible=true"

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def jupyter_lab(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian chromium is required for the browser test: apt-get install chromium")
    port, token = free_port(), "sparktts-test"
    workdir = tmp_path_factory.mktemp("lab")
    shutil.copytree(ROOT / "notebooks", workdir / "notebooks")
    shutil.copytree(ROOT / "data", workdir / "data")
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(workdir / ".jupyter"), JUPYTER_RUNTIME_DIR=str(workdir / "rt"))
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--port={port}",
           "--ip=127.0.0.1", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={workdir}",
           "--ServerApp.open_browser=False", "--LabApp.news_url=", "--LabServerApp.announcements_url="]
    log = open(workdir / "lab.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"jupyter lab exited: {(workdir / 'lab.log').read_text()[-2000:]}")
                time.sleep(1)
        else:
            pytest.fail("jupyter lab did not start within 120 s")
        yield url, token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def run_notebook_and_click(url: str, token: str, notebook: str, button: str, done: str, shot: str,
                           prepare: Callable[[Any], None] | None = None, wait_text: str | None = None,
                           top: str | None = None) -> None:
    """Open ``notebook``, run all cells, click ``button``, wait for the panel status ``done`` and an audio.

    ``prepare(page)`` runs before the click (e.g. to type in a field); ``wait_text`` is text that only the
    click's result can show (a status already shown by the notebook's own run proves nothing); ``top`` is
    a selector scrolled to the top of the screenshot (default: the button).
    """
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            # A workspace per notebook: JupyterLab would otherwise reopen the tabs of the previous test, and
            # their (hidden) toolbars and buttons would match the selectors below too.
            workspace = Path(notebook).stem
            page.goto(f"{url}/lab/workspaces/{workspace}/tree/notebooks/{notebook}?token={token}", timeout=120_000)
            page.wait_for_selector(".jp-Notebook", timeout=120_000)
            select = page.locator(".jp-Dialog button:has-text('Select')")
            try:  # JupyterLab may ask which kernel to start
                select.wait_for(timeout=15_000)
                select.click()
            except Exception:
                pass
            page.wait_for_selector(IDLE, timeout=120_000)
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_text("Run All Cells", exact=True).click()
            target = page.locator(f"button.jupyter-button:has-text('{button}')").first
            target.wait_for(timeout=300_000)
            page.wait_for_selector(IDLE, timeout=300_000)
            no_news = page.locator("button:has-text('No')").last
            if no_news.is_visible():
                no_news.click()
            if prepare is not None:
                prepare(page)
            target.click()
            if wait_text is not None:
                page.get_by_text(wait_text).first.wait_for(timeout=300_000)
            page.get_by_text(done, exact=True).first.wait_for(timeout=300_000)
            page.wait_for_selector("audio", state="attached", timeout=300_000)
            if top is None:
                target.scroll_into_view_if_needed()
            else:
                page.locator(top).first.evaluate("e => e.scrollIntoView({block: 'start'})")
                page.wait_for_timeout(500)  # let the notebook re-render after the scroll
            page.screenshot(path=str(ARTIFACTS / shot), full_page=False)
            assert page.locator("audio").count() >= 1
        except Exception:
            page.screenshot(path=str(ARTIFACTS / f"failed-{shot}"), full_page=True)
            raise
        finally:
            browser.close()


def test_token_explorer_in_jupyterlab(jupyter_lab):
    url, token = jupyter_lab
    run_notebook_and_click(url, token, "04_token_explorer.ipynb", "Analyze", "Analyzing: done",
                           "token_explorer.png")
    assert (ARTIFACTS / "token_explorer.png").stat().st_size > 20_000


def test_clone_panel_in_jupyterlab(jupyter_lab):
    """Run the cloning notebook, type a new seed in the panel, press Generate, and get that seed's audio."""
    url, token = jupyter_lab
    seed = "6"  # the notebook's own run uses seed 4: only the click can show seed 6

    def type_seed(page) -> None:
        field = page.locator(".widget-inline-hbox:has(label:text-is('seed (-1 = random)')) input").first
        field.fill(seed)
        field.press("Enter")  # IntText sends its value on Enter

    run_notebook_and_click(url, token, "02_voice_cloning.ipynb", "Generate", "Generating: done", "clone_panel.png",
                           prepare=type_seed, wait_text=f"{seed} (type it in the seed box to reproduce this result)",
                           top="h3:text-is('Voice cloning')")
    assert (ARTIFACTS / "clone_panel.png").stat().st_size > 20_000
