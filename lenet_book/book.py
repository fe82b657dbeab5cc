"""The book as a repository: its chapter and solutions lists and the commit a record was made from.

Tools (``tools/``), tests and the GPU check read the chapters from here, so that _toc.yml is
parsed in one place. All three need a checkout of the repository: an installed copy of
``lenet_book`` (as on Colab) has neither _toc.yml nor git history.
"""

from __future__ import annotations

import os
import posixpath
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def chapters() -> list[Path]:
    """The chapter notebooks, ``notebooks/NN_topic.ipynb``, in the order _toc.yml lists them."""
    return _listed(r"notebooks/\d\d_.+", "chapter")


def solutions() -> list[Path]:
    """The solutions notebooks, ``notebooks/solutions/NN_topic.ipynb`` (one per chapter, with the
    chapter's file name), in the order _toc.yml lists them."""
    return _listed(r"notebooks/solutions/.+", "solutions")


def _no_chapters() -> str:
    """What a tool says when chapters() lists none: it would check nothing and pass."""
    return (f"no chapter was found in {ROOT / '_toc.yml'}: it lists no notebooks/NN_topic.ipynb "
            "(as '- file: notebooks/01_topic' or '- glob: notebooks/0*'), so there is nothing to "
            "check; correct _toc.yml, or name the notebooks on the command line")


def _listed(pattern: str, which: str) -> list[Path]:
    """The notebooks whose _toc.yml entry (``file:``, without its suffix) matches ``pattern``, in
    the book's order. The file is read as YAML, as Jupyter Book reads it: a commented-out entry is
    not listed, a quoted one is, and ``notebooks/01_a.ipynb`` is ``notebooks/01_a``."""
    toc = ROOT / "_toc.yml"
    if not toc.is_file():
        raise FileNotFoundError(f"No table of contents at {toc}: the {which} list needs a "
                                "checkout of the book's repository, not an installed copy of "
                                "lenet_book.")
    import yaml  # pyyaml: requirements.txt (and Jupyter Book) install it

    try:
        contents = yaml.safe_load(toc.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ValueError(f"{toc} is not valid YAML, so the {which} list cannot be read: "
                         f"{error}") from None
    if not isinstance(contents, dict):
        raise ValueError(f"{toc} must be a YAML mapping (root:, parts: or chapters:, as Jupyter "
                         f"Book reads it), got {type(contents).__name__}")
    stems = []
    for file in _toc_files(contents, toc):
        stem, suffix = posixpath.splitext(posixpath.normpath(file))
        if suffix != ".ipynb":
            stem = posixpath.normpath(file)
            if suffix in _PAGE_SUFFIXES:  # a MyST or reST page: no notebook to run or tag
                continue
            if not (ROOT / f"{stem}.ipynb").exists() and any(
                    (ROOT / f"{stem}{page}").exists() for page in _PAGE_SUFFIXES):
                continue  # 'file: x' naming the page x.md, as Jupyter Book finds it
        if re.fullmatch(pattern, stem):
            stems.append(stem)
    return [ROOT / f"{stem}.ipynb" for stem in stems]


_PAGE_SUFFIXES = (".md", ".rst", ".myst")  # pages Jupyter Book reads that are not notebooks


def _glob(pattern: str, toc: Path) -> list[str]:
    """The book's files that a ``glob:`` entry names, as Jupyter Book 1 expands it: the pattern
    is matched against the paths (relative to the book's root, without their suffix) of its
    .ipynb, .md and .rst files, sorted; hidden files and folders (.ipynb_checkpoints) are not
    pages."""
    if not isinstance(pattern, str) or not pattern.strip():
        raise ValueError(f"{toc}: 'glob: {pattern!r}' is not a file pattern; write it as text, "
                         "e.g. 'glob: notebooks/0*'")
    found = set()
    for suffix in (".ipynb", *_PAGE_SUFFIXES):
        for path in ROOT.glob(pattern.strip().strip("/") + suffix):
            relative = path.relative_to(ROOT).as_posix()
            if path.is_file() and not any(part.startswith(".") for part in relative.split("/")):
                found.add(relative)
    return sorted(found, key=lambda name: posixpath.splitext(name)[0])


def _toc_files(entry, toc: Path) -> list[str]:
    """Every ``file:`` of a _toc.yml entry and of those below it (parts, chapters, sections, or
    sphinx-external-toc's subtrees and entries), and the files a ``glob:`` names, in order; the
    top-level mapping's ``root`` comes first. An entry that is not a mapping, or a ``file`` that
    is not text, is refused (Jupyter Book refuses it too), not passed over."""
    if not isinstance(entry, dict):
        raise ValueError(f"{toc}: an entry is {entry!r}, not a mapping such as "
                         "'- file: notebooks/01_topic'")
    files = []
    for key in ("root", "file"):
        if key in entry:
            if not isinstance(entry[key], str):
                raise ValueError(f"{toc}: '{key}: {entry[key]!r}' is not a file path; write it as "
                                 "text, e.g. 'file: notebooks/01_topic'")
            files.append(entry[key])
    if "glob" in entry:
        files += _glob(entry["glob"], toc)
    for key in ("parts", "chapters", "sections", "subtrees", "entries"):
        children = entry.get(key)
        if children is None:
            continue
        if not isinstance(children, list):
            raise ValueError(f"{toc}: '{key}:' must hold a list of entries ('- file: ...'), got "
                             f"{children!r}")
        for child in children:
            files += _toc_files(child, toc)
    return files


def commit() -> str:
    """The checkout's commit, ``git describe --always --dirty`` (e.g. ``e4edd28-dirty``).

    Where there is no git repository (a copy of the working tree on a GPU machine) it is
    ``$BOOK_COMMIT`` if set, else ``"unknown"``.
    """
    try:
        described = subprocess.run(
            ["git", "-c", "safe.directory=*", "describe", "--always", "--dirty"],
            cwd=ROOT, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        described = None
    if described is not None and described.returncode == 0 and described.stdout.strip():
        return described.stdout.strip()
    return os.environ.get("BOOK_COMMIT", "unknown")
