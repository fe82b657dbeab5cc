"""Specification of the book's shape: what every chapter must be before nbval replays it.

nbval checks that the stored outputs reproduce; these tests check what nbval cannot: that the
chapters are the ones in the table of contents, stored executed and clean, start and end as
CONTRIBUTING.md says, and that every ignored output is followed by a check.
"""

from __future__ import annotations

import ast
import builtins
import json
import re
from pathlib import Path

import nbformat
import pytest
import yaml

from lenet_book.book import chapters, solutions
from tools.execute_notebooks import machine_paths

REPO = Path(__file__).resolve().parents[1]
TOC = yaml.safe_load((REPO / "_toc.yml").read_text())
CONFIG = yaml.safe_load((REPO / "_config.yml").read_text())
CHAPTERS = chapters()  # the one reader of _toc.yml
SOLUTIONS = solutions()  # notebooks/solutions/NN_topic.ipynb: held to the chapters' standard
MAX_COLUMNS = 100  # the widest code line that the site shows without a scroll bar


def setup_cell_from_contributing() -> str:
    text = (REPO / "CONTRIBUTING.md").read_text()
    block = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    return "\n".join(line[3:] if line.startswith("   ") else line for line in block.splitlines()).strip()


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def source(cell: dict) -> str:
    return "".join(cell["source"])


def uncaptioned_markdown_tables(text: str) -> int:
    """Markdown tables (a header row and its rule) without a "Table: ..." paragraph right above."""
    count = 0
    for table in re.finditer(r"(?m)^\|.*\|\n\|[ :|-]+\|$", text):
        above = text[:table.start()].rstrip("\n").split("\n\n")[-1]
        count += not (above.startswith("Table: ") and len(above) > 27)
    return count


def code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code" and source(c).strip()]


def test_toc_lists_every_chapter_in_numbered_order():
    on_disk = sorted((REPO / "notebooks").glob("*.ipynb"))
    assert CHAPTERS == on_disk, "every notebook in notebooks/ is a chapter listed in _toc.yml, in order"
    numbers = [int(re.fullmatch(r"(\d\d)_[a-z0-9_]+\.ipynb", path.name).group(1)) for path in CHAPTERS]
    # 00 is the unnumbered prelude (notebooks/00_convolution); the chapters are numbered from 1
    assert numbers[0] in (0, 1) and numbers == sorted(set(numbers)), f"chapters numbered in reading order: {numbers}"
    assert [n for n in numbers if n] == list(range(1, len(numbers) - numbers.count(0) + 1))


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_ends_with_exercises(path):
    markdown = [source(c) for c in load(path)["cells"] if c["cell_type"] == "markdown"]
    assert re.search(r"^## Exercises$", markdown[-1], re.M)


