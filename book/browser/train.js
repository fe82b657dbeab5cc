// Training LeNet-5 in the page: the forward pass that keeps what the backward pass needs, the backward
// pass (the gradient of the loss for every weight), the SGD update, and the loop that runs the text's
// recipe (Xavier-uniform initial weights, SGD with learning rate 0.9, batches of 256, cross-entropy).
// lenetTrainCore() uses nothing of the page: the same source runs in a Web Worker (built from this
// file's text as a blob: URL, which works from file:// too) or, where no worker can start, on the page.
"use strict";

function lenetTrainCore() {
  // ---- Random numbers from a seed (mulberry32), so that a run can be repeated.
  function random(seed) {
    let a = seed >>> 0;
    return () => {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  // The tensors of lenet_book.fast.lenet()'s state dict: name, shape, fan-in, fan-out.
  const LAYERS = [["0", [6, 1, 5, 5]], ["3", [16, 6, 5, 5]], ["7", [120, 400]], ["9", [84, 120]],
    ["11", [10, 84]]];

  // Initial weights as chapter 3's train_ch6 sets them: Xavier uniform, U(-a, a) with
  // a = sqrt(6 / (fan_in + fan_out)); the biases keep PyTorch's default, U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
  function init(seed) {
    const next = random(seed), weights = {};
    for (const [layer, shape] of LAYERS) {
      const field = shape.length === 4 ? shape[2] * shape[3] : 1; // a kernel's positions
      const fanIn = shape[1] * field, fanOut = shape[0] * field;
      const a = Math.sqrt(6 / (fanIn + fanOut)), b = 1 / Math.sqrt(fanIn);
      const w = new Float32Array(shape.reduce((x, y) => x * y));
      for (let i = 0; i < w.length; i++) w[i] = (2 * next() - 1) * a;
      const bias = new Float32Array(shape[0]);
      for (let i = 0; i < bias.length; i++) bias[i] = (2 * next() - 1) * b;
      weights[`${layer}.weight`] = { shape, values: w };
      weights[`${layer}.bias`] = { shape: [shape[0]], values: bias };
    }
    return weights;
  }

  const sigmoid = (v) => 1 / (1 + Math.exp(-v));

  // One image's activations and gradients, allocated once and reused for every image.
  function workspace() {
    const f = (n) => new Float64Array(n);
    return { x: f(32 * 32), c1: f(6 * 784), s2: f(6 * 196), c3: f(16 * 100), s4: f(400), f5: f(120),
      f6: f(84), z: f(10), p: f(10), dz: f(10), d6: f(84), d5: f(120), d4: f(400), d3: f(1600), ds2: f(6 * 196),
      d1: f(6 * 784) };
  }

  // ---- Forward, keeping every layer's output: `pixels` are 784 bytes (0-255) of one image.
  function forward(w, pixels, offset, s) {
    const { x, c1, s2, c3, s4, f5, f6, z } = s;
    for (let r = 0; r < 28; r++) { // the image with C1's padding of 2: 32×32, zeros around it
      for (let c = 0; c < 28; c++) x[(r + 2) * 32 + c + 2] = pixels[offset + r * 28 + c] / 255;
    }
    const w0 = w["0.weight"].values, b0 = w["0.bias"].values;
    for (let o = 0; o < 6; o++) { // C1: 5×5 convolution, then sigmoid
      const k = w0.subarray(25 * o, 25 * o + 25);
      for (let y = 0; y < 28; y++) {
        for (let xx = 0; xx < 28; xx++) {
          let sum = b0[o];
          for (let i = 0, at = y * 32 + xx; i < 5; i++, at += 32) { // row i of the 5×5 window
            const r = 5 * i;
            sum += k[r] * x[at] + k[r + 1] * x[at + 1] + k[r + 2] * x[at + 2] + k[r + 3] * x[at + 3]
              + k[r + 4] * x[at + 4];
          }
          c1[o * 784 + y * 28 + xx] = sigmoid(sum);
        }
      }
    }
    pool(c1, s2, 6, 28); // S2
    const w3 = w["3.weight"].values, b3 = w["3.bias"].values;
    for (let o = 0; o < 16; o++) { // C3: 5×5 convolution over all six maps, then sigmoid
      const k = w3.subarray(150 * o, 150 * o + 150);
      for (let y = 0; y < 10; y++) {
        for (let xx = 0; xx < 10; xx++) {
          let sum = b3[o];
          for (let c = 0; c < 6; c++) {
            for (let i = 0, at = c * 196 + y * 14 + xx; i < 5; i++, at += 14) {
              const r = 25 * c + 5 * i;
              sum += k[r] * s2[at] + k[r + 1] * s2[at + 1] + k[r + 2] * s2[at + 2] + k[r + 3] * s2[at + 3]
                + k[r + 4] * s2[at + 4];
            }
          }
          c3[o * 100 + y * 10 + xx] = sigmoid(sum);
        }
      }
    }
    pool(c3, s4, 16, 10); // S4, which is also the flattened 400 inputs of F5
    dense(w["7.weight"].values, w["7.bias"].values, s4, f5, 400, 120, true);
    dense(w["9.weight"].values, w["9.bias"].values, f5, f6, 120, 84, true);
    dense(w["11.weight"].values, w["11.bias"].values, f6, z, 84, 10, false);
  }

  function pool(input, out, channels, size) { // 2×2 average pooling
    const half = size / 2;
    for (let c = 0; c < channels; c++) {
      for (let y = 0; y < half; y++) {
        for (let xx = 0; xx < half; xx++) {
          const at = (c * size + 2 * y) * size + 2 * xx;
          out[(c * half + y) * half + xx] = (input[at] + input[at + 1] + input[at + size] + input[at + size + 1]) / 4;
        }
      }
    }
  }

  function dense(wv, bv, input, out, inCount, outCount, squash) { // out = W·in + b (then sigmoid)
    for (let o = 0; o < outCount; o++) {
      let sum = bv[o];
      const row = o * inCount;
      for (let i = 0; i < inCount; i++) sum += wv[row + i] * input[i];
      out[o] = squash ? sigmoid(sum) : sum;
    }
  }

  // Cross-entropy of one image: -log softmax(z)[label]; leaves the probabilities in s.p.
  function crossEntropy(s, label) {
    const { z, p } = s;
    let top = -Infinity, total = 0;
    for (let k = 0; k < 10; k++) top = Math.max(top, z[k]);
    for (let k = 0; k < 10; k++) total += (p[k] = Math.exp(z[k] - top));
    for (let k = 0; k < 10; k++) p[k] /= total;
    return Math.log(total) + top - z[label];
  }

  // ---- Backward: the chain rule, layer by layer from the loss back to C1. `scale` is
  // 1 / batch size (the loss is the batch's mean); each weight's gradient is added to grads[name].
  function backward(w, s, label, scale, grads) {
    const { x, c1, s2, c3, s4, f5, f6, p, dz, d6, d5, d4, d3, ds2, d1 } = s;
    // Softmax and cross-entropy together: dLoss/dz = p - onehot(label).
    for (let k = 0; k < 10; k++) dz[k] = (p[k] - (k === label ? 1 : 0)) * scale;
    denseBack(w["11.weight"].values, grads["11.weight"], grads["11.bias"], f6, dz, d6, 84, 10);
    // Through a sigmoid: its output a has slope a(1 - a).
    for (let i = 0; i < 84; i++) d6[i] *= f6[i] * (1 - f6[i]);
    denseBack(w["9.weight"].values, grads["9.weight"], grads["9.bias"], f5, d6, d5, 120, 84);
    for (let i = 0; i < 120; i++) d5[i] *= f5[i] * (1 - f5[i]);
    denseBack(w["7.weight"].values, grads["7.weight"], grads["7.bias"], s4, d5, d4, 400, 120);
    // Through S4: each of C3's outputs gets a quarter of its block's gradient; then C3's sigmoid.
    poolBack(d4, d3, 16, 10);
    for (let n = 0; n < 1600; n++) d3[n] *= c3[n] * (1 - c3[n]);
    // C3: dW[o][c][i][j] = sum over y, x of d3[o][y][x] · s2[c][y+i][x+j]; S2's gradient gets
    // each weight times the gradient of every output that the weight touched.
    const w3 = w["3.weight"].values, g3 = grads["3.weight"], gb3 = grads["3.bias"];
    ds2.fill(0);
    for (let o = 0; o < 16; o++) {
      let bias = 0;
      for (let n = o * 100; n < o * 100 + 100; n++) bias += d3[n];
      gb3[o] += bias;
      for (let c = 0; c < 6; c++) {
        for (let i = 0; i < 5; i++) {
          for (let j = 0; j < 5; j++) {
            const at = ((o * 6 + c) * 5 + i) * 5 + j, k = w3[at];
            let sum = 0;
            for (let y = 0; y < 10; y++) {
              const dAt = o * 100 + y * 10, from = c * 196 + (y + i) * 14 + j;
              for (let xx = 0; xx < 10; xx++) {
                sum += d3[dAt + xx] * s2[from + xx];
                ds2[from + xx] += k * d3[dAt + xx];
              }
            }
            g3[at] += sum;
          }
        }
      }
    }
    poolBack(ds2, d1, 6, 28); // through S2, then C1's sigmoid
    for (let n = 0; n < 6 * 784; n++) d1[n] *= c1[n] * (1 - c1[n]);
    // C1: dW[o][0][i][j] = sum over y, x of d1[o][y][x] · image[y+i-2][x+j-2] (padded image).
    const g0 = grads["0.weight"], gb0 = grads["0.bias"];
    for (let o = 0; o < 6; o++) {
      let bias = 0;
      for (let n = o * 784; n < o * 784 + 784; n++) bias += d1[n];
      gb0[o] += bias;
      for (let i = 0; i < 5; i++) {
        for (let j = 0; j < 5; j++) {
          let sum = 0;
          for (let y = 0; y < 28; y++) {
            const dAt = o * 784 + y * 28, from = (y + i) * 32 + j;
            for (let xx = 0; xx < 28; xx++) sum += d1[dAt + xx] * x[from + xx];
          }
          g0[o * 25 + i * 5 + j] += sum;
        }
      }
    }
  }

  // A linear layer backwards: dW += d ⊗ input, db += d, and the input's gradient is Wᵀ·d.
  function denseBack(wv, gw, gb, input, d, dInput, inCount, outCount) {
    dInput.fill(0);
    for (let o = 0; o < outCount; o++) {
      const g = d[o], row = o * inCount;
      gb[o] += g;
      for (let i = 0; i < inCount; i++) {
        gw[row + i] += g * input[i];
        dInput[i] += wv[row + i] * g;
      }
    }
  }

  function poolBack(dOutput, dIn, channels, size) { // 2×2 average pooling backwards
    const half = size / 2;
    for (let c = 0; c < channels; c++) {
      for (let y = 0; y < size; y++) {
        for (let xx = 0; xx < size; xx++) {
          dIn[(c * size + y) * size + xx] = dOutput[(c * half + (y >> 1)) * half + (xx >> 1)] / 4;
        }
      }
    }
  }

  function zeros(weights) { // gradients: one Float64Array of zeros per tensor
    const grads = {};
    for (const name in weights) grads[name] = new Float64Array(weights[name].values.length);
    return grads;
  }

  // The gradients of the mean loss over one batch (`indices` into `images`), without updating:
  // returns {loss (mean), correct (predictions right), grads}.
  function gradients(w, images, labels, indices, s = workspace()) {
    const grads = zeros(w), scale = 1 / indices.length;
    let loss = 0, correct = 0;
    for (const n of indices) {
      forward(w, images, 784 * n, s);
      loss += crossEntropy(s, labels[n]);
      let best = 0;
      for (let k = 1; k < 10; k++) if (s.z[k] > s.z[best]) best = k;
      correct += best === labels[n];
      backward(w, s, labels[n], scale, grads);
    }
    return { loss: loss / indices.length, correct, grads };
  }

  // SGD: every weight moves against its gradient, w ← w - lr · dLoss/dw (float32, as PyTorch).
  function update(w, grads, lr) {
    for (const name in w) {
      const values = w[name].values, g = grads[name];
      for (let i = 0; i < values.length; i++) values[i] -= lr * g[i];
    }
  }

  // One step of minibatch SGD: gradients of the batch's mean loss, then the update.
  function step(w, images, labels, indices, lr, s) {
    const result = gradients(w, images, labels, indices, s);
    update(w, result.grads, lr);
    return result;
  }

  // The fraction of `count` images classified right (forward pass only).
  function accuracy(w, images, labels, count, s = workspace()) {
    let correct = 0;
    for (let n = 0; n < count; n++) {
      forward(w, images, 784 * n, s);
      let best = 0;
      for (let k = 1; k < 10; k++) if (s.z[k] > s.z[best]) best = k;
      correct += best === labels[n];
    }
    return correct / count;
  }

  // A fresh order of the training images for each epoch (Fisher-Yates), cut into batches.
  function batches(count, batchSize, next) {
    const order = Array.from({ length: count }, (_, i) => i);
    for (let i = count - 1; i > 0; i--) {
      const j = Math.floor(next() * (i + 1));
      [order[i], order[j]] = [order[j], order[i]];
    }
    const out = [];
    for (let i = 0; i < count; i += batchSize) out.push(order.slice(i, i + batchSize));
    return out; // the last batch may be short, as in the text's DataLoader
  }

  // The shipped images: base64 of gzip (train_data.min.js), unpacked by the browser.
  async function unpack(base64) {
    if (typeof DecompressionStream !== "function") {
      throw new Error("this browser cannot unpack the training images (it lacks DecompressionStream, " +
        "in Chrome and Edge since 2020, Firefox since 2023 and Safari since 2023)");
    }
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }

  // ---- The training loop, driven by messages: {type: "data" | "run" | "pause" | "reset" | "epochs"}.
  // It posts {type: "ready"}, {type: "progress"} after every step, {type: "point"} five times an epoch
  // (running loss and accuracy, as d2l's Animator plots them), {type: "epoch"} with the test accuracy,
  // and {type: "state"}. `post(message)` sends to the page; returns the handler of incoming messages.
  function trainer(post, later = (f) => setTimeout(f, 0)) {
    const recipe = { lr: 0.9, batchSize: 256, seed: 1 };
    let data = null, w = null, next = null, plan = [], epoch = 0, stepInEpoch = 0, epochs = 30;
    let running = false, lossSum = 0, correctSum = 0, seen = 0, steps = 0, stepMs = 0, examples = 0;
    let lastWeights = 0, chain = 0; // chain: a Pause and a quick Resume must not leave two loops running
    const s = workspace();

    function reset(seed = recipe.seed) {
      recipe.seed = seed;
      w = init(seed);
      next = random(seed + 1000);
      plan = []; epoch = 0; stepInEpoch = 0; steps = 0; stepMs = 0; examples = 0;
      lossSum = 0; correctSum = 0; seen = 0; running = false;
      const testAcc = data ? accuracy(w, data.test, data.testLabels, data.testLabels.length, s) : null;
      post({ type: "reset", seed, testAcc, weights: snapshot() });
      state("idle");
    }
    function snapshot() {
      const copy = {};
      for (const name in w) copy[name] = { shape: w[name].shape, values: w[name].values.slice() };
      return copy;
    }
    function state(name) { post({ type: "state", state: name, epoch, step: stepInEpoch, steps }); }

    function oneStep(mine) {
      if (!running || mine !== chain) return;
      if (stepInEpoch === 0 && plan.length === 0) plan = batches(data.trainLabels.length, recipe.batchSize, next);
      const perEpoch = Math.ceil(data.trainLabels.length / recipe.batchSize);
      const started = performance.now();
      const batch = plan[stepInEpoch];
      const { loss, correct } = step(w, data.train, data.trainLabels, batch, recipe.lr, s);
      stepMs += performance.now() - started;
      examples += batch.length;
      lossSum += loss * batch.length; correctSum += correct; seen += batch.length;
      stepInEpoch += 1; steps += 1;
      const now = performance.now(), progress = { type: "progress", epoch, step: stepInEpoch, perEpoch, steps,
        loss, examplesPerSecond: examples / (stepMs / 1000) };
      if (now - lastWeights > 250 || stepInEpoch === perEpoch) { progress.weights = snapshot(); lastWeights = now; }
      post(progress);
      if (stepInEpoch % Math.max(1, Math.floor(perEpoch / 5)) === 0 || stepInEpoch === perEpoch) {
        post({ type: "point", x: epoch + stepInEpoch / perEpoch, loss: lossSum / seen, trainAcc: correctSum / seen });
      }
      if (stepInEpoch === perEpoch) {
        const testAcc = accuracy(w, data.test, data.testLabels, data.testLabels.length, s);
        post({ type: "epoch", epoch: epoch + 1, loss: lossSum / seen, trainAcc: correctSum / seen, testAcc,
          examplesPerSecond: examples / (stepMs / 1000) });
        epoch += 1; stepInEpoch = 0; plan = []; lossSum = 0; correctSum = 0; seen = 0;
        if (epoch >= epochs) {
          running = false;
          state("done");
          return;
        }
      }
      later(() => oneStep(mine));
    }

    return async function receive(message) {
      try {
        if (message.type === "data") {
          const pixels = await unpack(message.base64);
          const split = 784 * message.trainLabels.length;
          data = { train: pixels.subarray(0, split), test: pixels.subarray(split),
            trainLabels: Uint8Array.from(message.trainLabels), testLabels: Uint8Array.from(message.testLabels) };
          post({ type: "ready", fixed: data.test.slice(0, 784) });
          reset(message.seed ?? recipe.seed);
        } else if (message.type === "run" && data && !running && epoch < epochs) {
          running = true;
          state("running");
          const mine = ++chain;
          later(() => oneStep(mine));
        } else if (message.type === "pause" && running) {
          running = false;
          state("paused");
        } else if (message.type === "reset" && data) {
          reset(message.seed ?? recipe.seed);
        } else if (message.type === "epochs") {
          epochs = message.epochs;
          if (!running) state(epoch >= epochs ? "done" : epoch || stepInEpoch ? "paused" : "idle");
        }
      } catch (error) {
        running = false;
        post({ type: "error", message: error.message });
      }
    };
  }

  return { random, init, workspace, forward, crossEntropy, backward, gradients, update, step, accuracy, batches,
    unpack, trainer };
}

// The page's side: the same core, and a trainer in a Web Worker (or on the page where none starts).
const LeNetTrain = (() => {
  const core = lenetTrainCore();

  // The worker's whole program: this file's core and its message loop, as text.
  const workerSource = `"use strict";\nconst core = (${lenetTrainCore.toString()})();\n` +
    "const receive = core.trainer((message) => self.postMessage(message));\n" +
    "self.onmessage = (event) => receive(event.data);\nself.postMessage({ type: \"hello\" });\n";

  // Calls onMessage with every message of the trainer; returns {send, where: "worker" | "page"}.
  function start(onMessage) {
    return new Promise((resolve) => {
      const onPage = () => {
        const receive = core.trainer((message) => setTimeout(() => onMessage(message), 0));
        resolve({ send: (message) => receive(message), where: "page" });
      };
      let worker, url;
      try {
        url = URL.createObjectURL(new Blob([workerSource], { type: "text/javascript" }));
        worker = new Worker(url);
      } catch (error) {
        onPage();
        return;
      }
      const timer = setTimeout(() => { worker.terminate(); onPage(); }, 5000);
      worker.onerror = (event) => {
        event.preventDefault();
        clearTimeout(timer);
        worker.terminate();
        onPage();
      };
      worker.onmessage = (event) => {
        if (event.data.type === "hello") {
          clearTimeout(timer);
          URL.revokeObjectURL(url);
          worker.onerror = null;
          worker.onmessage = (e) => onMessage(e.data);
          resolve({ send: (message) => worker.postMessage(message), where: "worker", worker });
        }
      };
    });
  }

  return { core, workerSource, start };
})();
