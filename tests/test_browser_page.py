"""The page "LeNet in your browser" (book/lenet_in_browser.md): its data files, and the page itself
in headless Chromium.

Default run: the exported weights (book/browser/lenet_weights.js) are a state dict of the text's
LeNet-5 whose recorded test accuracy is what PyTorch measures with them on the real test set, and
the exported images (book/browser/test_images.js) are the test images they say they are.

`pytest -m browser tests/test_browser_page.py` also builds the book (the fixtures of
tests/conftest.py, shared with tests/test_site.py) and, in Chromium with no network, checks that the
page's JavaScript forward pass gives PyTorch's probabilities (within 1e-5) and classes on every
exported test image, that the page works opened from disk and at 390 px wide, that drawing with
pointer events and opening an image file change the input and the prediction, with the input
trimmed, scaled and centred as Fashion-MNIST's images were. It saves screenshots to
_build/screenshots/lenet_in_browser-*.png.
"""

from __future__ import annotations

import base64
import re
from contextlib import contextmanager

import pytest
import torch

# The built site, its server and the browser: one definition, in tests/test_site.py.
from test_site import REPO, SCREENSHOTS

from lenet_book import fast
from lenet_book.export import decode_images, decode_state_dict, read_js_data

FILES = REPO / "book" / "browser"
PAGE = "book/lenet_in_browser.html"
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
           "Ankle boot"]  # Fashion-MNIST's labels 0-9 (Xiao et al. 2017)


@pytest.fixture(scope="module")
def exported():
    weights = read_js_data(FILES / "lenet_weights.js", "LENET_WEIGHTS")
    images = read_js_data(FILES / "test_images.js", "LENET_TEST_IMAGES")
    return weights, images


@pytest.fixture(scope="module")
def net(exported):
    """The text's LeNet-5 with the exported weights, as PyTorch runs it (float32, CPU)."""
    model = fast.lenet()
    model.load_state_dict(decode_state_dict(exported[0]["tensors"]))  # strict: every name and shape
    return model.eval()


def pytorch_probabilities(net, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.softmax(net(fast.to_float(images)), dim=1)


# --------------------------------------------------------------------------- the data files


def test_weights_file_is_the_text_lenet_and_its_record_is_true(exported, net):
    weights, _ = exported
    assert weights["classes"] == CLASSES
    count = sum(p.numel() for p in net.parameters())
    assert count == weights["training"]["parameters"] == 61_706  # chapter 1's count
    _, (test_images, test_labels) = fast.load_fashion_mnist_tensors(REPO / "data", "cpu")
    measured = fast.evaluate(net, test_images, test_labels)
    assert weights["training"]["test_images"] == len(test_labels) == 10_000
    assert abs(measured - weights["training"]["test_acc"]) < 1e-4, (
        f"the file records test accuracy {weights['training']['test_acc']}, its weights give {measured:.4f}: "
        "rerun tools/export_weights.py")
    assert measured > 0.75, f"test accuracy {measured:.4f}: these weights are not a trained LeNet-5"
    for key in ("date", "torch", "python"):
        assert weights["training"][key], f"the training record lacks its {key}"


def test_test_images_file_holds_real_test_images(exported):
    _, sample = exported
    _, (test_images, test_labels) = fast.load_fashion_mnist_tensors(REPO / "data", "cpu")
    images, indices = decode_images(sample["pixels"]), torch.tensor(sample["indices"])
    assert len(images) == len(indices) == len(sample["labels"]) >= 200
    assert torch.equal(images, test_images[indices]), "the exported pixels are not the test set's"
    assert sample["labels"] == test_labels[indices].tolist()
    assert set(sample["labels"]) == set(range(10)), "the strip should show every class"


def test_page_loads_nothing_from_the_network():
    for path in [REPO / "book" / "lenet_in_browser.md", *FILES.iterdir()]:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".md":  # the page's own HTML, not its prose
            text = "\n".join(re.findall(r"```\{raw\} html\n(.*?)```", text, re.S))
        for pattern in (r"\b(?:src|href)\s*=\s*[\"']?(?:https?:)?//", r"\bfetch\(", r"XMLHttpRequest", r"import\("):
            assert not re.search(pattern, text), f"{path.relative_to(REPO)} loads something: {pattern}"


# --------------------------------------------------------------------------- in a browser


def open_lenet_page(browser, url: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    WebDriverWait(browser, 60).until(lambda d: d.execute_script(
        "const app = document.getElementById('lenet-app'); return app && app.dataset.ready === 'true';"))


def page_errors(browser) -> list[str]:
    """Console errors and warnings that are the page's own (not the unreachable CDN)."""
    return [e["message"] for e in browser.get_log("browser")
            if e["level"] in ("SEVERE", "WARNING")
            and not re.match(r"https?://(?!127\.0\.0\.1[:/])", e["message"])]


@contextmanager
def viewport(browser, width: int, height: int = 900, mobile: bool = False):
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})
    try:
        yield
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def screenshot(browser, name: str) -> None:
    """The page from its top to the end of the app: title, intro, probabilities, feature maps."""
    browser.execute_script("window.scrollTo(0, 0)")
    browser.execute_async_script("const done = arguments[0]; requestAnimationFrame(() => requestAnimationFrame(done));")
    box = browser.execute_script(
        "const r = document.getElementById('lenet-app').getBoundingClientRect();"
        "return [document.documentElement.clientWidth, r.bottom + window.scrollY + 16];")
    png = browser.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": box[0], "height": box[1], "scale": 1}})
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"lenet_in_browser-{name}.png"
    path.write_bytes(base64.b64decode(png["data"]))
    assert path.stat().st_size > 10_000, f"{path} is not a real screenshot"


