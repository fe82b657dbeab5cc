"""Specification of the fused training step (lenet_book.fused): the fast path's maths, compiled as one function.

Same initial weights and same batches must give the plain step's losses, correct counts and
weights, within float tolerance (a compiler may add numbers up in another order).

On the CPU the step is compiled with the ``aot_eager`` backend: it traces the same single graph
(forward, loss, backward, update; ``fullgraph=True`` fails on any break) but runs it with
PyTorch's own kernels, because Inductor's C++ code generation takes over a minute per batch
shape on CI's two cores. On a GPU the tests use Inductor itself and the CUDA graph.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from lenet_book.fast import init_xavier, lenet, to_float, train_fast, train_step
from lenet_book.fused import FusedStep, train_fused, warm_up

CPU_BACKEND = "aot_eager"
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none visible)")


def random_batches(device, n=256 * 3 + 96, seed=0):
    """uint8 images and labels shaped like Fashion-MNIST's, and index batches of 256 with a short tail of 96."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (n,), generator=generator)
    index = torch.randperm(n, generator=generator)
    return images.to(device), labels.to(device), list(index.to(device).split(256))


def compare_with_plain_steps(device, backend, loss_rtol, weight_atol, channels_last=False):
    images, labels, batches = random_batches(device)
    assert [len(b) for b in batches] == [256, 256, 256, 96]
    torch.manual_seed(0)
    plain_net = init_xavier(lenet()).to(device)
    fused_net = copy.deepcopy(plain_net)
    if channels_last:
        fused_net.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(plain_net.parameters(), lr=0.9)
    loss_fn = nn.CrossEntropyLoss()
    step = FusedStep(fused_net, images, labels, lr=0.9, backend=backend, channels_last=channels_last)
    for idx in batches:
        plain_loss, plain_correct = train_step(plain_net, optimizer, loss_fn, to_float(images[idx]), labels[idx])
        fused_loss, fused_correct = step(idx)
        assert fused_loss.item() == pytest.approx(plain_loss.item(), rel=loss_rtol)
        assert fused_correct.item() == plain_correct.item()
    for (name, a), b in zip(plain_net.named_parameters(), fused_net.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=weight_atol, msg=lambda m: f"{name}: {m}")
    moved = [(p - q).abs().max().item() for p, q in zip(fused_net.parameters(), init_params(device))]
    assert max(moved) > 1e-3, "the fused step must have trained the network's own parameters"


def init_params(device):
    torch.manual_seed(0)
    return list(init_xavier(lenet()).to(device).parameters())


def test_fused_step_matches_the_plain_step_on_cpu():
    compare_with_plain_steps("cpu", CPU_BACKEND, loss_rtol=1e-5, weight_atol=1e-6)


def test_fused_step_in_channels_last_layout_matches_the_plain_step_on_cpu():
    # the layout changes where the numbers sit in memory and the kernels' order of summation, not the maths
    compare_with_plain_steps("cpu", CPU_BACKEND, loss_rtol=1e-5, weight_atol=1e-5, channels_last=True)


def test_a_layer_named_in_bf16_layers_computes_in_bfloat16_and_trains_like_float32():
    images, labels, batches = random_batches("cpu")
    torch.manual_seed(0)
    plain_net = init_xavier(lenet())
    mixed_net = copy.deepcopy(plain_net)
    output_dtypes = {}

    def record_dtype(layer, inputs, output):
        output_dtypes[layer.name] = output.dtype

    for name in ("0", "3"):  # the two convolutions
        mixed_net.get_submodule(name).name = name
        mixed_net.get_submodule(name).register_forward_hook(record_dtype)
    mixed = FusedStep(mixed_net, images, labels, compile=False, bf16_layers=["3"])
    plain = FusedStep(plain_net, images, labels, compile=False)
    for idx in batches:
        mixed_loss, mixed_correct = mixed(idx)
        plain_loss, plain_correct = plain(idx)
        assert mixed_loss.item() == pytest.approx(plain_loss.item(), rel=1e-2)
        assert abs(mixed_correct.item() - plain_correct.item()) <= 0.02 * len(idx)
    assert output_dtypes == {"0": torch.float32, "3": torch.bfloat16}
    for a, b in zip(plain_net.parameters(), mixed_net.parameters()):
        assert b.dtype == torch.float32  # the weights themselves stay float32
        torch.testing.assert_close(b, a, rtol=0, atol=2e-2)


