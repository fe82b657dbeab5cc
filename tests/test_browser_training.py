"""Training LeNet-5 in the page "LeNet in your browser" (book/browser/train.js, train_app.js).

Default run: the shipped training subset (book/browser/train_data.min.js) holds the real Fashion-MNIST
images at the indices it states, 500 training and 100 test images of every class, none from the book's
validation split.

`pytest -m browser tests/test_browser_training.py` also builds the book (the fixtures of
tests/conftest.py) and, in headless Chromium with no network:

- one SGD step of the page's JavaScript (learning rate 0.9, a batch of 256 real images, from the page's
  initial weights) against the same step in PyTorch (lenet_book.fast.lenet(), float32, CPU): the loss
  agrees within 1e-5, every updated weight within 1e-6 (float32 weights of size up to 0.3), and every
  tensor's step (new minus old weights) within 1e-3 of that tensor's largest step; the same check fails
  when one gradient is scaled by 1.01, so it would catch a wrong backward pass;
- a short run: the sigmoid network sits at chance for its first epochs (with the page's seed PyTorch
  leaves it after 8 of 20-step epochs), so PyTorch trains the first 12 epochs with the page's initial
  weights and batch order, and the browser trains epochs 13 to 15 with the trainer's own functions.
  PyTorch, from the same weights and batches, measured 0.41 test accuracy after epoch 12 and 0.56 after
  epoch 15 (CPU, torch 2.x, 2026-12-06); the browser must reach 0.48 and stay within 0.05 of PyTorch;
- the controls at 390 px, opened from disk: Train starts a Web Worker's run, Pause stops the step
  counter, Resume continues it, Reset returns to epoch 0 with an empty plot; the page's size is stated
  and at most 5 MB, and the buttons are at least 24 px tall. A screenshot goes to
  _build/screenshots/lenet_in_browser-training-390.png.
"""

from __future__ import annotations

import base64
import gzip
import re
import time

import pytest
import torch

# The built site, its server and the browser: one definition, in tests/test_site.py.
from test_browser_page import page_errors, viewport
from test_site import REPO, SCREENSHOTS

from lenet_book import fast
from lenet_book.export import read_js_data
from lenet_book.train import VALIDATION_SIZE

DATA = REPO / "book" / "browser" / "train_data.min.js"
PAGE = "book/lenet_in_browser.html"
TRAIN_PER_CLASS, TEST_PER_CLASS = 500, 100
WARM_EPOCHS, BROWSER_EPOCHS, THRESHOLD = 12, 3, 0.48  # see the module's docstring
PAGE_LIMIT = 5_000_000  # bytes: the page's HTML, with its code, weights and images inside


@pytest.fixture(scope="module")
def shipped(train_subset):
    return read_js_data(train_subset, "LENET_TRAIN_DATA")


def unpacked(shipped) -> tuple[torch.Tensor, torch.Tensor]:
    """(training images, test images) of the shipped subset, uint8 N×28×28."""
    raw = gzip.decompress(base64.b64decode(shipped["gzip_base64"], validate=True))
    images = torch.frombuffer(bytearray(raw), dtype=torch.uint8).reshape(-1, 28, 28)
    return images[:shipped["train"]["count"]], images[shipped["train"]["count"]:]


# --------------------------------------------------------------------------- the data file


def test_shipped_subset_is_real_balanced_fashion_mnist(shipped):
    (train_images, train_labels), (test_images, test_labels) = fast.load_fashion_mnist_tensors(REPO / "data", "cpu")
    train, test = unpacked(shipped)
    for part, images, labels, all_images, all_labels, per_class in (
            ("train", train, shipped["train"], train_images, train_labels, TRAIN_PER_CLASS),
            ("test", test, shipped["test"], test_images, test_labels, TEST_PER_CLASS)):
        indices = torch.tensor(labels["indices"])
        assert len(images) == len(indices) == labels["count"] == 10 * per_class, part
        assert torch.equal(images, all_images[indices]), f"the {part} pixels are not the data set's"
        assert labels["labels"] == all_labels[indices].tolist(), part
        assert torch.bincount(torch.tensor(labels["labels"]), minlength=10).tolist() == [per_class] * 10, part
        assert len(set(labels["indices"])) == len(indices), f"{part}: an image twice"
        # the first images of each class, so that the choice is plain and repeatable
        for c in range(10):
            chosen = sorted(i for i, y in zip(labels["indices"], labels["labels"]) if y == c)
            assert chosen == torch.nonzero(all_labels == c).flatten()[:per_class].tolist(), f"{part}, class {c}"
    assert max(shipped["train"]["indices"]) < len(train_labels) - VALIDATION_SIZE, "an image of the validation split"
    assert shipped["bytes"] == 784 * (len(train) + len(test))
    size = DATA.stat().st_size
    assert size < 3_600_000, f"{DATA.name} has grown to {size:,} bytes"
    print(f"\n{DATA.name}: {len(train):,} + {len(test):,} images, {size:,} bytes")