def state(browser) -> dict:
    return browser.execute_script(
        "const app = document.getElementById('lenet-app');"
        "return {prediction: app.dataset.prediction, updates: Number(app.dataset.updates), source: app.dataset.source,"
        " input: Array.from(LeNetPage.input), status: document.getElementById('lenet-status').textContent};")


def bounding_box(pixels: list[float], threshold: float = 0.05) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the 28×28 input's pixels brighter than threshold."""
    image = torch.tensor(pixels).reshape(28, 28) > threshold
    rows, cols = torch.nonzero(image.any(dim=1)).flatten(), torch.nonzero(image.any(dim=0)).flatten()
    return rows[0].item(), rows[-1].item(), cols[0].item(), cols[-1].item()


@pytest.mark.browser
def test_javascript_gives_pytorchs_probabilities_on_every_test_image(browser, server, exported, net):
    browser.get_log("browser")
    open_lenet_page(browser, server + PAGE)
    js = torch.tensor(browser.execute_script(
        "return LENET_TEST_IMAGES.labels.map((_, i) =>"
        " Array.from(LeNet.forward(LeNetPage.weights, LeNetPage.testImage(i)).probabilities));"),
        dtype=torch.float64)
    images = decode_images(exported[1]["pixels"])
    torch_probs = pytorch_probabilities(net, images).double()
    assert js.shape == torch_probs.shape and len(js) >= 200, (js.shape, torch_probs.shape)
    difference = (js - torch_probs).abs().max().item()
    print(f"\n{len(js)} test images: largest |JavaScript - PyTorch| probability difference {difference:.2e}")
    assert difference < 1e-5
    assert torch.equal(js.argmax(dim=1), torch_probs.argmax(dim=1)), "a predicted class differs"
    # the strip's red frames are exactly PyTorch's mistakes
    wrong = browser.execute_script(
        "return Array.from(document.querySelectorAll('#lenet-strip .lenet-thumb'),"
        " b => b.classList.contains('lenet-wrong'));")
    labels = torch.tensor(exported[1]["labels"])
    assert wrong == (torch_probs.argmax(dim=1) != labels).tolist()
    assert not page_errors(browser), page_errors(browser)


