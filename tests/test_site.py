"""Tests of the rendered site: the book is built once, into a temporary folder, and checked.

Default run (no browser): every chapter page has the Colab and Binder launch links and the
download button that _config.yml asks for, pointing at notebooks that exist; every link to a local
file or anchor in every built page resolves; formulas use the MathJax that ships with the site;
every page's footer names the two licences; LICENSE, LICENSE-text, CITATION.cff and the front
page's how-to-cite line agree; chapters are numbered; the front page links to the PDF where `make pdf` puts it.

`pytest -m browser tests/test_site.py` (what `make site-test` runs) also opens every page in
headless Chromium (Debian's chromium and chromium-driver), served from 127.0.0.1, with no
network, at 1366 and at 390 px wide (a laptop, a phone): every page loads without errors, every
formula is typeset and no raw TeX shows, every figure is drawn, the chapter-list and contents
buttons open their sidebars, there is one search box, the search page finds the book, and a
full-page screenshot of every page at each width goes to _build/screenshots/<width>/ for review.
It also checks the book's PDF (tools/make_pdf.py; the one `make pdf` made if $LENET_BOOK_PDF
names it): every chapter on its own pages in order, every figure, no raw TeX.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

from lenet_book.book import chapters, solutions

REPO = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((REPO / "_config.yml").read_text())
TOC = yaml.safe_load((REPO / "_toc.yml").read_text())
SCREENSHOTS = REPO / "_build" / "screenshots"


def toc_files(node) -> list[str]:
    """Every `file:` of _toc.yml (root, chapters, parts, sections), in reading order."""
    if isinstance(node, list):
        return [f for item in node for f in toc_files(item)]
    if not isinstance(node, dict):
        return []
    found = [node["root"]] if "root" in node else []
    found += [node["file"]] if "file" in node else []
    for key in ("parts", "chapters", "sections"):
        found += toc_files(node.get(key, []))
    return found


def page_numbers(toc: dict) -> dict[str, int | None]:
    """The number the site gives each page after the root, or None where it has none.

    Without parts, `options: numbered: true` numbers every page 1, 2, ... With parts, a part
    without `numbered: true` leaves its pages unnumbered, and the numbered parts share one count
    (Jupyter Book's use_multitoc_numbering, on by default), so the prelude of an unnumbered first
    part does not shift the chapters' numbers.
    """
    assert CONFIG.get("sphinx", {}).get("config", {}).get("use_multitoc_numbering", True)
    parts = toc.get("parts") or [{"chapters": toc.get("chapters", []), **toc.get("options", {})}]
    numbers, count = {}, 0
    for part in parts:
        for name in toc_files(part.get("chapters", [])):
            count += bool(part.get("numbered"))
            numbers[name] = count if part.get("numbered") else None
    return numbers


PAGES = toc_files(TOC)  # docnames: book/intro, notebooks/00_convolution, ...
NUMBERS = page_numbers(TOC)  # docname -> its chapter number on the site, None if unnumbered
CHAPTERS = [path.relative_to(REPO).with_suffix("").as_posix() for path in chapters()]  # docnames
SOLUTIONS = [path.relative_to(REPO).with_suffix("").as_posix() for path in solutions()]  # docnames


# --------------------------------------------------------------------------- the build


class Page(HTMLParser):
    """The links (href, src, srcset, meta refresh) and the anchors (id, a name) of one page."""

    def __init__(self, path: Path):
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.anchors: set[str] = set()
        self.tags: list[tuple[str, dict]] = []
        self.feed(path.read_text(encoding="utf-8"))

    def handle_starttag(self, tag, attrs):
        attrs = {k: (v if v is not None else "") for k, v in attrs}
        self.tags.append((tag, attrs))
        if attrs.get("id"):
            self.anchors.add(attrs["id"])
        if tag == "a" and attrs.get("name"):
            self.anchors.add(attrs["name"])
        for key in ("href", "src", "data", "poster"):
            if key in attrs:
                self.links.append((tag, key, attrs[key]))
        if attrs.get("srcset"):
            for candidate in attrs["srcset"].split(","):
                if candidate.strip():
                    self.links.append((tag, "srcset", candidate.split()[0]))
        if tag == "meta" and attrs.get("http-equiv", "").lower() == "refresh":
            match = re.search(r"url=(.+)$", attrs.get("content", ""), re.I)
            if match:
                self.links.append((tag, "refresh", match.group(1).strip().strip("'\"")))

    def hrefs(self, **wanted) -> list[str]:
        """href of every <a> whose attributes contain the given values (class_ matches a class)."""
        found = []
        for tag, attrs in self.tags:
            if tag != "a" or "href" not in attrs:
                continue
            if "class_" in wanted and wanted["class_"] not in attrs.get("class", "").split():
                continue
            found.append(attrs["href"])
        return found


@functools.cache
def parse(path: Path) -> Page:
    return Page(path)


def built_pages(site: Path) -> list[Path]:
    """The pages Sphinx wrote. _static/ also holds theme template fragments (*.html with Jinja)."""
    return sorted(p for p in site.rglob("*.html") if p.relative_to(site).parts[0] != "_static")


# --------------------------------------------------------------------------- launch buttons


REPO_URL = CONFIG["repository"]["url"].rstrip("/")
OWNER, NAME = re.fullmatch(r"https://github\.com/([\w.-]+)/([\w.-]+)", REPO_URL).groups()
BRANCH = CONFIG["repository"].get("branch", "main")
PATH_TO_BOOK = (CONFIG["repository"].get("path_to_book") or "").strip("/")
LAUNCH = CONFIG.get("launch_buttons", {})


def repo_path(chapter: str) -> str:
    """Where the chapter's notebook is in the repository, as launch links name it."""
    return "/".join(p for p in (PATH_TO_BOOK, f"{chapter}.ipynb") if p)


def test_toc_has_chapters():
    assert CHAPTERS, "_toc.yml lists no notebooks/ chapter"


@pytest.mark.parametrize("chapter", CHAPTERS + SOLUTIONS)
class TestChapterButtons:
    def test_colab_link_opens_this_notebook_from_the_repository(self, site, chapter):
        colab = LAUNCH.get("colab_url", "").rstrip("/")
        assert colab == "https://colab.research.google.com", "_config.yml launch_buttons.colab_url"
        # the launch button (the exercises also link to the solutions in Colab, in the text)
        links = [h for h in parse(site / f"{chapter}.html").hrefs(class_="dropdown-item") if h.startswith(colab + "/")]
        assert links, f"{chapter}.html has no Colab launch link"
        pattern = re.compile(r"https://colab\.research\.google\.com/github/([\w.-]+)/([\w.-]+)/blob/([\w./-]+?)/(.+\.ipynb)")
        for link in set(links):
            match = pattern.fullmatch(link)
            assert match, f"not a Colab GitHub link: {link}"
            owner, name, branch, path = match.groups()
            assert (owner, name, branch) == (OWNER, NAME, BRANCH), \
                f"{link} does not match _config.yml's {REPO_URL} @ {BRANCH}"
            assert path == repo_path(chapter), link
            assert (REPO / path).is_file(), f"{link} names {path}, which is not in the repository"

    def test_binder_link_if_any_opens_this_notebook(self, site, chapter):
        binder = LAUNCH.get("binderhub_url", "").rstrip("/")
        links = [h for h in parse(site / f"{chapter}.html").hrefs() if binder and h.startswith(binder + "/")]
        if not binder:
            assert not [h for h in parse(site / f"{chapter}.html").hrefs() if "mybinder.org" in h]
            pytest.skip("no binderhub_url in _config.yml")
        assert links, f"_config.yml sets binderhub_url but {chapter}.html has no Binder link"
        interface = {"jupyterlab": "lab/tree", "classic": "tree"}[LAUNCH.get("notebook_interface", "classic")]
        pattern = re.compile(re.escape(binder)
                             + r"/v2/gh/([\w.-]+)/([\w.-]+)/([\w./-]+)\?urlpath=(lab/tree|tree)/(.+\.ipynb)")
        for link in set(links):
            match = pattern.fullmatch(link)
            assert match, f"not a Binder GitHub link: {link}"
            owner, name, branch, ui, path = match.groups()
            assert (owner, name, branch) == (OWNER, NAME, BRANCH), \
                f"{link} does not match _config.yml's {REPO_URL} @ {BRANCH}"
            assert ui == interface, link
            assert path == repo_path(chapter), link
            assert (REPO / path).is_file(), f"{link} names {path}, which is not in the repository"

    def test_download_button_serves_the_notebook(self, site, chapter):
        page = site / f"{chapter}.html"
        links = parse(page).hrefs(class_="btn-download-source-button")
        assert len(links) == 1, f"{chapter}.html: expected one download-source button, found {links}"
        assert links[0].endswith(".ipynb"), links[0]
        served = (page.parent / unquote(links[0])).resolve()
        assert served.is_file(), f"download button points at a missing file: {links[0]}"
        assert served.read_bytes() == (REPO / f"{chapter}.ipynb").read_bytes(), \
            "the download is not the stored notebook"
        assert json.loads(served.read_text())["nbformat"] == 4

    def test_repository_button_points_at_the_repository(self, site, chapter):
        if not CONFIG.get("html", {}).get("use_repository_button"):
            pytest.skip("no repository button")
        assert REPO_URL in parse(site / f"{chapter}.html").hrefs(), f"{chapter}.html has no link to {REPO_URL}"


# --------------------------------------------------------------------------- internal links


def test_every_toc_page_and_search_page_was_built(site):
    for name in PAGES:
        assert (site / f"{name}.html").is_file(), f"{name} is in _toc.yml but was not built"
    for name in ("index.html", "search.html", "genindex.html", "searchindex.js"):
        assert (site / name).is_file(), name


def test_every_internal_link_and_anchor_resolves(site):
    pages = built_pages(site)
    assert len(pages) >= len(PAGES) + 2
    broken, checked = [], 0
    for page in pages:
        where = page.relative_to(site)
        for tag, attribute, value in parse(page).links:
            url = urlsplit(value.strip())
            if url.scheme or url.netloc or value.strip() == "" or value.startswith("{{"):
                continue  # external (https:, mailto:, data:, javascript:), or empty
            checked += 1
            target = page if not url.path else (page.parent / unquote(url.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.is_relative_to(site):
                broken.append(f"{where}: <{tag} {attribute}={value!r}> leaves the site")
            elif not target.is_file():
                broken.append(f"{where}: <{tag} {attribute}={value!r}> -> missing {target.relative_to(site)}")
            elif url.fragment and target.suffix == ".html" and unquote(url.fragment) not in parse(target).anchors:
                broken.append(f"{where}: <{tag} {attribute}={value!r}> -> no anchor #{url.fragment}")
    assert checked > 50, f"only {checked} internal links found: is the parser looking at the right pages?"
    assert not broken, f"{len(broken)} broken internal link(s):\n" + "\n".join(broken)


# --------------------------------------------------------------------------- the book's apparatus


MATHJAX = "mathjax/tex-svg-full.js"  # in book/_static/ (see SOURCE.txt there), _config.yml's mathjax_path
PDF_IN_SITE = "_static/lenet-book.pdf"  # where `make pdf` puts the book's PDF in the built site
VERSION = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M).group(1)


def article(page: Path) -> str:
    """The HTML of a page's main article (what the reader reads, without navigation and footer)."""
    html = page.read_text(encoding="utf-8")
    match = re.search(r'<article class="bd-article"[^>]*>(.*?)</article>', html, re.S)
    assert match, f"{page.name}: no <article class=\"bd-article\">"
    return match.group(1)


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html)).replace("&nbsp;", " ").strip()


