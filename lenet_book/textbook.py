"""The text's training loop (``train_ch6`` of d2l's pre-1.0 edition, section 6.6) without its plot.

Chapter 3 shows it with ``d2l.Animator``; here it reports what it would have plotted, so that
``benchmarks/train_speed.py`` can time it beside the fast path in one process.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import sys
import time

import torch
import torchvision
from torch import nn
from torchvision import transforms

from lenet_book._grammar import _a_kind
from lenet_book.checks import (
    _batch_of_one,
    _check_finite_weights,
    _check_fits,
    _check_grad_mode,
    _check_softmax_output,
    _check_trainable,
    _check_values,
    _input_problem,
    _text_outputs_checked,
    at_the_door,
    buffers_kept,
    check_device,
    check_finite_loss,
    check_flags,
    check_function,
    check_layers_built,
    check_network,
    check_number,
    check_whole,
    modes_kept,
)
from lenet_book.data import ensure_fashion_mnist
from lenet_book.device import synchronize
from lenet_book.models import _XAVIER_LAYERS, _check_weight_drawable, init_xavier


def text_loaders(root="../data", batch_size=256, workers=None):
    """``d2l.load_data_fashion_mnist(batch_size)`` with the data root and worker count as arguments.

    d2l starts 4 workers; by default this starts at most as many as the machine has cores.
    """
    ensure_fashion_mnist(root)
    workers = min(4, os.cpu_count() or 1) if workers is None else int(workers)
    batch_size = int(batch_size)  # a numpy integer: torch's BatchSampler takes int only
    to_tensor = transforms.ToTensor()
    train = torchvision.datasets.FashionMNIST(root=str(root), train=True, transform=to_tensor)
    test = torchvision.datasets.FashionMNIST(root=str(root), train=False, transform=to_tensor)
    return (torch.utils.data.DataLoader(train, batch_size, shuffle=True, num_workers=workers),
            torch.utils.data.DataLoader(test, batch_size, shuffle=False, num_workers=workers))


def evaluate_accuracy_gpu(net, data_iter, device=None):
    """The text's evaluator: accuracy over a DataLoader, batch by batch on ``device`` (by
    default, as in the text, the device of the network's parameters)."""
    net.eval()
    if device is None:
        device = next((p.device for p in net.parameters()), torch.device("cpu"))
    correct = total = 0
    with torch.no_grad():
        for number, batch in enumerate(_named_batches("evaluate_accuracy_gpu: data_iter",
                                                       data_iter), 1):
            if not total:
                _check_text_batch("evaluate_accuracy_gpu: data_iter", batch, net)
                first = (batch[0].shape[1:], batch[0].dtype)
            else:  # every batch counts in the accuracy: checked as the training's batches are
                _check_later_batch(f"evaluate_accuracy_gpu: batch {number} of data_iter", batch,
                                   net, first, then="")
            X, y = batch
            X, y = X.to(device), y.to(device)
            correct += (net(X).argmax(dim=1) == y).sum().item()
            total += y.numel()
    if not total:
        raise ValueError("evaluate_accuracy_gpu: data_iter gave no batches (an empty data set, "
                         "or an iterator already used up); pass the DataLoader itself")
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
    batch_norm = _has_batch_norm(net)
    for epoch in range(num_epochs):
        net.train()
        loss_sum = correct = count = 0.0
        step_losses = []  # to name the step where a diverging training went wrong
        for number, batch in enumerate(train_iter, 1):
            if not epoch and not count:
                _check_text_batch("train_text_loop: train_iter", batch, net, train_on=device)
                first = (batch[0].shape[1:], batch[0].dtype)
            else:  # cheaply, before its step: labels 0-9, images as the first batch's
                _check_later_batch(f"train_text_loop: in epoch {epoch + 1}, batch {number} of "
                                   "train_iter", batch, net, first, train_on=device)
            X, y = batch
            if batch_norm and len(X) == 1:  # a loader whose batch sizes the door could not see
                raise ValueError(f"train_text_loop: in epoch {epoch + 1}, after {int(count)} "
                                 f"images, a batch holds one image, {_ONE_IMAGE}; the batches "
                                 "before it have trained the network")
            start = time.perf_counter()
            optimizer.zero_grad()
            X, y = X.to(device), y.to(device)
            y_hat = net(X)
            loss = loss_fn(y_hat, y)
            loss.backward()
            optimizer.step()
            with torch.no_grad():  # .item() waits for the GPU, as d2l's Accumulator does
                step_losses.append(loss.detach())
                loss_sum += loss.item() * y.numel()
                correct += (y_hat.argmax(dim=1) == y).sum().item()
                count += y.numel()
            synchronize(device)
            seconds += time.perf_counter() - start
        if not count:
            raise ValueError(f"train_text_loop: train_iter gave no batches in epoch {epoch + 1} "
                             "(an empty data set, or a loader that is used up after one pass)")
        record = {"epoch": epoch + 1, "loss": loss_sum / count, "train_acc": correct / count}
        check_finite_loss(record, step_losses, optimizer)  # a diverged training stops here
        history.append({**record, "test_acc": evaluate_accuracy_gpu(net, test_iter, device)})
        if on_epoch:
            _keeping_the_record(on_epoch, history[-1])
    return history, seconds


