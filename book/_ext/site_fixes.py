"""Small fixes of the themes' output, so that every page loads without a console error.

The front page links to the book's PDF only where the site has it (`make pdf` adds it after the
build): ``_static/pdf.json`` says whether it is there, so that the page's script never asks for a
missing file (a 404 would be a console error).

sphinx-thebe 0.3.1 registers its inline configuration script (``const THEBE_JS_URL = ...``) once
for each time Jupyter Book 1 fires ``env-before-read-docs``; where that is twice, every page runs
the script twice (once with the file name None, once "") and the second ``const`` throws a SyntaxError. Each script
is kept once here.

The solutions pages are not numbered chapters, and Sphinx would count their figures and tables on
from one page to the next (the last page's first figure was Fig. 8). Each solutions page numbers its
own from 1, after its chapter: Fig. S3.1, Table S3.2 on the page of chapter 3's solutions.
"""

import json
import re
from pathlib import Path

from sphinx.application import Sphinx


def drop_repeated_scripts(app, pagename, templatename, context, doctree) -> None:
    seen, unique = set(), []
    for script in context.get("script_files", []):
        attributes = getattr(script, "attributes", {})
        filename = str(getattr(script, "filename", script) or "")  # an inline script: None or ""
        key = (filename, tuple(sorted((k, str(v)) for k, v in attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"][:] = unique  # in place: the builder's own list, which themes extend


PDF = "lenet-book.pdf"  # in _static/, where `make pdf` copies it


def say_whether_the_pdf_is_there(app, exception) -> None:
    if exception is None and app.builder.format == "html":
        static = Path(app.outdir) / "_static"
        (static / "pdf.json").write_text(json.dumps({"pdf": (static / PDF).is_file()}) + "\n")


SOLUTIONS_PAGE = re.compile(r"notebooks/solutions/(\d+)_")  # notebooks/solutions/03_training


def number_solutions_by_chapter(app, env) -> list[str]:
    """After Sphinx has numbered every figure and table (``env.toc_fignumbers``, rebuilt on every
    build): on a solutions page, the k-th of each kind becomes ("S3", k), shown as S3.k."""
    changed = []
    for docname, kinds in env.toc_fignumbers.items():
        page = SOLUTIONS_PAGE.match(docname)
        if not page:
            continue
        for numbers in kinds.values():
            for k, target in enumerate(sorted(numbers, key=numbers.get), start=1):
                numbers[target] = (f"S{int(page.group(1))}", k)
        changed.append(docname)
    return changed


def setup(app: Sphinx) -> dict:
    app.connect("html-page-context", drop_repeated_scripts, priority=900)  # after the themes' own
    app.connect("env-get-updated", number_solutions_by_chapter, priority=900)  # after Sphinx numbers them
    app.connect("build-finished", say_whether_the_pdf_is_there)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
