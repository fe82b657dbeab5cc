// The page "LeNet in your browser": pick a test image, draw, or open an image file; every change
// runs LeNet.forward (lenet.js) and shows the ten class probabilities and the feature maps.
// Needs lenet.js, lenet_weights.js and test_images.js (tools/export_weights.py) before it.
"use strict";

function startLenetPage() {
  const app = document.getElementById("lenet-app");
  if (!app) return; // another page
  const startedAt = performance.now();

  let weights;
  try {
    weights = LeNet.loadWeights(window.LENET_WEIGHTS);
  } catch (error) { // never a page of "NaN%": say what is wrong instead
    document.getElementById("lenet-status").textContent = `LeNet-5 cannot run: ${error.message}.`;
    app.dataset.error = error.message;
    return;
  }
  // A probability as the page shows it; "—" where it is not a number (never "NaN%").
  const percent = (p) => (Number.isFinite(p) ? `${(100 * p).toFixed(1)}%` : "—");
  const classes = window.LENET_WEIGHTS.classes;
  const tests = window.LENET_TEST_IMAGES;
  const testPixels = Uint8Array.from(atob(tests.pixels), (c) => c.charCodeAt(0));
  const $ = (id) => document.getElementById(id);
  const canvas = $("lenet-canvas");
  const pen = canvas.getContext("2d", { willReadFrequently: true }); // read back on every stroke

  // Test image i as the network's input: 784 grey values in [0, 1], as ToTensor gives them.
  function testImage(i) {
    return Float64Array.from(testPixels.subarray(784 * i, 784 * (i + 1)), (v) => v / 255);
  }

  // ---- Preprocessing as Fashion-MNIST was made (Xiao et al. 2017, section 2): trim the
  // background around the object, scale its longer side to 28 pixels, centre it on a 28×28
  // black canvas; grey values, white object on black. (The data set also sharpened its images.)
  function toFashionMnist(grey, width, height) {
    let top = height, bottom = -1, left = width, right = -1;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        if (grey[y * width + x] > 0.05) { // background: within 5% of black, as the data set trimmed
          top = Math.min(top, y); bottom = Math.max(bottom, y);
          left = Math.min(left, x); right = Math.max(right, x);
        }
      }
    }
    const out = new Float64Array(784);
    if (bottom < 0) return out; // nothing drawn: all black
    const w = right - left + 1, h = bottom - top + 1, scale = 28 / Math.max(w, h);
    const outW = Math.max(1, Math.round(w * scale)), outH = Math.max(1, Math.round(h * scale));
    const x0 = Math.floor((28 - outW) / 2), y0 = Math.floor((28 - outH) / 2);
    // Each output pixel is the mean of the source area it covers (fractions of pixels included).
    for (let oy = 0; oy < outH; oy++) {
      const sy0 = top + oy / scale, sy1 = top + (oy + 1) / scale;
      for (let ox = 0; ox < outW; ox++) {
        const sx0 = left + ox / scale, sx1 = left + (ox + 1) / scale;
        let sum = 0, area = 0;
        for (let y = Math.floor(sy0); y < sy1 && y <= bottom; y++) {
          const dy = Math.min(y + 1, sy1) - Math.max(y, sy0);
          for (let x = Math.floor(sx0); x < sx1 && x <= right; x++) {
            const d = dy * (Math.min(x + 1, sx1) - Math.max(x, sx0));
            sum += d * grey[y * width + x]; area += d;
          }
        }
        out[(y0 + oy) * 28 + x0 + ox] = area > 0 ? sum / area : 0;
      }
    }
    return out;
  }

  // Grey values in [0, 1] of a canvas's pixels (ITU-R 601 luma, as PIL's convert("L")).
  function greyOf(context, width, height) {
    const rgba = context.getImageData(0, 0, width, height).data;
    const grey = new Float64Array(width * height);
    for (let i = 0; i < grey.length; i++) {
      const alpha = rgba[4 * i + 3] / 255; // transparent counts as white paper
      const luma = (0.299 * rgba[4 * i] + 0.587 * rgba[4 * i + 1] + 0.114 * rgba[4 * i + 2]) / 255;
      grey[i] = alpha * luma + (1 - alpha);
    }
    return grey;
  }

  // ---- Drawing on the canvas (pointer events: mouse, pen and touch alike)
  let input = testImage(0), source = { kind: "test", index: 0 };
  let drawing = null, pending = false, updates = 0;

  function paintInput(pixels) { // the 28×28 input, blown up onto the drawing canvas
    const small = document.createElement("canvas");
    drawMap(small, pixels);
    pen.imageSmoothingEnabled = false;
    pen.drawImage(small, 0, 0, canvas.width, canvas.height);
  }

  function point(event) {
    const box = canvas.getBoundingClientRect();
    return [(event.clientX - box.left) * canvas.width / box.width, (event.clientY - box.top) * canvas.height / box.height];
  }

  canvas.addEventListener("pointerdown", (event) => {
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    drawing = point(event);
    stroke(drawing, drawing);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
    for (const e of events.length ? events : [event]) {
      const next = point(e);
      stroke(drawing, next);
      drawing = next;
    }
  });
  for (const type of ["pointerup", "pointercancel"]) {
    canvas.addEventListener(type, () => {
      if (!drawing) return;
      drawing = null;
      requestAnimationFrame(() => requestAnimationFrame(announce)); // after the last stroke's update
    });
  }

  function stroke([x0, y0], [x1, y1]) {
    pen.strokeStyle = "white";
    pen.lineWidth = Number($("lenet-brush").value);
    pen.lineCap = pen.lineJoin = "round";
    pen.beginPath(); pen.moveTo(x0, y0); pen.lineTo(x1, y1); pen.stroke();
    leaveTestImage();
    scheduleUpdate();
  }

  function leaveTestImage() { // the input is a drawing now, no longer the strip's test image
    source = { kind: "drawing" };
    for (const button of $("lenet-strip").children) button.setAttribute("aria-pressed", "false");
  }

  function scheduleUpdate() { // at most one forward pass per frame, however fast the pointer moves
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      if (source.kind === "drawing") {
        // the canvas is white on black already: trim, scale and centre
        input = toFashionMnist(greyOf(pen, canvas.width, canvas.height), canvas.width, canvas.height);
      }
      update();
    });
  }

  $("lenet-clear").addEventListener("click", () => {
    pen.fillStyle = "black";
    pen.fillRect(0, 0, canvas.width, canvas.height);
    leaveTestImage();
    scheduleUpdate();
    requestAnimationFrame(() => requestAnimationFrame(announce));
  });

  // ---- An image file: dark object on a light background (a photo, a product picture) or the reverse
  function openImage(file) {
    if (!file || !file.type.startsWith("image/")) {
      $("lenet-status").textContent = `Not an image file: ${file ? file.name : "nothing"}. Try a PNG or JPEG.`;
      announce();
      return;
    }
    const reader = new FileReader(); // a data: URL: the canvas stays readable, even from file://
    reader.onload = () => {
      const image = new Image();
      image.onload = () => {
        const scale = Math.min(1, 560 / Math.max(image.width, image.height)); // enough to trim and scale
        const w = Math.max(1, Math.round(image.width * scale)), h = Math.max(1, Math.round(image.height * scale));
        const scratch = document.createElement("canvas");
        scratch.width = w; scratch.height = h;
        const context = scratch.getContext("2d");
        context.drawImage(image, 0, 0, w, h);
        let grey = greyOf(context, w, h);
        // The background is the colour of the corners; Fashion-MNIST's objects are white on black.
        const corners = [grey[0], grey[w - 1], grey[(h - 1) * w], grey[h * w - 1]];
        const background = corners.reduce((a, b) => a + b) / 4;
        grey = grey.map((v) => Math.max(0, background > 0.5 ? background - v : v - background) / Math.max(background, 1 - background));
        input = toFashionMnist(grey, w, h);
        leaveTestImage();
        source = { kind: "file", name: file.name };
        paintInput(input);
        update();
        announce();
      };
      image.onerror = () => {
        $("lenet-status").textContent = `${file.name}: the browser cannot read this image.`;
        announce();
      };
      image.src = reader.result;
    };
    reader.readAsDataURL(file);
  }
  $("lenet-file").addEventListener("change", (event) => openImage(event.target.files[0]));
  app.addEventListener("dragover", (event) => { event.preventDefault(); app.classList.add("lenet-dropping"); });
  app.addEventListener("dragleave", () => app.classList.remove("lenet-dropping"));
  app.addEventListener("drop", (event) => {
    event.preventDefault();
    app.classList.remove("lenet-dropping");
    openImage(event.dataTransfer.files[0]);
  });

  // ---- Output: probabilities as bars, feature maps as grey images (0 black, 1 white)
  function drawMap(target, values) { // a square map of values in [0, 1], one pixel each
    const side = Math.round(Math.sqrt(values.length));
    if (target.width !== side) { target.width = side; target.height = side; }
    const context = target.getContext("2d");
    const image = context.createImageData(side, side);
    for (let i = 0; i < side * side; i++) {
      const v = Math.round(255 * Math.min(1, Math.max(0, values[i])));
      image.data.set([v, v, v, 255], 4 * i);
    }
    context.putImageData(image, 0, 0);
  }
  function clearMap(target) { // black: no input, no activation shown
    const context = target.getContext("2d");
    context.fillStyle = "black";
    context.fillRect(0, 0, target.width, target.height);
  }

  const stages = [["c1", 6, 28], ["s2", 6, 14], ["c3", 16, 10], ["s4", 16, 5]];
  const mapCanvases = {};
  for (const [name, count, side] of stages) {
    const holder = $(`lenet-${name}`);
    mapCanvases[name] = [];
    for (let c = 0; c < count; c++) {
      const map = document.createElement("canvas");
      map.className = `lenet-map lenet-map-${name}`;
      map.title = `${name.toUpperCase()} map ${c}`;
      map.setAttribute("role", "img"); // a picture with a name for screen readers
      map.setAttribute("aria-label", `${name.toUpperCase()} feature map ${c + 1} of ${count}, ${side}×${side}`);
      holder.appendChild(map);
      mapCanvases[name].push(map);
    }
  }
  // Click, tap or Enter on a unit of a map: how its value was computed (book/browser/drilldown.js).
  const drill = typeof LeNetDrill === "object" ? LeNetDrill.attach(mapCanvases, () => ({ weights, input })) : null;

  const bars = classes.map((name, k) => {
    const row = document.createElement("div");
    row.className = "lenet-bar";
    row.innerHTML = `<span class="lenet-bar-name">${name}</span><span class="lenet-bar-track">` +
      `<span class="lenet-bar-fill"></span></span><span class="lenet-bar-value"></span>`;
    row.dataset.label = k;
    $("lenet-bars").appendChild(row);
    return row;
  });

  // The live region (read aloud by screen readers) is told about a new input once, when a stroke
  // ends, a test image is picked, the square is cleared or an image is opened; never on every frame.
  let announced = "";
  function announce() {
    const text = $("lenet-status").textContent;
    if (text !== announced) $("lenet-announce").textContent = announced = text;
  }

  // An empty square (nothing brighter than the trimming threshold) is not a piece of clothing:
  // the network would still name a class for it, so the page asks for a drawing instead.
  const isEmpty = (pixels) => pixels.every((v) => v <= 0.05);

  function update() {
    const what = source.kind === "test"
      ? `Test image ${tests.indices[source.index]}, labelled ${classes[tests.labels[source.index]]}`
      : source.kind === "file" ? `Your image ${source.name}` : "Your drawing";
    if (source.kind !== "test" && isEmpty(input)) {
      bars.forEach((row) => {
        row.querySelector(".lenet-bar-fill").style.width = "0%";
        row.querySelector(".lenet-bar-value").textContent = "—";
        row.classList.remove("lenet-best", "lenet-truth");
      });
      for (const [name, count] of stages) for (let c = 0; c < count; c++) clearMap(mapCanvases[name][c]);
      if (drill) drill.close(); // no input, no value to explain
      drawMap($("lenet-seen"), input);
      $("lenet-status").textContent = source.kind === "file"
        ? `${what} has nothing but background to classify: try a picture of one piece of clothing.`
        : "The square is empty: draw a piece of clothing in white, or pick a test image.";
      updates += 1;
      Object.assign(app.dataset, { prediction: "", updates: String(updates), source: source.kind });
      return;
    }
    const result = LeNet.forward(weights, input);
    const p = result.probabilities;
    const valid = p.every(Number.isFinite);
    const best = valid ? p.indexOf(Math.max(...p)) : -1;
    const truth = source.kind === "test" ? tests.labels[source.index] : null;
    bars.forEach((row, k) => {
      row.querySelector(".lenet-bar-fill").style.width = valid ? `${100 * p[k]}%` : "0%";
      row.querySelector(".lenet-bar-value").textContent = percent(p[k]);
      row.classList.toggle("lenet-best", k === best);
      row.classList.toggle("lenet-truth", k === truth);
    });
    for (const [name, count, side] of stages) {
      for (let c = 0; c < count; c++) drawMap(mapCanvases[name][c], result[name].subarray(c * side * side, (c + 1) * side * side));
    }
    if (drill) drill.refresh(result); // an open explanation follows the new input
    drawMap($("lenet-seen"), input);
    const verdict = truth === null ? "" : best === truth ? " — right" : " — wrong";
    $("lenet-status").textContent = valid
      ? `${what}: LeNet-5 says ${classes[best]}, ${percent(p[best])}${verdict}.`
      : `${what}: LeNet-5 gives no probabilities (its output is not a number); ` +
        "rerun tools/export_weights.py.";
    updates += 1;
    Object.assign(app.dataset, { prediction: valid ? classes[best] : "", updates: String(updates), source: source.kind });
  }

  // ---- The strip of test images; a red frame marks the ones the network gets wrong. The buttons
  // appear at once; they are drawn and classified a few at a time afterwards, so that the page
  // responds while it works. The strip is one stop of the Tab key: the arrow keys, Home and End move along it.
  const count = tests.labels.length;
  const strip = $("lenet-strip");
  const thumbs = [];
  for (let i = 0; i < count; i++) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "lenet-thumb";
    button.title = `test image ${tests.indices[i]}: ${classes[tests.labels[i]]}`;
    button.setAttribute("aria-label", button.title);
    button.setAttribute("aria-pressed", String(i === 0)); // test image 0 is shown first
    button.tabIndex = i === 0 ? 0 : -1;
    const thumb = document.createElement("canvas"); // drawn with its classification, below
    thumb.width = thumb.height = 28;
    thumb.setAttribute("aria-hidden", "true"); // the button's label names it
    button.appendChild(thumb);
    button.addEventListener("click", () => {
      for (const other of thumbs) other.setAttribute("aria-pressed", String(other === button));
      input = testImage(i);
      source = { kind: "test", index: i };
      paintInput(input);
      update();
      announce();
    });
    strip.appendChild(button);
    thumbs.push(button);
  }
  strip.addEventListener("keydown", (event) => {
    const from = thumbs.indexOf(document.activeElement);
    const step = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 }[event.key];
    const to = event.key === "Home" ? 0 : event.key === "End" ? count - 1
      : step ? Math.min(count - 1, Math.max(0, from + step)) : -1;
    if (from < 0 || to < 0) return;
    event.preventDefault();
    thumbs[from].tabIndex = -1;
    thumbs[to].tabIndex = 0;
    thumbs[to].focus();
  });

  const training = window.LENET_WEIGHTS.training;
  let correct = 0, classified = 0, chunks = 0;
  function classifySome() {
    const end = Math.min(count, classified + 24);
    for (; classified < end; classified++) {
      const p = LeNet.forward(weights, testImage(classified)).probabilities;
      const right = p.indexOf(Math.max(...p)) === tests.labels[classified];
      correct += right;
      thumbs[classified].classList.toggle("lenet-wrong", !right);
      drawMap(thumbs[classified].firstChild, testImage(classified));
    }
    chunks += 1;
    if (classified < count) {
      setTimeout(classifySome, 0);
      return;
    }
    $("lenet-accuracy").textContent = `In your browser, this page's JavaScript classifies ${correct} of these ` +
      `${count} test images correctly (${(100 * correct / count).toFixed(1)}%). In PyTorch the same weights ` +
      `classify ${(100 * training.test_acc).toFixed(1)}% of all ${training.test_images.toLocaleString("en")} ` +
      `test images correctly (trained on ${training.date} with torch ${training.torch}).`;
    const timed = performance.now();
    for (let i = 0; i < 20; i++) LeNet.forward(weights, testImage(i));
    fill("lenet-cost", `${macs.toLocaleString("en")} multiply-adds per image, C3 alone ` +
      `${(k("3.weight") * 10 * 10).toLocaleString("en")}; in your browser one forward pass took ` +
      `${((performance.now() - timed) / 20).toFixed(1)} ms`);
    Object.assign(app.dataset, { ready: "true", stripChunks: String(chunks) });
  }

  // Numbers that the text quotes, computed here from the files rather than typed into the text.
  const fill = (id, text) => { const e = $(id); if (e) e.textContent = text; };
  const numbers = Object.values(weights).reduce((n, t) => n + t.values.length, 0);
  const base64 = window.LENET_WEIGHTS.tensors.reduce((n, t) => n + t.base64.length, 0);
  fill("lenet-sizes", `${numbers.toLocaleString("en")} numbers: ${(4 * numbers).toLocaleString("en")} bytes ` +
    `as float32, ${base64.toLocaleString("en")} characters of base64.`);
  fill("lenet-strip-count", `${count} test images, the first ${count / classes.length} of each class`);
  const recipe = training.recipe ? `${training.recipe.epochs} epochs, ` : "";
  fill("lenet-training", `${recipe}final training loss ${training.loss ?? "not recorded"}, test accuracy ` +
    `${training.test_acc} on ${training.test_images.toLocaleString("en")} images, trained on ${training.date} ` +
    `with torch ${training.torch} and Python ${training.python} on the ${training.device.toUpperCase()}.`);
  const k = (name) => weights[name].values.length; // multiply-adds: one per weight and output position
  const macs = k("0.weight") * 28 * 28 + k("3.weight") * 10 * 10 + k("7.weight") + k("9.weight") + k("11.weight");

  paintInput(input);
  update();
  window.LeNetPage = { weights, testImage, toFashionMnist, get input() { return input; } };
  // Ready to use now (the first image is classified); "ready" once the whole strip is classified too.
  Object.assign(app.dataset, { interactive: "true", startupMs: (performance.now() - startedAt).toFixed(1) });
  setTimeout(classifySome, 0);
}

// The page's text below the app holds numbers that this script fills in: start once it is parsed.
if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", startLenetPage);
else startLenetPage();
