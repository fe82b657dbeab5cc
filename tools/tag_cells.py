"""Test scaffolding out of the reader's sight: one mechanical pass over the chapters' cells.

    python tools/tag_cells.py --check              # every chapter and solutions notebook:
                                                   # list what would change, exit 1 if anything
    python tools/tag_cells.py notebooks/03_*.ipynb # change these chapters in place

It changes cell metadata (tags) and comment lines only, never code or outputs, so the stored
outputs stay those of the recorded run and nbval compares exactly what it compared before:

1. nbval's comment markers become nbval's cell tags, and the comment line goes: a comment line
   `# NBVAL_IGNORE_OUTPUT` becomes the tag `nbval-ignore-output`; likewise NBVAL_SKIP,
   NBVAL_CHECK_OUTPUT and NBVAL_RAISES_EXCEPTION. As nbval reads them, on any line, with any
   number of '#' and spaces before the name (`#NBVAL_SKIP` too). A marker line that is not a
   comment of the code (inside a string, or in the body of a cell magic such as `%%bash` or
   `%%writefile`, its first line too), or that ends a line continued with a backslash, is left
   as it is, but listed: nbval still honours it, and --check fails until it is moved. A comment
   that starts with a marker's name but holds more (`# NBVAL_SKIP because slow`), which nbval
   does not read, is listed too.
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
import io
import json
import os
import re
import sys
import tokenize
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from lenet_book._grammar import _a_kind  # noqa: E402
from lenet_book.book import _no_chapters, chapters, solutions  # noqa: E402
from lenet_book.data import replaced_atomically  # noqa: E402
from tools.export_training_subset import _too_long  # noqa: E402  (it loads no torch)

MARKERS = {  # nbval's comment marker (the comment's text) -> nbval's tag
    "NBVAL_IGNORE_OUTPUT": "nbval-ignore-output",
    "NBVAL_SKIP": "nbval-skip",
    "NBVAL_CHECK_OUTPUT": "nbval-check-output",
    "NBVAL_RAISES_EXCEPTION": "raises-exception",
    "PYTEST_VALIDATE_IGNORE_OUTPUT": "nbval-ignore-output",  # nbval still reads its old name
}
# Cell magics whose body is Python: a comment line in it can go (in %%bash or %%writefile it is
# the body's own text)
PYTHON_CELL_MAGICS = ("time", "timeit", "capture", "prun")
# Shell cell magics: a first body line starting with '#' is a comment there too, so it can go;
# in any other (%%writefile, %%markdown, %%html) it is the body's text and stays
COMMENT_CELL_MAGICS = ("bash", "sh", "zsh")
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


def nbval_marker(line: str) -> str | None:
    """The nbval marker that ``line`` holds as nbval reads it (nbval.plugin.find_comment_markers:
    a line that starts with '#' and whose text after its '#'s is a marker's name), or None."""
    line = line.strip()
    if not line.startswith("#"):
        return None
    name = line.lstrip("#").strip()
    return name if name in MARKERS else None


def near_marker(line: str) -> str | None:
    """The marker that a comment ``line`` starts with but that nbval does not read, as its text is
    more than the name in capitals ("# NBVAL_SKIP because slow", "# nbval_skip"), or None."""
    line = line.strip()
    word = re.match(r"#+\s*([A-Za-z_]+)", line)
    if not word or word.group(1).upper() not in MARKERS or nbval_marker(line):
        return None
    return word.group(1).upper()


def _comment_lines(lines: list[str]) -> set[int] | None:
    """The indices of ``lines`` (Python, IPython's line magics and shell lines blanked) that are
    comment lines, not text inside a string; None if the code cannot be tokenized."""
    code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in lines)
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(code + "\n").readline))
    except (tokenize.TokenError, SyntaxError):
        return None
    return {token.start[0] - 1 for token in tokens
            if token.type == tokenize.COMMENT and token.line.strip() == token.string.strip()}


