// LeNet-5's forward pass in plain JavaScript: the layers of lenet_book.fast.lenet(), one function each.
// Every activation is a flat Float64Array in PyTorch's order (channel, then row, then column), so
// flattening S4 for the first linear layer is nothing at all; weights are float32 from PyTorch.
"use strict";

const LeNet = (() => {
  // The exported tensors (tools/export_weights.py): float32 little-endian, base64, one per tensor.
  function loadWeights(exported) {
    const weights = {};
    for (const { name, shape, base64 } of exported.tensors) {
      const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
      const view = new DataView(bytes.buffer);
      const values = new Float32Array(bytes.length / 4);
      for (let i = 0; i < values.length; i++) values[i] = view.getFloat32(4 * i, true); // little-endian
      if (!values.every(Number.isFinite)) { // NaN or ±Infinity would make every output NaN
        throw new Error(`the weights file is broken: tensor ${name} holds numbers that are NaN ` +
          "or infinite; rerun tools/export_weights.py");
      }
      weights[name] = { shape, values };
    }
    return weights;
  }

  // nn.Conv2d(inChannels, outChannels, kernel_size=k, padding=pad) on inChannels maps of size×size.
  function conv2d(input, inChannels, size, { values: weight, shape }, { values: bias }, pad) {
    const [outChannels, , k] = shape; // weight: outChannels × inChannels × k × k
    const outSize = size + 2 * pad - k + 1;
    const out = new Float64Array(outChannels * outSize * outSize);
    for (let o = 0; o < outChannels; o++) {
      for (let y = 0; y < outSize; y++) {
        for (let x = 0; x < outSize; x++) {
          let sum = bias[o];
          for (let c = 0; c < inChannels; c++) {
            for (let i = 0; i < k; i++) {
              const row = y + i - pad;
              if (row < 0 || row >= size) continue; // zero padding adds nothing
              for (let j = 0; j < k; j++) {
                const col = x + j - pad;
                if (col < 0 || col >= size) continue;
                sum += weight[((o * inChannels + c) * k + i) * k + j]
                  * input[(c * size + row) * size + col];
              }
            }
          }
          out[(o * outSize + y) * outSize + x] = sum;
        }
      }
    }
    return out;
  }

  // nn.Sigmoid(): 1 / (1 + e^-x), value by value.
  function sigmoid(input) {
    return input.map((v) => 1 / (1 + Math.exp(-v)));
  }

  // nn.AvgPool2d(kernel_size=2, stride=2): the mean of each 2×2 block, maps halve in size.
  function avgPool2d(input, channels, size) {
    const half = size / 2;
    const out = new Float64Array(channels * half * half);
    for (let c = 0; c < channels; c++) {
      for (let y = 0; y < half; y++) {
        for (let x = 0; x < half; x++) {
          const at = (c * size + 2 * y) * size + 2 * x; // top-left of the block
          out[(c * half + y) * half + x] =
            (input[at] + input[at + 1] + input[at + size] + input[at + size + 1]) / 4;
        }
      }
    }
    return out;
  }

  // nn.Linear(inFeatures, outFeatures): out = W·in + b, with W of shape outFeatures × inFeatures.
  function linear(input, { values: weight, shape }, { values: bias }) {
    const [outFeatures, inFeatures] = shape;
    const out = new Float64Array(outFeatures);
    for (let o = 0; o < outFeatures; o++) {
      let sum = bias[o];
      for (let i = 0; i < inFeatures; i++) sum += weight[o * inFeatures + i] * input[i];
      out[o] = sum;
    }
    return out;
  }

  // Softmax, as the loss applies it: exponentials of the logits, shifted by their maximum so that
  // none overflows, divided by their sum.
  function softmax(logits) {
    const top = Math.max(...logits);
    const exps = logits.map((v) => Math.exp(v - top));
    const total = exps.reduce((a, b) => a + b, 0);
    return exps.map((v) => v / total);
  }

  // The whole network: `pixels` holds 28×28 grey values in [0, 1] (white object on black), as
  // ToTensor gives them. The names of w are those of the state dict: "0.weight" is net[0]'s.
  function forward(w, pixels) {
    const c1 = sigmoid(conv2d(pixels, 1, 28, w["0.weight"], w["0.bias"], 2)); // 6 × 28 × 28
    const s2 = avgPool2d(c1, 6, 28); //                                            6 × 14 × 14
    const c3 = sigmoid(conv2d(s2, 6, 14, w["3.weight"], w["3.bias"], 0)); //     16 × 10 × 10
    const s4 = avgPool2d(c3, 16, 10); //                      16 × 5 × 5, flattened: 400 values
    const f5 = sigmoid(linear(s4, w["7.weight"], w["7.bias"])); //                         120
    const f6 = sigmoid(linear(f5, w["9.weight"], w["9.bias"])); //                          84
    const logits = linear(f6, w["11.weight"], w["11.bias"]); //                            10
    return { c1, s2, c3, s4, f5, f6, logits, probabilities: softmax(logits) };
  }

  return { loadWeights, conv2d, sigmoid, avgPool2d, linear, softmax, forward };
})();
