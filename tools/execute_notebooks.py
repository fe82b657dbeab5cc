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
import os
import platform
import re
import sys
import time
from pathlib import Path

try:  # torch (imported by lenet_book.device) cannot load in a folder that was deleted
    os.getcwd()
except FileNotFoundError:
    sys.exit("the current folder no longer exists (deleted or moved by another program): cd to "
             "an existing folder and run again")

import nbformat  # noqa: E402
from nbclient import NotebookClient  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # lenet_book from this checkout, installed or not: its own chapters
from lenet_book.book import chapters, solutions  # noqa: E402
from lenet_book.data import replaced_atomically  # noqa: E402
from lenet_book.device import device_name  # noqa: E402
from tools.tag_cells import schema_problem  # noqa: E402

MACHINE_PATH = re.compile(r"(site-packages/|/lib/python3\.\d+/|/home/[\w.-]+/|/root/|/tmp/[\w.-]+|/work/)")
UNREADABLE = ("its JSON lacks what a notebook holds, such as an 'nbformat' version or "
              "cells with a cell_type and a source")
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
    try:  # whole or not at all: a full disk or a size limit never leaves half a notebook
        with replaced_atomically(Path(os.path.realpath(path)), "w", encoding="utf-8") as f:
            nbformat.write(nb, f)
    except (OSError, ValueError) as error:
        raise SystemExit(f"cannot write {path} ({getattr(error, 'strerror', None) or error}); "
                         "it was left as it was (this run's outputs are not kept)") from None
    return seconds


def notebook_problem(path: Path) -> str | None:
    """Why ``path`` is not a notebook to run (missing, a folder, not a notebook), or None."""
    if not path.exists():
        return f"{path} does not exist"
    if not path.is_file():
        return f"{path} is a folder, not a notebook"
    try:
        nb = nbformat.read(path, as_version=4)
    except (ValueError, KeyError, nbformat.ValidationError) as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:120]
        return f"{path} is not a notebook ({first})"  # NotJSONError and UnicodeDecodeError too
    except (TypeError, AttributeError):  # JSON, but e.g. a list, or cells that are not a list
        return f"{path} is not a notebook (its JSON holds no list of cells)"
    except OSError as error:
        return f"{path} cannot be read as a notebook ({error.strerror or error})"
    except Exception:  # nbformat's converters fail otherwise too (no 'nbformat' key: UnboundLocalError)
        return f"{path} is not a notebook ({UNREADABLE})"
    problem = schema_problem(nb)
    if problem:
        return f"{path} is not a notebook ({problem})"
    target = Path(os.path.realpath(path))  # a link is written through, as a plain write does
    if not os.access(target, os.W_OK):
        return f"{path} cannot be written (it is read-only for this user)"
    if not os.access(target.parent, os.W_OK | os.X_OK):
        return (f"{path} cannot be written: no permission to write in its folder "
                f"{target.parent}, where the new notebook is written first, so that a failed "
                "write never leaves half a notebook")
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    args = parser.parse_args()
    if args.timeout < 1:  # nbclient reads 0 or less as "no limit"
        parser.error(f"--timeout must be at least 1 second per cell, got {args.timeout}; "
                     "nothing was run")
    paths = args.notebooks or chapters() + solutions()
    for path in paths:  # every notebook is read before any is run
        problem = notebook_problem(path)
        if problem:
            parser.error(f"{problem}; nothing was run")
    for path in paths:
        print(f"{path}: running ...", flush=True)
        print(f"{path}: done in {execute(path.resolve(), args.timeout):.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
