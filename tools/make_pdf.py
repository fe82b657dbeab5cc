"""The whole book as one PDF, offline: Debian's Chromium prints the single-page build.

    python tools/make_pdf.py                          # -> _build/pdf/lenet-book.pdf
    python tools/make_pdf.py --out FILE.pdf --copy-to _build/html/_static/lenet-book.pdf

`make pdf` runs it. Steps: `jupyter-book build --builder singlehtml` (every page of _toc.yml, in
order, on one HTML page, with the site's styles and its bundled MathJax), then headless Chromium
opens that page from disk with no network, waits until MathJax has typeset every formula and every
image has loaded, and prints it to A4 (Chrome DevTools' Page.printToPDF): each chapter starts on a
new page (book/_static/book.css), page numbers in the footer, one bookmark per heading, and links
between chapters that stay inside the PDF. Needs /usr/bin/chromium and /usr/bin/chromedriver
(apt-get install chromium chromium-driver; the Makefile installs them), and to build the book,
book/browser/train_data.min.js (python tools/export_training_subset.py; make book makes it).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # lenet_book from this checkout, installed or not
from lenet_book.data import replaced_atomically  # noqa: E402
from tools.export_training_subset import OUT as TRAIN_SUBSET  # noqa: E402  (it loads no torch)
from tools.export_training_subset import cannot_replace  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
MM_PER_INCH = 25.4
FOOTER = ('<div style="font-size:8px; width:100%; text-align:center; color:#555;">'
          '<span class="pageNumber"></span> / <span class="totalPages"></span></div>')


def build_single_page(out: Path) -> Path:
    """jupyter-book's single-page HTML build of the book into `out`; the folder it wrote."""
    command = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(REPO), "--builder", "singlehtml",
               "--path-output", str(out), "--warningiserror", "--keep-going"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"make_pdf: the single-page build failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return out / "_build" / "singlehtml"


COPY_PREFIX = "lenet-book-print-"  # single_page's copies, each under a new name


def single_page(folder: Path) -> Path:
    """The single page of a singlehtml build, moved to where its links point from.

    Jupyter Book writes it at the root document's path (book/intro.html) but with every link,
    image and script relative to the build folder; a copy at the top of that folder shows it whole.
    The copy gets a name of its own, so that no file of the user's (a lenet-book.html of theirs)
    is ever replaced; the caller removes it once printed.
    """
    written = _root_page(folder)
    if not written.is_file():
        sys.exit(f"make_pdf: no single-page build at {written}")
    try:
        handle, name = tempfile.mkstemp(suffix=".html", prefix=COPY_PREFIX, dir=folder)
        os.close(handle)
        shutil.copyfile(written, name)
    except OSError as error:
        sys.exit(f"make_pdf: cannot copy {written} to the top of {folder} to print it "
                 f"({error.strerror or error}); nothing was changed")
    return Path(name)


def _root_page(folder: Path) -> Path:
    """Where a singlehtml build in ``folder`` writes its page: at the root document's path."""
    root = yaml.safe_load((REPO / "_toc.yml").read_text())["root"]
    return Path(folder) / f"{root}.html"


def _toc_files(entry) -> list[str]:
    """Every page (``file:``) that the table of contents ``entry`` (_toc.yml, read) lists."""
    if isinstance(entry, dict):
        return ([entry["file"]] if isinstance(entry.get("file"), str) else []) + [
            name for value in entry.values() for name in _toc_files(value)]
    if isinstance(entry, list):
        return [name for value in entry for name in _toc_files(value)]
    return []


def _other_pages(folder: Path) -> list[Path]:
    """The pages in ``folder`` beside the root page, in the folders where the book's pages live
    (book/, notebooks/, ...): a multi-page build has one per chapter; a singlehtml build has none
    (single_page's copies, and lenet-book.html that earlier versions made, are not counted)."""
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    places = sorted({Path(folder) / Path(name).parent for name in _toc_files(toc) + [toc["root"]]})
    mine = {_root_page(folder), Path(folder) / "lenet-book.html"}
    return [page for place in places for page in sorted(place.glob("*.html"))
            if page not in mine and not page.name.startswith(COPY_PREFIX)]