def test_bf16_layers_must_be_layers_of_the_network():
    images, labels, _ = random_batches("cpu", n=8)
    with pytest.raises(ValueError, match=r"bf16_layers \['conv2'\] are not layers of the network"):
        FusedStep(lenet(), images, labels, bf16_layers=["conv2"])


def test_warm_up_compiles_the_tail_shape_and_puts_the_weights_back():
    images, labels, batches = random_batches("cpu")
    net = init_xavier(lenet())
    before = [p.detach().clone() for p in net.parameters()]
    shapes = []
    step = FusedStep(net, images, labels, backend=CPU_BACKEND)
    step.step = lambda params, images_, labels_, idx, run=step.step: shapes.append(len(idx)) or run(
        params, images_, labels_, idx)
    warm_up(step, batches)
    assert shapes == [256, 256, 256, 96]
    for p, p0 in zip(net.parameters(), before):
        assert torch.equal(p, p0)


def test_train_fused_gives_train_fasts_history_on_cpu():
    """A tiny stand-in set (10 images, batches of 4: 4 + 4 + 2 per epoch), same seed, same order."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (10, 28, 28), dtype=torch.uint8, generator=generator)
    labels = torch.arange(10)
    test_data = (torch.randint(0, 256, (10, 28, 28), dtype=torch.uint8, generator=generator), labels)
    torch.manual_seed(0)
    fast_net = init_xavier(lenet())
    fused_net = copy.deepcopy(fast_net)
    fast_history, _ = train_fast(fast_net, (images, labels), test_data, num_epochs=2, batch_size=4)
    fused_history, seconds = train_fused(fused_net, (images, labels), test_data, num_epochs=2,
                                         batch_size=4, cuda_graph=False, backend=CPU_BACKEND)
    assert seconds > 0 and fused_history[0]["setup_seconds"] > 0
    for fast, fused in zip(fast_history, fused_history, strict=True):
        assert fused["loss"] == pytest.approx(fast["loss"], rel=1e-5)
        assert fused["train_acc"] == fast["train_acc"] and fused["test_acc"] == fast["test_acc"]
    for a, b in zip(fast_net.parameters(), fused_net.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)


def test_bad_input_is_refused_with_a_clear_message():
    net = lenet()
    with pytest.raises(ValueError, match="uint8 N×28×28"):
        FusedStep(net, torch.rand(8, 1, 28, 28), torch.zeros(8, dtype=torch.int64))
    with pytest.raises(ValueError, match="one per image"):
        FusedStep(net, torch.zeros(8, 28, 28, dtype=torch.uint8), torch.zeros(7, dtype=torch.int64))
    data = (torch.zeros(8, 28, 28, dtype=torch.uint8), torch.zeros(8, dtype=torch.int64))
    test_data = (torch.zeros(8, 28, 28, dtype=torch.uint8), torch.zeros(8, dtype=torch.int64))
    with pytest.raises(ValueError, match="cuda_graph=True needs the data on a CUDA device"):
        train_fused(net, data, test_data, num_epochs=1, cuda_graph=True)


@needs_cuda
def test_fused_step_matches_the_plain_step_on_cuda():
    compare_with_plain_steps("cuda", "inductor", loss_rtol=1e-4, weight_atol=1e-5)


@needs_cuda
def test_fused_epoch_graph_gives_the_fast_graphs_history_on_cuda():
    images, labels, _ = random_batches("cuda", n=2000)
    torch.manual_seed(0)
    fast_net = init_xavier(lenet())
    fused_net = copy.deepcopy(fast_net)
    fast_history, _ = train_fast(fast_net, (images, labels), (images, labels), num_epochs=2, cuda_graph=True)
    fused_history, _ = train_fused(fused_net, (images, labels), (images, labels), num_epochs=2, cuda_graph=True)
    for fast, fused in zip(fast_history, fused_history, strict=True):
        assert fused["loss"] == pytest.approx(fast["loss"], rel=1e-3)
        assert fused["train_acc"] == pytest.approx(fast["train_acc"], abs=2e-3)
    for a, b in zip(fast_net.parameters(), fused_net.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-4)
