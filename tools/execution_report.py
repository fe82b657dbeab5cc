"""Write book/execution_report.md from the chapters' own records: nothing on it is typed by hand.

    python -m tools.execution_report          # (re)write the page (make report)
    python -m tools.execution_report --check  # exit 1 if the committed page is out of date (a test runs this)

It reads:
  * each chapter's metadata, where tools/execute_notebooks.py stores when, where and with which
    versions its outputs were made;
  * records/gpu-replay.json, written by tools/gpu_check.py: the nbval replay of every chapter and
    the training code's unit tests on a GPU, and records/gpu-replay-history.json, replays of
    earlier versions of the chapters, shown as history;
  * records/colab-check.json, written by ``python -m tools.colab_check --record``.
The page names chapters by their titles and a test file by the module it tests (by its file
where lenet_book has no module of that name).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # lenet_book from this checkout, installed or not: its own chapters
from lenet_book.book import chapters, solutions  # noqa: E402
from lenet_book.data import replaced_atomically  # noqa: E402

PAGE = ROOT / "book" / "execution_report.md"
RECORDS = ROOT / "records"
GPU_REPLAY = RECORDS / "gpu-replay.json"  # python -m tools.gpu_check
GPU_HISTORY = RECORDS / "gpu-replay-history.json"  # earlier replays, of older chapters
COLAB_CHECK = RECORDS / "colab-check.json"  # python -m tools.colab_check --record
REMAKE = {GPU_REPLAY: "rerun python -m tools.gpu_check", COLAB_CHECK:
          "rerun python -m tools.colab_check --record"}  # how each record is made again


class RecordError(Exception):
    """A record or chapter the page is made from cannot be read: main says which, in one line."""


def _name(path: Path) -> str:
    try:
        return path.relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


def _fix(path: Path) -> str:
    made = REMAKE.get(path)
    return f"{made}, or restore it from git" if made else "correct it, or restore it from git"


def _read(path: Path) -> dict | None:
    """The JSON object in ``path``, or None when there is none (a record not made yet); a file
    that is there but cannot be read (a broken link, a folder, empty, not JSON) is named."""
    if not path.exists():
        if os.path.islink(path):  # a broken link is not "never recorded"
            raise RecordError(f"{_name(path)} is a link to {os.readlink(path)}, which does not "
                              f"exist: point it at the record, or remove it")
        return None
    if path.is_dir():
        raise RecordError(f"{_name(path)} is a folder, not a record: remove it, or put the "
                          "record there")
    try:
        text = path.read_text(encoding="utf-8-sig")  # an editor's byte-order mark is no damage
    except (OSError, UnicodeDecodeError) as error:
        why = getattr(error, "strerror", None) or error
        raise RecordError(f"{_name(path)} cannot be read ({why}): {_fix(path)}") from None
    if not text.strip():
        raise RecordError(f"{_name(path)} is empty: {_fix(path)}")
    try:
        record = json.loads(text)
    except ValueError as error:
        raise RecordError(f"{_name(path)} is not valid JSON ({error}): {_fix(path)}") from None
    if not isinstance(record, dict):
        raise RecordError(f"{_name(path)} holds {type(record).__name__}, not a JSON object: "
                          f"{_fix(path)}")
    return record


def _reading(path: Path, what, *args):
    """``what(*args)``, with a key, list item or value that the record at ``path`` lacks named
    as a RecordError, not a traceback from the lookups."""
    try:
        return what(*args)
    except KeyError as error:
        raise RecordError(f"{_name(path)} lacks the key {error.args[0]!r} that the page needs: "
                          f"{_fix(path)}") from None
    except (TypeError, IndexError, AttributeError, ValueError) as error:
        raise RecordError(f"{_name(path)} does not hold what the page needs ({error}): "
                          f"{_fix(path)}") from None


def _shown(value) -> str:
    """A value as its record spells it (JSON), cut to 60 characters: how a message names it."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def _wrong(path: Path, where: str, what: str, value, fix: str | None = None) -> RecordError:
    return RecordError(f"{_name(path)}: {where} must be {what}, got {_shown(value)}: "
                       f"{fix or _fix(path)}")


# a line break would end the table row (or the line of history) that the value is printed in
BREAKS = re.compile(r"[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]")