# The text's loop as d2l writes it; the checks below run at the door (and on the first batch)


def _check_text_batch(name, batch, net=None, train_on=None):
    """A DataLoader's batch as the text's loop takes it: a pair of float images N×1×H×W in
    [0, 1] (ToTensor; or normalised by transforms.Normalize) and int64 labels 0-9, one per
    image; with ``net``, images of the dtype and size the network takes; with ``train_on`` (the
    device a training step moves it to), not inference tensors."""
    if isinstance(batch, (str, bytes, torch.Tensor)) or not isinstance(batch, (tuple, list)) \
            or len(batch) != 2:
        got = (f"{len(batch)} items" if isinstance(batch, (tuple, list))
               else f"{_a_kind(batch)}")
        raise TypeError(f"{name}: batches must be pairs (images, labels), as a DataLoader of "
                        f"FashionMNIST gives them, got {got}; e.g. the loaders of text_loaders()")
    X, y = batch
    if not (isinstance(X, torch.Tensor) and isinstance(y, torch.Tensor)):
        raise TypeError(f"{name}: batches must be (images, labels), two tensors, got "
                        f"({type(X).__name__}, {type(y).__name__})")
    if not X.is_floating_point() or X.dim() != 4 or y.dtype != torch.int64 or y.dim() != 1:
        raise TypeError(f"{name}: batches must be (images, labels): float images N×1×H×W in "
                        f"[0, 1] (transforms.ToTensor()) and int64 labels, got images "
                        f"{X.dtype} {tuple(X.shape)} and labels {y.dtype} {tuple(y.shape)}")
    if len(y) != len(X):
        raise ValueError(f"{name}: one label per image: {len(X)} images, {len(y)} labels")
    _check_not_inference(name, X, y, train_on)
    if net is not None:
        _check_batch_fits_net(name, X, net)
    if X.device.type == "cpu" and len(X):
        _check_image_values(name, X)
        low, high = (value.item() for value in torch.aminmax(y)) if len(y) else (0, 0)
        if low < 0 or high > 9:
            raise ValueError(f"{name}: the labels must be class numbers 0-9, found "
                             f"{low if low < 0 else high}")


