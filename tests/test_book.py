"""Specification of the book's shape: what every chapter must be before nbval replays it.

nbval checks that the stored outputs reproduce; these tests check what nbval cannot: that the
chapters are the ones in the table of contents, stored executed and clean, start and end as
CONTRIBUTING.md says, and that every ignored output is followed by a check.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
TOC = yaml.safe_load((REPO / "_toc.yml").read_text())
CONFIG = yaml.safe_load((REPO / "_config.yml").read_text())
CHAPTERS = [REPO / f"{entry['file']}.ipynb" for entry in TOC["chapters"] if entry["file"].startswith("notebooks/")]
MACHINE_PATH = re.compile(r"(site-packages/|/lib/python3\.\d+/|/home/[\w.-]+/|/root/|/tmp/[\w.-]+|/work/)")


def setup_cell_from_contributing() -> str:
    text = (REPO / "CONTRIBUTING.md").read_text()
    block = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    return "\n".join(line[3:] if line.startswith("   ") else line for line in block.splitlines()).strip()


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def source(cell: dict) -> str:
    return "".join(cell["source"])


def code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code" and source(c).strip()]


def test_toc_lists_every_chapter_in_numbered_order():
    on_disk = sorted((REPO / "notebooks").glob("*.ipynb"))
    assert CHAPTERS == on_disk, "every notebook in notebooks/ is a chapter listed in _toc.yml, in order"
    numbers = [int(re.fullmatch(r"(\d\d)_[a-z0-9_]+\.ipynb", path.name).group(1)) for path in CHAPTERS]
    assert numbers[0] == 1 and numbers == sorted(set(numbers)), f"chapters numbered in reading order: {numbers}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
class TestChapter:
    def test_starts_with_a_title_then_the_colab_setup_cell(self, path):
        nb = load(path)
        first = nb["cells"][0]
        assert first["cell_type"] == "markdown" and re.match(r"# \S", source(first))
        assert source(code_cells(nb)[0]).strip() == setup_cell_from_contributing()

    def test_ends_with_exercises(self, path):
        markdown = [source(c) for c in load(path)["cells"] if c["cell_type"] == "markdown"]
        assert re.search(r"^## Exercises$", markdown[-1], re.M)

    def test_is_stored_executed_in_order_without_errors(self, path):
        cells = code_cells(load(path))
        counts = [c["execution_count"] for c in cells]
        assert counts == list(range(1, len(cells) + 1)), "run it from a fresh kernel, top to bottom"
        for cell in cells:
            errors = [o for o in cell["outputs"] if o["output_type"] == "error"]
            assert not errors or "raises-exception" in cell["metadata"].get("tags", [])

    def test_outputs_hold_no_machine_paths(self, path):
        for index, cell in enumerate(code_cells(load(path))):
            match = MACHINE_PATH.search(json.dumps(cell["outputs"]))
            assert not match, f"code cell {index} prints a machine path: {match.group(0)}"

    def test_metadata_is_clean_and_records_the_run(self, path):
        nb = load(path)
        assert set(nb["metadata"]) == {"kernelspec", "language_info", "execution"}
        record = nb["metadata"]["execution"]
        assert set(record) == {"date", "seconds", "device", "python", "versions"}, "store it with tools/execute_notebooks.py"
        for cell in nb["cells"]:
            assert set(cell["metadata"]) <= {"tags"}

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
        cells = code_cells(load(path))
        for index, cell in enumerate(cells):
            if source(cell).lstrip().startswith("# NBVAL_IGNORE_OUTPUT"):
                later = [source(c) for c in cells[index + 1:]
                         if not source(c).lstrip().startswith("# NBVAL_IGNORE_OUTPUT")]
                assert later and "assert" in later[0], (
                    f"code cell {index} ignores its output: the next compared cell must assert the result")


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
    assert {"file": "book/execution_report"} in TOC["chapters"]


def test_sanitize_file_explains_every_pattern():
    text = (REPO / "tests" / "sanitize.cfg").read_text()
    sections = re.split(r"^\[", text, flags=re.M)[1:]
    assert sections
    for section in sections:
        assert re.search(r"^#", section, re.M), f"pattern [{section.split(']')[0]}] needs a comment"
