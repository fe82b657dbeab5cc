"""Formulas in the single-page build (tools/make_pdf.py prints it to the book's PDF).

Sphinx adds MathJax to a page only if that page's own source has math; the single-page build is
one page whose own source, the front page, has none, so its chapters' formulas would stay raw TeX.
For that builder only, this asks Sphinx to load MathJax (and every other asset) on every page.
"""

from sphinx.application import Sphinx


def load_assets_everywhere(app: Sphinx) -> None:
    if app.builder.name == "singlehtml":
        app.set_html_assets_policy("always")


def setup(app: Sphinx) -> dict:
    app.connect("builder-inited", load_assets_everywhere)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
