"""Every GPU check of the book in one run, on a machine with an NVIDIA GPU and PyTorch, even offline.

    python3 -m tools.gpu_check                 # from the repository root (or: bash tools/gpu_check.sh)
    python3 -m tools.gpu_check --no-bench      # only the tests and the replay
    python3 -m tools.gpu_check --chapters notebooks/04_fast_training.ipynb --tests tests/test_fused.py

What a machine without network lacks it takes from .gpu/ (ignored by git; see "GPU checks" in
README.md): .gpu/wheels/*.whl are installed into a folder on PYTHONPATH, and the data is prepared
from .gpu/data/*.gz (without .gpu/data, from where ``python -m lenet_book.data prepare`` looks).

1. the unit tests of the code that trains (``TRAINING_TESTS``; their CUDA-only tests run here)
   and the nbval replay of every chapter (``lenet_book.book.chapters``), with the GPU visible:
   one pytest process per chapter and one for the tests, side by side (``--parallel``). Their
   outcome per file goes to records/gpu-replay.json (device, torch, commit, date, and per file
   the tests or cells passed and failed), which the execution report shows; a run in which no
   file reported leaves the earlier record as it was (the record is printed instead), and a
   narrower run (--chapters, --tests) keeps the earlier results of the files it did not run,
   each with the date, device, torch and commit of the replay it came from (a record that cannot
   be read as a replay is therefore refused before anything runs); a file of which only some
   tests ran (--tests FILE::TEST) is listed under "some_tests" with those tests, and the report
   says so;
2. then, alone on the GPU, the speed benchmark ``benchmarks/train_speed.py --device cuda`` with
   its default variants, 3 interleaved repeats (``--bench-repeats``), into
   benchmarks/results/gpu-<device>.json, which chapter 4 renders.
Each step has a time limit (``--test-timeout``, ``--bench-timeout``: about 7 minutes in all
with the set-up on an H200), so that a slow step cannot take the other's time. The commit
recorded is ``git describe --always --dirty``, or $BOOK_COMMIT where the copy has no git.
With $OUT set (or --out), the result files are also copied there under the same paths, with
the logs and the JUnit XML, so that they come back from a lent machine: copy them into the
checkout to keep them. The arguments are checked first, before the GPU is looked for, so that a
mistake (a misspelt file, --parallel 0, an --out that is a file) shows on any machine.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from lenet_book.book import chapters, commit, solutions
from lenet_book.data import replaced_atomically

ROOT = Path(__file__).resolve().parents[1]
TRAINING_TESTS = ["tests/test_train.py", "tests/test_fast.py", "tests/test_fused.py", "tests/test_data.py"]
REPLAY_RECORD = ROOT / "records" / "gpu-replay.json"
WHEELS, DATA = ROOT / ".gpu" / "wheels", ROOT / ".gpu" / "data"


def install_wheels(env: dict) -> None:
    """pip-install .gpu/wheels/*.whl (no index, no dependencies) into a folder put on PYTHONPATH."""
    wheels = sorted(WHEELS.glob("*.whl"))
    if not wheels:
        return
    target = Path(tempfile.mkdtemp(prefix="gpu-check-site-"))
    if subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                       "--no-cache-dir", "--target", str(target), *map(str, wheels)]).returncode:
        sys.exit(f"pip could not install the wheels in {WHEELS.relative_to(ROOT)} (its message is above): they "
                 "must match this machine's Python; README.md, \"GPU checks\", shows how to download them.")
    env["PYTHONPATH"] = os.pathsep.join([str(target), env["PYTHONPATH"]])
    print(f"installed {len(wheels)} wheels from {WHEELS.relative_to(ROOT)}", flush=True)


def file_of(case: ET.Element) -> str:
    """The test file or chapter a JUnit test case belongs to, as a path from the repository root."""
    classname = case.get("classname", "")
    if ".ipynb" in classname:  # nbval: "notebooks.04_fast_training.ipynb"
        return classname.replace(".", "/", 1)
    # pytest: "tests.test_train" or "tests.test_train.TestClass"
    return "/".join(classname.split(".")[:2]) + ".py"


def summarize_junit(xml: Path) -> dict:
    """Per file: how many tests (or nbval cells) passed and failed; skipped ones are left out."""
    files = collections.defaultdict(lambda: {"passed": 0, "failed": 0})
    for case in ET.parse(xml).iter("testcase"):
        if case.find("skipped") is None:
            failed = case.find("failure") is not None or case.find("error") is not None
            files[file_of(case)]["failed" if failed else "passed"] += 1
    return dict(sorted(files.items()))


def replay_record(xmls: list[Path], groups: dict[str, list[str]], seconds: float, outcome: dict) -> dict:
    """records/gpu-replay.json: what ran where, and per file what passed. A file that was asked
    for but left no result is listed under "no_result" with the reason: its run was stopped when
    the time ran out, or it ended (with that exit status) before any test reported."""
    import torch

    files = {}
    for xml in xmls:
        if xml.exists():
            files.update(summarize_junit(xml))
    no_result = {name: ("out of time" if isinstance(outcome.get(job), str) else f"exit {outcome.get(job)}")
                 for job, names in groups.items() for name in names
                 if not any(_reported(name, file) for file in files)}
    return {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "commit": commit(),
            "date": datetime.date.today().isoformat(), "seconds": round(seconds),
            "files": dict(sorted(files.items())), "no_result": no_result}


def run_jobs(jobs: dict[str, list[str]], env: dict, limit: int, work: Path, parallel: int) -> dict:
    """Run the commands, at most ``parallel`` at a time, each with its output in work/<job>.log;
    stop every one still running ``limit`` seconds after the start (with what it started: nbval's
    kernels). Returns per job its exit status ("timed out" or "not started" where it has none)."""
    pending, running, outcome = list(jobs.items()), {}, {}
    start = time.perf_counter()
    while pending or running:
        while pending and len(running) < parallel:
            name, command = pending.pop(0)
            log = (work / f"{slug(name)}.log").open("w")
            running[name] = (subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                              start_new_session=True), log)
            print(f"[{time.perf_counter() - start:4.0f} s] started {name}", flush=True)
        for name, (process, log) in list(running.items()):
            if process.poll() is not None:
                log.close()
                outcome[name] = process.returncode
                del running[name]
                print(f"[{time.perf_counter() - start:4.0f} s] {name}: exit {process.returncode}", flush=True)
        if time.perf_counter() - start > limit:
            for name, (process, log) in running.items():
                os.killpg(process.pid, 9)
                process.wait()
                log.close()
                outcome[name] = "timed out"
                print(f"[{limit} s] {name}: stopped, out of time", flush=True)
            outcome.update((name, "not started") for name, _ in pending)
            break
        time.sleep(0.5)
    return outcome


def slug(name: str) -> str:
    """A file name part for a job or a device: "NVIDIA H200" -> "h200", "tests/test_x.py" -> "tests-test-x-py"."""
    words = re.sub(r"^NVIDIA\s+", "", name).lower()
    return re.sub(r"[^a-z0-9]+", "-", words).strip("-")


_AT_LEAST_ONE = {"parallel": "the number of pytest processes run at a time",
                 "test_timeout": "the seconds given to the tests and the replay",
                 "bench_timeout": "the seconds given to the benchmark (--no-bench skips it)",
                 "bench_repeats": "the repeats of every benchmark variant (--no-bench skips the benchmark)"}


def _given_file(parser: argparse.ArgumentParser, option: str, text: str) -> str:
    """A --tests or --chapters entry as pytest gets it (from the repository root, where the jobs
    run), or a parser error saying what is wrong: a misspelt file would only fail on the GPU
    machine, after the set-up, as a record of nothing."""
    name, separator, node = text.partition("::")  # pytest also takes file::test
    chapter = option == "--chapters"
    if not name:
        example = "notebooks/04_fast_training.ipynb" if chapter else TRAINING_TESTS[0]
        parser.error(f"{option} '{text}' names no file; give a path, e.g. {option} {example}; "
                     "nothing was run")
    if name.startswith("~") and not os.path.lexists(name):
        parser.error(f"{option} {text} starts with '~', which Python does not expand to the home folder; "
                     f"write the path in full, e.g. {option} {os.path.expanduser(name)}; nothing was run")
    path = Path(name)
    found = next((p for p in ([path] if path.is_absolute() else [ROOT / path, Path.cwd() / path])
                  if p.exists()), None)
    # a name alone, as colab_check takes it: 04_fast_training, solutions/04_fast_training (the
    # solutions page, not the chapter), test_fast (tests/test_fast.py)
    named = _named(chapter, path)
    if found is None and named:
        found = next((p for p in named if p.stem == path.name.removesuffix(path.suffix)
                      and path.suffix in ("", p.suffix)), None)
    if found is None:
        known = [p.relative_to(ROOT).as_posix() for p in _named(chapter, None)]
        close = difflib.get_close_matches(path.as_posix(), known, n=1, cutoff=0.8)
        if named and not close:  # a misspelt name alone: compared with the names of its kind
            stems = {p.stem: p.relative_to(ROOT).as_posix() for p in named}
            close = [stems[stem] for stem in difflib.get_close_matches(
                path.name.removesuffix(path.suffix), list(stems), n=1, cutoff=0.6)]
        parser.error(f"{option} {text}: there is no such file (looked from {ROOT}"
                     + (f" and {Path.cwd()}" if Path.cwd() != ROOT else "")
                     + (f"; the closest is {close[0]}" if close else "") + "); nothing was run")
    if chapter and not (found.is_file() and found.suffix == ".ipynb"):
        parser.error(f"{option} {text} is {'a folder' if found.is_dir() else 'not a notebook'}: a chapter is "
                     "an .ipynb file, e.g. --chapters notebooks/04_fast_training.ipynb (leave --chapters "
                     "out for every chapter); nothing was run")
    if not chapter and found.is_file() and found.suffix == ".ipynb":  # else replayed twice at once
        solutions = found.parent.name == "solutions"
        parser.error(f"{option} {text} is {'a solutions page' if solutions else 'a chapter'}, not a unit "
                     f"test file: a notebook goes to --chapters (--chapters "
                     f"{'solutions/' if solutions else ''}{found.stem}), which replays it with nbval; "
                     "nothing was run")
    if not chapter and found.is_file() and found.suffix != ".py":
        parser.error(f"{option} {text} is not a test file (.py): give test files or folders, e.g. --tests "
                     f"{TRAINING_TESTS[0]}; nothing was run")
    full = _from_root(Path(os.path.abspath(found)))
    # as a path from the root, the name the record gives its results (./x and /abs/x are the same file)
    shown = full.relative_to(ROOT).as_posix() if full.is_relative_to(ROOT) else str(full)
    return shown + separator + node


def _named(chapter: bool, path: Path | None) -> list[Path]:
    """The files a --chapters (``chapter``) or --tests entry may name by its name alone: the
    chapters, or with solutions/ the solutions pages, or the tests/test_*.py files; none where
    ``path`` is not such a name. With ``path`` None, all of them, for a suggestion."""
    if path is None:
        return chapters() + solutions() if chapter else sorted((ROOT / "tests").glob("test_*.py"))
    if chapter and path.parts[:-1] == ("solutions",):
        return solutions()
    if len(path.parts) != 1:
        return []
    return chapters() if chapter else sorted((ROOT / "tests").glob("test_*.py"))


def _given_test(parser: argparse.ArgumentParser, text: str) -> None:
    """A --tests file::test checked cheaply (no collection): each name of the node id, before a
    parametrized id's '[', is defined in the file, since pytest would only say 'not found' on the
    GPU machine, after the set-up, as a record of nothing."""
    name, separator, node = text.partition("::")
    path = Path(name) if Path(name).is_absolute() else ROOT / name
    if not separator or path.suffix != ".py" or not path.is_file():  # a notebook's cells, or a folder
        return
    source = path.read_text(encoding="utf-8", errors="replace")
    parts = node.split("::")
    for index, part in enumerate(parts):
        wanted = part.partition("[")[0]
        if wanted and re.search(rf"^[ \t]*(?:(?:async[ \t]+)?def|class)[ \t]+{re.escape(wanted)}\b"
                                rf"|^{re.escape(wanted)}[ \t]*=", source, re.MULTILINE):
            continue
        known = sorted(set(re.findall(r"^[ \t]*(?:(?:async[ \t]+)?def|class)[ \t]+((?:test|Test)\w*)",
                                      source, re.MULTILINE)))
        close = difflib.get_close_matches(wanted, known, n=1, cutoff=0.6)
        what = f"no test named '{wanted}' (no def or class {wanted} in it)" if wanted else "an empty test name"
        parser.error(f"--tests {text}: {name} has {what}"
                     + (f"; did you mean {'::'.join([name, *parts[:index], close[0]])}?" if close else
                        f"; give a test of it, e.g. {name}::{known[0]}, or the file alone" if known else "")
                     + "; nothing was run")


def _out_folder(parser: argparse.ArgumentParser, option: str, text: str | None) -> Path | None:
    """--out (or $OUT) checked before any work: it is made and filled only at the very end."""
    if text is None:
        return None
    if not text:  # Path("") would be the current folder
        parser.error(f"{option} is empty (''): give a folder for the copies of the results, e.g. "
                     f"{option} gpu-results, or leave it out; nothing was run")
    from benchmarks._options import _not_local, _white_space
    from tools.export_training_subset import _too_long

    problem = _not_local(option, text) or _white_space(option, text)
    if problem:  # OUT=' ' or OUT=gs://b would be a local folder, made only at the very end
        parser.error(f"{problem}; nothing was run")
    problem = _too_long(Path(text))
    if problem:  # pathlib's is_dir() raises on it
        parser.error(f"{option} {text}: {problem}; give a shorter {option}; nothing was run")
    if text.startswith("~") and not os.path.lexists(text):
        parser.error(f"{option} {text} starts with '~', which Python does not expand to the home folder "
                     f"(it would name a folder called '~' here); write the path in full, e.g. {option} "
                     f"{os.path.expanduser(text)}; nothing was run")
    out = Path(text)
    if os.path.lexists(out) and not out.is_dir():
        parser.error(f"{option} {text} is a file, not a folder: the results and logs are copied into a "
                     "folder, which is made if needed; give a new or existing folder (or move that file "
                     "away first); nothing was run")
    above = next((folder for folder in out.absolute().parents if os.path.lexists(folder)), None)
    if above is not None and not above.is_dir():
        parser.error(f"{option} {text}: {above} is a file, not a folder; give another folder; "
                     "nothing was run")
    if Path(os.path.realpath(out)) == ROOT:  # each copy would be the file itself
        parser.error(f"{option} {text} is the repository itself, where the results are written anyway; "
                     f"give another folder, e.g. {option} gpu-results, or leave it out; nothing was run")
    nearest = out if out.is_dir() else above
    if nearest is not None and not os.access(nearest, os.W_OK | os.X_OK):
        parser.error(f"{option} {text}: {nearest} is not writable here; give a folder you can write "
                     "in; nothing was run")
    return out


RUN = ("date", "device", "torch", "commit")  # what a replay ran on: the record's, or a file's own


def _in_the_record(entry: str) -> str:
    """A --tests or --chapters file or folder as the record names files: relative to the
    repository's root, without './' (pytest takes ./tests/x.py and /abs/.../tests/x.py too)."""
    if not entry:
        return entry
    path = Path(os.path.normpath(entry))
    if path.is_absolute():
        path = _from_root(path)
        if path.is_relative_to(ROOT):
            path = path.relative_to(ROOT)
    return path.as_posix()


def _from_root(path: Path) -> Path:
    """An absolute path into the repository reached through a link (a home folder that links
    elsewhere) as the path below ROOT, which is resolved; any other path as it is."""
    if path.is_relative_to(ROOT):
        return path
    real = Path(os.path.realpath(path))
    return real if real.is_relative_to(ROOT) else path


def _covers(asked: str, name: str) -> bool:
    """Whether the --tests or --chapters entry ``asked`` (a file or folder) ran the whole file
    ``name`` of a record; a file::test runs only some of its tests (see _some_tests)."""
    if "::" in asked:
        return False
    asked = _in_the_record(asked.rstrip("/"))
    return asked in ("", ".") or name == asked or name.startswith(asked + "/")


def _reported(entry: str, name: str) -> bool:
    """Whether the file ``name``, which reported results, is the entry's (a whole file, a file
    under a folder, or the file of a file::test)."""
    file, _, node = entry.partition("::")
    return _in_the_record(file) == name if node else _covers(entry, name)


def _some_tests(files: dict, asked: list[str]) -> dict[str, list[str]]:
    """Per file of this run's ``files`` that no entry ran whole, the tests the file::test entries
    ran of it: its counts are those tests', not the file's."""
    some = {}
    for name in files:
        if not any(_covers(given, name) for given in asked):
            nodes = [node for given in asked for file, _, node in [given.partition("::")]
                     if node and _in_the_record(file) == name]
            if nodes:
                some[name] = nodes
    return some


def _shown(path: Path) -> str:
    """A path as the messages name it: from the repository root where it is inside."""
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)


def _earlier(parser: argparse.ArgumentParser) -> dict | None:
    """The replay already in records/gpu-replay.json (None if there is none), read before anything
    runs: its results of the files this run does not run are kept, so a record that cannot be read
    as a replay is refused, not replaced by this run's files alone."""
    if not REPLAY_RECORD.exists():  # a link to a file not made yet is written through
        return None
    fix = (f"nothing was run: restore it (git checkout -- {_shown(REPLAY_RECORD)}) or move it away, "
           "and run again")
    text = ""
    try:
        text = REPLAY_RECORD.read_text(encoding="utf-8-sig")  # an editor's BOM is no damage
        if not text.strip():  # an empty file holds nothing to lose
            return None
        earlier = json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as error:
        conflict = (f" (it holds git's conflict markers <<<<<<<: keep one side, e.g. git checkout --theirs -- "
                    f"{_shown(REPLAY_RECORD)})" if "\n<<<<<<< " in f"\n{text}" else "")
        parser.error(f"{_shown(REPLAY_RECORD)} cannot be read as a replay record of gpu_check{conflict} "
                     f"({getattr(error, 'strerror', None) or error}): the earlier results of the files "
                     f"this run does not run would be lost; {fix}")
    if not isinstance(earlier, dict):
        problem = f"it is {type(earlier).__name__}, not an object"
    elif "files" not in earlier and set(earlier) <= {*RUN, "seconds", "no_result", "some_tests"}:
        return earlier  # a replay with no result in it to keep or to lose
    elif "files" not in earlier:
        problem = ("it has no files but holds "
                   + ", ".join(sorted(set(earlier) - {*RUN, "seconds", "no_result", "some_tests"})))
    elif not isinstance(earlier["files"], dict):
        problem = f"its files are {type(earlier['files']).__name__}, not an object"
    else:
        problem = next((f"its file {name} is {type(counts).__name__}, not an object"
                        for name, counts in earlier["files"].items() if not isinstance(counts, dict)), None)
        problem = problem or next(  # a file's own run, or else the record's
            (f"the {key} of its file {name} is {counts.get(key, earlier.get(key))!r}, not text"
             if key in counts or key in earlier else f"it has no {key} for its file {name}"
             for name, counts in earlier["files"].items() for key in RUN
             if not isinstance(counts.get(key, earlier.get(key)), str)), None)
    if problem:
        parser.error(f"{_shown(REPLAY_RECORD)} is not a replay record of gpu_check ({problem}; a record has "
                     f"{', '.join(RUN)} and files): the earlier results of the files this run does not run "
                     f"would be lost; {fix}")
    return earlier


def _with_earlier(record: dict, groups: dict[str, list[str]], earlier: dict | None) -> dict:
    """``record`` with the results that ``earlier`` (records/gpu-replay.json, read by _earlier
    before the run) holds for the files this run did not run, each with the replay it came from
    where that differs from this one: a run over some chapters loses no other's result. A file
    of which only some tests ran (file::test) is named under "some_tests" with them, so that its
    row is not read as the whole file's."""
    asked = [name for names in groups.values() for name in names]
    some = _some_tests(record["files"], asked)
    if not isinstance(earlier, dict) or not isinstance(earlier.get("files"), dict):
        return {**record, **({"some_tests": some} if some else {})}
    run = {key: record[key] for key in RUN}
    files = dict(record["files"])
    earlier_some = earlier.get("some_tests") if isinstance(earlier.get("some_tests"), dict) else {}
    for name, counts in earlier["files"].items():
        if name in files or any(_covers(given, name) for given in asked) or not isinstance(counts, dict):
            continue
        own = {key: counts.get(key, earlier.get(key)) for key in RUN}
        if all(isinstance(value, str) for value in own.values()):  # else it cannot be told apart
            files[name] = {**{k: v for k, v in counts.items() if k not in RUN},
                           **({} if own == run else own)}
            if name in earlier_some:  # a kept row of some tests still says so
                some[name] = earlier_some[name]
    return {**record, "files": dict(sorted(files.items())),
            **({"some_tests": dict(sorted(some.items()))} if some else {})}


def _write_record(text: str) -> str | None:
    """Write records/gpu-replay.json; None, or why it was left as it was."""
    try:  # whole or not at all: a full disk or a size limit never leaves half a record
        REPLAY_RECORD.parent.mkdir(exist_ok=True)
        with replaced_atomically(Path(os.path.realpath(REPLAY_RECORD)), "w", encoding="utf-8") as f:
            f.write(text)
    except (OSError, ValueError) as error:
        unwritten = (f"cannot write {REPLAY_RECORD.relative_to(ROOT)} "
                     f"({getattr(error, 'strerror', None) or error}); it was left as it was")
        print(f"{unwritten}; the record:\n{text}", end="", flush=True)  # the replay is not lost
        return unwritten
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    # extend: a second --tests or --chapters adds its files, rather than dropping the first's unchecked
    parser.add_argument("--tests", nargs="*", action="extend", help="unit test files to run (default: "
                        f"{' '.join(TRAINING_TESTS)}; --tests alone: none)")
    parser.add_argument("--chapters", nargs="*", action="extend", help="chapters to replay, as files "
                        "(notebooks/04_fast_training.ipynb) or names (04_fast_training, "
                        "solutions/04_fast_training); --chapters left out: every chapter; "
                        "--chapters alone: none")
    parser.add_argument("--parallel", type=int, default=8, help="pytest processes at a time (one per "
                        "chapter, one for the tests; default 8)")
    parser.add_argument("--test-timeout", type=int, default=150, help="seconds for the tests and replay (default 150)")
    parser.add_argument("--bench-timeout", type=int, default=240, help="seconds for the benchmark (default 240)")
    parser.add_argument("--bench-repeats", type=int, default=3,
                        help="interleaved repeats of every benchmark variant (default 3)")
    parser.add_argument("--no-bench", action="store_true", help="skip the benchmark")
    parser.add_argument("--out", help="also copy results and logs into this folder (default: $OUT)")
    args = parser.parse_args(argv)
    try:  # torch cannot load in a folder that was deleted
        os.getcwd()
    except FileNotFoundError:
        sys.exit("the current folder no longer exists (deleted or moved by another program): cd to "
                 "an existing folder and run again")
    # Every argument checked here, before the GPU check: a CPU machine finds the mistakes too, and
    # a lent GPU machine's time is not spent on set-up that a mistake throws away.
    for option, what in _AT_LEAST_ONE.items():
        value = getattr(args, option)
        if value < 1 and not (option.startswith("bench_") and args.no_bench):  # not used then
            parser.error(f"--{option.replace('_', '-')} must be at least 1, got {value}: it is {what}; "
                         "nothing was run")
    args.tests = list(dict.fromkeys(_given_file(parser, "--tests", text)
                                    for text in (TRAINING_TESTS if args.tests is None else args.tests)))
    for text in args.tests:  # after every file is found, so a missing file is named first
        _given_test(parser, text)
    if args.chapters is not None:  # None: left out, every chapter; [] (--chapters alone): none
        args.chapters = [_given_file(parser, "--chapters", text) for text in args.chapters]
    if args.chapters == [] and not args.tests and args.no_bench:
        parser.error("--tests and --chapters given alone and --no-bench leave nothing to run: name "
                     "test files or chapters (leave --tests or --chapters out for all of them); "
                     "nothing was run")
    args.out = (_out_folder(parser, "--out", args.out) if args.out is not None
                else _out_folder(parser, "$OUT", os.environ.get("OUT") or None))
    earlier = _earlier(parser) if args.tests or args.chapters != [] else None  # else not written
    import torch

    if not torch.cuda.is_available():
        sys.exit("PyTorch sees no CUDA GPU here (torch.cuda.is_available() is False): run this on a machine "
                 "with an NVIDIA GPU, its driver and a CUDA build of PyTorch.")
    start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    env = dict(os.environ, PYTHONUNBUFFERED="1", BOOK_COMMIT=commit(),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    install_wheels(env)
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"commit {env['BOOK_COMMIT']}", flush=True)
    prepare = [sys.executable, "-m", "lenet_book.data", "prepare"]
    if subprocess.run(prepare + (["--source", str(DATA)] if DATA.is_dir() else []), cwd=ROOT, env=env).returncode:
        sys.exit("Fashion-MNIST could not be prepared (the message above says why): put the four original .gz "
                 f"files in {DATA.relative_to(ROOT)}/ or set FASHION_MNIST_SOURCE.")

    # One pytest process per chapter (and one for the unit tests), side by side: the GPU and the
    # cores are shared, so each gets a few CPU threads.
    replay = args.chapters if args.chapters is not None else [p.relative_to(ROOT).as_posix()
                                                               for p in chapters()]
    groups = ({"unit tests": args.tests} if args.tests else {}) | {name: [name] for name in replay}
    jobs = {name: [sys.executable, "-m", "pytest", "-q", "-rfE", "--junitxml", str(work / f"{slug(name)}.xml"),
                   *files] for name, files in groups.items()}
    outcome, unwritten, results = {}, None, []
    if not jobs:  # --tests and --chapters alone: the benchmark only; the record is left as it was
        print("no unit tests and no chapters asked for (--tests and --chapters alone): only the "
              f"benchmark runs; {REPLAY_RECORD.relative_to(ROOT)} is left as it was", flush=True)
    else:
        threads = str(max(1, (os.cpu_count() or 1) // min(args.parallel, len(jobs))))
        began = time.perf_counter()
        outcome = run_jobs(jobs, dict(env, OMP_NUM_THREADS=threads), args.test_timeout, work, args.parallel)
        record = replay_record([work / f"{slug(name)}.xml" for name in jobs], groups, time.perf_counter() - began,
                               outcome)
        ran = record["files"]
        if ran:
            record = _with_earlier(record, groups, earlier)
        text = json.dumps(record, indent=1) + "\n"
        if not ran:  # a record of nothing would replace the last replay's
            unwritten = (f"no test file or chapter reported a result, so {REPLAY_RECORD.relative_to(ROOT)} "
                         "was left as it was")
            print(f"{unwritten}; the record:\n{text}", end="", flush=True)
        else:
            unwritten = _write_record(text)
        print(json.dumps(ran, indent=1), "\nno result:", record["no_result"] or "none", flush=True)
        kept = sorted(set(record["files"]) - set(ran))
        if kept and not unwritten:
            print(f"kept from the earlier {REPLAY_RECORD.relative_to(ROOT)}: {', '.join(kept)}", flush=True)
        for name in sorted(set(ran) & set(record.get("some_tests", {}))):  # not the whole file's counts
            tests = ", ".join(record["some_tests"][name])
            print(f"only some tests of {name} ran ({tests}): the record and the execution report say so",
                  flush=True)
        results = [] if unwritten else [REPLAY_RECORD]

    bench = 0
    if not args.no_bench:  # after the tests, alone on the GPU
        speed = ROOT / "benchmarks" / "results" / f"gpu-{slug(torch.cuda.get_device_name())}.json"
        command = [sys.executable, "benchmarks/train_speed.py", "--device", "cuda",
                   "--repeats", str(args.bench_repeats), "--json", str(speed),
                   "--replace"]  # a fresh measurement of this GPU replaces its record
        bench = run_jobs({"benchmark": command}, env, args.bench_timeout, work, 1)["benchmark"]
        print((work / "benchmark.log").read_text()[-3000:], flush=True)
        results += [speed] if speed.exists() else []

    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        for path in results:
            target = args.out / path.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)
        for path in work.iterdir():  # logs and JUnit XML
            shutil.copy(path, args.out / path.name)
    failed = {name: status for name, status in outcome.items() if status != 0}
    for name in failed:
        log = work / f"{slug(name)}.log"
        print(f"--- {name}: {failed[name]}; "
              + ("the end of its log:\n" + log.read_text()[-2000:] if log.exists()
                 else "it has no log: the time ran out before its turn"), flush=True)
    print(f"done in {time.perf_counter() - start:.0f} s: {len(jobs) - len(failed)} of {len(jobs)} test runs "
          f"passed, benchmark exit {bench}; wrote "
          + (", ".join(p.relative_to(ROOT).as_posix() for p in results) or "nothing")
          + (f"; {unwritten}" if unwritten else ""))
    return 1 if failed or bench or unwritten else 0


if __name__ == "__main__":
    sys.exit(main())