@pytest.mark.browser
def test_picking_a_test_image_shows_its_prediction(browser, server, exported, net):
    open_lenet_page(browser, server + PAGE)
    labels = exported[1]["labels"]
    images = decode_images(exported[1]["pixels"])
    expected = pytorch_probabilities(net, images).argmax(dim=1).tolist()
    for i in (3, 17):  # two thumbnails of different classes
        browser.execute_script("document.querySelectorAll('#lenet-strip .lenet-thumb')[arguments[0]].click();", i)
        shown = state(browser)
        assert shown["source"] == "test"
        assert shown["prediction"] == CLASSES[expected[i]]
        assert torch.equal(torch.tensor(shown["input"], dtype=torch.float64), images[i].flatten().double() / 255)
        assert CLASSES[labels[i]] in shown["status"]
        bars = browser.execute_script(
            "return Array.from(document.querySelectorAll('#lenet-bars .lenet-bar'),"
            " r => [r.classList.contains('lenet-best'), parseFloat(r.querySelector('.lenet-bar-fill').style.width)]);")
        assert [best for best, _ in bars].index(True) == expected[i]
        assert abs(sum(width for _, width in bars) - 100) < 1e-3, "the bars' widths are probabilities summing to 1"
        maps = browser.execute_script(
            "return ['c1', 's2', 'c3', 's4'].map(n => Array.from(document.querySelectorAll('#lenet-' + n + ' canvas'),"
            " c => [c.width, c.height]));")
        assert maps == [[[28, 28]] * 6, [[14, 14]] * 6, [[10, 10]] * 16, [[5, 5]] * 16]
    # The numbers the text quotes are filled in from the files and the run.
    quoted = browser.execute_script(
        "return Object.fromEntries(['lenet-sizes', 'lenet-training', 'lenet-cost', 'lenet-strip-count',"
        " 'lenet-accuracy']"
        ".map(id => [id, document.getElementById(id).textContent]));")
    assert "61,706 numbers: 246,824 bytes" in quoted["lenet-sizes"]
    assert f"test accuracy {exported[0]['training']['test_acc']}" in quoted["lenet-training"]
    assert quoted["lenet-cost"].startswith("416,520 multiply-adds")  # 117,600 + 240,000 + 48,000 + 10,080 + 840
    assert quoted["lenet-strip-count"] == f"{len(labels)} test images, the first {len(labels) // 10} of each class"
    right = sum(e == y for e, y in zip(expected, labels))
    assert f"classifies {right} of these {len(labels)} test images correctly" in quoted["lenet-accuracy"]
    browser.execute_script("document.querySelectorAll('#lenet-strip .lenet-thumb')[0].click();")
    with viewport(browser, 1366):
        screenshot(browser, "test-image-1366")


def draw(browser, strokes, release: bool = True) -> None:
    """Press, move through each stroke's points (offsets from the canvas's centre, in CSS px), lift."""
    from selenium.webdriver.common.action_chains import ActionChains

    canvas = browser.find_element("id", "lenet-canvas")
    for points in strokes:
        actions = ActionChains(browser, duration=10).move_to_element_with_offset(canvas, *points[0]).click_and_hold()
        for (x0, y0), (x1, y1) in zip(points, points[1:]):
            actions.move_by_offset(x1 - x0, y1 - y0)
        if release:
            actions.release()
        actions.perform()


# A pair of trousers, as on the images: a waistband and two legs, in a 280 px square.
TROUSERS = [[(-50, -110), (50, -110)], [(-45, -110), (-60, 115)], [(45, -110), (60, 115)]]


@pytest.mark.browser
def test_drawing_changes_the_prediction_while_one_draws(browser, server):
    open_lenet_page(browser, server + PAGE)
    browser.find_element("id", "lenet-clear").click()
    browser.execute_script("document.getElementById('lenet-brush').value = 40;")  # the widest brush
    blank = state(browser)
    assert blank["source"] == "drawing" and max(blank["input"]) == 0, "Clear should leave an empty input"

    draw(browser, [TROUSERS[1]], release=False)  # one leg, the pointer still pressed
    midway = state(browser)
    assert midway["updates"] > blank["updates"] and max(midway["input"]) > 0.5, \
        "the input and the prediction should follow the stroke before the pointer is lifted"
    draw(browser, [[TROUSERS[1][-1]]])  # lift it
    draw(browser, [TROUSERS[0], TROUSERS[2]])
    drawn = state(browser)
    assert drawn["prediction"] != blank["prediction"], f"still {blank['prediction']} after drawing"
    # Prepared as Fashion-MNIST was: longer side (the height) 28 pixels, centred left to right.
    top, bottom, left, right = bounding_box(drawn["input"])
    assert (top, bottom) == (0, 27), f"rows {top}..{bottom}: the drawing should be scaled to 28 pixels high"
    assert abs(left - (27 - right)) <= 1, f"columns {left}..{right} are not centred"
    print(f"\nblank: {blank['prediction']}; drawn trousers: {drawn['prediction']} ({drawn['status']})")
    with viewport(browser, 1366):
        screenshot(browser, "drawing-1366")
    with viewport(browser, 390, 844, mobile=True):
        screenshot(browser, "drawing-390")
    assert not page_errors(browser), page_errors(browser)


@pytest.mark.browser
def test_page_fits_a_390_px_phone(browser, server):
    with viewport(browser, 390, 844, mobile=True):
        open_lenet_page(browser, server + PAGE)
        sizes = browser.execute_script("""
            const right = id => document.getElementById(id).getBoundingClientRect().right;
            return {page: document.documentElement.scrollWidth, app: right('lenet-app'),
                    canvas: right('lenet-canvas'), bars: right('lenet-bars'), maps: right('lenet-c3'),
                    viewport: document.documentElement.clientWidth};""")
        assert sizes["viewport"] <= 390
        for part in ("page", "app", "canvas", "bars", "maps"):
            assert sizes[part] <= sizes["viewport"] + 0.5, f"{part} is wider than the phone: {sizes}"
        screenshot(browser, "test-image-390")


