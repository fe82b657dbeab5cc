"""Small fixes of the themes' output, so that every page loads without a console error.

The front page links to the book's PDF only where the site has it (`make pdf` adds it after the
build): ``_static/pdf.json`` says whether it is there, so that the page's script never asks for a
missing file (a 404 would be a console error).

sphinx-thebe 0.3.1 registers its inline configuration script (``const THEBE_JS_URL = ...``) once
for each time Jupyter Book 1 fires ``env-before-read-docs``; where that is twice, every page runs
the script twice (once with the file name None, once "") and the second ``const`` throws a SyntaxError. Each script
is kept once here.
"""

import json
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


def setup(app: Sphinx) -> dict:
    app.connect("html-page-context", drop_repeated_scripts, priority=900)  # after the themes' own
    app.connect("build-finished", say_whether_the_pdf_is_there)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
