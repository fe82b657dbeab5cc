"""One trainer for the book's fast path: chapters 4, 5 and 6 and the seed study call ``train``.

The whole data set is one uint8 tensor on the device and a batch is a slice of a shuffled index
(chapter 4 explains why that is fast). The options cover what the chapters vary: the optimiser
and a learning-rate schedule stepped after every batch, the loss, a transform of each training
batch (augmentation, chapter 6), the prediction rule (the smallest RBF penalty, chapter 5) and
the speed-ups of chapter 4 (a CUDA graph of a whole epoch, autocast, channels-last). Chapter 3
keeps the text's own loop, ``train_ch6``; ``lenet_book.textbook`` is the benchmark's copy of it.

Choices are made on a validation split held out of the training set (``split_validation``);
the test set scores only the final models.
"""

from __future__ import annotations

import contextlib
import time

import torch
from torch import nn

from lenet_book.checks import (
    _brief,
    _built_once,
    _got,
    _is_flag,
    _step_outputs_checked,
    at_the_door,
    check_built,
    check_epoch_graph,
    check_evaluate,
    check_finite_loss,
    check_finite_weights,
    check_first_batch,
    check_function,
    check_pixels,
    check_scores,
    check_train_step,
    check_training,
    check_validation_split,
    check_whole,
    lr_written_noted,
    modes_kept,
)
from lenet_book.device import synchronize
from lenet_book.original import _check_not_rebound

VALIDATION_SIZE = 10_000
_VALIDATION_SIZE_PUBLISHED = VALIDATION_SIZE  # split_validation's default, bound at import


def to_float(images):
    """uint8 N×28×28 → float N×1×28×28 in [0, 1], the same numbers as ToTensor gives (chapter 4)."""
    check_pixels(images)  # uint8 only: images already in [0, 1] must not be divided again
    return images.unsqueeze(1).float().div_(255)


def split_validation(train_data, size=VALIDATION_SIZE):
    """(training, validation): the last ``size`` of the 60,000 training images are held out.

    A fixed slice, the same on every machine and torch version; its classes are balanced
    (955 to 1,050 images each).
    """
    images, labels = check_validation_split(train_data, size)  # lenet_book.checks
    if not 0 < size < len(labels):
        raise ValueError(f"validation size must be between 1 and {len(labels) - 1}, got {size}")
    return (images[:-size], labels[:-size]), (images[-size:], labels[-size:])


def shuffled_batches(num_examples, batch_size, generator):
    """One epoch of index batches: a fresh permutation split into slices; the last may be short."""
    perm = torch.randperm(num_examples, generator=generator, device=generator.device)
    return perm.split(batch_size)


def argmax(scores):
    """The usual prediction: the class with the largest score."""
    return scores.argmax(dim=1)


def _check_argmax(scores):
    """A batch of scores, one row per image (any number of classes; the kind and rank only: it
    runs every step, and inside CUDA graphs)."""
    if not isinstance(scores, torch.Tensor) or scores.dim() != 2:
        check_scores("argmax", scores)
    if scores.shape[1] == 0 or scores.dtype == torch.bool or scores.is_complex():
        raise ValueError(f"argmax: scores must be real numbers, at least one per class, got "
                         f"{scores.dtype} of shape {tuple(scores.shape)}; give the network's "
                         "output, e.g. argmax(net(X))")


# wrapped here, before the functions below take it as their default predict
argmax = at_the_door(argmax, _check_argmax)


def train_step(net, optimizer, loss_fn, X, y, amp_dtype=None, predict=argmax):
    """One step on the float batch ``X``; returns (summed loss, correct predictions) as tensors.

    With ``amp_dtype`` (e.g. torch.bfloat16) the forward pass runs under autocast.
    """
    # cache_enabled=False: autocast's weight cache must not outlive a CUDA graph's recording
    with torch.autocast(X.device.type, dtype=amp_dtype, enabled=amp_dtype is not None,
                        cache_enabled=False):
        scores = net(X)
        loss = loss_fn(scores, y)
    optimizer.zero_grad(set_to_none=False)
    loss.backward()
    optimizer.step()
    return loss.detach() * y.numel(), (predict(scores) == y).sum()