@pytest.mark.browser
def test_page_works_opened_from_disk_with_no_network(browser, site):
    browser.get_log("browser")
    open_lenet_page(browser, (site / PAGE).as_uri())
    shown = state(browser)
    assert shown["source"] == "test" and shown["prediction"] in CLASSES
    sources = browser.execute_script(
        "return performance.getEntriesByType('resource').map(r => r.name)"
        ".concat(Array.from(document.scripts, s => s.src).filter(Boolean));")
    assert all(s.startswith(("file:", "data:", "blob:")) or "mathjax" in s.lower() for s in sources), sources
    # From file:// Chromium refuses the theme's web fonts (CORS), and so also their preloads; the
    # text falls back to other fonts.
    errors = [e for e in page_errors(browser)
              if not re.search(r"Access to font at 'file:|\.(woff2?|ttf) - Failed to load resource"
                               r"|A preload for 'file:[^']*\.woff2?'", e)]
    assert not errors, errors


@pytest.mark.browser
def test_opened_image_is_trimmed_scaled_centred_and_negated(browser, server, tmp_path):
    from PIL import Image, ImageDraw

    # A dark, tall object (60×120 px) off-centre on white paper, 300×200 px.
    picture = Image.new("RGB", (300, 200), "white")
    ImageDraw.Draw(picture).rectangle([200, 40, 259, 159], fill=(20, 20, 20))
    path = tmp_path / "dark_on_white.png"
    picture.save(path)
    open_lenet_page(browser, server + PAGE)
    before = state(browser)
    browser.find_element("id", "lenet-file").send_keys(str(path))
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 30).until(
        lambda d: d.execute_script("return document.getElementById('lenet-app').dataset.source") == "file")
    opened = state(browser)
    assert opened["updates"] > before["updates"] and "dark_on_white.png" in opened["status"]
    image = torch.tensor(opened["input"]).reshape(28, 28)
    top, bottom, left, right = bounding_box(opened["input"])
    assert (top, bottom) == (0, 27), "the longer side should be scaled to 28 pixels"
    assert right - left + 1 == 14, "the shorter side should keep the proportions: 60/120 of 28"
    assert (left, 27 - right) == (7, 7), "the object should be centred"
    assert image[1:27, left + 1:right].min() > 0.9 and image[:, :left].max() == 0, \
        "a dark object on white should become white on black"


# --------------------------------------------------------------------------- for every reader


@pytest.mark.browser
def test_an_empty_square_asks_for_a_drawing_instead_of_classifying(browser, server):
    """The network names a class even for an empty input ("Sandal, 99.2%" once): the page does not."""
    from selenium.webdriver.support.ui import WebDriverWait

    open_lenet_page(browser, server + PAGE)
    browser.find_element("id", "lenet-clear").click()
    # the page updates in the next animation frames: under load that can take a while
    WebDriverWait(browser, 30).until(lambda d: state(d)["source"] == "drawing"
                                     and "empty" in state(d)["status"])
    blank = state(browser)
    assert blank["source"] == "drawing" and max(blank["input"]) == 0
    assert blank["prediction"] == "" and "empty" in blank["status"], blank["status"]
    values = browser.execute_script(
        "return Array.from(document.querySelectorAll('#lenet-bars .lenet-bar-value'), v => v.textContent);")
    assert values == ["—"] * 10 and not browser.find_elements("css selector", "#lenet-bars .lenet-best")
    draw(browser, [TROUSERS[1]])
    assert state(browser)["prediction"] in CLASSES, "a stroke is classified again"