def marker_to_tag(cell) -> list[str]:
    """Replace nbval's comment markers in ``cell`` by their tags; the lines removed, each with
    its tag ("# NBVAL_SKIP -> tag nbval-skip"). The first line of the code always goes; a later
    one only if it is a comment of the code, not text in a string, nor the end of a line
    continued with a backslash. In a cell magic's body that is not Python (%%writefile, %%bash,
    %%markdown) no line goes, the first neither: it is the body's own text."""
    lines = cell.source.split("\n")
    start = 1 if lines and lines[0].startswith("%%") else 0  # after a cell magic: its body
    if not _python_body(lines) and _magic(lines) not in COMMENT_CELL_MAGICS:
        return []
    later = _python_body(lines) and any(nbval_marker(line) for line in lines[start + 1:])
    comments = (_comment_lines(lines[start:]) if later else None) or set()
    removed, changes = set(), []
    for index in range(start, len(lines)):
        name = nbval_marker(lines[index])
        if name and (index == start or index - start in comments
                     and not _continued(lines, index, start, comments)):
            add_tag(cell, MARKERS[name])
            removed.add(index)
            where = f" (line {index + 1})" if index > start else ""
            changes.append(f"{lines[index].strip()}{where} -> tag {MARKERS[name]}")
    if removed:
        cell.source = "\n".join(line for i, line in enumerate(lines) if i not in removed)
    return changes


def _magic(lines: list[str]) -> str | None:
    """The name of the cell's cell magic ("time" for %%time), "" for a bare %%, or None."""
    if not (lines and lines[0].startswith("%%")):
        return None
    return (lines[0][2:].split(maxsplit=1) or [""])[0]


def _python_body(lines: list[str]) -> bool:
    """Whether the cell's code (after a cell magic, its body) is Python: no cell magic, or one
    of PYTHON_CELL_MAGICS."""
    return _magic(lines) is None or _magic(lines) in PYTHON_CELL_MAGICS


def _continued(lines: list[str], index: int, start: int, comments: set[int]) -> bool:
    """Whether line ``index`` ends a line of code continued with a backslash: removing it
    would leave code ending in '\\'."""
    before = index - 1
    return (before >= start and lines[before].rstrip().endswith("\\")
            and before - start not in comments)


def _why_left(lines: list[str], index: int) -> str:
    """Why marker_to_tag left the marker on line ``index`` of a cell (its remaining lines)."""
    start = 1 if lines and lines[0].startswith("%%") else 0
    if _magic(lines) in COMMENT_CELL_MAGICS:
        return "inside a string, or in a cell magic's body"
    if not _python_body(lines):
        return f"in the body of the cell magic {lines[0].split()[0]}, which is not Python"
    comments = _comment_lines(lines[start:])
    if comments is None:
        return ("the cell is not valid Python, with an unclosed bracket or string, so it cannot be "
                "told whether this line is a comment")
    if index - start in comments and _continued(lines, index, start, comments):
        return ("it ends a line continued with '\\' on the line before, where removing it "
                "would leave code ending in '\\'")
    return "inside a string, or in a cell magic's body"


def markers_left(nb) -> list[str]:
    """The nbval markers still in ``nb``'s code cells (which nbval honours), one line each."""
    left = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        lines = cell.source.split("\n")
        for n, line in enumerate(lines, 1):
            name = nbval_marker(line)
            if name:
                move = ("move it to the cell's first line (the second after a cell magic), or "
                        if _python_body(lines) or _magic(lines) in COMMENT_CELL_MAGICS
                        else "")  # in a %%writefile body, every line is the body's text
                left.append(f"cell {i}: line {n} {line.strip()!r} is left as it is "
                            f"({_why_left(lines, n - 1)}), but nbval still reads it as "
                            f"{name}: {move}give the cell the tag {MARKERS[name]} and remove the "
                            "line")
    return left


def markers_unread(nb) -> list[str]:
    """Comment lines in ``nb``'s code cells that start with a marker's name but that nbval does
    not read ("# NBVAL_SKIP because slow"), in cells without the marker's tag, one line each."""
    unread = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for n, line in enumerate(cell.source.splitlines(), 1):
            name = near_marker(line)
            if name and MARKERS[name] not in cell.metadata.get("tags", []):
                unread.append(f"cell {i}: line {n} {line.strip()!r} is not read by nbval, which "
                              "reads a marker only when the comment is its name alone, in "
                              f"capitals: the cell is not treated as {name}; write '# {name}' "
                              f"alone on the line, or give the cell the tag {MARKERS[name]}")
    return unread


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


def _json_kind(value) -> str:
    """The JSON name of ``value``'s type, as one sees it in the notebook's file."""
    for kind, name in ((bool, "true or false"), (dict, "an object"), (list, "a list"),
                       (str, "a string"), ((int, float), "a number"), (type(None), "null")):
        if isinstance(value, kind):
            return name
    return f"{_a_kind(value)}"


