"""Specification of lenet_book.shapes, chapter 2's shape checker.

Its verdict must be PyTorch's for every input, and when an input does not fit, its printed
report must name the problem and the fix that fits it (crop or pad, per axis; add the missing
dimensions; convert the dtype or the numpy array).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from lenet_book.fast import lenet
from lenet_book.shapes import (
    ShapeError,
    check_input_shape,
    fitting_sizes,
    next_shape,
    output_size,
    run_and_report,
    shape_of,
    trace_shapes,
    walk,
)


@pytest.fixture(scope="module")
def net() -> nn.Sequential:
    torch.manual_seed(0)
    return lenet()


@pytest.fixture(scope="module")
def net_nopad(net) -> nn.Sequential:
    unpadded = copy.deepcopy(net)
    unpadded[0] = nn.Conv2d(1, 6, kernel_size=5)
    return unpadded


def pytorch_verdict(net, x):
    """(accepted, output shape) when PyTorch really runs net on x (a tensor, array or shape)."""
    if isinstance(x, tuple):
        x = torch.zeros(x)
    try:
        with torch.no_grad():
            return True, tuple(net(x).shape)
    except (RuntimeError, TypeError, ValueError, IndexError, NotImplementedError):
        return False, None


def report(net, x, capsys) -> tuple[bool, str]:
    """The verdict and the printed report, its wrapped lines joined back into one."""
    verdict = check_input_shape(net, x)
    printed = capsys.readouterr().out
    assert all(len(line) <= 100 for line in printed.splitlines()), printed
    return verdict, printed.replace("\n" + " " * 11, " ")


SHAPES = [(1, 1, 28, 28), (7, 1, 29, 29), (1, 1, 31, 31), (1, 1, 32, 32), (1, 1, 27, 27),
          (1, 1, 28, 40), (1, 1, 24, 40), (1, 1, 8, 8), (1, 1, 4, 4), (1, 3, 28, 28),
          (1, 28, 28), (256, 28, 28), (1, 28, 28, 1), (28, 28), (784,), (256, 784), (),
          (1, 1, 1, 28, 28), (0, 1, 28, 28)]
INPUTS = SHAPES + [
    torch.zeros(1, 1, 28, 28), torch.zeros(1, 1, 28, 28, dtype=torch.float64),
    torch.zeros(1, 1, 28, 28, dtype=torch.uint8), torch.zeros(1, 1, 28, 28, dtype=torch.float16),
    torch.zeros(2, 1, 28, 28, dtype=torch.int64), torch.zeros(28, 28),
    np.zeros((1, 1, 28, 28), np.float32), np.zeros((1, 1, 28, 28)), np.zeros((28, 28), np.uint8),
]


def label(x) -> str:
    return str(x) if isinstance(x, tuple) else f"{type(x).__name__}-{x.dtype}-{tuple(x.shape)}"


@pytest.mark.parametrize("x", INPUTS, ids=label)
@pytest.mark.parametrize("which", ["d2l", "no padding"])
def test_the_checker_agrees_with_pytorch(net, net_nopad, x, which, capsys):
    model = net if which == "d2l" else net_nopad
    accepted, output = pytorch_verdict(model, x)

    verdict, printed = report(model, x, capsys)

    assert verdict == accepted, printed
    if accepted:
        assert walk(model, shape_of(x)[0])[0][-1] == output
        assert printed.startswith("OK: ")
    else:
        assert "FAILS" in printed and "hint:" in printed, printed


def test_a_tensor_or_an_array_is_taken_for_its_shape(net, capsys):
    for x in (torch.rand(3, 1, 28, 28), torch.Size([3, 1, 28, 28]), [3, 1, 28, 28]):
        assert report(net, x, capsys) == (True, "OK: (3, 1, 28, 28) -> (3, 10)\n")


@pytest.mark.parametrize("bad, says", [
    ("28x28", "not a str"),
    (None, "not a NoneType"),
    ((1, 1, 28.5, 28), "is not a shape: its entries must be whole numbers ≥ 0 (got 28.5)"),
    ((1, -1, 28, 28), "got -1"),
    ([[0.1, 0.2], [0.3, 0.4]], "is not a shape"),
])
def test_something_that_is_not_a_shape_is_refused_clearly(net, bad, says):
    with pytest.raises(TypeError, match=r"shape") as error:
        check_input_shape(net, bad)
    assert says in str(error.value)


@pytest.mark.parametrize("x, problem, hint", [
    (torch.zeros(1, 1, 28, 28, dtype=torch.float64),
     "the input is float64 but the network's weights are float32",
     "convert it: X.float() (or the network: net.to(torch.float64))"),
    (torch.zeros(1, 1, 28, 28, dtype=torch.uint8), "the input is uint8 but the network's weights are float32",
     "convert it: X.float() / 255"),
    (torch.zeros(1, 1, 28, 28, dtype=torch.int64), "the input is int64", "convert it: X.float()\n"),
    (np.zeros((1, 1, 28, 28)), "the input is a numpy array (float64), but PyTorch layers take tensors",
     "convert it: torch.from_numpy(X).float()\n"),
    (np.zeros((1, 1, 28, 28), np.uint8), "the input is a numpy array (uint8)",
     "convert it: torch.from_numpy(X).float() / 255"),
    (np.zeros((1, 1, 28, 28), np.float32), "the input is a numpy array (float32)",
     "convert it: torch.from_numpy(X)\n"),
])
def test_a_wrong_dtype_or_a_numpy_array_is_named_with_its_conversion(net, x, problem, hint, capsys):
    verdict, printed = report(net, x, capsys)

    assert not verdict
    assert f"FAILS at the input: {problem}" in printed
    assert f"  hint:    {hint}" in printed or f"  hint:    {hint.strip()} (" in printed, printed
    assert "shape OK: (1, 1, 28, 28) -> (1, 10)" in printed  # the shape itself is fine
    converted = torch.as_tensor(x).float() / (255 if "255" in hint else 1)
    assert pytorch_verdict(net, converted)[0], "the advice works"


@pytest.mark.parametrize("size, advice", [
    ((32, 32), "the image is 32×32 but this network was built for 28×28 (it fits 28×28 to 31×31): "
               "crop it to 28×28"),
    ((28, 40), "crop its width from 40 to 28"),
    ((40, 28), "crop its height from 40 to 28"),
    ((24, 40), "pad its height from 24 to 28 and crop its width from 40 to 28"),
    ((20, 20), "pad it to 28×28"),
    ((8, 8), "pad it to 28×28"),
])
def test_the_size_hint_says_crop_or_pad_per_axis(net, size, advice, capsys):
    verdict, printed = report(net, (1, 1, *size), capsys)

    assert not verdict and advice in printed, printed
    if "crop" in advice and "pad" not in advice:
        assert "pad" not in printed
    if "pad" in advice and "crop" not in advice:
        assert "crop" not in printed


def test_the_advice_works(net, capsys):
    # Following the hint for a 28×40 image (crop its width to 28) makes it fit.
    image = torch.rand(1, 1, 28, 40)
    assert not check_input_shape(net, image, verbose=False)
    assert check_input_shape(net, image[..., 6:34], verbose=False)


def test_the_unpadded_network_is_told_to_pad_to_32(net_nopad, capsys):
    verdict, printed = report(net_nopad, (1, 1, 28, 28), capsys)

    assert not verdict
    assert "built for 32×32 (it fits 32×32 to 35×35): pad it to 32×32" in printed
    assert "or change this Linear's in_features to 256" in printed


@pytest.mark.parametrize("shape, hint", [
    ((784,), "add the missing dimensions, e.g. X.reshape(1, 1, 28, 28) for one grey image"),
    ((28, 28), "add the missing dimensions, e.g. X.reshape(1, 1, 28, 28) for one grey image"),
    ((256, 784), "if they are 28×28 grey images: X.reshape(-1, 1, 28, 28)"),
    ((), "add the missing dimensions, e.g. X.reshape(1, 1, height, width)"),
    ((1, 28, 28), "the input has no batch dimension: add one, e.g. X.unsqueeze(0)"),
    ((256, 28, 28), "if these are 256 grey images without a channel dimension, add it: X.unsqueeze(1)"),
    ((1, 28, 28, 1), "the channels come last (N, H, W, C): move them, X.permute(0, 3, 1, 2)"),
    ((1, 3, 28, 28), "give the image 1 channel(s) (e.g. RGB → grey-scale)"),
    ((1, 1, 1, 28, 28), "remove the extra ones"),
])
def test_any_number_of_dimensions_gets_a_fitting_hint(net, shape, hint, capsys):
    verdict, printed = report(net, shape, capsys)

    assert not verdict
    assert f"  hint:    {hint}" in printed, printed


def test_next_shape_follows_flatten_and_linear_on_short_shapes():
    assert next_shape(nn.Flatten(0), ()) == (1,)
    assert next_shape(nn.Flatten(), (3, 4)) == (3, 4)
    assert next_shape(nn.Linear(5, 2), (5,)) == (2,)
    for layer, shape in ((nn.Flatten(), (5,)), (nn.Linear(5, 2), ()), (nn.Conv2d(1, 1, 3), (9, 9))):
        with pytest.raises(ShapeError):
            next_shape(layer, shape)
        assert not pytorch_verdict(nn.Sequential(layer), shape)[0]


def test_the_output_size_rule_matches_every_windowed_layer_of_lenet(net):
    X = torch.rand(1, 1, 28, 28)
    for layer, shape in zip(net, trace_shapes(net, X)):
        if isinstance(layer, (nn.Conv2d, nn.AvgPool2d)):
            k, p, s = (v if isinstance(v, int) else v[0] for v in (layer.kernel_size, layer.padding, layer.stride))
            assert output_size(X.shape[-1], k, p, s) == shape[-1]
        X = layer(X)


def test_fitting_sizes_are_the_ones_pytorch_accepts(net):
    fits = fitting_sizes(net, (1, 1, 28, 28), largest=40)

    assert fits == [n for n in range(1, 41) if pytorch_verdict(net, (1, 1, n, n))[0]]
    assert fits == [28, 29, 30, 31]
    assert fitting_sizes(net, (784,)) == []


@pytest.mark.parametrize("x, expected", [
    (torch.rand(1, 1, 32, 32), "RuntimeError: mat1 and mat2 shapes cannot be multiplied (1x576 and 400x120)\n"),
    (np.zeros((1, 1, 28, 28), np.float32), "TypeError: conv2d() received an invalid combination of arguments"),
    (torch.zeros(1, 1, 28, 28, dtype=torch.float64), "RuntimeError: Input type (double) and bias type (float)"),
    (torch.rand(1, 1, 28, 28), "output shape: (1, 10)\n"),
])
def test_run_and_report_prints_any_error_pytorch_raises(net, x, expected, capsys):
    run_and_report(net, x)

    printed = capsys.readouterr().out
    assert printed.startswith(expected), printed
    assert printed.count("\n") == 1  # one line, even for PyTorch's many-line TypeError


def test_a_module_that_is_not_sequential_is_refused_clearly():
    class Wrapper(nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(TypeError, match="follows an nn.Sequential layer by layer, not a Wrapper"):
        check_input_shape(Wrapper(), (1, 1, 28, 28))


def test_the_checker_never_runs_the_network(net, monkeypatch):
    def no_forward(*args, **kwargs):
        raise AssertionError("the checker must work on paper")

    for layer in net:
        monkeypatch.setattr(layer, "forward", no_forward)
    assert check_input_shape(net, (1, 1, 28, 28), verbose=False)
    assert math.prod(walk(net, (2, 1, 28, 28))[0][-1]) == 20


def test_an_unused_lazy_layer_takes_any_size_and_is_fixed_by_its_first_input(capsys):
    # An nn.LazyLinear has in_features 0 until its first forward pass: the checker must not fail
    # on that, and it must check the layer like any Linear once the layer has been used.
    lazy = nn.Sequential(nn.Conv2d(1, 6, 5), nn.AvgPool2d(2), nn.Flatten(), nn.LazyLinear(10))
    for size, features in ((32, 6 * 14 * 14), (28, 6 * 12 * 12)):
        verdict, printed = report(lazy, (1, 1, size, size), capsys)
        assert verdict, printed
        assert "note:    layer 3, LazyLinear(? → 10), is lazy" in printed
        assert f"this input would set in_features to {features}" in printed
    assert next_shape(nn.LazyConv2d(4, 3), (1, 3, 9, 9)) == (1, 4, 7, 7)
    assert lazy(torch.zeros(1, 1, 32, 32)).shape == (1, 10)  # sets in_features to 1176
    verdict, printed = report(lazy, (1, 1, 28, 28), capsys)
    assert not verdict and "a last dimension of 1176 (its in_features)" in printed, printed
    assert not pytorch_verdict(lazy, (1, 1, 28, 28))[0]
