// The section "Watch LeNet-5 learn" of the page "LeNet in your browser": Train, Pause/Resume and Reset
// drive the trainer of train.js (in a Web Worker); the page draws the loss and accuracies as they come,
// the six C1 filters, and C1's maps of one test image. Needs lenet.js, train.js, train_data.min.js.
"use strict";

function startLenetTraining() {
  const root = document.getElementById("lenet-train");
  if (!root) return; // another page
  const $ = (id) => document.getElementById(id);
  const data = window.LENET_TRAIN_DATA;
  const classes = window.LENET_WEIGHTS ? window.LENET_WEIGHTS.classes : Array.from({ length: 10 }, (_, k) => `${k}`);
  const runButton = $("lenet-train-run"), resetButton = $("lenet-train-reset");
  const status = (text) => { $("lenet-train-status").textContent = text; };
  const announce = (text) => { $("lenet-train-announce").textContent = text; };
  const fill = (id, text) => { const e = $(id); if (e) e.textContent = text; };
  const format = (n) => n.toLocaleString("en");
  const fraction = (v) => v.toFixed(3);

  let epochs = 30, state = "loading", weights = null, fixed = null, history = [], points = [], send = null;
  let where = "", speed = 0;

  // ---- The plot: training loss, training accuracy (running, five points an epoch) and test
  // accuracy (after each epoch) against epochs, as d2l's Animator draws them.
  const svg = $("lenet-train-plot"), NS = "http://www.w3.org/2000/svg";
  const box = { left: 34, right: 350, top: 10, bottom: 190 }, yMax = 2.5;
  const series = [["loss", "train loss", "lenet-train-loss"], ["trainAcc", "train acc", "lenet-train-tacc"],
    ["testAcc", "test acc", "lenet-train-vacc"]];
  const element = (name, attributes, text) => {
    const e = document.createElementNS(NS, name);
    for (const key in attributes) e.setAttribute(key, attributes[key]);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  function drawPlot() {
    svg.replaceChildren();
    const span = Math.max(epochs, history.length);
    const X = (v) => box.left + (box.right - box.left) * v / span;
    const Y = (v) => box.bottom - (box.bottom - box.top) * Math.min(v, yMax) / yMax;
    const axes = element("g", { class: "lenet-train-axes" });
    for (let v = 0; v <= yMax + 1e-9; v += 0.5) {
      axes.append(element("line", { x1: box.left, x2: box.right, y1: Y(v), y2: Y(v), class: "lenet-train-grid" }));
      axes.append(element("text", { x: box.left - 4, y: Y(v) + 3, "text-anchor": "end" }, v.toFixed(1)));
    }
    const tick = span <= 30 ? 5 : 10;
    for (let e = 0; e <= span; e += tick) {
      axes.append(element("text", { x: X(e), y: box.bottom + 13, "text-anchor": "middle" }, String(e)));
    }
    axes.append(element("text", { x: (box.left + box.right) / 2, y: box.bottom + 26, "text-anchor": "middle" },
      "epoch"));
    svg.append(axes);
    series.forEach(([key, label, css], n) => {
      const from = key === "testAcc" ? history.map((h, i) => [i + 1, h.testAcc]) : points.map((p) => [p.x, p[key]]);
      if (from.length) {
        svg.append(element("polyline", { class: css, fill: "none",
          points: from.map(([x, y]) => `${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join(" ") }));
      }
      const y = box.top + 6 + 13 * n; // the legend, top right
      svg.append(element("line", { x1: 262, x2: 282, y1: y, y2: y, class: css }));
      svg.append(element("text", { x: 286, y: y + 3 }, label));
    });
    const last = history[history.length - 1];
    svg.setAttribute("aria-label", last
      ? `Plot of loss and accuracy against epochs; after epoch ${history.length}: train loss ${fraction(last.loss)}, ` +
        `train accuracy ${fraction(last.trainAcc)}, test accuracy ${fraction(last.testAcc)}`
      : "Plot of loss and accuracy against epochs: nothing trained yet");
  }

  // ---- Filters and feature maps: C1's six 5×5 kernels (grey is 0, white positive, black negative, on
  // one scale for all six) and its six 28×28 maps of one test image (black 0, white 1).
  const canvases = (holder, count, label) => Array.from({ length: count }, (_, c) => {
    const canvas = document.createElement("canvas");
    canvas.className = "lenet-train-cell";
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", `${label} ${c + 1} of ${count}`);
    $(holder).append(canvas);
    return canvas;
  });
  const filterCanvases = canvases("lenet-train-filters", 6, "C1 filter");
  const mapCanvases = canvases("lenet-train-maps", 6, "C1 feature map");
  function paint(canvas, side, value) { // value(i) in [0, 1] for pixel i
    if (canvas.width !== side) { canvas.width = side; canvas.height = side; }
    const context = canvas.getContext("2d"), image = context.createImageData(side, side);
    for (let i = 0; i < side * side; i++) {
      const v = Math.round(255 * Math.min(1, Math.max(0, value(i))));
      image.data.set([v, v, v, 255], 4 * i);
    }
    context.putImageData(image, 0, 0);
  }
  function drawNetwork() {
    if (!weights || !fixed) return;
    const kernels = weights["0.weight"].values;
    const scale = kernels.reduce((m, v) => Math.max(m, Math.abs(v)), 1e-12);
    filterCanvases.forEach((canvas, o) => paint(canvas, 5, (i) => 0.5 + kernels[25 * o + i] / (2 * scale)));
    const result = LeNet.forward(weights, fixed);
    mapCanvases.forEach((canvas, o) => paint(canvas, 28, (i) => result.c1[784 * o + i]));
    const p = result.probabilities, best = p.indexOf(Math.max(...p));
    fill("lenet-train-guess", `The network now says ${classes[best]} (${(100 * p[best]).toFixed(1)}%) for this ` +
      `${classes[data.test.labels[0]]}; the largest C1 weight is ${scale.toFixed(3)} in size.`);
    window.LeNetTraining.weights = weights;
  }

  // ---- The controls
  function show(newState, where_) {
    state = newState;
    if (where_) where = where_;
    runButton.disabled = state === "loading" || state === "error";
    runButton.textContent = { running: "Pause", paused: "Resume", done: "Train 10 more epochs" }[state] || "Train";
    root.dataset.state = state;
  }
  function progress(epoch, step, perEpoch, steps) {
    const rate = speed ? ` · ${format(Math.round(speed))} examples/s` : "";
    fill("lenet-train-progress", `epoch ${epoch} of ${epochs} · step ${step} of ${perEpoch}${rate}`);
    Object.assign(root.dataset, { epoch: String(epoch), step: String(step), steps: String(steps) });
  }
  const perEpoch = Math.ceil(data.train.count / 256);

  function onMessage(message) {
    if (message.type === "ready") {
      fixed = Float64Array.from(message.fixed, (v) => v / 255);
      paint($("lenet-train-image"), 28, (i) => fixed[i]);
    } else if (message.type === "reset") {
      history = []; points = []; speed = 0; weights = message.weights;
      drawPlot(); drawNetwork(); progress(0, 0, perEpoch, 0);
      status(`Untrained: test accuracy ${fraction(message.testAcc)} on the ${format(data.test.count)} test images ` +
        "(one in ten is what guessing gets). Press Train.");
    } else if (message.type === "state") {
      show(message.state);
      if (message.state === "paused") announce(`Paused at epoch ${message.epoch}, step ${message.step}.`);
      if (message.state === "done") announce(`Done: ${history.length} epochs.`);
      if (message.state === "running") {
        announce("Training.");
        if (!history.length) status("Training: each epoch's loss and accuracies appear here when it ends.");
      }
    } else if (message.type === "progress") {
      speed = message.examplesPerSecond;
      progress(message.epoch + (message.step === message.perEpoch ? 1 : 0),
        message.step === message.perEpoch ? 0 : message.step, message.perEpoch, message.steps);
      if (message.step === message.perEpoch) root.dataset.step = String(message.perEpoch);
      if (message.weights) { weights = message.weights; drawNetwork(); }
    } else if (message.type === "point") {
      points.push(message);
      drawPlot();
    } else if (message.type === "epoch") {
      history.push(message);
      drawPlot();
      const text = `Epoch ${message.epoch}: train loss ${fraction(message.loss)}, train accuracy ` +
        `${fraction(message.trainAcc)}, test accuracy ${fraction(message.testAcc)}; ` +
        `${format(Math.round(message.examplesPerSecond))} examples/s ` +
        (where === "worker" ? "in a Web Worker." : "on the page itself.");
      status(text);
      announce(text);
      root.dataset.testAcc = String(message.testAcc);
    } else if (message.type === "error") {
      show("error");
      status(`Training cannot run here: ${message.message}.`);
    }
  }

  runButton.addEventListener("click", () => {
    if (state === "running") send({ type: "pause" });
    else if (state === "done") { epochs += 10; send({ type: "epochs", epochs }); send({ type: "run" }); }
    else send({ type: "run" });
  });
  resetButton.addEventListener("click", () => { if (send) send({ type: "reset" }); });

  // The page's size: its HTML file holds the code, the weights and the images.
  const nav = performance.getEntriesByType("navigation")[0];
  const bytes = nav && nav.decodedBodySize > 0 ? nav.decodedBodySize
    : new Blob([document.documentElement.outerHTML]).size;
  fill("lenet-page-size", `${(bytes / 1e6).toFixed(1)} MB`);
  fill("lenet-train-sizes", `: ${format(data.train.count)} and ${format(data.test.count)} images, ` +
    `${format(data.bytes)} bytes of pixels, ${format(data.gzip_bytes)} bytes compressed with gzip, ` +
    `${format(data.gzip_base64.length)} characters of base64`);
  fill("lenet-train-image-name", `test image ${data.test.indices[0]}, a ${classes[data.test.labels[0]]}`);

  window.LeNetTraining = { core: LeNetTrain.core, weights: null, send: (m) => send(m), get where() { return where; } };
  show("loading");
  drawPlot();
  LeNetTrain.start(onMessage).then((trainer) => {
    send = trainer.send;
    where = trainer.where;
    root.dataset.where = where;
    if (where === "page") {
      fill("lenet-train-where", "This browser could not start a Web Worker, so the page trains on its own " +
        "thread, one batch at a time: it may answer slowly while it trains.");
    }
    status("Unpacking the training images…");
    send({ type: "data", base64: data.gzip_base64, trainLabels: data.train.labels, testLabels: data.test.labels });
  });
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", startLenetTraining);
else startLenetTraining();
