"""The drill-down of the page "LeNet in your browser" (book/browser/drilldown.js): a click, a tap or
Enter on a unit of a feature map (C1, S2, C3, S4) opens a panel with the unit's input window, its
kernel or pooling block, and the arithmetic that produced its value.

In headless Chromium (marker browser, fixtures of tests/conftest.py): for units of every layer,
the padded corners of C1 among them, the arithmetic that LeNetDrill.explain returns, recomputed
here in float64 from its terms (z = b + sum of w*x and sigmoid(z), or (a + b + c + d) / 4), must
give PyTorch's activation for the same image and the exported weights within TOLERANCE; its
windows must be PyTorch's inputs and its kernels the exported weights. The check is shown to fail
once, on a kernel read with its row and column swapped. The panel's text, rounded to 4 significant
digits, must agree with PyTorch within its rounding; the panel opens by click and by keyboard,
closes by its button and by Escape, fits a 390 px phone, and leaves axe-core with no serious or
critical violation (light mode; dark mode's colours). Screenshots go to
_build/screenshots/lenet_in_browser-drill-*.png.
"""

from __future__ import annotations

import base64
import math
import random
import re
from contextlib import contextmanager

import pytest
import torch

# The page's helpers and the network with the exported weights: tests/test_browser_page.py; the
# built site, its server and the browser: tests/test_site.py.
from test_browser_page import PAGE, exported, net, open_lenet_page, page_errors, viewport  # noqa: F401
from test_site import SCREENSHOTS, axe_violations

# |value recomputed from the shown terms - PyTorch's activation|. The page computes in float64 with
# the float32 weights, PyTorch in float32; the largest difference measured over every unit of the
# maps of two test images is about 1e-7 (printed by the first test).
TOLERANCE = 1e-5
LAYERS = {"c1": (6, 28), "s2": (6, 14), "c3": (16, 10), "s4": (16, 5)}  # channels, side


def pytorch_maps(net, pixels: list[float]) -> dict[str, torch.Tensor]:
    """PyTorch's C1, S2, C3, S4 (and the pre-activations of C1 and C3) for one 28×28 input."""
    x = torch.tensor(pixels, dtype=torch.float32).reshape(1, 1, 28, 28)
    stages = {}
    with torch.no_grad():
        for index, layer in enumerate(net[:6]):
            x = layer(x)
            stages[index] = x[0].double()
    return {"input": torch.tensor(pixels, dtype=torch.float64).reshape(1, 28, 28), "c1_z": stages[0],
            "c1": stages[1], "s2": stages[2], "c3_z": stages[3], "c3": stages[4], "s4": stages[5]}


def recompute(e: dict) -> tuple[float | None, float]:
    """(z, value) from the explanation's terms alone, in float64."""
    if e["kind"] == "pool":
        (window,) = e["windows"]
        return None, sum(window["x"]) / 4
    z = e["bias"] + sum(w * x for window in e["windows"] for w, x in zip(window["w"], window["x"]))
    return z, 1 / (1 + math.exp(-z))


def check_arithmetic(e: dict, maps: dict) -> float:
    """The explained arithmetic gives PyTorch's activation; returns the difference."""
    expected = maps[e["layer"]][e["channel"], e["row"], e["col"]].item()
    z, value = recompute(e)
    where = f"{e['layer']} map {e['channel']}, row {e['row']}, column {e['col']}"
    assert abs(value - expected) <= TOLERANCE, f"{where}: the shown terms give {value:.7f}, PyTorch {expected:.7f}"
    if z is not None:
        expected_z = maps[e["layer"] + "_z"][e["channel"], e["row"], e["col"]].item()
        assert abs(z - expected_z) <= 4 * TOLERANCE, f"{where}: z = {z:.7f}, PyTorch {expected_z:.7f}"
    assert abs(e["value"] - value) <= 1e-12 and e["value"] == e["mapValue"], \
        f"{where}: the panel's value {e['value']} is not its terms' {value} or the map's {e['mapValue']}"
    return abs(value - expected)


