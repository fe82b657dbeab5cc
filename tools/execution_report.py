"""Write book/execution_report.md from the chapters' own records: nothing on it is typed by hand.

    python tools/execution_report.py          # (re)write the page; `make book` runs this
    python tools/execution_report.py --check  # exit 1 if the committed page is out of date

tools/execute_notebooks.py stores in each chapter's metadata when, where and with which
versions its outputs were made; GPU replays (tools/gpu_check.sh) leave their per-chapter
outcome in benchmarks/results/gpu-nbval*.json, and tools/colab_check.py --record its outcome in
records/colab-check.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from execute_notebooks import chapters  # tools/ is on sys.path when a tool runs

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "book" / "execution_report.md"
GPU_REPLAYS = ROOT / "benchmarks" / "results"  # gpu-nbval*.json: one file per replay
COLAB_CHECK = ROOT / "records" / "colab-check.json"  # tools/colab_check.py --record


def title(nb: dict) -> str:
    return "".join(nb["cells"][0]["source"]).splitlines()[0].lstrip("# ").strip()


def render() -> str:
    lines = [
        "# Execution report",
        "",
        "Every output in this book comes from running its chapter top to bottom on the real",
        "Fashion-MNIST data. This page lists, for each chapter, the run whose outputs are stored.",
        "It is generated from the notebooks' metadata by `tools/execution_report.py`.",
        "",
        "| chapter | run on | device | run time | Python | torch | torchvision | d2l |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for path in chapters():
        nb = json.loads(path.read_text())
        record = nb["metadata"].get("execution")
        link = f"[{title(nb)}](../{path.relative_to(ROOT).as_posix()})"
        if not record:
            lines.append(f"| {link} | not recorded | | | | | | |")
            continue
        v = record["versions"]
        lines.append(f"| {link} | {record['date']} | {record['device']} | {record['seconds']} s | "
                     f"{record['python']} | {v['torch']} | {v['torchvision']} | {v['d2l']} |")
    lines += ["", "## Replays on a GPU", ""]
    replays = sorted(GPU_REPLAYS.glob("gpu-nbval*.json"))
    for path in replays:
        replay = json.loads(path.read_text())
        lines += [f"`tools/gpu_check.sh` replayed these with nbval on {replay['device']} "
                  f"(torch {replay['torch']}) on {replay['date']}, comparing every stored output with "
                  f"the one made on that GPU (`{path.relative_to(ROOT).as_posix()}`):", "",
                  "| chapter or test file | passed | failed | result |", "| --- | --- | --- | --- |"]
        for name, counts in replay["files"].items():
            verdict = "pass" if counts["failed"] == 0 else "FAIL"
            lines.append(f"| `{name}` | {counts['passed']} | {counts['failed']} | {verdict} |")
        lines.append("")
    if not replays:
        lines.append("No GPU replay has been recorded yet (see `tools/gpu_check.sh`).")
    lines += ["", "## Runs in a fresh, Colab-like runtime", ""]
    if COLAB_CHECK.exists():
        check = json.loads(COLAB_CHECK.read_text())
        lines += [f"`tools/colab_check.py` ran these chapters on {check['date']} (commit {check['commit']}, "
                  f"Python {check['python']}, torch {check['torch']}) the way a learner runs them on a new "
                  "Colab runtime: each alone in an empty folder, without d2l, lenet_book or the data. Its "
                  "first cell installed d2l from PyPI and lenet_book from the repository URL, and "
                  "torchvision downloaded Fashion-MNIST; that machine has no internet, so git fetched the "
                  "repository from a local clone and the download came through a local proxy. Every cell "
                  "ran, top to bottom; outputs were not compared.", "",
                  "| chapter | result | run time | installed by its first cell | files downloaded |",
                  "| --- | --- | --- | --- | --- |"]
        for name, result in check["chapters"].items():
            verdict = "pass" if result["passed"] else "FAIL"
            lines.append(f"| `{name}` | {verdict} | {result['seconds']} s | {', '.join(result['installed'])} "
                         f"| {len(result['downloaded'])} |")
    else:
        lines.append("No run has been recorded yet (see `tools/colab_check.py`).")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if the page is out of date")
    args = parser.parse_args()
    page = render()
    if args.check:
        if not PAGE.exists() or PAGE.read_text() != page:
            print(f"{PAGE.relative_to(ROOT)} is out of date: run python tools/execution_report.py")
            return 1
        return 0
    PAGE.write_text(page)
    print(f"wrote {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