def _text(path: Path, value, where: str, cell: bool = True, fix: str | None = None) -> str:
    """``value``, a string on one line; in a table cell (``cell``) without '|', which would split
    the cell in two."""
    if not isinstance(value, str):
        raise _wrong(path, where, "a string", value, fix)
    if BREAKS.search(value):
        raise _wrong(path, where, "a string on one line", value, fix)
    if cell and "|" in value:
        raise _wrong(path, where, "a string without '|' (it would split its table cell)", value, fix)
    return value


def _date(path: Path, value, where: str, fix: str | None = None) -> str:
    """``value``, a date written as the tools write it: YYYY-MM-DD."""
    if isinstance(value, str) and re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        try:
            datetime.date.fromisoformat(value)
            return value
        except ValueError:
            pass
    raise _wrong(path, where, "a date written YYYY-MM-DD", value, fix)


def _seconds(path: Path, value, where: str, fix: str | None = None):
    """``value``, a number of seconds: finite, 0 or more (a bool is no number here)."""
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or value < 0):
        raise _wrong(path, where, "a number of seconds, 0 or more", value, fix)
    return value


def _count(path: Path, value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _wrong(path, where, "a count of tests, a whole number 0 or more", value)
    return value


def _strings(path: Path, value, where: str) -> list[str]:
    if not isinstance(value, list):
        raise _wrong(path, where, "a list of strings", value)
    for index, item in enumerate(value):
        _text(path, item, f"{where}[{index}]")
    return value


def title(nb: dict) -> str:
    lines = "".join(nb["cells"][0]["source"]).splitlines()
    if not lines:
        raise ValueError("its first cell, which holds its title, is empty")
    return lines[0].lstrip("# ").strip()


def _notebook(path: Path) -> dict:
    """A chapter's JSON; a chapter that is missing or unreadable is named."""
    nb = _read(path)
    if nb is None:
        raise RecordError(f"{_name(path)}, listed in _toc.yml, does not exist: restore it from "
                          "git, or remove it from _toc.yml")
    return nb


def chapter_links() -> dict[str, str]:
    """Chapter or solutions file (notebooks/NN_topic.ipynb, notebooks/solutions/NN_topic.ipynb) ->
    a markdown link with its title, in reading order."""
    return {path.relative_to(ROOT).as_posix():
            f"[{_reading(path, title, _notebook(path))}](../{path.relative_to(ROOT).as_posix()})"
            for path in chapters() + solutions()}


def label(name: str, links: dict[str, str]) -> str:
    """How the page names a replayed file: a chapter by its title, a test file by the module it
    tests, or by its file where lenet_book has no module of that name."""
    if name in links:
        return links[name]
    if name.startswith("notebooks/"):
        return f"{short_label(name)} (a version no longer in the book)"
    module = Path(name).stem.removeprefix("test_")
    if Path(name).name.startswith("test_") and (ROOT / "lenet_book" / f"{module}.py").is_file():
        return f"unit tests of `lenet_book.{module}`"
    return f"`{name}`"  # test_lint.py, test_bad_input.py: no module of that name to point at


def short_label(name: str) -> str:
    """A replayed file in a line of history: "chapter 4", or a test file as label names it."""
    if name.startswith("notebooks/"):
        number = Path(name).name[:2].lstrip("0") or "0"
        return f"the solutions of chapter {number}" if "/solutions/" in name else f"chapter {number}"
    return label(name, {})


def outcome(counts: dict) -> str:
    total = counts["passed"] + counts["failed"]
    return "pass" if counts["failed"] == 0 else f"**fails**: {counts['failed']} of {total} differ or fail"


def table(caption: str, columns: list[str], rows: list[str]) -> list[str]:
    """A markdown table with its caption (the paragraph above it, book/_ext/output_tables.py): the
    caption, the header row, its rule, then the rows."""
    return [f"Table: {caption}", "", "| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns), *rows]


def execution_row(path: Path, link: str) -> str:
    nb = _notebook(path)
    _reading(path, _check_execution, path, nb)
    return _reading(path, _execution_row, nb, link)


def _check_execution(path: Path, nb: dict) -> None:
    """Each value of a chapter's execution record is of the kind the page shows, named if not
    (by tools/execute_notebooks.py, which writes it)."""
    record = nb["metadata"].get("execution")
    if not record:
        return
    fix = f"rerun python -m tools.execute_notebooks {_name(path)}, or restore it from git"
    where = "metadata.execution."
    versions = record["versions"]  # keys that are missing are named first, as the page needs them
    [record[key] for key in ("date", "seconds", "device", "python")]
    [versions[key] for key in ("torch", "torchvision", "d2l")]
    _date(path, record["date"], where + "date", fix)
    _seconds(path, record["seconds"], where + "seconds", fix)
    for key in ("device", "python"):
        _text(path, record[key], where + key, fix=fix)
    for key in ("torch", "torchvision", "d2l"):
        _text(path, versions[key], f"{where}versions.{key}", fix=fix)


def _execution_row(nb: dict, link: str) -> str:
    record = nb["metadata"].get("execution")
    if not record:
        # a new chapter saved from JupyterLab has none either: say how to make one
        return (f"| {link} | not recorded: store it with python -m tools.execute_notebooks, which "
                "records where and how it ran | | | | | | |")
    v = record["versions"]
    return (f"| {link} | {record['date']} | {record['device']} | {record['seconds']} s | "
            f"{record['python']} | {v['torch']} | {v['torchvision']} | {v['d2l']} |")


def executions(links: dict[str, str], paths: list[Path], what: str = "chapter") -> list[str]:
    caption = ("The run whose outputs each chapter stores." if what == "chapter"
               else "The run whose outputs each solutions page stores.")
    return table(caption, [what, "run on", "device", "run time", "Python", "torch", "torchvision", "d2l"],
                 [execution_row(path, links[path.relative_to(ROOT).as_posix()]) for path in paths])


def gpu_replay(links: dict[str, str]) -> list[str]:
    replay = _read(GPU_REPLAY)
    if replay is None:
        return ["No replay of the chapters as they are now has been recorded on a GPU yet."]
    return _reading(GPU_REPLAY, _gpu_replay, replay, links)


def _check_replay(path: Path, replay: dict, where: str = "") -> None:
    """A replay's date, device, torch and commit (in a sentence), and its counts per file, of the
    kind the page shows."""
    files = replay["files"]  # a key that is missing is named first, as the page needs it
    _date(path, replay["date"], where + "date")
    for key in ("device", "torch", "commit"):
        _text(path, replay[key], where + key, cell=False)
    for name, counts in files.items():
        _text(path, name, f"{where}files (a file's name)")
        for key in ("passed", "failed"):
            _count(path, counts[key], f"{where}files.{name}.{key}")
        _check_own_run(path, counts, f"{where}files.{name}.", GPU_RUN)


# What a check ran on, kept with a result that an earlier check made: a run over some files
# (gpu_check --chapters, colab_check CHAPTER) keeps the others' results with their own.
GPU_RUN = ("date", "device", "torch", "commit")
COLAB_RUN = ("date", "commit", "python", "torch")


def _check_own_run(path: Path, result: dict, where: str, keys: tuple[str, ...]) -> None:
    for key in keys:
        if key == "date" and key in result:
            _date(path, result[key], where + key)
        elif key in result:
            _text(path, result[key], where + key)


def _own_run(result: dict, run: dict, keys: tuple[str, ...], verb: str) -> str:
    """" (replayed on 2026-11-20, NVIDIA H200, ...)" for a result of an earlier check: its own
    date and commit, and what else differs from the check the page's sentence names."""
    shown = {"device": "on", "torch": "torch", "commit": "commit", "python": "Python"}
    own = [f"{verb} on {result['date']}"] if "date" in result else []
    own += [f"{shown[key]} {result[key]}" for key in keys[1:] if key in result and result[key] != run[key]]
    return f" ({', '.join(own)})" if own else ""


def _some_tests(replay: dict) -> dict[str, list[str]]:
    """gpu_check's "some_tests": per file of which only some tests ran (--tests FILE::TEST), those
    tests; its counts are theirs, not the whole file's."""
    some = replay.get("some_tests", {})
    if not isinstance(some, dict):
        raise _wrong(GPU_REPLAY, "some_tests", "an object of files and their tests", some)
    for name, tests in some.items():
        if not isinstance(tests, list) or not tests:
            raise _wrong(GPU_REPLAY, f"some_tests.{name}", "a list of the tests that ran", tests)
        for index, test in enumerate(tests):
            _text(GPU_REPLAY, test, f"some_tests.{name}[{index}]", cell=False)  # '|' escaped below
    return some


def _only(tests: list[str]) -> str:
    """", only some of its tests ran: test_x" for a row whose counts are those tests'."""
    return ", only some of its tests ran: " + ", ".join(test.replace("|", "\\|") for test in tests)


def _gpu_replay(replay: dict, links: dict[str, str]) -> list[str]:
    _check_replay(GPU_REPLAY, replay)
    for name, why in replay.get("no_result", {}).items():
        _text(GPU_REPLAY, why, f"no_result.{name}")
    files = replay["files"]
    some = {name: tests for name, tests in _some_tests(replay).items() if name in files}
    earlier = any(set(GPU_RUN) & set(counts) for counts in files.values())
    lines = [_what_ran(replay, links)
             + (" A row that names an earlier replay shows that replay's result: this one did not run its "
                "file." if earlier else "")
             + (" A row that says only some of its tests ran counts those tests alone, not the "
                "whole file." if some else ""), "",
             *table("The replay on a GPU: outputs that reproduced, per chapter.",
                   ["chapter or tests", "passed", "failed", "result"], [])]
    for name in list(links) + sorted(set(files) - set(links)):
        if name in files:
            counts = files[name]
            lines.append(f"| {label(name, links)} | {counts['passed']} | {counts['failed']} | {outcome(counts)}"
                         f"{_own_run(counts, replay, GPU_RUN, 'replayed')}"
                         f"{_only(some[name]) if name in some else ''} |")
        elif name in replay.get("no_result", {}):  # gpu_check writes it; a replay may lack it
            why = replay["no_result"][name]
            lines.append(f"| {label(name, links)} | | | **no result**: "
                         + ("the replay's time ran out first |" if why == "out of time"
                            else f"its run ended ({why}) before any test reported |"))
        elif _solutions(name):  # gpu_check replays chapters(); a solutions page only if named
            lines.append(f"| {label(name, links)} | | | not replayed: gpu_check replays the chapters "
                         "unless --chapters names it |")
        else:
            lines.append(f"| {label(name, links)} | | | not in this replay: a narrower run, or added since |")
    return lines


# The unit test files that hold tests only a GPU runs (skipped on the CPU), and what those test.
GPU_ONLY = {"tests/test_train.py": "the CUDA-graph epochs", "tests/test_fast.py": "the CUDA-graph epochs",
            "tests/test_fused.py": "the fused step"}


def _what_ran(replay: dict, links: dict[str, str]) -> str:
    """The sentence that says what this replay ran, from its record: a narrower run (gpu_check
    --chapters, --tests) replayed fewer chapters, or ran other tests, than a whole one."""
    from tools.gpu_check import TRAINING_TESTS

    own = [name for name, counts in replay["files"].items() if not set(GPU_RUN) & set(counts)]
    pages = [name for name in own if name.startswith("notebooks/")]
    replayed = [name for name in pages if not _solutions(name)]
    book = [name for name in links if not _solutions(name)]
    every = bool(book) and set(book) <= set(replayed)
    shown = (["the chapters"] if every else [short_label(name) for name in replayed]) + [
        short_label(name) for name in pages if _solutions(name)]
    run = f"on {replay['device']} (torch {replay['torch']}, commit {replay['commit']})"
    tests = [name for name in own if not name.startswith("notebooks/")]
    whole = set(TRAINING_TESTS) <= set(tests)
    names = _listed((["the unit tests of the training code"] if whole else [])
                    + [f"the {shown}" if shown.startswith("unit tests") else f"the tests in {shown}"
                       for name in tests if not (whole and name in TRAINING_TESTS)
                       for shown in [label(name, {})]])
    needing = list(dict.fromkeys(GPU_ONLY[name] for name in tests if name in GPU_ONLY))
    gpu = f", including those that need a GPU ({', '.join(needing)})" if needing else ""
    if not pages:  # a run of some unit tests alone (--chapters with no names)
        return f"On {replay['date']} {names or 'nothing'} ran {run}{gpu}; no chapter was replayed."
    plural = every or len(shown) > 1 or shown[0].startswith("the solutions")
    were = "were" if plural else "was"
    return (f"On {replay['date']} {_listed(shown)} {were} replayed with nbval {run}, comparing every "
            "stored output with the one made on that GPU"
            + (f", and {names} ran there too{gpu}." if tests else "; no unit test ran there."))


def _listed(words: list[str]) -> str:
    """"a", "a and b", "a, b and c" ("" for none)."""
    return "" if not words else words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def gpu_history(links: dict[str, str]) -> list[str]:
    history = _read(GPU_HISTORY)
    if history is None:
        return []
    return _reading(GPU_HISTORY, _gpu_history, history)


def _gpu_history(history: dict) -> list[str]:
    lines = ["", "Earlier replays ran on older versions of the chapters and of the code, so they say nothing "
             "about the chapters as they are now; they are kept as history:", ""]
    for index, replay in enumerate(history["replays"]):
        _check_replay(GPU_HISTORY, replay, f"replays[{index}].")
        if "note" in replay:
            _text(GPU_HISTORY, replay["note"], f"replays[{index}].note", cell=False)
        if any(c["failed"] for c in replay["files"].values()) and not replay.get("note"):
            raise RecordError(f"a replay of {replay['date']} has failures and no note saying what came of them: "
                             f"add one to {GPU_HISTORY.relative_to(ROOT)}")
        parts = [f"{short_label(name)}: {counts['passed']} passed"
                 + (f", {counts['failed']} failed" if counts["failed"] else "")
                 for name, counts in replay["files"].items()]
        lines.append(f"- {replay['date']}, {replay['device']} (torch {replay['torch']}, commit {replay['commit']}): "
                     f"{'; '.join(parts)}. {replay.get('note', '')}".rstrip())
    return lines


def colab_check(links: dict[str, str]) -> list[str]:
    check = _read(COLAB_CHECK)
    if check is None:
        return ["No run has been recorded yet."]
    return _reading(COLAB_CHECK, _colab_check, check, links)


def _colab_check(check: dict, links: dict[str, str]) -> list[str]:
    [check[key] for key in ("date", "commit", "python", "torch", "chapters")]  # missing: named first
    _date(COLAB_CHECK, check["date"], "date")
    for key in ("commit", "python", "torch"):
        _text(COLAB_CHECK, check[key], key, cell=False)
    # colab_check runs the chapters only; a solutions page has its chapter's stem, so its row
    # would show the chapter's result as its own
    chapter_names = [name for name in links if not _solutions(name)]
    for name in chapter_names:
        result = check["chapters"].get(Path(name).stem)
        if result is not None:
            _check_colab_result(result, f"chapters.{Path(name).stem}.")
    if "chapters_in_book" in check:
        _strings(COLAB_CHECK, check["chapters_in_book"], "chapters_in_book")
    earlier = any(set(COLAB_RUN) & set(check["chapters"].get(Path(name).stem) or {})
                  for name in chapter_names)
    lines = [f"On {check['date']} (commit {check['commit']}, Python {check['python']}, torch {check['torch']})"
             + (", and in the earlier checks that their rows name for the others," if earlier else "")
             + " each chapter ran the way a learner runs it on a new Colab runtime: alone in an empty folder, "
             "without d2l, lenet_book or the data. Its first cell installed d2l from PyPI and lenet_book "
             "from the repository URL, and torchvision downloaded Fashion-MNIST; that machine has no "
             "internet, so git fetched the repository from a local clone and the download came through a "
             "local proxy. Every cell ran, top to bottom; outputs were not compared."
             + (" The solutions pages were not run: the check runs the chapters only."
                if len(chapter_names) < len(links) else ""), ""]
    return lines + table("Each chapter run as on a new Colab runtime.",
                         ["chapter", "result", "run time", "installed by its first cell", "files downloaded"],
                         [(f"| {link} | not run: the check runs the chapters only | | | |" if _solutions(name)
                           else colab_row(check["chapters"].get(Path(name).stem), link, check,
                                          Path(name).stem in check["chapters"] or _added_since(check, name)))
                          for name, link in links.items()])


def _solutions(name: str) -> bool:
    """Whether ``name`` (notebooks/...ipynb) is a solutions page, not a chapter."""
    return "/solutions/" in name


def _check_colab_result(result: dict, where: str) -> None:
    """A chapter's result in records/colab-check.json, of the kind the page shows."""
    [result[key] for key in ("passed", "seconds", "installed", "downloaded")]  # missing: named first
    if not isinstance(result["passed"], bool):
        raise _wrong(COLAB_CHECK, where + "passed", "true or false", result["passed"])
    _seconds(COLAB_CHECK, result["seconds"], where + "seconds")
    _strings(COLAB_CHECK, result["installed"], where + "installed")
    _strings(COLAB_CHECK, result["downloaded"], where + "downloaded")
    _check_own_run(COLAB_CHECK, result, where, COLAB_RUN)


def _added_since(check: dict, name: str) -> bool:
    """Whether the chapter or solutions page ``name`` (notebooks/...ipynb), if the record lacks
    it, was added to the book after the check. A record of colab_check lists the chapters of its
    day; for an older record, git tells whether the file was in the check's commit. Without git
    such a record is read as before: as a check of the whole book of its day."""
    if "chapters_in_book" in check:
        return Path(name).stem not in check["chapters_in_book"]
    return _in_commit(check["commit"], name) is not True


def _in_commit(commit: str, name: str) -> bool | None:
    """Whether ``name`` was in this checkout's git commit ``commit``; None where git cannot tell
    (no git, no checkout, a commit it does not have)."""
    revision = commit.removesuffix("-dirty")  # git describe --dirty marks the work tree, not the commit
    try:
        def git(*args):
            return subprocess.run(["git", "-c", "safe.directory=*", *args], cwd=ROOT,
                                  capture_output=True, text=True, timeout=30)
        top = git("rev-parse", "--show-toplevel")
        if (top.returncode or Path(top.stdout.strip()).resolve() != ROOT.resolve()
                or git("cat-file", "-e", f"{revision}^{{commit}}").returncode):
            return None
        return git("cat-file", "-e", f"{revision}:{name}").returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return None


def colab_row(result: dict | None, link: str, check: dict | None = None, added: bool = True) -> str:
    if result is None:
        return (f"| {link} | not run: added to the book after this check | | | |" if added
                else f"| {link} | not in this record | | | |")
    verdict = "pass" if result["passed"] else "**fails**: a cell raised an error or a check failed"
    verdict += _own_run(result, check, COLAB_RUN, "checked") if check else ""
    return (f"| {link} | {verdict} | {result['seconds']} s | {', '.join(result['installed'])} "
            f"| {len(result['downloaded'])} |")


def render() -> str:
    links = chapter_links()
    lines = ["# Execution report", "",
             "Every output in this book comes from running its chapter top to bottom on the real",
             "Fashion-MNIST data. This page lists, for each chapter, the run whose outputs are stored,",
             "and the checks that ran it elsewhere. It is generated from the chapters' own records;",
             "nothing on it is typed by hand.", "",
             *executions(links, chapters()), "",
             "The worked solutions of the exercises are stored executed in the same way:", "",
             *executions(links, solutions(), "solutions"), "",
             "## Replays on a GPU", "", *gpu_replay(links), *gpu_history(links),
             "", "## Runs in a fresh, Colab-like runtime", "", *colab_check(links)]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if the page is out of date")
    args = parser.parse_args()
    if not chapters():  # a page of empty tables would be written, or checked, without a word
        from lenet_book.book import _no_chapters
        print(_no_chapters(), file=sys.stderr)
        return 1
    try:
        page = render()
    except RecordError as error:  # one line naming the file, not a traceback
        print(f"{parser.prog}: error: {error}" + ("" if args.check else "; nothing was written"),
              file=sys.stderr)
        return 1
    if args.check:
        if not PAGE.exists() or PAGE.read_text() != page:
            print(f"{PAGE.relative_to(ROOT)} is out of date: run make report (python -m tools.execution_report)")
            return 1
        return 0
    try:  # whole or not at all: a full disk or a size limit never leaves half a page
        with replaced_atomically(Path(os.path.realpath(PAGE)), "w", encoding="utf-8") as f:
            f.write(page)
    except (OSError, ValueError) as error:
        sys.exit(f"cannot write {PAGE.relative_to(ROOT)} "
                 f"({getattr(error, 'strerror', None) or error}); nothing was changed")
    print(f"wrote {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