def test_the_references_show_no_raw_tex(site):
    """A LaTeX command in book/references.bib (\\texttt{...}) is shown as typed by the bibliography."""
    text = text_of(article(site / "book" / "references.html"))
    assert "References" in text or "LeCun" in text
    raw = re.findall(r"\\[A-Za-z]+", text)
    assert not raw, f"raw TeX on the references page: {sorted(set(raw))}; write plain text in references.bib"


def test_formulas_use_the_bundled_mathjax(site):
    assert CONFIG["sphinx"]["config"]["mathjax_path"] == MATHJAX, "_config.yml: sphinx: config: mathjax_path"
    assert (REPO / "book" / "_static" / MATHJAX).is_file(), f"book/_static/{MATHJAX} is missing"
    with_math = 0
    for page in built_pages(site):
        scripts = [attrs["src"] for tag, attrs in parse(page).tags if tag == "script" and attrs.get("src")]
        external = [s for s in scripts if urlsplit(s).scheme or s.startswith("//")]
        assert not external, f"{page.relative_to(site)} loads scripts from the network: {external}"
        mathjax = [s for s in scripts if "mathjax" in s.lower()]
        if 'class="math' in page.read_text(encoding="utf-8"):
            with_math += 1
            # once: a second copy (e.g. Jupyter Book adding every .js of a top-level _static/) typesets twice
            assert len(mathjax) == 1, f"{page.relative_to(site)} loads MathJax {len(mathjax)} times: {mathjax}"
            assert (page.parent / urlsplit(mathjax[0]).path).resolve() == (site / "_static" / MATHJAX).resolve()
    assert with_math >= 1, "no page has a formula: is the check looking at the right pages?"