def _shape_problem(nb) -> str | None:
    """Where the notebook's JSON does not have a notebook's shape (nbformat's reader and
    validator fail on it with errors of their own, a cell's metadata that is a list or a cell
    that is not an object), with how to fix it, or None."""
    fix = "correct it in the notebook's JSON, or restore the notebook from git"
    if isinstance(nb, _TooDeep):
        return ("its JSON is nested too deeply for Python's JSON reader (brackets a thousand or "
                f"more levels deep), which no notebook needs: the file is damaged; {fix}")
    if not isinstance(nb, dict):
        return (f"its JSON is {_json_kind(nb)}, not an object with 'nbformat', 'metadata' and "
                f"'cells'; {fix}")
    for key, example in (("nbformat", 4), ("nbformat_minor", 5)):
        value = nb.get(key)  # nbformat's reader calls a string "an unsupported version"
        if key in nb and (isinstance(value, bool) or not isinstance(value, int)):
            return (f"its {key} must be a whole number, e.g. {example}, not "
                    f"{_json_kind(value)} ({value!r:.60}); {fix}")
    if "metadata" in nb and not isinstance(nb["metadata"], dict):
        return (f"its metadata must be an object, e.g. {{}}, not {_json_kind(nb['metadata'])} "
                f"({nb['metadata']!r:.60}); {fix}")
    if "cells" in nb and not isinstance(nb["cells"], list):
        return (f"its 'cells' must be a list of cells, not {_json_kind(nb['cells'])}; {fix}")
    for i, cell in enumerate(nb.get("cells", [])):
        if not isinstance(cell, dict):
            return (f"cell {i}: a cell must be an object with a cell_type, metadata and a source, "
                    f"e.g. {{\"cell_type\": \"code\", \"metadata\": {{}}, \"source\": \"x = 1\", "
                    f"...}}, not {_json_kind(cell)} ({cell!r:.60}); {fix}")
        if "metadata" in cell and not isinstance(cell["metadata"], dict):
            return (f"cell {i}: its metadata must be an object, e.g. {{}} or {{\"tags\": "
                    f"[\"nbval-skip\"]}}, not {_json_kind(cell['metadata'])} "
                    f"({cell['metadata']!r:.60}); {fix}")
        if "cell_type" in cell and not isinstance(cell["cell_type"], str):
            return (f"cell {i}: its cell_type must be \"code\", \"markdown\" or \"raw\", not "
                    f"{_json_kind(cell['cell_type'])} ({cell['cell_type']!r:.60}); {fix}")
        source = cell.get("source", "")
        if not (isinstance(source, str)
                or isinstance(source, list) and all(isinstance(line, str) for line in source)):
            return (f"cell {i}: its source must be text, a string or a list of lines (strings), "
                    f"not {_json_kind(source)} ({source!r:.60}); {fix}")
    return None


def schema_problem(nb: nbformat.NotebookNode) -> str | None:
    """What breaks the notebook format in ``nb`` (nbformat.read only logs it; e.g. a cell with no
    source, a cell's metadata that is a list), or None (tools/execute_notebooks.py checks with
    it too)."""
    problem = _shape_problem(nb)
    if problem:
        return problem
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as error:
        return _schema_words(error)
    return None


def _schema_words(error) -> str:
    """jsonschema's ``error`` in one line: the place (cell N, then the key path in it) and what is
    wrong there, without the repr of the whole cell that its message starts with; for a cell or
    output that fits none of its kinds, the error of its own kind, or its type if it is no kind."""
    from jsonschema.exceptions import best_match  # nbformat's validator

    def kind_error(e):  # "'Code' is not one of ['code']": this branch is another kind
        return e.validator == "enum" and list(e.path)[-1:] in (["cell_type"], ["output_type"])

    allowed, where = None, list(getattr(error, "absolute_path", None) or [])
    while getattr(error, "validator", None) in ("oneOf", "anyOf") and error.context:
        other_kinds = {e.relative_schema_path[0] for e in error.context if kind_error(e)}
        if len(other_kinds) == len(error.validator_value):  # its type is none of the kinds
            kinds = [e for e in error.context if kind_error(e)]
            allowed = sorted({value for e in kinds for value in e.validator_value})
            error = kinds[0]
            where += list(error.path)  # relative to the cell or output (nbformat's own errors)
            break
        error = best_match([e for e in error.context
                            if e.relative_schema_path[0] not in other_kinds])
        where += list(error.path)
    cell = f"cell {where[1]}: " if where[:1] == ["cells"] and len(where) > 1 else ""
    place = "".join(f"[{p}]" if isinstance(p, int) else f".{p}"
                    for p in (where[2:] if cell else where)).lstrip(".")
    if allowed:
        what = (f"must be {', '.join(map(repr, allowed[:-1]))} or {allowed[-1]!r}, not "
                f"{error.instance!r:.40}")
    else:
        what = getattr(error, "message", None) or str(error).strip().split("\n")[0]
        shown = repr(getattr(error, "instance", None))
        if what.startswith(shown) and len(shown) > 40:  # the whole cell or output: cut
            what = f"{shown[:37]}...{what[len(shown):]}"
    return cell + (f"{place}: {what}" if place else what)[:300]