def check_terms(e: dict, maps: dict, state: dict) -> None:
    """Each window holds the layer input's values where it lies (zeros on C1's padding), each
    kernel the exported weights of this output and input map."""
    source = maps[e["source"]]
    n = source.shape[-1]
    for window in e["windows"]:
        k, top, left = window["k"], window["top"], window["left"]
        padded = torch.nn.functional.pad(source[window["map"]], (2, 2, 2, 2))  # index + 2: C1's padding
        expected = padded[top + 2:top + 2 + k, left + 2:left + 2 + k].flatten()
        assert torch.allclose(torch.tensor(window["x"], dtype=torch.float64), expected, atol=1e-6, rtol=0), \
            f"{e['layer']} {e['channel']},{e['row']},{e['col']}: window of map {window['map']} is not the input's"
        inside = [0 <= top + i < n and 0 <= left + j < n for i in range(k) for j in range(k)]
        assert window["padded"] == [not v for v in inside]
        if e["kind"] == "conv":
            name = {"c1": "0", "c3": "3"}[e["layer"]]
            kernel = state[f"{name}.weight"][e["channel"], window["map"]].double().flatten()
            assert torch.equal(torch.tensor(window["w"], dtype=torch.float64), kernel), \
                f"{e['layer']} {e['channel']},{e['row']},{e['col']}: kernel of map {window['map']} is not the weights'"
            assert e["bias"] == state[f"{name}.bias"][e["channel"]].item()


def units(seed: int) -> list[tuple[str, int, int, int]]:
    """The four corners of every layer, C1's padded border, and random units (fixed seed)."""
    rng = random.Random(seed)
    chosen = [("c1", 0, 0, 1), ("c1", 3, 1, 27), ("c1", 5, 13, 0), ("c1", 1, 27, 14)]  # borders: padding
    for layer, (channels, side) in LAYERS.items():
        last = side - 1
        for row, col in [(0, 0), (0, last), (last, 0), (last, last)]:
            chosen.append((layer, rng.randrange(channels), row, col))
        for _ in range(4):
            chosen.append((layer, rng.randrange(channels), rng.randrange(side), rng.randrange(side)))
    return chosen


EXPLAIN = """
const [units, image] = arguments;
const weights = LeNetPage.weights, input = LeNetPage.testImage(image);
const forward = LeNet.forward(weights, input);
const explained = units.map(([layer, channel, row, col]) =>
  LeNetDrill.explain({weights, input, layer, channel, row, col, forward}));
return {input: Array.from(input), explained,
        maps: Object.fromEntries(['c1', 's2', 'c3', 's4'].map(m => [m, Array.from(forward[m])]))};
"""


@pytest.mark.browser
def test_explained_arithmetic_gives_pytorchs_activation(browser, server, net):
    browser.get_log("browser")
    open_lenet_page(browser, server + PAGE)
    state = net.state_dict()
    largest, count = 0.0, 0
    for image in (0, 137):  # two test images of the strip
        got = browser.execute_script(EXPLAIN, units(image), image)
        maps = pytorch_maps(net, got["input"])
        for e in got["explained"]:
            largest = max(largest, check_arithmetic(e, maps))
            check_terms(e, maps, state)
            count += 1
        # Every unit the maps show is PyTorch's, so the panel's value is also what its map shows.
        for layer, (channels, side) in LAYERS.items():
            shown = torch.tensor(got["maps"][layer], dtype=torch.float64).reshape(channels, side, side)
            largest = max(largest, (shown - maps[layer]).abs().max().item())
    # ...and explain's value is exactly the map's for every unit of every layer (7,880 of them).
    mismatches = browser.execute_script("""
        const weights = LeNetPage.weights, input = LeNetPage.testImage(0);
        const forward = LeNet.forward(weights, input);
        let mismatches = 0;
        for (const [layer, spec] of Object.entries(LeNetDrill.LAYERS))
          for (let c = 0; c < spec.channels; c++)
            for (let r = 0; r < spec.size; r++) for (let q = 0; q < spec.size; q++)
            mismatches += LeNetDrill.explain({weights, input, layer, channel: c, row: r, col: q, forward}).value
              !== forward[layer][(c * spec.size + r) * spec.size + q];
        return mismatches;""")
    assert mismatches == 0, f"{mismatches} units whose explained value is not the map's"
    print(f"\n{count} explained units: largest |recomputed - PyTorch| {largest:.1e} (tolerance {TOLERANCE:.0e})")

    # The check can fail: a kernel read with its row and column swapped (w[j][i] for w[i][j]).
    swapped = browser.execute_script("""
        const right = LeNetDrill.kernelIndex;
        LeNetDrill.kernelIndex = (o, c, i, j, k, n) => right(o, c, j, i, k, n);
        try {
          const weights = LeNetPage.weights, input = LeNetPage.testImage(0);
          return [['c1', 2, 10, 14], ['c3', 0, 5, 5]].map(([layer, channel, row, col]) =>
            LeNetDrill.explain({weights, input, layer, channel, row, col}));
        } finally { LeNetDrill.kernelIndex = right; }""")
    maps = pytorch_maps(net, browser.execute_script("return Array.from(LeNetPage.testImage(0));"))
    for e in swapped:
        with pytest.raises(AssertionError, match="the shown terms give") as failure:
            check_arithmetic(e, maps)
        print(f"kernel transposed: {str(failure.value).splitlines()[0]}")
    assert not page_errors(browser), page_errors(browser)