# The chapters show train_step, evaluate and train as written above; at_the_door (checks) checks
# their arguments before they run: a batch of 0-255 floats or label 10 given to train_step, the
# pair (images, labels) given to evaluate as one argument, train(..., epochs=5). The first step
# of a network and loss checks the outputs before the loss is taken (_step_outputs_checked): a
# network cut off from its weights, or one that ends in a softmax given to cross-entropy.
train_step = at_the_door(train_step, check_train_step, around=_step_outputs_checked)


def evaluate(net, images, labels, predict=argmax, batch_size=2500):
    """Accuracy over a whole split, in a few large batches, without gradients."""
    check_evaluate(net, images, labels, predict, batch_size)  # lenet_book.checks
    net.eval()
    with torch.no_grad():
        correct = sum((predict(net(to_float(images[i:i + batch_size])))
                       == labels[i:i + batch_size]).sum()
                      for i in range(0, len(labels), batch_size))
    return correct.item() / len(labels)


# checks the call itself (check_evaluate the arguments) and puts back the network's train/eval
# modes: a training step after evaluate must not run in eval mode
evaluate = at_the_door(evaluate, around=lambda bound: modes_kept(bound.arguments["net"]))


class EpochGraph:
    """One training epoch recorded as a CUDA graph: refill the index, replay, read the sums.

    Every step of the epoch is recorded with its slice of a static index tensor, so a replay runs
    all of them without the CPU in the loop. Recording runs the steps once, so warm-up and
    recording happen on a copy of the weights that is put back afterwards.
    """

    def __init__(self, net, optimizer, loss_fn, images, labels, batch_size, amp_dtype=None,
                 predict=argmax):
        device = images.device
        self.index = torch.arange(len(labels), device=device)
        self.loss_sum = torch.zeros((), device=device)
        self.correct = torch.zeros((), device=device, dtype=torch.int64)
        start = [p.detach().clone() for p in net.parameters()]

        def step(idx):
            return train_step(net, optimizer, loss_fn, to_float(images[idx]), labels[idx],
                              amp_dtype, predict)

        def epoch():
            self.loss_sum.zero_()
            self.correct.zero_()
            for idx in self.index.split(batch_size):
                loss_sum, correct = step(idx)
                self.loss_sum += loss_sum
                self.correct += correct

        net.train()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up: allocates .grad, picks kernels
            for idx in self.index[:3 * batch_size].split(batch_size):
                step(idx)
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