def tag_notebook(nb) -> list[str]:
    """Apply the four rules to `nb` in place; one line per change."""
    changes = []
    code = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    for i, cell in code:
        changes += [f"cell {i}: {change}" for change in marker_to_tag(cell)]
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


class _TooDeep(dict):
    """What _json gives for JSON nested too deeply for Python's reader: _shape_problem names it
    (nbformat's reader fails on it too, with words about a missing 'nbformat')."""


def _json(path: Path):
    """The JSON that ``path`` holds, or {} when it holds none (empty, cut short, not UTF-8,
    unreadable): nbformat.read names that."""
    try:
        return json.loads(path.read_bytes())
    except RecursionError:
        return _TooDeep()
    except (OSError, ValueError):
        return {}


def _old_format(path: Path, nb) -> str | None:
    """Why the notebook ``nb`` (the JSON at ``path``) is not tagged: one of nbformat 3 or older,
    which nbformat.read converts, so that writing it would rewrite it whole as nbformat 4 (its
    worksheets flattened, its metadata's name dropped, cell ids added), not only its tags and
    comment lines; or None."""
    version = nb.get("nbformat") if isinstance(nb, dict) else None
    if isinstance(version, bool) or not isinstance(version, int) or version >= 4:
        return None
    return (f"{path} is an nbformat {version} notebook, which this tool would rewrite whole as "
            "nbformat 4 (worksheets flattened, its name dropped, cell ids added), though it "
            "changes only tags and comment lines; convert it first (jupyter nbconvert --to "
            f"notebook --nbformat 4 --output {path.stem}_v4 {path}) and tag the converted "
            f"{path.stem}_v4.ipynb")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="default: every chapter and solutions notebook in _toc.yml")
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 if a notebook would change, or holds an nbval "
                        "marker it cannot convert")
    args = parser.parse_args(argv)
    pending = 0
    if not args.notebooks and not chapters():  # "0 change(s)" would pass on nothing checked
        parser.error(_no_chapters())
    paths = args.notebooks or chapters() + solutions()  # the solutions carry nbval tags too
    notebooks = {}
    for path in paths:  # every notebook is read before any is written
        problem = _too_long(path)
        if problem:  # no such file can exist (pathlib's is_file() raises on it)
            parser.error(f"no notebook at {path}: {problem}; nothing was changed")
        if path.is_dir():  # not "no notebook at": the notebooks may well be in it
            parser.error(f"{path} is a folder, not a notebook: give the notebooks in it (e.g. "
                         f"{path / '*.ipynb'}), or nothing for every chapter; nothing was changed")
        if not path.is_file():
            glob = any(c in str(path) for c in "*?[") and not os.path.lexists(path)
            parser.error(f"no notebook at {path}"  # the shell passes a pattern it did not match
                         + (": no file matches that pattern" if glob else "")
                         + (f"; did you mean {path}.ipynb? (_toc.yml names the chapters without "
                            ".ipynb)" if Path(f"{path}.ipynb").is_file() else ""))
        # schema_problem's first check, before nbformat reads it: its reader fails on some
        # shapes (a cell's metadata that is a list) with errors that name no cell
        raw = _json(path)
        problem = _shape_problem(raw)
        if problem:
            parser.error(f"{path} is not a notebook ({problem}); nothing was changed")
        problem = _old_format(path, raw)
        if problem:
            parser.error(f"{problem}; nothing was changed")
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
    changed, left, unread = [], 0, 0
    for path, nb in notebooks.items():
        changes = tag_notebook(nb)
        for change in changes:
            print(f"{path}: {change}")
        for marker in markers_left(nb):  # nbval reads them, the reader sees them: not done
            print(f"{path}: {marker}")
            left += 1
        for marker in markers_unread(nb):  # meant as markers, not honoured: said, and exit 1
            print(f"{path}: {marker}", file=sys.stderr)
            unread += 1
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
    print(f"{pending} change(s)" + (" needed" if args.check else " made")
          + (f"; {left} nbval marker(s) left behind, listed above" if left else ""))
    return 1 if (args.check and pending) or left or unread else 0


if __name__ == "__main__":
    sys.exit(main())
