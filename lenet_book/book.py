"""The book as a repository: its chapter and solutions lists and the commit a record was made from.

Tools (``tools/``), tests and the GPU check read the chapters from here, so that _toc.yml is
parsed in one place. All three need a checkout of the repository: an installed copy of
``lenet_book`` (as on Colab) has neither _toc.yml nor git history.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def chapters() -> list[Path]:
    """The chapter notebooks, ``notebooks/NN_topic.ipynb``, in the order _toc.yml lists them."""
    toc = ROOT / "_toc.yml"
    if not toc.is_file():
        raise FileNotFoundError(f"No table of contents at {toc}: the chapter list needs a checkout "
                                "of the book's repository, not an installed copy of lenet_book.")
    return [ROOT / f"{stem}.ipynb"
            for stem in re.findall(r"file:\s*(notebooks/\d\d_\S+)", toc.read_text())]


def solutions() -> list[Path]:
    """The solutions notebooks, ``notebooks/solutions/NN_topic.ipynb`` (one per chapter, with the
    chapter's file name), in the order _toc.yml lists them."""
    toc = ROOT / "_toc.yml"
    if not toc.is_file():
        raise FileNotFoundError(f"No table of contents at {toc}: the solutions list needs a "
                                "checkout of the book's repository, not an installed copy of "
                                "lenet_book.")
    return [ROOT / f"{stem}.ipynb"
            for stem in re.findall(r"file:\s*(notebooks/solutions/\S+)", toc.read_text())]


def commit() -> str:
    """The checkout's commit, ``git describe --always --dirty`` (e.g. ``e4edd28-dirty``).

    Where there is no git repository (a copy of the working tree on a GPU machine) it is
    ``$BOOK_COMMIT`` if set, else ``"unknown"``.
    """
    try:
        described = subprocess.run(
            ["git", "-c", "safe.directory=*", "describe", "--always", "--dirty"],
            cwd=ROOT, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        described = None
    if described is not None and described.returncode == 0 and described.stdout.strip():
        return described.stdout.strip()
    return os.environ.get("BOOK_COMMIT", "unknown")
