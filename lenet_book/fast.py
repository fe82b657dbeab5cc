"""The book's fast training path for LeNet-5 (chapter 4, "Making LeNet train fast").

Same recipe as d2l's ``train_ch6`` (Xavier-uniform init, SGD lr 0.9, batch 256, cross-entropy,
reshuffled every epoch, last partial batch kept), but the whole data set is one uint8 tensor on
the device and a batch is a slice of a shuffled index: no per-image PIL/ToTensor work, no
DataLoader, no worker processes. On a GPU, ``cuda_graph=True`` records one whole epoch as a
CUDA graph and replays it, so the CPU launches one graph per epoch instead of thousands of
small kernels.

The chapter shows these functions cell by cell; ``tests/test_fast.py`` checks that the
chapter's copies are these ones.
"""

from __future__ import annotations

import time

import torch
import torchvision
from torch import nn

from lenet_book.data import ensure_fashion_mnist


def lenet():
    """LeNet-5 exactly as d2l section 7.6 writes it."""
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(),
        nn.Linear(120, 84), nn.Sigmoid(),
        nn.Linear(84, 10))


def init_xavier(net):
    """Xavier-uniform weights for every linear and convolutional layer, as train_ch6 does."""
    for m in net.modules():
        if type(m) in (nn.Linear, nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)
    return net


def load_fashion_mnist_tensors(root="../data", device="cpu"):
    """Fashion-MNIST as ((train images, train labels), (test images, test labels)) on ``device``.

    Images stay uint8, N×28×28 (47 MB for the training set); ``to_float`` converts a batch.
    """
    ensure_fashion_mnist(root)
    splits = []
    for train in (True, False):
        dataset = torchvision.datasets.FashionMNIST(root=str(root), train=train)
        splits.append((dataset.data.to(device), dataset.targets.to(device)))
    return tuple(splits)


def to_float(images):
    """uint8 N×28×28 → float N×1×28×28 in [0, 1], the same numbers as ToTensor gives."""
    return images.unsqueeze(1).float().div_(255)


def shuffled_batches(num_examples, batch_size, generator):
    """One epoch of index batches: a fresh permutation split into slices; the last may be short."""
    perm = torch.randperm(num_examples, generator=generator, device=generator.device)
    return perm.split(batch_size)


def train_step(net, optimizer, loss_fn, images, labels, idx, amp_dtype=None):
    """One SGD step on the batch ``idx``; returns (summed loss, correct predictions) as tensors.

    With ``amp_dtype`` (e.g. torch.bfloat16) the forward pass runs under autocast.
    """
    X, y = to_float(images[idx]), labels[idx]
    # cache_enabled=False: autocast's weight cache must not outlive a CUDA graph's recording
    with torch.autocast(X.device.type, dtype=amp_dtype, enabled=amp_dtype is not None, cache_enabled=False):
        y_hat = net(X)
        loss = loss_fn(y_hat, y)
    optimizer.zero_grad(set_to_none=False)
    loss.backward()
    optimizer.step()
    return loss.detach() * y.numel(), (y_hat.argmax(dim=1) == y).sum()


def evaluate(net, images, labels, batch_size=2500):
    """Accuracy over a whole split, in a few large batches, without gradients."""
    net.eval()
    with torch.no_grad():
        correct = sum((net(to_float(images[i:i + batch_size])).argmax(dim=1)
                       == labels[i:i + batch_size]).sum() for i in range(0, len(labels), batch_size))
    return correct.item() / len(labels)


class EpochGraph:
    """One training epoch recorded as a CUDA graph: refill the index, replay, read the sums.

    Every step of the epoch is recorded with its slice of a static index tensor, so a replay runs
    all of them without the CPU in the loop. Recording runs the steps once, so warm-up and
    recording happen on a copy of the weights that is put back afterwards.
    """

    def __init__(self, net, optimizer, loss_fn, images, labels, batch_size, amp_dtype=None):
        device = images.device
        self.index = torch.arange(len(labels), device=device)
        self.loss_sum = torch.zeros((), device=device)
        self.correct = torch.zeros((), device=device, dtype=torch.int64)
        start = [p.detach().clone() for p in net.parameters()]

        def epoch():
            self.loss_sum.zero_()
            self.correct.zero_()
            for idx in self.index.split(batch_size):
                loss_sum, correct = train_step(net, optimizer, loss_fn, images, labels, idx, amp_dtype)
                self.loss_sum += loss_sum
                self.correct += correct

        net.train()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up: allocates .grad, picks kernels
            for idx in self.index[:3 * batch_size].split(batch_size):
                train_step(net, optimizer, loss_fn, images, labels, idx, amp_dtype)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            epoch()
        with torch.no_grad():  # undo what warm-up and recording did to the weights
            for p, p0 in zip(net.parameters(), start):
                p.copy_(p0)

    def run(self, order):
        self.index.copy_(order)
        self.graph.replay()
        return self.loss_sum, self.correct


def train_fast(net, train_data, test_data, num_epochs=10, lr=0.9, batch_size=256, seed=0,
               on_epoch=None, cuda_graph=False, amp_dtype=None, channels_last=False, compile=False):
    """Train ``net`` with the recipe of train_ch6 on tensors already on the device.

    Returns a list with one dict per epoch (loss, train_acc, test_acc) and the training time in
    seconds (the steps only, as train_ch6 times them: evaluation is left out). ``on_epoch``, if
    given, is called with each epoch's dict, e.g. to plot or print progress. The other options
    are the speed-ups that chapter 4 measures.
    """
    images, labels = train_data
    device = images.device
    net.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator(device=device).manual_seed(seed)
    model = torch.compile(net) if compile else net
    graph = EpochGraph(model, optimizer, loss_fn, images, labels, batch_size, amp_dtype) if cuda_graph else None
    history, seconds = [], 0.0
    for epoch in range(num_epochs):
        synchronize(device)
        start = time.perf_counter()
        net.train()
        if graph:
            loss_sum, correct = graph.run(torch.randperm(len(labels), generator=generator, device=device))
        else:
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device, dtype=torch.int64)
            for idx in shuffled_batches(len(labels), batch_size, generator):
                step_loss, step_correct = train_step(model, optimizer, loss_fn, images, labels, idx, amp_dtype)
                loss_sum += step_loss
                correct += step_correct
        synchronize(device)
        seconds += time.perf_counter() - start
        history.append({"epoch": epoch + 1, "loss": loss_sum.item() / len(labels),
                        "train_acc": correct.item() / len(labels),
                        "test_acc": evaluate(model, *test_data)})
        if on_epoch:
            on_epoch(history[-1])
    return history, seconds


def synchronize(device):
    """Wait for the device to finish, so that wall-clock timers measure the work."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