def train(net, train_data, eval_sets=None, *, num_epochs=10, batch_size=256, lr=0.9, optimizer=None,
          scheduler=None, loss_fn=None, batch_transform=None, predict=argmax, seed=0, on_epoch=None,
          cuda_graph=False, amp_dtype=None, channels_last=False, compile=False):
    """Train ``net`` on uint8 tensors already on the device; the defaults are the text's recipe.

    - ``eval_sets``: {name: (images, labels)}, scored after every epoch as ``<name>_acc``;
    - ``optimizer``: a function of the parameters that builds one (default: SGD with ``lr``);
    - ``scheduler``: a function of (optimizer, epochs, steps per epoch) that builds a
      learning-rate schedule, stepped after every batch;
    - ``loss_fn`` (default cross-entropy), ``predict`` (default the largest score);
    - ``batch_transform(images, generator)``: applied to each uint8 training batch (augmentation);
    - ``cuda_graph``, ``amp_dtype``, ``channels_last``, ``compile``: the speed-ups of chapter 4.

    The generator seeded with ``seed`` orders the batches (and drives ``batch_transform``).
    Returns one dict per epoch (loss, train_acc, and each ``<name>_acc``) and the seconds spent
    in training steps (as train_ch6 times them: evaluation is left out). ``on_epoch``, if given,
    is called with each epoch's dict. Bad arguments are refused before training starts, and a
    loss that is no longer a finite number stops it (``lenet_book.checks``).
    """
    num_epochs, batch_size, seed = check_training(**locals())  # every argument, as ints (checks)
    images, labels = train_data
    device = images.device
    eval_sets = eval_sets or {}
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    net.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    check_first_batch(net, train_data, batch_size, loss_fn, batch_transform, seed)  # no step
    opt = optimizer(net.parameters()) if optimizer else torch.optim.SGD(net.parameters(), lr=lr)
    steps_per_epoch = -(-len(labels) // batch_size)
    schedule = scheduler(opt, num_epochs, steps_per_epoch) if scheduler else None
    check_built(opt, schedule, scheduler)  # an optimizer and a schedule (lenet_book.checks)
    generator = torch.Generator(device=device).manual_seed(seed)
    model = torch.compile(net) if compile else net
    graph = (EpochGraph(model, opt, loss_fn, images, labels, batch_size, amp_dtype, predict)
             if cuda_graph else None)
    history, seconds = [], 0.0
    for epoch in range(num_epochs):
        synchronize(device)
        start = time.perf_counter()
        net.train()
        step_losses = []
        if graph:
            loss_sum, correct = graph.run(torch.randperm(len(labels), generator=generator,
                                                         device=device))
        else:
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device, dtype=torch.int64)
            for idx in shuffled_batches(len(labels), batch_size, generator):
                X = (images[idx] if batch_transform is None
                     else batch_transform(images[idx], generator))
                step_loss, step_correct = train_step(model, opt, loss_fn, to_float(X), labels[idx],
                                                     amp_dtype, predict)
                loss_sum += step_loss
                correct += step_correct
                step_losses.append(step_loss)
                if schedule:
                    schedule.step()
        synchronize(device)
        seconds += time.perf_counter() - start
        record = {"epoch": epoch + 1, "loss": loss_sum.item() / len(labels),
                  "train_acc": correct.item() / len(labels)}
        check_finite_loss(record, step_losses, opt, steps_per_epoch)
        for name, (eval_images, eval_labels) in eval_sets.items():
            record[f"{name}_acc"] = evaluate(model, eval_images, eval_labels, predict)
        history.append(record)
        if on_epoch:
            on_epoch(record)
    return history, seconds


@contextlib.contextmanager
def _as_train_leaves_it(bound):
    """``train``'s call: ``on_epoch`` may add to each epoch's dict (e.g. a validation loss), and
    what it removes or changes of train's own entries is put back, so the history stays whole;
    the network ends in eval mode when it was scored (as the last ``evaluate`` of the body leaves
    it; ``evaluate`` itself puts the modes back). ``on_epoch`` may change the weights but not
    replace layers while epochs remain (the optimizer, built once, would not hold them). A call
    that stops with an exception (a refusal, Ctrl-C) leaves the train/eval modes as it found
    them."""
    net = bound.arguments["net"]
    _built_once(bound)  # the optimizer and scheduler functions: called once, by the checks
    on_epoch = bound.arguments.get("on_epoch")
    if on_epoch is not None and not isinstance(on_epoch, type):
        check_function("on_epoch", on_epoch)  # before it is wrapped: its own signature
        num_epochs = bound.arguments.get("num_epochs")

        def keeping_the_record(record):
            own = dict(record)
            before = {id(p) for p in net.parameters()} if isinstance(net, nn.Module) else None
            on_epoch(record)
            record.update(own)
            if before is not None:
                _check_layers_kept(net, before, own.get("epoch"), num_epochs)

        bound.arguments["on_epoch"] = keeping_the_record
    modes = ([(module, module.training) for module in net.modules()]
             if isinstance(net, nn.Module) else [])
    try:
        yield
    except BaseException as error:
        for module, mode in modes:  # as found: the body switches to training mode each epoch
            module.training = mode
        flag = bound.arguments.get("compile")  # a refused non-flag (a tensor) has no truth
        if _is_flag(flag) and flag and _no_cxx_compiler(error):
            # at the first compiled step, before its update: the weights are as they were
            raise ValueError("train: compile=True needs a working C++ compiler (torch.compile "
                             "builds the network's kernels with one), and none was found: "
                             "install one (g++ or clang; on Windows, Visual Studio's C++ build "
                             "tools), or train with compile=False") from error
        raise
    check_finite_weights(bound.arguments["net"])  # the last step's update: no loss looked at it
    scored = bound.arguments.get("eval_sets") or bound.arguments.get("test_data")
    if scored:
        bound.arguments["net"].eval()


