"""Execute chapters in place, top to bottom in a fresh kernel, and store them clean.

    python -m tools.execute_notebooks                       # every chapter and solutions notebook in _toc.yml
    python -m tools.execute_notebooks notebooks/03_*.ipynb  # some of them (make execute NB=...)

Each notebook runs with its own folder (``notebooks/`` or ``notebooks/solutions/``) as its working
folder (as nbval and Jupyter run it), then its metadata is reduced to the kernel and language,
cell metadata to tags, figure and table captions, and its outputs are scanned for machine paths,
which must not reach the published book.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import platform
import re
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from lenet_book.book import chapters, solutions
from lenet_book.device import device_name

MACHINE_PATH = re.compile(r"(site-packages/|/lib/python3\.\d+/|/home/[\w.-]+/|/root/|/tmp/[\w.-]+|/work/)")
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def execution_record(seconds: float) -> dict:
    """What the execution report (book/execution_report.md) shows for a chapter."""
    versions = {name: importlib.metadata.version(name) for name in ("torch", "torchvision", "d2l", "numpy")}
    return {"date": datetime.date.today().isoformat(), "seconds": round(seconds),
            "device": device_name(), "python": platform.python_version(), "versions": versions}


def clean(nb: nbformat.NotebookNode, record: dict | None = None) -> None:
    record = record or nb.metadata.get("execution")
    nb.metadata = nbformat.from_dict({
        "kernelspec": KERNELSPEC,
        "language_info": {"name": "python", "pygments_lexer": "ipython3"},
        **({"execution": record} if record else {}),
    })
    for cell in nb.cells:  # keep the tags, MyST-NB's figure caption and alt text, the tables' captions
        kept = {key: cell.metadata[key] for key in ("tags", "mystnb", "table") if cell.metadata.get(key)}
        cell.metadata = nbformat.from_dict(kept)


def machine_paths(nb: nbformat.NotebookNode) -> list[str]:
    found = []
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            match = MACHINE_PATH.search(str(output))
            if match:
                found.append(f"cell {index}: {match.group(0)}")
    return found


def execute(path: Path, timeout: int) -> float:
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    seconds = time.perf_counter() - start
    clean(nb, execution_record(seconds))
    problems = machine_paths(nb)
    if problems:
        raise SystemExit(f"{path}: outputs hold machine paths: {problems}")
    nbformat.validate(nb)
    nbformat.write(nb, path)
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    args = parser.parse_args()
    for path in args.notebooks or chapters() + solutions():
        print(f"{path}: running ...", flush=True)
        print(f"{path}: done in {execute(path.resolve(), args.timeout):.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
