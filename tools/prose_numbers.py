"""Print every number a chapter's prose states that its outputs do not show (tests/test_prose.py).

    python tools/prose_numbers.py                       # every chapter in _toc.yml
    python tools/prose_numbers.py notebooks/03_*.ipynb  # some of them

For each chapter: the markdown cell (counted from 0 over all cells), the number as written and
its sentence. Fix the sentence, print the number in a cell, cite its source ({cite}`key`), or
see the rules in tests/test_prose.py's docstring. Exits 1 when a number is not found.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def prose_rule():
    spec = importlib.util.spec_from_file_location("test_prose", ROOT / "tests" / "test_prose.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


def notebook_problem(path: Path) -> str | None:
    """Why ``path`` is not a notebook to read (missing, a folder or a device, not .ipynb, not
    JSON), or None."""
    if not path.exists():
        return f"{path} does not exist" + (  # as _toc.yml names a chapter
            f"; did you mean {path}.ipynb? (_toc.yml names the chapters without .ipynb)"
            if Path(f"{path}.ipynb").is_file() else "")
    if path.is_dir():
        return f"{path} is a folder, not a notebook"
    if not path.is_file():  # /dev/null, a named pipe: as tools/execute_notebooks.py names them
        return f"{path} is a device, pipe or socket, not a notebook"
    if path.suffix != ".ipynb":
        return f"{path} is not a notebook (.ipynb)"
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        return f"{path} is not a notebook (invalid JSON at line {error.lineno})"
    except (UnicodeDecodeError, OSError) as error:
        return f"{path} cannot be read as a notebook ({error})"
    if not (isinstance(nb, dict) and isinstance(nb.get("cells"), list)):
        return f"{path} is not a notebook (no list of cells)"
    problem = next(filter(None, map(_cell_problem, range(len(nb["cells"])), nb["cells"])), None)
    return f"{path} is not a notebook ({problem})" if problem else None


def _chapter_problem(path: Path) -> str | None:
    """Why the chapter ``path``, listed in _toc.yml, cannot be read (in the words of
    tools/execution_report.py for a missing one), or None."""
    if not os.path.lexists(path):
        try:
            name = path.relative_to(ROOT).as_posix()
        except ValueError:
            name = str(path)
        return (f"{name}, listed in _toc.yml, does not exist: restore it from git, or remove it "
                "from _toc.yml")
    return notebook_problem(path)


def _is_text(value) -> bool:
    """A notebook's text: one string, or a list of lines."""
    return isinstance(value, str) or (isinstance(value, list)
                                      and all(isinstance(line, str) for line in value))


def _cell_problem(index: int, cell) -> str | None:
    """What the report would trip over in this cell (read as tests/test_prose.py reads it), or
    None: a cell is an object with a cell_type and a source, its outputs objects with a type."""
    if not isinstance(cell, dict):
        return f"cell {index} is {cell!r:.40}, not a cell: an object with a cell_type and a source"
    if not isinstance(cell.get("cell_type"), str):
        return f"cell {index} has no cell_type"
    if not _is_text(cell.get("source")):
        return f"cell {index} has no source: its text, as a string or a list of lines"
    outputs = cell.get("outputs", [])
    if not (isinstance(outputs, list) and all(isinstance(output, dict)
                                              and isinstance(output.get("output_type"), str)
                                              for output in outputs)):
        return f"cell {index}: its outputs are not a list of outputs, each with an output_type"
    for output in outputs:
        kind = output["output_type"]
        if kind == "stream" and not _is_text(output.get("text")):
            return f"cell {index}: a stream output has no text"
        if kind == "error" and not {"ename", "evalue"} <= output.keys():
            return f"cell {index}: an error output has no ename and evalue"
        if kind not in ("stream", "error") and not isinstance(output.get("data", {}), dict):
            return f"cell {index}: an output's data are not an object of mime types"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every chapter in _toc.yml")
    args = parser.parse_args(argv)
    problems = [notebook_problem(path) for path in args.notebooks]
    if any(problems):
        parser.print_usage(sys.stderr)
        for problem in filter(None, problems):
            print(f"{parser.prog}: error: {problem}", file=sys.stderr)
        return 2
    rule = prose_rule()
    paths = [path.resolve() for path in args.notebooks] or rule.CHAPTERS
    if not paths:  # "0 number(s) not found in 0 chapter(s)" would pass on nothing checked
        from lenet_book.book import _no_chapters
        parser.error(_no_chapters())
    if not args.notebooks:  # _toc.yml's chapters: each checked before the report reads any
        problems = [_chapter_problem(path) for path in paths]
        if any(problems):
            parser.print_usage(sys.stderr)
            for problem in filter(None, problems):
                print(f"{parser.prog}: error: {problem}", file=sys.stderr)
            return 2
    text = rule.report(paths)
    print(text)
    return 0 if text.endswith("== 0 number(s) not found in %d chapter(s)" % len(paths)) else 1


if __name__ == "__main__":
    sys.exit(main())