def _check_later_batch(name, batch, net, first,
                       then="; the batches before it have trained the network: fix the data set "
                            "and train again", train_on=None):
    """A batch after the first, checked as it comes, before its step: a pair of tensors, images
    of the first batch's size and dtype (another size is checked against the network once),
    int64 labels 0-9, one per image (their range read on the CPU only: on a GPU reading them
    would wait for it). ``then`` ends the message: what the batches before it have done."""
    X, y = batch if isinstance(batch, (tuple, list)) and len(batch) == 2 else (None, None)
    try:
        if not (isinstance(X, torch.Tensor) and isinstance(y, torch.Tensor)
                and (X.shape[1:], X.dtype) == first
                and y.dtype == torch.int64 and y.dim() == 1 and len(y) == len(X)):
            _check_text_batch(name, batch, net, train_on)  # in the first batch's words
        else:
            _check_not_inference(name, X, y, train_on)
            if y.device.type == "cpu" and len(y):
                low, high = (value.item() for value in torch.aminmax(y))
                if low < 0 or high > 9:
                    raise ValueError(f"{name}: the labels must be class numbers 0-9, found "
                                     f"{low if low < 0 else high}")
    except (TypeError, ValueError) as error:
        raise type(error)(f"{error}{then}") from None


def _check_not_inference(name, X, y, train_on):
    """A training step needs gradients through the batch: tensors made inside
    torch.inference_mode() cannot take part (moving them to another device makes ordinary
    copies, which can)."""
    if train_on is None or torch.is_inference_mode_enabled():
        return
    made = [what for what, t in (("images", X), ("labels", y))
            if t.is_inference() and t.to(train_on) is t]
    if made:
        raise ValueError(f"{name}: the batch's {' and '.join(made)} were made inside "
                         "torch.inference_mode(), so they are inference tensors, which a "
                         "training step cannot use; make them outside that block, or copy them "
                         "outside it: (X.clone(), y.clone())")


def _check_batch_fits_net(name, X, net):
    """The loop feeds the batches to the network as they come: the same float dtype as its
    weights, and a size (C×H×W) it takes."""
    dtype = next((p.dtype for p in net.parameters() if p.is_floating_point()), None)
    if dtype is not None and X.dtype != dtype and dtype != torch.float32:
        # the network is the odd one out: ToTensor's images are float32, as train's batches are
        images, weights = (str(t).replace("torch.", "") for t in (X.dtype, dtype))
        raise TypeError(f"{name}: the images are {images}, the network {weights}: the loop "
                        "feeds them to it as they come, and the network's weights are "
                        f"{weights}, not the float32 that transforms.ToTensor() gives: convert "
                        "it with net.float()"
                        + ("" if X.dtype == torch.float32 else
                           ", and make the data set give float32 images (.float() in its "
                           "transform)"))
    if dtype is not None and X.dtype != dtype:
        raise TypeError(f"{name}: the images are {str(X.dtype).replace('torch.', '')}, the "
                        f"network {str(dtype).replace('torch.', '')}: the loop feeds them to it "
                        f"as they come; make the data set give {str(dtype).replace('torch.', '')}"
                        " images: transforms.ToTensor() gives float32 (e.g. a TensorDataset of "
                        "images.float(), or .float() in the data set's transform)")
    try:
        _check_fits(name, net, tuple(X.shape[1:]), count=len(X))
    except ValueError as error:
        raise ValueError(f"{error}; the loop feeds the loader's batches to the network as they "
                         "are, and the text's network takes Fashion-MNIST's 1×28×28 images: "
                         "give it those (e.g. the loaders of text_loaders())") from None


_NORMALISED = 10.0  # transforms.Normalize with a data set's mean and std gives a few units


def _check_image_values(name, X):
    """ToTensor's [0, 1], or images normalised by transforms.Normalize (a negative minimum and
    a few units either side of 0); not pixels 0-255 as floats."""
    low, high = (value.item() for value in torch.aminmax(X))
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"{name}: the images hold NaN or infinite values (from {low:g} to "
                         f"{high:g}); check the data set's transform")
    if 0.0 <= low and high <= 1.0:
        return  # transforms.ToTensor()
    if low < 0.0 and max(-low, high) <= _NORMALISED:
        return  # normalised: transforms.Normalize(mean, std) after ToTensor()
    if low >= 0.0:
        raise ValueError(f"{name}: the images must be in [0, 1], as transforms.ToTensor() gives "
                         f"them; these go from {low:g} to {high:g}"
                         + ("; they look like pixels 0-255 as floats: add ToTensor() to the data "
                            "set's transform, or divide by 255" if high > _NORMALISED else
                            "; scale them into [0, 1], or normalise them with "
                            "transforms.Normalize(mean, std)"))
    raise ValueError(f"{name}: the images must be in [0, 1], as transforms.ToTensor() gives them, "
                     f"or normalised (transforms.Normalize with the data set's mean and std gives "
                     f"a few units either side of 0); these go from {low:g} to {high:g}: "
                     "normalise images in [0, 1], e.g. transforms.Compose([transforms.ToTensor(), "
                     "transforms.Normalize((0.2860,), (0.3530,))]) for Fashion-MNIST")


