"""Where the committed measurements are, in a checkout and in an installed copy (as on Colab)."""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def results_folder() -> Path:
    """benchmarks/results/ of the repository.

    In a checkout (and with ``pip install -e .``) that is the folder itself. ``pip install``
    from the repository, as a chapter's Colab set-up cell does, packages a copy of it as
    ``lenet_book/benchmark_results`` (see pyproject.toml), because there is no checkout there.
    """
    packaged = PACKAGE / "benchmark_results"
    folder = packaged if packaged.is_dir() else PACKAGE.parent / "benchmarks" / "results"
    if not folder.is_dir():
        raise FileNotFoundError(
            f"No benchmark results at {folder}. Install lenet_book from the book's repository "
            "(pip install 'lenet-book @ git+<repository URL>') or run from a checkout of it.")
    return folder