def _not_a_build(folder: Path) -> str | None:
    """Why ``folder`` (--singlehtml) is not a single-page build to print (missing, a file, or a
    folder without the book's page), or None; checked before the browser is looked for."""
    use = ("give the folder that `jupyter-book build --builder singlehtml` wrote (its "
           "_build/singlehtml), or leave --singlehtml out to build one")
    if not os.path.isdir(folder):
        what = "is a file, not a folder" if os.path.lexists(folder) else "does not exist"
        return f"make_pdf: --singlehtml {folder} {what}: {use}; nothing was changed"
    page = _root_page(folder)
    if not page.is_file():
        return (f"make_pdf: --singlehtml {folder} holds no single-page build (no {page}): "
                f"{use}; nothing was changed")
    others = _other_pages(folder)
    if others:  # e.g. _build/html, the site: its front page alone would be printed as the book
        return (f"make_pdf: --singlehtml {folder} is a multi-page build (such as the site that "
                f"`make book` writes to _build/html): it has {len(others)} page(s) beside {page}, "
                f"such as {others[0]}, and only {page} would be printed; {use}; nothing was "
                "changed")
    return None


def _missing_page_data() -> str | None:
    """Why the book cannot be built here: the images that the page "LeNet in your browser"
    includes (book/browser/train_data.min.js, made from data/, never committed) are missing; or
    None. `make pdf` makes them first (make book)."""
    if TRAIN_SUBSET.is_file():
        return None
    shown = TRAIN_SUBSET.relative_to(REPO) if TRAIN_SUBSET.is_relative_to(REPO) else TRAIN_SUBSET
    return (f"make_pdf: {shown} is missing (the training images that the page 'LeNet in your "
            "browser' includes, made from data/ and never committed), so the book cannot be "
            "built: run python tools/export_training_subset.py (or make book) first, or give "
            "--singlehtml a build made already")