def _named_batches(name, loader):
    """The loader's batches; a data set without ToTensor (PIL images, which the DataLoader
    cannot stack into a batch) is named at the first."""
    batches = iter(loader)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except TypeError as error:
            _name_pictures(name, error)
            raise
        yield batch


def _name_pictures(name, error):
    if "PIL" in str(error):
        raise TypeError(f"{name}: the data set gives PIL images, which a DataLoader cannot stack "
                        "into a batch: add transform=transforms.ToTensor() to it (e.g. "
                        "torchvision.datasets.FashionMNIST(root, train=True, transform="
                        "transforms.ToTensor())), or use the loaders of text_loaders()") from None


@contextlib.contextmanager
def _random_state_kept(loader):
    """Puts back every random state that reading a batch draws from: torch's, the loader's and
    its sampler's generators, Python's and numpy's (random transforms of a data set), so that
    the training that follows shuffles and draws as without the look."""
    generators = {id(g): g for g in (getattr(loader, "generator", None),
                                     getattr(getattr(loader, "sampler", None), "generator", None),
                                     getattr(getattr(getattr(loader, "batch_sampler", None),
                                                     "sampler", None), "generator", None))
                  if isinstance(g, torch.Generator)}
    states = [(g, g.get_state()) for g in generators.values()]
    python = random.getstate()
    numpy = sys.modules.get("numpy")
    numpy_state = numpy.random.get_state() if numpy is not None else None
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        for g, state in states:
            g.set_state(state)
        random.setstate(python)
        if numpy_state is not None:
            numpy.random.set_state(numpy_state)


def _first_batch(name, loader):
    """The first batch ``loader`` gives (None if it gives none), read without changing what the
    training draws. A DataLoader of a map-style data set: its first indices fetched in this
    process, as a worker would (no workers started for one batch)."""
    with _random_state_kept(loader):
        try:
            if isinstance(loader, torch.utils.data.DataLoader) \
                    and not isinstance(loader.dataset, torch.utils.data.IterableDataset):
                return _fetch_first(loader)
            return next(iter(loader), None)
        except TypeError as error:
            _name_pictures(name, error)
            raise


def _fetch_first(loader):
    if loader.batch_sampler is None:  # batch_size=None: one item at a time, no collation
        index = next(iter(loader.sampler), None)
        return None if index is None else loader.collate_fn(loader.dataset[index])
    indices = next(iter(loader.batch_sampler), None)
    if indices is None:
        return None
    many = getattr(loader.dataset, "__getitems__", None)
    items = many(indices) if many else [loader.dataset[i] for i in indices]
    return loader.collate_fn(items)


def _keeping_the_record(on_epoch, record):
    """As train does: on_epoch may add to the epoch's dict; what it removes or changes of the
    loop's own entries is put back, so the history stays whole."""
    own = dict(record)
    on_epoch(record)
    record.update(own)


_ONE_IMAGE = ("and batch normalisation cannot normalise a batch of one (in training it "
              "divides by the batch's spread); give the DataLoader a batch size that leaves no "
              "single image over, or drop_last=True")


def _has_batch_norm(net):
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())


