"""Fixtures shared by the test modules."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest


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