def _missing_browser() -> str | None:
    """Why Chromium cannot print here (it or its driver is not installed), or None."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if missing:
        return f"make_pdf: missing {', '.join(missing)}: apt-get install -y chromium chromium-driver"
    return None


def _not_replaceable(option: str, path: Path) -> str | None:
    """Why the PDF may not be written to ``path`` (an existing folder, or a file that is not a PDF,
    which would be lost), or None: a new file, an empty one, or an earlier PDF."""
    if not os.path.exists(path):
        return None
    if os.path.isdir(path):
        return (f"make_pdf: {option} {path} is a folder; give a file name, e.g. "
                f"{option} {Path(path) / 'lenet-book.pdf'}; nothing was changed")
    if not os.path.isfile(path):
        return (f"make_pdf: {option} {path} is not a regular file (a device, pipe or socket); "
                "give a file's path; nothing was changed")
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as error:
        return (f"make_pdf: {option} {path} cannot be read ({error.strerror or error}) to check that "
                "it is an earlier PDF; nothing was changed: give another "
                f"{option}, or move that file away")
    if head and head != b"%PDF":  # every PDF starts so; an empty file holds nothing to lose
        return (f"make_pdf: {option} {path} exists and is not a PDF: nothing was changed, so "
                f"nothing of it is lost; give another {option}, or move that file away")
    return None


def _cannot_write(option: str, path: Path) -> str | None:
    """Why this user cannot write the PDF at ``path`` (a symbolic link that loops, a read-only
    file, a folder it may not write in, a file or a dangling link on the way to it), checked as
    the exports check their files, or None."""
    problem = cannot_replace(Path(path), option)
    return f"make_pdf: {option} {path}: {problem}; nothing was changed" if problem else None


def _site_flag(target: Path) -> Path | None:
    """The built site's ``_static/pdf.json`` beside ``target``, which tells the front page that the
    PDF is there, or None: outside a site's _static folder a pdf.json is someone else's, never
    made nor replaced."""
    flag = target.parent / "pdf.json"
    if _is_site_flag(flag) or (target.parent.name == "_static" and not os.path.lexists(flag)):
        return flag
    return None


def _is_site_flag(path: Path) -> bool:
    """Whether ``path`` is the pdf.json a site build writes: {"pdf": true or false}, nothing else."""
    try:
        flag = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(flag, dict) and set(flag) == {"pdf"}


def _foreign_flag(target: Path, option: str = "--copy-to") -> str | None:
    """Why the front page cannot be told of the PDF written or copied to ``target`` in a site's
    _static folder (a pdf.json there that the site did not write), or None."""
    flag = target.parent / "pdf.json"
    if target.parent.name == "_static" and os.path.lexists(flag) and not _is_site_flag(flag):
        return (f"make_pdf: {option} {target}: {flag} is not the pdf.json a site build writes "
                '({"pdf": true} or false): nothing was changed, so nothing of it is lost; move '
                "that file away, or rebuild the site (make book)")
    return None


def browser():
    problem = _missing_browser()
    if problem:
        sys.exit(problem)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--allow-file-access-from-files", "--window-size=1100,1400",
                 "--host-resolver-rules=MAP * ~NOTFOUND"):  # no network: the PDF uses only what ships
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)


def print_to_pdf(page: Path, out: Path, timeout: float = 120) -> int:
    """Print `page` to `out` once its formulas and images are ready; the number of bytes written."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser()
    try:
        driver.set_page_load_timeout(timeout)
        driver.set_script_timeout(timeout)
        driver.get(page.resolve().as_uri())  # a file URI needs an absolute path
        WebDriverWait(driver, timeout).until(lambda d: d.execute_script("return document.readyState") == "complete")
        # MathJax (deferred) typesets after the load event: wait for its promise, then for every image.
        state = driver.execute_async_script("""
            const done = arguments[0];
            const images = () => Promise.all(Array.from(document.images).map(i => i.complete ? null :
                new Promise(r => { i.addEventListener('load', r); i.addEventListener('error', r); })));
            const math = document.querySelectorAll('.math').length;
            const ready = window.MathJax && MathJax.startup && MathJax.startup.promise;
            (ready ? MathJax.startup.promise : Promise.resolve())
              .then(images).then(() => done({math, typeset: document.querySelectorAll('mjx-container').length,
                                             errors: document.querySelectorAll('mjx-merror').length}))
              .catch(e => done({error: String(e)}));""")
        if state.get("error") or state["errors"] or state["typeset"] < state["math"]:
            sys.exit(f"make_pdf: MathJax did not typeset every formula: {state}")
        pdf = driver.execute_cdp_cmd("Page.printToPDF", {
            "paperWidth": 210 / MM_PER_INCH, "paperHeight": 297 / MM_PER_INCH,  # A4
            "marginTop": 0.6, "marginBottom": 0.7, "marginLeft": 0.6, "marginRight": 0.6,
            "printBackground": True, "displayHeaderFooter": True,
            "headerTemplate": "<div></div>", "footerTemplate": FOOTER,
            "generateTaggedPDF": True, "generateDocumentOutline": True,
        })
    finally:
        driver.quit()
    data = base64.b64decode(pdf["data"])
    try:  # whole or not at all: a full disk or a size limit never leaves half a PDF
        out.parent.mkdir(parents=True, exist_ok=True)
        with replaced_atomically(Path(os.path.realpath(out)), "wb") as f:
            f.write(data)
    except (OSError, ValueError) as error:
        sys.exit(f"make_pdf: cannot write {out} ({getattr(error, 'strerror', None) or error}); "
                 "nothing was changed")
    return len(data)


def copy_into_site(pdf: Path, target: Path) -> None:
    """Copy the PDF into the built site, and tell the front page (_static/pdf.json, written by
    book/_ext/site_fixes.py at each build) that it may now show its link; elsewhere only copy it."""
    problem = _cannot_write("--copy-to", target)  # before a folder is made on the way
    if problem:
        sys.exit(problem)
    try:  # whole or not at all, so that the site never links to half a PDF
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(pdf, "rb") as source, replaced_atomically(Path(os.path.realpath(target))) as f:
            shutil.copyfileobj(source, f)
        _tell_the_site(target)
    except (OSError, ValueError) as error:
        sys.exit(f"make_pdf: cannot copy the PDF to {target} "
                 f"({getattr(error, 'strerror', None) or error})")


def _tell_the_site(target: Path) -> None:
    """Tell a built site's front page that the PDF at ``target`` is there (_static/pdf.json), if
    ``target`` is in a site's _static folder; elsewhere do nothing."""
    flag = _site_flag(target)
    if flag is not None:
        with replaced_atomically(flag, "w", encoding="utf-8") as f:
            f.write(json.dumps({"pdf": True}) + "\n")


def _not_a_pdf_name(option: str, path: Path) -> str | None:
    """Why ``path`` is no name for the PDF (it does not end in .pdf: a browser or a viewer would
    take it for something else), or None."""
    if path.suffix.lower() == ".pdf":
        return None
    stem = "lenet-book" if path.name.lower() in (".pdf", "") else path.stem
    example = path.parent / f"{stem}.pdf"
    return (f"make_pdf: {option} {path}: the PDF's file name must end in .pdf, e.g. {option} "
            f"{example}; nothing was changed")