# --------------------------------------------------------------------------- the panel


def half_unit(text: str) -> float:
    """Half a unit in the last digit of a number as the panel writes it ("−0.1234", "1.234e-7")."""
    mantissa, _, exponent = text.replace("−", "-").partition("e")
    if not mantissa.strip("-0."):
        return 0.0  # "0": exactly zero
    return 0.5 * 10 ** (int(exponent or 0) - len(mantissa.partition(".")[2]))


def number(text: str) -> float:
    return float(text.replace("−", "-"))


PANEL = """
const panel = document.getElementById('lenet-drill');
if (!panel) return null;
const texts = selector => Array.from(panel.querySelectorAll(selector), e => e.textContent);
const d = panel.dataset;
return {unit: [d.layer, Number(d.channel), Number(d.row), Number(d.col)],
        title: panel.querySelector('h4').textContent, text: panel.textContent,
        values: texts('.lenet-drill-value'), z: texts('.lenet-drill-z'), bias: texts('.lenet-drill-bias'),
        partials: texts('.lenet-drill-partial'), products: texts(':scope > .lenet-drill-body > .lenet-drill-tables '
        + '.lenet-drill-products td'), x: texts('.lenet-drill-x td'), focused: panel.contains(document.activeElement)};
"""


def check_panel(shown: dict, maps: dict) -> None:
    """The panel's rounded numbers give PyTorch's activation, within their rounding."""
    layer, channel, row, col = shown["unit"]
    expected = maps[layer][channel, row, col].item()
    assert not re.search(r"NaN|undefined|Infinity", shown["text"]), shown["text"]
    assert f"{layer.upper()} map {channel}, row {row}, column {col}" in shown["title"]
    value = shown["values"][0]
    assert len(shown["values"]) == 2 and set(shown["values"]) == {value}, shown["values"]
    assert value in shown["title"] and abs(number(value) - expected) <= half_unit(value) + TOLERANCE, \
        f"the panel says {value}, PyTorch {expected:.7f}"
    if layer in ("s2", "s4"):  # (a + b + c + d) / 4 from the four values shown
        assert len(shown["x"]) == 4
        total = sum(map(number, shown["x"])) / 4
        assert abs(total - expected) <= sum(map(half_unit, shown["x"])) / 4 + TOLERANCE
        return
    # C1: 25 products; C3: six partial sums. Their sum plus the bias is z, within their rounding.
    terms = shown["products"] if layer == "c1" else shown["partials"]
    assert len(terms) == (25 if layer == "c1" else 6), terms
    (bias,), (z,) = shown["bias"], shown["z"]
    expected_z = maps[layer + "_z"][channel, row, col].item()
    total = number(bias) + sum(map(number, terms))
    assert abs(total - expected_z) <= half_unit(bias) + sum(map(half_unit, terms)) + TOLERANCE, \
        f"b + the shown terms = {total:.6f}, PyTorch's z {expected_z:.6f}"
    assert abs(number(z) - expected_z) <= half_unit(z) + TOLERANCE
    assert abs(1 / (1 + math.exp(-number(z))) - expected) <= half_unit(z) / 4 + TOLERANCE  # sigmoid' <= 1/4