def _check_batches_of_one(net, train_iter):
    """Before training, as train refuses it: a batch-norm network and a loader that gives a
    batch of one image (the loop checks each batch of the loaders whose sizes are not known)."""
    if not _has_batch_norm(net):
        return
    if isinstance(train_iter, torch.utils.data.DataLoader):
        batch_size = train_iter.batch_size
        if batch_size is None or train_iter.drop_last:
            return  # batches made by a batch_sampler: checked one by one in the loop
        try:
            n = len(train_iter.sampler)
        except TypeError:  # an iterable data set of unknown length: checked in the loop
            return
        if n and (batch_size == 1 or n % batch_size == 1):
            where = ("every batch holds one image" if batch_size == 1 or n == 1
                     else "the last batch of every epoch holds one image")
            other = batch_size + 1 if n % (batch_size + 1) != 1 else batch_size + 2
            raise ValueError(f"train_text_loop: with {n} images in batches of {batch_size}, "
                             f"{where}, {_ONE_IMAGE}; e.g. batch_size={other}"
                             + (" (and at least 2 images)" if n < 2 else ""))
    elif isinstance(train_iter, (list, tuple)):  # batches given as they are
        for number, batch in enumerate(train_iter):
            if (isinstance(batch, (tuple, list)) and len(batch) == 2
                    and isinstance(batch[0], torch.Tensor) and batch[0].dim() > 0
                    and len(batch[0]) == 1):
                raise ValueError(f"train_text_loop: batch {number} of train_iter holds one "
                                 f"image, {_ONE_IMAGE}")


def _check_loader(name, loader):
    """A DataLoader (or another iterable of batches that can be read once per epoch), not
    empty."""
    if loader is None or isinstance(loader, (str, bytes, torch.Tensor)) \
            or not hasattr(loader, "__iter__"):
        raise TypeError(f"{name} must be a DataLoader of (images, labels) batches, e.g. the "
                        f"first of text_loaders(), got {loader!r:.60} ({_a_kind(loader)})")
    if hasattr(loader, "__next__"):  # iter() on a DataLoader would draw from torch's generator
        raise TypeError(f"{name} is an iterator, used up after one pass: pass the DataLoader "
                        "itself, not iter(loader)")
    try:
        empty = len(loader) == 0
    except TypeError:  # no len(): an iterable of unknown length, named at its first pass
        empty = False
    if empty:
        raise ValueError(_why_no_batches(name, loader))


def _why_no_batches(name, loader):
    """What to do about a loader of no batches: an empty data set, or one smaller than a batch
    whose only, short batch drop_last=True drops."""
    try:
        size, batch_size = len(loader.dataset), loader.batch_size
    except (AttributeError, TypeError):  # not a DataLoader over a sized data set
        size = batch_size = None
    if getattr(loader, "drop_last", False) and size and batch_size and size < batch_size:
        return (f"{name} holds no batches: its {size} images are fewer than batch_size="
                f"{batch_size}, and drop_last=True drops that only, short batch: use a "
                f"batch_size of at most {size}, or drop_last=False")
    return (f"{name} holds no batches (an empty data set?): give a DataLoader of at least one "
            "batch, e.g. the first of text_loaders()")


def _check_reiterable(name, loader):
    """The loop reads ``loader`` once per epoch (and the door reads its first batch): an
    iterable whose ``__iter__`` returns the same iterator each time (one made once, in its
    ``__init__``) is used up after one pass. A DataLoader, a list or a tuple starts afresh each
    time (``iter()`` on a DataLoader would draw from torch's generator: not called)."""
    if isinstance(loader, (torch.utils.data.DataLoader, list, tuple, range)):
        return
    with _random_state_kept(loader):
        try:
            once = iter(loader) is iter(loader)
        except TypeError as error:
            raise TypeError(f"{name} must be a DataLoader of (images, labels) batches, e.g. the "
                            f"first of text_loaders(); iter() on this {type(loader).__name__} "
                            f"fails: {error}") from None
    if once:
        raise TypeError(f"{name} gives the same iterator each time it is read (its __iter__ "
                        f"returns one iterator, made once), so it is used up after one pass, "
                        "but the loop reads it once per epoch and the first batch is read "
                        "before training: pass a DataLoader, or an iterable whose __iter__ "
                        "starts afresh each time (e.g. def __iter__(self): yield from "
                        "self.batches)")


