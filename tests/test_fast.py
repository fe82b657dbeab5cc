"""Specification of the fast training path (lenet_book.fast): it is the text's recipe, only faster.

No test here measures speed: speeds are benchmark figures (benchmarks/train_speed.py).
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn
from torchvision import transforms

from lenet_book.fast import (
    evaluate,
    init_xavier,
    lenet,
    load_fashion_mnist_tensors,
    shuffled_batches,
    to_float,
    train_fast,
    train_step,
)

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def fashion_mnist():
    return load_fashion_mnist_tensors(DATA)


def test_the_whole_data_set_is_uint8_tensors(fashion_mnist):
    (train_x, train_y), (test_x, test_y) = fashion_mnist
    assert train_x.shape == (60000, 28, 28) and test_x.shape == (10000, 28, 28)
    assert train_x.dtype == test_x.dtype == torch.uint8
    assert train_y.shape == (60000,) and test_y.shape == (10000,)


def test_to_float_gives_the_same_numbers_as_the_texts_to_tensor(fashion_mnist):
    (train_x, _), _ = fashion_mnist
    dataset = torchvision.datasets.FashionMNIST(DATA, train=True, transform=transforms.ToTensor())
    idx = torch.tensor([0, 1, 59999])
    expected = torch.stack([dataset[i][0] for i in idx.tolist()])
    assert torch.equal(to_float(train_x[idx]), expected)


def test_an_epoch_visits_every_example_once_in_a_new_order_with_a_short_last_batch():
    generator = torch.Generator().manual_seed(0)
    first = shuffled_batches(60000, 256, generator)
    second = shuffled_batches(60000, 256, generator)
    assert [len(b) for b in first] == [256] * 234 + [96]
    for epoch in (first, second):
        assert torch.equal(torch.cat(epoch).sort().values, torch.arange(60000))
    assert not torch.equal(torch.cat(first), torch.cat(second)), "reshuffled every epoch"
    again = shuffled_batches(60000, 256, torch.Generator().manual_seed(0))
    assert torch.equal(torch.cat(again), torch.cat(first)), "the seed fixes the order"


def test_fast_steps_give_the_same_losses_as_the_texts_steps(fashion_mnist):
    """Same initial weights, same batches: the text's pipeline (PIL image -> ToTensor -> stack)
    and the fast one (uint8 slice -> to_float) give the same losses and the same weights."""
    (train_x, train_y), _ = fashion_mnist
    dataset = torchvision.datasets.FashionMNIST(DATA, train=True, transform=transforms.ToTensor())
    torch.manual_seed(0)
    text_net = init_xavier(lenet())
    fast_net = copy.deepcopy(text_net)
    text_opt = torch.optim.SGD(text_net.parameters(), lr=0.9)
    fast_opt = torch.optim.SGD(fast_net.parameters(), lr=0.9)
    loss_fn = nn.CrossEntropyLoss()
    batches = shuffled_batches(60000, 256, torch.Generator().manual_seed(1))
    for idx in batches[:5] + batches[-1:]:  # the last, short batch too
        X = torch.stack([dataset[i][0] for i in idx.tolist()])
        y = torch.tensor([dataset[i][1] for i in idx.tolist()])
        text_opt.zero_grad()
        text_loss = loss_fn(text_net(X), y)
        text_loss.backward()
        text_opt.step()
        fast_loss_sum, _ = train_step(fast_net, fast_opt, loss_fn, to_float(train_x[idx]), train_y[idx])
        assert fast_loss_sum.item() / len(idx) == pytest.approx(text_loss.item(), rel=1e-5)
    for a, b in zip(text_net.parameters(), fast_net.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_train_fast_counts_every_example_including_the_last_partial_batch():
    """Mechanics on a tiny stand-in set (10 images, batches of 4): 4 + 4 + 2 per epoch."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (10, 28, 28), dtype=torch.uint8, generator=generator)
    labels = torch.arange(10)
    seen = []
    net = lenet()
    net[0].register_forward_hook(lambda module, inputs, output: seen.append(len(inputs[0])))
    test_images = torch.randint(0, 256, (10, 28, 28), dtype=torch.uint8, generator=generator)
    history, seconds = train_fast(net, (images, labels), (test_images, labels), num_epochs=2, batch_size=4)
    # the argument checks may look at one batch before training (lenet_book.checks): count after
    assert seen[-8:] == [4, 4, 2, 10] * 2, "three training batches, then one evaluation pass, per epoch"
    assert len(seen) - 8 <= 1, f"more than one forward pass before training: {seen}"
    assert [h["epoch"] for h in history] == [1, 2] and seconds > 0
    for h in history:
        assert 0 <= h["train_acc"] <= 1 and 0 <= h["test_acc"] <= 1 and h["loss"] > 0