def test_every_page_footer_names_both_licences(site):
    for page in built_pages(site):
        html = page.read_text(encoding="utf-8")
        if re.search(r'<meta http-equiv="refresh"', html, re.I) and "<body" not in html:
            continue  # index.html: only a redirect to the front page
        footer = re.search(r'<div class="extra_footer">(.*?)</div>', html, re.S)
        assert footer, f"{page.relative_to(site)} has no licence footer (_config.yml html: extra_footer)"
        text = text_of(footer.group(1))
        for needed in ("CC BY-SA 4.0", "LICENSE-text", "MIT", "LICENSE", "CITATION.cff"):
            assert needed in text, f"{page.relative_to(site)}: the footer does not say {needed!r}: {text}"


def test_licences_and_citation_agree():
    assert (REPO / "LICENSE").read_text().startswith("MIT License\n"), "LICENSE: the MIT licence of the code"
    text = (REPO / "LICENSE-text").read_text()
    assert "Creative Commons Attribution-ShareAlike 4.0 International Public License" in text
    assert "Section 8 – Interpretation." in text, "LICENSE-text: the whole legal code of CC BY-SA 4.0"
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    preferred = cff["preferred-citation"]
    assert cff["cff-version"] == "1.2.0" and cff["message"] and cff["authors"]
    assert cff["title"] == preferred["title"] == CONFIG["title"], "CITATION.cff title vs _config.yml"
    assert cff["authors"] == preferred["authors"] == [{"name": CONFIG["author"]}], "CITATION.cff authors"
    assert cff["repository-code"] == preferred["url"] == REPO_URL, "CITATION.cff URL vs _config.yml repository"
    assert sorted(cff["license"]) == ["CC-BY-SA-4.0", "MIT"]
    assert cff["version"] == VERSION, "CITATION.cff version vs pyproject.toml"
    assert str(preferred["year"]) == str(CONFIG["copyright"])
    intro = (REPO / f"{TOC['root']}.md").read_text()
    cite = re.search(r"\*\*How to cite:\*\*(.*?)\n\n", intro, re.S)
    assert cite, f"{TOC['root']}.md has no '**How to cite:**' paragraph"
    for needed in (CONFIG["author"], CONFIG["title"], str(preferred["year"]), REPO_URL, "CITATION.cff"):
        assert needed in " ".join(cite.group(1).split()), f"the how-to-cite line lacks {needed!r}"


def test_chapters_are_numbered_in_reading_order(site):
    """Chapter NN_topic is numbered NN on the site (its prose says "chapter 3"); 00 is unnumbered."""
    assert list(NUMBERS) == [p for p in PAGES if p != TOC["root"]]
    for chapter in CHAPTERS:
        number = int(re.search(r"notebooks/(\d+)_", chapter).group(1))
        assert NUMBERS[chapter] == (number or None), f"_toc.yml: {chapter} would be numbered {NUMBERS[chapter]}"
    numbered = [n for n in NUMBERS.values() if n is not None]
    assert numbered == list(range(1, len(numbered) + 1)), f"pages numbered {numbered}"
    for name, number in NUMBERS.items():
        h1 = re.search(r"<h1>(.*?)</h1>", article(site / f"{name}.html"), re.S)
        title = text_of(h1.group(1)).rstrip("#").strip()
        if number is None:
            assert not re.match(r"\d+\. ", title), f"{name}: its title {title!r} should have no number"
        else:
            assert title.startswith(f"{number}. "), f"{name}: its title {title!r} should start with '{number}. '"


@pytest.mark.parametrize("page", SOLUTIONS)
def test_a_solutions_page_numbers_its_figures_after_its_chapter(site, page):
    """Solutions of chapter 3: Fig. S3.1, S3.2, ... in order, not the count of earlier pages."""
    html = article(site / f"{page}.html")
    shown = re.findall(r'class="caption-number">Fig\. (\S+?) </span>', html)
    assert len(shown) == html.count("<figcaption>"), f"{page}: a figure without its number"
    chapter = int(Path(page).name[:2])
    assert shown == [f"S{chapter}.{k}" for k in range(1, len(shown) + 1)], f"{page}: figures numbered {shown}"


def captioned_figures(chapter: str) -> list[dict]:
    """The figure metadata (MyST-NB's "mystnb" cell metadata) of a stored chapter's figure cells."""
    nb = json.loads((REPO / f"{chapter}.ipynb").read_text())
    return [cell["metadata"]["mystnb"] for cell in nb["cells"]
            if cell["cell_type"] == "code" and "mystnb" in cell["metadata"]]


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_figure_is_numbered_captioned_and_described(site, chapter):
    html = article(site / f"{chapter}.html")
    expected = captioned_figures(chapter)
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", html, re.S)
    assert len(captions) == len(expected) == image_outputs(chapter), \
        f"{chapter}: {len(captions)} captions, {len(expected)} captioned cells, {image_outputs(chapter)} figures"
    # Fig. 3.1 in chapter 3; Fig. 1, Fig. 2, ... in an unnumbered chapter (the prelude)
    prefix = rf"{NUMBERS[chapter]}\." if NUMBERS[chapter] else ""
    for caption, figure in zip(captions, expected):
        assert re.search(rf'class="caption-number">Fig\. {prefix}\d+\b(?!\.)', caption), \
            f"{chapter}: unnumbered: {caption[:200]}"
        words = text_of(figure["figure"]["caption"]).replace("`", "").split()[:4]
        shown = text_of(caption).replace("\u2019", "'")  # Sphinx's smart quotes
        assert " ".join(words) in shown, f"{chapter}: caption {words} missing from {shown[:200]}"
        anchor = f'id="{figure["figure"]["name"]}"'
        assert anchor in html, f"{chapter}: no anchor {anchor} to link the figure"
    alts = re.findall(r'<img[^>]*\balt="([^"]*)"', html)
    images = re.findall(r"<img\b", html)
    assert len(alts) == len(images) and all(len(a) > 20 for a in alts), f"{chapter}: an image lacks alt text"


