"""Execute chapters in place, top to bottom in a fresh kernel, and store them clean.

    python -m tools.execute_notebooks                       # every chapter and solutions notebook in _toc.yml
    python -m tools.execute_notebooks notebooks/03_*.ipynb  # some of them (make execute NB=...)

Each notebook runs with its own folder (``notebooks/`` or ``notebooks/solutions/``) as its working
folder (as nbval and Jupyter run it), then its metadata is reduced to the kernel and language,
cell metadata to tags, figure and table captions, and its outputs are scanned for machine paths,
which must not reach the published book.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import datetime
import importlib.metadata
import os
import platform
import re
import signal
import sys
import threading
import time
from pathlib import Path

try:  # torch (imported by lenet_book.device) cannot load in a folder that was deleted
    os.getcwd()
except FileNotFoundError:
    sys.exit("the current folder no longer exists (deleted or moved by another program): cd to "
             "an existing folder and run again")

import nbformat  # noqa: E402
from nbclient import NotebookClient  # noqa: E402
from nbclient.exceptions import CellExecutionError, DeadKernelError  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # lenet_book from this checkout, installed or not: its own chapters
from lenet_book.book import _no_chapters, chapters, solutions  # noqa: E402
from lenet_book.data import replaced_atomically  # noqa: E402
from lenet_book.device import device_name  # noqa: E402
from tools.export_training_subset import _too_long  # noqa: E402
from tools.tag_cells import _json, _shape_problem, schema_problem  # noqa: E402

MACHINE_PATH = re.compile(
    r"(site-packages/|/lib/python3\.\d+/|/home/[\w.-]+/|/root/|/tmp/[\w.-]+|/work/"
    # home folders on macOS (and Windows' under WSL), and Colab's working folder; not where a
    # name or a URL's host or path goes on before them (https://example.org/content/...), nor a
    # site's own link (href="/content/...", Markdown's [text](/content/...))
    r"|(?<![\w.-])(?:/mnt/[A-Za-z])?/Users/[\w.-]+"
    r"|(?<![\w.-])(?<!href=\")(?<!src=\")(?<!href=')(?<!src=')(?<!\]\()/content/[\w.-]+"
    # Windows' home folders, with either slash, one or doubled (as repr() and JSON write it)
    r"|(?<![\w.-])[A-Za-z]:[\\/]+(?i:users)[\\/]+[\w.-]+)")
UNREADABLE = ("its JSON lacks what a notebook holds, such as an 'nbformat' version or "
              "cells with a cell_type and a source")
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def execution_record(seconds: float) -> dict:
    """What the execution report (book/execution_report.md) shows for a chapter."""
    versions = {name: importlib.metadata.version(name) for name in ("torch", "torchvision", "d2l", "numpy")}
    return {"date": datetime.date.today().isoformat(), "seconds": round(seconds),
            "device": device_name(), "python": platform.python_version(), "versions": versions}


def clean(nb: nbformat.NotebookNode, record: dict | None = None) -> None:
    record = record or nb.metadata.get("execution")
    nb.metadata = nbformat.from_dict({
        "kernelspec": KERNELSPEC,
        "language_info": {"name": "python", "pygments_lexer": "ipython3"},
        **({"execution": record} if record else {}),
    })
    for cell in nb.cells:  # keep the tags, MyST-NB's figure caption and alt text, the tables' captions
        kept = {key: cell.metadata[key] for key in ("tags", "mystnb", "table") if cell.metadata.get(key)}
        cell.metadata = nbformat.from_dict(kept)


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # a traceback's colours: 'File \x1b[0;32m/Users/...'


def _texts(value):
    """The strings in an output, each as shown, without colours: its repr would write a line
    break as '\\n', which (as a colour's closing 'm') hides a path at the start of a line from
    MACHINE_PATH's look-behind."""
    if isinstance(value, str):
        yield ANSI.sub("", value)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)


def machine_paths(nb: nbformat.NotebookNode) -> list[str]:
    found = []
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            match = next(filter(None, map(MACHINE_PATH.search, _texts(output))), None)
            if match:
                found.append(f"cell {index}: {match.group(0)}")
    return found


TIMED_OUT = "execute_notebooks: the cell timed out"  # the error a timed-out cell is given