@pytest.mark.browser
def test_the_page_answers_before_the_strip_is_classified(browser, server):
    """Start-up does not hold the page: the first image's prediction is shown, and the page takes
    input, while the strip's images are still being classified a few at a time in later tasks."""
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server + PAGE)
    early = WebDriverWait(browser, 60).until(lambda d: d.execute_script(
        "const app = document.getElementById('lenet-app');"
        "return app && app.dataset.interactive === 'true' && [app.dataset.ready || 'no', app.dataset.prediction,"
        " document.querySelectorAll('#lenet-strip .lenet-thumb').length, Number(app.dataset.startupMs)];"))
    ready, prediction, thumbs, startup_ms = early
    assert prediction in CLASSES and thumbs >= 200
    WebDriverWait(browser, 60).until(lambda d: d.execute_script(
        "return document.getElementById('lenet-app').dataset.ready === 'true';"))
    chunks = int(browser.execute_script("return document.getElementById('lenet-app').dataset.stripChunks;"))
    assert chunks >= thumbs // 24, f"the strip was classified in {chunks} tasks"
    strip = "strip done" if ready == "true" else "strip pending"
    print(f"\nstart-up: {startup_ms:.0f} ms before the page answered ({strip}), then the strip in {chunks} tasks")


@pytest.mark.browser
def test_the_strip_is_one_tab_stop_and_the_arrow_keys_move_along_it(browser, server):
    from selenium.webdriver.common.keys import Keys

    open_lenet_page(browser, server + PAGE)
    stops = browser.execute_script(
        "return Array.from(document.querySelectorAll('#lenet-strip button'), b => b.tabIndex);")
    assert stops.count(0) == 1 and stops.count(-1) == len(stops) - 1, "one Tab stop for the whole strip"
    first = browser.find_elements("css selector", "#lenet-strip button")[0]
    browser.execute_script("arguments[0].focus();", first)
    focused = lambda: browser.execute_script(  # noqa: E731
        "return Array.from(document.querySelectorAll('#lenet-strip button')).indexOf(document.activeElement);")
    browser.switch_to.active_element.send_keys(Keys.ARROW_RIGHT)
    browser.switch_to.active_element.send_keys(Keys.ARROW_RIGHT)
    assert focused() == 2
    browser.switch_to.active_element.send_keys(Keys.END)
    assert focused() == len(stops) - 1
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    assert state(browser)["source"] == "test" and "Test image" in state(browser)["status"]
    browser.switch_to.active_element.send_keys(Keys.TAB)
    assert focused() == -1, "Tab leaves the strip at once"


@pytest.mark.browser
def test_headings_canvases_and_announcements_serve_a_screen_reader(browser, server):
    """Headings do not skip a level; every canvas has a name or is hidden inside a named button;
    the live region speaks once when a stroke ends, not on every frame of it."""
    open_lenet_page(browser, server + PAGE)
    levels = browser.execute_script(
        "return Array.from(document.querySelectorAll('article h1, article h2, article h3, article h4, article h5,"
        " article h6'), h => Number(h.tagName[1]));")
    jumps = [(a, b) for a, b in zip(levels, levels[1:]) if b > a + 1]
    assert levels[0] == 1 and not jumps, f"heading levels {levels}"
    unnamed = browser.execute_script(
        "return Array.from(document.querySelectorAll('#lenet-app canvas')).filter(c => !("
        " (c.getAttribute('role') === 'img' && c.getAttribute('aria-label'))"
        " || (c.getAttribute('aria-hidden') === 'true' && c.closest('button[aria-label]'))))"
        ".map(c => c.id || c.className);")
    assert not unnamed, f"canvases without a name: {unnamed[:5]} ({len(unnamed)})"
    browser.execute_script("""
        window.liveChanges = [];
        const live = Array.from(document.querySelectorAll('#lenet-app [aria-live]'));
        const observer = new MutationObserver(() => window.liveChanges.push(live.map(e => e.textContent).join(' | ')));
        for (const region of live) observer.observe(region, {subtree: true, childList: true, characterData: true});
        window.liveObserved = live.map(e => e.id);""")
    assert browser.execute_script("return window.liveObserved;") == ["lenet-announce"]
    browser.find_element("id", "lenet-clear").click()
    # the clear button's own announcement comes two frames after the click: let it pass first
    browser.execute_async_script("const done = arguments[0]; requestAnimationFrame(() => requestAnimationFrame(() =>"
                                 " requestAnimationFrame(done)));")
    browser.execute_script("window.liveChanges.length = 0;")
    updates = state(browser)["updates"]
    draw(browser, [TROUSERS[1]], release=False)
    during = browser.execute_script("return window.liveChanges.length;")
    assert state(browser)["updates"] > updates, "the stroke should update the prediction as it draws"
    draw(browser, [[TROUSERS[1][-1]]])
    browser.execute_async_script("const done = arguments[0]; requestAnimationFrame(() => requestAnimationFrame(() =>"
                                 " requestAnimationFrame(done)));")
    after = browser.execute_script("return window.liveChanges.length;")
    assert during == 0 and after >= 1, f"announcements: {during} during the stroke, {after} after it"