def click_unit(browser, layer: str, channel: int, row: int, col: int, tap: bool = False) -> None:
    """Click the middle of a unit of a map with the mouse, or tap it with a finger (at CSS pixels
    with fractions: a unit of C1 is 2 px wide)."""
    browser.execute_script(
        "document.querySelectorAll(`#lenet-${arguments[0]} canvas`)[arguments[1]]"
        ".scrollIntoView({block: 'center', behavior: 'instant'});", layer, channel)
    settle(browser)
    x, y = browser.execute_script("""
        const [layer, channel, row, col, side] = arguments;
        const canvas = document.querySelectorAll(`#lenet-${layer} canvas`)[channel];
        const box = canvas.getBoundingClientRect();
        return [box.left + (col + 0.5) * box.width / side, box.top + (row + 0.5) * box.height / side];""",
                                  layer, channel, row, col, LAYERS[layer][1])
    if tap:  # a finger on a touch screen: touch and pointer events, then the click they make
        browser.execute_cdp_cmd("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
        browser.execute_cdp_cmd("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
        return
    for event in ("mousePressed", "mouseReleased"):
        browser.execute_cdp_cmd("Input.dispatchMouseEvent",
                                {"type": event, "x": x, "y": y, "button": "left", "clickCount": 1})


@contextmanager
def touch_screen(browser):
    browser.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 1})
    try:
        yield
    finally:
        browser.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": False})


def settle(browser) -> None:
    """Wait until the page stops scrolling (the theme scrolls smoothly) for 3 frames, 2 s at most."""
    browser.execute_async_script("""
        const done = arguments[0], start = performance.now();
        let last = null, still = 0;
        (function frame() {
          still = window.scrollY === last ? still + 1 : 0;
          last = window.scrollY;
          if (still >= 3 || performance.now() - start > 2000) done(); else requestAnimationFrame(frame);
        })();""")


def press(browser, selector: str, index: int = 0) -> None:
    """Click a button (or summary) of the page, scrolled to the middle of the screen first."""
    element = browser.find_elements("css selector", selector)[index]
    browser.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'});", element)
    settle(browser)
    element.click()


def panel(browser) -> dict | None:
    """What the open panel shows (None if none is open), once the page has handled the last input."""
    browser.execute_async_script("requestAnimationFrame(() => setTimeout(arguments[0], 0));")
    return browser.execute_script(PANEL)


def screenshot_panel(browser, name: str) -> None:
    browser.execute_script(  # the panel's top just below the theme's header
        "document.getElementById('lenet-drill').scrollIntoView({block: 'start', behavior: 'instant'});"
        "window.scrollBy({top: -64, behavior: 'instant'});")
    settle(browser)
    png = browser.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / f"lenet_in_browser-drill-{name}.png").write_bytes(base64.b64decode(png["data"]))


@pytest.mark.browser
def test_clicking_a_unit_of_each_layer_explains_it(browser, server, net):
    browser.get_log("browser")
    open_lenet_page(browser, server + PAGE)
    maps = pytorch_maps(net, browser.execute_script("return Array.from(LeNetPage.input);"))
    for unit in [("c1", 2, 0, 27), ("s2", 4, 7, 3), ("s4", 15, 4, 0), ("c3", 9, 4, 6)]:
        click_unit(browser, *unit)
        shown = panel(browser)
        assert shown and tuple(shown["unit"]) == unit, (unit, shown and shown["unit"])
        check_panel(shown, maps)
        if unit[0] == "c1":  # the corner: 2 rows and 2 columns of its window on the padding, zeros
            assert shown["text"].count("on the padding") == 1 and "(16 on the padding, 0)" in shown["text"]
    # C3: one sum per S2 map; open one to see its 25 products.
    press(browser, "#lenet-drill details summary", 3)
    products = browser.execute_script(
        "return Array.from(document.querySelectorAll('#lenet-drill details')[3].querySelectorAll("
        "'.lenet-drill-products td'), td => td.offsetWidth > 0 ? td.textContent : null);")
    assert len(products) == 25 and None not in products
    screenshot_panel(browser, "c3-1280")
    # axe-core on the page with the panel open: light mode, then the colours in dark mode.
    found = axe_violations(browser)
    browser.execute_script("const still = document.createElement('style'); still.id = 'axe-no-transitions';"
                           "still.textContent = '*, *::before, *::after { transition: none !important; }';"
                           "document.head.append(still); const html = document.documentElement;"
                           "html.dataset.mode = html.dataset.theme = 'dark';")
    found += [f"dark: {v}" for v in axe_violations(browser, rules=["color-contrast"])]
    browser.execute_script("const html = document.documentElement; html.dataset.mode = 'auto';"
                           "html.dataset.theme = 'light'; document.getElementById('axe-no-transitions').remove();")
    assert not found, found
    press(browser, "#lenet-drill .lenet-drill-close")
    assert panel(browser) is None
    assert not page_errors(browser), page_errors(browser)