class CellFailed(Exception):
    """A cell raised, timed out or ended the kernel: the notebook is not written."""

    def __init__(self, index: int, cell: nbformat.NotebookNode, cause: str):
        super().__init__(cause)
        self.index, self.cell, self.cause = index, cell, cause

    def message(self, path: Path, not_run: int = 0) -> str:
        rest = f" ({not_run} notebook(s) after it were not run)" if not_run else ""
        return (f"{path}: cell {self.index} (starting {_first_line(self.cell)!r}) {self.cause}; "
                f"nothing was written: the notebook was left as it was{rest}. Fix that cell (or "
                "the code it calls) and run again")


def _first_line(cell: nbformat.NotebookNode) -> str:
    """The cell's first line that is not blank, cut to 60 characters: how a message names it."""
    lines = [line for line in cell.source.splitlines() if line.strip()]
    first = lines[0].strip() if lines else ""
    return first if len(first) <= 60 else first[:57] + "..."


def _cause(error: Exception, timeout: int) -> str:
    """What went wrong in a cell, in one line: the exception's last line, or the timeout."""
    if isinstance(error, DeadKernelError):
        return ("ended the kernel (Python quit while running it: os._exit, a crash, or out of "
                "memory)")
    if error.ename == TIMED_OUT:
        return (f"ran longer than --timeout {timeout} s per cell and was interrupted; give a "
                "longer --timeout if it only needs more time")
    value = (str(error.evalue).strip().splitlines() or [""])[0]
    value = value if len(value) <= 200 else value[:197] + "..."
    return f"raised {error.ename}: {value}" if value else f"raised {error.ename}"


class _NoCtrlCLoop(asyncio.SelectorEventLoop):
    """An event loop that leaves Ctrl-C to _run(): nbclient's own SIGINT handler stops the
    kernel but lets the cell wait on, which ended in 'Kernel died' and an AssertionError."""

    def add_signal_handler(self, sig, callback, *args):
        if sig == signal.SIGINT:
            raise RuntimeError("execute_notebooks handles Ctrl-C")  # nbclient skips it then
        super().add_signal_handler(sig, callback, *args)


def _run(client: NotebookClient) -> None:
    """``client.execute()``, with Ctrl-C cancelling the run so that nbclient stops the kernel on
    its way out; KeyboardInterrupt is raised then, whatever error the cancelling caused. (As
    asyncio.Runner does, which Python 3.10 lacks.)"""
    interrupted = []
    loop = _NoCtrlCLoop()
    asyncio.set_event_loop(loop)
    run = loop.create_task(client.async_execute())

    def stop():  # killed, not asked to quit: the kernel's own tracebacks from a socket
        client.shutdown_kernel = "immediate"  # closed under a running cell are never printed
        run.cancel()

    def on_ctrl_c(signum, frame):
        if not interrupted:  # once: a second Ctrl-C must not cut the kernel's stop
            loop.call_soon_threadsafe(stop)
        interrupted.append(signum)

    # only in the main thread, and only where Ctrl-C raises KeyboardInterrupt (not where it is
    # ignored, as in a background job)
    ours = (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler)
    if ours:
        signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        loop.run_until_complete(run)
    except BaseException:
        if not interrupted:
            raise
    finally:
        try:  # a kernel still up (Ctrl-C while it started) is stopped, never left running
            atexit.unregister(client._cleanup_kernel)
            if client.km is not None and client.km.has_kernel:
                loop.run_until_complete(client.km.shutdown_kernel(now=True))
            left = asyncio.all_tasks(loop)  # nbclient's pollers of a cancelled cell
            for task in left:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
            if ours:
                signal.signal(signal.SIGINT, signal.default_int_handler)
    if interrupted:
        raise KeyboardInterrupt


class NotebookChanged(Exception):
    """The notebook's file changed on disk while it ran: the new outputs are not written."""

    def message(self, path: Path, not_run: int = 0) -> str:
        rest = f" ({not_run} notebook(s) after it were not run)" if not_run else ""
        if self.args[0] == "gone":
            return (f"{path} was deleted or moved while it ran: its new outputs are not written, "
                    f"so that it is not brought back{rest}; run it again where it is now")
        return (f"{path} changed on disk while it ran (saved from JupyterLab or an editor?): its "
                f"new outputs are not written, so that nothing of that change is lost{rest}; run "
                "it again once it is saved as you want it")


