"""Numbered, captioned tables: the tables a code cell displays (pandas DataFrames), and Markdown
tables.

Figures get their number and caption from a cell's ``mystnb.figure`` metadata; myst-nb has no such
option for tables, and would number a DataFrame wrapped that way as a figure. A chapter gives a
cell that displays tables the metadata

    "table": {"caption": "What the table shows.", "name": "tab-epoch-parts"}

(a list of such entries when the cell displays several tables, in the order it displays them).
This extension wraps each table output in a node that Sphinx numbers like a table ("Table 4.2",
per chapter, as ``numfig`` numbers figures), with the caption above it, and registers the name so
that ``{numref}`tab-epoch-parts``` links to it. Backticks in a caption become inline code.
Jupyter and Colab ignore the metadata, as they ignore the figures'.

A Markdown table gets its caption from a paragraph right above it that starts with ``Table:``
(pandoc's convention, which reads well as plain text in Jupyter and Colab, where a MyST
``{table}`` directive would show as raw text):

    Table: Some entries of the Fashion-MNIST benchmark.

    | classifier | test accuracy |
    | --- | --- |

tests/test_book.py checks that every table has a caption; tests/test_site.py that every table on
the site is numbered.
"""

import re

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)


class output_table(nodes.General, nodes.Element):  # noqa: N801 (docutils names nodes in lower case)
    """A table a code cell displayed, with its caption: numbered as a table."""


def caption_node(text: str) -> nodes.caption:
    caption = nodes.caption(text)
    for i, part in enumerate(re.split(r"`([^`]+)`", text)):
        if part:
            caption += nodes.literal(part, part) if i % 2 else nodes.Text(part)
    return caption


def is_table_output(bundle: nodes.Element) -> bool:
    html = [c for c in bundle.children if c.get("mime_type") == "text/html"]
    return bool(html) and "<table" in html[0].astext()


CAPTION = "Table:"


def number_tables(app: Sphinx, doctree: nodes.document) -> None:
    caption_markdown_tables(doctree)
    for cell in list(doctree.findall(nodes.container)):
        if cell.get("nb_element") != "cell_code" or "table" not in cell.get("cell_metadata", {}):
            continue
        entries = cell["cell_metadata"]["table"]
        entries = entries if isinstance(entries, list) else [entries]
        bundles = [b for b in cell.findall(nodes.container)
                   if b.get("nb_element") == "mime_bundle" and is_table_output(b)]
        if len(bundles) != len(entries):
            logger.warning(f"cell {cell.get('cell_index')}: {len(entries)} table caption(s) in its metadata "
                           f"for {len(bundles)} table output(s)", location=cell)
        for bundle, entry in zip(bundles, entries):
            table = output_table(classes=["table-output"])
            table += caption_node(str(entry["caption"]))
            bundle.replace_self(table)
            table += bundle
            name = nodes.fully_normalize_name(str(entry["name"]))
            table["names"].append(name)
            doctree.note_explicit_target(table, table)


def caption_markdown_tables(doctree: nodes.document) -> None:
    for table in list(doctree.findall(nodes.table)):
        paragraph = table.previous_sibling()
        if not isinstance(paragraph, nodes.paragraph) or not paragraph.astext().startswith(CAPTION):
            continue
        first = paragraph[0]
        if not isinstance(first, nodes.Text) or not first.startswith(CAPTION):
            continue
        title = nodes.title()
        rest = str(first)[len(CAPTION):].lstrip()
        if rest:
            title += nodes.Text(rest)
        title.extend(paragraph.children[1:])
        table.insert(0, title)
        paragraph.parent.remove(paragraph)
        if not table["ids"]:
            doctree.set_id(table)


def visit_output_table(self, node: output_table) -> None:
    self.body.append(self.starttag(node, "div", CLASS="table-output"))


def depart_output_table(self, node: output_table) -> None:
    self.body.append("</div>\n")


def setup(app: Sphinx) -> dict:
    app.add_enumerable_node(output_table, "table", lambda node: node[0].astext(),
                            html=(visit_output_table, depart_output_table))
    app.connect("doctree-read", number_tables)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
