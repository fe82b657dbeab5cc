"""Tests of the rendered site: the book is built once, into a temporary folder, and checked.

Default run (no browser): every chapter page has the Colab and Binder launch links and the
download button that _config.yml asks for, pointing at notebooks that exist, and every link to
a local file or anchor in every built page resolves.

`pytest -m browser tests/test_site.py` (what `make site-test` runs) also opens the pages in
headless Chromium (Debian's chromium and chromium-driver), served from 127.0.0.1, with no
network: every page loads, every figure is drawn, the search page finds the book, and a
full-page screenshot of every page is written to _build/screenshots/ for review.
"""

from __future__ import annotations

import base64
import functools
import http.server
import json
import re
import shutil
import subprocess
import sys
import threading
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((REPO / "_config.yml").read_text())
TOC = yaml.safe_load((REPO / "_toc.yml").read_text())
SCREENSHOTS = REPO / "_build" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


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


PAGES = toc_files(TOC)  # docnames: book/intro, notebooks/01_architecture, ...
CHAPTERS = [name for name in PAGES if name.startswith("notebooks/")]


# --------------------------------------------------------------------------- the build


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Path:
    """Build the book once per session into a temporary folder; the repo's _build is untouched."""
    out = tmp_path_factory.mktemp("site")
    command = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(REPO),
               "--path-output", str(out), "--warningiserror", "--keep-going"]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    assert result.returncode == 0, f"the book does not build:\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}"
    html = out / "_build" / "html"
    assert (html / "index.html").is_file(), result.stdout[-3000:]
    print(f"\nbook built in {seconds:.1f} s into {html}")
    return html


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


@functools.lru_cache(maxsize=None)
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


@pytest.mark.parametrize("chapter", CHAPTERS)
class TestChapterButtons:
    def test_colab_link_opens_this_notebook_from_the_repository(self, site, chapter):
        colab = LAUNCH.get("colab_url", "").rstrip("/")
        assert colab == "https://colab.research.google.com", "_config.yml launch_buttons.colab_url"
        links = [h for h in parse(site / f"{chapter}.html").hrefs() if h.startswith(colab + "/")]
        assert links, f"{chapter}.html has no Colab launch link"
        pattern = re.compile(r"https://colab\.research\.google\.com/github/([\w.-]+)/([\w.-]+)/blob/([\w./-]+?)/(.+\.ipynb)")
        for link in set(links):
            match = pattern.fullmatch(link)
            assert match, f"not a Colab GitHub link: {link}"
            owner, name, branch, path = match.groups()
            assert (owner, name, branch) == (OWNER, NAME, BRANCH), f"{link} does not match _config.yml's {REPO_URL} @ {BRANCH}"
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
        pattern = re.compile(re.escape(binder) + r"/v2/gh/([\w.-]+)/([\w.-]+)/([\w./-]+)\?urlpath=(lab/tree|tree)/(.+\.ipynb)")
        for link in set(links):
            match = pattern.fullmatch(link)
            assert match, f"not a Binder GitHub link: {link}"
            owner, name, branch, ui, path = match.groups()
            assert (owner, name, branch) == (OWNER, NAME, BRANCH), f"{link} does not match _config.yml's {REPO_URL} @ {BRANCH}"
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
        assert served.read_bytes() == (REPO / f"{chapter}.ipynb").read_bytes(), "the download is not the stored notebook"
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


# --------------------------------------------------------------------------- in a browser


@pytest.fixture(scope="session")
def server(site):
    """The built site over HTTP on 127.0.0.1 (a free port), in a thread; stopped at the end."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=10)


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """Headless Debian Chromium through its own chromedriver: Selenium Manager never runs."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: apt-get install -y chromium chromium-driver "
                    "(make site-test does it)", pytrace=False)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tmp_path_factory.mktemp("chromium-profile")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,900", "--hide-scrollbars",
                 # no network: names other than 127.0.0.1 fail at once (the MathJax CDN, fonts)
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


# Console errors that are not the book's: sphinx-thebe 0.3.1 (init_thebe_core) writes its
# `const THEBE_JS_URL = ...` inline script twice into every page under Jupyter Book 1 and the
# second one throws (harmless: no live code, thebe, here); pydata-sphinx-theme complains once of a
# fresh profile's empty theme mode; the browser asks for /favicon.ico, which the book has none of.
KNOWN_ERROR = re.compile(r"Uncaught SyntaxError: Identifier 'THEBE_JS_URL' has already been declared"
                         r"|Got invalid theme mode: \. Resetting to auto"
                         r"|^http://127\.0\.0\.1:\d+/favicon\.ico - Failed to load resource")

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


@pytest.mark.browser
@pytest.mark.parametrize("name", PAGES)
class TestInBrowser:
    def test_page_loads_with_its_title(self, browser, server, name):
        browser.get_log("browser")  # drop what earlier pages logged
        open_page(browser, server, name)
        assert "404" not in browser.title and "Error response" not in browser.title, f"{name}.html: {browser.title}"
        heading = browser.execute_script(
            f"const h = {MAIN}.querySelector('h1'); if (!h) return null;"
            "const c = h.cloneNode(true); c.querySelectorAll('.headerlink').forEach(e => e.remove());"
            "return c.textContent.trim();")
        assert heading, f"{name}.html has no <h1> in its main content"
        assert browser.title.startswith(heading), f"page title {browser.title!r} does not start with the <h1> {heading!r}"
        # JavaScript errors, and local resources that failed; the CDN (MathJax) is unreachable on purpose
        errors = [e["message"] for e in browser.get_log("browser")
                  if e["level"] == "SEVERE" and not re.match(r"https?://(?!127\.0\.0\.1[:/])", e["message"])
                  and not KNOWN_ERROR.search(e["message"])]
        assert not errors, f"{name}.html logged errors:\n" + "\n".join(errors)

    def test_every_figure_is_drawn(self, browser, server, name):
        open_page(browser, server, name)
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
                .filter(s => !s.parentElement.closest('svg') && !s.closest('button, .copybtn, .headerlink')
                             && !s.classList.contains('svg-inline--fa'))
                .map(s => ({{kind: 'svg', src: s.id || s.getAttribute('class') || 'inline svg',
                             complete: true, natural: size(s), box: size(s)}}));
            return imgs.concat(svgs);""")
        bad = [f for f in figures if not (f["complete"] and min(f["natural"]) > 0 and min(f["box"]) > 0)]
        assert not bad, f"{name}.html: figures not drawn: {bad}"
        if name in CHAPTERS:
            expected = image_outputs(name)
            assert len(figures) >= expected, f"{name}.html shows {len(figures)} figures, the notebook has {expected}"

    def test_full_page_screenshot(self, browser, server, name):
        open_page(browser, server, name)
        # Make the viewport as tall as the page and shoot it whole (captureBeyondViewport alone
        # sometimes caught the page scrolled sideways while it was still settling).
        width = browser.execute_script("return window.innerWidth")
        height = min(16000, browser.execute_script("return document.documentElement.scrollHeight"))
        browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        try:
            browser.execute_script("window.scrollTo(0, 0)")
            browser.execute_async_script(  # two animation frames: the new size is laid out and painted
                "const done = arguments[0]; requestAnimationFrame(() => requestAnimationFrame(done));")
            png = browser.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
        finally:
            browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name.replace('/', '__')}.png"
        path.write_bytes(base64.b64decode(png["data"]))
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, f"{path} is not a real screenshot"
        size = (int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big"))
        assert size == (width, height), f"{path} is {size}, the page {(width, height)}"


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