def _loaders_batch_of_one(*loaders):
    """Where one of the loaders gives a batch of one image (said for _input_problem), False
    when none can, True when it cannot be told (not a DataLoader of a sized data set)."""
    for loader in loaders:
        batch_size = getattr(loader, "batch_size", None)
        try:
            n = len(loader.dataset)
        except (AttributeError, TypeError):
            return True
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1 \
                or not isinstance(getattr(loader, "sampler", None), (
                    torch.utils.data.SequentialSampler, torch.utils.data.RandomSampler)):
            return True  # batches of a sampler of one's own: their sizes cannot be told here
        if getattr(loader, "drop_last", False):  # the short last batch is dropped
            n -= n % batch_size
        where = n > 0 and _batch_of_one(n, batch_size, "each pass of the loader")
        if where:
            return where
    return False


def _check_text_net(name, net, *loaders):
    check_network(net, name)
    _check_values(net)
    if any(type(m).__name__ == "RBF" for m in net.modules()):
        raise ValueError(f"{name}: this network ends in RBF penalties (the 1998 LeNet-5, chapter "
                         "5), but the text's loop trains with cross-entropy on scores and counts "
                         "the largest as the prediction; train it with recipes.build("
                         "recipes.ORIGINAL) and lenet_book.train.train")
    problem = _input_problem(net, 28, 28, batch_of_one=_loaders_batch_of_one(*loaders)
                             if loaders else True)
    if problem:
        raise ValueError(f"{name}: {problem}")


def _check_text_loaders(root="../data", batch_size=256, workers=None):
    check_whole("batch_size", batch_size)
    if workers is not None:
        check_whole("workers", workers, least=0)


def _check_not_a_device(name, value, place):
    """train_text_loop(net, train_iter, test_iter, 1, 'cpu'): d2l's argument order muddled, a
    device given where a number goes."""
    device = value if isinstance(value, torch.device) else None
    if isinstance(value, str):
        try:
            device = torch.device(value.strip())
        except RuntimeError:  # not a device name: check_number's words
            return
    if device is not None:
        raise TypeError(f"train_text_loop: {name} must be a number, got {value!r}, which is a "
                        f"device: the {place} argument is {name}, train_text_loop(net, "
                        "train_iter, test_iter, num_epochs, lr, device); e.g. train_text_loop("
                        f"net, train_iter, test_iter, 10, 0.9, {str(device)!r}), or write "
                        f"device={str(device)!r}")


def _check_not_a_tensor_pair(name, loader, fix):
    """(images, labels), two tensors, given where a loader of batches goes: iterating over it
    gives the whole images tensor as the first 'batch', whose words would not say so."""
    if (isinstance(loader, (tuple, list)) and len(loader) == 2
            and all(isinstance(t, torch.Tensor) and t.dim() >= 1 for t in loader)
            and len(loader[0]) == len(loader[1])):
        raise TypeError(f"{name} is one pair of tensors (images, labels), not a loader of "
                        f"batches: {fix}, or wrap them in a loader: DataLoader(TensorDataset("
                        "images, labels), 256) (from torch.utils.data), with float images "
                        "N×1×28×28 in [0, 1]")


def _check_evaluate_accuracy_gpu(net, data_iter, device=None):
    _check_not_a_tensor_pair("evaluate_accuracy_gpu: data_iter", data_iter,
                             "to score tensors, use lenet_book.train.evaluate(net, images, "
                             "labels) (uint8 images N×28×28)")
    _check_text_net("evaluate_accuracy_gpu: net", net, data_iter)
    _check_finite_weights("evaluate_accuracy_gpu", net)
    _check_loader("data_iter", data_iter)
    if device is not None:  # None: the network's device, as in the text
        check_device(device)


