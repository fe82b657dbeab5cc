"""The text's training loop (``train_ch6`` of d2l's pre-1.0 edition, section 6.6) without its plot.

Chapter 3 shows it with ``d2l.Animator``; here it reports what it would have plotted, so that
``benchmarks/train_speed.py`` can time it beside the fast path in one process.
"""

from __future__ import annotations

import os
import time

import torch
import torchvision
from torch import nn
from torchvision import transforms

from lenet_book.data import ensure_fashion_mnist
from lenet_book.device import synchronize
from lenet_book.models import init_xavier


def text_loaders(root="../data", batch_size=256, workers=None):
    """``d2l.load_data_fashion_mnist(batch_size)`` with the data root and worker count as arguments.

    d2l starts 4 workers; by default this starts at most as many as the machine has cores.
    """
    ensure_fashion_mnist(root)
    workers = min(4, os.cpu_count() or 1) if workers is None else workers
    to_tensor = transforms.ToTensor()
    train = torchvision.datasets.FashionMNIST(root=str(root), train=True, transform=to_tensor)
    test = torchvision.datasets.FashionMNIST(root=str(root), train=False, transform=to_tensor)
    return (torch.utils.data.DataLoader(train, batch_size, shuffle=True, num_workers=workers),
            torch.utils.data.DataLoader(test, batch_size, shuffle=False, num_workers=workers))


def evaluate_accuracy_gpu(net, data_iter, device):
    """The text's evaluator: accuracy over a DataLoader, batch by batch on ``device``."""
    net.eval()
    correct = total = 0
    with torch.no_grad():
        for X, y in data_iter:
            X, y = X.to(device), y.to(device)
            correct += (net(X).argmax(dim=1) == y).sum().item()
            total += y.numel()
    return correct / total


def train_text_loop(net, train_iter, test_iter, num_epochs=10, lr=0.9, device="cpu", on_epoch=None,
                    init=True):
    """train_ch6: Xavier init, SGD, cross-entropy, a timer around the steps only.

    Returns one dict per epoch (loss, train_acc, test_acc) and the seconds the timer measured:
    like the text, it leaves out the time spent waiting for the DataLoader and evaluating.
    ``init=True`` draws fresh Xavier weights first, as train_ch6 does; ``init=False`` trains
    the weights ``net`` already has, so that another loop can start from the same ones.
    """
    if init:
        init_xavier(net)
    net.to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    history, seconds = [], 0.0
    for epoch in range(num_epochs):
        net.train()
        loss_sum = correct = count = 0.0
        for X, y in train_iter:
            start = time.perf_counter()
            optimizer.zero_grad()
            X, y = X.to(device), y.to(device)
            y_hat = net(X)
            loss = loss_fn(y_hat, y)
            loss.backward()
            optimizer.step()
            with torch.no_grad():  # .item() waits for the GPU, as d2l's Accumulator does
                loss_sum += loss.item() * y.numel()
                correct += (y_hat.argmax(dim=1) == y).sum().item()
                count += y.numel()
            synchronize(device)
            seconds += time.perf_counter() - start
        history.append({"epoch": epoch + 1, "loss": loss_sum / count, "train_acc": correct / count,
                        "test_acc": evaluate_accuracy_gpu(net, test_iter, device)})
        if on_epoch:
            on_epoch(history[-1])
    return history, seconds