# --------------------------------------------------------------------------- in a browser


def open_training(browser, url: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    WebDriverWait(browser, 60).until(lambda d: d.execute_script(
        "const t = document.getElementById('lenet-train'); return t && t.dataset.state === 'idle';"))


# The batch, the page's initial weights and one step, computed in the page; `perturb` scales one
# tensor's gradient before the update (a deliberately wrong backward pass).
ONE_STEP = """
const [perturb, done] = arguments;
const core = LeNetTraining.core, data = LENET_TRAIN_DATA;
core.unpack(data.gzip_base64).then((pixels) => {
  const batch = Array.from({length: 256}, (_, i) => i), labels = Uint8Array.from(data.train.labels);
  const w = core.init(1), before = {};
  for (const name in w) before[name] = Array.from(w[name].values);
  const result = core.gradients(w, pixels, labels, batch);
  if (perturb) result.grads[perturb] = result.grads[perturb].map((g) => 1.01 * g);
  core.update(w, result.grads, 0.9);
  const after = {};
  for (const name in w) after[name] = Array.from(w[name].values);
  done({before, after, loss: result.loss, labels: batch.map((i) => labels[i])});
}, (error) => done({error: error.message}));
"""


def pytorch_step(before: dict, images: torch.Tensor, labels: torch.Tensor):
    """The same step in PyTorch: (loss, state dict after the update)."""
    net = fast.lenet()
    net.load_state_dict({name: torch.tensor(before[name], dtype=torch.float32).reshape(p.shape)
                         for name, p in net.state_dict().items()})
    optimizer = torch.optim.SGD(net.parameters(), lr=0.9)
    loss = torch.nn.CrossEntropyLoss()(net(fast.to_float(images)), labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item(), net.state_dict()


def disagreements(js: dict, pytorch: dict) -> dict[str, str]:
    """The tensors whose updated weights differ by more than 1e-6, or whose step differs by more than
    1e-3 of the tensor's largest step."""
    bad = {}
    for name, after in pytorch.items():
        new = torch.tensor(js["after"][name]).reshape(after.shape)
        old = torch.tensor(js["before"][name]).reshape(after.shape)
        step_js, step_pt = new - old, after - old
        weight_error = (new - after).abs().max().item()
        step_error = (step_js - step_pt).abs().max().item() / step_pt.abs().max().item()
        if weight_error > 1e-6 or step_error > 1e-3:
            bad[name] = f"weights differ by {weight_error:.1e}, steps by {step_error:.1e} of the largest"
    return bad


@pytest.mark.browser
def test_one_sgd_step_agrees_with_pytorch_and_a_wrong_gradient_fails(browser, server, shipped):
    open_training(browser, server + PAGE)
    js = browser.execute_async_script(ONE_STEP, None)
    assert "error" not in js, js.get("error")
    train, _ = unpacked(shipped)
    labels = torch.tensor(shipped["train"]["labels"][:256])
    assert js["labels"] == labels.tolist()
    loss, after = pytorch_step(js["before"], train[:256], labels)
    assert abs(js["loss"] - loss) <= 1e-5, f"loss: JavaScript {js['loss']}, PyTorch {loss}"
    assert set(js["after"]) == set(after), "the page trains other tensors than fast.lenet() has"
    assert not disagreements(js, after), disagreements(js, after)
    # The check can fail: one gradient 1% off (as a slip in the backward pass would make it) is caught.
    wrong = browser.execute_async_script(ONE_STEP, "3.weight")
    assert list(disagreements(wrong, after)) == ["3.weight"], disagreements(wrong, after)
    print(f"\none step, batch of 256: loss {loss:.6f} (PyTorch) vs {js['loss']:.6f} (JavaScript)")


# Epochs of the trainer's own functions (core.batches, core.step, core.accuracy: what the worker's loop
# calls) from given weights, with the batch order of the page's seed from epoch `first` on.
SHORT_RUN = """
const [start, first, epochs, done] = arguments;
const core = LeNetTraining.core, data = LENET_TRAIN_DATA;
core.unpack(data.gzip_base64).then((pixels) => {
  const split = 784 * data.train.count, train = pixels.subarray(0, split), test = pixels.subarray(split);
  const labels = Uint8Array.from(data.train.labels), testLabels = Uint8Array.from(data.test.labels);
  const w = core.init(1), next = core.random(1 + 1000), orders = [];
  for (let e = 0; e < first + epochs; e++) orders.push(core.batches(data.train.count, 256, next));
  if (!start) { done({orders}); return; }
  for (const name in w) w[name].values.set(start[name]);
  const began = performance.now(), accuracies = [];
  for (let e = first; e < first + epochs; e++) {
    for (const batch of orders[e]) core.step(w, train, labels, batch, 0.9);
    accuracies.push(core.accuracy(w, test, testLabels, testLabels.length));
  }
  done({accuracies, seconds: (performance.now() - began) / 1000});
}, (error) => done({error: error.message}));
"""


@pytest.mark.browser
def test_a_short_run_in_the_browser_reaches_the_stated_accuracy(browser, server, shipped):
    open_training(browser, server + PAGE)
    init = browser.execute_script(
        "const w = LeNetTraining.core.init(1), out = {};"
        "for (const name in w) out[name] = Array.from(w[name].values); return out;")
    orders = browser.execute_async_script(SHORT_RUN, None, WARM_EPOCHS, BROWSER_EPOCHS)["orders"]
    train, test = unpacked(shipped)
    X, y = fast.to_float(train), torch.tensor(shipped["train"]["labels"])
    X_test, y_test = fast.to_float(test), torch.tensor(shipped["test"]["labels"])
    net = fast.lenet()
    net.load_state_dict({name: torch.tensor(init[name]).reshape(p.shape) for name, p in net.state_dict().items()})
    optimizer, loss_fn = torch.optim.SGD(net.parameters(), lr=0.9), torch.nn.CrossEntropyLoss()

    def epoch(order):
        for batch in order:
            batch = torch.tensor(batch)
            loss = loss_fn(net(X[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            return (net(X_test).argmax(1) == y_test).float().mean().item()

    started = time.perf_counter()
    warm = [epoch(order) for order in orders[:WARM_EPOCHS]]
    handed = {k: v.flatten().tolist() for k, v in net.state_dict().items()}
    pytorch = [epoch(order) for order in orders[WARM_EPOCHS:]]
    seconds = time.perf_counter() - started
    run = browser.execute_async_script(SHORT_RUN, handed, WARM_EPOCHS, BROWSER_EPOCHS)
    assert "error" not in run, run.get("error")
    print(f"\nPyTorch: {' '.join(f'{a:.2f}' for a in warm + pytorch)} ({seconds:.1f} s); "
          f"browser, epochs {WARM_EPOCHS + 1}-{WARM_EPOCHS + BROWSER_EPOCHS}: "
          f"{' '.join(f'{a:.2f}' for a in run['accuracies'])} ({run['seconds']:.1f} s)")
    assert run["accuracies"][-1] >= THRESHOLD, f"the browser's run reached only {run['accuracies'][-1]:.3f}"
    assert run["accuracies"][-1] > warm[-1], "no better than the weights it started from"
    assert abs(run["accuracies"][-1] - pytorch[-1]) <= 0.05, (run["accuracies"], pytorch)


def tap(browser, element_id: str) -> None:
    """Click a button where a finger would: scrolled into view, not covered by anything at its centre.
    (With a phone's viewport emulated, chromedriver's own click computes the point wrongly.)"""
    covered = browser.execute_script("""
        const button = document.getElementById(arguments[0]);
        button.scrollIntoView({block: 'center', behavior: 'instant'});  // the theme scrolls smoothly
        const r = button.getBoundingClientRect();
        const top = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
        if (!button.contains(top)) return top ? top.outerHTML.slice(0, 200) : `nothing: it is at ${r.x}, ${r.y}`;
        button.click();
        return null;""", element_id)
    assert covered is None, f"#{element_id} is covered by {covered}"


@pytest.mark.browser
def test_train_pause_resume_reset_at_390_px_from_disk(browser, site):
    from selenium.webdriver.support.ui import WebDriverWait

    def shown():
        return browser.execute_script(
            "const d = document.getElementById('lenet-train').dataset;"
            "return {state: d.state, steps: Number(d.steps), epoch: Number(d.epoch), where: d.where,"
            " lines: document.querySelectorAll('#lenet-train-plot polyline').length,"
            " progress: document.getElementById('lenet-train-progress').textContent};")

    def wait(condition, seconds=60):
        def met(_):
            now = shown()
            return now if condition(now) else False

        return WebDriverWait(browser, seconds, poll_frequency=0.1).until(met)

    page = site / PAGE
    with viewport(browser, 390, 844, mobile=True):
        browser.get_log("browser")
        open_training(browser, page.as_uri())
        assert shown()["where"] == "worker", "the Web Worker did not start from file://"
        sizes = browser.execute_script("""
            const r = (id) => document.getElementById(id).getBoundingClientRect();
            return {page: document.documentElement.scrollWidth, viewport: document.documentElement.clientWidth,
                    plot: r('lenet-train-plot').right, maps: r('lenet-train-maps').right,
                    buttons: ['lenet-train-run', 'lenet-train-reset'].map((id) => [r(id).width, r(id).height]),
                    stated: document.getElementById('lenet-page-size').textContent,
                    // the plot's labels as shown: the SVG's font size times its scale on screen
                    labels: Array.from(document.querySelectorAll('#lenet-train-plot text')).map((t) =>
                        parseFloat(getComputedStyle(t).fontSize) * t.getScreenCTM().a)};""")
        assert sizes["page"] <= sizes["viewport"] and sizes["plot"] <= sizes["viewport"] + 0.5, sizes
        assert sizes["labels"] and min(sizes["labels"]) >= 11, f"the plot's labels are {min(sizes['labels']):.1f} px"
        assert sizes["maps"] <= sizes["viewport"] + 0.5, sizes
        assert all(w >= 24 and h >= 24 for w, h in sizes["buttons"]), sizes["buttons"]
        size = page.stat().st_size
        assert size <= PAGE_LIMIT, f"the page is {size:,} bytes"
        stated = float(re.fullmatch(r"([\d.]+) MB", sizes["stated"]).group(1))
        assert abs(stated - size / 1e6) <= 0.1 + 0.05 * size / 1e6, (sizes["stated"], size)

        run = browser.find_element("id", "lenet-train-run")
        assert run.text == "Train"
        tap(browser, "lenet-train-run")
        wait(lambda s: s["state"] == "running" and s["steps"] >= 2)
        tap(browser, "lenet-train-run")  # Pause
        paused = wait(lambda s: s["state"] == "paused")
        assert run.text == "Resume"
        time.sleep(1.5)
        assert shown()["steps"] == paused["steps"] and shown()["progress"] == paused["progress"], "still counting"
        tap(browser, "lenet-train-run")  # Resume
        resumed = wait(lambda s: s["state"] == "running" and s["steps"] > paused["steps"])
        assert resumed["lines"] >= 1, "the plot draws nothing"
        box = browser.execute_script(
            "const r = document.getElementById('lenet-train').getBoundingClientRect();"
            "return [r.x + window.scrollX, r.y + window.scrollY, r.width, r.height];")
        png = browser.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
                                      "clip": dict(zip(("x", "y", "width", "height"), box), scale=1)})
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        (SCREENSHOTS / "lenet_in_browser-training-390.png").write_bytes(base64.b64decode(png["data"]))
        assert "examples/s" in resumed["progress"], resumed["progress"]
        tap(browser, "lenet-train-reset")
        cleared = wait(lambda s: s["state"] == "idle" and s["steps"] == 0)
        assert cleared["epoch"] == 0 and cleared["lines"] == 0 and run.text == "Train", cleared
        assert "epoch 0 of 30 · step 0 of 20" in cleared["progress"], cleared["progress"]
    # From file:// Chromium refuses the theme's web fonts, so also their preloads go unused.
    errors = [e for e in page_errors(browser)
              if not re.search(r"Access to font at 'file:|\.(woff2?|ttf) - Failed to load resource"
                               r"|A preload for 'file:[^']*\.woff2?'|The resource file:\S*\.woff2? was preloaded", e)]
    assert not errors, errors
    print(f"\npage {size:,} bytes (stated: {sizes['stated']}); paused at step {paused['steps']}, "
          f"resumed to {resumed['steps']}")
