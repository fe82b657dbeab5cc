"""Run chapters as a learner does on a fresh Colab runtime, offline.

    python -m tools.colab_check                          # every chapter (make colab-check)
    python -m tools.colab_check 03_training              # some of them
    python -m tools.colab_check --record records/colab-check.json   # also keep the outcome

A run over some chapters with --record updates their results in the record and keeps the
others', each with the date, commit, Python and torch of the check it came from.

For each chapter, like Colab:
  * the notebook is alone in an empty folder: no checkout of the book, no data;
  * the Python environment has what Colab preinstalls (torch, torchvision, numpy, pandas,
    matplotlib, IPython, requests) but neither d2l nor lenet_book: it is a copy of .venv (hard
    links, seconds) with those two uninstalled;
  * the chapter's first cell installs them with pip: d2l from PyPI, lenet_book from the
    repository URL in _config.yml;
  * torchvision downloads Fashion-MNIST when the chapter first loads it;
  * every cell runs, top to bottom, in a fresh kernel; an error or a failed check fails the
    chapter. Outputs are not compared (the set-up and download print progress here);
    `make test` compares them.

What stands in for the internet (this machine has none, except the package registries):
  * git fetches the repository URL from a clone of this checkout's HEAD (a url.insteadOf rule
    in a private git configuration): commit what you want checked;
  * torchvision downloads through an HTTP proxy (http_proxy, which urllib honours; pip's
    https requests to PyPI do not use it) on 127.0.0.1 that answers for torchvision's download
    host only, with the original .gz files from FASHION_MNIST_SOURCE (default
    ../shared/data/FashionMNIST/raw; a data root is walked to its raw/ as lenet_book.data
    walks it, but the .gz files must be there, as torchvision downloads them),
    MD5-checked first.

What is not like Colab: Python and torch are this project's (requirements.txt), not Colab's.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import difflib
import functools
import hashlib
import http.server
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import yaml

from lenet_book.book import chapters
from lenet_book.data import replaced_atomically

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv"
WORK = ROOT / ".colab"  # beside .venv, so that the runtime copy can use hard links


def _fashion_mnist_source() -> Path:
    """The folder of $FASHION_MNIST_SOURCE as lenet_book.data reads it (find_local_copy): unset
    or empty, this checkout's neighbour ../shared/data/FashionMNIST/raw; a data root or its
    FashionMNIST folder, the folder below it that holds the files (_files_folder)."""
    from lenet_book.data import _files_folder

    value = os.environ.get("FASHION_MNIST_SOURCE")  # '' is unset, as for lenet_book.data
    return _files_folder(Path(value) if value else ROOT.parent / "shared/data/FashionMNIST/raw")


def originals(source: Path) -> Path:
    """The folder of original .gz files that torchvision's download expects, MD5-checked."""
    import torchvision

    for name, md5 in torchvision.datasets.FashionMNIST.resources:
        path = source / name
        if not path.is_file():
            sys.exit(f"{path} is missing: set FASHION_MNIST_SOURCE to a folder with the original "
                     "Fashion-MNIST .gz files (e.g. ../shared/data/FashionMNIST/raw).")
        if hashlib.md5(path.read_bytes()).hexdigest() != md5:
            sys.exit(f"{path} is not the original file (MD5 differs): torchvision would reject it. "
                     "Debian's copy has other gzip headers; use ../shared/data/FashionMNIST/raw.")
    return source


