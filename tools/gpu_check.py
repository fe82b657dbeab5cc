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
   the tests or cells passed and failed), which the execution report shows;
2. then, alone on the GPU, the speed benchmark ``benchmarks/train_speed.py --device cuda`` with
   its default variants, 3 interleaved repeats (``--bench-repeats``), into
   benchmarks/results/gpu-<device>.json, which chapter 4 renders.
Each step has a time limit (``--test-timeout``, ``--bench-timeout``: about 7 minutes in all
with the set-up on an H200), so that a slow step cannot take the other's time. The commit
recorded is ``git describe --always --dirty``, or $BOOK_COMMIT where the copy has no git.
With $OUT set (or --out), the result files are also copied there under the same paths, with
the logs and the JUnit XML, so that they come back from a lent machine: copy them into the
checkout to keep them.
"""

from __future__ import annotations

import argparse
import collections
import datetime
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

from lenet_book.book import chapters, commit
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
                 for job, names in groups.items() for name in names if name not in files}
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tests", nargs="*", default=TRAINING_TESTS, help="unit test files to run")
    parser.add_argument("--chapters", nargs="*", help="chapters to replay (default: every chapter)")
    parser.add_argument("--parallel", type=int, default=8, help="pytest processes at a time (one per "
                        "chapter, one for the tests; default 8)")
    parser.add_argument("--test-timeout", type=int, default=150, help="seconds for the tests and replay (default 150)")
    parser.add_argument("--bench-timeout", type=int, default=240, help="seconds for the benchmark (default 240)")
    parser.add_argument("--bench-repeats", type=int, default=3,
                        help="interleaved repeats of every benchmark variant (default 3)")
    parser.add_argument("--no-bench", action="store_true", help="skip the benchmark")
    parser.add_argument("--out", type=Path, default=os.environ.get("OUT"),
                        help="also copy results and logs here (default: $OUT)")
    args = parser.parse_args(argv)
    try:  # torch cannot load in a folder that was deleted
        os.getcwd()
    except FileNotFoundError:
        sys.exit("the current folder no longer exists (deleted or moved by another program): cd to "
                 "an existing folder and run again")
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
    replay = args.chapters or [p.relative_to(ROOT).as_posix() for p in chapters()]
    groups = ({"unit tests": args.tests} if args.tests else {}) | {name: [name] for name in replay}
    jobs = {name: [sys.executable, "-m", "pytest", "-q", "-rfE", "--junitxml", str(work / f"{slug(name)}.xml"),
                   *files] for name, files in groups.items()}
    threads = str(max(1, (os.cpu_count() or 1) // min(args.parallel, len(jobs))))
    began = time.perf_counter()
    outcome = run_jobs(jobs, dict(env, OMP_NUM_THREADS=threads), args.test_timeout, work, args.parallel)
    record = replay_record([work / f"{slug(name)}.xml" for name in jobs], groups, time.perf_counter() - began,
                           outcome)
    text, unwritten = json.dumps(record, indent=1) + "\n", None
    try:  # whole or not at all: a full disk or a size limit never leaves half a record
        REPLAY_RECORD.parent.mkdir(exist_ok=True)
        with replaced_atomically(Path(os.path.realpath(REPLAY_RECORD)), "w", encoding="utf-8") as f:
            f.write(text)
    except (OSError, ValueError) as error:
        unwritten = (f"cannot write {REPLAY_RECORD.relative_to(ROOT)} "
                     f"({getattr(error, 'strerror', None) or error}); it was left as it was")
        print(f"{unwritten}; the record:\n{text}", end="", flush=True)  # the replay is not lost
    print(json.dumps(record["files"], indent=1), "\nno result:", record["no_result"] or "none", flush=True)
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
        print(f"--- {name}: {failed[name]}; the end of its log:\n"
              + (work / f"{slug(name)}.log").read_text()[-2000:], flush=True)
    print(f"done in {time.perf_counter() - start:.0f} s: {len(jobs) - len(failed)} of {len(jobs)} test runs "
          f"passed, benchmark exit {bench}; wrote " + ", ".join(p.relative_to(ROOT).as_posix() for p in results)
          + (f"; {unwritten}" if unwritten else ""))
    return 1 if failed or bench or unwritten else 0


if __name__ == "__main__":
    sys.exit(main())
