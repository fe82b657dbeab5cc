"""Shapes through a CNN, on paper: the output-size rule and a checker that explains a misfit.

Chapter 2 ("Shape propagation through LeNet-5") builds these functions step by step and shows
their source; ``tests/test_shapes.py`` checks every verdict against what PyTorch really does.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import functools
import inspect
import math
import numbers
import re
import textwrap

import numpy as np
import torch
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin
from torch.nn.parameter import is_lazy as _not_built

from lenet_book._grammar import _a_kind
from lenet_book.checks import (
    _brief,
    _generators_kept,
    at_the_door,
    buffers_kept,
    check_dense,
    check_network,
    check_trace,
    check_whole,
    check_window,
    modes_kept,
)

__all__ = ["ShapeError", "check_input_shape", "describe", "diagnose", "fitting_sizes", "hxw",
           "input_problem", "next_shape", "output_size", "pair", "run_and_report",
           "shape_by_pytorch", "shape_of", "size_hint", "square", "trace_shapes", "walk"]


def output_size(n, kernel, padding=0, stride=1):
    """Length of a convolution or pooling output along one axis: floor((n + 2p - k) / s) + 1."""
    check_window(n, kernel, padding, stride)  # whole numbers; a window that fits (checks)
    return (n + 2 * padding - kernel) // stride + 1


def pair(value):
    """Conv2d stores (height, width) tuples, AvgPool2d plain integers: return a pair either way."""
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def square(hw):
    """"5" for a square (5, 5), "3×5" otherwise."""
    return str(hw[0]) if hw[0] == hw[1] else f"{hw[0]}×{hw[1]}"


def hxw(hw):
    """"5×5" for (5, 5)."""
    return f"{hw[0]}×{hw[1]}"


def trace_shapes(net, X):
    """The shape after each layer of net, as tuples."""
    check_trace(net, X)  # an nn.Sequential and a float tensor that fits it (lenet_book.checks)
    shapes = []
    for layer in net:
        X = layer(X)
        shapes.append(tuple(X.shape))
    return shapes


def run_and_report(net, X):
    """Run net on X; print the output shape, or the type and first line of the error raised."""
    try:
        Y = net(X)
    # RuntimeError for most misfits; a numpy array or a wrong argument gives TypeError, some
    # layers raise IndexError or NotImplementedError (e.g. avg_pool2d on uint8).
    except (RuntimeError, TypeError, ValueError, IndexError, NotImplementedError) as err:
        lines = str(err).strip().splitlines() or [""]
        print(f"{type(err).__name__}: {lines[0]}" + (" [...]" if len(lines) > 1 else ""))
    else:
        print("output shape:", tuple(Y.shape))


POINTWISE = (nn.Sigmoid, nn.ReLU, nn.Tanh, nn.Identity, nn.Dropout)
WINDOWED = (nn.Conv2d, nn.AvgPool2d, nn.MaxPool2d)
NORMS = {nn.BatchNorm1d: (2, 3), nn.BatchNorm2d: (4,)}  # batch norm: the dimensions it takes


class ShapeError(Exception):
    """Raised by next_shape; the message says what the layer expected."""


def is_lazy(layer):
    """True for a lazy layer (nn.LazyLinear, nn.LazyConv2d, ...) not yet run: it takes its input
    size (in_features, in_channels) from its first input, so any size fits until then."""
    return isinstance(layer, LazyModuleMixin) and layer.has_uninitialized_params()


def wrapped(label, text, width=100):
    """'  label:  text' wrapped to width columns, continuation lines indented under the text."""
    return textwrap.fill(text, width, initial_indent=f"  {label + ':':9}",
                         subsequent_indent=" " * 11, break_long_words=False,
                         break_on_hyphens=False)


def describe(layer):
    """A short name for a layer, e.g. "Linear(400 → 120)"."""
    if is_lazy(layer) and isinstance(layer, nn.Linear):
        return f"LazyLinear(? → {layer.out_features})"
    if is_lazy(layer) and isinstance(layer, nn.Conv2d):  # in_channels is 0 until its first input
        return (f"LazyConv2d(? → {layer.out_channels}, kernel "
                f"{hxw(pair(layer.kernel_size))}, padding {square(pair(layer.padding))})")
    if isinstance(layer, nn.Linear):
        return f"Linear({layer.in_features} → {layer.out_features})"
    if isinstance(layer, nn.Conv2d):
        return (f"Conv2d({layer.in_channels} → {layer.out_channels}, "
                f"kernel {hxw(pair(layer.kernel_size))}, padding {square(pair(layer.padding))})")
    if isinstance(layer, WINDOWED):
        return f"{layer.__class__.__name__}(kernel {hxw(pair(layer.kernel_size))})"
    return layer.__class__.__name__


def shape_by_pytorch(layer, shape):
    """The output shape of a layer without a rule here, from PyTorch's own shape propagation:
    a copy of the layer runs on a meta tensor, which has a shape but no data (nothing is
    computed and the layer itself is not touched). A layer that the meta device cannot run
    (e.g. one that reads its input's values, ``x / 255 if x.max() > 1 else x``) runs once for
    real on zeros instead (``_shape_on_zeros``)."""
    meta = None
    # an input of the layer's own float type (a network in float64 takes float64 images)
    dtype = next((t.dtype for t in (*layer.parameters(), *layer.buffers())
                  if t.is_floating_point()), torch.get_default_dtype())
    try:
        meta = copy.deepcopy(layer, _meta_stand_ins(layer)).to("meta").eval()
        _check_transposed_channels(meta, "block" if isinstance(layer, _AsOne) else "")
        with torch.no_grad():
            out = meta(torch.empty(shape, device="meta", dtype=dtype))
    except ShapeError:  # _check_transposed_channels's words
        raise
    except Exception as err:  # whatever the layer raises for an input it cannot take
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        if meta is not None and "meta" not in first.lower():  # the input does not fit
            raise ShapeError(f"another input: PyTorch says {first!r}") from None
        out = _shape_on_zeros(layer, shape, first)  # not copied, or not run, on meta
    if not isinstance(out, torch.Tensor):
        raise ShapeError(f"an input for which it returns one tensor (it returned a "
                         f"{type(out).__name__})")
    return tuple(out.shape)


_ZEROS_MOST = 1 << 24  # values of the zeros run for real when the meta run cannot (64 MiB)


def _shape_on_zeros(layer, shape, said):
    """``layer``'s output for an input of zeros of ``shape``, run for real: its run on the meta
    device failed with ``said`` for a reason of that device, not of the shape (a forward that
    reads its input's values, ``.item()``, ``if x.max() > 1``, which a meta tensor has none of;
    a tensor it makes on the CPU), or it could not be copied there. A copy of the layer runs
    (the layer itself if it cannot be copied) in eval mode without gradients, its modes,
    batch-norm statistics and torch's random state put back. A layer with lazy weights not
    built yet (a real run would build them) or a shape too large to hold keeps the meta
    verdict."""
    lazy = any(isinstance(m, LazyModuleMixin) and m.has_uninitialized_params()
               for m in layer.modules())
    if lazy or math.prod(shape) > _ZEROS_MOST:
        note = ("" if lazy else f" (the layer reads its input's values, which a shape alone does "
                f"not have, and {math.prod(shape)} values are too many to try it on zeros: "
                f"check a batch of one image, e.g. (1, {', '.join(map(str, shape[1:]))}))")
        raise ShapeError(f"another input: PyTorch says {said!r}{note}")
    tensors = [*layer.parameters(), *layer.buffers()]
    device = tensors[0].device if tensors else torch.device("cpu")
    dtype = next((t.dtype for t in tensors if t.is_floating_point()), torch.get_default_dtype())
    try:
        runner = copy.deepcopy(layer)
    except Exception:  # e.g. weights computed from others (not graph leaves): the layer itself
        runner = layer
    try:
        with _generators_kept(device), modes_kept(runner), buffers_kept(runner), \
                torch.no_grad():
            return runner.eval()(torch.zeros(shape, device=device, dtype=dtype))
    except Exception as err:  # whatever the layer raises for an input it cannot take
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ShapeError(f"another input: PyTorch says {first!r}") from None


def _check_transposed_channels(meta, top):
    """PyTorch's meta kernel of a transposed convolution (ConvTranspose1d/2d/3d) does not check
    its input's channels, which the real one refuses: hooks on the meta copy ``meta`` check
    them (``top``, the name of the user's layer in it, is "" or "block" for an _AsOne)."""
    for name, module in meta.named_modules():
        if not isinstance(module, nn.modules.conv._ConvTransposeNd):
            continue
        dims = len(module.kernel_size)
        where = ("its in_channels" if name == top
                 else f"the in_channels of its {name.removeprefix(top + '.')!r}, "
                      f"{type(module).__name__}")

        def check(module, inputs, dims=dims, where=where):
            x = inputs[0] if inputs else None
            if (isinstance(x, torch.Tensor) and x.dim() in (dims + 1, dims + 2)
                    and module.in_channels and x.shape[-dims - 1] != module.in_channels):
                raise ShapeError(f"{module.in_channels} input channel(s) ({where}), in "
                                 f"dimension {x.dim() - dims - 1}")

        module.register_forward_pre_hook(check)


def _meta_stand_ins(layer):
    """deepcopy's memo for the tensors it cannot copy, each replaced by a stand-in on meta: a
    lazy layer's weights not built yet (the copy builds its own on meta at its first call), and
    tensors computed from learnable weights (not graph leaves, e.g. RBF codes made from an
    nn.Parameter)."""
    memo = {}
    for module in layer.modules():
        for t in (*module._parameters.values(), *module._buffers.values(), *vars(module).values()):
            if _not_built(t):
                memo[id(t)] = type(t)(requires_grad=t.requires_grad, device="meta", dtype=t.dtype)
            elif isinstance(t, torch.Tensor) and not t.is_leaf:
                memo[id(t)] = t.detach().to("meta")
    return memo


def next_shape(layer, shape):
    """The shape of layer's output for an input of the given shape, by the rules alone."""
    if isinstance(layer, POINTWISE):
        return shape
    if isinstance(layer, nn.Sequential):  # a block of layers: each in turn
        for part in layer:
            shape = next_shape(part, shape)
        return shape
    if type(layer) in NORMS:
        dims = NORMS[type(layer)]
        if len(shape) not in dims or shape[1] != layer.num_features:
            raise ShapeError(f"{' or '.join(f'{d}-D' for d in dims)} input with "
                             f"{layer.num_features} channel(s) in dimension 1 (its num_features)")
        return shape
    if isinstance(layer, nn.Flatten):
        n = max(len(shape), 1)  # PyTorch flattens a 0-d tensor as if it had one dimension
        if not all(-n <= dim < n for dim in (layer.start_dim, layer.end_dim)):
            raise ShapeError(f"at least "
                             f"{max(layer.start_dim, layer.end_dim, -1 - layer.start_dim) + 1} "
                             f"dimension(s) (its start_dim is {layer.start_dim})")
        start, end = layer.start_dim % n, layer.end_dim % n
        shape = shape or (1,)
        return shape[:start] + (math.prod(shape[start:end + 1]),) + shape[end + 1:]
    if isinstance(layer, nn.Linear):
        if is_lazy(layer) and len(shape) > 0:  # in_features is set on first use: any size fits
            return shape[:-1] + (layer.out_features,)
        if len(shape) == 0 or shape[-1] != layer.in_features:
            raise ShapeError(f"a last dimension of {layer.in_features} (its in_features)")
        return shape[:-1] + (layer.out_features,)
    if isinstance(layer, WINDOWED):
        if len(shape) not in (3, 4):
            raise ShapeError("a 4-D input (N, C, H, W), or 3-D (C, H, W) for one unbatched image")
        *batch, channels, height, width = shape
        if isinstance(layer, nn.Conv2d):
            if channels != layer.in_channels and not is_lazy(layer):  # lazy: set on first use
                raise ShapeError(f"{layer.in_channels} input channel(s) (its in_channels)")
            channels = layer.out_channels
        if getattr(layer, "ceil_mode", False) or isinstance(layer.padding, str):
            return shape_by_pytorch(layer, shape)  # settings the rule here does not model
        k, p, s = pair(layer.kernel_size), pair(layer.padding), pair(layer.stride)
        d = pair(getattr(layer, "dilation", 1))
        window = tuple(d[i] * (k[i] - 1) + 1 for i in range(2))
        if height + 2 * p[0] < window[0] or width + 2 * p[1] < window[1]:
            raise ShapeError(f"a feature map of at least {hxw(window)} once padded by "
                             f"{square(p)}, for its {hxw(window)} window to fit")
        size = tuple(output_size((height, width)[i], window[i], p[i], s[i]) for i in range(2))
        return (*batch, channels, *size)
    return shape_by_pytorch(layer, shape)  # a layer without a rule here


def walk(net, input_shape):
    """Follow input_shape through net. Returns (shapes after each layer, failure), where failure
    is None or (index, layer, shape it gets, what it expects)."""
    if not isinstance(net, nn.Sequential):
        raise TypeError(f"walk follows an nn.Sequential layer by layer, not a "
                        f"{type(net).__name__}; check its Sequential parts one at a time")
    shape, shapes = tuple(input_shape), []
    for index, layer in enumerate(net):
        try:
            shape = next_shape(layer, shape)
        except ShapeError as err:
            return shapes, (index, layer, shape, str(err))
        shapes.append(shape)
    return shapes, None


def fitting_sizes(net, input_shape, largest=128):
    """Square image sizes n for which net accepts input_shape with its height and width set to n."""
    if len(input_shape) < 2:
        return []
    return [n for n in range(1, largest + 1)
            if walk(net, (*input_shape[:-2], n, n))[1] is None]


def shape_of(x):
    """(shape, dtype, kind) of x: a shape such as (1, 1, 28, 28), a tensor or a numpy array.

    kind is "shape", "tensor" or "array"; dtype is None for a shape. Anything else raises a
    TypeError that says what to pass instead.
    """
    if isinstance(x, torch.Tensor):
        return tuple(x.shape), x.dtype, "tensor"
    if isinstance(x, np.ndarray):
        return tuple(x.shape), x.dtype, "array"
    if isinstance(x, (tuple, list, torch.Size)):
        bad = [d for d in x if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 0]
        if not bad:
            return tuple(int(d) for d in x), None, "shape"
        _check_no_tensors_in(x)  # e.g. a dataset's (images, labels): named briefly
        shown = repr(tuple(x)) if len(repr(tuple(x))) <= 100 else _brief(x)
        raise TypeError(f"{shown} is not a shape: its entries must be whole numbers ≥ 0 "
                        f"(got {bad[0]!r:.60}). To check data, pass them as a tensor "
                        "(torch.tensor(...)).")
    raise TypeError(f"expected a shape such as (1, 1, 28, 28), a tensor or a numpy array, "
                    f"not {_a_kind(x)}; e.g. for a PIL image pass "
                    "torchvision.transforms.functional.to_tensor(image).unsqueeze(0)")


def _check_no_tensors_in(x):
    """A tuple or list holding tensors or arrays (a dataset's (images, labels), a batch's pair) is
    no shape, and no data to pass as a tensor: its tensors are named by their shapes (_brief),
    not printed whole (thousands of values)."""
    held = [d for d in x if isinstance(d, (torch.Tensor, np.ndarray)) and d.ndim > 0]
    if not held:
        return
    items = ", ".join(_brief(d, 0 if any(d is h for h in held) else 40) for d in list(x)[:4])
    items += ", ..." if len(x) > 4 else ""
    kind = "tensors" if all(isinstance(d, torch.Tensor) for d in held) else "arrays"
    if (len(x) == 2 and len(held) == 2 and x[0].ndim >= 2 and x[1].ndim == 1
            and len(x[0]) == len(x[1])):
        raise TypeError(f"({items}) is not a shape: it is a pair (images, labels) of {kind}; "
                        f"pass the images alone, images (of shape {tuple(x[0].shape)}), not "
                        f"(images, labels)")
    raise TypeError(f"({items}) is not a shape: it holds {kind}, not whole numbers; pass one "
                    f"of them (e.g. the images), or a shape such as (1, 1, 28, 28)")


def input_problem(net, dtype, kind):
    """(what is wrong, hint) when an input of this dtype and kind ("shape", "tensor" or "array")
    cannot go into net as it is, else None."""
    weights = next((p.dtype for p in net.parameters() if p.is_floating_point()), None)
    if dtype is None or weights is None:  # a bare shape, or a network without weights
        return None
    name = str(dtype).removeprefix("torch.")
    if kind == "array":
        try:
            # the dtype it would have in torch
            dtype = torch.from_numpy(np.empty(0, dtype=dtype)).dtype
        except TypeError:
            return (f"the input is a numpy array of {name}, not numbers PyTorch can hold",
                    "convert it to numbers first, e.g. X.astype(np.float32)")
    convert = ("" if dtype == weights else ".float()" if weights == torch.float32
               else f".to({weights})")
    scale = (" / 255 (the / 255 maps 0–255 pixels to [0, 1], as ToTensor does)"
             if dtype == torch.uint8 else "")
    if kind == "array":
        return (f"the input is a numpy array ({name}), but PyTorch layers take tensors",
                f"convert it: torch.from_numpy(X){convert}{scale}")
    if not convert:
        return None
    other_way = f" (or the network: net.to({dtype}))" if dtype.is_floating_point else ""
    return (f"the input is {name} but the network's weights are "
            f"{str(weights).removeprefix('torch.')}, and PyTorch does not mix them",
            f"convert it: X{convert}{scale}{other_way}")


def size_hint(net, input_shape):
    """'crop'/'pad' advice per axis when the height or width is not one the network fits."""
    fits = fitting_sizes(net, input_shape)
    if not fits:
        return None
    height, width = input_shape[-2:]
    n = fits[0]
    sizes = (f"{n}×{n} to {fits[-1]}×{fits[-1]}" if fits == list(range(n, fits[-1] + 1))
             else ", ".join(f"{m}×{m}" for m in fits))

    def change(size):
        return None if size in fits else ("crop" if size > n else "pad")

    actions = {"height": change(height), "width": change(width)}
    if not any(actions.values()):
        return None
    if actions["height"] == actions["width"]:
        advice = f"{actions['height']} it to {n}×{n}"
    else:
        advice = " and ".join(f"{action} its {axis} from {size} to {n}"
                              for (axis, action), size in zip(actions.items(), (height, width))
                              if action)
    return (f"the image is {height}×{width} but this network was built for {n}×{n} "
            f"(it fits {sizes}): {advice} (or resize it)")


def diagnose(net, input_shape, shapes, failure):
    """(why, hint) for a failure that walk found."""
    index, layer, shape, expects = failure
    resize = size_hint(net, input_shape) if len(input_shape) == 4 else None
    if len(input_shape) < 3:
        flat, side = math.prod(input_shape), math.isqrt(input_shape[-1]) if input_shape else 0
        if (len(input_shape) == 2 and side > 1
                and side * side == input_shape[-1] != input_shape[0] ** 2):
            return (f"the input is {input_shape[0]} flat vectors of {input_shape[-1]} values",
                    f"if they are {side}×{side} grey images: X.reshape(-1, 1, {side}, {side})")
        if len(input_shape) == 2:
            what, example = (f"one {hxw(input_shape)} grey image "
                             "without batch and channel dimensions",
                             f"X.reshape(1, 1, {input_shape[0]}, {input_shape[1]})")
        else:
            what = "a single number" if not input_shape else f"a flat vector of {flat} values"
            side = math.isqrt(flat)
            example = (f"X.reshape(1, 1, {side}, {side})" if side > 1 and side * side == flat
                       else "X.reshape(1, 1, height, width)")
        return (f"the input is {what}; the network takes (batch, channels, height, width)",
                f"add the missing dimensions, e.g. {example} for one grey image")
    if len(input_shape) > 4:
        return (f"the input has {len(input_shape)} dimensions; the network takes 4 "
                "(batch, channels, height, width)",
                "remove the extra ones, e.g. X.squeeze() or X.flatten(0, 1) to merge two "
                "batch dimensions")
    if isinstance(layer, nn.Linear) and index > 0 and isinstance(net[index - 1], nn.Flatten):
        flatten, before = net[index - 1], (input_shape, *shapes)[index - 1]
        start, end = flatten.start_dim % len(before), flatten.end_dim % len(before)
        dims = before[start:end + 1]
        why = (f"the flattened feature map has {'×'.join(map(str, dims))} = {shape[-1]} values "
               f"but {describe(layer)} expects {layer.in_features}")
        if len(input_shape) == 3:
            return why, "the input has no batch dimension: add one, e.g. X.unsqueeze(0)"
        if resize:
            return why, f"{resize}, or change this Linear's in_features to {shape[-1]}"
        return why, f"change this Linear's in_features to {shape[-1]}"
    if isinstance(layer, nn.Conv2d) and len(shape) in (3, 4) and shape[-3] != layer.in_channels:
        why = f"the input has {shape[-3]} channel(s), {describe(layer)} takes {layer.in_channels}"
        if index == 0 and len(shape) == 4 and shape[-1] == layer.in_channels:
            return why, "the channels come last (N, H, W, C): move them, X.permute(0, 3, 1, 2)"
        if index == 0 and len(shape) == 3 and layer.in_channels == 1:
            return why, (f"if these are {shape[0]} grey images without a channel dimension, "
                         "add it: X.unsqueeze(1)")
        return why, (f"give the image {layer.in_channels} channel(s) (e.g. RGB → grey-scale) "
                     f"or build this Conv2d with in_channels={shape[-3]}")
    return None, resize


def check_input_shape(net, x, verbose=True):
    """Say whether net accepts x (a shape, a tensor or a numpy array) and, if not, where and why.

    Returns True or False; with verbose, prints the output shape or what fails, why, and a hint.
    """
    check_network(net, verbose=verbose)  # a torch.nn.Module and a flag (lenet_book.checks)
    input_shape, dtype, kind = shape_of(x)
    problem = input_problem(net, dtype, kind)
    shapes, failure = walk(net, input_shape)
    if verbose and problem:
        print(wrapped("FAILS at the input", problem[0]).replace("  FAILS at the input:",
                                                                "FAILS at the input: ", 1))
        print(wrapped("hint", problem[1]))
    if failure is None:
        if verbose:
            print(f"{'OK' if problem is None else 'shape OK'}: {input_shape} -> "
                  f"{shapes[-1] if shapes else input_shape}")
            for index, layer in enumerate(net):
                if is_lazy(layer):
                    got = (input_shape, *shapes)[index]
                    size = (f"in_features to {got[-1]}" if isinstance(layer, nn.Linear)
                            else "its input size")
                    print(wrapped("note", f"layer {index}, {describe(layer)}, is lazy: its "
                                  f"shape is set on first use; this input would set {size}"))
        return problem is None
    if verbose:
        index, layer, shape, expects = failure
        why, hint = diagnose(net, input_shape, shapes, failure)
        print(f"FAILS at layer {index}, {describe(layer)}")
        print(f"  gets:    shape {shape}")
        print(f"  expects: {expects}")
        if why:
            print(wrapped("why", why))
        if hint:
            print(wrapped("hint", hint))
    return False


# Chapter 2 shows the functions above as written; at_the_door (lenet_book.checks) checks these
# arguments before they run.

def _check_fitting_sizes(net, input_shape, largest=128):
    _check_sequential("fitting_sizes", net)
    check_whole("fitting_sizes: largest", largest)
    if not isinstance(input_shape, (tuple, list, torch.Size)):
        # _brief: a tensor's shape, not its thousands of values
        raise TypeError(f"fitting_sizes: input_shape must be a batch's shape such as "
                        f"(1, 1, 28, 28), got {_brief(input_shape, 80)}"
                        + ("; for a batch X pass its shape, X.shape"
                           if isinstance(input_shape, (torch.Tensor, np.ndarray)) else ""))
    for size in input_shape:
        check_whole("fitting_sizes: each of input_shape's sizes", size, least=0)
    if len(input_shape) == 3 and isinstance(net, nn.Module) \
            and any(isinstance(m, nn.Conv2d) for m in net.modules()):
        # C×H×W without the batch: the convolutions accept it, Flatten then flattens it all
        raise ValueError(f"fitting_sizes: input_shape must be a batch's shape N×C×H×W, 4 "
                         f"numbers such as (1, 1, 28, 28) (H and W are tried), got "
                         f"{input_shape!r}, without the batch dimension")
    # 2 sizes hold no batch besides the height and width tried; more than 4 no layer with a
    # window (Conv2d, pooling) takes: either way [] would read "no size fits" (fewer than 2:
    # fitting_sizes itself answers [], no height and width)
    if len(input_shape) == 2 or len(input_shape) > 4 and isinstance(net, nn.Module) \
            and any(isinstance(m, WINDOWED) for m in net.modules()):
        raise ValueError(f"fitting_sizes: input_shape must be a batch's shape N×C×H×W, 4 "
                         f"numbers such as (1, 1, 28, 28) (H and W are tried), got "
                         f"{tuple(input_shape)!r}, {len(input_shape)} number(s)"
                         + ("; for one H×W grey image, (1, 1, H, W)" if len(input_shape) == 2
                            else ""))
    _check_fitting_channels(net, input_shape, largest)


# True while size_hint asks fitting_sizes (for diagnose): [] is its answer there, no refusal
_SIZES_ONLY = contextvars.ContextVar("lenet_book.shapes._SIZES_ONLY", default=False)


def _check_fitting_channels(net, input_shape, largest):
    """A batch shape whose channels a Conv2d does not take (3-channel images for LeNet, or grey
    ones for an RGB network) fits at no height and width: fitting_sizes' [] would read "no size
    fits", while the channels are at fault. Refused with check_input_shape's words (diagnose)."""
    if _SIZES_ONLY.get() or len(input_shape) != 4:
        return
    input_shape = tuple(int(d) for d in input_shape)
    shapes, failure = walk(net, input_shape)
    if failure is None:
        return
    why, hint = diagnose(net, input_shape, shapes, failure)
    found = re.fullmatch(r"the input has (\d+) channel\(s\), .* takes (\d+)", why or "")
    if not found or any(walk(net, (*input_shape[:-2], n, n))[1] is None
                        for n in range(1, largest + 1)):
        return  # another failure (a size, which fitting_sizes answers), or some size fits
    index, layer, _, _ = failure
    where = f"layer {index}" + ("" if describe(layer) in why else f", {describe(layer)}")
    given, taken = int(found[1]), int(found[2])
    if hint and not (given == 3 and taken == 1):  # diagnose's example is the other way
        hint = hint.replace("(e.g. RGB → grey-scale)", "(e.g. grey → RGB, X.expand(-1, 3, -1, -1))"
                            if (given, taken) == (1, 3) else "").replace("  ", " ")
    example = (f"; then ask again, e.g. fitting_sizes(net, "
               f"{(*input_shape[:-3], int(found[2]), *input_shape[-2:])})"
               if hint and hint.startswith("give the image") else "")
    raise ValueError(f"fitting_sizes: input_shape {input_shape} fits at no height and width: "
                     f"its channels fail, not its size, at {where}: {why}. Hint: "
                     f"{hint}{example}")


@contextlib.contextmanager
def _sizes_only(bound):
    """size_hint asks fitting_sizes about sizes alone (for diagnose, whatever fails): there []
    is an answer, not a wrong channel count to refuse (_check_fitting_channels)."""
    token = _SIZES_ONLY.set(True)
    try:
        yield
    finally:
        _SIZES_ONLY.reset(token)


def _check_run_and_report(net, X):
    """A shape such as (1, 1, 32, 32) given for X, as check_input_shape takes it: the network
    would fail on the tuple itself (torch's conv2d TypeError), which would read as its verdict
    on an image of that size. So would the arguments swapped, or anything that cannot be called
    as net ("'Tensor' object is not callable"), and a class given for a layer (nn.ReLU, which
    nn.ReLU(X) builds with inplace=X)."""
    _check_not_a_class("run_and_report", net)
    if not callable(net):
        if isinstance(X, nn.Module):
            raise TypeError(f"run_and_report takes the network first: run_and_report(net, X); "
                            f"got {_a_kind(net)} as net and the network as X")
        raise TypeError(f"run_and_report: net must be the network to run, a torch.nn.Module "
                        f"such as lenet_book.models.lenet(), got {_brief(net, 80)} "
                        f"({_a_kind(net)}); call it as run_and_report(net, X)")
    # a tuple of 2 to 5 sizes, as a shape is written (a list may be a network's own input, e.g.
    # token ids)
    if (isinstance(X, (tuple, torch.Size)) and 2 <= len(X) <= 5
            and all(isinstance(d, numbers.Integral) and not isinstance(d, bool) and d >= 0
                    for d in X)):
        shape = tuple(int(d) for d in X)
        kind = "a torch.Size" if isinstance(X, torch.Size) else _a_kind(X)
        raise TypeError(f"run_and_report: X must be a tensor that the layers run on, not {kind} "
                        f"{shape}: run_and_report runs net on a tensor X, e.g. "
                        f"torch.rand{shape}; for a shape, check_input_shape(net, shape) needs "
                        "no data")


def _check_not_a_class(name, net):
    """A class given for the network (nn.ReLU for nn.ReLU()): calling it builds a layer instead of
    running one, e.g. nn.ReLU(X) is ReLU(inplace=X), and the output is no tensor."""
    if not isinstance(net, type):
        return
    if not issubclass(net, nn.Module):
        raise TypeError(f"{name}: net must be the network to run, a torch.nn.Module such as "
                        f"lenet_book.models.lenet(), got the class {net.__name__}")
    module = net.__module__.removeprefix("lenet_book.")  # original.RBF, models.Net
    written = (f"nn.{net.__name__}" if getattr(nn, net.__name__, None) is net
               else f"{module}.{net.__name__}" if net.__module__.startswith("lenet_book.")
               else net.__name__)
    try:
        needed = [p.name for p in inspect.signature(net).parameters.values()
                  if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    except (TypeError, ValueError):  # no signature to read
        needed = []
    if issubclass(net, nn.Sequential):
        fix = f"{written}(layer, layer, ...) with its layers"
    elif needed:
        fix = f"{written}({', '.join(needed)}) with its settings"
    else:
        fix = f"{written}() (with parentheses)"
    raise TypeError(f"{name}: net is the class {net.__name__}, not a layer: write {fix}")


def _buffers_kept(bound):
    # a diagnostic runs the network once: batch norm's running statistics must not move
    return buffers_kept(bound.arguments["net"])


def _run_as_written(bound):
    """run_and_report runs the network inside a torch.compile wrapper, as its siblings check it
    (_unwrapped): compiled, a misfit reads "TorchRuntimeError: RuntimeError when making fake
    tensor call [...]" after torch's logged traceback, not PyTorch's eager message, and the
    run would start a compilation."""
    net = bound.arguments["net"]
    for _ in range(8):  # a wrapper of a wrapper
        inner = getattr(net, "_orig_mod", None)
        if not isinstance(net, nn.Module) or not isinstance(inner, nn.Module):
            break
        net = inner
    bound.arguments["net"] = net
    return _buffers_kept(bound)


def _check_pair_like(name):
    def check(hw):
        if isinstance(hw, (str, bytes)) or not hasattr(hw, "__getitem__") or len(hw) != 2:
            raise TypeError(f"{name} takes a (height, width) pair as hw, such as (5, 5) (as "
                            f"pair() gives), got {hw!r}")
    return check


def _check_layer(name, layer):
    if not isinstance(layer, nn.Module) or isinstance(layer, type):
        hint = (f"; pass one, {layer.__name__}(...), not the class"
                if isinstance(layer, type) and issubclass(layer, nn.Module) else "")
        raise TypeError(f"{name}: layer must be a layer (a torch.nn.Module such as "
                        f"nn.Linear(400, 120)), got {layer!r} ({_a_kind(layer)}){hint}")
    for setting in ("kernel_size", "padding", "stride", "dilation"):  # pair refuses these too
        value = getattr(layer, setting, 0) if isinstance(layer, WINDOWED) else 0
        if any(isinstance(v, numbers.Real) and v < 0
               for v in (value if isinstance(value, (tuple, list)) else (value,))):
            raise ValueError(f"{name}: the layer {layer} has a negative {setting} {value!r}, "
                             f"which PyTorch cannot run; build it with a {setting} of at least "
                             f"0, e.g. nn.Conv2d(1, 6, kernel_size=5, padding=2)")


def _check_shape(name, shape, param="shape"):
    """A shape such as (1, 1, 28, 28): a tuple, list or torch.Size of whole numbers ≥ 0."""
    if not isinstance(shape, (tuple, list, torch.Size)):
        # _brief: a tensor's shape, not its thousands of values
        raise TypeError(f"{name}: {param} must be a shape such as (1, 1, 28, 28), a tuple of "
                        f"whole numbers, got {_brief(shape, 80)} ({_a_kind(shape)})"
                        + ("; for a tensor pass its shape, X.shape"
                           if isinstance(shape, (torch.Tensor, np.ndarray)) else ""))
    for size in shape:
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 0:
            raise (ValueError if isinstance(size, numbers.Integral) else TypeError)(
                f"{name}: {param} must hold whole numbers ≥ 0 such as (1, 1, 28, 28), got "
                f"{tuple(shape)!r}")


def _check_sequential(name, net, example=(1, 1, 28, 28)):
    if not isinstance(_unwrapped(net), nn.Sequential):
        if not isinstance(net, nn.Module):
            raise TypeError(f"{name}: net must be an nn.Sequential network such as "
                            f"lenet_book.models.lenet(), got {net!r:.60} ({_a_kind(net)})")
        parts = [f"net.{part}" if part.isidentifier() else f"net[{part}]"
                 for part, module in _unwrapped(net).named_children()
                 if isinstance(module, nn.Sequential)]
        shape = tuple(example)
        raise TypeError(f"{name} follows an nn.Sequential layer by layer, not a "
                        f"{type(net).__name__}: net must be one. A module of your own runs its "
                        f"layers in its forward, in an order the rules cannot see: check its "
                        f"Sequential parts one at a time"
                        + (f" (e.g. check_input_shape({parts[0]}, {shape}))" if parts else "")
                        + f", or run the network on an example, net(torch.zeros{shape}), to see "
                        "its output shape or PyTorch's error")


def _check_check_input_shape(net, x, verbose=True):
    _check_not_a_class("check_input_shape", net)
    check_dense("check_input_shape", meta=True, x=x)  # input_problem reads the dtype only
    if isinstance(net, nn.Module):  # anything else: check_network names it
        example = (tuple(x) if isinstance(x, (tuple, list, torch.Size))
                   and all(isinstance(d, numbers.Integral) for d in x) and len(x) == 4
                   else (1, 1, 28, 28))
        _check_sequential("check_input_shape", net, example)


@contextlib.contextmanager
def _diagnosable(bound):
    """diagnose's arguments: what walk(net, input_shape) returned for this same network and
    shape, with a failure in it (for a shape that fits there is nothing to diagnose). The
    network is taken as walk takes it (_as_walked)."""
    net, input_shape, shapes, failure = (bound.arguments[name] for name in
                                         ("net", "input_shape", "shapes", "failure"))
    check_network(net, "diagnose: net")
    _check_shape("diagnose", input_shape, "input_shape")
    _check_sequential("diagnose", net,
                      tuple(input_shape) if len(input_shape) == 4 else (1, 1, 28, 28))
    call = "diagnose(net, input_shape, *walk(net, input_shape))"
    if failure is None:
        raise ValueError(f"diagnose: failure is None: walk found that the network takes "
                         f"input_shape {tuple(input_shape)}, so there is nothing to diagnose; "
                         f"diagnose explains a failure that walk found: shapes, failure = "
                         f"walk(net, shape), then if failure: why, hint = diagnose(net, shape, "
                         f"shapes, failure)")
    if not isinstance(failure, (tuple, list)) or len(failure) != 4:
        raise TypeError(f"diagnose: failure must be walk's (index, layer, shape, expects), four "
                        f"items, got {failure!r:.80} ({_a_kind(failure)}); pass what walk "
                        f"returns for the same network and shape: {call}")
    net = _as_walked(net)
    index, layer, shape, expects = failure
    if (isinstance(index, bool) or not isinstance(index, numbers.Integral)
            or not 0 <= index < len(net) or net[index] is not layer):
        named = (f"layer {index}, {describe(layer)}" if isinstance(layer, nn.Module)
                 and not isinstance(layer, type) else f"{index!r}, {layer!r:.40}")
        raise ValueError(f"diagnose: failure names {named}, which is not that layer of this "
                         f"network: pass what walk returns for the same network and shape, "
                         f"{call}")
    if not isinstance(shapes, (tuple, list)) or len(shapes) != index:
        raise ValueError(f"diagnose: shapes must be walk's shapes after each layer before the "
                         f"failing one ({index} of them), got {shapes!r:.80}; pass what walk "
                         f"returns: {call}")
    _check_shape("diagnose", shape, "failure's shape")
    if not isinstance(expects, str):
        raise TypeError(f"diagnose: failure's last item must be walk's words on what the layer "
                        f"expects (a str), got {expects!r:.60}; pass what walk returns: {call}")
    bound.arguments["net"] = net
    if _opened(layer) and 3 <= len(input_shape) <= 4:  # fewer or more: the input itself is named
        bound.arguments.update(_failure_inside(net, tuple(input_shape), layer))
    yield


def _opened(layer):
    """A block of layers that next_shape follows one by one (an nn.Sequential without a forward
    or pre-hooks of its own, e.g. C1 of the 1998 network)."""
    return (isinstance(layer, nn.Sequential) and not _has_own_forward(layer)
            and not _has_own_pre_hooks(layer))


def _leaves(net):
    """net's layers with its blocks (_opened) opened, in the order the input meets them."""
    for layer in net:
        if _opened(layer):
            yield from _leaves(layer)
        else:
            yield layer


def _failure_inside(net, input_shape, block):
    """diagnose's net, shapes and failure for a failure in ``block``: those of the network with
    its blocks opened, so that the layer inside that fails (C1's Conv2d) is diagnosed as the
    same layer of a flat network would be. A layer that the input reaches with only its height
    and width changed (PaperInput pads them) is diagnosed as the first one: the input's own
    layout is then at fault (e.g. no channel dimension: X.unsqueeze(1))."""
    flat = nn.Sequential(*_leaves(net))
    shapes, failure = walk(flat, input_shape)
    if failure is None or not any(m is failure[1] for m in block.modules()):
        return {}  # the rules found it elsewhere (not expected): diagnosed as the block
    index, layer, shape, expects = failure
    if all(s[:-2] == input_shape[:-2] for s in (input_shape, *shapes)[:index + 1]):
        return {"net": flat, "shapes": [], "failure": (0, layer, shape, expects)}
    return {"net": flat, "shapes": shapes, "failure": failure}


def _channels_last_hint(input_shape, failure):
    """The hint for an image whose channels come last (H×W×C as numpy and PIL give a picture,
    or N×H×W×C), which the first Conv2d reads as H channels; None for any other failure. Taken
    as channels last: 1 to 4 sizes last (grey, grey + alpha, RGB, RGBA) after a height and
    width of at least 8."""
    index, layer, shape, _ = failure
    if (index != 0 or not isinstance(layer, nn.Conv2d) or is_lazy(layer)
            or len(input_shape) not in (3, 4) or len(shape) not in (3, 4)
            or shape[-3] == layer.in_channels):
        return None
    *batch, height, width, channels = input_shape
    wanted = layer.in_channels
    if not (1 <= channels <= 4 and height >= 8 and width >= 8):
        return None
    fix, did = _channels_moved(input_shape, wanted)
    takes = f" (the network takes {wanted} channel{'s' if wanted != 1 else ''})"
    if batch:
        if not did:  # chapter 2's words for (N, 28, 28, 1)
            return "the channels come last (N, H, W, C): move them, X.permute(0, 3, 1, 2)"
        return f"the channels come last (N, H, W, C): move them first, {did}{takes}, e.g. {fix}"
    return (f"this is one {height}×{width} image with its channels last ({height}×{width}×"
            f"{channels}, H×W×C, as numpy and PIL give a picture): move them first"
            + (f", {did}{takes}" if did else "") + f" and add the batch dimension, e.g. {fix}")


def _channels_moved(input_shape, wanted):
    """(code, words): how to give a channels-last ``input_shape`` (H×W×C or N×H×W×C, C 1 to 4)
    ``wanted`` channels first, e.g. ("X.permute(0, 3, 1, 2).mean(1, keepdim=True)", "make the
    images grey-scale"); the words are "" when only the move is needed."""
    *batch, _, _, channels = input_shape
    dim = len(batch)  # the channel dimension once moved first (after the batch's)
    move = "X.permute(0, 3, 1, 2)" if batch else "X.permute(2, 0, 1)"
    grey = f".mean({dim}, keepdim=True)"
    three = ".expand(-1, 3, -1, -1)" if batch else ".expand(3, -1, -1)"
    it, its = ("the images", "their") if batch else ("it", "its")
    # (channels, in_channels): (what to pick first, what to do once moved, in words)
    pick, change, did = {
        (3, 1): ("", grey, f"make {it} grey-scale"),
        (4, 1): ("[..., :3]", grey, f"drop {its} alpha channel, make {it} grey-scale"),
        (2, 1): ("[..., :1]", "", f"drop {its} alpha channel"),
        (4, 3): ("[..., :3]", "", f"drop {its} alpha channel"),
        (1, 3): ("", three, f"repeat {its} grey channel 3 times"),
    }.get((channels, wanted), ("", "", "" if channels == wanted
                               else f"give {it} {wanted} channel(s)"))
    return f"{move.replace('X', 'X' + pick)}{change}" + ("" if batch else ".unsqueeze(0)"), did


def _first_lazy_conv(net):
    """The first layer the input meets in ``net`` (blocks opened) if it is a lazy Conv2d not
    built yet, which takes its in_channels from that input (d2l's LeNet: nn.LazyConv2d); else
    None."""
    first = next(_leaves(net), None) if isinstance(net, nn.Sequential) else None
    return first if isinstance(first, nn.Conv2d) and is_lazy(first) else None


def _lazy_channels_last_hint(net, input_shape):
    """The channels-last hint (_channels_last_hint) for a network whose first layer is a lazy
    Conv2d: it takes any number of channels, so N×H×W×C goes in as H channels of H×W... maps and
    the failure comes later (a window that does not fit a C-wide map), where its in_channels, 0
    until its first input, says nothing. Taken as channels last: 1 to 4 sizes last after a height
    and width of at least 8, the height more channels (as read) than an RGBA picture has."""
    if _first_lazy_conv(net) is None or len(input_shape) not in (3, 4):
        return None
    *batch, height, width, channels = input_shape
    if not (1 <= channels <= 4 and height >= 8 and width >= 8 and height > 4):
        return None
    keep, _ = _channels_moved(input_shape, channels)
    grey, did = _channels_moved(input_shape, 1)
    takes = (f" (its first layer, a lazy Conv2d, then takes {channels} channel"
             f"{'s' if channels != 1 else ''})")
    to_grey = (f"; to {did} instead (1 channel, as Fashion-MNIST's): {grey}"
               if channels != 1 else "")
    if batch:
        return f"the channels come last (N, H, W, C): move them first, e.g. {keep}{takes}{to_grey}"
    return (f"this is one {height}×{width} image with its channels last ({height}×{width}×"
            f"{channels}, H×W×C, as numpy and PIL give a picture): move them first and add the "
            f"batch dimension, e.g. {keep}{takes}{to_grey}")


# walk's words on an unbatched input that a lazy first Conv2d would read as many channels
_READ_AS_CHANNELS = "a batch N×C×H×W; one image C×H×W would set its in_channels to C"

# True while check_input_shape runs: walk then refuses what _read_as_channels finds
_ASKED = contextvars.ContextVar("lenet_book.shapes._ASKED", default=False)


def _read_as_channels(net, input_shape):
    """walk's failure for an input (N, H, W) given to a network whose first layer is a lazy
    Conv2d (d2l's LeNet): PyTorch reads a 3-D input as one image C×H×W, so N grey images without
    a channel dimension would set its in_channels to N and come out as rows of one image (8
    images of 28×28: an output of 16 rows). Taken as images: a first size other than 1 or 3
    (one grey or RGB image) and a height and width of at least 8, for a network that does not
    treat it as one image (a Flatten makes its channels rows): a network of convolutions and
    pooling alone takes one image C×H×W, as PyTorch documents. Else None."""
    layer = _first_lazy_conv(net)
    if layer is None or len(input_shape) != 3:
        return None
    channels, height, width = input_shape
    if channels in (0, 1, 3) or height < 8 or width < 8:
        return None
    # one image can be meant where the network treats it as one: each layer's output is the
    # batch of one's without its batch dimension (no Flatten mixes the channels into rows)
    one, batch = walk.__wrapped__(net, input_shape), walk.__wrapped__(net, (1, *input_shape))
    if one[1] is None and batch[1] is None and batch[0] == [(1, *s) for s in one[0]]:
        return None
    return (0, net[0], tuple(input_shape),
            f"{_READ_AS_CHANNELS}, here {channels}")


def _lazy_input_read(function):
    """walk (``function``) as check_input_shape asks it (_ASKED): N×H×W given to a network whose
    first layer is a lazy Conv2d fails there (_read_as_channels) instead of going through as one
    image of N channels, which PyTorch does and walk alone (PyTorch's verdict) says."""

    @functools.wraps(function)
    def walked(net, input_shape):
        shapes, failure = function(net, input_shape)
        if _ASKED.get():
            read = _read_as_channels(_as_walked(net), tuple(input_shape))
            if read is not None:
                return [], read
        return shapes, failure

    return walked


@contextlib.contextmanager
def _asked(bound):
    """check_input_shape's network taken as walk takes it (_whole_if_own_forward), and walk
    told that check_input_shape asks (_ASKED)."""
    token = _ASKED.set(True)
    try:
        with _whole_if_own_forward(bound):
            yield
    finally:
        _ASKED.reset(token)


def _lazy_words(net, input_shape, failure):
    """(why, hint) for a failure at a lazy Conv2d, whose in_channels is 0 until its first input:
    diagnose's own rule would say "takes 0" and "give the image 0 channel(s)". None if the
    failing layer is no lazy Conv2d, or diagnose names the input itself (fewer than 3 or more
    than 4 dimensions)."""
    index, layer, shape, expects = failure
    if not (isinstance(layer, nn.Conv2d) and is_lazy(layer) and 3 <= len(input_shape) <= 4):
        return None
    if index == 0 and expects.startswith(_READ_AS_CHANNELS):
        channels, height, width = input_shape
        output = walk.__wrapped__(net, input_shape)[0]  # what PyTorch would do
        rows = ", not one row per image" if output and output[-1][:1] != (channels,) else ""
        outcome = f", and the network would output {output[-1]}{rows}" if output else ""
        return ((f"a 3-D input is one image without a batch dimension: {input_shape} reads as "
                 f"one {height}×{width} image with {channels} channels, which would set this lazy "
                 f"Conv2d's in_channels to {channels} on first use{outcome}"),
                (f"if these are {channels} grey images without a channel dimension, add it: "
                 f"X.unsqueeze(1); if this is one image with {channels} channels, add the batch "
                 f"dimension: X.unsqueeze(0)"))
    if len(shape) not in (3, 4):
        return None
    # any number of channels fits: what fails is the window (or another rule), as for a Conv2d
    # whose in_channels the input matches
    return None, size_hint(net, input_shape) if len(input_shape) == 4 else None


def _channels_last_hinted(function):
    """diagnose (``function``) with the hint for an image whose channels come last: its own
    rules read H×W×C as H grey images (X.unsqueeze(1)) and N×H×W×3 as H channels
    (in_channels=H). A failure at a lazy Conv2d gets words of its own (_lazy_words). Given the
    arguments _diagnosable passes it."""

    @functools.wraps(function)
    def hinted(net, input_shape, shapes, failure):
        words = _lazy_words(net, tuple(input_shape), failure)
        why, hint = function(net, input_shape, shapes, failure) if words is None else words
        return why, (_channels_last_hint(tuple(input_shape), failure)
                     or _lazy_channels_last_hint(net, tuple(input_shape)) or hint)

    return hinted


def _check_walk(net, input_shape):
    _check_sequential("walk", net)
    _check_shape("walk", input_shape, "input_shape")


def _check_layer_and_shape(name):
    def check(layer, shape):
        _check_layer(name, layer)
        _check_shape(name, shape)
    return check


def _pool_padding_problem(layer):
    """(kernel, padding, most) as (height, width) pairs when ``layer`` is a pooling layer padded
    by more than half its kernel (``most``), which PyTorch refuses whatever its input; else None."""
    if isinstance(layer, (nn.MaxPool2d, nn.AvgPool2d)):
        k, p = pair(layer.kernel_size), pair(layer.padding)
        most = (k[0] // 2, k[1] // 2)
        if p[0] > most[0] or p[1] > most[1]:
            return k, p, most
    return None


def _check_pool_padding(layer):
    """PyTorch refuses a pooling layer padded by more than half its kernel, whatever its input
    (the padded border would fill whole windows): a rule the output-size formula does not see."""
    bad = _pool_padding_problem(layer)
    if bad:
        k, p, most = bad
        raise ShapeError(f"a padding of at most {square(most)}, half its {hxw(k)} kernel "
                         f"(it has {square(p)}, which PyTorch refuses for any input): build "
                         f"it with padding={most[0] if most[0] == most[1] else most} or less")


def _check_pixels(layer, shape):
    """A layer with a window (Conv2d, pooling) needs a feature map with pixels: PyTorch refuses
    one of height or width 0 (an empty image) however much padding the layer adds, and the
    output-size rule takes sizes of at least 1."""
    if isinstance(layer, WINDOWED) and len(shape) in (3, 4) and 0 in shape[-2:]:
        axes = " and ".join(axis for axis, n in zip(("height", "width"), shape[-2:]) if not n)
        raise ShapeError(f"a feature map of at least 1×1: this one is {hxw(shape[-2:])}, its "
                         f"{axes} 0, an empty image without pixels, which PyTorch cannot slide "
                         "a window over")


def _check_one_output(layer):
    """A pooling layer built with return_indices=True returns a pair (output, indices), which no
    next layer of a Sequential can take, nor a loss as scores."""
    if getattr(layer, "return_indices", False):
        raise ShapeError("to return one tensor; with return_indices=True it returns a pair "
                         "(output, indices), which the next layer cannot take: build it with "
                         "return_indices=False (the default)")


def _check_padding_mode(layer, shape):
    """A Conv2d with padding_mode 'reflect', 'circular' or 'replicate' pads with the feature map's
    own rows and columns, so PyTorch needs enough of them: a limit the output-size rule does not
    see ('reflect' needs more rows than the padding, 'circular' as many, 'replicate' one)."""
    if (not isinstance(layer, nn.Conv2d) or layer.padding_mode == "zeros"
            or len(shape) not in (3, 4)):
        return
    left_w, right_w, top_h, bottom_h = layer._reversed_padding_repeated_twice  # also for 'same'
    padding, size = (max(top_h, bottom_h), max(left_w, right_w)), tuple(shape[-2:])
    most = {"reflect": tuple(n - 1 for n in size), "circular": size,
            "replicate": tuple(p if n else 0 for p, n in zip(padding, size))}[layer.padding_mode]
    if padding[0] > most[0] or padding[1] > most[1]:
        raise ShapeError(f"a feature map large enough for its padding of {square(padding)} with "
                         f"padding_mode={layer.padding_mode!r}, which pads with the map's own "
                         f"rows and columns: for a {hxw(size)} map PyTorch allows a padding of at "
                         f"most {square(most)}; use a padding that small, or padding_mode='zeros'")


def _has_own_forward(module):
    """An nn.Sequential subclass with its own forward (e.g. one that flattens or pads its input
    first): its layers do not run one after the other as Sequential's forward runs them."""
    return isinstance(module, nn.Sequential) and type(module).forward is not nn.Sequential.forward


def _has_own_pre_hooks(module):
    """Forward pre-hooks of one's own on ``module`` (register_forward_pre_hook; not PyTorch's,
    e.g. a lazy layer's or weight_norm's, nor lenet_book's): they may reshape the input before
    the layer sees it (e.g. ``lambda m, i: (i[0].reshape(-1, 1, 28, 28),)``), which the rules
    here do not see."""
    hooks = getattr(module, "_forward_pre_hooks", None) or {}
    return any(_is_own(hook) for hook in hooks.values())


def _is_own(hook):
    """A hook of one's own: not PyTorch's, nor lenet_book's (e.g. the text's loop's)."""
    return not (getattr(hook, "__module__", None) or type(hook).__module__ or "").startswith(
        ("torch.", "lenet_book."))


# the layers that next_shape's rules shape by isinstance (NORMS: by their type alone)
_RULED = (*POINTWISE, *WINDOWED, nn.Linear, nn.Flatten)


def _forward_not_ruled(layer):
    """A subclass of a layer with a rule (Conv2d, Linear, a pool, Flatten, ReLU, Dropout, ...)
    that has its own forward (e.g. timm's Conv2dSame, which pads in its forward): its base
    class's rule would be wrong about it, so PyTorch finds its shape."""
    return any(isinstance(layer, base)
               and any(getattr(type(layer), method) is not getattr(base, method)
                       for method in ("forward", "_conv_forward") if hasattr(base, method))
               for base in _RULED)


def _unwrapped(net):
    """The network inside nn.DataParallel (or DistributedDataParallel) and torch.compile: the
    shape rules follow its layers."""
    for _ in range(8):  # wrappers of wrappers
        inner = getattr(net, "_orig_mod", None)
        if isinstance(net, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            inner = net.module
        if not isinstance(inner, nn.Module):
            return net
        net = inner
    return net


def _as_walked(net):
    """``net`` as walk follows it: the network inside a DataParallel or torch.compile wrapper,
    and a Sequential subclass with its own forward, or one with forward pre-hooks of one's
    own, held as the one layer of an nn.Sequential, its shape found by PyTorch."""
    net = _unwrapped(net)
    if _has_own_forward(net) or _has_own_pre_hooks(net):
        return nn.Sequential(net)
    return net


class _AsOne(nn.Module):
    """A Sequential subclass with its own forward (or a layer with forward pre-hooks of one's
    own), held as one layer of no rule here, so that next_shape asks PyTorch for its output
    shape (shape_by_pytorch runs its forward, and its hooks, on a meta copy) instead of
    following its layers."""

    def __init__(self, block):
        super().__init__()
        self.block = block

    def forward(self, *inputs):
        return self.block(*inputs)


@contextlib.contextmanager
def _one_if_own_forward(bound):
    """next_shape follows an nn.Sequential's layers one by one: a subclass with its own forward
    is given to it as one layer instead, its shape found by PyTorch. So is a layer with forward
    pre-hooks of one's own whose input the rules refuse (a hook may reshape it first): PyTorch
    then runs the hooks too (only then, so that hooks that record inputs are not run at every
    check)."""
    layer = bound.arguments["layer"]
    # so is a subclass of a layer with a rule that has its own forward (_forward_not_ruled).
    # Forward hooks of one's own are never run here: they would record meta tensors
    if _has_own_forward(layer) or _forward_not_ruled(layer):
        bound.arguments["layer"] = _AsOne(layer)
    elif _has_own_pre_hooks(layer):
        try:
            next_shape.__wrapped__(layer, bound.arguments["shape"])  # the rules alone
        except ShapeError:
            bound.arguments["layer"] = _AsOne(layer)
    yield


@contextlib.contextmanager
def _whole_if_own_forward(bound):
    """A network in a DataParallel or torch.compile wrapper is checked (walk, check_input_shape)
    by its layers; one that is a Sequential subclass with its own forward, or has forward
    pre-hooks of one's own, as one layer, by PyTorch: nn.Sequential(net), whose only layer it
    is."""
    if isinstance(bound.arguments["net"], nn.Module):
        bound.arguments["net"] = _as_walked(bound.arguments["net"])
    yield


def _check_next_shape(layer, shape):
    _check_layer_and_shape("next_shape")(layer, shape)
    # ShapeErrors, as next_shape's rules raise (walk reports them)
    _check_pool_padding(layer)
    _check_one_output(layer)
    _check_pixels(layer, shape)
    _check_padding_mode(layer, shape)




def _check_pair(value):
    """What layers store: a whole number, or a (height, width) pair of them (Conv2d's padding
    may also be 'same' or 'valid')."""
    def whole(v):
        return (isinstance(v, numbers.Integral) and not isinstance(v, bool)
                or isinstance(v, str) and v in ("same", "valid"))

    def at_least_0(v):  # kernel sizes, paddings and strides are never negative
        if not isinstance(v, str) and v < 0:
            raise ValueError(f"pair: value must be at least 0 (kernel_size, padding and stride "
                             f"are never negative), got {value!r}; e.g. pair(5) or pair((5, 5))")

    if whole(value):
        return at_least_0(value)
    if isinstance(value, (tuple, list)) and not isinstance(value, str):
        if len(value) != 2:
            raise ValueError(f"pair: value must be one number or a (height, width) pair, got "
                             f"{len(value)} numbers {tuple(value)!r}")
        if all(whole(v) for v in value):
            for v in value:
                at_least_0(v)
            return
    raise TypeError(f"pair: value must be a whole number or a (height, width) pair of them, as "
                    f"layers store kernel_size, padding and stride, e.g. 5 or (5, 5); got "
                    f"{value!r} ({_a_kind(value)})")


fitting_sizes = at_the_door(fitting_sizes, _check_fitting_sizes)
size_hint = at_the_door(size_hint, around=_sizes_only)
@contextlib.contextmanager
def _traced(bound):
    """trace_shapes runs each layer once: batch norm's statistics are put back, and one image is
    traced in eval mode (batch norm cannot normalise a batch of one in training; the shapes are
    the same), the modes put back after."""
    net, X = bound.arguments["net"], bound.arguments["X"]
    if isinstance(net, nn.Module):  # traced through a torch.compile or DataParallel wrapper
        net = bound.arguments["net"] = _unwrapped(net)
    if _has_own_forward(net) or _has_own_pre_hooks(net):
        # traced as one layer, as it runs
        bound.arguments["net"] = nn.Sequential(net)
    device = X.device if isinstance(X, torch.Tensor) else torch.device("cpu")
    # shapes need no gradients: without them, X made inside torch.inference_mode() runs too
    with buffers_kept(net), modes_kept(net), _generators_kept(device), torch.no_grad():
        if (isinstance(X, torch.Tensor) and X.dim() > 0 and len(X) == 1
                and isinstance(net, nn.Module)
                and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())):
            net.eval()
        yield


trace_shapes = at_the_door(trace_shapes, around=_traced)
run_and_report = at_the_door(run_and_report, _check_run_and_report, around=_run_as_written)
pair = at_the_door(pair, _check_pair)
square = at_the_door(square, _check_pair_like("square"))
hxw = at_the_door(hxw, _check_pair_like("hxw"))
is_lazy = at_the_door(is_lazy, lambda layer: _check_layer("is_lazy", layer))
describe = at_the_door(describe, lambda layer: _check_layer("describe", layer))
shape_by_pytorch = at_the_door(shape_by_pytorch, _check_layer_and_shape("shape_by_pytorch"))
next_shape = at_the_door(next_shape, _check_next_shape, around=_one_if_own_forward)
walk = _lazy_input_read(at_the_door(walk, _check_walk, around=_whole_if_own_forward))
check_input_shape = at_the_door(check_input_shape, _check_check_input_shape, around=_asked)
diagnose = at_the_door(_channels_last_hinted(diagnose), around=_diagnosable)
