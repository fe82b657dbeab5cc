"""Specification of the text's loop (lenet_book.textbook): train_ch6 as the text writes it, without the plot.

The benchmark times this loop against the fast path, so it must do what the text's loop does:
Xavier init (unless asked to keep the weights), plain SGD on cross-entropy, batch by batch
from a DataLoader, the test accuracy after every epoch.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lenet_book.models import init_xavier, lenet
from lenet_book.textbook import evaluate_accuracy_gpu, text_loaders, train_text_loop

DATA = Path(__file__).resolve().parents[1] / "data"


def tiny_loaders(n=24, batch_size=8, seed=0):
    """Float images in [0, 1] shaped as ToTensor gives them (N×1×28×28), in a fixed order."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 1, 28, 28, generator=generator)
    labels = torch.randint(0, 10, (n,), generator=generator)
    dataset = TensorDataset(images, labels)
    return DataLoader(dataset, batch_size), DataLoader(dataset, batch_size)


def hand_loop(net, loader, lr):
    """The text's epoch written out: zero the gradients, forward, cross-entropy, backward, step."""
    optimizer, loss_fn = torch.optim.SGD(net.parameters(), lr=lr), nn.CrossEntropyLoss()
    loss_sum = correct = 0.0
    for X, y in loader:
        optimizer.zero_grad()
        y_hat = net(X)
        loss = loss_fn(y_hat, y)
        loss.backward()
        optimizer.step()
        loss_sum += loss.item() * len(y)
        correct += (y_hat.argmax(dim=1) == y).sum().item()
    return loss_sum / len(loader.dataset), correct / len(loader.dataset)


def test_it_reaches_the_weights_of_the_hand_written_loop():
    train_iter, test_iter = tiny_loaders()
    torch.manual_seed(0)
    net = init_xavier(lenet())
    by_hand = copy.deepcopy(net)
    history, _ = train_text_loop(net, train_iter, test_iter, num_epochs=2, lr=0.9, init=False)
    for epoch in range(2):
        loss, train_acc = hand_loop(by_hand, train_iter, lr=0.9)
        assert history[epoch]["loss"] == pytest.approx(loss, rel=1e-5)
        assert history[epoch]["train_acc"] == pytest.approx(train_acc)
    for a, b in zip(net.parameters(), by_hand.parameters()):
        torch.testing.assert_close(a, b)
    assert history[-1]["test_acc"] == pytest.approx(evaluate_accuracy_gpu(by_hand, test_iter, "cpu"))


def test_by_default_it_draws_fresh_xavier_weights_as_train_ch6_does():
    train_iter, test_iter = tiny_loaders()
    net = lenet()
    expected = copy.deepcopy(net)
    torch.manual_seed(5)
    init_xavier(expected)
    torch.manual_seed(5)
    train_text_loop(net, train_iter, test_iter, num_epochs=1, lr=0.0)  # lr 0: the weights stay as drawn
    for a, b in zip(net.parameters(), expected.parameters()):
        torch.testing.assert_close(a, b)


def test_init_false_trains_the_weights_the_network_has():
    train_iter, test_iter = tiny_loaders()
    torch.manual_seed(1)
    net = init_xavier(lenet())
    start = copy.deepcopy(net)
    torch.manual_seed(2)  # a fresh init would draw other weights from this seed
    train_text_loop(net, train_iter, test_iter, num_epochs=1, lr=0.0, init=False)
    for a, b in zip(net.parameters(), start.parameters()):
        assert torch.equal(a, b)


def test_it_reports_every_epoch_and_times_only_the_steps():
    train_iter, test_iter = tiny_loaders()
    seen = []
    history, seconds = train_text_loop(lenet(), train_iter, test_iter, num_epochs=3, lr=0.1, on_epoch=seen.append)
    assert [h["epoch"] for h in history] == [1, 2, 3] and seen == history
    assert all(set(h) == {"epoch", "loss", "train_acc", "test_acc"} for h in history)
    assert all(0 <= h[key] <= 1 for h in history for key in ("train_acc", "test_acc"))
    assert seconds > 0


def test_the_loaders_are_d2ls_batches_of_totensor_images():
    if not (DATA / "FashionMNIST" / "raw").is_dir():
        pytest.skip("Fashion-MNIST is not prepared: run make data")
    train_iter, test_iter = text_loaders(DATA, batch_size=256, workers=0)
    X, y = next(iter(train_iter))
    assert X.shape == (256, 1, 28, 28) and X.dtype == torch.float32 and y.shape == (256,)
    assert 0 <= X.min() and X.max() <= 1
    assert len(train_iter.dataset) == 60000 and len(test_iter.dataset) == 10000
    # the test set is read in the same order every time
    first, again = next(iter(test_iter))[1], next(iter(test_iter))[1]
    assert torch.equal(first, again)