@contextlib.contextmanager
def download_proxy(folder: Path):
    """An HTTP proxy on 127.0.0.1 that serves torchvision's download host from folder."""
    import torchvision

    host = urlparse(torchvision.datasets.FashionMNIST.mirrors[0]).hostname

    class Mirror(http.server.SimpleHTTPRequestHandler):
        def local(self) -> bool:
            url = urlparse(self.path)  # a proxy request names the whole URL
            if url.hostname != host:
                self.send_error(502, f"this proxy serves only {host}")
                return False
            self.path = url.path
            return True

        def do_GET(self):
            if self.local():
                super().do_GET()

        def do_HEAD(self):
            if self.local():
                super().do_HEAD()

        def copyfile(self, source, outputfile):
            try:
                super().copyfile(source, outputfile)
            except (ConnectionResetError, BrokenPipeError):
                pass  # torchvision opens each URL once to follow redirects, and closes it unread

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(Mirror, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield host, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def fresh_runtime(target: Path) -> Path:
    """A copy of .venv without d2l and lenet_book: what a fresh Colab runtime has of ours."""
    # .venv may be a link to another folder: copy that folder, never the link, or the uninstall
    # below would remove d2l and lenet_book from the project's own .venv
    subprocess.run(["cp", "-al", str(VENV.resolve()), str(target)], check=True)
    python = target / "bin" / "python"
    env = colab_environment()  # a PYTHONPATH of this shell would find lenet_book here
    prefix = subprocess.run([str(python), "-c", "import sys; print(sys.prefix)"], env=env,
                            capture_output=True, text=True, check=True).stdout.strip()
    if Path(prefix).resolve() != target.resolve():
        sys.exit(f"colab_check: the copy of .venv in {target} runs as {prefix}, not as itself, "
                 "so uninstalling from it would change that environment; nothing was "
                 "uninstalled: make .venv a plain virtual environment (make env)")
    subprocess.run([str(python), "-m", "pip", "uninstall", "-q", "-y", "d2l", "lenet-book"],
                   check=True, env=env)
    missing = subprocess.run([str(python), "-c", "import importlib.util as u; "
                              "print([n for n in ('d2l', 'lenet_book') if u.find_spec(n)])"],
                             capture_output=True, text=True, cwd=target, check=True,
                             env=env).stdout.strip()
    if missing != "[]":
        sys.exit(f"colab_check: the copy of .venv in {target} still has {missing} after "
                 "uninstalling them, so it is not a fresh runtime; remove that folder and try again")
    return python


def colab_environment() -> dict:
    """This shell's environment less what a fresh Colab runtime lacks (PYTHONPATH and the like,
    the virtual environment)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}


def git_config(work: Path, url: str) -> Path:
    """A git configuration that fetches url from a clone of this checkout's HEAD."""
    clone = work / "repository"
    subprocess.run(["git", "-c", "safe.directory=*", "clone", "-q", "--no-hardlinks", str(ROOT), str(clone)],
                   check=True)
    config = work / "gitconfig"
    config.write_text(f'[url "file://{clone}"]\n\tinsteadOf = {url}\n')
    return config


def run_chapter(name: str, url: str, proxy: str, work: Path) -> dict:
    chapter_work = work / name
    content = chapter_work / "content" / "notebooks"  # ../data of the chapter: empty at start
    content.mkdir(parents=True)
    shutil.copy(ROOT / "notebooks" / f"{name}.ipynb", content)
    python = fresh_runtime(chapter_work / "runtime")
    env = colab_environment()
    env.update(GIT_CONFIG_GLOBAL=str(git_config(chapter_work, url)), GIT_CONFIG_NOSYSTEM="1",
               PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_ROOT_USER_ACTION="ignore",
               http_proxy=proxy, HTTP_PROXY=proxy)
    start = time.perf_counter()
    result = subprocess.run(
        [str(python), "-m", "pytest", "-c", os.devnull, "--rootdir", str(content), "-p", "no:cacheprovider",
         "--nbval-lax", "--nbval-current-env", "--nbval-cell-timeout=1800", "-q", f"{name}.ipynb"],
        cwd=content, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    downloaded = sorted(p.name for p in (content.parent / "data" / "FashionMNIST" / "raw").glob("*.gz"))
    installed = subprocess.run(  # what the chapter's set-up cell installed
        [str(python), "-c", "import importlib.metadata as m; print(*(f'{n}=={m.version(n)}' "
         "for n in ('d2l', 'lenet-book')))"], capture_output=True, text=True).stdout.split()
    print(result.stdout[-3000:] if result.returncode else result.stdout.strip().splitlines()[-1])
    print("installed by the set-up cell:", installed or "nothing", "| downloaded:", len(downloaded), "files")
    return {"passed": result.returncode == 0, "seconds": round(seconds), "installed": installed,
            "downloaded": downloaded}


RUN = ("date", "commit", "python", "torch")  # what a check ran with: the record's, or a result's own


def _chapter_name(parser: argparse.ArgumentParser, text: str, known: list[str]) -> str:
    """A chapter as given: its name (03_training), its file's name (03_training.ipynb) or a path
    to that file (notebooks/03_training.ipynb, as gpu_check --chapters takes it) -> its name, or
    a parser error saying what to give."""
    if text in known:
        return text
    path = Path(text)
    if len(path.parts) == 1 and text.removesuffix(".ipynb") in known:
        return text.removesuffix(".ipynb")
    notebooks = (ROOT / "notebooks").resolve()
    found = next((p.resolve() for p in ([path] if path.is_absolute() else [ROOT / path, Path.cwd() / path])
                  if len(path.parts) > 1 and p.is_file()), None)
    if found is not None and found.parent == notebooks and found.stem in known:
        return found.stem
    if found is not None and found.parent == notebooks / "solutions":
        parser.error(f"{text} is a solutions page: this check runs the chapters only; give its "
                     f"chapter, e.g. {found.stem}, or leave the names out for every chapter; "
                     "nothing was run")
    stem = path.name.removesuffix(".ipynb")
    example = (difflib.get_close_matches(stem, known, n=1, cutoff=0.6) or known or ["03_training"])[0]
    parser.error(f"{text} is not a chapter in _toc.yml"
                 + (" (there is no such file)" if len(path.parts) > 1 and found is None else "")
                 + f"; give a chapter's name, e.g. {example}, or its file, e.g. "
                 f"notebooks/{example}.ipynb; nothing was run")


def _record_path(parser: argparse.ArgumentParser, text: str | None) -> Path | None:
    """--record as given, before anything runs: '' (an unset shell variable) is not the current
    folder, and a name ending in a slash is a folder, never a file of that name. What the write
    would refuse only after every chapter has run (minutes each) is refused here, as gpu_check's
    --out and the benchmarks' --json are: '~' not expanded, a file on the way, a device or pipe,
    '-' (not standard output), a URL or an unmounted Drive (a local folder 'https:')."""
    if text is None:
        return None
    if not text:
        parser.error("--record is empty (''): give the file to write the record to, e.g. "
                     "--record records/colab-check.json; nothing was run")
    if text.startswith("~") and not os.path.lexists(text):  # --record=~/x: no shell expansion
        parser.error(f"--record {text} starts with '~', which Python does not expand to the home "
                     "folder (it would name a folder called '~' here); write the path in full, e.g. "
                     f"--record {os.path.expanduser(text)}; nothing was run")
    from benchmarks._options import _not_local, _standard_output, _white_space
    from tools.export_training_subset import _too_long  # as the benchmarks' --json

    problem = (_standard_output("--record", text, "records/colab-check.json")
               or _not_local("--record", text) or _white_space("--record", text))
    if problem:  # the record would go, after every chapter, to a name the report never reads
        parser.error(f"{problem}; nothing was run")
    path = Path(text)
    problem = _too_long(path)
    if problem:  # pathlib's exists() in _earlier raises on it
        parser.error(f"--record {text}: {problem}; give a shorter --record; nothing was run")
    above = next((folder for folder in path.absolute().parents if os.path.lexists(folder)), None)
    if text.endswith(("/", os.sep)) and os.path.lexists(path) and not path.is_dir():
        above = path  # Path() drops the slash: FILE/ names a folder where a file is
    if above is not None and not above.is_dir():  # mkdir would fail once every chapter has run
        parser.error(f"--record {text}: {above} is a file, not a folder; give another --record, "
                     f"e.g. --record {above.parent / 'colab-check.json'}; nothing was run")
    if text.endswith(("/", os.sep)) and not os.path.isdir(text):
        parser.error(f"--record {text} ends in a slash, so it names a folder, which does not exist; "
                     f"give a file name, e.g. --record {os.path.join(text, 'colab-check.json')}; "
                     "nothing was run")
    if os.path.exists(path) and not (path.is_file() or path.is_dir()):  # reading a pipe would wait
        parser.error(f"--record {text} is a device, pipe or socket, not a file: the record is read "
                     "again and replaced, so it is kept as it is; give the path of a file, e.g. "
                     "--record records/colab-check.json; nothing was run")
    return path


def _earlier(parser: argparse.ArgumentParser, path: Path | None) -> dict | None:
    """The record already at --record (None if there is none), read before anything runs: a run
    over some chapters keeps its other chapters' results, and a file that is not such a record
    is never replaced."""
    if path is None or not path.exists():  # a link to a file not made yet is written through
        return None
    keep = "nothing was run: give another file, or move that one away"
    if path.is_dir():
        parser.error(f"--record {path} is a folder, not a record file; give a file in it, e.g. "
                     f"--record {path / 'colab-check.json'}; {keep}")
    try:
        text = path.read_text(encoding="utf-8-sig")  # an editor's BOM is no damage
        if not text.strip():  # an empty file (touch) holds nothing to lose: a new record
            return None
        record = json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as error:
        parser.error(f"--record {path} cannot be read as a colab_check record "
                     f"({getattr(error, 'strerror', None) or error}); {keep}")
    if not (isinstance(record, dict) and isinstance(record.get("chapters"), dict)
            and all(isinstance(record.get(key), str) for key in RUN)
            and all(isinstance(result, dict) for result in record["chapters"].values())):
        parser.error(f"--record {path} exists and is not a record of colab_check (an object with "
                     f"{', '.join(RUN)} and chapters), which this script writes; {keep}")
    return record


def _merged(record: dict, earlier: dict | None) -> dict:
    """``record`` with the results of ``earlier`` for the chapters this run did not check, each
    with the run it came from where that differs from this one's, in the book's order."""
    run = {key: record[key] for key in RUN}
    kept = {}
    for name, result in (earlier["chapters"].items() if earlier else ()):
        if name not in record["chapters"]:
            own = {key: result.get(key, earlier[key]) for key in RUN}
            kept[name] = {**{k: v for k, v in result.items() if k not in RUN},
                          **({} if own == run else own)}
    order = {name: index for index, name in enumerate(record["chapters_in_book"])}
    chapters = {**record["chapters"], **kept}
    return {**record, "chapters": dict(sorted(chapters.items(),
                                              key=lambda item: order.get(item[0], len(order))))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chapters", nargs="*", help="chapter names, e.g. 03_training or "
                        "notebooks/03_training.ipynb (default: all)")
    parser.add_argument("--record", help="write the outcome to this JSON file")
    args = parser.parse_args(argv)
    try:  # torch and torchvision, imported below, cannot load in a folder that was deleted
        os.getcwd()
    except FileNotFoundError:
        sys.exit("the current folder no longer exists (deleted or moved by another program): cd to "
                 "an existing folder and run again")
    known = [path.stem for path in chapters()]
    # a chapter named twice (or as a name and a path) runs once: each run takes minutes
    names = list(dict.fromkeys(_chapter_name(parser, text, known) for text in args.chapters)) or known
    args.record = _record_path(parser, args.record)
    earlier = _earlier(parser, args.record)
    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    source = _fashion_mnist_source()

    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir()
    outcome = {}
    try:
        with download_proxy(originals(source)) as (host, proxy):
            print(f"Colab check: {url} from this checkout's HEAD, Fashion-MNIST from {host} (local)")
            for name in names:
                print(f"--- {name}", flush=True)
                outcome[name] = run_chapter(name, url, proxy, Path(tempfile.mkdtemp(dir=WORK)))
    finally:
        shutil.rmtree(WORK, ignore_errors=True)

    import torch

    record = {"date": datetime.date.today().isoformat(), "python": platform.python_version(),
              "torch": torch.__version__,
              # HEAD, not the working tree: the chapters installed lenet_book from HEAD
              "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                       capture_output=True, text=True).stdout.strip(),
              # the book's chapters at this check: a chapter not listed was added after it
              "chapters_in_book": known, "chapters": outcome}
    for name, result in outcome.items():
        print(f"{name:22} {'passed' if result['passed'] else 'FAILED'} in {result['seconds']} s")
    if args.record:
        record = _merged(record, earlier)  # a run over some chapters loses no other's result
        kept = [name for name in record["chapters"] if name not in outcome]
        if kept:
            print(f"kept from {args.record}, as earlier checks left them: {', '.join(kept)}")
        text = json.dumps(record, indent=1) + "\n"
        try:  # whole or not at all: a full disk or a size limit never leaves half a record
            args.record.parent.mkdir(parents=True, exist_ok=True)
            with replaced_atomically(Path(os.path.realpath(args.record)), "w",
                                     encoding="utf-8") as f:
                f.write(text)
        except (OSError, ValueError) as error:
            print(text, end="")  # the outcome of the long run is not lost
            sys.exit(f"cannot write {args.record} ({getattr(error, 'strerror', None) or error}); "
                     "it was left as it was, and the record is printed above")
    return 0 if all(r["passed"] for r in outcome.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