@pytest.mark.parametrize("name", PAGES)
def test_every_table_is_numbered_and_captioned(site, name):
    """Tables are numbered per chapter like figures (Table 4.1, 4.2, ...; on a solutions page after
    its chapter, Table S4.1, S4.2, ..., book/_ext/site_fixes.py; on the other unnumbered pages
    Sphinx counts on from one page to the next: Table 5, 6, ...), captioned, and each caption sits
    with its own table (book/_ext/output_tables.py)."""
    html = article(site / f"{name}.html")
    tables = re.findall(r"<table\b", html)
    numbers = re.findall(r'class="caption-number">Table (\S+?) </span><span class="caption-text">(.*?)</span>',
                         html, re.S)
    shown = [n for n, _ in numbers]
    if NUMBERS.get(name):
        expected = [f"{NUMBERS[name]}.{k}" for k in range(1, len(tables) + 1)]
    elif name in SOLUTIONS:
        expected = [f"S{int(Path(name).name[:2])}.{k}" for k in range(1, len(tables) + 1)]
    else:
        first = int(shown[0]) if shown and shown[0].isdigit() else 1
        expected = [str(k) for k in range(first, first + len(tables))]
    assert shown == expected, f"{name}: {len(tables)} tables, numbered {shown}"
    assert all(len(text_of(caption)) > 20 for _, caption in numbers), f"{name}: a caption is too short"
    # each caption is its table's: above a displayed table, inside a Markdown one
    displayed = re.findall(r'<div class="table-output"[^>]*>\s*<p><span class="caption-number">Table [^<]*</span>'
                           r'<span class="caption-text">.*?</span></p>\s*<div class="output text_html">'
                           r'(?:(?!</div>|<table).)*<table\b', html, re.S)
    markdown = re.findall(r'<table\b[^>]*>\s*<caption><span class="caption-number">Table ', html)
    assert len(displayed) + len(markdown) == len(tables), f"{name}: a caption away from its table"


def test_front_page_names_the_pdf_where_make_pdf_puts_it_and_hides_the_link(site):
    """`make book` alone builds no PDF: the front page's link to it is hidden, without an href,
    until its script finds the file (test_pdf_link_shows_only_where_the_pdf_is, in a browser)."""
    front = site / f"{TOC['root']}.html"
    html = front.read_text()
    note = re.search(r'<p\b[^>]*\bid="book-pdf"[^>]*>', html)
    assert note, f"{front.name}: no <p id=\"book-pdf\"> note about the book's PDF"
    assert " hidden" in note.group(0), f"{front.name}: the PDF note must start hidden: {note.group(0)}"
    target = re.search(r'data-pdf="([^"]+)"', note.group(0)).group(1)
    assert (front.parent / target).resolve() == (site / PDF_IN_SITE).resolve(), target
    assert not [h for h in parse(front).hrefs() if h.endswith(".pdf")], "a static link to the PDF"
    assert f"_build/html/{PDF_IN_SITE}" in (REPO / "Makefile").read_text(), "make pdf must copy the PDF there"


# --------------------------------------------------------------------------- in a browser


MAIN = "(document.querySelector('main#main-content article') || document.querySelector('main') || document.body)"


def open_page(browser, server, name: str) -> None:
    browser.get(f"{server}{name}.html")
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")


def image_outputs(chapter: str) -> int:
    """How many figures the stored notebook shows (image outputs and markdown images)."""
    nb = json.loads((REPO / f"{chapter}.ipynb").read_text())
    count = 0
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            count += sum(1 for o in cell.get("outputs", []) if any(k.startswith("image/") for k in o.get("data", {})))
        elif cell["cell_type"] == "markdown":
            count += len(re.findall(r"!\[[^\]]*\]\(|<img\s", "".join(cell["source"])))
    return count


# A laptop and a phone (CSS pixels); screenshots go to _build/screenshots/<width>/.
WIDTHS = {1366: 900, 390: 844}


def set_width(browser, width: int, height: int | None = None) -> None:
    """Lay pages out `width` CSS pixels wide; a phone (< 600 px) as a phone: mobile viewport, touch."""
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height or WIDTHS[width], "deviceScaleFactor": 1, "mobile": width < 600})


def wait_for_math(browser) -> dict:
    """Wait until MathJax (deferred) has typeset the page, if the page loads it; what it did."""
    return browser.execute_async_script("""
        const done = arguments[0];
        const main = %s;
        const report = () => done({
            formulas: main.querySelectorAll('.math').length,
            typeset: main.querySelectorAll('mjx-container').length,
            untypeset: Array.from(main.querySelectorAll('.math')).filter(e => !e.querySelector('mjx-container'))
                            .map(e => e.textContent.trim().slice(0, 80)),
            errors: Array.from(main.querySelectorAll('mjx-merror')).map(e => e.textContent.slice(0, 80))});
        const startup = window.MathJax && window.MathJax.startup && window.MathJax.startup.promise;
        (startup || Promise.resolve()).then(report, e => done({failed: String(e)}));""" % MAIN)


class Loaded:
    """One page open in the browser at one width, with what it logged while loading."""

    def __init__(self, browser, server, name: str, width: int):
        self.browser, self.server, self.name, self.width = browser, server, name, width
        self.reload()

    def reload(self) -> None:
        set_width(self.browser, self.width)
        self.browser.execute_script("try { localStorage.clear(); } catch (e) {}")  # a first visit
        self.browser.get_log("browser")  # drop what earlier pages logged
        open_page(self.browser, self.server, self.name)
        self.math = wait_for_math(self.browser)
        self.log = self.browser.get_log("browser")


@pytest.fixture(scope="class", params=[(n, w) for w in WIDTHS for n in PAGES], ids=lambda p: f"{p[0]}@{p[1]}")
def loaded(request, browser, server):
    """Each page at each width, opened once for all the checks of TestInBrowser (class scope)."""
    page = Loaded(browser, server, *request.param)
    yield page
    browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


# Raw TeX a reader would see if MathJax did not run: \( \) \[ \] delimiters, $...$ pairs and
# the commands this book's formulas use (text inside code, outputs and typeset math is left out).
RAW_TEX = re.compile(r"\\[()\[\]]|\$\$|\$[^$\s][^$]{0,200}?(?<=\S)\$"
                     r"|\\(frac|mathrm|mathbf|mathcal|operatorname|sum|prod|times|cdot|sigma|tanh|exp|left|right"
                     r"|begin|end|text|lfloor|rfloor|approx|le|ge|in|quad)\b")
READER_TEXT = """
    const main = %s;
    const skip = 'pre, code, kbd, samp, script, style, textarea, mjx-container, .highlight, .output';
    const walker = document.createTreeWalker(main, NodeFilter.SHOW_TEXT, {acceptNode: n =>
        n.parentElement.closest(skip) ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT});
    const parts = [];
    while (walker.nextNode()) parts.push(walker.currentNode.nodeValue);
    return parts.join('');""" % MAIN

