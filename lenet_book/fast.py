"""The book's fast data path for LeNet-5 (chapter 4, "Making LeNet train fast").

Same recipe as d2l's ``train_ch6`` (Xavier-uniform init, SGD lr 0.9, batch 256, cross-entropy,
reshuffled every epoch, last partial batch kept), but the whole data set is one uint8 tensor on
the device and a batch is a slice of a shuffled index: no per-image PIL/ToTensor work, no
DataLoader, no worker processes. The training loop itself is ``lenet_book.train.train``;
``train_fast`` is that loop with the text's recipe, scored on the test set after every epoch as
the text's loop is. On a GPU, ``cuda_graph=True`` records one whole epoch as a CUDA graph and
replays it, so the CPU launches one graph per epoch instead of thousands of small kernels.
"""

from __future__ import annotations

import torchvision

from lenet_book.checks import (
    at_the_door,
    check_device,
    check_no_device_given,
    check_pair,
    check_split,
)
from lenet_book.data import ensure_fashion_mnist
from lenet_book.device import synchronize  # noqa: F401  (chapters call fast.synchronize)
from lenet_book.models import init_xavier, lenet  # noqa: F401  (chapters build the net from here)
from lenet_book.train import (  # noqa: F401  (the chapters call them as fast.*)
    EpochGraph,
    evaluate,
    shuffled_batches,
    to_float,
    train,
    train_step,
)


def load_fashion_mnist_tensors(root="../data", device="cpu"):
    """Fashion-MNIST as ((train images, train labels), (test images, test labels)) on ``device``.

    Images stay uint8, N×28×28: 47 MB for the 60,000 training images, 8 MB for the 10,000 test
    images. ``to_float`` converts a batch.
    """
    check_device(device)  # a device torch knows and this machine has (lenet_book.checks)
    ensure_fashion_mnist(root)
    splits = []
    for is_train in (True, False):
        dataset = torchvision.datasets.FashionMNIST(root=str(root), train=is_train)
        splits.append((dataset.data.to(device), dataset.targets.to(device)))
    return tuple(splits)


def train_fast(net, train_data, test_data, num_epochs=10, lr=0.9, batch_size=256, seed=0,
               on_epoch=None, cuda_graph=False, amp_dtype=None, channels_last=False, compile=False):
    """The text's recipe on tensors already on the device: ``train`` scored on the test set.

    Returns one dict per epoch (loss, train_acc, test_acc) and the seconds of training steps.
    The options are the speed-ups that chapter 4 measures.
    """
    return train(net, train_data, {"test": test_data}, num_epochs=num_epochs, lr=lr,
                 batch_size=batch_size, seed=seed, on_epoch=on_epoch, cuda_graph=cuda_graph,
                 amp_dtype=amp_dtype, channels_last=channels_last, compile=compile)


def _check_train_fast(net, train_data, test_data, *args, **kwargs):
    check_no_device_given(train_fast, (net, train_data, test_data, *args), kwargs)
    check_pair("test_data", test_data)  # named as the caller wrote it, not as train's eval set
    check_split("test_data", *test_data)


train_fast = at_the_door(train_fast, _check_train_fast)  # chapter 4 shows it as written


def _check_load(root="../data", device="cpu"):
    if device is None:  # check_device's None (leave tensors where they are) means nothing here
        raise TypeError("device must be the device to load the data onto, e.g. 'cpu' or 'cuda' "
                        "(lenet_book.device.try_device() picks the best one), got None")


load_fashion_mnist_tensors = at_the_door(load_fashion_mnist_tensors, _check_load)  # shown too