def _no_cxx_compiler(error):
    """Whether ``error`` (or one it was raised from) is torch inductor's "no C++ compiler"."""
    for _ in range(8):  # the chain: InductorError from InvalidCxxCompiler
        if error is None:
            return False
        if type(error).__name__ == "InvalidCxxCompiler" \
                or "No working C++ compiler" in str(error) or "cl is not found" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def _check_layers_kept(net, before, epoch, num_epochs):
    """After ``on_epoch``: a trainable parameter that was not in the network before it (a layer
    replaced) is not in the optimizer, which train built once; refused while epochs remain."""
    try:
        remain = epoch < num_epochs
    except TypeError:
        remain = True
    new = [name for name, p in net.named_parameters() if p.requires_grad and id(p) not in before]
    if new and remain:
        raise ValueError(f"on_epoch replaced layers of the network after epoch {epoch} (new "
                         f"weights: {', '.join(new[:3])}{' ...' if len(new) > 3 else ''}), but "
                         "train built its optimizer once, before the first epoch, from the "
                         "layers then in the network, and cannot build it again inside the "
                         "loop: the new layers would never learn. on_epoch may change the "
                         "weights (e.g. with torch.no_grad(): net[0].weight.mul_(0.5)) but "
                         "not replace layers; replace them before calling train, or call "
                         "train again on the changed network once this one returns")


# chapter 4 shows EpochGraph as written; its arguments are checked before any recording
EpochGraph.__init__ = at_the_door(EpochGraph.__init__, check_epoch_graph)

# e.g. train(..., epochs=5): did you mean num_epochs=5?
train = lr_written_noted(at_the_door(train, around=_as_train_leaves_it))


_SHUFFLE_MAX = 2**31  # Fashion-MNIST holds 60,000 training images


def _check_shuffled_batches(num_examples, batch_size, generator):
    # at least 1: 0 examples would give one empty batch, whose mean loss is NaN
    check_whole("shuffled_batches: num_examples", num_examples)
    if num_examples > _SHUFFLE_MAX:  # the shuffled index holds 8 bytes per example
        raise ValueError(f"shuffled_batches: num_examples is {num_examples:,}, more than an index "
                         f"of 8 bytes per example can hold in memory (at most {_SHUFFLE_MAX:,}); "
                         "give the number of images of the data set, len(labels)")
    check_whole("shuffled_batches: batch_size", batch_size)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"shuffled_batches draws from a torch.Generator: generator must be one, "
                        f"got {_got(generator)}; e.g. "
                        "torch.Generator(device=images.device).manual_seed(0)")


@contextlib.contextmanager
def _counts_as_ints(bound):
    # numpy integers pass the checks; torch's split takes Python ints only
    for name in ("num_examples", "batch_size"):
        bound.arguments[name] = int(bound.arguments[name])
    yield


shuffled_batches = at_the_door(shuffled_batches, _check_shuffled_batches,  # chapter 4 shows it
                               around=_counts_as_ints)
# a misspelt keyword is named, with the signature (chapter 4 shows to_float as written; its
# body checks the pixels itself)
to_float = at_the_door(to_float)


def _check_split_validation(train_data, size=None):
    if size is None:  # the default, VALIDATION_SIZE as published (None given is refused later)
        own = _brief(VALIDATION_SIZE) if isinstance(VALIDATION_SIZE, int) else "5000"
        _check_not_rebound("train.VALIDATION_SIZE", VALIDATION_SIZE, _VALIDATION_SIZE_PUBLISHED,
                           "split_validation's default size",
                           f"split_validation(train_data, size={own})")


split_validation = at_the_door(split_validation, _check_split_validation)