def execute(path: Path, timeout: int, running: dict | None = None) -> float:
    """Run the notebook at ``path`` and replace it with its executed copy; the seconds it took.
    ``running`` is filled with where the run is (phase, and the cell running), which main names
    on Ctrl-C."""
    running = {} if running is None else running
    running.update(phase="kernel")
    target = Path(os.path.realpath(path))  # a link is written through, as a plain write does
    read = target.read_bytes()  # compared before writing: edits saved meanwhile are never lost
    nb = nbformat.reads(read.decode("utf-8"), as_version=4)
    start = time.perf_counter()

    def started(cell, cell_index):
        running.update(phase="cell", cell=cell, index=cell_index)

    try:  # a timed-out cell is interrupted, so that the kernel stops cleanly
        _run(NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                            interrupt_on_timeout=True,
                            error_on_timeout={"ename": TIMED_OUT, "evalue": "", "traceback": []},
                            on_cell_execute=started,
                            resources={"metadata": {"path": str(path.parent)}}))
    except (CellExecutionError, DeadKernelError) as error:
        if "cell" not in running:
            raise
        raise CellFailed(running["index"], running["cell"], _cause(error, timeout)) from None
    running.update(phase="writing")
    seconds = time.perf_counter() - start
    clean(nb, execution_record(seconds))
    problems = machine_paths(nb)
    if problems:
        raise SystemExit(f"{path}: outputs hold machine paths: {problems}")
    nbformat.validate(nb)
    try:
        now = target.read_bytes()
    except OSError:
        now = None
    if now != read:  # saved from JupyterLab or an editor while it ran: those edits win
        raise NotebookChanged("gone" if now is None else "changed")
    try:  # whole or not at all: a full disk or a size limit never leaves half a notebook
        with replaced_atomically(target, "w", encoding="utf-8") as f:
            nbformat.write(nb, f)
    except (OSError, ValueError) as error:
        raise SystemExit(f"cannot write {path} ({getattr(error, 'strerror', None) or error}); "
                         "it was left as it was (this run's outputs are not kept)") from None
    running.update(phase="written")
    return seconds


def _interrupted(path: Path, running: dict, not_run: int) -> str:
    """What a Ctrl-C while running ``path`` left, in one line."""
    rest = f" ({not_run} notebook(s) after it were not run)" if not_run else ""
    phase = running.get("phase")
    if phase == "written":
        return f"{path}: interrupted once it was written (it holds its new outputs){rest}"
    if phase == "cell":
        where = f"in cell {running['index']} (starting {_first_line(running['cell'])!r})"
    elif phase == "writing":
        where = "after its last cell, before it was written"
    else:
        where = "while its kernel started"
    return (f"{path}: interrupted {where}; nothing was written: the notebook was left as it "
            f"was{rest}")


def _old_or_misnamed(path: Path) -> str | None:
    """Why the notebook at ``path`` (read already) is not run: an nbformat 3 or older notebook
    (it would be rewritten as nbformat 4 without a word), or a file not named .ipynb (a copy
    such as notebook.orig, which a run would change); or None."""
    version = nbformat.read(path, as_version=nbformat.NO_CONVERT).get("nbformat")
    if isinstance(version, int) and version < 4:
        return (f"{path} is an nbformat {version} notebook, which this tool would rewrite as "
                "nbformat 4 without a word; convert it first (jupyter nbconvert --to notebook "
                f"--nbformat 4 --output {path.stem}_v4 {path}) and run the converted "
                f"{path.stem}_v4.ipynb")
    if path.suffix != ".ipynb":
        return (f"{path} does not end in .ipynb: it may be a kept copy (such as notebook.orig), "
                "which a run would overwrite with new outputs; rename it to end in .ipynb if it "
                "is a notebook to run")
    return None


