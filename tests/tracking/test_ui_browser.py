"""The MLflow UI in a real (headless) browser: ``python -m nnexp.ui`` on a store holding a sweep,
the printed URL opens the experiment's runs table with the sweep's parent, its children nested
under it, and a child's LoggedModel. The screenshot is kept on failure (tmp folder named below).

Needs Debian's ``chromium`` (``.ci/run`` installs it) and the ``playwright`` Python package
(``pip install -e ".[test]"``); skips saying which is missing.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def ui_on_a_sweep(tmp_path):
    if not os.path.exists(CHROMIUM):
        pytest.skip("chromium is not installed (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e \".[test]\")")
    run_cli("-m", "lr=0.1,0.05", "epochs=2", "progress=false", cwd=tmp_path, check=True)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "nnexp.ui", "--port", str(port)], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                              start_new_session=True)   # its own group: mlflow ui starts uvicorn
    try:
        url = None
        for line in server.stdout:
            match = re.search(r"(http://\S+/runs\?workflowType=machine_learning)", line)
            if match:
                url = match.group(1)
                break
        assert url, "nnexp.ui printed no experiment URL"
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, "the MLflow UI did not answer in 90 s"
                time.sleep(0.5)
        yield url, tmp_path
    finally:
        os.killpg(server.pid, signal.SIGTERM)   # the server's own process group, by its id
        server.wait(timeout=30)
        server.stdout.close()


def test_the_printed_url_opens_the_runs_table_with_the_sweep_nested(ui_on_a_sweep):
    from playwright.sync_api import sync_playwright

    url, folder = ui_on_a_sweep
    screenshot = folder / "ui.png"
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(folder / "chromium-profile"), executable_path=CHROMIUM, headless=True,
            args=FLAGS[1:], viewport={"width": 1600, "height": 1000})
        page = context.new_page()
        try:
            page.goto(url)
            parent = page.locator("[role=row]", has_text="sweep-lr-").first
            parent.wait_for(timeout=60_000)                  # the runs table, not a traces page
            assert page.get_by_text("3 matching runs").count() == 1
            assert page.get_by_text("adam-lr0.1-16x8").count() == 0   # children start collapsed
            parent.locator("button").first.click()           # expand the sweep
            for child in ("adam-lr0.1-16x8", "adam-lr0.05-16x8"):
                page.get_by_text(child).first.wait_for(timeout=30_000)
            # each child's LoggedModel is linked from its row (the Models column)
            page.locator("a[href*='/models/m-']").first.wait_for(timeout=30_000)
        except Exception:
            page.screenshot(path=str(screenshot), full_page=True)
            print(f"screenshot of the failing page: {screenshot}")
            raise
        finally:
            context.close()