def test_evaluate_matches_a_plain_count(fashion_mnist):
    """A linear softmax model, trained for 50 steps, makes varied predictions to count."""
    (train_x, train_y), (test_x, test_y) = fashion_mnist
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    optimizer, loss_fn = torch.optim.SGD(net.parameters(), lr=0.5), nn.CrossEntropyLoss()
    for idx in shuffled_batches(60000, 256, torch.Generator().manual_seed(0))[:50]:
        train_step(net, optimizer, loss_fn, to_float(train_x[idx]), train_y[idx])
    with torch.no_grad():
        predictions = torch.cat([net(to_float(test_x[i:i + 1000])).argmax(dim=1) for i in range(0, 10000, 1000)])
    expected = (predictions == test_y).sum().item() / 10000
    assert 0.5 < expected < 1, "a partly trained model, not a constant guess"
    assert evaluate(net, test_x, test_y) == expected


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason="on the CPU, chapter 4 trains this recipe with the fast path and asserts "
                           "the same band (its nbval replay); here it would repeat that minute")
def test_the_fast_path_with_cuda_graphs_reaches_the_texts_accuracy_band():
    """The full recipe (10 epochs) on the real data, each epoch one CUDA graph, lands where the
    text's loop lands."""
    train_data, test_data = load_fashion_mnist_tensors(DATA, "cuda")
    torch.manual_seed(0)
    history, _ = train_fast(init_xavier(lenet()), train_data, test_data, num_epochs=10, seed=0,
                            cuda_graph=True)
    assert 0.75 <= history[-1]["test_acc"] <= 0.85, history[-1]
    assert history[-1]["loss"] < history[0]["loss"]


def test_try_device_prefers_cuda_then_mps_then_cpu(monkeypatch):
    from lenet_book.device import try_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert try_device() == torch.device("cpu")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert try_device() == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert try_device() == torch.device("cuda:0")


def test_compile_and_warm_up_compiles_before_training_and_changes_nothing(fashion_mnist):
    # chapter 4 and the benchmark time compilation apart: after the warm-up, training compiles
    # no graph, starts from the same weights and computes what the eager network computes
    from torch._dynamo.utils import counters

    from lenet_book.speed import compile_and_warm_up

    (train_x, train_y), test = fashion_mnist
    train_data, test_data = (train_x[:600], train_y[:600]), (test[0][:500], test[1][:500])
    torch.manual_seed(0)
    eager = init_xavier(lenet())
    net = copy.deepcopy(eager)
    compiled, seconds = compile_and_warm_up(net, train_data, test_data, batch_size=256,
                                            backend="aot_eager")
    assert seconds > 0
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), eager.parameters()))
    before = counters["stats"]["unique_graphs"]
    history, _ = train_fast(compiled, train_data, test_data, num_epochs=2)
    assert counters["stats"]["unique_graphs"] == before, "training compiled a graph"
    eager_history, _ = train_fast(eager, train_data, test_data, num_epochs=2)
    assert history[-1]["loss"] == pytest.approx(eager_history[-1]["loss"], rel=1e-4)