def _other_language(path: Path, nb: nbformat.NotebookNode) -> str | None:
    """Why the notebook at ``path`` is not run: its kernel is of another language than Python
    (a python3 kernel would fail on its first cell, and clean() would call it Python); or None.
    A notebook that names no language is taken as Python, and so is one whose language starts
    with "python" or "ipython" ("python3", "IPython"), as some kernelspecs write it."""
    spec = nb.metadata.get("kernelspec")
    spec = spec if isinstance(spec, dict) else {}
    info = nb.metadata.get("language_info")
    language = spec.get("language") or (info.get("name") if isinstance(info, dict) else None)
    named = language.strip().lower() if isinstance(language, str) else ""
    if not named or named.startswith(("python", "ipython")):
        return None
    name, shown = spec.get("name"), spec.get("display_name")
    kernel = "".join([f"kernel {name!r}" if name else "",
                      f", shown as {shown!r}" if name and shown and shown != name else "",
                      f"kernel {shown!r}" if shown and not name else ""])
    return (f"{path} is a notebook in {language}" + (f" ({kernel})" if kernel else "")
            + ", not Python: this tool runs Python chapters in a python3 kernel, where its first "
            "cell would fail, and would rewrite its kernel as Python; run it with its own kernel "
            f"(jupyter nbconvert --to notebook --execute --inplace {path})")


def notebook_problem(path: Path) -> str | None:
    """Why ``path`` is not a notebook to run (missing, a folder, not a notebook), or None."""
    problem = _too_long(path)
    if problem:  # no such file can exist (pathlib's exists() raises on it)
        return f"{path} cannot be a notebook: {problem}"
    if not path.exists():
        return f"{path} does not exist" + (  # as _toc.yml names a chapter
            f"; did you mean {path}.ipynb? (_toc.yml names the chapters without .ipynb)"
            if Path(f"{path}.ipynb").is_file() else "")
    if path.is_dir():
        return f"{path} is a folder, not a notebook"
    if not path.is_file():
        return f"{path} is a device, pipe or socket, not a notebook"
    problem = _shape_problem(_json(path))  # before nbformat's reader, which misnames some
    if problem:
        return f"{path} is not a notebook ({problem})"
    try:
        nb = nbformat.read(path, as_version=4)
    except (ValueError, KeyError, nbformat.ValidationError) as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:120]
        return f"{path} is not a notebook ({first})"  # NotJSONError and UnicodeDecodeError too
    except (TypeError, AttributeError):  # JSON, but e.g. a list, or cells that are not a list
        return f"{path} is not a notebook (its JSON holds no list of cells)"
    except OSError as error:
        return f"{path} cannot be read as a notebook ({error.strerror or error})"
    except Exception:  # nbformat's converters fail otherwise too (no 'nbformat' key: UnboundLocalError)
        return f"{path} is not a notebook ({UNREADABLE})"
    problem = schema_problem(nb)
    if problem:
        return f"{path} is not a notebook ({problem})"
    problem = _old_or_misnamed(path) or _other_language(path, nb)
    if problem:
        return problem
    target = Path(os.path.realpath(path))  # a link is written through, as a plain write does
    if not os.access(target, os.W_OK):
        return f"{path} cannot be written (it is read-only for this user)"
    if not os.access(target.parent, os.W_OK | os.X_OK):
        return (f"{path} cannot be written: no permission to write in its folder "
                f"{target.parent}, where the new notebook is written first, so that a failed "
                "write never leaves half a notebook")
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    args = parser.parse_args()
    if args.timeout < 1:  # nbclient reads 0 or less as "no limit"
        parser.error(f"--timeout must be at least 1 second per cell, got {args.timeout}; "
                     "nothing was run")
    if not args.notebooks and not chapters():  # running nothing must not pass
        parser.error(_no_chapters())
    paths = args.notebooks or chapters() + solutions()
    for path in paths:  # every notebook is read before any is run
        problem = notebook_problem(path)
        if problem:
            parser.error(f"{problem}; nothing was run")
    for number, path in enumerate(paths, 1):
        print(f"{path}: running ...", flush=True)
        running = {}
        try:
            # absolute, links kept: a linked notebook runs in the link's folder, as Jupyter
            # runs it (execute writes through the link)
            seconds = execute(path.absolute(), args.timeout, running)
        except CellFailed as failed:  # one line, not nbclient's and the kernel's tracebacks
            print(failed.message(path, len(paths) - number), file=sys.stderr)
            return 1
        except NotebookChanged as changed:
            print(changed.message(path, len(paths) - number), file=sys.stderr)
            return 1
        except KeyboardInterrupt:  # Ctrl-C: one line, not three chained tracebacks
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # more Ctrl-C while it exits: no more
            print(_interrupted(path, running, len(paths) - number), file=sys.stderr)
            return 130
        print(f"{path}: done in {seconds:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