@pytest.mark.parametrize("path", CHAPTERS + SOLUTIONS, ids=lambda p: p.relative_to(REPO / "notebooks").as_posix())
class TestChapter:
    """A chapter, and the solutions notebook of a chapter, as stored."""

    def test_starts_with_a_title_then_the_colab_setup_cell(self, path):
        nb = load(path)
        first = nb["cells"][0]
        assert first["cell_type"] == "markdown" and re.match(r"# \S", source(first))
        assert source(code_cells(nb)[0]).strip() == setup_cell_from_contributing()

    def test_is_stored_executed_in_order_without_errors(self, path):
        cells = code_cells(load(path))
        counts = [c["execution_count"] for c in cells]
        assert counts == list(range(1, len(cells) + 1)), "run it from a fresh kernel, top to bottom"
        for cell in cells:
            errors = [o for o in cell["outputs"] if o["output_type"] == "error"]
            assert not errors or "raises-exception" in cell["metadata"].get("tags", [])

    def test_outputs_hold_no_machine_paths(self, path):
        found = machine_paths(nbformat.read(path, as_version=4))  # the check execute_notebooks makes
        assert not found, f"outputs print machine paths: {found}"

    def test_metadata_is_clean_and_records_the_run(self, path):
        nb = load(path)
        assert set(nb["metadata"]) == {"kernelspec", "language_info", "execution"}
        record = nb["metadata"]["execution"]
        assert set(record) == {"date", "seconds", "device", "python", "versions"}, \
            "store it with tools/execute_notebooks.py"
        for cell in nb["cells"]:
            assert set(cell["metadata"]) <= {"tags", "mystnb", "table"}

    def test_code_fits_the_page(self, path):
        """No code line is wider than 100 columns: the site's code cells then need no sideways scrolling."""
        long = [f"code cell {index}: {line[:60]}..." for index, cell in enumerate(code_cells(load(path)))
                for line in source(cell).splitlines() if len(line) > MAX_COLUMNS]
        assert not long, "wrap these lines at 100 columns:\n" + "\n".join(long)

    def test_every_figure_has_a_caption_and_alt_text(self, path):
        """A figure is numbered and captioned on the site, and described for a screen reader."""
        for index, cell in enumerate(code_cells(load(path))):
            if not any(kind.startswith("image/") for o in cell["outputs"] for kind in o.get("data", {})):
                continue
            figure = cell["metadata"].get("mystnb", {})
            assert figure.get("figure", {}).get("name", "").startswith("fig-"), f"code cell {index}: no figure name"
            assert len(figure.get("figure", {}).get("caption", "")) > 20, f"code cell {index}: no caption"
            assert len(figure.get("image", {}).get("alt", "")) > 20, f"code cell {index}: no alt text"

    def test_every_table_has_a_caption(self, path):
        """A table is numbered and captioned on the site (book/_ext/output_tables.py): a table a cell
        displays by its cell's "table" metadata, one entry per table; a Markdown table by a
        "Table:" paragraph right above it."""
        for index, cell in enumerate(load(path)["cells"]):
            if cell["cell_type"] == "markdown":
                assert not uncaptioned_markdown_tables(source(cell)), \
                    f"cell {index}: a Markdown table without a 'Table: caption' paragraph right above it"
                continue
            tables = sum("<table" in "".join(o.get("data", {}).get("text/html", "")) for o in cell.get("outputs", []))
            entries = cell["metadata"].get("table", [])
            entries = entries if isinstance(entries, list) else [entries]
            assert len(entries) == tables, f"cell {index}: {tables} table(s), {len(entries)} caption(s)"
            for entry in entries:
                assert entry.get("name", "").startswith("tab-"), f"cell {index}: no table name"
                assert len(entry.get("caption", "")) > 20, f"cell {index}: no caption"

    def test_picks_its_device_with_try_device_and_prints_it(self, path):
        nb = load(path)
        code = "\n".join(source(c) for c in code_cells(nb))
        assert "try_gpu(" not in code, "d2l.try_gpu() ignores Apple's mps: use lenet_book.device.try_device()"
        if "device" not in code:
            return  # this chapter does not train
        assert "try_device()" in code
        printed = json.dumps([c["outputs"] for c in code_cells(nb)])
        assert re.search(r"\bon (cpu|cuda|mps)\b", printed), "print the device a run used (in an ignored cell)"

    def test_every_ignored_output_is_followed_by_a_check(self, path):
        """The next compared cell after an ignored one asserts on something the ignored cell computed."""
        failures = unchecked_ignored_cells(load(path))
        assert not failures, "\n".join(failures)


# --- Ignored outputs and the checks that follow them ---------------------------------------------
# nbval does not compare a cell with a comment line "# NBVAL_IGNORE_OUTPUT" or the tag
# "nbval-ignore-output", nor one it skips ("# NBVAL_SKIP", tag "nbval-skip"). What such a cell
# computed is then guarded only by the next compared cell, which must assert on it: it contains
# an `assert` whose condition uses (directly, or through names the check cell derives from them)
# a name that the ignored cell binds at its top level (assigns, defines, imports or, as in
# `results["relu"] = ...`, stores into) or shows (a name in what it prints or displays, or in a
# top-level expression such as a plotting call or the last line, whose value Jupyter shows, and
# the collection a printing loop runs over; builtins, imported modules and the notebook's
# functions and classes are code, not results).

def has_marker(cell: dict, comment: str, tag: str) -> bool:
    """As nbval reads its markers: a comment line (anywhere in the cell) or a cell tag."""
    comments = [line.strip().lstrip("#").strip() for line in source(cell).splitlines() if line.strip().startswith("#")]
    return comment.lstrip("# ") in comments or tag in cell["metadata"].get("tags", [])


def ignores_output(cell: dict) -> bool:
    return has_marker(cell, "# NBVAL_IGNORE_OUTPUT", "nbval-ignore-output")


def is_compared(cell: dict) -> bool:
    return not ignores_output(cell) and not has_marker(cell, "# NBVAL_SKIP", "nbval-skip")


