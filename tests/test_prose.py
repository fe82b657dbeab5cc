"""Specification: every number a chapter's prose states is one its run printed, a citation, or a definition.

A reader trusts the sentence more than the table beside it, and nbval only proves that the
*outputs* reproduce. So, for every chapter in _toc.yml, every number written in a markdown
cell that is

* a decimal (0.797), a count with thousands separators (61,706) or in words (11 million),
* a percentage (4.5%), a ratio (1.48×, 8.4x, 1.5 times),
* a timing (5.3 s, 12 ms, 1.5 minutes) or a size (47 MB)

must be **found in the chapter's stored outputs** (stream text, text/plain, text/html,
text/markdown and error messages; never images) **at the precision written**. A number written
with k decimals stands for everything within half a unit of its last digit, and it is found
when some output number lies in that interval *and is itself written at least as precisely*:
0.80 is found by an output 0.797 or 0.80, but not by an output 0.8 (the prose would claim a
digit the run never showed); 0.8 is found by 0.772. Besides the number as printed:

* a percentage is also found by an output fraction (77% by 0.772) or an output with a % sign;
  a percentage is *not* found by a bare output number (print it with its % or as a fraction);
* a decimal is also found by an output percentage (0.772 by 77.2%);
* a timing is also found by an output timing in another unit (1.5 minutes by "90.4 s").

Plain integers without a unit ("10 epochs", "batches of 256", "the 1990s", "chapter 4") are
sizes and settings, not results: they are not checked.

A number needs no output when one of these rules says what it is:

1. **Cited.** Its sentence (or list item, or heading) carries a {cite}`key` role: the
   number comes from that source in book/references.bib. A table is one unit: a role in any
   of its rows (its header, say) cites every row.
2. **Math.** It is inside $...$, $$...$$, a {math} role or a math block: a definition or
   arithmetic the reader can redo.
3. **A setting.** The same value is a number literal in one of the chapter's code cells
   (learning rate 0.9; 62,000 written 62_000; a percentage p% written p/100, as 30% and
   0.3): the prose says what the chapter set, not what it measured. Inside a code span a
   literal of the `lenet_book` package counts too (the span shows code the chapter calls).
4. **A name, not a quantity.** A section, chapter, figure, table, equation, exercise or step
   number and an edition or release ("section 7.6", "edition 1.0"); a version ("torch 2.11",
   "Python 3.12", and anything shaped a.b.c such as 2.14.1); a number that is part of a word,
   name, path, file or URL (LeNet-5, float32, 03_training.ipynb, https://...); a dimension
   (28×28, 5 x 5).
5. **An exercise.** The section under the heading "Exercises" proposes things to try; it
   reports no result.

Cells are numbered as Jupyter counts them, from 0 over all cells. To see every number that is
not found, per chapter, run ``python tools/prose_numbers.py [chapters]``.
"""

from __future__ import annotations

import copy
import io
import json
import re
import sys
import tokenize
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pytest

from lenet_book.book import chapters, solutions

REPO = Path(__file__).resolve().parents[1]
BIBLIOGRAPHY = REPO / "book" / "references.bib"


CHAPTERS = chapters()  # the one reader of _toc.yml
NOTEBOOKS = CHAPTERS + solutions()  # the solutions are held to the chapters' standard


# --- Numbers and their precision ---------------------------------------------------------------

@dataclass(frozen=True)
class Quantity:
    """A written number: its value and half a unit of its last digit (0.80 -> 0.80 ± 0.005)."""

    value: Decimal
    half_unit: Decimal

    @classmethod
    def parse(cls, written: str) -> Quantity:
        number = Decimal(written.replace(",", "").replace("_", "").replace("−", "-"))
        return cls(abs(number), Decimal("0.5").scaleb(number.as_tuple().exponent))

    def scaled(self, factor: Decimal) -> Quantity:
        return Quantity(self.value * factor, self.half_unit * factor)

    def is_found_by(self, shown: Quantity) -> bool:
        """Shown within half a unit of the written digits, and at least as precisely."""
        return abs(shown.value - self.value) <= self.half_unit and shown.half_unit <= self.half_unit


# Seconds per unit, for timings written in one unit and printed in another.
SECONDS = {"µs": Decimal("1e-6"), "ms": Decimal("1e-3"), "s": Decimal(1),
           "min": Decimal(60), "h": Decimal(3600)}