def _same_file_twice(paths: list[tuple[str, Path]]) -> str | None:
    """Why two of ``paths`` (--out, then each --copy-to) name one file (a copy onto the PDF
    itself, or the same --copy-to twice), or None."""
    seen: dict[str, tuple[str, Path]] = {}
    for option, path in paths:
        try:
            real = os.path.realpath(path)
        except (OSError, ValueError):  # a loop or a NUL: the other checks name it
            continue
        if real in seen:
            first, earlier = seen[real]
            if first == "--out":
                what = f"is the file --out {earlier} writes, so there is nothing to copy"
            else:
                what = ("is given twice" if str(earlier) == str(path)
                        else f"is the file of an earlier --copy-to ({earlier})")
            return (f"make_pdf: {option} {path} {what}; leave that {option} out; nothing was "
                    "changed")
        seen[real] = (option, path)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=REPO / "_build" / "pdf" / "lenet-book.pdf")
    parser.add_argument("--copy-to", action="append", default=[],
                        help="also copy the PDF here (make pdf: into the built site's _static/)")
    parser.add_argument("--singlehtml", help="print this existing single-page build (_build/singlehtml)")
    args = parser.parse_args(argv)
    for option, given in [("--out", args.out), ("--singlehtml", args.singlehtml)] + [
            ("--copy-to", target) for target in args.copy_to]:
        if given is not None and not str(given):  # Path("") is the current folder: never meant
            parser.error(f"{option} is empty (''): give a path, e.g. {option} "
                         f"{'_build/singlehtml' if option == '--singlehtml' else 'lenet-book.pdf'}"
                         f"{', or leave it out' if option != '--copy-to' else ''}; nothing was written")
    args.out, args.copy_to = Path(args.out), [Path(target) for target in args.copy_to]
    args.singlehtml = None if args.singlehtml is None else Path(args.singlehtml)
    paths = [("--out", args.out)] + [("--copy-to", target) for target in args.copy_to]
    read = [("--singlehtml", args.singlehtml)] if args.singlehtml else []
    for option, path in paths + read:
        if str(path).startswith("~"):  # before a folder called '~' is created here
            parser.error(f"{option} {path} starts with '~', which Python does not expand to the "
                         "home folder (it would name a folder called '~' here); write the path "
                         f"in full, e.g. {option} {os.path.expanduser(path)}; nothing was written")
    # Before anything is built or written: a file the PDF would replace, a build that is not
    # there; then the tools, a missing browser.
    for option, path in paths:
        problem = (_not_replaceable(option, path) or _cannot_write(option, path)
                   or _not_a_pdf_name(option, path))
        if problem:
            sys.exit(problem)
    problem = _same_file_twice(paths)
    if problem:
        sys.exit(problem)
    for option, target in paths:  # --out into a site's _static tells the site too
        problem = _foreign_flag(target, option)
        if problem:
            sys.exit(problem)
    problem = args.singlehtml and _not_a_build(args.singlehtml)
    if problem:
        sys.exit(problem)
    problems = [_missing_browser(), None if args.singlehtml else _missing_page_data()]
    if any(problems):  # both at once: each takes its own step to fix
        sys.exit("\n".join(filter(None, problems)))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lenet-book-pdf-") as scratch:
        page = single_page(args.singlehtml or build_single_page(Path(scratch)))
        try:
            size = print_to_pdf(page, args.out)
        finally:  # the copy is this tool's own: never left in the user's build
            page.unlink(missing_ok=True)
    try:  # the site's front page shows its link to a PDF written there by --out too
        _tell_the_site(args.out)
    except (OSError, ValueError) as error:
        sys.exit(f"make_pdf: {args.out} was written, but {args.out.parent / 'pdf.json'} could "
                 f"not be set ({getattr(error, 'strerror', None) or error}), so the site's front "
                 "page hides its link; rebuild the site (make book) and rerun")
    for target in args.copy_to:
        copy_into_site(args.out, target)
    print(f"{args.out} ({size / 1e6:.1f} MB) in {time.perf_counter() - started:.0f} s"
          + "".join(f"; copied to {t}" for t in args.copy_to))
    return 0


if __name__ == "__main__":
    sys.exit(main())