def python(cell: dict) -> ast.Module:
    """The cell's code as Python; IPython magics and shell lines (%, !) are left out."""
    lines = source(cell).splitlines()
    return ast.parse("\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in lines))


class TopLevelBindings(ast.NodeVisitor):
    """Names a cell binds for the cells after it: not those local to its functions or comprehensions."""

    def __init__(self):
        self.names: set[str] = set()

    def visit_Name(self, node):
        if isinstance(node.ctx, ast.Store):
            self.names.add(node.id)

    def visit_Attribute(self, node):                 # results.x = ..., results["x"] = ...: results
        if isinstance(node.ctx, ast.Store):
            base = node
            while isinstance(base, (ast.Attribute, ast.Subscript)):
                base = base.value
            if isinstance(base, ast.Name):
                self.names.add(base.id)
        self.generic_visit(node)

    visit_Subscript = visit_Attribute

    def visit_FunctionDef(self, node):
        self.names.add(node.name)

    visit_AsyncFunctionDef = visit_ClassDef = visit_FunctionDef

    def visit_Import(self, node):
        self.names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)

    visit_ImportFrom = visit_Import

    def visit_Lambda(self, node):
        pass

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = visit_Lambda


def top_level_bindings(tree: ast.Module) -> set[str]:
    visitor = TopLevelBindings()
    visitor.visit(tree)
    return visitor.names


def code_names(nb: dict) -> set[str]:
    """Builtins, imported modules and the notebook's functions and classes: code, not results."""
    names = set(dir(builtins)) | {"display"}     # IPython's builtin
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and source(cell).strip():
            for node in ast.walk(python(cell)):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
                elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    names.add(node.name)
    return names


def shown_names(tree: ast.Module) -> set[str]:
    """Names in what a cell prints or displays, and in its top-level expressions (plots, the last line)."""
    shown = [arg for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
             and node.func.id in ("print", "display") for arg in node.args]
    shown += [statement.value for statement in tree.body if isinstance(statement, ast.Expr)]
    return set().union(*[loaded_names(node) for node in shown])


def loaded_names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


ASSIGNMENTS = (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.For, ast.comprehension)
LOOPS = (ast.For, ast.comprehension)


def derivations(tree: ast.Module, kinds: tuple = ASSIGNMENTS) -> dict[str, set[str]]:
    """For each name a cell assigns (or loops over), the names its value comes from."""
    derived: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, kinds):
            value = node.iter if isinstance(node, (ast.For, ast.comprehension)) else node.value
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for name in top_level_bindings(ast.Module([ast.Assign([target], ast.Constant(0))], [])):
                    derived.setdefault(name, set()).update(loaded_names(value) if value else set())
    return derived


def with_sources(names: set[str], tree: ast.Module, kinds: tuple = ASSIGNMENTS) -> set[str]:
    """The names and, through the cell's assignments (or only its loops), every name they come from."""
    derived, found, frontier = derivations(tree, kinds), set(names), set(names)
    while frontier:
        frontier = set().union(*[derived.get(name, set()) for name in frontier]) - found
        found |= frontier
    return found


def names_asserted_on(tree: ast.Module) -> set[str]:
    """Names the cell's asserts use, directly or through the cell's own assignments."""
    return with_sources(set().union(*[loaded_names(n.test) for n in ast.walk(tree) if isinstance(n, ast.Assert)]),
                        tree)


