"""Specification of where the test suite may run: from any checkout, as root or not.

Root's permission checks (marked ``other_user``) run as the user nobody, who may be unable to
read the checkout or its Python environment: a clone inside /root, or any folder of mode 700.
They must pass there too, never fail or skip for a reason that is not the behaviour they check.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def test_permission_checks_pass_from_a_checkout_closed_to_other_users(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("only root's permission checks change user; this user runs them directly")
    # The checkout and the installed packages, reachable only through a folder of mode 700:
    # Python imports torch through it, as from a clone (with its .venv) inside /root.
    closed = tmp_path / "closed"
    closed.mkdir()
    closed.chmod(0o700)
    (closed / "checkout").symlink_to(REPO)
    (closed / "site-packages").symlink_to(Path(torch.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": f"{closed / 'checkout'}{os.pathsep}{closed / 'site-packages'}"}

    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
         "-m", "other_user", "tests/test_data.py", "tests/test_checkpoint.py"],
        cwd=closed / "checkout", env=env, capture_output=True, text=True, timeout=600)

    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert re.match(r"\d+ passed, \d+ deselected in ", summary), summary  # none skipped or failed
