// Drill-down for the page "LeNet in your browser": click (or tap) any unit of the feature maps C1,
// S2, C3 or S4, or focus a map and move a cursor with the arrow keys and press Enter, to see the
// window of the layer's input that the unit reads, the kernel or the pooling region, and the
// arithmetic that produced its value. LeNetDrill.explain does the arithmetic and nothing else (no
// page, no drawing: tests call it); LeNetDrill.attach is the panel. Needs lenet.js before it.
"use strict";

const LeNetDrill = (() => {
  // What each stage reads and how: the layers of lenet_book.fast.lenet(), with their state-dict names.
  const LAYERS = {
    c1: { kind: "conv", from: "input", inChannels: 1, inSize: 28, channels: 6, size: 28, k: 5, pad: 2,
      weight: "0.weight", bias: "0.bias" },
    s2: { kind: "pool", from: "c1", inChannels: 6, inSize: 28, channels: 6, size: 14, k: 2 },
    c3: { kind: "conv", from: "s2", inChannels: 6, inSize: 14, channels: 16, size: 10, k: 5, pad: 0,
      weight: "3.weight", bias: "3.bias" },
    s4: { kind: "pool", from: "c3", inChannels: 16, inSize: 10, channels: 16, size: 5, k: 2 },
  };
  const NAMES = { input: "the input", c1: "C1", s2: "S2", c3: "C3", s4: "S4" };

  const drill = {
    LAYERS,
    // Where weight[o][c][i][j] lies in the flat array of a convolution's weights (PyTorch's order:
    // out-channel, in-channel, kernel row, kernel column). One place, so that a test can break it.
    kernelIndex: (o, c, i, j, k, inChannels) => ((o * inChannels + c) * k + i) * k + j,
  };

  // How unit (channel, row, col) of `layer` ("c1", "s2", "c3" or "s4") got its value, for the
  // 28×28 input `input` and the weights `weights` ({name: {shape, values}}, as LeNet.loadWeights
  // gives them). `forward` (LeNet.forward's result for this input and these weights) saves a pass.
  // Returns {layer, kind, channel, row, col, source, windows, value, mapValue} and, for a
  // convolution, bias and z: one window per input map that the unit reads, each {map, top, left, k,
  // x (its k×k input values row by row, 0 where the window lies on C1's padding), padded, and for a
  // convolution w (the kernel), products (w·x) and partial (their sum)}. The value is computed from
  // these terms, in the order LeNet.forward adds them: z = bias + Σ w·x and value = sigmoid(z), or
  // value = (a + b + c + d) / 4; mapValue is the value the feature map shows.
  drill.explain = function explain({ weights, input, layer, channel, row, col, forward }) {
    const spec = LAYERS[layer];
    if (!spec) throw new Error(`no layer "${layer}": c1, s2, c3 or s4`);
    const ranges = [["channel", channel, spec.channels], ["row", row, spec.size], ["col", col, spec.size]];
    for (const [what, v, end] of ranges) {
      if (!Number.isInteger(v) || v < 0 || v >= end) throw new Error(`${layer}: ${what} ${v} is not in 0..${end - 1}`);
    }
    const acts = forward || LeNet.forward(weights, input);
    const source = spec.from === "input" ? input : acts[spec.from];
    const n = spec.inSize, k = spec.k;
    const mapValue = acts[layer][(channel * spec.size + row) * spec.size + col];
    const base = { layer, kind: spec.kind, channel, row, col, source: spec.from, mapValue };
    if (spec.kind === "pool") { // nn.AvgPool2d(2, stride=2): the mean of one 2×2 block of the same map
      const top = 2 * row, left = 2 * col, at = (channel * n + top) * n + left;
      const x = [source[at], source[at + 1], source[at + n], source[at + n + 1]];
      const value = (x[0] + x[1] + x[2] + x[3]) / 4;
      return { ...base, windows: [{ map: channel, top, left, k, x, padded: [false, false, false, false] }], value };
    }
    const w = weights[spec.weight].values, bias = weights[spec.bias].values[channel];
    const top = row - spec.pad, left = col - spec.pad;
    const windows = [];
    let z = bias;
    for (let c = 0; c < spec.inChannels; c++) {
      const win = { map: c, top, left, k, x: [], padded: [], w: [], products: [], partial: 0 };
      for (let i = 0; i < k; i++) {
        for (let j = 0; j < k; j++) {
          const y = top + i, xx = left + j;
          const outside = y < 0 || y >= n || xx < 0 || xx >= n; // C1's padding: a zero
          const value = outside ? 0 : source[(c * n + y) * n + xx];
          const weight = w[drill.kernelIndex(channel, c, i, j, k, spec.inChannels)];
          win.x.push(value); win.padded.push(outside); win.w.push(weight); win.products.push(weight * value);
          win.partial += weight * value;
          if (!outside) z += weight * value; // the padding adds nothing: LeNet.conv2d skips it
        }
      }
      windows.push(win);
    }
    return { ...base, windows, bias, z, value: 1 / (1 + Math.exp(-z)) };
  };

  // ---- The panel -----------------------------------------------------------------------------

  // 4 significant digits, with a real minus sign; 0 is "0".
  const fmt = (v) => (v === 0 ? "0" : v.toPrecision(4).replace("-", "−"));
  const el = (tag, props = {}, children = []) => {
    const e = Object.assign(document.createElement(tag), props);
    for (const child of [].concat(children)) e.append(child);
    return e;
  };

  // A map of values in [0, 1] (0 black, 1 white), `scale` canvas pixels per value, with `pad` cells of
  // padding drawn around it (blue-grey) and the window or unit `box` ({top, left, k}) outlined in orange.
  function picture(values, side, { scale, pad = 0, box, label, width }) {
    const full = side + 2 * pad;
    const canvas = el("canvas", { width: full * scale, height: full * scale, className: "lenet-drill-picture" });
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", label);
    canvas.style.width = `${width}px`;
    const context = canvas.getContext("2d");
    context.fillStyle = "#4a5d80";
    context.fillRect(0, 0, canvas.width, canvas.height);
    for (let y = 0; y < side; y++) {
      for (let x = 0; x < side; x++) {
        const v = Math.round(255 * Math.min(1, Math.max(0, values[y * side + x])));
        context.fillStyle = `rgb(${v},${v},${v})`;
        context.fillRect((x + pad) * scale, (y + pad) * scale, scale, scale);
      }
    }
    const px = canvas.width / width; // canvas pixels per CSS pixel: lines 3 and 2 CSS pixels wide
    const inside = (v) => Math.min(canvas.width - 1.5 * px, Math.max(1.5 * px, v)); // a unit at the edge too
    const [x0, y0] = [inside((box.left + pad) * scale), inside((box.top + pad) * scale)];
    const [x1, y1] = [inside((box.left + pad + box.k) * scale), inside((box.top + pad + box.k) * scale)];
    context.lineWidth = 3 * px; context.strokeStyle = "black";
    context.strokeRect(x0, y0, x1 - x0, y1 - y0);
    context.lineWidth = 2 * px; context.strokeStyle = "#ff9f1c";
    context.strokeRect(x0, y0, x1 - x0, y1 - y0);
    return canvas;
  }

  // A k×k table of numbers, row by row; cells on the padding are marked.
  function grid(values, k, caption, className, padded) {
    const table = el("table", { className: `lenet-drill-grid ${className}` }, el("caption", { textContent: caption }));
    for (let i = 0; i < k; i++) {
      const tr = el("tr");
      for (let j = 0; j < k; j++) {
        const td = el("td", { textContent: fmt(values[i * k + j]) });
        if (padded && padded[i * k + j]) { td.className = "lenet-drill-pad"; td.title = "padding: a zero"; }
        tr.append(td);
      }
      table.append(tr);
    }
    return table;
  }

  function convTables(win, sourceName) {
    return el("div", { className: "lenet-drill-tables" }, [
      grid(win.x, win.k, `x: the window of ${sourceName}`, "lenet-drill-x", win.padded),
      grid(win.w, win.k, "w: the kernel", "lenet-drill-w"),
      grid(win.products, win.k, "w·x: their products", "lenet-drill-products", win.padded),
    ]);
  }
  const span = (className, value) => el("span", { className, textContent: fmt(value) });

  // The body of the panel for one explanation `e` of the unit; `acts` is the forward pass.
  function render(e, input, acts) {
    const spec = LAYERS[e.layer], name = NAMES[e.layer], from = NAMES[e.source];
    const body = el("div", { className: "lenet-drill-body" });
    const unitMap = acts[e.layer].subarray(e.channel * spec.size ** 2, (e.channel + 1) * spec.size ** 2);
    const cell = Math.max(2, Math.floor(112 / spec.size));
    const pictures = el("div", { className: "lenet-drill-pictures" });
    pictures.append(el("figure", {}, [
      picture(unitMap, spec.size, { scale: 4 * cell, box: { top: e.row, left: e.col, k: 1 }, width: cell * spec.size,
        label: `${name} map ${e.channel} with the unit at row ${e.row}, column ${e.col} outlined` }),
      el("figcaption", { textContent: `the unit in ${name} map ${e.channel}` })]));
    const srcSize = spec.inSize, srcCell = e.windows.length > 1 ? 5 : Math.max(4, Math.floor(128 / srcSize));
    for (const win of e.windows) {
      const values = e.source === "input" ? input
        : acts[e.source].subarray(win.map * srcSize ** 2, (win.map + 1) * srcSize ** 2);
      const pad = spec.pad || 0, mapName = e.source === "input" ? "the input" : `${from} map ${win.map}`;
      pictures.append(el("figure", {}, [
        picture(values, srcSize, { scale: 2 * srcCell, pad, box: win, width: srcCell * (srcSize + 2 * pad),
          label: `${mapName}${pad ? " with its padding of zeros" : ""}, the ${win.k}×${win.k} window outlined` }),
        el("figcaption", { textContent: pad ? `${mapName}, padded with zeros (blue)` : mapName })]));
    }
    body.append(pictures);

    if (e.kind === "pool") {
      const win = e.windows[0];
      body.append(el("div", { className: "lenet-drill-tables" },
        grid(win.x, 2, `the 2×2 block of ${from} map ${win.map}`, "lenet-drill-x")));
      body.append(el("p", { className: "lenet-drill-formula" }, [
        `${name} = (a + b + c + d) / 4 = (${win.x.map(fmt).join(" + ")}) / 4 = `, span("lenet-drill-value", e.value)]));
      return body;
    }
    const products = e.windows.reduce((n, win) => n + win.products.length, 0);
    const padding = e.windows[0].padded.filter(Boolean).length;
    if (e.windows.length === 1) {
      body.append(convTables(e.windows[0], from));
      body.append(el("p", { className: "lenet-drill-formula" }, [
        `Σ w·x, the sum of the ${products} products${padding ? ` (${padding} on the padding, 0)` : ""}: `,
        span("lenet-drill-partial", e.windows[0].partial)]));
    } else {
      const list = el("div", { className: "lenet-drill-maps" },
        el("p", { textContent: `The ${products} products w·x, summed map by map (open one to see its 25):` }));
      for (const win of e.windows) {
        list.append(el("details", {}, [
          el("summary", {}, [`${from} map ${win.map}: Σ w·x = `, span("lenet-drill-partial", win.partial)]),
          convTables(win, `${from} map ${win.map}`)]));
      }
      body.append(list);
    }
    const partials = e.windows.map((win) => fmt(win.partial)).join(" + ");
    body.append(el("p", { className: "lenet-drill-formula" }, [
      "z = b + Σ w·x = ", span("lenet-drill-bias", e.bias),
      ` + ${e.windows.length > 1 ? `(${partials})` : partials} = `,
      span("lenet-drill-z", e.z)]));
    body.append(el("p", { className: "lenet-drill-formula" }, [
      `${name} = sigmoid(z) = 1 / (1 + e^(−z)) = `, span("lenet-drill-value", e.value)]));
    return body;
  }

  // Makes every map of `maps` ({c1: [canvas, ...], s2: ..., c3: ..., s4: ...}) explain its units:
  // a click or tap on a unit, or Enter on a focused map (whose unit the arrow keys choose). The panel
  // opens below the layer's maps. `current()` gives {weights, input} now; refresh(forward) redraws an
  // open panel for a new input, close() closes it.
  drill.attach = function attach(maps, current) {
    const cursor = {}; // per layer: {channel, row, col}, the unit the keyboard is on
    const marker = el("div", { className: "lenet-drill-cursor" });
    marker.setAttribute("aria-hidden", "true");
    const heading = el("h4", { className: "lenet-drill-title", tabIndex: -1 });
    const close = el("button", { type: "button", className: "lenet-drill-close", textContent: "×" });
    close.setAttribute("aria-label", "Close the explanation");
    const moves = [["←", "left", 0, -1], ["↑", "up", -1, 0], ["↓", "down", 1, 0], ["→", "right", 0, 1]].map(
      ([text, where, dy, dx]) => {
        const button = el("button", { type: "button", className: "lenet-drill-move", textContent: text });
        button.setAttribute("aria-label", `the unit ${where} of it`);
        button.addEventListener("click", () => move(open.layer, dy, dx, false));
        return button;
      });
    const panel = el("section", { className: "lenet-drill", id: "lenet-drill" }, [
      el("div", { className: "lenet-drill-head" },
        [heading, el("span", { className: "lenet-drill-moves" }, moves), close])]);
    panel.setAttribute("aria-labelledby", "lenet-drill-title");
    heading.id = "lenet-drill-title";
    let open = null; // {layer, channel, row, col} while the panel is open

    function place(layer, { channel, row, col }) { // the orange square over the unit on the page
      const canvas = maps[layer][channel], side = LAYERS[layer].size;
      const holder = canvas.parentElement, unit = canvas.clientWidth / side;
      if (marker.parentElement !== holder) holder.append(marker);
      Object.assign(marker.style, { display: "block", left: `${canvas.offsetLeft + col * unit}px`,
        top: `${canvas.offsetTop + row * unit}px`, width: `${unit}px`, height: `${unit}px` });
    }
    function unmark() {
      const focused = Object.keys(maps).find((layer) => maps[layer].includes(document.activeElement));
      if (focused) place(focused, cursor[focused]);
      else if (open) place(open.layer, open);
      else marker.style.display = "none";
    }

    function show(unit, { focus = true, forward } = {}) {
      const { weights, input } = current();
      const acts = forward || LeNet.forward(weights, input);
      const e = drill.explain({ weights, input, ...unit, forward: acts });
      open = { layer: unit.layer, channel: unit.channel, row: unit.row, col: unit.col };
      heading.replaceChildren(`${NAMES[unit.layer]} map ${unit.channel}, row ${unit.row}, column ${unit.col}: `,
        span("lenet-drill-value", e.value));
      const old = panel.querySelector(".lenet-drill-body"); // keep the maps the reader opened
      const expanded = old ? Array.from(old.querySelectorAll("details"), (d) => d.open) : [];
      old?.remove();
      panel.append(render(e, input, acts));
      panel.querySelectorAll("details").forEach((d, i) => { d.open = Boolean(expanded[i]); });
      const holder = maps[unit.layer][0].parentElement;
      if (panel.previousElementSibling !== holder) holder.after(panel);
      Object.assign(panel.dataset, { layer: unit.layer, channel: unit.channel, row: unit.row, col: unit.col });
      place(unit.layer, unit);
      if (focus) {
        heading.focus({ preventScroll: true });
        panel.scrollIntoView({ block: "nearest" });
      }
    }
    function hide() {
      if (!open) return;
      const back = maps[open.layer][open.channel];
      cursor[open.layer] = { ...open };
      roving(open.layer, open.channel);
      open = null;
      const hadFocus = panel.contains(document.activeElement);
      panel.remove();
      if (hadFocus) back.focus();
      unmark();
    }

    // One step of the cursor; across a map's edge it goes on to the next map of the layer.
    function move(layer, dy, dx, keyboard) {
      const spec = LAYERS[layer], at = { ...(keyboard ? cursor[layer] : open) };
      at.row = Math.min(spec.size - 1, Math.max(0, at.row + dy));
      at.col += dx;
      if (at.col < 0) [at.channel, at.col] = at.channel > 0 ? [at.channel - 1, spec.size - 1] : [0, 0];
      if (at.col >= spec.size) {
        [at.channel, at.col] = at.channel < spec.channels - 1 ? [at.channel + 1, 0] : [at.channel, spec.size - 1];
      }
      if (!keyboard) { show({ layer, ...at }, { focus: false }); return; }
      cursor[layer] = at;
      const canvas = maps[layer][at.channel];
      if (document.activeElement !== canvas) { roving(layer, at.channel); canvas.focus(); }
      label(layer, at.channel);
      place(layer, at);
    }
    function roving(layer, channel) { maps[layer].forEach((c, i) => { c.tabIndex = i === channel ? 0 : -1; }); }
    function label(layer, channel) {
      const { row, col } = cursor[layer], spec = LAYERS[layer];
      const text = `${NAMES[layer]} feature map ${channel + 1} of ${spec.channels}, ${spec.size}×${spec.size}; ` +
        `unit at row ${row}, column ${col}: arrow keys move it, Enter explains it`;
      maps[layer][channel].setAttribute("aria-label", text);
    }

    for (const layer of Object.keys(maps)) {
      cursor[layer] = { channel: 0, row: 0, col: 0 };
      roving(layer, 0);
      maps[layer].forEach((canvas, channel) => {
        canvas.classList.add("lenet-drill-clickable");
        // A click's coordinates are whole pixels, a unit of C1 two of them: take the press's, which keep
        // their fractions, where the click is the end of that press.
        let press = null;
        canvas.addEventListener("pointerdown", (event) => { press = [event.clientX, event.clientY]; });
        canvas.addEventListener("click", (event) => {
          const box = canvas.getBoundingClientRect(), side = LAYERS[layer].size;
          const near = press && Math.abs(press[0] - event.clientX) <= 1 && Math.abs(press[1] - event.clientY) <= 1;
          const [x, y] = near ? press : [event.clientX, event.clientY];
          const col = Math.min(side - 1, Math.floor((x - box.left) / box.width * side));
          const row = Math.min(side - 1, Math.floor((y - box.top) / box.height * side));
          cursor[layer] = { channel, row: Math.max(0, row), col: Math.max(0, col) };
          roving(layer, channel);
          label(layer, channel);
          show({ layer, ...cursor[layer] });
        });
        canvas.addEventListener("focus", () => {
          if (cursor[layer].channel !== channel) cursor[layer] = { channel, row: 0, col: 0 };
          label(layer, channel);
          place(layer, cursor[layer]);
        });
        canvas.addEventListener("blur", () => requestAnimationFrame(unmark));
        canvas.addEventListener("keydown", (event) => {
          const step = { ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0] }[event.key];
          if (step) move(layer, ...step, true);
          else if (event.key === "Enter" || event.key === " ") show({ layer, ...cursor[layer] });
          else if (event.key === "Escape" && open) hide();
          else return;
          event.preventDefault();
        });
      });
    }
    close.addEventListener("click", hide);
    panel.addEventListener("keydown", (event) => {
      if (event.key === "Escape") { event.preventDefault(); hide(); }
    });
    window.addEventListener("resize", unmark);

    return {
      refresh(forward) { if (open) show(open, { focus: false, forward }); },
      close: hide,
      show: (unit) => show(unit),
      get open() { return open && { ...open }; },
    };
  };

  return drill;
})();
