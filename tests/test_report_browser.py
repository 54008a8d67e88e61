"""The leaderboard page in headless Chromium: it renders, its own script runs, an injected one does not."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from ganbench.report import write_report
from test_report import EVIL, results

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars"]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("Chromium is not installed and could not be installed here (.ci/run runs `apt-get install -y "
                "chromium` when apt-get is available); the HTML itself is still checked in test_report.py")


def run_browser(args: list[str], profile) -> subprocess.CompletedProcess:
    cmd = [chromium(), *FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, timeout=120, text=True)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    run_dir = tmp / "b"
    run_dir.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(run_dir / "fakes000030.png")
    files = write_report(results(runs=(EVIL, "b")), tmp / "out", run_dirs={"b": run_dir})
    return files.html, tmp


def test_screenshot_is_not_blank(page):
    html, tmp = page
    shot = tmp / "shot.png"
    proc = run_browser([f"--screenshot={shot}", "--window-size=1200,1600", html.as_uri()], tmp / "profile1")
    assert shot.is_file() and shot.stat().st_size > 0, proc.stderr[-2000:]
    with Image.open(shot) as img:
        pixels = np.asarray(img.convert("L"), dtype=np.float32)
    assert pixels.shape[0] >= 1000 and pixels.std() > 5.0   # text, table borders, plots: far from uniform


def test_own_script_runs_and_injected_script_does_not(page):
    html, tmp = page
    proc = run_browser(["--dump-dom", "--virtual-time-budget=3000", html.as_uri()], tmp / "profile2")
    dom = proc.stdout
    assert "<table" in dom, proc.stderr[-2000:]
    assert 'data-sortable="ready"' in dom          # scripts do run in this browser...
    assert "<title>ganbench leaderboard</title>" in dom and "pwned</title>" not in dom   # ...but not the run name
    assert "&lt;script&gt;document.title='pwned'&lt;/script&gt;" in dom                # shown as text instead


def test_sorting_script_orders_rows(page):
    html, tmp = page
    order = {}
    for suffix in ("#sort=1", "#sort=1-desc", "#sort=2-desc"):   # column 1 = fid (lower better), 2 = is_mean
        proc = run_browser(["--dump-dom", "--virtual-time-budget=3000", html.as_uri() + suffix], tmp / "profile3")
        body = proc.stdout.split("<tbody>")[1].split("</tbody>")[0]
        order[suffix] = ["b" if '<td data-sort="b">' in row else "evil" for row in body.split("<tr>")[1:]]
    # run EVIL's best FID is 10 and IS 2.5; run b's are 15 and 3.0
    assert order["#sort=1"] == ["evil", "b"]
    assert order["#sort=1-desc"] == ["b", "evil"]
    assert order["#sort=2-desc"] == ["b", "evil"]
