"""Print every number a chapter's prose states that its outputs do not show (tests/test_prose.py).

    python tools/prose_numbers.py                       # every chapter in _toc.yml
    python tools/prose_numbers.py notebooks/03_*.ipynb  # some of them

For each chapter: the markdown cell (counted from 0 over all cells), the number as written and
its sentence. Fix the sentence, print the number in a cell, cite its source ({cite}`key`), or
see the rules in tests/test_prose.py's docstring. Exits 1 when a number is not found.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def prose_rule():
    spec = importlib.util.spec_from_file_location("test_prose", ROOT / "tests" / "test_prose.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    rule = prose_rule()
    paths = [Path(arg).resolve() for arg in sys.argv[1:]] or rule.CHAPTERS
    text = rule.report(paths)
    print(text)
    sys.exit(0 if text.endswith("== 0 number(s) not found in %d chapter(s)" % len(paths)) else 1)
