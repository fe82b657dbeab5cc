"""Fixtures shared by the test modules: one build of the book, its server and one headless
Chromium for every module that opens the site (tests/test_site.py, test_browser_*.py)."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
TRAIN_SUBSET = REPO / "book" / "browser" / "train_data.min.js"  # tools/export_training_subset.py


@pytest.fixture
def open_folder():
    """A folder that every user may enter (pytest's tmp_path is for its owner only): the
    permission tests of tests/test_data.py and tests/test_checkpoint.py run a child as nobody."""
    folder = Path(tempfile.mkdtemp(prefix="lenet-book-test-"))
    folder.chmod(0o755)
    yield folder
    folder.chmod(0o755)
    for parent, folders, files in os.walk(folder):  # top-down: unlock a folder before entering it
        for name in folders + files:
            os.chmod(os.path.join(parent, name), 0o755)
    shutil.rmtree(folder)


@pytest.fixture(scope="session")
def train_subset() -> Path:
    """The images the browser page trains on, made from data/ if they are missing (make book does
    the same; they are part of the data set, so never committed)."""
    if not TRAIN_SUBSET.is_file():
        made = subprocess.run([sys.executable, str(REPO / "tools" / "export_training_subset.py")],
                              cwd=REPO, capture_output=True, text=True)
        assert made.returncode == 0, f"{TRAIN_SUBSET.name} could not be made:\n{made.stdout}{made.stderr}"
    return TRAIN_SUBSET


@pytest.fixture(scope="session")
def site(tmp_path_factory, train_subset) -> Path:
    """Build the book once per session into a temporary folder; the repo's _build is untouched."""
    out = tmp_path_factory.mktemp("site")
    command = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(REPO),
               "--path-output", str(out), "--warningiserror", "--keep-going"]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    assert result.returncode == 0, f"the book does not build:\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}"
    html = out / "_build" / "html"
    assert (html / "index.html").is_file(), result.stdout[-3000:]
    print(f"\nbook built in {seconds:.1f} s into {html}")
    return html


@pytest.fixture(scope="session")
def server(site):
    """The built site over HTTP on 127.0.0.1 (a free port), in a thread; stopped at the end."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=10)


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """Headless Debian Chromium through its own chromedriver: Selenium Manager never runs."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: apt-get install -y chromium chromium-driver "
                    "(make site-test does it)", pytrace=False)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tmp_path_factory.mktemp("chromium-profile")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,900", "--hide-scrollbars",
                 # no network: names other than 127.0.0.1 fail at once (the MathJax CDN, fonts)
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(120)  # axe-core audits a long chapter in a few seconds
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    """Notebooks first, then the unit tests: with `make test`'s parallel processes the long
    replays start at once and the many short unit tests fill the processes' last minutes."""
    items.sort(key=lambda item: item.nodeid.startswith("tests/"))  # stable: each group keeps its order