def _check_train_text_loop(net, train_iter, test_iter, num_epochs=10, lr=0.9, device="cpu",
                           on_epoch=None, init=True):
    _check_grad_mode("train_text_loop")  # not torch's words at the first backward
    for name, loader in (("train_iter", train_iter), ("test_iter", test_iter)):
        _check_not_a_tensor_pair(f"train_text_loop: {name}", loader,
                                 "to train on tensors, use lenet_book.train.train(net, "
                                 "(images, labels), {'test': (test_images, test_labels)}) "
                                 "(uint8 images N×28×28)")
    _check_text_net("train_text_loop: net", net, train_iter, test_iter)
    # values, trainable weights (their type is checked against the batches); lazy layers are
    # built below, by the first batch, once everything else is checked
    _check_trainable(net, lazy=True)
    _check_softmax_output(net, None)  # the loop's cross-entropy applies the softmax itself
    _check_loader("train_iter", train_iter)
    _check_loader("test_iter", test_iter)
    _check_reiterable("train_text_loop: train_iter", train_iter)
    _check_reiterable("train_text_loop: test_iter", test_iter)
    _check_batches_of_one(net, train_iter)
    _check_not_a_device("num_epochs", num_epochs, "4th")
    _check_not_a_device("lr", lr, "5th")
    check_whole("num_epochs", num_epochs)
    check_number("lr", lr, low_open=False)  # lr 0 (no change) is allowed: tests compare weights
    if device is None:
        raise TypeError("train_text_loop: device must be a device name such as 'cpu', got None")
    check_device(device)
    check_function("on_epoch", on_epoch)
    check_flags(init=init)
    if init:  # the body's init_xavier(net) would refuse a weight it cannot redraw, and say why
        for layer_name, layer in net.named_modules():
            if isinstance(layer, _XAVIER_LAYERS):
                try:
                    _check_weight_drawable(layer_name, layer, fix=(
                        "init=True redraws every weight with init_xavier, as train_ch6 does: "
                        "pass init=False to train the weights it has"))
                except ValueError as error:
                    raise ValueError(f"train_text_loop: {error}") from None
    redrawn = [m.weight for m in net.modules() if isinstance(m, _XAVIER_LAYERS)] if init else []
    _check_finite_weights("train_text_loop", net, redrawn)  # init_xavier keeps biases, statistics
    # what the loaders give, before a step (the test loader is otherwise read after an epoch)
    first = []
    for name, loader in (("train_text_loop: train_iter", train_iter),
                         ("train_text_loop: test_iter", test_iter)):
        batch = _first_batch(name, loader)
        if batch is not None:  # none: named in the loop
            _check_text_batch(name, batch, net, device if loader is train_iter else None)
        first.append(batch)
    _build_lazy_layers(net, first[0])  # last: a refused call leaves the network as it was


def _build_lazy_layers(net, batch):
    """Lazy layers (nn.LazyLinear, nn.LazyConv2d) get their weights at the network's first
    forward pass: one image of the first training batch, run at the door, builds them as
    running one batch through the network first would, their weights drawn from torch's random
    numbers by the layers' own initialisation (so a seeded run repeats). It runs in eval mode
    without gradients, so no dropout is drawn and batch norm's statistics stay as they are;
    ``init=True`` then draws Xavier weights for them too, ``init=False`` trains them as built."""
    if not any(isinstance(m, nn.modules.lazy.LazyModuleMixin) and m.has_uninitialized_params()
               for m in net.modules()):
        return
    if batch is None:  # no batch to build them with
        check_layers_built(net, "be trained")
    device = next(net.parameters()).device
    with modes_kept(net), buffers_kept(net), torch.no_grad():
        net.eval()(batch[0][:1].to(device))


text_loaders = at_the_door(text_loaders, _check_text_loaders)
evaluate_accuracy_gpu = at_the_door(evaluate_accuracy_gpu, _check_evaluate_accuracy_gpu)
# the first step's outputs, before its backward (a forward hook: no pass of its own)
train_text_loop = at_the_door(train_text_loop, _check_train_text_loop,
                              around=_text_outputs_checked)