def unchecked_ignored_cells(nb: dict) -> list[str]:
    """One line per ignored cell whose next compared cell does not assert on what it computed."""
    cells = [(i, c) for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code" and source(c).strip()]
    not_results = code_names(nb)
    failures = []
    for position, (index, cell) in enumerate(cells):
        if not ignores_output(cell):
            continue
        tree = python(cell)
        computed = (top_level_bindings(tree) | with_sources(shown_names(tree), tree, LOOPS)) - not_results
        later = [(i, c) for i, c in cells[position + 1:] if is_compared(c)]
        if not later:
            failures.append(f"cell {index} ignores its output and no compared cell follows to check it")
            continue
        check_index, check = later[0]
        check_tree = python(check)
        if not any(isinstance(node, ast.Assert) for node in ast.walk(check_tree)):
            failures.append(f"cell {index} ignores its output; the next compared cell {check_index} has no assert")
        elif not names_asserted_on(check_tree) & computed:
            failures.append(f"cell {index} ignores its output; the next compared cell {check_index} asserts on none "
                            f"of what it computed or shows ({', '.join(sorted(computed)) or 'no name'})")
    return failures


def test_a_check_must_assert_on_what_the_ignored_cell_computed():
    def code(text, tags=()):
        return {"cell_type": "code", "metadata": {"tags": list(tags)} if tags else {}, "source": text}

    def notebook(*cells):
        return {"cells": list(cells)}

    train = code("# NBVAL_IGNORE_OUTPUT\nacc, loss = train(net)\nprint(acc)")
    assert unchecked_ignored_cells(notebook(train, code("ok = acc > 0.75\nprint(ok)\nassert ok"))) == []
    assert unchecked_ignored_cells(notebook(code("acc = train(net)", ["nbval-ignore-output"]),
                                            code("assert 0.75 <= acc <= 0.85"))) == []
    relu = code("%%time\n# NBVAL_IGNORE_OUTPUT\nresults['relu'] = run()")
    assert unchecked_ignored_cells(notebook(relu, code("print(1)", ["nbval-skip"]),
                                            code("assert results['relu'] > 0.8"))) == []
    assert unchecked_ignored_cells(notebook(relu, code("assert True")))
    # A check that cannot fail, or that checks something else, is not a check of the ignored cell.
    assert "asserts on none" in unchecked_ignored_cells(notebook(train, code("print(acc)\nassert True")))[0]
    assert "asserts on none" in unchecked_ignored_cells(notebook(train, code("assert net is not None")))[0]
    assert "has no assert" in unchecked_ignored_cells(notebook(train, code("print(acc > 0.75)")))[0]
    assert "no compared cell" in unchecked_ignored_cells(notebook(code("x = 1"), train))[0]
    assert unchecked_ignored_cells(notebook(code("# NBVAL_IGNORE_OUTPUT\ndef f():\n    local = 1\nplot(x)"),
                                            code("assert local == 1")))[0].endswith("(plot, x)")
    # A cell that only shows values is checked by asserting on what it shows (not on builtins or modules).
    show = code("# NBVAL_IGNORE_OUTPUT\nimport pandas as pd\nprint(f'{len(parts)} parts in {seconds:.1f} s')\n"
                "pd.DataFrame(history)")
    assert unchecked_ignored_cells(notebook(show, code("assert history[-1]['loss'] < 0.6"))) == []
    assert unchecked_ignored_cells(notebook(show, code("assert seconds > 0"))) == []
    assert unchecked_ignored_cells(notebook(show, code("assert len(pd.__version__) > 0")))


def test_one_repository_url_for_buttons_and_colab_setup():
    url = CONFIG["repository"]["url"]
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url)
    assert f"lenet-book @ git+{url}" in setup_cell_from_contributing()
    assert CONFIG["launch_buttons"]["colab_url"] == "https://colab.research.google.com"


def test_execution_report_page_is_generated_from_the_chapters():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, str(REPO / "tools" / "execution_report.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    parts = TOC.get("parts") or [TOC]
    assert any({"file": "book/execution_report"} in part["chapters"] for part in parts)


def test_names_of_figures_and_tables_are_unique_across_the_book():
    names = []
    for path in CHAPTERS + SOLUTIONS:
        for cell in load(path)["cells"]:
            figure = cell["metadata"].get("mystnb", {}).get("figure", {})
            tables = cell["metadata"].get("table", [])
            names += [figure["name"]] if "name" in figure else []
            names += [t["name"] for t in (tables if isinstance(tables, list) else [tables])]
    assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})


def test_a_table_without_a_caption_is_found():
    """The caption check above, on a markdown table with and without its 'Table:' paragraph."""
    good = "Text.\n\nTable: What the rows of this table are.\n\n| a | b |\n| --- | --- |\n| 1 | 2 |"
    bad = "Text that leads into it:\n\n| a | b |\n| --- | --- |\n| 1 | 2 |"
    assert uncaptioned_markdown_tables(good) == 0 and uncaptioned_markdown_tables(bad) == 1
    assert uncaptioned_markdown_tables(bad.replace("it:\n\n", "it:\nTable: no blank line between.\n\n")) == 1
    assert uncaptioned_markdown_tables((REPO / "book" / "execution_report.md").read_text()) == 0


def test_sanitize_file_explains_every_pattern():
    text = (REPO / "tests" / "sanitize.cfg").read_text()
    sections = re.split(r"^\[", text, flags=re.M)[1:]
    assert sections
    for section in sections:
        assert re.search(r"^#", section, re.M), f"pattern [{section.split(']')[0]}] needs a comment"


def test_the_package_code_that_chapters_show_fits_the_page():
    """Chapters display lenet_book's functions (lenet_book.source.show): their lines fit too."""
    long = [f"{path.name}:{number}" for path in sorted((REPO / "lenet_book").glob("*.py"))
            for number, line in enumerate(path.read_text().splitlines(), 1) if len(line) > MAX_COLUMNS]
    assert not long, "wrap these lines at 100 columns: " + ", ".join(long)