TIME_UNIT = re.compile(r"(µs|us|ms|milliseconds?|microseconds?|sec(?:ond)?s?|s|min(?:ute)?s?|h|hours?|hrs?)"
                       r"(?!\w)")
SIZE_UNIT = re.compile(r"([KMGT]i?B|bytes?)(?!\w)")
NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?(?!\d)|\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def time_unit(word: str) -> str:
    for short, pattern in (("µs", r"µs|us|microseconds?"), ("ms", r"ms|milliseconds?"),
                           ("min", r"min(?:ute)?s?"), ("h", r"h|hours?|hrs?"), ("s", r"s|sec(?:ond)?s?")):
        if re.fullmatch(pattern, word):
            return short
    raise ValueError(word)


# --- The prose: sentences and the numbers they state ---------------------------------------------

@dataclass(frozen=True)
class Stated:
    """A number a markdown cell states, as written, with the sentence around it."""

    cell: int
    written: str
    kind: str           # decimal, count, percent, ratio, timing, size
    quantity: Quantity
    unit: str | None    # the time unit of a timing
    sentence: str
    cited: bool
    in_code: bool


ROLE = re.compile(r"\{[\w:-]+\}`[^`]*`")
CITE = re.compile(r"\{cite(?::\w+)?\}`")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
MATH = re.compile(r"\$\$.+?\$\$|(?<![\\\w])\$[^$\n]+?\$", re.S)
IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
URL = re.compile(r"<?https?://[^\s>)]+>?")
TAG = re.compile(r"<[^>\n]+>")
FENCE = re.compile(r"^(`{3,}|~{3,}|:{3,})([^\n]*)\n(.*?)^\1[ \t]*$", re.M | re.S)
ABBREVIATIONS = re.compile(r"\b(e\.g|i\.e|et al|cf|vs|Fig|Eq|Sec|No|approx)\.", re.I)
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(*_\[`{$A-Z0-9])")
# Rule 4: what a number names rather than measures, by the words just before it.
NAMING_WORDS = re.compile(
    r"(?:\b(?:sections?|chapters?|figures?|fig\.|tables?|eq\.|equations?|exercises?|solutions?|appendix|steps?|"
    r"editions?|releases?|versions?|v)|§)\s*(?:[\d.]+(?:\s*(?:,|and|or|to|–|-)\s*))*$", re.I)
SOFTWARE = re.compile(
    r"\b(?:python|torch|pytorch|torchvision|d2l|cuda|cudnn|numpy|pandas|scipy|matplotlib|jupyter[- ]book|"
    r"nbval|sphinx|pytest|ipykernel)\s*(?:==|>=|<=|~=|=)?\s*v?$", re.I)


def _mask(text: str, pattern: re.Pattern) -> str:
    """Same-length copy of text with pattern's matches blanked, so that they split nothing."""
    return pattern.sub(lambda m: "\0" * len(m.group(0)), text)


def units(markdown: str) -> list[tuple[str, bool, bool]]:
    """Sentences, list items, table rows and headings of a markdown cell.

    Each as (text, is code, cited as a whole): a table row is cited when its table is.
    """
    found: list[tuple[str, bool, bool]] = []

    def fence(match: re.Match) -> str:
        info, body = match.group(2).strip(), match.group(3)
        directive = re.match(r"\{([\w:-]+)\}", info)
        if directive and directive.group(1) not in ("math", "code", "code-block", "code-cell"):
            body = "\n".join(line for line in body.splitlines() if not line.startswith(":"))
            cited = bool(CITE.search(info))       # a table's or figure's caption cites its body
            found.extend((text, code, cited or whole) for text, code, whole in units(body))
        elif not (directive and directive.group(1) == "math"):
            found.append((" ".join(body.split()), True, False))
        return "\n\n"

    text = FENCE.sub(fence, re.sub(r"<!--.*?-->", "", markdown, flags=re.S))
    for block in re.split(r"\n\s*\n", text):
        rows = [line for line in block.splitlines() if line.strip()]
        table_cited = all(row.lstrip().startswith("|") for row in rows) and bool(CITE.search(block))
        for item in re.split(r"\n(?=\s*(?:[*+-]|\d+\.)\s|\s*\||\s*#)", block):
            item = " ".join(item.split())
            if not item or re.fullmatch(r"[|:\- ]+", item):
                continue
            masked = item
            for pattern in (ROLE, CODE_SPAN, MATH, LINK, URL, ABBREVIATIONS):
                masked = _mask(masked, pattern)
            start = 0
            for end in SENTENCE_END.finditer(masked):
                found.append((item[start:end.start()], False, table_cited))
                start = end.end()
            found.append((item[start:], False, table_cited))
    return [unit for unit in found if unit[0].strip()]


def _segments(sentence: str, is_code: bool) -> list[tuple[str, bool]]:
    """The parts of a sentence that can state numbers: (text, inside a code span)."""
    if is_code:
        return [(sentence, True)]
    text = ROLE.sub(" ", sentence)
    parts, start = [], 0
    for span in CODE_SPAN.finditer(text):
        parts.append((text[start:span.start()], False))
        parts.append((span.group(2), True))
        start = span.end()
    parts.append((text[start:], False))
    cleaned = []
    for part, code in parts:
        if not code:
            for pattern, keep in ((IMAGE, ""), (LINK, r"\1"), (URL, " "), (MATH, " "), (TAG, " ")):
                part = pattern.sub(keep, part)
        cleaned.append((part, code))
    return cleaned


def _classify(text: str, match: re.Match) -> tuple[str, str | None] | None:
    """(kind, time unit) of a number in text, or None where it is unchecked or names something."""
    written, before, after = match.group(0), text[:match.start()], text[match.end():]
    if re.search(r"[\w.,/\\#@_]$", before) or re.match(r"[\w]*_|\.\d", after):
        return None                                 # part of a name, path, version or list
    if before.endswith("-") and re.search(r"[A-Za-z]-$", before):
        return None                                 # LeNet-5, top-1
    if re.search(r"[×x*]\s*$", before) and re.search(r"\d\s*[×x*]\s*$", before):
        return None                                 # the second side of 28×28
    if re.match(r"\s*[×x*]\s*\d", after):
        return None                                 # the first side of 28×28
    if NAMING_WORDS.search(before) or SOFTWARE.search(before):
        return None                                 # section 7.6, torch 2.11
    decimals = "." in written and "e" not in written.lower()
    if re.match(r" ?(%|percent\b)", after):
        return "percent", None
    if re.match(r" ?[×x](?![\w\d])", after) or (decimals and re.match(r" times\b", after)):
        return "ratio", None
    unit = TIME_UNIT.match(after[1:] if after.startswith((" ", "\u00a0", "\u202f")) else after)
    if unit and (after[:1] in (" ", "\u00a0", "\u202f") or decimals or unit.group(1) != "s"):
        if not (unit.group(1) == "s" and re.fullmatch(r"1[89]\d\d|20\d\d|\d0", written)):  # the 1990s
            return "timing", time_unit(unit.group(1))
    if SIZE_UNIT.match(after.lstrip(" \u00a0\u202f")) and after[:1] in ("", " ", "\u00a0", "\u202f"):
        return "size", None
    if re.match(r"[A-Za-z]", after):
        return None                                 # 10th, 3D, 2x2
    if decimals or "e" in written.lower():
        return "decimal", None
    if "," in written or re.match(r" (thousand|million|billion)\b", after):
        return "count", None
    return None                                     # a plain integer: a size or a setting


def stated_numbers(cell_index: int, markdown: str) -> list[Stated]:
    """Every checked number a markdown cell states (rules 2 and 4 already applied)."""
    stated = []
    for sentence, is_code, cited_as_a_whole in units(markdown):
        cited = cited_as_a_whole or bool(CITE.search(sentence))
        for text, in_code in _segments(sentence, is_code):
            for match in NUMBER.finditer(text):
                kind_unit = _classify(text, match)
                if kind_unit is None:
                    continue
                kind, unit = kind_unit
                try:
                    quantity = Quantity.parse(match.group(0))
                except InvalidOperation:
                    continue
                words = re.match(r" (thousand|million|billion)\b", text[match.end():])
                if words:                                   # 11 million = 11e6 ± 0.5e6
                    power = {"thousand": 3, "million": 6, "billion": 9}[words.group(1)]
                    quantity = quantity.scaled(Decimal(10) ** power)
                written = match.group(0) + (words.group(0) if words else "")
                if kind in ("percent", "ratio", "timing", "size"):   # with its unit: 5.3 s, 4.5%
                    written += re.match(r"[ \u00a0\u202f]?[^\s.,;:)]*", text[match.end():]).group(0)
                stated.append(Stated(cell_index, written, kind, quantity, unit, sentence.strip(),
                                     cited, in_code))
    return stated


# --- What the chapter shows: its outputs and its code --------------------------------------------

@dataclass(frozen=True)
class Shown:
    quantity: Quantity
    percent: bool           # printed with a % sign
    unit: str | None        # printed with a time unit


TEXT_MIMES = ("text/plain", "text/html", "text/markdown")


def output_texts(nb: dict) -> list[str]:
    texts = []
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            if output["output_type"] == "stream":
                texts.append("".join(output["text"]))
            elif output["output_type"] == "error":
                texts.append(f"{output['ename']}: {output['evalue']}")
            else:
                data = output.get("data", {})
                texts.extend("".join(data[mime]) for mime in TEXT_MIMES if mime in data)
    return texts


def shown_numbers(nb: dict) -> list[Shown]:
    """Every number the stored outputs print, with its precision, % sign and time unit."""
    shown = []
    for text in output_texts(nb):
        for match in NUMBER.finditer(text):
            after = text[match.end():]
            unit = TIME_UNIT.match(after.lstrip(" "))
            pieces = [match.group(0)] + (match.group(0).split(",") if "," in match.group(0) else [])
            for piece in pieces:                  # "100,200" may be one number or a list of two
                try:
                    quantity = Quantity.parse(piece)
                except InvalidOperation:
                    continue
                shown.append(Shown(quantity, bool(re.match(r" ?%", after)),
                                   time_unit(unit.group(1)) if unit else None))
    return shown


def literals(code: str) -> set[Decimal]:
    """The number literals of Python code (not its comments or strings); magics are skipped."""
    code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in code.splitlines())
    values = set()
    try:
        for token in tokenize.generate_tokens(io.StringIO(code).readline):
            if token.type == tokenize.NUMBER:
                try:
                    values.add(abs(Decimal(token.string.replace("_", ""))))
                except InvalidOperation:
                    pass                           # 0x1f, 1j
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return values


def code_literals(nb: dict) -> set[Decimal]:
    return set().union(*[literals("".join(c["source"])) for c in nb["cells"] if c["cell_type"] == "code"])


def package_literals() -> set[Decimal]:
    return set().union(*[literals(path.read_text()) for path in sorted((REPO / "lenet_book").glob("*.py"))])


# --- The rule ------------------------------------------------------------------------------------

def candidates(number: Stated, shown: list[Shown]) -> list[Quantity]:
    """The output quantities that can show this number, in its kind and unit."""
    if number.kind == "percent":
        return [s.quantity for s in shown if s.percent] + [s.quantity.scaled(Decimal(100)) for s in shown]
    found = [s.quantity for s in shown]
    if number.kind == "decimal":
        found += [s.quantity.scaled(Decimal("0.01")) for s in shown if s.percent]
    if number.kind == "timing":
        found += [s.quantity.scaled(SECONDS[s.unit] / SECONDS[number.unit]) for s in shown if s.unit]
    return found


def is_a_setting(number: Stated, settings: set[Decimal]) -> bool:
    value = number.quantity.value
    return value in settings or (number.kind == "percent" and value / 100 in settings)


EXERCISES = re.compile(r"^#+\s*Exercises\s*$", re.M)


def prose_cells(nb: dict) -> list[tuple[int, str]]:
    """(index, markdown) of the markdown cells, up to the Exercises heading (rule 5)."""
    found = []
    for index, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "markdown":
            text = "".join(cell["source"])
            found.append((index, EXERCISES.split(text)[0]))
            if EXERCISES.search(text):
                break
    return found


def unfound_numbers(nb: dict, package: set[Decimal] | None = None) -> list[Stated]:
    """The numbers a chapter's prose states that no output shows and no rule explains."""
    shown = shown_numbers(nb)
    settings = code_literals(nb)
    package = package_literals() if package is None else package
    unfound = []
    for index, markdown in prose_cells(nb):
        for number in stated_numbers(index, markdown):
            if number.cited or is_a_setting(number, settings | (package if number.in_code else set())):
                continue
            if not any(number.quantity.is_found_by(q) for q in candidates(number, shown)):
                unfound.append(number)
    return unfound


def describe(chapter: str, number: Stated) -> str:
    return f"{chapter}, markdown cell {number.cell}: {number.written} ({number.kind}) in: {number.sentence}"


# --- The tests -----------------------------------------------------------------------------------

@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.relative_to(REPO / "notebooks").as_posix())
def test_every_number_in_the_prose_is_shown_by_the_chapters_outputs(path):
    unfound = unfound_numbers(json.loads(path.read_text()))
    assert not unfound, (
        f"{len(unfound)} number(s) in the prose of {path.name} are in no output of the chapter, not cited "
        "and no setting (see this module's docstring):\n" + "\n".join(describe(path.name, n) for n in unfound))


def tiny_notebook(markdown: list[str], code: str, printed: str) -> dict:
    return {"cells": [{"cell_type": "markdown", "metadata": {}, "source": text} for text in markdown]
            + [{"cell_type": "code", "metadata": {}, "source": code, "execution_count": 1,
                "outputs": [{"output_type": "stream", "name": "stdout", "text": printed}]}]}


def test_the_rule_on_a_tiny_notebook():
    printed = ("61,706 parameters\nloss 0.4702, test acc 0.797\nepoch: 5.31 s, 90.4 s in all\n"
               "fast path: 1.48× the text's loop, share 45%\n")
    code = "lr, num_epochs = 0.9, 10  # 0.123 in a comment is no setting\nmax_params = 62_000\nprint(...)"
    notebook = tiny_notebook([
        "# Title with section 7.6 of d2l, edition 1.0, torch 2.11 and 2.14.1\n\n"
        "LeNet-5 has 61,706 parameters and reaches 0.80 (exactly 0.797) after 10 epochs at lr 0.9, "
        "at most 62,000 parameters. An epoch takes 5.3 s, 1.5 minutes in all; 1.48× faster.",
        "The loss is 0.47, about 80% accuracy, 45% of the time. The paper's $1.7159 \\tanh(2a/3)$ "
        "and `net(X)[3.25]`, see [the README](https://example.org/v1.25/x.html) and 03_training.ipynb.",
        "People reach 83.5% {cite}`zalando_benchmark`. Images are 28×28, in the 1990s.",
        "| model {cite}`zalando_benchmark` | accuracy |\n| --- | --- |\n| human | 0.835 |\n| MLP | 0.900 |",
        "## Summary\n\nIt has about 0.06 million parameters.\n\n## Exercises\n\n1. Try lr 0.42 for 7.5 s.",
        "More exercises: 0.43.",
    ], code, printed)
    assert [n.written for n in unfound_numbers(notebook, package=set())] == ["3.25"]   # in a code span

    wrong = tiny_notebook(["It reaches 0.81, in 5.2 s, at 0.7970 and 2.1× faster; 12.0% of 61,707, 2 million.",
                           "| human | 0.835 |\n| --- | --- |"], code, printed)
    assert [n.written for n in unfound_numbers(wrong, package=set())] == \
        ["0.81", "5.2 s", "0.7970", "2.1×", "12.0%", "61,707", "2 million", "0.835"]


def test_the_precision_written_is_the_precision_required():
    assert Quantity.parse("0.80").is_found_by(Quantity.parse("0.797"))
    assert Quantity.parse("0.8").is_found_by(Quantity.parse("0.772"))
    assert not Quantity.parse("0.80").is_found_by(Quantity.parse("0.8"))    # a digit never shown
    assert not Quantity.parse("0.80").is_found_by(Quantity.parse("0.806"))
    assert Quantity.parse("61,706").is_found_by(Quantity.parse("61706"))


def test_a_changed_output_is_caught_and_named(tmp_path):
    """Copy a real chapter, change the one output that shows a number of its prose, and check again."""
    for path in CHAPTERS:
        nb = json.loads(path.read_text())
        shown = shown_numbers(nb)
        settings = code_literals(nb)
        for index, markdown in prose_cells(nb):
            for number in stated_numbers(index, markdown):
                if number.kind != "decimal" or number.cited or number.in_code or is_a_setting(number, settings):
                    continue
                if any(number.quantity.is_found_by(q) for q in candidates(number, shown)):
                    break
            else:
                continue
            break
        else:
            continue
        break
    else:
        pytest.skip("no chapter states a decimal that only its outputs show")

    def change(text: str) -> str:               # every printed number that shows it moves by 1
        def moved(match: re.Match) -> str:
            printed = Quantity.parse(match.group(0))
            as_fraction = printed.scaled(Decimal("0.01")) if re.match(r" ?%", text[match.end():]) else printed
            if number.quantity.is_found_by(printed) or number.quantity.is_found_by(as_fraction):
                return str(Decimal(match.group(0).replace(",", "")) + 1)
            return match.group(0)
        return NUMBER.sub(moved, text)

    changed = copy.deepcopy(nb)
    for cell in changed["cells"]:
        for output in cell.get("outputs", []):
            for field in ("text", "evalue"):
                if field in output:
                    output[field] = change("".join(output[field]))
            for mime in TEXT_MIMES:
                if mime in output.get("data", {}):
                    output["data"][mime] = change("".join(output["data"][mime]))
    copied = tmp_path / path.name
    copied.write_text(json.dumps(changed))

    assert number not in unfound_numbers(nb)
    unfound = unfound_numbers(json.loads(copied.read_text()))
    assert number in unfound
    message = describe(path.name, number)
    assert path.name in message and f"markdown cell {number.cell}" in message
    assert number.written in message and number.sentence in message


# --- Citations -----------------------------------------------------------------------------------

def bibliography_keys() -> set[str]:
    return set(re.findall(r"^@\w+\{([^,\s]+),", BIBLIOGRAPHY.read_text(), re.M))


def pages() -> list[tuple[str, str]]:
    """(name, markdown) of every chapter and book page."""
    found = [(p.name, "\n".join("".join(c["source"]) for c in json.loads(p.read_text())["cells"]
                                if c["cell_type"] == "markdown")) for p in NOTEBOOKS]
    return found + [(p.name, p.read_text()) for p in sorted((REPO / "book").glob("*.md"))]


def cited_keys(markdown: str) -> set[str]:
    return {key.strip() for keys in re.findall(r"\{cite(?::\w+)?\}`([^`]*)`", markdown) for key in keys.split(",")}


def test_every_citation_has_an_entry_in_the_bibliography():
    keys = bibliography_keys()
    missing = [(name, key) for name, text in pages() for key in sorted(cited_keys(text) - keys)]
    assert not missing, f"cited but not in book/references.bib: {missing}"


def test_every_bibliography_entry_is_cited_where_it_is_used():
    cited = set().union(*[cited_keys(text) for _, text in pages()])
    assert not bibliography_keys() - cited, (
        f"book/references.bib entries no page cites: {sorted(bibliography_keys() - cited)}")


AUTHORS = r"[A-Z][\w'-]+(?: et al\.| (?:and|&) [A-Z][\w'-]+)"
# (Glorot and Bengio, 2010), (LeCun et al., 1998), Zalando Research, 2017, Glorot and Bengio (2010)
HAND_CITATION = re.compile(rf"\b{AUTHORS}?, (?:19|20)\d\d\b|\b{AUTHORS} \((?:19|20)\d\d\)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.relative_to(REPO / "notebooks").as_posix())
def test_sources_are_cited_with_the_role_not_by_hand(path):
    """'(Glorot and Bengio, 2010)' in the text must be {cite}`glorot2010`, so the entry exists."""
    found = []
    for index, cell in enumerate(json.loads(path.read_text())["cells"]):
        if cell["cell_type"] == "markdown":
            text = ROLE.sub(" ", "".join(cell["source"]))
            found += [f"markdown cell {index}: {m.group(0)}" for m in HAND_CITATION.finditer(text)]
    assert not found, f"{path.name} cites by hand; use {{cite}}`key` (book/references.bib): {found}"


def report(paths: list[Path]) -> str:
    """Every unfound number, per chapter: what tools/prose_numbers.py prints."""
    lines, total = [], 0
    package = package_literals()
    for path in paths:
        unfound = unfound_numbers(json.loads(path.read_text()), package)
        total += len(unfound)
        lines.append(f"== {path.name}: {len(unfound)} number(s) not found")
        lines += [f"  cell {n.cell}: {n.written} ({n.kind})\n      {n.sentence}" for n in unfound]
    lines.append(f"== {total} number(s) not found in {len(paths)} chapter(s)")
    return "\n".join(lines)


if __name__ == "__main__":
    chosen = [Path(a).resolve() for a in sys.argv[1:]] or NOTEBOOKS
    print(report(chosen))
