"""Test scaffolding out of the reader's sight: one mechanical pass over the chapters' cells.

    python tools/tag_cells.py --check              # every chapter: list what would change, exit 1 if anything
    python tools/tag_cells.py notebooks/03_*.ipynb # change these chapters in place

It changes cell metadata (tags) and comment lines only, never code or outputs, so the stored
outputs stay those of the recorded run and nbval compares exactly what it compared before:

1. nbval's comment markers become nbval's cell tags, and the comment line goes: a first line
   `# NBVAL_IGNORE_OUTPUT` (second line after a cell magic such as `%%time`) becomes the tag
   `nbval-ignore-output`; likewise NBVAL_SKIP, NBVAL_CHECK_OUTPUT and NBVAL_RAISES_EXCEPTION.
2. The Colab set-up cell (the first code cell, `# Colab set-up: ...`) gets `remove-cell`: the site
   and the PDF leave it out; JupyterLab, Colab and nbval still run it first.
3. A check cell, one that follows an output-ignored cell and asserts on what it computed, gets
   `hide-cell`: on the site it is folded behind a "Show code cell" button with its "...: True" lines.
4. A long plotting helper, a cell of HELPER_LINES lines or more that only imports and defines
   functions or classes and draws with matplotlib, gets `hide-input`: its source is folded. (Code
   that the chapter is about, such as a training loop, is never folded by this rule.)

Tags already there are kept, and a cell tagged `show-cell` is left as it is. Jupyter Book reads
remove-cell, hide-cell and hide-input; nbval reads its own tags; neither needs a comment.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from lenet_book.book import chapters  # noqa: E402
from lenet_book.data import replaced_atomically  # noqa: E402

MARKERS = {  # nbval's comment -> nbval's tag
    "# NBVAL_IGNORE_OUTPUT": "nbval-ignore-output",
    "# NBVAL_SKIP": "nbval-skip",
    "# NBVAL_CHECK_OUTPUT": "nbval-check-output",
    "# NBVAL_RAISES_EXCEPTION": "raises-exception",
}
SETUP_CELL = "# Colab set-up"
HELPER_LINES = 20
PLOTTING = re.compile(r"\b(plt|matplotlib|ax|axes|fig|subplots|imshow|savefig)\b")
KEEP = "show-cell"
UNREADABLE = ("its JSON lacks what a notebook holds, such as an 'nbformat' version or "
              "cells with a cell_type and a source")


def add_tag(cell, tag: str) -> bool:
    tags = cell.metadata.setdefault("tags", [])
    if tag in tags:
        return False
    tags.append(tag)
    return True


def marker_to_tag(cell) -> str | None:
    """Replace an nbval comment marker by its tag; the marker, if there was one."""
    lines = cell.source.split("\n")
    where = 1 if lines and lines[0].startswith("%%") else 0  # after a cell magic, the marker is second
    if len(lines) <= where or lines[where].strip() not in MARKERS:
        return None
    marker = lines[where].strip()
    add_tag(cell, MARKERS[marker])
    cell.source = "\n".join(lines[:where] + lines[where + 1:])
    return marker


def asserts(cell) -> bool:
    try:
        tree = ast.parse("\n".join(line for line in cell.source.split("\n")
                                   if not line.lstrip().startswith(("%", "!"))))
    except SyntaxError:
        return False
    return any(isinstance(node, ast.Assert) for node in ast.walk(tree))


def only_definitions(cell) -> bool:
    try:
        tree = ast.parse(cell.source)
    except SyntaxError:
        return False
    kinds = (ast.FunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)
    body = [n for n in tree.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
    return bool(body) and all(isinstance(n, kinds) for n in body) and any(isinstance(n, kinds[:2]) for n in body)


def _cell_problem(nb) -> str | None:
    """A code cell whose tags are not a list of names (nbformat.read only logs schema errors;
    a string's `in` would test substrings, and it has no append), or None."""
    for i, cell in enumerate(nb.cells):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue  # not a cell at all: schema_problem names it
        tags = cell.get("metadata", {}).get("tags", [])
        if not (isinstance(tags, list) and all(isinstance(tag, str) for tag in tags)):
            return f"cell {i}: its tags must be a list of names, e.g. [\"nbval-skip\"], not {tags!r}"
    return None


def schema_problem(nb: nbformat.NotebookNode) -> str | None:
    """What breaks the notebook format in ``nb`` (nbformat.read only logs it; e.g. a cell with no
    source), or None (tools/execute_notebooks.py checks with it too)."""
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as error:
        where = list(getattr(error, "absolute_path", None) or [])
        cell = f"cell {where[1]}: " if where[:1] == ["cells"] and len(where) > 1 else ""
        return cell + (str(error).strip().splitlines() or ["invalid"])[0][:120]
    return None


def tag_notebook(nb) -> list[str]:
    """Apply the four rules to `nb` in place; one line per change."""
    changes = []
    code = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    for i, cell in code:
        marker = marker_to_tag(cell)
        if marker:
            changes.append(f"cell {i}: {marker} -> tag {MARKERS[marker]}")
    previous_ignored = False
    for n, (i, cell) in enumerate(code):
        tags = cell.metadata.get("tags", [])
        if KEEP in tags:
            previous_ignored = "nbval-ignore-output" in tags
            continue
        if n == 0 and cell.source.startswith(SETUP_CELL):
            if add_tag(cell, "remove-cell"):
                changes.append(f"cell {i}: the Colab set-up cell -> tag remove-cell")
        elif previous_ignored and "nbval-ignore-output" not in tags and asserts(cell):
            if add_tag(cell, "hide-cell"):
                changes.append(f"cell {i}: check cell after an output-ignored cell -> tag hide-cell")
        elif (only_definitions(cell) and PLOTTING.search(cell.source)
              and len(cell.source.split("\n")) >= HELPER_LINES):
            if add_tag(cell, "hide-input"):
                changes.append(f"cell {i}: {len(cell.source.splitlines())}-line plotting helper -> tag hide-input")
        previous_ignored = "nbval-ignore-output" in cell.metadata.get("tags", [])
    return changes


def unwritable(path: Path) -> str | None:
    """Why this user cannot replace the notebook ``path`` (written through a temporary file
    beside it, then renamed over it), or None."""
    target = Path(os.path.realpath(path))  # a link is written through, as a plain write does
    if not os.access(target, os.W_OK):
        return "no permission to write it: it is read-only for this user"
    if not os.access(target.parent, os.W_OK | os.X_OK):
        return (f"no permission to write in its folder {target.parent}, where the new notebook is "
                "written first, so that a failed write never leaves half a notebook")
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every chapter in _toc.yml")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a notebook would change")
    args = parser.parse_args(argv)
    pending = 0
    paths = args.notebooks or chapters()
    notebooks = {}
    for path in paths:  # every notebook is read before any is written
        if not path.is_file():
            parser.error(f"no notebook at {path}")
        try:
            notebooks[path] = nbformat.read(path, as_version=4)
        except (ValueError, KeyError, nbformat.ValidationError) as error:  # NotJSONError too
            first = (str(error).strip().splitlines() or [type(error).__name__])[0][:120]
            parser.error(f"{path} is not a notebook ({first}); nothing was changed")
        except Exception:  # nbformat's converters fail otherwise too (no 'nbformat' key)
            parser.error(f"{path} is not a notebook ({UNREADABLE}); nothing was changed")
        problem = _cell_problem(notebooks[path])
        if problem:
            parser.error(f"{path}: {problem}; nothing was changed")
        problem = schema_problem(notebooks[path])
        if problem:
            parser.error(f"{path} is not a notebook ({problem}); nothing was changed")
    changed = []
    for path, nb in notebooks.items():
        changes = tag_notebook(nb)
        for change in changes:
            print(f"{path}: {change}")
        pending += len(changes)
        if changes:
            changed.append(path)
    if not args.check:
        for path in changed:  # every notebook to change is checked before any is written
            problem = unwritable(path)
            if problem:
                parser.error(f"cannot write {path} ({problem}); nothing was changed")
        for done, path in enumerate(changed):
            try:  # whole or not at all: a full disk or a size limit never leaves half a notebook
                with replaced_atomically(Path(os.path.realpath(path)), "w", encoding="utf-8") as f:
                    nbformat.write(notebooks[path], f)
            except (OSError, ValueError) as error:
                written = ", ".join(map(str, changed[:done]))
                parser.error(f"cannot write {path} ({getattr(error, 'strerror', None) or error}); "
                             + (f"it was left as it was, but {written} were written" if written
                                else "nothing was changed"))
    print(f"{pending} change(s)" + (" needed" if args.check else " made"))
    return 1 if args.check and pending else 0


if __name__ == "__main__":
    sys.exit(main())
