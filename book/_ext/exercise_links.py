"""Links between exercises and their solutions, written in plain Markdown that Jupyter, Colab and
this site all render (MyST directives would show as raw text in a notebook).

A chapter marks an exercise with an HTML anchor, ``<a id="exercise-3-2"></a>**Exercise 3.2.**``,
and links to ``solutions/03_training.ipynb#solution-3-2``; a solutions notebook has a heading
``## Solution 3.2`` (its section id is ``solution-3-2``) and links back to
``../03_training.ipynb#exercise-3-2``. MyST checks a link's ``#fragment`` against the headings it
made slugs for, which knows neither an HTML anchor nor a section id: this extension adds both, so
that such links resolve (and a misspelt one still fails the build). tests/test_exercises.py
checks that every exercise has a hint and a solution; tests/test_site.py follows every link.
"""

import re

from docutils import nodes
from sphinx.application import Sphinx

ANCHOR = re.compile(r'<a id="((?:exercise|solution)-(\d+)-(\d+))">')  # inline HTML: one raw node per tag
SECTION_ID = re.compile(r"(exercise|solution)-(\d+)-(\d+)")


def register_anchors(app: Sphinx, doctree: nodes.document) -> None:
    slugs = app.env.metadata[app.env.docname].setdefault("myst_slugs", {})
    for raw in doctree.findall(nodes.raw):
        for match in ANCHOR.finditer(raw.astext()):
            kind = match.group(1).split("-")[0].capitalize()
            slugs.setdefault(match.group(1), (raw.line or 0, match.group(1),
                                              f"{kind} {match.group(2)}.{match.group(3)}"))
    for section in doctree.findall(nodes.section):
        for section_id in section["ids"]:
            if SECTION_ID.fullmatch(section_id):
                title = section[0].astext() if section.children else section_id
                slugs.setdefault(section_id, (section.line or 0, section_id, title))


def setup(app: Sphinx) -> dict:
    app.connect("doctree-read", register_anchors)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