# Is the element on screen and on top: inside the viewport, not hidden, and what the reader
# would touch at a point inside it is part of it (not a backdrop or the article over it).
SHOWN = """
    const e = document.querySelector(arguments[0]);
    if (!e) return null;
    const r = e.getBoundingClientRect(), s = getComputedStyle(e);
    if (s.visibility === 'hidden' || s.display === 'none' || r.width < 100 || r.height < 50) return false;
    if (r.left < -1 || r.right > window.innerWidth + 1 || r.bottom < 0 || r.top > window.innerHeight) return false;
    const x = r.left + Math.min(r.width / 2, 60), y = Math.max(r.top, 0) + 40;
    const hit = document.elementFromPoint(x, Math.min(y, window.innerHeight - 1));
    return !!hit && e.contains(hit);"""
VISIBLE = """
    return Array.from(document.querySelectorAll(arguments[0])).filter(e => {
        const r = e.getBoundingClientRect(), s = getComputedStyle(e);
        return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && r.right > 0 && r.left < window.innerWidth
               && r.bottom > 0 && r.top < window.innerHeight;
    });"""
SIDEBARS = {"chapter list": (".bd-sidebar-primary", ".primary-toggle"),
            "page contents": (".bd-sidebar-secondary", ".secondary-toggle")}


# How many lines an element's text takes on screen (its text's boxes, one line per distinct top).
LINES = """
    const lines = (element) => {
        const boxes = [];
        const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
        while (walker.nextNode()) {
            const range = document.createRange();
            range.selectNodeContents(walker.currentNode);
            for (const r of range.getClientRects()) if (r.width > 0 && r.height > 0) boxes.push([r.top, r.height]);
        }
        boxes.sort((a, b) => a[0] - b[0]);
        let count = 0, last = -1e9;
        for (const [top, height] of boxes) if (top - last > height / 2) { count += 1; last = top; }
        return count;
    };"""
# Table cells and dates broken across lines (book.js keeps them whole), and the tables that scroll
# sideways in their box, by their caption.
BROKEN_CELLS = LINES + """
    const main = %s;
    const date = /^\\d{4}-\\d{2}-\\d{2}$/;
    const broken = Array.from(main.querySelectorAll('td, th, span.date'))
        .filter(e => (e.classList.contains('one-line') || date.test(e.textContent.trim())) && lines(e) > 1)
        .map(e => e.textContent.trim());
    const scrolling = Array.from(main.querySelectorAll('.table-output > .output, .pst-scrollable-table-container'))
        .filter(box => box.scrollWidth > box.clientWidth + 1)
        .map(box => { const table = box.closest('.table-output') || box;
                      const caption = table.querySelector('caption, p');
                      return caption ? caption.textContent.trim().slice(0, 40) : 'a table'; });
    return {broken, scrolling};""" % MAIN


def click_when_uncovered(element, seconds=3.0):
    """Click ``element`` as a reader would; while the theme's sliding animation still covers it
    (Selenium: ElementClickInterceptedException), wait and try again, for up to ``seconds``."""
    from selenium.common.exceptions import ElementClickInterceptedException

    deadline = time.monotonic() + seconds
    while True:
        try:
            return element.click()
        except ElementClickInterceptedException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


AXE = REPO / "tests" / "vendor" / "axe-core" / "axe.min.js"  # axe-core 4.14.1, see SOURCE.txt there