@pytest.mark.browser
def test_keyboard_moves_a_cursor_enter_explains_escape_closes(browser, server, net):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    open_lenet_page(browser, server + PAGE)
    first = browser.find_elements("css selector", "#lenet-s2 canvas")[0]
    stops = browser.execute_script(
        "return Array.from(document.querySelectorAll('#lenet-s2 canvas'), c => c.tabIndex);")
    assert stops == [0] + [-1] * 5, f"one Tab stop per layer: {stops}"
    browser.execute_script("arguments[0].focus();", first)
    # 14 steps right cross the right edge of map 0 (14 columns) into map 1; then 3 down.
    ActionChains(browser).send_keys(Keys.ARROW_RIGHT * 14 + Keys.ARROW_DOWN * 3 + Keys.ENTER).perform()
    shown = panel(browser)
    assert shown and tuple(shown["unit"]) == ("s2", 1, 3, 0) and shown["focused"], shown and shown["unit"]
    check_panel(shown, pytorch_maps(net, browser.execute_script("return Array.from(LeNetPage.input);")))
    ActionChains(browser).send_keys(Keys.ESCAPE).perform()
    assert panel(browser) is None
    back = browser.execute_script(
        "return Array.from(document.querySelectorAll('#lenet-s2 canvas')).indexOf(document.activeElement);")
    assert back == 1, "Escape gives the focus back to the map"
    # A new input redraws an open panel: the same unit, the new image's value.
    click_unit(browser, "c1", 0, 14, 14)
    before = panel(browser)
    browser.execute_script("arguments[0].click();", browser.find_elements("css selector", "#lenet-strip button")[30])
    after = panel(browser)
    assert after["unit"] == before["unit"] and after["values"] != before["values"]
    check_panel(after, pytorch_maps(net, browser.execute_script("return Array.from(LeNetPage.input);")))


@pytest.mark.browser
def test_a_tap_at_390_px_opens_a_panel_that_fits_and_closes(browser, server):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    with viewport(browser, 390, 844, mobile=True), touch_screen(browser):
        open_lenet_page(browser, server + PAGE)
        for unit in [("c1", 5, 27, 0), ("c3", 0, 9, 9)]:
            click_unit(browser, *unit, tap=True)
            assert tuple(panel(browser)["unit"]) == unit
            browser.execute_script("document.querySelectorAll('#lenet-drill details').forEach(d => d.open = true);")
            sizes = browser.execute_script("""
                const panel = document.getElementById('lenet-drill'), box = panel.getBoundingClientRect();
                const buttons = Array.from(panel.querySelectorAll('button, summary'), b => b.getBoundingClientRect());
                return {page: document.documentElement.scrollWidth, viewport: document.documentElement.clientWidth,
                        left: box.left, right: box.right, inner: panel.scrollWidth - panel.clientWidth,
                        smallest: Math.min(...buttons.map(b => Math.min(b.width, b.height)))};""")
            assert sizes["viewport"] <= 390 and sizes["page"] <= sizes["viewport"], sizes
            assert 0 <= sizes["left"] and sizes["right"] <= sizes["viewport"] + 0.5, f"{unit}: {sizes}"
            assert sizes["inner"] <= 1, f"{unit}: the panel scrolls sideways on a phone: {sizes}"
            assert sizes["smallest"] >= 24, f"{unit}: a button smaller than 24 px: {sizes}"
            screenshot_panel(browser, f"{unit[0]}-390")
        # The panel's arrows step to the next unit (a finger cannot aim at a 4 px unit).
        press(browser, "#lenet-drill .lenet-drill-move", 0)  # ←
        assert tuple(panel(browser)["unit"]) == ("c3", 0, 9, 8)
        press(browser, "#lenet-drill .lenet-drill-close")
        assert panel(browser) is None
        click_unit(browser, "s4", 3, 2, 2, tap=True)
        assert tuple(panel(browser)["unit"]) == ("s4", 3, 2, 2)
        ActionChains(browser).send_keys(Keys.ESCAPE).perform()
        assert panel(browser) is None

