"""Specification of `make lab` (tools/lab.py): JupyterLab serves the chapters, as root or not.

JupyterLab refuses root unless told --allow-root, and tries to open a browser unless told
--no-browser: the command passes each only where it is needed.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from lenet_book.book import ROOT, chapters
from tools.lab import has_display, lab_command


@pytest.mark.parametrize("as_root", [True, False])
@pytest.mark.parametrize("display", [True, False])
def test_the_command_allows_root_only_for_root_and_opens_no_browser_without_a_display(
        as_root, display):
    command = lab_command("python", as_root=as_root, display=display, extra=["--port=9999"])

    assert command[:4] == ["python", "-m", "jupyterlab", f"--ServerApp.root_dir={ROOT / 'notebooks'}"]
    assert ("--allow-root" in command) == as_root
    assert ("--no-browser" in command) == (not display)
    assert command[-1] == "--port=9999"  # make lab LAB_ARGS=... reach JupyterLab last


def test_a_display_is_there_on_macos_and_windows_and_on_linux_only_with_x11_or_wayland():
    assert has_display("darwin", {}) and has_display("win32", {})
    assert not has_display("linux", {})
    assert not has_display("linux", {"DISPLAY": ""})
    assert has_display("linux", {"DISPLAY": ":0"})
    assert has_display("linux", {"WAYLAND_DISPLAY": "wayland-0"})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_make_labs_server_starts_as_this_user_and_lists_the_chapters(tmp_path):
    pytest.importorskip("jupyterlab", reason="JupyterLab is in requirements.txt: run make env")
    port, token = free_port(), "lenet-book-test"
    env = {key: value for key, value in os.environ.items()
           if key not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(HOME=str(tmp_path), JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
    server = subprocess.Popen(
        [sys.executable, "-m", "tools.lab", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        listing = None
        for _ in range(120):  # JupyterLab starts in a few seconds
            try:
                url = f"http://127.0.0.1:{port}/api/contents?token={token}"
                with urllib.request.urlopen(url, timeout=5) as response:
                    listing = json.load(response)
                break
            except OSError:
                assert server.poll() is None, server.stdout.read()
                time.sleep(0.5)
        assert listing is not None, "JupyterLab did not answer within a minute"
        served = {item["name"] for item in listing["content"] if item["type"] == "notebook"}
        assert {path.name for path in chapters()} <= served
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]

    if os.geteuid() == 0:
        assert "Running as root (as in most containers): JupyterLab gets --allow-root." in output
    assert "No display here: no browser opens" in output
    assert f"http://127.0.0.1:{port}/lab" in output  # the URL to open, from JupyterLab
    assert "Running as root is not recommended" not in output, output