def axe_violations(browser, rules: list[str] | None = None) -> list[str]:
    """axe-core's serious and critical violations on the page now open (all its rules, or these),
    one line each: the rule, its impact, how many elements and the first two of them."""
    if not browser.execute_script("return Boolean(window.axe);"):
        browser.execute_script(AXE.read_text())
    options = {"resultTypes": ["violations"]}
    if rules:
        options["runOnly"] = {"type": "rule", "values": rules}
    return browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        axe.run(document, arguments[0]).then(result => done(result.violations
            .filter(v => v.impact === 'serious' || v.impact === 'critical')
            .map(v => `${v.id} (${v.impact}), ${v.nodes.length} element(s): ` + v.nodes.slice(0, 2)
                .map(n => n.target.join(' ') + ': ' + (n.failureSummary || '').replace(/\\s+/g, ' ').slice(0, 200))
                .join(' | '))),
          error => done([`axe failed: ${error}`]));""", options)


@pytest.mark.browser
class TestInBrowser:
    def test_page_loads_with_its_title(self, loaded):
        browser, name = loaded.browser, loaded.name
        assert "404" not in browser.title and "Error response" not in browser.title, f"{name}.html: {browser.title}"
        heading = browser.execute_script(
            f"const h = {MAIN}.querySelector('h1'); if (!h) return null;"
            "const c = h.cloneNode(true); c.querySelectorAll('.headerlink').forEach(e => e.remove());"
            "return c.textContent.trim();")
        assert heading, f"{name}.html has no <h1> in its main content"
        assert browser.title.startswith(heading), \
            f"page title {browser.title!r} does not start with the <h1> {heading!r}"

    def test_no_console_error_or_warning(self, loaded):
        """JavaScript errors and warnings, and resources that failed (with no network, nothing may
        come from outside), on a first visit: the page is opened with the site's storage empty."""
        problems = [f"{e['level']}: {e['message']}" for e in loaded.log if e["level"] in ("SEVERE", "WARNING")]
        assert not problems, f"{loaded.name}.html at {loaded.width} px logged:\n" + "\n".join(problems)

    def test_every_formula_is_typeset_and_no_raw_tex_shows(self, loaded):
        math, name = loaded.math, loaded.name
        assert "failed" not in math, f"{name}.html: MathJax failed: {math['failed']}"
        assert not math["untypeset"], f"{name}.html: formulas left as TeX: {math['untypeset'][:5]}"
        assert not math["errors"], f"{name}.html: MathJax could not read: {math['errors'][:5]}"
        assert math["typeset"] >= math["formulas"]
        text = loaded.browser.execute_script(READER_TEXT)
        raw = [text[max(0, m.start() - 40):m.end() + 40] for m in RAW_TEX.finditer(text)]
        assert not raw, f"{name}.html at {loaded.width} px shows raw TeX:\n" + "\n".join(raw[:10])

    def test_every_figure_is_drawn(self, loaded):
        browser, name = loaded.browser, loaded.name
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(browser, 30).until(lambda d: d.execute_script(
            f"return Array.from({MAIN}.querySelectorAll('img')).every(i => i.complete)"))
        figures = browser.execute_script(f"""
            const main = {MAIN};
            const size = e => {{ const r = e.getBoundingClientRect(); return [r.width, r.height]; }};
            const imgs = Array.from(main.querySelectorAll('img')).map(i => ({{
                kind: 'img', src: i.getAttribute('src'), complete: i.complete,
                natural: [i.naturalWidth, i.naturalHeight], box: size(i)}}));
            const svgs = Array.from(main.querySelectorAll('svg'))
                .filter(s => !s.parentElement.closest('svg')
                             && !s.closest('button, .copybtn, .headerlink, mjx-container')
                             && !s.classList.contains('svg-inline--fa'))
                .map(s => ({{kind: 'svg', src: s.id || s.getAttribute('class') || 'inline svg',
                             complete: true, natural: size(s), box: size(s)}}));
            return imgs.concat(svgs);""")
        bad = [f for f in figures if not (f["complete"] and min(f["natural"]) > 0 and min(f["box"]) > 0)]
        assert not bad, f"{name}.html at {loaded.width} px: figures not drawn: {bad}"
        if name in CHAPTERS:
            expected = image_outputs(name)
            assert len(figures) >= expected, f"{name}.html shows {len(figures)} figures, the notebook has {expected}"
        wider = browser.execute_script(f"""return Array.from({MAIN}.querySelectorAll('img'))
            .filter(i => i.getBoundingClientRect().right > window.innerWidth + 1).map(i => i.getAttribute('src'));""")
        assert not wider, f"{name}.html at {loaded.width} px: figures wider than the screen: {wider}"

    @pytest.mark.parametrize("sidebar", SIDEBARS)
    def test_sidebar_button_opens_it(self, loaded, sidebar):
        """The chapter list and the page contents: shown, or one button that opens them."""
        from selenium.webdriver.common.keys import Keys
        from selenium.webdriver.support.ui import WebDriverWait

        browser, name, width = loaded.browser, loaded.name, loaded.width
        panel, button = SIDEBARS[sidebar]
        where = f"{name}.html at {width} px"
        contents = browser.execute_script(f"return document.querySelectorAll('{panel} nav a').length")
        buttons = browser.execute_script(VISIBLE, button)
        try:
            if not contents:  # a page without sections has no contents to show, and no button for them
                assert not buttons, f"{where}: a {sidebar} button, but no {sidebar} to open"
                return
            shown = browser.execute_script(SHOWN, panel)
            if shown and not buttons:
                return  # wide enough to show it all the time
            assert len(buttons) == 1, \
                f"{where}: the {sidebar} is hidden; expected one button to open it, found {len(buttons)}"
            for _ in range(2 if shown else 1):  # shown: the button hides it, then shows it again
                before = browser.execute_script(SHOWN, panel)
                click_when_uncovered(buttons[0])
                try:
                    WebDriverWait(browser, 3, poll_frequency=0.1).until(
                        lambda d: d.execute_script(SHOWN, panel) != before)
                except Exception:
                    pytest.fail(f"{where}: clicking the {sidebar} button does not {'hide' if before else 'open'} it")
            assert browser.execute_script(SHOWN, panel), f"{where}: the {sidebar} button does not open it"
            links = browser.execute_script(VISIBLE, f"{panel} nav a")
            assert links, f"{where}: the {sidebar} opened without a visible link"
            if not shown:  # a drawer: Escape closes it, wherever the focus is
                browser.execute_script("document.activeElement.blur()")
                browser.switch_to.active_element.send_keys(Keys.ESCAPE)
                try:
                    WebDriverWait(browser, 3, poll_frequency=0.1).until(
                        lambda d: not d.execute_script(SHOWN, panel))
                except Exception:
                    pytest.fail(f"{where}: Escape does not close the {sidebar}")
        finally:
            loaded.reload()

    def test_code_and_outputs_fit_the_column_on_a_laptop(self, loaded):
        """At 1366 px no code cell or output scrolls sideways (code is wrapped at 100 columns,
        tests/test_book.py; book.css sizes the monospace so that 100 columns fit the column)."""
        if loaded.width < 1366:
            pytest.skip("a phone scrolls a long code line inside its box: 100 columns cannot fit 390 px")
        wide = loaded.browser.execute_script(
            f"return Array.from({MAIN}.querySelectorAll('pre')).filter(p => p.scrollWidth > p.clientWidth + 1)"
            ".map(p => p.textContent.split('\\n').reduce((a, l) => l.length > a.length ? l : a, ''));")
        assert not wide, f"{loaded.name}.html at {loaded.width} px: these scroll sideways:\n" + "\n".join(wide[:5])

    def test_dates_and_short_table_cells_stay_whole_and_tables_fit_a_laptop(self, loaded):
        """A date (in a table or in the text), a one-token cell (fast-channels-last, 9.5e-07) and a
        short header (train s) are not broken across lines (book.js, book.css); at 1366 px no table
        scrolls sideways: one that fits keeps fitting (book.js lets short cells wrap rather than
        widen it)."""
        found = loaded.browser.execute_script(BROKEN_CELLS)
        where = f"{loaded.name}.html at {loaded.width} px"
        assert not found["broken"], f"{where}: broken across lines: {found['broken'][:8]}"
        if loaded.width >= 1366:
            assert not found["scrolling"], f"{where}: these tables scroll sideways: {found['scrolling']}"

    def test_one_search_box(self, loaded):
        boxes = loaded.browser.execute_script(VISIBLE, ".search-button-field, .search-button, input[type=search]")
        assert len(boxes) == 1, f"{loaded.name}.html at {loaded.width} px: {len(boxes)} search boxes or buttons"

    def test_no_serious_or_critical_accessibility_violation_in_light_and_dark_mode(self, loaded):
        """axe-core (tests/vendor/axe-core) audits the whole page as loaded (light), then its colours
        again in the theme's dark mode, switched as the theme's button does; the page is left as it was."""
        browser = loaded.browser
        light = axe_violations(browser)
        mode, theme = browser.execute_script(
            "const html = document.documentElement; const was = [html.dataset.mode, html.dataset.theme];"
            "const still = document.createElement('style'); still.id = 'axe-no-transitions';"
            "still.textContent = '*, *::before, *::after { transition: none !important; }';"
            "document.head.append(still); html.dataset.mode = 'dark'; html.dataset.theme = 'dark'; return was;")
        try:
            dark = axe_violations(browser, rules=["color-contrast", "link-in-text-block"])
        finally:
            browser.execute_script(
                "const html = document.documentElement; html.dataset.mode = arguments[0];"
                "html.dataset.theme = arguments[1]; document.getElementById('axe-no-transitions').remove();",
                mode or "auto", theme or "light")
        found = [f"light: {v}" for v in light] + [f"dark: {v}" for v in dark]
        assert not found, f"{loaded.name}.html at {loaded.width} px:\n" + "\n".join(found)

    def test_full_page_screenshot(self, loaded):
        browser, name, width = loaded.browser, loaded.name, loaded.width
        # Make the viewport as tall as the page and shoot it whole (captureBeyondViewport alone
        # sometimes caught the page scrolled sideways while it was still settling).
        height = min(16000, browser.execute_script("return document.documentElement.scrollHeight"))
        set_width(browser, width, height)
        try:
            browser.execute_script("window.scrollTo(0, 0)")
            browser.execute_async_script(  # two animation frames: the new size is laid out and painted
                "const done = arguments[0]; requestAnimationFrame(() => requestAnimationFrame(done));")
            png = browser.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
            # against the screen's width: on a phone the browser widens its layout viewport
            # (innerWidth) to fit content that overflows, so innerWidth would hide the overflow
            scrolls = browser.execute_script("return document.documentElement.scrollWidth") > width + 1
        finally:
            set_width(browser, width)
        path = SCREENSHOTS / str(width) / f"{name.replace('/', '__')}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(png["data"]))
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, f"{path} is not a real screenshot"
        size = (int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big"))
        assert size == (width, height), f"{path} is {size}, the page {(width, height)}"
        assert not scrolls, f"{name}.html at {width} px: the page itself scrolls sideways"


@pytest.mark.browser
def test_a_wide_tables_caption_stays_on_a_phone_screen(browser, server):
    """On a phone the execution report's first table is wider than the screen and scrolls in its
    box; its caption stays on screen, whole, wherever the table is scrolled to (book.css)."""
    set_width(browser, 390)
    try:
        open_page(browser, server, "book/execution_report")
        spans = browser.execute_script("""
            const box = document.querySelector('.pst-scrollable-table-container');
            const caption = box && box.querySelector('caption');
            if (!caption) return null;
            const span = () => { const r = caption.getBoundingClientRect(); return [r.left, r.right]; };
            const out = [box.scrollWidth > box.clientWidth, span()];
            box.scrollLeft = box.scrollWidth;
            out.push(span());
            return out;""")
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    assert spans, "book/execution_report.html has no table with a caption"
    wide, *where = spans
    assert wide, "the execution report's first table fits a 390-pixel screen: this test needs a wide table"
    for left, right in where:
        assert left >= -1 and right <= 391, f"the caption runs off the screen: {left:.0f} to {right:.0f} px"


@pytest.mark.browser
def test_search_finds_the_book(browser, server):
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{server}search.html?q=LeNet")
    results = WebDriverWait(browser, 30).until(lambda d: d.execute_script(
        "const items = document.querySelectorAll('#search-results ul.search li a');"
        "return items.length ? Array.from(items).map(a => a.getAttribute('href')) : null;"))
    assert results, "search.html?q=LeNet found nothing"
    pages = {urlsplit(href).path.removesuffix(".html") for href in results}
    assert pages & set(PAGES), f"no result is a page of the book: {results}"


@pytest.mark.browser
@pytest.mark.parametrize("width", WIDTHS)
def test_hints_are_folded_and_each_solution_link_lands_on_its_solution(browser, server, width):
    """Every exercise's hint is closed until clicked, then shows its text; its "Solution N.k" link
    opens the solutions page, which has that solution's heading under the link's anchor."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    set_width(browser, width)
    for chapter in CHAPTERS:
        open_page(browser, server, chapter)
        hints = browser.find_elements(By.CSS_SELECTOR, "details.hint")
        labels = browser.find_elements(By.CSS_SELECTOR, "a[id^='exercise-']")
        assert hints and len(hints) == len(labels), f"{chapter}: {len(labels)} exercises, {len(hints)} hints"
        assert not [h for h in hints if h.get_attribute("open")], f"{chapter}: a hint is open on arrival"
        summary = hints[0].find_element(By.TAG_NAME, "summary")
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click();", summary)
        assert hints[0].get_attribute("open") is not None and hints[0].text.strip() != "Hint", \
            f"{chapter}: clicking the first hint does not show it"
        browser.execute_script("document.querySelectorAll('details.hint').forEach(d => d.open = true);")
        page_width = browser.execute_script("return document.documentElement.scrollWidth")
        assert page_width <= width + 1, f"{chapter} at {width} px: with its hints open the page is {page_width} px wide"
        links = [a for a in browser.find_elements(By.CSS_SELECTOR, "article a[href*='solutions/']")
                 if "#solution-" in (a.get_attribute("href") or "")]
        assert len(links) == len(labels), f"{chapter}: {len(labels)} exercises, {len(links)} solution links"
        target = links[-1].get_attribute("href")
        browser.get(target)
        fragment = urlsplit(target).fragment
        heading = WebDriverWait(browser, 20).until(lambda d: d.execute_script(
            "const s = document.getElementById(arguments[0]);"
            "return s && s.querySelector('h2') ? s.querySelector('h2').textContent : null;", fragment))
        number = fragment.removeprefix("solution-").replace("-", ".")
        assert heading.startswith(f"Solution {number}"), f"{target}: {heading}"


@pytest.mark.browser
def test_a_figure_drawn_small_on_a_phone_opens_at_full_size(browser, server):
    """At 390 px a figure drawn at less than 3/4 of its width has labels too small to read: a tap
    shows it at its full width in an overlay, on top of the page; Escape closes it and gives the
    focus back to the figure."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    set_width(browser, 390)
    enlarged = 0
    for chapter in CHAPTERS:
        open_page(browser, server, chapter)
        sizes = browser.execute_script(  # [drawn width, own width, enlargeable] of every image
            f"return Array.from({MAIN}.querySelectorAll('img')).map(i => "
            "[i.getBoundingClientRect().width, i.naturalWidth, i.classList.contains('enlargeable')]);")
        wrong = [size for size in sizes if (size[0] < 0.75 * size[1]) != size[2]]
        assert not wrong, f"{chapter}: [drawn, own width, enlargeable] {wrong}"
        small = browser.find_elements(By.CSS_SELECTOR, "img.enlargeable")
        if not small:
            continue
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click();", small[0])
        shown = browser.execute_script(
            "const o = document.querySelector('.figure-overlay'); if (!o) return null;"
            "const i = o.querySelector('img'); const r = o.getBoundingClientRect();"
            "const top = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);"
            "return [i.getBoundingClientRect().width, i.naturalWidth, o.contains(top), i.alt];")
        assert shown and shown[0] >= shown[1] - 1 and shown[2], f"{chapter}: the overlay shows {shown}"
        assert len(shown[3]) > 20, f"{chapter}: the enlarged figure lost its alt text"
        browser.switch_to.active_element.send_keys(Keys.ESCAPE)
        closed = browser.execute_script(
            "return [!document.querySelector('.figure-overlay'), document.activeElement === arguments[0]];", small[0])
        assert closed == [True, True], f"{chapter}: Escape left [overlay closed, focus on the figure] = {closed}"
        enlarged += 1
    assert enlarged >= 4, f"only {enlarged} chapters have a figure drawn small at 390 px"


@pytest.mark.browser
def test_pdf_link_shows_only_where_the_pdf_is(browser, server, site, tmp_path):
    """No link into a 404 after `make book`; a working link once `make pdf` copied the PDF into the
    site (its copy step, on a stand-in file: the site of this session is a temporary build)."""
    from urllib.request import urlopen

    from selenium.webdriver.support.ui import WebDriverWait

    from tools.make_pdf import copy_into_site

    def pdf_note():
        open_page(browser, server, TOC["root"])
        return WebDriverWait(browser, 20).until(lambda d: d.execute_script(
            "const note = document.getElementById('book-pdf');"
            "return note.dataset.checked && [note.dataset.checked, !note.hidden,"
            " note.querySelector('a').href, note.getBoundingClientRect().height];"))

    pdf, marker = site / PDF_IN_SITE, (site / PDF_IN_SITE).parent / "pdf.json"
    assert not pdf.exists(), "the site of this session was built by `make book` alone: no PDF"
    assert json.loads(marker.read_text()) == {"pdf": False}
    assert pdf_note() == ["false", False, "", 0], "a PDF link without a PDF"
    standin = tmp_path / "lenet-book.pdf"
    standin.write_bytes(b"%PDF-1.4\n%%EOF\n")
    try:
        copy_into_site(standin, pdf)
        checked, shown, href, height = pdf_note()
        assert checked == "true" and shown and height > 0, "the PDF is there but its link is hidden"
        with urlopen(href) as response:
            assert response.status == 200 and response.read(5) == b"%PDF-", href
    finally:
        pdf.unlink(missing_ok=True)
        marker.write_text(json.dumps({"pdf": False}) + "\n")


# --------------------------------------------------------------------------- the book as one PDF


@pytest.fixture(scope="session")
def book_pdf(tmp_path_factory) -> Path:
    """The PDF that `make pdf` made ($LENET_BOOK_PDF), else one made now by tools/make_pdf.py."""
    if os.environ.get("LENET_BOOK_PDF"):
        pdf = Path(os.environ["LENET_BOOK_PDF"])
        assert pdf.is_file(), f"LENET_BOOK_PDF={pdf}: no such file (make pdf writes it)"
        return pdf
    pdf = tmp_path_factory.mktemp("pdf") / "lenet-book.pdf"
    result = subprocess.run([sys.executable, str(REPO / "tools" / "make_pdf.py"), "--out", str(pdf)],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0 and pdf.is_file(), f"tools/make_pdf.py failed:\n{result.stdout}\n{result.stderr}"
    return pdf


def poppler(*command: str) -> str:
    tool = shutil.which(command[0])
    if not tool:
        pytest.fail(f"{command[0]} is missing: apt-get install -y poppler-utils (make pdf does it)", pytrace=False)
    return subprocess.run([tool, *command[1:]], capture_output=True, text=True, check=True).stdout


def notebook_figures(chapter: str) -> dict[str, int]:
    """A chapter's image outputs by kind: 'raster' (PNG, JPEG) and 'vector' (SVG)."""
    nb = json.loads((REPO / f"{chapter}.ipynb").read_text())
    kinds = {"raster": 0, "vector": 0}
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "image/svg+xml" in data:
                kinds["vector"] += 1
            elif any(k in data for k in ("image/png", "image/jpeg")):
                kinds["raster"] += 1
    return kinds


def chapter_titles() -> list[str]:
    """The title (first heading) of every page after the front page, in reading order."""
    titles = []
    for name in PAGES[1:]:
        source = REPO / f"{name}.ipynb"
        if source.is_file():
            text = "\n".join("".join(c["source"]) for c in json.loads(source.read_text())["cells"]
                             if c["cell_type"] == "markdown")
        else:
            text = (REPO / f"{name}.md").read_text()
        titles.append(re.search(r"^# (.+)$", text, re.M).group(1).strip())
    return titles


@pytest.mark.browser
def test_pdf_has_every_chapter_in_order_each_on_a_new_page(book_pdf):
    pages = int(re.search(r"^Pages:\s+(\d+)", poppler("pdfinfo", str(book_pdf)), re.M).group(1))
    titles = chapter_titles()
    assert pages >= len(titles) + 1, f"{book_pdf.name}: {pages} pages for {len(titles)} chapters and a front page"
    def squash(words: str) -> str:  # one space between words, hyphens left out: a heading broken
        return re.sub(r"-\s*", "", " ".join(words.split()))  # at "Fashion-|MNIST" reads FashionMNIST

    text = [squash(page) for page in poppler("pdftotext", str(book_pdf), "-").split("\f")]
    starts = []
    for name, title in zip(PAGES[1:], titles):
        heading = squash(f"{NUMBERS[name]}. {title}" if NUMBERS[name] else title)
        found = [index + 1 for index, page in enumerate(text) if page.startswith(heading)]
        assert found, f"{book_pdf.name}: no page starts with the chapter heading {heading!r}"
        starts.append(found[0])
    assert starts == sorted(starts) and len(set(starts)) == len(starts), f"chapters start on pages {starts}"


@pytest.mark.browser
def test_pdf_shows_every_figure(book_pdf):
    raster = sum(notebook_figures(c)["raster"] for c in CHAPTERS)
    vector = sum(notebook_figures(c)["vector"] for c in CHAPTERS)
    images = [line for line in poppler("pdfimages", "-list", str(book_pdf)).splitlines()[2:] if line.strip()]
    assert len(images) >= raster, f"{book_pdf.name}: {len(images)} raster images, the chapters have {raster}"
    # SVG figures stay vector graphics (pdfimages lists raster images only): each is one tagged Figure
    struct = subprocess.run([shutil.which("pdfinfo") or "pdfinfo", "-struct", str(book_pdf)],
                            capture_output=True, text=True).stdout
    tagged = len(re.findall(r"^\s*Figure\b", struct, re.M))
    assert tagged >= raster + vector, f"{book_pdf.name}: {tagged} tagged figures, the chapters have {raster + vector}"


@pytest.mark.browser
def test_pdf_shows_no_raw_tex(book_pdf):
    text = poppler("pdftotext", str(book_pdf), "-")
    # Code listings print literally: leave out lines that look like Python (the chapters' cells).
    prose = "\n".join(line for line in text.splitlines()
                      if not re.search(r"\b(def|import|print|return|lambda|for|assert)\b|[=#]|^\s{2,}", line))
    raw = [prose[max(0, m.start() - 40):m.end() + 40] for m in RAW_TEX.finditer(prose)]
    assert not raw, f"{book_pdf.name} shows raw TeX:\n" + "\n".join(raw[:10])
