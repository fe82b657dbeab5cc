"""Code hygiene, as `make test` and the pre-commit hooks (.pre-commit-config.yaml) check it: ruff
(its settings in pyproject.toml; it reads the package, tools, tests, benchmarks and the code cells
of every notebook) and codespell over the prose and code. codespell reads a notebook's cells, not
its outputs: base64 images are not words."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def ruff(*paths: str | Path, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "ruff"), "check", "--no-cache", *map(str, paths)], cwd=cwd,
                          capture_output=True, text=True)


def codespell(*paths: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "codespell"), "--toml", str(REPO / "pyproject.toml"), *map(str, paths)],
                          cwd=REPO, capture_output=True, text=True)


def notebook_sources(folder: Path) -> list[Path]:
    """Each notebook's cells as a text file in ``folder`` (same relative path, .txt), outputs left out."""
    written = []
    for notebook in sorted(REPO.glob("notebooks/**/*.ipynb")):
        cells = json.loads(notebook.read_text())["cells"]
        text = "\n\n".join("".join(cell["source"]) for cell in cells)
        target = folder / notebook.relative_to(REPO).with_suffix(".txt")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        written.append(target)
    return written


def test_ruff_finds_nothing():
    result = ruff(".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_codespell_finds_no_typo_in_the_files_or_the_notebooks_cells(tmp_path):
    files = codespell(".")  # pyproject.toml's [tool.codespell] skips the notebooks' outputs and data
    assert files.returncode == 0, files.stdout + files.stderr
    cells = codespell(*notebook_sources(tmp_path))
    assert cells.returncode == 0, cells.stdout.replace(str(tmp_path) + "/", "") + cells.stderr


def test_both_checks_can_fail(tmp_path):
    sloppy = tmp_path / "sloppy.py"
    sloppy.write_text("import os\n\n# " + "te" + "h reci" + "eved value\nx = 1\n")  # split: this file stays clean
    assert ruff(sloppy, cwd=tmp_path).returncode != 0, "ruff missed an unused import"
    assert codespell(sloppy).returncode != 0, "codespell missed 'teh' and 'recieved'"


def test_pre_commit_runs_the_same_checks():
    hooks = [hook for repo in yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text())["repos"]
             for hook in repo["hooks"]]
    entries = " ".join(hook.get("entry", "") for hook in hooks)
    assert "tests/test_lint.py" in entries and "tests/test_workflows.py" in entries
