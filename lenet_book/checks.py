"""Checks at the door of the trainer: bad arguments and data are refused before training starts.

``lenet_book.train.train`` calls :func:`check_training` before its first step and
:func:`check_finite_loss` after every epoch; ``recipes.build`` checks a recipe with
``recipes.check_recipe``. Each problem raises a ``TypeError`` (a value of the wrong kind) or a
``ValueError`` (a value out of range) whose message says what is wrong and what is expected, or
:class:`TrainingDiverged` when the loss stops being a finite number. The checks cost one min/max
over the labels of each split, never a pass over the images.

The functions the chapters show (``train``, ``train_step``, ``original.paper_loss``, ...) are
wrapped by :func:`at_the_door`, which checks their arguments before they run and leaves their
source, as the chapters show it, unchanged. ``train_step``'s check costs a min/max over the
batch on the CPU (on a GPU it would wait for the device, so only kinds and shapes are checked).
"""

from __future__ import annotations

import contextlib
import contextvars
import difflib
import dis
import functools
import importlib.util
import inspect
import math
import numbers
import os
import random
import re
import sys
import warnings
import weakref
from pathlib import Path

import torch
from torch import nn

from lenet_book._grammar import _a, _a_kind, _kind

__all__ = ["NUM_CLASSES", "TrainingDiverged", "at_the_door", "check_codes", "check_crop_flip",
           "check_device", "check_finite_loss", "check_first_batch", "check_flags",
           "check_fused_step", "check_indices", "check_number", "check_paper_loss",
           "check_paper_schedule", "check_pixels", "check_scores", "check_split", "check_trace",
           "check_train_step", "check_training", "check_whole", "check_window"]

NUM_CLASSES = 10  # Fashion-MNIST's classes, numbered 0-9

FROM_LOADER = "as lenet_book.fast.load_fashion_mnist_tensors gives them"


class TrainingDiverged(FloatingPointError):
    """The training loss became NaN or infinite: the weights are no longer numbers."""


def _brief(value, most=40):
    """``value`` for a message: its repr when short and on one line, else its kind and shape
    ("a tensor of shape (64, 28, 28)", "a tuple of 2 tensors"), never a whole tensor's repr."""
    if inspect.isfunction(value) or inspect.isbuiltin(value):
        return "a lambda" if value.__name__ == "<lambda>" else value.__name__
    try:
        text = repr(value)
    except Exception:
        text = None
    if text is not None and len(text) <= most and "\n" not in text \
            and not isinstance(value, torch.Tensor):
        return text
    if isinstance(value, torch.Tensor) or hasattr(value, "shape") and hasattr(value, "dtype"):
        what = ("tensor" if isinstance(value, torch.Tensor) else "numpy array"
                if _kind(value) == "ndarray" else _kind(value))
        return f"{_a(what)} of shape {tuple(value.shape)}"
    if isinstance(value, (tuple, list, dict)):
        items = list(value.values() if isinstance(value, dict) else value)
        kinds = {_kind(item) for item in items}
        of = (f"{len(items)} {'tensor' if kinds == {'Tensor'} else kinds.pop()}"
              f"{'s' if len(items) != 1 else ''}" if len(kinds) == 1 else f"{len(items)} items")
        return f"{_a_kind(value)} of {of}"
    return f"{_a_kind(value)}"


def _got(value):
    """``value`` and its kind for a message, "'10' (a str)", never a whole tensor's repr:
    "a tensor of shape (8, 28, 28)"."""
    brief = _brief(value)
    return brief if brief.startswith(("a ", "an ")) else f"{brief} ({_a_kind(value)})"


def check_dense(name, meta=False, **tensors):
    """Each tensor given must be an ordinary (strided) tensor with values: a sparse tensor or
    (unless ``meta``: shapes only are needed) one on the 'meta' device would fail inside torch's
    layers with torch's own words."""
    for what, tensor in tensors.items():
        if not isinstance(tensor, torch.Tensor):
            continue
        if tensor.layout != torch.strided:
            raise TypeError(f"{name}: {what} is a sparse tensor ({tensor.layout}), which the "
                            f"network's layers cannot take; convert it with {what}.to_dense()")
        if tensor.is_meta and not meta:
            raise ValueError(f"{name}: {what} is on the 'meta' device, which has shapes but no "
                             f"values; give the tensor itself, on the CPU or a GPU")


SEED_MAX = 2**64 - 1  # the largest seed torch.manual_seed and a Generator take


def check_whole(name, value, least=1, most=None):
    """``value`` must be a whole number (not a bool) of at least ``least`` (and at most
    ``most``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a whole number of at least {least}, got "
                        f"{_got(value)}")
    if value < least:
        raise ValueError(f"{name} must be at least {least}, got {value}")
    if most is not None and value > most:
        raise ValueError(f"{name} must be at most {most}, got {value}")


def _is_flag(value):
    """True or False, also as numpy gives them (e.g. a value read from an array)."""
    return isinstance(value, bool) or (type(value).__module__ == "numpy"
                                       and type(value).__name__ in ("bool_", "bool"))


def check_flags(**flags):
    """Each flag must be True or False: a string such as 'no' would count as True."""
    for name, value in flags.items():
        if not _is_flag(value):
            raise TypeError(f"{name} must be True or False, got {_got(value)}"
                            + ("; a non-empty string counts as True: write True or False "
                               "without quotes" if isinstance(value, str) else ""))


def _is_number_text(value):
    """A string that reads as a number ('0.1'): quoted by mistake. Another (a device name, a
    word) is not one, and 'without quotes' would be wrong advice."""
    if not isinstance(value, str):
        return False
    try:
        return math.isfinite(float(value))  # 'nan' and 'inf' are no Python names
    except ValueError:
        return False


def check_number(name, value, low=0.0, high=math.inf, low_open=True, high_open=False):
    """``value`` must be a finite real number (not a bool or a string) in the given range."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.requires_grad:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {_got(value)}"
                        + ((f"; write it without quotes, e.g. {name}={value.strip()}"
                            if name.isidentifier()
                            else f"; write {value.strip()}, not {value!r}")
                           if _is_number_text(value) else ""))
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    try:
        finite, shown = math.isfinite(value), value
    except OverflowError:  # e.g. 10**400: too large for a float (and for a 400-digit message)
        finite, shown = False, "a number too large for a float (beyond ±1.8e308)"
    if not finite and low == -math.inf and high == math.inf:
        raise ValueError(f"{name} must be a finite number, got {shown}")
    if not finite or too_low or too_high:
        interval = (("(" if low_open else "[") + f"{low:g}, {high:g}"
                    + (")" if high_open or math.isinf(high) else "]"))
        raise ValueError(f"{name} must be a finite number in {interval}, got {shown}")


def _device_kinds():
    """What ``check_device`` accepts, each with whether this machine has it."""
    mps = getattr(torch.backends, "mps", None)
    has = {"cpu": True, "cuda": torch.cuda.is_available(),
           "mps": mps is not None and mps.is_available()}
    return ", ".join(f"{kind!r} ({'available' if here else 'not available here'})"
                     for kind, here in has.items()), has


def check_device(device, name="device"):
    """``device`` must be one torch knows and this machine has: 'cpu', 'cuda', 'cuda:N', 'mps'
    or a torch.device of those (None: leave tensors where they are). Returns it as a
    torch.device."""
    if device is None:
        return None
    _, has = _device_kinds()
    here = ", ".join(repr(kind) for kind, ok in has.items() if ok)
    fix = (f"; this machine has {here}" + (" ('cuda:N': the N-th GPU)" if has["cuda"] else "")
           + ", and lenet_book.device.try_device() picks the best one")
    if isinstance(device, bool) or not isinstance(device, (str, torch.device, int)):
        # a tensor or a network: where it is, not its repr (thousands of numbers)
        tip = ("; for the device a tensor is on, give its .device, e.g. X.device"
               if isinstance(device, torch.Tensor) else "; for a network's device give "
               "next(net.parameters()).device" if isinstance(device, nn.Module) else "")
        raise TypeError(f"{name} must be a device name such as 'cpu', got "
                        f"{_got(device)}{tip}{fix}")
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(f"{name} {device!r} is not a device torch knows{fix}") from None
    if parsed.type not in has:
        raise ValueError(f"{name} {device!r} is not a device the book trains on{fix}")
    if not has[parsed.type]:
        raise ValueError(f"{name} {device!r} is not available on this machine{fix}")
    count = torch.cuda.device_count() if parsed.type == "cuda" else 1
    if parsed.index is not None and parsed.index >= count:
        raise ValueError(f"{name} {device!r}: this machine has {count} {parsed.type} "
                         f"device(s), numbered from 0{fix}")
    return parsed


def check_pixels(images):
    """Batches reach ``to_float`` as uint8 pixels; float images would be divided by 255 twice."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"to_float takes a uint8 tensor of pixels 0-255 ({FROM_LOADER}) as "
                        f"images, not {_a_kind(images)}")
    if images.dtype != torch.uint8:
        raise TypeError(f"to_float takes uint8 pixels 0-255 and divides them by 255; got "
                        f"{images.dtype} (a batch_transform must return uint8 images too)")
    if images.dim() != 3:
        raise ValueError(f"to_float takes a batch of grey images N×height×width and adds the "
                         f"channel dimension; got shape {tuple(images.shape)}"
                         + ("; for one image use image.unsqueeze(0)" if images.dim() == 2
                            else "; for N×1×height×width use images.squeeze(1)"
                            if images.dim() == 4 and images.shape[1] == 1 else ""))
    if len(images) == 0:
        raise ValueError("to_float: images is an empty batch (0 images); a batch holds at least "
                         "one image, e.g. images[idx] for a non-empty index idx")


def check_split(name, images, labels, batch_size=1):
    """One split of the data: uint8 images N×H×W (0-255) and int64 labels 0-9, one per image."""
    check_whole("batch_size", batch_size)
    _check_not_split_pairs(name, images, labels)
    for what, tensor in (("images", images), ("labels", labels)):
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"{name}: the {what} must be a torch tensor ({FROM_LOADER}), "
                            f"not {_a_kind(tensor)}")
    check_dense(name, meta=True, images=images, labels=labels)  # meta: named just below
    if images.is_meta or labels.is_meta:
        raise ValueError(f"{name}: the images or labels are on the 'meta' device, which has "
                         f"shapes but no values; give the data themselves ({FROM_LOADER})")
    if images.dtype != torch.uint8:
        hint = ("; for floats in [0, 1] give (images * 255).round().to(torch.uint8)"
                if images.is_floating_point() else "")
        raise TypeError(f"{name}: the images must be uint8 pixels 0-255, got "
                        f"{images.dtype}{hint}")
    if images.dim() != 3 or 0 in images.shape[1:]:
        raise ValueError(f"{name}: the images must be a tensor N×height×width of grey images "
                         f"(N×28×28 for Fashion-MNIST), got shape {tuple(images.shape)}"
                         + ("; for N×1×28×28 use images.squeeze(1)"
                            if images.dim() == 4 and images.shape[1] == 1 else ""))
    if labels.dtype != torch.int64:
        convert = ("" if labels.is_floating_point() or labels.dtype == torch.bool
                   else "; convert them: labels.long()")
        raise TypeError(f"{name}: the labels must be int64 class numbers 0-{NUM_CLASSES - 1} "
                        f"({FROM_LOADER}), got {labels.dtype}{convert}")
    if labels.dim() != 1 or len(labels) != len(images):
        raise ValueError(f"{name}: there must be one label per image: {len(images)} images, "
                         f"labels of shape {tuple(labels.shape)}")
    if len(labels) == 0:
        raise ValueError(f"{name}: the data set is empty (0 images); pass the images and labels "
                         f"{FROM_LOADER}")
    if labels.device != images.device:
        raise ValueError(f"{name}: the images are on {images.device} but the labels on "
                         f"{labels.device}; move both to one device")
    low, high = (value.item() for value in torch.aminmax(labels))
    if low < 0 or high >= NUM_CLASSES:
        raise ValueError(f"{name}: the labels must be class numbers 0-{NUM_CLASSES - 1}, "
                         f"found {low if low < 0 else high}")


def check_fused_data(images, labels):
    """``FusedStep``'s data: uint8 images N×28×28 and int64 labels 0-9, one per image."""
    if not (isinstance(images, torch.Tensor) and images.dtype == torch.uint8
            and images.dim() == 3):
        raise ValueError(f"images must be a uint8 N×28×28 tensor ({FROM_LOADER}), got "
                         + (f"{images.dtype} with shape {tuple(images.shape)}"
                            if isinstance(images, torch.Tensor) else f"{_a_kind(images)}"))
    if not isinstance(labels, torch.Tensor) or labels.shape != images.shape[:1]:
        raise ValueError(f"labels must be one per image: {len(images)} images, labels of shape "
                         f"{tuple(getattr(labels, 'shape', ()))} ({_a_kind(labels)})")
    check_split("FusedStep", images, labels)


def _check_not_split_pairs(name, images, labels):
    """Images and labels that are two (images, labels) pairs: split_validation's (training,
    validation), given whole as one split (train(net, split), evaluate(net, *split))."""
    def is_pair(data):  # images N×..., labels N: other lists of tensors get check_split's words
        return (isinstance(data, (tuple, list)) and len(data) == 2
                and all(isinstance(t, torch.Tensor) for t in data)
                and data[0].dim() >= 2 and data[1].dim() == 1
                and len(data[0]) == len(data[1]))

    if not (is_pair(images) and is_pair(labels)):
        return
    use = ("pass fit_data, e.g. train(net, fit_data, {'valid': val_data})"
           if name == "train_data" else "score one of them, e.g. evaluate(net, *val_data)"
           if name == "evaluate" else "pass val_data, e.g. train(net, fit_data, {'valid': "
           "val_data})" if name.startswith(("eval_sets", "test_data")) else "pass one of them")
    raise TypeError(f"{name}: got two (images, labels) pairs, (training, validation), as "
                    "split_validation returns them, where one split goes: unpack it, fit_data, "
                    f"val_data = split_validation(train_data), and {use}")


def check_pair(name, data):
    """``data`` must be a pair (images, labels); returns it."""
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise TypeError(f"{name} must be a pair (images, labels) ({FROM_LOADER}), "
                        f"got {_a_kind(data)}")
    return data


def check_validation_split(train_data, size):
    """``split_validation``'s arguments: a pair of images and labels, one per image, and a whole
    number ``size``. Returns (images, labels)."""
    images, labels = check_pair("train_data", train_data)
    for what, tensor in (("images", images), ("labels", labels)):
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"train_data: the {what} must be a torch tensor ({FROM_LOADER}), "
                            f"not {_a_kind(tensor)}")
    if labels.dim() != 1 or len(labels) != len(images):
        raise ValueError(f"train_data: there must be one label per image: {len(images)} images, "
                         f"labels of shape {tuple(labels.shape)}; a split would pair them wrongly")
    check_whole("size", size)
    if images.is_floating_point():  # a split of float images would be divided by 255 again
        raise TypeError(f"train_data: the images must be uint8 pixels 0-255, got {images.dtype}; "
                        "for floats in [0, 1] give (images * 255).round().to(torch.uint8)")
    if len(labels) == 0:
        raise ValueError(f"train_data: the data set is empty (0 images); pass the images and "
                         f"labels {FROM_LOADER}")
    return images, labels


def check_predict(predict, device=None):
    """``predict`` must turn scores N×10 into N integer class numbers (one per image): one
    call on a tiny tensor of zeros, without gradients."""
    if not callable(predict):
        raise TypeError(f"predict must be a function of the scores, got {_got(predict)}")
    _check_not_a_class("predict", predict)
    with torch.no_grad():
        out = predict(torch.zeros(3, NUM_CLASSES, device=device))
    if (not isinstance(out, torch.Tensor) or tuple(out.shape) != (3,)
            or out.is_floating_point() or out.is_complex() or out.dtype == torch.bool):
        got = (f"{out.dtype} of shape {tuple(out.shape)}" if isinstance(out, torch.Tensor)
               else f"{_a_kind(out)}")
        raise ValueError(f"predict must return one integer class number per image (for scores "
                         f"of shape (3, {NUM_CLASSES}): int64 of shape (3,), as "
                         f"scores.argmax(dim=1) gives), got {got}; it is compared with the "
                         "labels to count the correct predictions")


def _raised_by_lenet_book(error):
    """Whether ``error`` was raised in lenet_book's own code (its message already says what is
    wrong and what to do)."""
    traceback = error.__traceback__
    while traceback is not None and traceback.tb_next is not None:
        traceback = traceback.tb_next
    if traceback is None or not (Path(traceback.tb_frame.f_code.co_filename).resolve()
                                 .is_relative_to(Path(__file__).resolve().parent)):
        return False
    # a raise statement of lenet_book's, not Python's own error for a call made there (e.g.
    # "Loss() takes no arguments", raised at the line that calls the user's function)
    opname = next((i.opname for i in dis.get_instructions(traceback.tb_frame.f_code)
                   if i.offset == traceback.tb_lasti), "")
    return opname.startswith(("RAISE", "RERAISE"))


def _loss_of(loss_fn, scores, labels):
    """``loss_fn(scores, labels)`` without gradients; a loss that cannot take scores N×10 and
    class numbers (e.g. nn.MSELoss, which compares two tensors of one shape) is refused."""
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. MSELoss's warning about the target's size
            return loss_fn(scores, labels)
    except (RuntimeError, TypeError, IndexError, ValueError) as error:
        if _raised_by_lenet_book(error):  # e.g. paper_loss's own check of j: its message
            raise
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        name = getattr(loss_fn, '__name__', type(loss_fn).__name__)
        fix = (f"check the settings given to {name}(...), or use nn.CrossEntropyLoss() with its "
               "defaults" if isinstance(loss_fn, nn.CrossEntropyLoss)
               else "use nn.CrossEntropyLoss()")
        raise ValueError(f"loss_fn must take the scores (N×{NUM_CLASSES} floats) and the labels "
                         f"(N class numbers, int64), as nn.CrossEntropyLoss() does; "
                         f"{name} cannot (PyTorch says {first!r}): {fix}") from None


def _check_loss_shape(loss):
    """A loss must be one number, a float tensor of shape () (backward needs a scalar)."""
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1 or not loss.is_floating_point():
        got = (f"{loss.dtype} of shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor)
               else f"{_a_kind(loss)}")
        raise ValueError(f"loss_fn must return the batch's loss as one number (a float tensor "
                         f"of shape ()), got {got}; average it over the batch, e.g. "
                         "nn.CrossEntropyLoss() (reduction='mean'), not reduction='none'")
    if loss.dim() != 0:  # one number kept in a dimension: train's sum of the steps' losses is ()
        raise ValueError(f"loss_fn must return the batch's loss as one number (a float tensor "
                         f"of shape ()), got shape {tuple(loss.shape)}: use loss.squeeze() or "
                         "loss.mean()")


def _check_loss_settings(loss_fn):
    """A torch loss whose settings would silently change what is trained: summed over the batch
    (the reported loss and the step size grow with the batch size), or ignoring a class that
    the labels use (its images leave the loss but still count in the accuracy)."""
    if getattr(loss_fn, "reduction", "mean") == "sum":
        raise ValueError(f"loss_fn {type(loss_fn).__name__}(reduction='sum') sums the loss over "
                         "the batch, but train expects its mean (it multiplies by the batch size "
                         "to report the epoch's loss, and the learning rate is set for a mean): "
                         "use reduction='mean' (the default)")
    weight = getattr(loss_fn, "weight", None)
    if isinstance(weight, torch.Tensor) and weight.requires_grad:
        raise ValueError(f"loss_fn {type(loss_fn).__name__}(weight=...): the class weights "
                         "require gradients, which the loss cannot give them; pass fixed "
                         "weights, weight=w.detach() (or torch.ones(10))")
    if isinstance(weight, torch.Tensor) and weight.layout != torch.strided:
        raise TypeError(f"loss_fn {type(loss_fn).__name__}(weight=...): the class weights are a "
                        f"sparse tensor ({weight.layout}), which the loss cannot take; give a "
                        "dense one, weight.to_dense(), e.g. torch.ones(10)")
    if isinstance(loss_fn, (nn.CrossEntropyLoss, nn.NLLLoss)) and isinstance(
            weight, torch.Tensor) and (tuple(weight.shape) != (NUM_CLASSES,)
                                             or not bool(torch.isfinite(weight).all())
                                             or bool((weight < 0).any())
                                             or not bool(weight.sum() > 0)):
        raise ValueError(f"loss_fn {type(loss_fn).__name__}(weight=...) has class weights of "
                         f"shape {tuple(weight.shape)}: the weights must be {NUM_CLASSES} finite "
                         f"numbers of at least 0, not all 0, one per class, shape "
                         f"({NUM_CLASSES},), e.g. "
                         f"torch.ones({NUM_CLASSES}); or leave weight out (every class counts "
                         "the same)")
    if isinstance(loss_fn, (nn.CrossEntropyLoss, nn.NLLLoss)) and isinstance(
            weight, torch.Tensor) and bool((weight == 0).any()):
        zero = (weight == 0).nonzero()[0].item()  # as ignore_index of that class, below
        raise ValueError(f"loss_fn {type(loss_fn).__name__}(weight=...) gives class {zero} a "
                         "weight of 0: the images of that class would be left out of the loss "
                         "but still counted in the accuracy; give every class a weight above "
                         f"0, e.g. torch.ones({NUM_CLASSES}), or leave weight out")
    smoothing = getattr(loss_fn, "label_smoothing", 0.0)
    if isinstance(smoothing, numbers.Real) and not 0.0 <= smoothing <= 1.0:
        raise ValueError(f"loss_fn {type(loss_fn).__name__}(label_smoothing={smoothing}): "
                         "label_smoothing must be a fraction in [0, 1], e.g. 0.1 (chapter 6); "
                         "or leave it out (0, no smoothing)")
    ignore = getattr(loss_fn, "ignore_index", None)
    if isinstance(ignore, int) and 0 <= ignore < NUM_CLASSES:
        raise ValueError(f"loss_fn ignores the class {ignore} (ignore_index={ignore}): the images "
                         f"of that class would be left out of the loss but still counted in the "
                         f"accuracy; leave ignore_index at its default (-100), which no label "
                         f"0-{NUM_CLASSES - 1} matches")


def check_loss(loss_fn, device=None):
    """``loss_fn`` must give one number (a scalar tensor) for a batch: one call on a tiny tensor
    of zeros, without gradients (backward needs a scalar)."""
    _check_not_a_class("loss_fn", loss_fn)
    _check_loss_settings(loss_fn)
    _check_loss_shape(_loss_of(loss_fn, torch.zeros(2, NUM_CLASSES, device=device),
                               torch.zeros(2, dtype=torch.int64, device=device)))
    _check_loss_learns(loss_fn, device)


def _check_loss_learns(loss_fn, device=None):
    """On fixed scores in [0, 1) (a generator of its own): the loss must carry gradients to the
    scores and change when the labels change (a loss that ignores them teaches nothing)."""
    generator = torch.Generator().manual_seed(0)
    scores = torch.rand(4, NUM_CLASSES, generator=generator).to(device).requires_grad_()
    labels = torch.tensor([0, 3, 5, 9], device=device)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loss = loss_fn(scores, labels)
            other = loss_fn(scores, (labels + 1) % NUM_CLASSES)
    except Exception:
        return  # the probes on the first batch say what is wrong
    if not isinstance(loss, torch.Tensor) or not isinstance(other, torch.Tensor):
        return
    if not loss.requires_grad:
        _check_grad_mode()  # inside torch.no_grad() no loss has gradients: not the loss's fault
        raise ValueError("loss_fn returns a loss without gradients (detached, or rebuilt from "
                         ".item()), so backward cannot train the network; return the tensor "
                         "the loss computes, e.g. F.cross_entropy(scores, labels)")
    if loss.numel() == 1 and bool(torch.equal(loss.detach(), other.detach())):
        raise ValueError("loss_fn gives the same loss whatever the labels are, so training "
                         "would learn nothing about the classes; use a loss of the scores "
                         "and the labels, e.g. nn.CrossEntropyLoss()")
    # NLL takes log-probabilities, not these scores: the first batch's probe checks it there
    if loss.numel() == 1 and loss.is_floating_point() and not _is_nll(loss_fn):
        _check_loss_values(loss_fn, scores.detach(), labels, loss.detach().item())


def _check_loss_values(loss_fn, scores, labels, value):
    """On fixed scores: the loss is a finite number of at least 0, a mean over the batch (not
    the sum), and not the cross-entropy of probabilities (softmax applied twice: it barely
    trains)."""
    if not math.isfinite(value):
        raise ValueError(f"loss_fn gives {value} on finite scores, so the first step would make "
                         "the weights NaN; check its settings (e.g. class weights that are all "
                         "0) or use nn.CrossEntropyLoss()")
    if value < 0:
        raise ValueError(f"loss_fn gives a negative loss, {value:.4g}: training lowers the loss, "
                         "and one that goes below 0 has no minimum to reach; use a loss that "
                         "is at least 0, e.g. nn.CrossEntropyLoss() on the scores")
    mean = torch.nn.functional.cross_entropy(scores.float(), labels).item()
    if math.isclose(value, mean * len(labels), rel_tol=1e-4):
        raise ValueError(f"loss_fn gives {value:.4g}, the cross-entropy summed over a batch of "
                         f"{len(labels)} ({mean:.4g} per image), but train expects its mean (it "
                         "multiplies by the batch size to report the epoch's loss, and the "
                         "learning rate is set for a mean): use reduction='mean' (the "
                         "default), e.g. F.cross_entropy(scores, labels)")
    try:  # cross-entropy of probabilities (softmax applied twice): bounded, it barely trains
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sharp = scores.float() * 10
            twice = torch.nn.functional.cross_entropy(sharp.softmax(1), labels).item()
            given = float(loss_fn(sharp, labels))
    except Exception:
        return  # a loss that cannot take such scores: the first batch's probe says more
    if math.isclose(given, twice, rel_tol=1e-4) and not math.isclose(
            given, torch.nn.functional.cross_entropy(sharp, labels).item(), rel_tol=1e-2):
        raise ValueError(f"loss_fn gives {given:.4g}, the cross-entropy of probabilities (softmax "
                         "applied to the scores, then again inside cross-entropy): that loss "
                         "cannot fall below about 1.5 and barely trains. Give cross-entropy the "
                         "raw scores, e.g. F.cross_entropy(scores, labels), not "
                         "scores.softmax(1)")


def check_built(optimizer, schedule, scheduler):
    """What ``train``'s optimizer and scheduler functions built must be an optimizer and a
    schedule."""
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a function of the parameters that returns a "
                        f"torch.optim optimizer, e.g. lambda params: torch.optim.SGD(params, "
                        f"lr=0.1); it returned {_a_kind(optimizer)}")
    _check_optimizer_settings(optimizer)
    _check_dense_gradients(optimizer, "optimizer")
    if isinstance(optimizer, torch.optim.LBFGS):
        raise TypeError("optimizer: LBFGS needs a closure that recomputes the loss at every "
                        "step, but train calls optimizer.step() without one; use an optimizer "
                        "of single steps, e.g. lambda params: torch.optim.SGD(params, lr=0.1) "
                        "or torch.optim.Adam(params)")
    if scheduler is not None and not callable(getattr(schedule, "step", None)):
        raise TypeError(f"scheduler must be a function of (optimizer, epochs, steps per epoch) "
                        f"that returns a learning-rate schedule (with a step() method), e.g. "
                        f"torch.optim.lr_scheduler.OneCycleLR(...); it returned a "
                        f"{_kind(schedule)}")
    if scheduler is not None and getattr(schedule, "optimizer", optimizer) is not optimizer:
        raise ValueError("scheduler must build a schedule of the optimizer it is given (its first "
                         "argument), e.g. lambda opt, epochs, steps: torch.optim.lr_scheduler."
                         "StepLR(opt, step_size=steps); this one steps another optimizer, so the "
                         "learning rate of training would never change")
    step_size = getattr(schedule, "step_size", 1)
    if scheduler is not None and isinstance(step_size, numbers.Real) and step_size < 1:
        raise ValueError(f"the schedule's step_size must be at least 1 step, got {step_size}")


def _check_dense_gradients(optimizer, name, example="lambda params: torch.optim.Adam(params)"):
    """SparseAdam steps only sparse gradients (of embeddings); a network's layers give dense
    ones, and its first step would fail with torch's words."""
    if isinstance(optimizer, torch.optim.SparseAdam):
        raise TypeError(f"{name}: SparseAdam takes sparse gradients (of nn.Embedding(..., "
                        "sparse=True)), but the network's layers give dense ones; use "
                        f"torch.optim.Adam, e.g. {example}")


def _check_optimizer_settings(optimizer, name="optimizer", device=None):
    """Settings of a built optimizer that would train silently wrong: maximize=True (gradient
    ascent), an option that is NaN or infinite (e.g. momentum=nan: the weights become NaN), and
    SGD's dampening=1 with momentum (the momentum buffer then never takes a new gradient); and
    capturable=True where the data are not on a GPU (``device``; by default the weights')."""
    _check_capturable(optimizer, name, device)
    for group in optimizer.param_groups:
        if group.get("maximize"):
            raise ValueError(f"{name}: maximize=True climbs the loss instead of descending it; "
                             "leave maximize out (False, the default) to train the network")
        for key, value in group.items():
            if key in ("params", "lr"):
                continue
            for number in (value if isinstance(value, tuple) else (value,)):
                if (isinstance(number, numbers.Real) and not isinstance(number, bool)
                        and not math.isfinite(number)):
                    raise ValueError(f"{name}: {key}={value!r} is not a finite number, so the "
                                     "weights would become NaN at the first step; give a "
                                     f"finite {key}, or leave it out (its default)")
        alpha = group.get("alpha")
        if isinstance(alpha, torch.Tensor) and alpha.numel() == 1:
            alpha = alpha.item()  # a setting given as a tensor
        if (isinstance(optimizer, torch.optim.RMSprop) and isinstance(alpha, numbers.Real)
                and alpha >= 1):
            raise ValueError(f"{name}: RMSprop's alpha={alpha} keeps the average of squared "
                             "gradients at its start, 0, so every step divides by eps alone "
                             "and the weights fly off; alpha must be below 1 (default 0.99)")
        momentum, dampening = group.get("momentum"), group.get("dampening")
        if isinstance(momentum, torch.Tensor) and momentum.numel() == 1:
            momentum = momentum.item()  # a setting given as a tensor
        _check_momentum_below_1(optimizer, name, momentum)
        if (isinstance(momentum, numbers.Real) and momentum > 0
                and isinstance(dampening, numbers.Real) and dampening >= 1):
            raise ValueError(f"{name}: dampening={dampening} with momentum={momentum} multiplies "
                             "every new gradient by 1 - dampening = 0 or less, so after the "
                             "first step the updates never use a new gradient; leave dampening "
                             "out (0, the default)")


def _capturable_devices():
    """The kinds of device where torch's optimizers take capturable=True."""
    try:
        from torch.optim.optimizer import _get_capturable_supported_devices
        return tuple(_get_capturable_supported_devices())
    except (ImportError, TypeError):  # another torch version: its usual list
        return ("cuda", "xpu", "hpu", "privateuseone", "xla")


def _check_capturable(optimizer, name, device=None):
    """capturable=True (copied from a CUDA-graph example) keeps the step count on the device for
    a graph to record; elsewhere torch's first update fails with an AssertionError."""
    for group in optimizer.param_groups:
        if group.get("capturable") is not True:
            continue
        params = group.get("params") or ()
        where = torch.device(device) if device is not None else (
            params[0].device if params and isinstance(params[0], torch.Tensor) else None)
        if where is not None and where.type not in _capturable_devices():
            raise ValueError(f"{name}: capturable=True is for CUDA graphs on a GPU (the "
                             f"{type(optimizer).__name__} keeps its step count on the GPU, "
                             f"where a graph can record it), but training runs on {where}, "
                             "where its first update fails; leave capturable out (False, the "
                             "default)")


def _check_momentum_below_1(optimizer, name, momentum):
    """SGD's and RMSprop's momentum keeps that share of the last update in the next one: at 1
    every gradient ever seen stays in every later step, above 1 the steps grow at each one, so
    training stands still or diverges some epochs later (recipes refuse it as an option)."""
    if (isinstance(optimizer, (torch.optim.SGD, torch.optim.RMSprop))
            and isinstance(momentum, numbers.Real) and not isinstance(momentum, bool)
            and momentum >= 1):
        what = ("keeps every past gradient in every later step at full weight, so the steps "
                "never settle" if momentum == 1 else "makes each step larger than the last, so "
                "the weights diverge some epochs later")
        params = "net.parameters()" if name.startswith("train_step") else "params"
        raise ValueError(f"{name}: momentum={momentum} {what}; momentum must be below 1, e.g. "
                         f"torch.optim.{type(optimizer).__name__}({params}, lr=0.01, "
                         "momentum=0.9)")


def _check_finite_weights(name, net, redrawn=()):
    """Weights and buffers (batch norm's statistics) that hold NaN or infinite numbers make any
    accuracy meaningless; ``redrawn``: tensors that will be drawn afresh first."""
    skip = {id(t) for t in redrawn}
    # batch norm's statistics, not every buffer: some start infinite on purpose (observers' min
    # and max, a mask of -inf)
    statistics = [(f"{owner}.{name}" if owner else name, t)
                  for owner, module in net.named_modules()
                  if isinstance(module, nn.modules.batchnorm._BatchNorm)
                  for name, t in module.named_buffers(recurse=False)]
    bad = [name for name, t in (*net.named_parameters(), *statistics)
           if t.is_floating_point() and not t.is_meta and id(t) not in skip
           and not isinstance(t, (nn.parameter.UninitializedParameter,
                                  nn.parameter.UninitializedBuffer))
           and not bool(torch.isfinite(t).all())]
    if bad:
        raise ValueError(f"{name}: the network's weights or statistics {', '.join(bad[:3])}"
                         f"{' ...' if len(bad) > 3 else ''} hold NaN or infinite numbers (a "
                         "training that diverged), so its accuracy would mean nothing; build "
                         "it again and train with a smaller learning rate")


def _check_finite_before_training(net):
    """Weights that hold NaN or infinite numbers before the first step (a training that
    diverged earlier, the cell that built the network not run again) stay so whatever the
    learning rate: named as such, not as a new divergence at step 1."""
    # parameters only: buffers may start infinite on purpose (observers' min and max, masks)
    bad = [name for name, t in net.named_parameters()
           if t.is_floating_point() and not t.is_meta
           and not isinstance(t, nn.parameter.UninitializedParameter)
           and not bool(torch.isfinite(t).all())]
    if bad:
        raise ValueError(f"the network's weights {', '.join(bad[:3])}"
                         f"{' ...' if len(bad) > 3 else ''} already hold NaN or infinite numbers, "
                         "before this training (most likely a training that diverged earlier "
                         "left them so), and no learning rate can bring them back; build the "
                         "network again (run the cell that builds it), then train")


def check_evaluate(net, images, labels, predict, batch_size):
    """``evaluate``'s arguments: a network that takes the images, a split and a predict rule."""
    from lenet_book.train import argmax

    check_network(net)
    _check_finite_weights("evaluate", net)
    _check_values(net)
    check_split("evaluate", images, labels, batch_size)
    other = sorted({str(p.dtype) for p in net.parameters() if p.dtype != torch.float32})
    if other:
        raise TypeError(f"evaluate: the network's weights must be float32, as the batches are "
                        f"(to_float); it has {', '.join(other)} weights: convert it with "
                        "net.float()")
    if any(type(m).__name__ == "RBF" for m in net.modules()) and predict is argmax:
        raise ValueError("evaluate: this network ends in RBF penalties (the 1998 LeNet-5, chapter "
                         "5), where the smallest penalty wins; the default predict (the largest "
                         "score) would pick the worst class: pass predict=original.predict")
    problem = _input_problem(net, *images.shape[1:], batch_of_one=_batch_of_one(
        len(labels), batch_size if isinstance(batch_size, numbers.Integral) else 2500,
        "evaluate"))
    if problem:
        raise ValueError(f"evaluate: {problem}")
    if isinstance(predict, numbers.Integral) and not isinstance(predict, bool):
        raise TypeError(f"evaluate: predict must be a function of the scores, got {predict!r}, a "
                        "number: predict is evaluate's fourth positional argument; for the "
                        f"batch size write it by name, evaluate(net, images, labels, "
                        f"batch_size={int(predict)})")
    check_predict(predict, images.device)
    if _picks(predict) == "largest" and _trained_towards(net) == "smallest":
        raise ValueError("evaluate: this network was trained so that its smallest output "
                         "wins (its loss, e.g. F.cross_entropy(-outputs, labels), favoured "
                         "the smallest), but predict picks the largest, as the default does, so "
                         "it would count the worst class as right: pass the rule it was "
                         "trained with, e.g. predict=lambda outputs: outputs.argmin(dim=1)")
    # a rule of the reader's own is tried on fixed outputs, as train tries it (one forward of
    # 4 images tells scores from penalties); the default needs no probe
    kind = _output_kind(net, *images.shape[1:], probe=predict is not argmax)
    if kind == "scores":
        _check_not_penalty_predict("evaluate", predict)
        energies = _trained_towards(net) == "smallest"
        if _picks(predict) == "smallest" and not energies:
            raise ValueError("evaluate: predict picks the smallest output (tried on fixed "
                             "outputs), but this network's outputs go below 0, as scores do, "
                             "and the largest score wins, so it would count the worst class as "
                             "right: leave predict out (the largest score). (A network trained "
                             "so that its smallest output wins, e.g. with loss_fn=lambda out, "
                             "y: F.cross_entropy(-out, y), is taken once train has trained it.)")
        _check_predict_picks_an_end("evaluate", predict, "smallest" if energies else "largest",
                                    "as this network was trained" if energies
                                    else "as this network gives scores")
    if kind == "penalties":
        _check_predict_picks("evaluate", predict, penalties=True)


def check_layer_choices(activation, pool, batch_norm):
    """``models.modern_lenet``'s arguments: layer classes (nn.ReLU, not "relu" or nn.ReLU())
    and a flag."""
    for name, value, example in (("activation", activation, "nn.ReLU"),
                                 ("pool", pool, "nn.MaxPool2d")):
        if isinstance(value, functools.partial) and not isinstance(value.func, nn.Module):
            continue  # e.g. partial(nn.LeakyReLU, 0.2): a fresh layer per call, tried below
        if (callable(value) and not isinstance(value, (type, nn.Module))
                and _builds_a_layer(value, name)):
            continue  # e.g. lambda: nn.LeakyReLU(0.2), a factory as partial is
        if not (isinstance(value, type) and issubclass(value, nn.Module)):
            function = inspect.isfunction(value) or inspect.isbuiltin(value)
            hint = (f"the class itself, {type(value).__name__}, without brackets"
                    if isinstance(value, nn.Module) else f"e.g. {example}"
                    + ((f", or a function that builds a layer, lambda: {example}()"
                        if name == "activation" else ", or a function called as "
                        "pool(kernel_size=2, stride=2) that builds a layer") if function else ""))
            got = (("a lambda" if value.__name__ == "<lambda>" else f"the function "
                    f"{value.__name__}") + " that does not build a layer" if function
                   else repr(value))
            raise TypeError(f"{name} must be a layer class such as {example} (the network builds "
                            f"one per layer), got {got}; pass {hint}")
    try:
        built = activation()
    except TypeError as error:
        raise TypeError(f"activation must be a layer class built without arguments, e.g. nn.ReLU "
                        f"(or functools.partial(nn.LeakyReLU, 0.2) for settings); "
                        f"{getattr(activation, '__name__', activation)!r} cannot be ({error})"
                        ) from None
    if not isinstance(built, nn.Module):
        raise TypeError(f"activation must build a layer (an nn.Module), e.g. nn.ReLU; "
                        f"{_brief(activation)} builds {_a_kind(built)}")
    try:
        built = pool(kernel_size=2, stride=2)
    except TypeError as error:
        raise TypeError(f"pool must be a class built as pool(kernel_size=2, stride=2), e.g. "
                        f"nn.AvgPool2d or nn.MaxPool2d; {getattr(pool, '__name__', pool)} cannot "
                        f"be ({error})") from None
    _check_pool_halves(pool, built)
    if not _is_flag(batch_norm):
        raise TypeError(f"batch_norm must be True or False, got {_got(batch_norm)}")


def _layer_name(factory):
    """How a message names a layer class: "nn.Identity" for torch's own, else its name."""
    if isinstance(factory, functools.partial):
        return f"functools.partial({_layer_name(factory.func)}, ...)"
    name = getattr(factory, "__name__", None)
    if name is None or inspect.isfunction(factory):
        return _brief(factory)  # a function's name, "a lambda"
    return f"nn.{name}" if getattr(nn, name, None) is factory else name


def _check_pool_halves(pool, layer):
    """modern_lenet's pools must halve a batch's height and width and keep its images and
    channels: nn.Identity takes kernel_size and stride and ignores them (no pooling), and 1-D
    and 3-D pools misread an N×C×H×W batch (a 3-D pool halves its channels)."""
    x = torch.zeros(2, 6, 28, 28)  # the first pool's input: 6 feature maps of 28×28
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = layer(x) if callable(layer) else None
        said = None
    except Exception as error:  # whatever the layer raises for a batch of 2-D maps
        out, said = None, (str(error).strip().splitlines() or [type(error).__name__])[0]
    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else None
    if shape == (2, 6, 14, 14):
        return
    name = _layer_name(pool)
    if shape == tuple(x.shape):
        problem = f"pool={name} does not pool: it returns a batch N×C×H×W unchanged"
    else:
        got = (f"raises {said!r}" if said is not None else "returns "
               + ("×".join(map(str, shape)) if shape is not None else _a_kind(out)))
        problem = (f"pool={name} does not pool a batch N×C×H×W as a 2-D pool does: on a batch "
                   f"2×6×28×28 it {got}")
    raise TypeError(f"{problem}; modern_lenet builds each pooling layer as "
                    "pool(kernel_size=2, stride=2), which must halve the height and width and "
                    "keep the images and channels (2×6×28×28 → 2×6×14×14): pass a 2-D pool, "
                    "e.g. nn.MaxPool2d or nn.AvgPool2d")


def _builds_a_layer(factory, name):
    """Whether ``factory``, called as modern_lenet calls ``name`` (activation() or
    pool(kernel_size=2, stride=2)), builds an nn.Module."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            built = factory() if name == "activation" else factory(kernel_size=2, stride=2)
    except Exception:  # not a factory of layers: refused as such
        return False
    return isinstance(built, nn.Module)


def check_network(net, name="net", **flags):
    """``net`` must be a torch.nn.Module (and each flag True or False)."""
    if not isinstance(net, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module (e.g. lenet_book.models.lenet()), "
                        f"got {_a_kind(net)}")
    check_flags(**flags)


def check_layers_built(net, doing):
    """A network with lazy layers (nn.LazyLinear, nn.LazyConv2d) has no weights before its first
    forward pass: ``doing`` (e.g. "train it") needs them, so say how to build them."""
    lazy = [f"{type(module).__name__} {name}".rstrip() for name, module in net.named_modules()
            if isinstance(module, nn.modules.lazy.LazyModuleMixin)
            and module.has_uninitialized_params()]
    if lazy:
        raise ValueError(f"the network has lazy layers whose weights are not built yet "
                         f"({', '.join(lazy)}; PyTorch sizes them at the first forward pass), "
                         f"so it cannot {doing} yet; run one batch through it first, e.g. "
                         "net(torch.zeros(1, 1, 28, 28)), or give the layers their sizes "
                         "(nn.Linear(400, 10) for nn.LazyLinear(10))"
                         + ("; then give it the recipe's start, models.init_xavier(net) (the "
                            "lazy layers' own start is PyTorch's default, which chapter 3 shows "
                            "learning little with sigmoid), and train it"
                            if doing == "be trained" else ""))


def _check_values(net):
    """A network on the 'meta' device has shapes but no values: nothing to train or score."""
    if any(t.is_meta for t in (*net.parameters(), *net.buffers())):
        raise ValueError("the network is on the 'meta' device, which has shapes but no values, "
                         "so there is nothing to train or score; build it on the CPU (e.g. "
                         "models.lenet()), or give it values: net.to_empty(device='cpu') and "
                         "an initialisation")


def _batch_of_one(n, batch_size, what="each epoch"):
    """Where a batch of one image occurs when ``n`` images go in batches of ``batch_size``
    (said for _input_problem's messages), else False."""
    n, batch_size = int(n), int(batch_size)
    if n == 1:
        return "the split holds one image"
    if batch_size == 1:
        return "batch_size=1 makes every batch one image"
    if n % batch_size == 1:
        return (f"the last batch of {what} holds one image ({n} images in batches of "
                f"{batch_size})")
    return False


def _own_hook(hook):
    """Whether a forward hook is the learner's, not torch's own (lazy layers, pruning, spectral
    and weight norm compute the weights in theirs: the forward needs them)."""
    hook = getattr(hook, "func", hook)  # functools.partial
    owner = getattr(hook, "__module__", None) or type(hook).__module__ or ""
    return not (owner == "torch" or owner.startswith("torch."))


_HOOK_DICTS = ("_forward_pre_hooks", "_forward_hooks")
_GLOBAL_HOOK_DICTS = ("_global_forward_pre_hooks", "_global_forward_hooks")


@contextlib.contextmanager
def _hooks_set_aside(net):
    """The learner's forward hooks and pre-hooks (of ``net``'s modules, and global ones) set
    aside while a check runs the network, and put back whatever happens; yields whether there
    were any."""
    import torch.nn.modules.module as module_module

    kept = []  # (owner, attribute, the dict as it was)
    owners = [(m, _HOOK_DICTS) for m in net.modules()] if isinstance(net, nn.Module) else []
    owners.append((module_module, _GLOBAL_HOOK_DICTS))
    try:
        for owner, names in owners:
            for name in names:
                hooks = getattr(owner, name, None)
                if isinstance(hooks, dict) and any(map(_own_hook, hooks.values())):
                    kept.append((owner, name, hooks))
                    setattr(owner, name, type(hooks)(
                        (key, hook) for key, hook in hooks.items() if not _own_hook(hook)))
        yield bool(kept)
    finally:
        for owner, name, hooks in reversed(kept):  # the same dicts: the handles still remove
            setattr(owner, name, hooks)


def _hooks_only_if_needed(check, net, *args):
    """``check(net, *args)`` run first without the learner's forward hooks (a hook collecting
    activations per step must not see the checks' meta tensors and blank images), then, only if
    that fails or finds a problem, again with them: a hook may change what the network computes
    (padding its input, log_softmax on its output), and training runs it."""
    with _hooks_set_aside(net) as set_aside:
        try:
            result = check(net, *args)
        except Exception:
            if not set_aside:
                raise
            result = False
    if result is None or not set_aside:
        return result
    return check(net, *args)  # with the hooks: its verdict (or its error) is training's


def _input_problem(net, height, width, channels=1, batch_of_one=True):
    """``_shape_problem``, the learner's forward hooks run only if needed."""
    return _hooks_only_if_needed(_shape_problem, net, height, width, channels, batch_of_one)


def _shape_problem(net, height, width, channels=1, batch_of_one=True):
    """What is wrong when ``net`` cannot take a batch 1×channels×height×width, else None.
    ``batch_of_one``: whether a batch of one image will occur, or where (a forward that drops
    the batch dimension of one image, .squeeze(), works for the others; unknown: True)."""
    from lenet_book.shapes import ShapeError, describe, shape_by_pytorch, walk

    net = getattr(net, "_orig_mod", net)  # a torch.compile'd network: the network inside
    problem = _layer_settings_problem(net)
    if problem:  # the layer's own settings, not the images' size, are at fault
        return problem
    problem = _call_form_problem(net)
    if problem:  # net(X) itself cannot be called, whatever the images
        return problem
    layer_by_layer = _runs_layer_by_layer(net)
    if not layer_by_layer:  # the checker follows plain Sequential networks only:
        try:                # PyTorch itself, on a meta tensor (no data)
            out = shape_by_pytorch(net, (1, channels, height, width))
        except ShapeError:  # e.g. a forward that reads values: one image of zeros, for real
            out, said = _one_image_out(net, (1, channels, height, width))
            if said is not None:
                problem = (_channels_last_problem(net, height, width, channels)
                           or _fixed_batch_problem(net, said, (channels, height, width)))
                if problem:
                    return problem
                if not said.startswith("PyTorch says"):  # not torch refusing a shape
                    return (f"the network does not take {height}×{width} images (batches "
                            f"N×{channels}×{height}×{width}), or its forward has a mistake: "
                            f"for one image {said}; if it is written for other images, pass "
                            "as net a network built for these, e.g. models.lenet(); if not, "
                            "that line of the forward is the one to fix")
                return (f"the network does not take {height}×{width} images (batches "
                        f"N×{channels}×{height}×{width}): for one image {said}; "
                        "pass as net a network built for these images, e.g. models.lenet()")
            if not isinstance(out, tuple):
                return None  # not one tensor: named where the scores are used
        failure = None
    else:
        shapes, failure = walk(net, (1, channels, height, width))
    if failure is None:
        if layer_by_layer:
            out = shapes[-1] if shapes else (1, channels, height, width)
        if out != (1, NUM_CLASSES):
            batch = _batch_dimension_problem(net, out, (channels, height, width), batch_of_one)
            if batch is not None:  # the layers are right: the batch dimension is not
                squeezed, problem = batch
                return None if squeezed and not batch_of_one else problem
            extra = (f" (the {out[1] - NUM_CLASSES} scores beyond Fashion-MNIST's "
                     f"{NUM_CLASSES} classes would share the softmax and never be right: a head "
                     "made for another data set must be replaced)"
                     if len(out) == 2 and out[1] > NUM_CLASSES else "")
            return (f"the network gives an output of shape {out} for one image, but training "
                    f"needs one score per class, (1, {NUM_CLASSES}){extra}: end it with a layer "
                    f"of {NUM_CLASSES} outputs, e.g. nn.Linear(..., {NUM_CLASSES})")
        return None
    index, layer, shape, expects = failure
    return (_channels_last_problem(net, height, width, channels)
            or f"the network does not take {height}×{width} images "
            f"(batches N×{channels}×{height}×{width}): "
            f"its layer {index}, {describe(layer)}, gets shape {shape} but expects {expects}")


def _batch_dimension_problem(net, out, size, where=True):
    """(dropped, what is wrong) when ``net``'s output for one image, ``out``, lacks the batch
    dimension or has it last while a batch of two gives (2, 10) or (10, 2): a forward ending in
    .squeeze() (one image: (10,); ``dropped``: other batches work), or in scores.T. Told by the
    end it would send the reader to the last layer, which is right. ``where``: where a batch
    of one image occurs (True: may occur). Else None."""
    if out not in ((NUM_CLASSES,), (NUM_CLASSES, 1)):
        return None
    from lenet_book.shapes import ShapeError, shape_by_pytorch

    try:
        two = shape_by_pytorch(net, (2, *size))
    except ShapeError:
        two, _ = _one_image_out(net, (2, *size))
    except Exception:  # what the network cannot take is named by the usual message
        return None
    if out == (NUM_CLASSES,) and two == (2, NUM_CLASSES):
        return True, (f"the forward drops the batch dimension of a single image (a .squeeze()?): "
                      f"it gives shape (2, {NUM_CLASSES}) for a batch of 2 images but "
                      f"({NUM_CLASSES},) for one, where training and evaluate need (1, "
                      f"{NUM_CLASSES}), and "
                      + (where if isinstance(where, str) else "a batch of one image may occur "
                         "(the last batch of an epoch, or of evaluate)")
                      + "; use .squeeze(-1), or .flatten(1) for N×10×1×1 outputs, or leave it "
                      "out")
    if out == (NUM_CLASSES, 1) and two == (NUM_CLASSES, 2):
        return False, (f"the network's output is transposed: for a batch of 2 images it gives "
                       f"shape ({NUM_CLASSES}, 2), one column per image, but training needs one "
                       f"row per image, (2, {NUM_CLASSES}); return the scores as the last layer "
                       "gives them, not scores.T (or .t(), .transpose(0, 1))")
    return None


def _fixed_batch_problem(net, said, size):
    """A forward that reshapes with the batch size written in, x.view(256, -1): one image
    fails with PyTorch's "shape '[256, -1]' is invalid", and a batch of 256 runs. Blamed on the
    images' size, it would send the reader to another network. Else None."""
    # the batch size is among the numbers PyTorch names ("shape '[256, -1]' is invalid",
    # "(16x25 and 400x120)"): a batch of each of the first few is tried (failing calls only)
    numbers_named = dict.fromkeys(int(n) for n in re.findall(r"\d+", said) if 1 < int(n) <= 4096)
    for batch in list(numbers_named)[:4]:
        out, _ = _one_image_out(net, (batch, *size))
        if out is not None and out[0] == batch:
            break
    else:
        return None
    return (f"the network's forward reshapes with a fixed batch size of {batch}: it runs on a "
            f"batch of {batch} images but not on one ({said}), and the last "
            "batch of an epoch and evaluate's batches hold other numbers of images; reshape "
            "with the batch's own size, x.view(x.size(0), -1) or x.flatten(1)")


def _call_form_problem(net):
    """Why ``net(X)``, with the images alone, cannot be called: a list or dict of layers (no
    forward of its own), or a forward that needs more arguments than the images; else None.
    Found by running it, it would be blamed on the images' size."""
    if isinstance(net, torch.jit.ScriptModule):  # compiled by TorchScript: tried by running it
        return None
    own = inspect.getattr_static(type(net), "forward", None)
    if own is inspect.getattr_static(nn.Module, "forward"):  # torch's placeholder: none defined
        if isinstance(net, (nn.ModuleList, nn.ModuleDict)):
            layers = "layers" if isinstance(net, nn.ModuleList) else "layers.values()"
            return (f"the network is an nn.{type(net).__name__}, which holds layers but has no "
                    "forward of its own, so it cannot be called as net(X); wrap the layers in "
                    f"nn.Sequential(*{layers}), which runs them one after the other")
        return (f"the network, {_a_kind(net)}, has no forward method, so it cannot be "
                "called as net(X); define forward(self, x) returning the scores")
    try:
        signature = inspect.signature(net.forward)
    except (TypeError, ValueError):  # e.g. a scripted network: tried by running it
        return None
    try:
        signature.bind(None)
    except TypeError:
        needed = [p.name for p in list(signature.parameters.values())[1:]
                  if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        example = f" (e.g. {needed[0]}=None)" if needed else ""
        if not signature.parameters:
            return ("the network's forward takes no arguments, but it is called as net(X), "
                    "with the images; define it as forward(self, x), returning the scores")
        return (f"the network's forward takes {signature}, but it is called as net(X), with "
                f"the images alone; give its other arguments defaults{example}, or wrap it in "
                "a module whose forward(self, x) calls it with them")
    return None


def _channels_last_problem(net, height, width, channels):
    """Images N×H×W×C (channels last, as PIL and numpy keep them) given where the network takes
    N×C×H×W: the last size is the first convolution's in_channels and the moved batch fits."""
    first = next((m for m in net.modules() if isinstance(m, nn.modules.conv._ConvNd)), None)
    if (first is None or width != first.in_channels or channels == first.in_channels
            or _input_problem(net, channels, height, width) is not None):
        return None
    return (f"the images' channels come last (batches N×{channels}×{height}×{width}, height × "
            f"width × channels), but the network takes them first, N×{width}×{channels}×"
            f"{height}; move them: X.permute(0, 3, 1, 2)")


def _layer_settings_problem(net):
    """What is wrong with a layer of ``net`` that PyTorch refuses whatever the images' size (a
    pooling layer padded by more than half its window), naming the layer and its setting; else
    None. Found by the shape rules too, it would be blamed on the images ("does not take 28×28
    images")."""
    from lenet_book.shapes import _pool_padding_problem, describe, hxw, square

    for name, layer in net.named_modules():
        bad = _pool_padding_problem(layer)
        if bad:
            kernel, padding, most = bad
            fix = most[0] if most[0] == most[1] else most
            where = f"its layer {name}" if name else "it"
            return (f"the network cannot run, whatever the images' size: {where}, "
                    f"{describe(layer)}, is padded by {square(padding)}, more than half its "
                    f"{hxw(kernel)} window, and PyTorch allows a pooling layer a padding of at "
                    f"most half its window ({square(most)} here); build it with padding={fix} "
                    f"or less, e.g. nn.{type(layer).__name__}({layer.kernel_size!r}) without "
                    "padding as in LeNet-5")
    return None


def _runs_layer_by_layer(net):
    """Whether ``net`` runs its layers one after the other, as the shape rules follow them: an
    nn.Sequential, and every Sequential in it, with Sequential's own forward (a subclass with
    its own, e.g. one that pads the images first, is run by PyTorch as a whole)."""
    return isinstance(net, nn.Sequential) and all(
        type(m).forward is nn.Sequential.forward
        for m in net.modules() if isinstance(m, nn.Sequential))


def _one_image_out(net, shape):
    """(output shape, None), or (None, PyTorch's first line) when ``net`` cannot take one image
    of zeros of ``shape``: run in eval mode without gradients, the modes and batch-norm
    statistics put back (the meta run of ``shape_by_pytorch`` failed, e.g. a forward that reads
    values)."""
    params = [*net.parameters(), *net.buffers()]
    device = params[0].device if params else "cpu"
    dtype = next((p.dtype for p in params if p.is_floating_point()), torch.float32)
    try:
        with modes_kept(net), buffers_kept(net), torch.no_grad():
            try:
                out = net.eval()(torch.zeros(shape, device=device, dtype=dtype))
            except Exception:  # e.g. a forward dividing by the largest pixel: a grey image
                out = net.eval()(torch.full(shape, 0.5, device=device, dtype=dtype))
    except Exception as error:  # whatever the network raises for an input it cannot take
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        if _is_forward_bug(error):  # a mistake of Python in forward: no size would help
            raise ValueError(f"the network's forward raised {type(error).__name__}: {first} "
                             "(most likely a mistake in the forward's code rather than the "
                             "images' size: see the forward's line in the traceback above)"
                             ) from error
        return None, _who_says(error, first)
    return (tuple(out.shape) if isinstance(out, torch.Tensor) else None), None


def _who_says(error, first):
    """``first`` (the error's first line) quoted with whoever raised it: PyTorch (a frame of
    torch's last), or the forward's own code (Python or the learner: its type named, as "'28'"
    alone, a KeyError's, means nothing)."""
    traceback = error.__traceback__
    while traceback is not None and traceback.tb_next is not None:
        traceback = traceback.tb_next
    file = traceback.tb_frame.f_code.co_filename if traceback is not None else ""
    if isinstance(error, RuntimeError):  # torch's own refusal (F.linear, view: from C)
        said = f"PyTorch says {first!r}"
    elif str(Path(torch.__file__).parent) not in file:
        said = f"its forward raised {type(error).__name__}: {first}"
    else:
        said = f"PyTorch raised {type(error).__name__}: {first}"  # e.g. a ModuleDict's key
    return said + _forward_line(error)


def _forward_line(error):
    """Where the learner's code raised ``error``: the last frame outside torch and lenet_book,
    as ' (in forward, line 12: x = self.layers[i](x))', or ''."""
    import linecache

    skip = (str(Path(torch.__file__).parent), str(Path(__file__).resolve().parent))
    traceback, found = error.__traceback__, None
    while traceback is not None:
        code = traceback.tb_frame.f_code
        if not code.co_filename.startswith(skip):
            found = (code.co_name, traceback.tb_lineno,
                     linecache.getline(code.co_filename, traceback.tb_lineno).strip())
        traceback = traceback.tb_next
    if found is None:
        return ""
    name, line, text = found
    return f", at line {line} of {name}{': ' + text if text else ''}"


def _is_forward_bug(error):
    """Whether ``error``, raised by a network's forward, is a mistake of Python (a misspelt
    attribute, an undefined name, an import), not PyTorch refusing a shape or a dtype
    (RuntimeError, IndexError for a dimension, ValueError for a batch-norm input). A KeyError,
    TypeError or ZeroDivisionError may come from a forward written for another image size (a
    dict of heads by width, a check of its own), so they keep the size's words."""
    if _raised_by_lenet_book(error):  # a layer of the book's: its own words already
        return False
    return isinstance(error, (AttributeError, NameError, ImportError))


FUNCTIONS = ("optimizer", "scheduler", "loss_fn", "batch_transform", "predict", "on_epoch")
FLAGS = ("cuda_graph", "channels_last", "compile")
COMPILE_MODES = (None, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def _check_grad_mode(name="training"):
    """Training needs gradients: inside torch.no_grad() or torch.inference_mode() (e.g. left
    over from an evaluation cell) every loss comes without them, whatever the loss is."""
    if torch.is_inference_mode_enabled():
        block = "torch.inference_mode()"
    elif not torch.is_grad_enabled():
        block = "torch.no_grad() (or torch.set_grad_enabled(False))"
    else:
        return
    raise ValueError(f"{name} is called inside {block}, where PyTorch computes no gradients, so "
                     "nothing can be trained (the loss is not at fault); call it outside that "
                     "block, e.g. after the `with` block ends")


def _check_trainable(net, lazy=False):
    """Built layers (not lazy ones; with ``lazy``, lazy ones are allowed, to be built by the
    caller before its first step), values (not the meta device), weights that are not
    inference tensors, at least one of them trainable. Returns the parameters."""
    if not lazy:
        check_layers_built(net, "be trained")  # reading an unbuilt weight fails with torch's words
    _check_values(net)
    params = list(net.parameters())
    if any(p.is_inference() for p in params
           if not isinstance(p, nn.parameter.UninitializedParameter)):
        raise ValueError("the network was built inside torch.inference_mode(), so its weights "
                         "are inference tensors, which cannot be trained; build it outside that "
                         "block (e.g. net = models.lenet() before `with torch.inference_mode():`)")
    if not any(p.requires_grad for p in params):
        raise ValueError("the network has no trainable parameters (every requires_grad is False, "
                         "or it has none): training could not change it; for frozen layers, "
                         "leave requires_grad=True on the layers to train")
    return params


def _check_network_for_training(net, fused):
    """Trainable float32 weights (``to_float`` gives float32 batches); for ``train_fused``, a
    network that cross-entropy and the largest score fit."""
    if not fused:  # train_fused's torch.func computes its gradients even so
        _check_grad_mode()
    params = _check_trainable(net)
    other = sorted({str(p.dtype) for p in params if p.dtype != torch.float32})
    if other:
        raise TypeError(f"the network's weights must be float32, as the batches are (to_float); "
                        f"it has {', '.join(other)} weights: convert it with net.float() "
                        "(for mixed precision use amp_dtype)")
    if fused and any(type(m).__name__ == "RBF" for m in net.modules()):
        raise ValueError("train_fused trains with cross-entropy on the scores and predicts the "
                         "largest one; the 1998 network ends in RBF penalties (the smallest "
                         "wins, with its own loss): train it with lenet_book.train.train and "
                         "recipes.build(recipes.ORIGINAL)")
    if fused and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules()):
        raise ValueError("train_fused computes the gradients of a pure function of the weights "
                         "(torch.func), which cannot update batch normalisation's running "
                         "statistics; train this network with lenet_book.train.train (chapter "
                         "6's recipes: recipes.build)")


def _compiler_default(name, value):
    """Whether ``value`` is torch.compile's default for the option ``name``."""
    defaults = {"mode": (None, "default"), "backend": ("inductor",), "options": (None,)}[name]
    return value is None and None in defaults or isinstance(value, str) and value in defaults


def _check_fused_options(options):
    """``train_fused``'s compiler options: checked here, not at the first step inside torch."""
    backend, mode = options["backend"], options["mode"]
    if not callable(backend):
        import torch._dynamo  # noqa: F401  (list_backends; imported by torch.compile anyway)

        known = torch._dynamo.list_backends(exclude_tags=())
        if not isinstance(backend, str) or backend not in known:
            raise ValueError(f"backend must be one of torch.compile's backends {known}, got "
                             f"{_brief(backend)}")
        _check_backend_loads(backend)
    if mode not in COMPILE_MODES:
        raise ValueError(f"mode must be one of {COMPILE_MODES}, got {_brief(mode)}")
    layers = options["bf16_layers"]
    if isinstance(layers, (str, int)) or not isinstance(layers, (tuple, list, set, frozenset)):
        raise TypeError(f"bf16_layers must be a list of layer names, e.g. ['3'] or [3], got "
                        f"{_got(layers)}")
# Backends torch lists whose compiler is another package, imported only at the first compiled
# step: backend -> (the module it imports, the package that installs it)
_BACKEND_PACKAGES = {"tvm": ("tvm", "apache-tvm"), "openxla": ("torch_xla", "torch_xla"),
                    "openxla_eval": ("torch_xla", "torch_xla")}


def _check_backend_loads(backend):
    """A backend torch lists but cannot load is refused here, not inside dynamo's traceback at
    the first compiled step."""
    try:
        torch._dynamo.lookup_backend(backend)  # a backend of a package's entry point is imported
    except Exception as error:
        raise ValueError(f"backend={backend!r} cannot be loaded ({type(error).__name__}: "
                         f"{error}); use backend='inductor' (the default) or 'eager'") from None
    if backend in _BACKEND_PACKAGES:
        module, package = _BACKEND_PACKAGES[backend]
        if importlib.util.find_spec(module) is None:  # found without importing it
            raise ValueError(f"backend={backend!r} compiles with the package {package} (import "
                             f"{module}), which is not installed: install it (pip install "
                             f"{package}), or use backend='inductor' (the default) or 'eager'")


AMP_DTYPES = (None, torch.float16, torch.bfloat16)


def _check_amp_dtype(amp_dtype):
    """float16's small range makes small gradients underflow to 0 without loss scaling (a
    torch.amp.GradScaler), which train_step does not do; bfloat16 has float32's range."""
    if amp_dtype not in AMP_DTYPES:
        raise TypeError(f"amp_dtype must be None, torch.float16 or torch.bfloat16, "
                        f"got {_brief(amp_dtype)}")
    if amp_dtype is torch.float16:
        raise ValueError("amp_dtype=torch.float16 needs loss scaling (small gradients underflow "
                         "to 0 in float16), and train_step does not scale the loss: use "
                         "amp_dtype=torch.bfloat16 (float32's range, no scaling needed), or for "
                         "float16 (e.g. on a GPU without fast bfloat16) write your own loop with "
                         "a torch.amp.GradScaler: scaler.scale(loss).backward(); "
                         "scaler.step(optimizer); scaler.update()")


def check_function(name, value):
    """One of ``train``'s function arguments: callable (or None where it has a default)."""
    if value is None and name == "predict":
        raise TypeError("predict must be a function of the scores, got None; leave predict out "
                        "for the default, the largest score (lenet_book.train.argmax)")
    _check_not_built(name, value)
    if value is not None and not callable(value):
        got = _brief(value)
        kind = "" if got.startswith(("a ", "an ")) else f" ({_a_kind(value)})"
        raise TypeError(f"{name} must be a function (or None), got {got}{kind}; see the "
                        "docstring of train")
    _check_not_a_generator(name, value)
    if not isinstance(value, type):
        if value is not None and name in CALLED_WITH:
            _check_parameters(name, value)
        return
    if name == "optimizer":
        raise TypeError(f"optimizer must be a function that builds one, not the class "
                        f"{value.__name__} (it would get torch's default settings, not lr): "
                        "e.g. lambda params: torch.optim.SGD(params, lr=0.1)")
    if name == "scheduler":
        raise TypeError(f"scheduler must be a function that builds one, not the class "
                        f"{value.__name__} (train calls it with the optimizer, the number of "
                        "epochs and the steps per epoch, which the class would take for its own "
                        "settings): e.g. lambda opt, epochs, steps: torch.optim.lr_scheduler."
                        "OneCycleLR(opt, max_lr=0.1, epochs=epochs, steps_per_epoch=steps)")
    _check_not_a_class(name, value)


def _check_not_a_generator(name, value):
    """A generator function (one with ``yield``) or an ``async def`` runs none of its body when
    called: it returns a generator or a coroutine, which train ignores (on_epoch) or misreads."""
    if not callable(value) or isinstance(value, type):
        return
    for function in (value, value.__call__):  # an object's __call__ too
        if inspect.isasyncgenfunction(function):
            kind, made, fix = ("an async generator function (async def with yield)",
                               "an async generator", "define it with def, without yield")
        elif inspect.isgeneratorfunction(function):
            kind, made = "a generator function (it contains yield)", "a generator"
            fix = ("remove the yield" if name == "on_epoch"
                   else "return the value instead of yielding it")
        elif inspect.iscoroutinefunction(function):
            kind, made, fix = ("an async function (async def)", "a coroutine",
                               "define it with def, not async def")
        else:
            continue
        use = ("on_epoch is called once per epoch and its result is ignored" if name == "on_epoch"
               else f"train uses what {name} returns")
        raise TypeError(f"{name} is {kind}: calling it only makes {made}, and none of its body "
                        f"runs; {use}: {fix}")


# what each function argument is, with an example, for _check_not_a_class's messages
_FUNCTION_KINDS = {
    "loss_fn": ("a loss", "nn.CrossEntropyLoss()"),
    "predict": ("a prediction rule", "lambda scores: scores.argmax(dim=1)"),
    "batch_transform": ("a transform", "lambda images, generator: images.flip(-1)"),
    "on_epoch": ("a function of the epoch's record", "lambda record: print(record)"),
}


def _check_not_a_class(name, value, where=""):
    """A class given for a function (brackets forgotten): calling it would build an instance
    with the arguments meant for the function, e.g. a logger's __init__ given the epoch's
    record, and fail with Python's words or, if they fit, run silently without its effect."""
    if not isinstance(value, type) or name not in _FUNCTION_KINDS:
        return
    what, example = _FUNCTION_KINDS[name]
    if issubclass(value, nn.Module):
        raise TypeError(f"{where}{name} must be a function or a layer, not the class "
                        f"{value.__name__}: pass one, {name}={value.__name__}() (with brackets)")
    if any("__call__" in vars(k) for k in value.__mro__[:-1]):  # its instances are callable
        raise TypeError(f"{where}{name} is the class {value.__name__}, not {what}: pass an "
                        f"instance, {name}={value.__name__}() (with brackets)")
    raise TypeError(f"{where}{name} must be {what}, got the class {value.__name__}, whose "
                    f"instances cannot be called; e.g. {name}={example}")


def _check_not_built(name, value):
    """An optimizer or a schedule already built, given where train takes a function that builds
    one (train builds them itself, for the network it trains)."""
    if name == "optimizer" and isinstance(value, torch.optim.Optimizer):
        kind = type(value).__name__
        cls = f"torch.optim.{kind}" if getattr(torch.optim, kind, None) is type(value) else kind
        rate = value.param_groups[0].get("lr") if value.param_groups else None
        rate = rate if isinstance(rate, float) else 0.1
        raise TypeError(f"optimizer must be a function that builds the optimizer, not an "
                        f"optimizer already built (a {kind}): train builds it itself, from the "
                        f"parameters of the network it trains; pass optimizer=lambda params: "
                        f"{cls}(params, lr={rate:g})")
    if name == "scheduler" and isinstance(value, (torch.optim.lr_scheduler.LRScheduler,
                                                  torch.optim.lr_scheduler.ReduceLROnPlateau)):
        kind = type(value).__name__
        raise TypeError(f"scheduler must be a function that builds the schedule, not a schedule "
                        f"already built (a {kind}): train builds it itself, for the optimizer it "
                        "builds; pass scheduler=lambda optimizer, epochs, steps: "
                        f"torch.optim.lr_scheduler.{kind}(optimizer, ...), e.g. lambda optimizer, "
                        "epochs, steps: torch.optim.lr_scheduler.OneCycleLR(optimizer, "
                        "max_lr=0.1, epochs=epochs, steps_per_epoch=steps)")


# What train calls these functions with: (the arguments, what they are, an example)
CALLED_WITH = {
    "optimizer": (1, "one argument, the network's parameters",
                  "lambda params: torch.optim.SGD(params, lr=0.1)"),
    "scheduler": (3, "three arguments, (optimizer, epochs, steps per epoch)",
                  ("lambda opt, epochs, steps: torch.optim.lr_scheduler.OneCycleLR(opt, "
                   "max_lr=0.1, epochs=epochs, steps_per_epoch=steps)")),
    "on_epoch": (1, "one argument, the epoch's dict (epoch, loss, train_acc, ...)",
                 "lambda record: print(record)"),
}


def _check_parameters(name, function):
    """A function that train calls (``CALLED_WITH``) must take the arguments it is given: checked
    on its signature before any training, not after an epoch (a function whose signature
    cannot be read, e.g. some built-ins, is taken as it is)."""
    count, what, example = CALLED_WITH[name]
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(*range(count))
    except TypeError:
        raise TypeError(f"{name} must be a function of {what}, e.g. {example}; this one takes "
                        f"{signature}") from None


HISTORY_KEYS = ("epoch", "loss", "train_acc", "setup_seconds")  # what every epoch's dict holds


_TRAIN_OPTIONS = ("num_epochs", "batch_size", "lr", "optimizer", "scheduler", "loss_fn",
                  "batch_transform", "predict", "seed", "on_epoch", "cuda_graph", "amp_dtype",
                  "channels_last", "compile")  # train's keyword arguments


def _check_eval_sets(eval_sets):
    """{name: (images, labels)}, each name a string whose ``<name>_acc`` is a key of its own."""
    if isinstance(eval_sets, numbers.Integral) and not isinstance(eval_sets, bool):
        # train(net, data, 5): the number of epochs, given where eval_sets goes
        raise TypeError(f"eval_sets must be a dict {{name: (images, labels)}}, got the int "
                        f"{eval_sets}: the third argument is eval_sets; for {eval_sets} "
                        f"epoch{'s' if eval_sets != 1 else ''} write num_epochs={eval_sets}")
    if not isinstance(eval_sets, dict):
        raise TypeError(f"eval_sets must be a dict {{name: (images, labels)}}, "
                        f"got {_a_kind(eval_sets)}")
    options = [name for name, split in eval_sets.items()
               if name in _TRAIN_OPTIONS and not (isinstance(split, (tuple, list))
                                                  and len(split) == 2)]
    if options:
        # train(net, data, options): the ** forgotten before recipes.build's options
        raise TypeError(f"eval_sets must be a dict {{name: (images, labels)}}, but it holds "
                        f"train's options ({', '.join(options[:4])}"
                        f"{', ...' if len(options) > 4 else ''}): these look like the options "
                        "of recipes.build, given as the third argument, eval_sets; unpack them "
                        "with **: train(net, data, **options), or train(net, data, "
                        "{'valid': val_data}, **options)")
    for name, split in eval_sets.items():
        if not isinstance(name, str):
            raise TypeError(f"eval_sets' names must be strings such as 'valid' (scored as "
                            f"valid_acc), got {name!r} ({_a_kind(name)})")
        if not name.strip():
            raise ValueError(f"eval_sets' names must be words such as 'valid' (scored as "
                             f"valid_acc), got {name!r}, which would be scored as {name}_acc")
        if name != name.strip() or name.endswith("_acc"):
            # the history's key, or a name with spaces: h[-1]["val_acc"] would not find it
            word = name.strip()[:-len("_acc")] if name.strip().endswith("_acc") else name.strip()
            word = (word or "valid") + ("_eval" if f"{word}_acc" in HISTORY_KEYS else "")
            raise ValueError(f"eval_sets[{name!r}] would be scored as {name + '_acc'!r}: train "
                             f"adds _acc to each name itself; name it {word!r} (scored as "
                             f"{word + '_acc'!r})")
        if f"{name}_acc" in HISTORY_KEYS:
            raise ValueError(f"eval_sets[{name!r}] would be scored as {name}_acc, which the "
                             "history already holds (the accuracy on the training batches); "
                             f"give it another name, e.g. {name + '_eval'!r}")
        if not (isinstance(split, (tuple, list)) and len(split) == 2):
            raise TypeError(f"eval_sets[{name!r}] must be a pair (images, labels), "
                            f"got {_a_kind(split)}")


def _check_rbf_options(net, options):
    """The 1998 network's RBF output gives penalties: the default loss and rule would misread
    them (the largest penalty is the worst class, not the best)."""
    from lenet_book.train import argmax

    rbf = any(type(m).__name__ == "RBF" for m in net.modules())
    default_loss, default_rule = options.get("loss_fn") is None, options.get("predict") is argmax
    if rbf and (default_loss or default_rule):
        # name only what is at its default: the other one was chosen
        wrong = ("the paper has its own loss, so the default cross-entropy and largest score "
                 "would train and score it wrongly; pass loss_fn and predict "
                 "(original.paper_loss, original.predict)" if default_loss and default_rule else
                 "loss_fn is the default, cross-entropy, a loss for scores (the largest wins), "
                 "which would train every image away from its class; pass "
                 "loss_fn=original.paper_loss" if default_loss else
                 "predict is the default, the largest score (argmax), which would pick the "
                 "largest penalty, the worst class; pass predict=original.predict")
        raise ValueError("this network ends in RBF penalties (the 1998 LeNet-5, chapter 5), where "
                         f"the smallest penalty wins: {wrong}, or build it all with "
                         "recipes.build(recipes.ORIGINAL)")
    if options.get("predict") is not None and rbf:
        _check_predict_picks("train", options["predict"], penalties=True)
    return rbf


def _check_loss_direction(loss_fn, penalties):
    """On fixed outputs: a loss must fall when the right class's output moves the right way,
    down for the 1998 network's RBF penalties (the smallest wins), up for scores (the largest
    wins). A loss made for the other kind would train every image away from its class."""
    generator = torch.Generator().manual_seed(0)
    outputs = (torch.rand(4, NUM_CLASSES, generator=generator) + penalties).requires_grad_()
    labels = torch.tensor([0, 3, 5, 9])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loss_fn(outputs, labels).backward()
    except Exception:
        return  # check_loss and the first batch's probes say what is wrong
    gradient = outputs.grad
    if gradient is None or gradient.shape != outputs.shape:
        return
    right = gradient.gather(1, labels[:, None])
    if penalties and bool((right < 0).all()):
        raise ValueError("this network ends in RBF penalties (the 1998 LeNet-5, chapter 5), where "
                         "the smallest penalty wins, but loss_fn falls when the right class's "
                         "penalty grows (a loss for scores, such as cross-entropy), so training "
                         "would push every image away from its class; use original.paper_loss "
                         "(with predict=original.predict), or build it all with "
                         "recipes.build(recipes.ORIGINAL)")



def _check_cuda_graph(options, device):
    if not options.get("cuda_graph"):
        return
    if device.type != "cuda":
        raise ValueError(f"cuda_graph=True needs the data on a CUDA device, it is on {device}; "
                         "pass cuda_graph=False to train without a graph")
    if options.get("scheduler") is not None or options.get("batch_transform") is not None:
        raise ValueError("cuda_graph=True records a fixed epoch: it cannot step a schedule or "
                         "transform batches; train without cuda_graph")


def check_training(net, train_data, eval_sets=None, num_epochs=10, batch_size=256, lr=0.9, seed=0,
                   test_data=None, amp_dtype=None, **options):
    """Refuse, before any training, arguments of ``train`` (or ``train_fused``, whose
    ``test_data`` is an eval set) that would fail or mislead later. ``train`` passes all of its
    arguments; the functions among them must be callable or None. Returns ``num_epochs``,
    ``batch_size`` and ``seed`` as ints (numpy integers are accepted)."""
    check_network(net)
    check_layers_built(net, "be trained")
    if "bf16_layers" not in options:  # train_fused's torch.func computes its gradients even so
        _check_grad_mode("train")
    for name in FUNCTIONS:
        if name in options:
            check_function(name, options[name])
    check_flags(**{name: options[name] for name in FLAGS if name in options})
    if options.get("compile") and hasattr(net, "_orig_mod"):
        # torch.compile of a compiled network gives a function, which train_step would name
        raise TypeError("compile=True compiles the network, but net is already compiled "
                        "(torch.compile, e.g. by speed.compile_and_warm_up), and compiling it "
                        "again gives a function, not a network: pass the network itself, "
                        "net._orig_mod, or train the compiled one as it is with compile=False")
    _check_amp_dtype(amp_dtype)
    fused = "bf16_layers" in options
    if fused and test_data is None:
        raise ValueError("train_fused scores the test set after every epoch, as train_fast does: "
                         "pass test_data=(images, labels), e.g. the second pair that "
                         "fast.load_fashion_mnist_tensors returns; to train without scoring, use "
                         "lenet_book.train.train without eval_sets")
    if isinstance(test_data, numbers.Integral) and not isinstance(test_data, bool):
        # train_fused(net, data, 5): the number of epochs, given where test_data goes
        raise TypeError(f"test_data must be a pair (images, labels), got the int {test_data}: "
                        f"the third argument is test_data; for {test_data} "
                        f"epoch{'s' if test_data != 1 else ''} write num_epochs={test_data}")
    if test_data is not None:
        check_pair("test_data", test_data)
        eval_sets = {"test": test_data}
    check_whole("num_epochs", num_epochs)
    check_whole("batch_size", batch_size, most=BATCH_MAX)
    check_number("lr", lr)
    if isinstance(lr, numbers.Rational) and not isinstance(lr, numbers.Integral):
        raise TypeError(f"lr must be a float such as 0.1, got {lr!r} ({_a_kind(lr)}), which "
                        f"torch's optimizers cannot use; write lr={float(lr)!r}")
    check_whole("seed", seed, least=0, most=SEED_MAX)
    check_pair("train_data", train_data)
    if fused:
        _check_fused_options(options)
    _check_network_for_training(net, fused)
    _check_finite_before_training(net)
    _check_eval_sets(eval_sets or {})
    splits = {"train_data": train_data}
    splits.update({"test_data" if test_data is not None else f"eval_sets[{name!r}]": split
                   for name, split in (eval_sets or {}).items()})
    for name, (images, labels) in splits.items():
        check_split(name, images, labels)
        if images.device != train_data[0].device:
            raise ValueError(f"{name} is on {images.device} but train_data on "
                             f"{train_data[0].device}; move every split to one device")
        if "train" not in name.lower() and "fit" not in re.findall("[a-z]+", name.lower()):
            # not 'train_data' itself, nor a set named to score training images ('train_eval')
            _check_not_trained_on(name, images, train_data[0])
    for name, (images, labels) in splits.items():
        # train's batches, and evaluate's (its default batch_size) for the eval sets
        one = (_batch_of_one(len(labels), batch_size) if name == "train_data"
               else _batch_of_one(len(labels), 2500, "evaluate"))
        problem = _input_problem(net, *images.shape[1:], batch_of_one=one)
        if problem:
            raise ValueError(problem if name == "train_data" else f"{name}: {problem}")
    rbf = False if fused else _check_rbf_options(net, options)
    device = train_data[0].device
    _check_cuda_graph(options, device)
    check_predict(options.get("predict", lambda scores: scores.argmax(dim=1)), device)
    if options.get("loss_fn") is not None:
        check_loss(options["loss_fn"], device)
        if rbf:
            _check_loss_direction(options["loss_fn"], penalties=True)
    if not rbf:
        _remember_trained(net, _check_loss_and_predict_agree("train", options.get("loss_fn"),
                                                              options.get("predict")))
    _check_softmax_output(net, options.get("loss_fn"))
    if options.get("optimizer") is not None and not _train_s_own(options["optimizer"]):
        _check_optimizer(net, options["optimizer"], lr, device)
    n = len(train_data[1])
    _check_schedule(net, options, lr, int(num_epochs), -(-n // int(batch_size)), device)
    if ((batch_size == 1 or n % batch_size == 1)
            and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())):
        where = ("every batch holds one image" if batch_size == 1 or n == 1
                 else "the last batch of every epoch holds one image")
        raise ValueError(f"with {n} images in batches of {batch_size}, {where}, and batch "
                         "normalisation cannot normalise a batch of one; choose a batch size "
                         "that does not leave one image over, e.g. "
                         f"{batch_size + 1 if n % (batch_size + 1) != 1 else batch_size + 2}"
                         + (" (and at least 2 images)" if n < 2 else ""))
    _check_training_data(*train_data)
    # the first-batch check compares batch_transform's image size with the eval sets'
    _SCORED_SIZES.set((weakref.ref(train_data[0]), {
        name: tuple(images.shape[-2:]) for name, (images, _) in splits.items()
        if name != "train_data"}))
    return int(num_epochs), int(batch_size), int(seed)


# (train_data's images, weakly, {eval set: H×W}) of the training being checked: read once by
# its first-batch check (_check_kept_size)
_SCORED_SIZES = contextvars.ContextVar("scored_sizes", default=(lambda: None, {}))


def _check_kept_size(net, images, transformed):
    """A batch_transform that changes the image size (a pad without its crop, a resize) trains
    LeNet on images of one size while the eval sets score it on another, its pooling grid
    falling otherwise: refused when an eval set holds images of the size it was given and it
    returns another. A network that takes twice or half the size too (global pooling) is
    trained on crops and scored on whole images on purpose: left alone."""
    given, out = tuple(images.shape[-2:]), tuple(transformed.shape[-2:])
    trained_on, sizes = _SCORED_SIZES.get()
    if given == out or trained_on() is not images:
        return
    scored = [name for name, size in sizes.items() if size == given]
    height, width = given
    if scored and all(_input_problem(net, h, w) is not None  # takes no other size: LeNet's grid
                      for h, w in ((2 * height, 2 * width), (height // 2, width // 2))):
        raise ValueError(f"batch_transform returns {out[0]}×{out[1]} images from "
                         f"{given[0]}×{given[1]} ones, but {scored[0]} holds "
                         f"{given[0]}×{given[1]} images: the network would be trained on one "
                         "size and scored on another; keep the size (crop after padding, as "
                         "recipes.random_crop_flip does), or give eval sets of the size it "
                         "returns")


def _check_not_trained_on(name, images, train_images):
    """An eval set holding some of the training images themselves (a slice of them, e.g. the
    second half of split_validation given beside the whole training set) is scored on images the
    network trains on: its accuracy would be partly training accuracy. A set named for the
    training images ('train_eval', 'fit') scores them on purpose: not looked at."""
    shared = _shared_images(images, train_images)
    if shared:
        called = _CALLED.get()
        if called is not None and "eval_sets" not in inspect.signature(called).parameters:
            name = "test_data"  # train_fast's, in the words of the call the learner wrote
        raise ValueError(f"{name} holds {shared:,} of train_data's own images (the same memory: "
                         "a slice of it), so its accuracy would be partly accuracy on images the "
                         "network trains on; train on the rest: fit_data, valid_data = "
                         "split_validation(train_data), then train(net, fit_data, "
                         "{'valid': valid_data}, ...) (to score training images on purpose, "
                         "name the set so, e.g. {'train_eval': ...})")


def _shared_images(images, train_images):
    """How many of ``images`` are images of ``train_images`` itself: the same memory, laid out
    alike, starting at one of its images (0 for separate tensors, or for the halves of one
    tensor, even interleaved ones such as x[::2] and x[1::2])."""
    if (images.untyped_storage().data_ptr() != train_images.untyped_storage().data_ptr()
            or images.dtype != train_images.dtype or images.numel() == 0
            or train_images.numel() == 0 or images.shape[1:] != train_images.shape[1:]
            or images.stride()[1:] != train_images.stride()[1:]):
        return 0

    def starts(tensor):
        return {tensor.storage_offset() + i * tensor.stride(0) for i in range(len(tensor))}

    train_starts = starts(train_images)
    return sum(tensor_start in train_starts for tensor_start in
               (images.storage_offset() + i * images.stride(0) for i in range(len(images))))


def _check_training_data(images, labels):
    """Training data that cannot be the pictures meant: blank images, 0/1 masks (pixels are
    0-255), or a single class (one max of the images; the labels' min/max as check_split)."""
    high = images.max().item()
    if high == 0:
        raise ValueError("train_data: every image is blank (all pixels 0); give the data set's "
                         f"images ({FROM_LOADER})")
    if high <= 1:
        raise ValueError("train_data: the pixels are at most 1, but they must be 0-255 "
                         "(uint8): 0/1 masks or booleans would train on near-black images; "
                         "multiply them by 255, e.g. (images * 255).to(torch.uint8)")
    low, high = (value.item() for value in torch.aminmax(labels))
    if len(labels) > 1 and low == high:
        raise ValueError(f"train_data: every label is class {low}, so the network would learn "
                         "to answer that class whatever the image; give labels of the classes "
                         "to tell apart")


BATCH_MAX = 2**62  # larger batch sizes overflow torch's int64 sizes (one batch holds everything)


def _check_softmax_output(net, loss_fn, who="train"):
    """Cross-entropy applies log-softmax itself: a network that already ends in nn.Softmax
    would train on the softmax of probabilities, whose gradients are far too small. ``who``:
    whose loss it is (FusedStep's is always cross-entropy)."""
    last = _final_layer(net)
    leaves = [last] if last is not None else []
    if (leaves and isinstance(leaves[-1], nn.Softmax)
            and (loss_fn is None or isinstance(loss_fn, nn.CrossEntropyLoss))):
        raise ValueError(f"{'' if who == 'train' else who + ': '}the network ends in "
                         f"nn.Softmax, but cross-entropy ({who}'s loss) applies "
                         "log-softmax to the scores itself: it would take the softmax twice and "
                         "barely learn; remove the final nn.Softmax (the largest score is still "
                         "the prediction)")
    squashed = leaves and _squashed_range(leaves[-1])
    if squashed and _is_cross_entropy(loss_fn):
        low, high = squashed
        floor = math.log(1 + (NUM_CLASSES - 1) * math.exp(low - high))
        layer = type(leaves[-1]).__name__
        raise ValueError(f"{'' if who == 'train' else who + ': '}the network ends in "
                         f"nn.{layer}, which squashes its outputs into "
                         f"({low:g}, {high:g}), but cross-entropy ({who}'s loss) reads them as "
                         f"raw scores: scores that differ by at most {high - low:g} keep the "
                         f"loss above {floor:.2f}, and the network barely learns; remove the "
                         f"final nn.{layer} (the largest score is still the prediction)")
    clipped = leaves and _clipped_scores(leaves[-1])
    if clipped and _is_cross_entropy(loss_fn):
        layer = type(leaves[-1]).__name__
        raise ValueError(f"{'' if who == 'train' else who + ': '}the network ends in "
                         f"nn.{layer}, which {clipped}, but cross-entropy ({who}'s loss) reads "
                         "its outputs as raw scores: a clipped score gets no gradient, so its "
                         "class stops learning, and where several scores are clipped to the "
                         "same value the prediction (the largest) is the lowest class number "
                         f"among them; remove the final nn.{layer} (the last layer's scores "
                         "need no activation)")


_SCORES_LIE = 10.0  # a trained network's scores lie within about ±10: clipping there matters


def _clipped_scores(layer):
    """What a final layer that clips the scores where they lie does to them (ReLU sets every
    negative one to 0; its gradient there is 0), said for the message; None for any other
    layer. A wide clamp, e.g. nn.Hardtanh(-30, 30) for numerical stability, touches only
    scores the softmax has already saturated: left alone. Hardtanh of a span of at most 2 is
    named by _squashed_range."""
    if isinstance(layer, nn.ReLU):
        return "sets every negative score to 0"
    if isinstance(layer, nn.Hardtanh) and (layer.min_val > -_SCORES_LIE  # ReLU6 too
                                           or layer.max_val < _SCORES_LIE):
        return f"clips every score to [{layer.min_val:g}, {layer.max_val:g}]"
    if isinstance(layer, nn.Threshold) and (layer.threshold > -_SCORES_LIE
                                            or layer.value > layer.threshold):
        return f"replaces every score of at most {layer.threshold:g} by {layer.value:g}"
    return None


def _final_layer(net):
    """The layer whose output a network returns, where its structure says so: the last layer of
    nn.Sequential blocks (Sequential's own forward) down to one without children; None for a
    module of one's own, whose forward may return any of its layers' outputs (a softmax kept for
    a predict_proba method, an activation defined after the last Linear)."""
    for _ in range(64):  # blocks within blocks
        if list(net.children()) == []:
            return net
        if not (isinstance(net, nn.Sequential) and type(net).forward is nn.Sequential.forward
                and len(net)):
            return None
        net = net[-1]
    return None


def _squashed_range(layer):
    """(low, high) of a squashing layer whose outputs span at most 2 (sigmoid, tanh, ...):
    as scores for cross-entropy they cannot become confident; else None. The 1998 network's
    ScaledTanh (±1.7159) spans more, and is left alone (ReLU6: _clipped_scores)."""
    if isinstance(layer, (nn.Sigmoid, nn.Hardsigmoid)):
        return 0.0, 1.0
    if isinstance(layer, (nn.Tanh, nn.Softsign)):
        return -1.0, 1.0
    if isinstance(layer, nn.Hardtanh) and layer.max_val - layer.min_val <= 2:
        return float(layer.min_val), float(layer.max_val)
    return None


def _check_optimizer(net, optimizer, lr, device):
    """The optimizer function, tried once on the network's parameters (nothing is stepped, and
    torch's random generators are put back): it must optimise those parameters, and an lr given
    beside it must be the one it uses."""
    built = _built_optimizer(net, optimizer, device)
    if not isinstance(built, torch.optim.Optimizer):
        return  # check_built says what is wrong, with the optimizer train builds
    _check_dense_gradients(built, "optimizer")
    ours = {id(p) for p in net.parameters()}
    params = [p for group in built.param_groups for p in group["params"]]
    if not params or any(id(p) not in ours for p in params):
        raise ValueError("optimizer must build an optimizer of the parameters it is given, e.g. "
                         "lambda params: torch.optim.SGD(params, lr=0.1); this one optimises "
                         "parameters of another network, so training would not change this one")
    _check_rates(built, "the optimizer function builds an optimizer with")
    # at the door (on the data's device: the network moves there later); check_built looks
    # again after the schedule
    _check_optimizer_settings(built, device=device)
    given = {id(p) for p in params}
    left = [name for name, p in net.named_parameters() if p.requires_grad and id(p) not in given]
    if left and _reads_params_twice(net, optimizer, device):
        raise ValueError(f"the optimizer function leaves {len(left)} trainable tensors of the "
                         f"network out (e.g. {left[0]}): it reads params more than once, but "
                         "params is a generator (net.parameters()), used up after one pass, so "
                         "the second list(params) is empty; call list(params) once and use "
                         "that list, e.g. def optimizer(params): params = list(params); return "
                         "torch.optim.SGD([{'params': params[:4]}, {'params': params[4:], "
                         "'lr': 0.01}], lr=0.1)")
    if left:
        raise ValueError(f"the optimizer function leaves {len(left)} trainable tensors of the "
                         f"network out (e.g. {left[0]}), so they would never learn: give it all "
                         "the parameters it is passed; to freeze layers on purpose, call "
                         "requires_grad_(False) on them first")
    rates = {group.get("lr") for group in built.param_groups}
    try:
        # 0.9 is train's default: told apart from an lr written by the caller (lr_written_noted)
        # isclose: a rate given as a float32 tensor, torch.tensor(0.1), is 0.1 too
        differs = ((float(lr) != 0.9 or _LR_WRITTEN.get())
                   and not any(math.isclose(float(rate), float(lr), rel_tol=1e-6)
                               for rate in rates))
    except (TypeError, ValueError):
        differs = False
    if differs and _made_by_build(optimizer):
        # its rate is the recipe's, written into the function: only a new build changes it
        recipe = ("recipes.ORIGINAL" if any(type(m).__name__ == "RBF" for m in net.modules())
                  else "recipe")
        raise ValueError(f"lr={lr} is not used: these options come from recipes.build, whose "
                         f"optimizer function has the recipe's learning rate, "
                         f"{', '.join(f'{float(r):g}' for r in rates)}, built in; set 'lr' in "
                         f"the recipe and build again, e.g. net, options = "
                         f"recipes.build({{**{recipe}, 'lr': {lr}}})"
                         + ("" if recipe != "recipe" else " with the recipe you built from"))
    if differs:
        # build's options always hold 'lr': with its optimizer swapped, **options writes it
        shown = ", ".join(repr(float(r)) for r in rates)  # in full: set as shown, it matches
        raise ValueError(f"lr={lr} is not used: the optimizer function builds its own optimizer, "
                         f"with lr {shown}; give the learning rate in one place (inside the "
                         "optimizer function): leave lr= out, or, where it came with the "
                         "options of recipes.build (they always hold 'lr'), set "
                         f"options['lr'] = {shown.split(', ')[0]} or del options['lr']")


_LR_WRITTEN = contextvars.ContextVar("lr_written", default=False)


def lr_written_noted(function):
    """``function`` noting, for its checks, whether the caller wrote ``lr=``: an lr of 0.9, train's
    default, written beside an optimizer function with another rate is as unused as any other."""

    @functools.wraps(function)
    def noted(*args, **kwargs):
        token = _LR_WRITTEN.set("lr" in kwargs)
        try:
            return function(*args, **kwargs)
        finally:
            _LR_WRITTEN.reset(token)

    return noted


def _made_by_build(function):
    """Whether ``function`` is one that recipes.build wrote (a lambda inside build)."""
    return (getattr(function, "__module__", None) == "lenet_book.recipes"
            and getattr(function, "__qualname__", "").startswith("build.<locals>."))


def _reads_params_twice(net, optimizer, device):
    """Whether the optimizer function, given the parameters as a list rather than as the
    generator train passes, takes all the trainable ones (it read the generator twice)."""
    try:
        with _generators_kept(device), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            built = _own(optimizer)(list(net.parameters()))
        given = {id(p) for group in built.param_groups for p in group["params"]}
    except Exception:  # what it does with a list is not the question
        return False
    return all(id(p) in given for p in net.parameters() if p.requires_grad)


def _built_optimizer(net, optimizer, device):
    """The user's optimizer function, called once on the network's parameters (torch's random
    generators put back); torch's refusal (e.g. a negative lr) is named as train's argument."""
    try:
        with _generators_kept(device):
            return optimizer(net.parameters())
    except (ValueError, TypeError) as error:
        if _raised_by_lenet_book(error):
            raise  # a refusal of lenet_book's code that the function called: its own words
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        hint = (" (train passes the parameters once, as a generator: use them once, or turn "
                "them into a list first, params = list(params))"
                if "empty parameter list" in first else "")
        raise ValueError(f"the optimizer function could not build an optimizer: PyTorch says "
                         f"{first!r}{hint}; e.g. optimizer=lambda params: "
                         "torch.optim.SGD(params, lr=0.1)") from None


def _built_once(bound):
    """``train``'s optimizer and scheduler functions (in its bound arguments), each called once:
    the checks try what they build (a schedule is stepped through all of training, with no
    optimizer step), and train gets that optimizer and schedule, put back as they were built.
    Called twice, a function that ignores its argument and reads a generator taken once
    (params = net.parameters() outside it) would build an empty optimizer the second time. A
    value the checks refuse is left as it is, for them to name. With a scheduler function and no
    optimizer function, train's own SGD is built once too (the schedule is tried on it)."""
    for name, once in (("optimizer", _optimizer_built_once), ("scheduler", _schedule_built_once)):
        value = bound.arguments.get(name)
        if value is None:
            continue
        try:
            check_function(name, value)
        except (TypeError, ValueError):
            continue
        bound.arguments[name] = once(value)
    if bound.arguments.get("optimizer") is None and _own(bound.arguments.get("scheduler")) \
            is not bound.arguments.get("scheduler"):
        lr = bound.arguments.get("lr")

        def sgd(params):  # as train's body builds it without an optimizer function
            return torch.optim.SGD(params, lr=lr)

        bound.arguments["optimizer"] = _optimizer_built_once(sgd)
        bound.arguments["optimizer"]._train_s_own = True


def _train_s_own(optimizer):
    """Whether ``optimizer`` is train's default SGD, given by ``_built_once`` (not the caller's)."""
    return getattr(optimizer, "_train_s_own", False)


def _own(function):
    """The caller's function behind one that ``_built_once`` wrapped."""
    return getattr(function, "_built_once_from", function)


def _optimizer_built_once(function):
    """``function`` (train's optimizer function) called at the first call only; a later call with
    the same parameters gets that optimizer, its settings put back as built (a schedule tried on
    it changed its rates). One whose state from its start (Adagrad's sums) no longer fits the
    weights (train moved them to the data's device, or to channels-last) is built again."""
    made = {}

    @functools.wraps(function)
    def once(params):
        params = list(params)
        ids = [id(p) for p in params]
        if made and made["groups"] is not None and made["ids"] == ids \
                and _state_fits(made["optimizer"]):
            _put_back(made["groups"])
            return made["optimizer"]
        if made:
            return _optimizer_built_again(function, params)
        optimizer = function(p for p in params)  # a generator, as train passes them
        made.update(ids=ids, optimizer=optimizer,
                    groups=(_kept_groups(optimizer)
                            if isinstance(optimizer, torch.optim.Optimizer) else None))
        return optimizer

    once._built_once_from = function
    return once


def _state_fits(optimizer):
    """Whether the state an optimizer made at its start is where its parameters now are, laid
    out as they are (nothing has stepped it: the checks take no step)."""
    for param, state in optimizer.state.items():
        for value in state.values() if isinstance(state, dict) else ():
            if isinstance(value, torch.Tensor) and value.dim() > 0 and (
                    value.device != param.device
                    or (value.shape == param.shape and value.stride() != param.stride())):
                return False
    return True


def _optimizer_built_again(function, params):
    """The optimizer function called a second time, where the first optimizer cannot be used."""
    try:
        return function(p for p in params)
    except ValueError as error:
        if "empty parameter list" not in str(error):
            raise
        raise ValueError("optimizer: your function built an optimizer with no parameters the "
                         "second time; train calls it once to check it and once to train: "
                         "build it from the parameters it is given, optimizer=lambda params: "
                         "torch.optim.SGD(params, lr=0.9) (a generator such as "
                         "net.parameters() can be read only once)") from None


def _schedule_built_once(function):
    """``function`` (train's scheduler function) called at the first call only; a later call with
    the same optimizer gets that schedule, it and the optimizer's settings put back as built
    (the checks step it through all of training). A schedule not of torch's classes, or one
    that calls the learner's functions (LambdaLR), whose state may hold more than its
    state_dict, is built again: state made inside the scheduler function (an iterator of
    factors) starts afresh, but state kept outside it is not put back, and the checks' stepping
    has called those functions once per step of training. Where that shows (a schedule built
    again starts or steps at other rates than the checks saw, or fails), it is refused; that one
    is stepped, so training gets a third. Its warnings are given at each call (the
    checks' call ignores them)."""
    made = {}

    @functools.wraps(function)
    def once(optimizer, epochs, steps):
        if made and made["state"] is not None and made["optimizer"] is optimizer \
                and made["sizes"] == (epochs, steps):
            _put_back(made["groups"])
            made["schedule"].load_state_dict(_copied(made["state"]))
            _warn_again(made["warnings"])
            return made["schedule"]
        if made:
            if made["starts"] is None or made["sizes"] != (epochs, steps):
                return function(optimizer, epochs, steps)
            kept = _kept_groups(optimizer) if isinstance(optimizer, torch.optim.Optimizer) else None
            with warnings.catch_warnings(record=True):  # its warnings come with the third
                trial = function(optimizer, epochs, steps)  # stepped here: training gets a third
            _check_starts_again(made["starts"], optimizer)
            _check_steps_again(trial, optimizer, once._checked_rates)
            if kept is not None:
                _put_back(kept)
            return function(optimizer, epochs, steps)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            schedule = function(optimizer, epochs, steps)
        state = None
        if (isinstance(schedule, torch.optim.lr_scheduler.LRScheduler)
                and type(schedule).__module__.startswith("torch.optim")
                and not _calls_functions(schedule)
                and isinstance(optimizer, torch.optim.Optimizer)):
            state = _copied(schedule.state_dict())
        starts = (_rates_of(optimizer) if isinstance(optimizer, torch.optim.Optimizer)
                  and _calls_functions(schedule) else None)
        made.update(optimizer=optimizer, sizes=(epochs, steps), schedule=schedule, state=state,
                    warnings=list(caught), starts=starts,
                    groups=_kept_groups(optimizer) if state is not None else None)
        _warn_again(caught)
        return schedule

    once._built_once_from = function
    once._checked_rates = []  # the first rates the checks' stepping saw (_check_rates_stay_above_0)
    return once


def _rates_of(optimizer):
    return [_as_float(group.get("lr")) for group in optimizer.param_groups]


def _check_starts_again(starts, optimizer):
    """A schedule that calls the learner's functions, built again for training, must start at
    the rates it started at for the checks: other rates mean its function keeps state outside
    the scheduler function (an iterator made once, a counter), which the checks' stepping used
    up, so training would follow later factors than the learner's."""
    again = _rates_of(optimizer) if isinstance(optimizer, torch.optim.Optimizer) else starts
    if len(again) == len(starts) and all(a == b or math.isnan(a) and math.isnan(b)
                                         for a, b in zip(again, starts)):
        return
    raise ValueError(f"scheduler: the schedule starts at the learning rate "
                     f"{', '.join(f'{r:g}' for r in starts)} when train's checks build it and at "
                     f"{', '.join(f'{r:g}' for r in again)} when train builds it again to train: "
                     "its factor function keeps state made outside the scheduler function (an "
                     "iterator of factors made once, a counter), and the checks, which step the "
                     "schedule through all of training first, have used it up; make that state "
                     "inside the scheduler function, e.g. def scheduler(opt, epochs, steps): "
                     "factors = iter([...]); return LambdaLR(opt, lambda step: next(factors)), "
                     "or compute the factor from the step, lambda step: factors[step]")


_STEPS_COMPARED = 3  # a factor function's state kept outside the scheduler function shows by then


def _check_steps_again(schedule, optimizer, checked):
    """A schedule that calls the learner's functions, built again after the checks, must follow
    the rates the checks' stepping saw over its first steps (``checked``, from step 0): a factor
    iterator or counter made outside the scheduler function would have been used up by the
    checks (a MultiplicativeLR's first factor is used at its first step, not at its start)."""
    if not isinstance(optimizer, torch.optim.Optimizer) or not hasattr(schedule, "step"):
        return
    for step, expected in enumerate(checked[1:_STEPS_COMPARED + 1], start=1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "lr_scheduler.step() before optimizer.step()"
            try:
                type(schedule).step(schedule)
            except Exception as error:  # StopIteration: an iterator the checks emptied
                said = ": ".join([type(error).__name__, *str(error).strip().splitlines()[:1]])
                _refuse_used_up(f"fails at its step {step} when train builds it again to train "
                                f"({said})")
        again = _rates_of(optimizer)
        if len(again) != len(expected) or not all(
                math.isclose(a, b, rel_tol=1e-9) or math.isnan(a) and math.isnan(b)
                for a, b in zip(again, expected)):
            _refuse_used_up(f"sets the learning rate {', '.join(f'{r:g}' for r in expected)} "
                            f"at its step {step} when train's checks build it and "
                            f"{', '.join(f'{r:g}' for r in again)} when train builds it again to "
                            "train")


def _refuse_used_up(what):
    raise ValueError(f"scheduler: the schedule {what}: its factor function keeps state made "
                     "outside the scheduler function (an iterator of factors made once, a "
                     "counter), and the checks, which step the schedule through all of training "
                     "first, have used it up; make that state inside the scheduler function, "
                     "e.g. def scheduler(opt, epochs, steps): factors = iter([...]); return "
                     "MultiplicativeLR(opt, lambda step: next(factors)), or compute the factor "
                     "from the step, lambda step: factors[step]")


def _calls_functions(schedule):
    """Whether ``schedule`` (or one it chains) calls the learner's functions for its factors
    (LambdaLR, MultiplicativeLR), which may keep state of their own (an iterator of factors, a
    counter) that its state_dict does not hold: such a schedule is built again for training
    (which renews only the state made inside the scheduler function)."""
    chained = getattr(schedule, "_schedulers", None)
    if isinstance(chained, (list, tuple)):
        return any(_calls_functions(inner) for inner in chained)
    return isinstance(schedule, (torch.optim.lr_scheduler.LambdaLR,
                                 torch.optim.lr_scheduler.MultiplicativeLR))


def _kept_groups(optimizer):
    """The optimizer's settings, group by group (tensors copied: schedules fill them in place),
    for ``_put_back``."""
    return [(group, dict(group), {key: value.detach().clone() for key, value in group.items()
                                  if isinstance(value, torch.Tensor)})
            for group in optimizer.param_groups]


def _put_back(kept):
    with torch.no_grad():
        for group, items, tensors in kept:
            group.clear()
            group.update(items)
            for key, value in tensors.items():
                items[key].copy_(value)


def _copied(value):
    """A copy of a schedule's state: its containers and tensors copied, anything else (numbers,
    functions, objects it refers to) kept as it is."""
    if isinstance(value, dict):
        return {key: _copied(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copied(item) for item in value]
    if type(value) is tuple:
        return tuple(_copied(item) for item in value)
    return value.detach().clone() if isinstance(value, torch.Tensor) else value


def _warn_again(caught):
    for warning in caught:
        warnings.warn_explicit(warning.message, warning.category, warning.filename,
                               warning.lineno)


def _rate_above_0(rate):
    try:
        return math.isfinite(float(rate)) and float(rate) > 0
    except (TypeError, ValueError, RuntimeError):  # RuntimeError: a tensor of several numbers
        return False


def _check_rates(optimizer, what):
    """Every learning rate of ``optimizer`` must be a finite number above 0."""
    for group in optimizer.param_groups:
        rate = group.get("lr")
        if not _rate_above_0(rate):
            shown = (_brief(rate) if isinstance(rate, torch.Tensor) and rate.numel() > 1
                     else repr(rate))  # a tensor of many numbers: its shape, not its repr
            raise ValueError(f"{what} learning rate {shown}: it must be a finite number above "
                             "0 (0 learns nothing, a negative rate climbs the loss); e.g. 0.1")


def _check_schedule(net, options, lr, num_epochs, steps_per_epoch, device):
    """The scheduler function, tried once on a throwaway optimizer: what it builds must step per
    batch without a metric, last ``num_epochs * steps_per_epoch`` steps and keep a rate above 0."""
    scheduler = options.get("scheduler")
    if scheduler is None:
        return
    factory = options.get("optimizer")
    with _generators_kept(device):
        opt = (torch.optim.SGD(net.parameters(), lr=float(lr)) if factory is None
               else factory(net.parameters()) if _train_s_own(factory)  # train's, built once
               else _built_optimizer(net, factory, device))
        if not isinstance(opt, torch.optim.Optimizer):
            return  # check_built says what is wrong
        rates = [group.get("lr") for group in opt.param_groups]  # before a schedule sets them
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                schedule = scheduler(opt, num_epochs, steps_per_epoch)
            except (ValueError, TypeError, ZeroDivisionError) as error:
                if _raised_by_lenet_book(error):
                    raise  # e.g. original.paper_schedule's own refusal: its own words
                first = (str(error).strip().splitlines() or [type(error).__name__])[0]
                raise ValueError(f"the scheduler function could not build a schedule: PyTorch "
                                 f"says {first!r}; it is called as scheduler(optimizer, epochs, "
                                 "steps per epoch), e.g. lambda opt, epochs, steps: torch.optim."
                                 "lr_scheduler.OneCycleLR(opt, max_lr=0.1, epochs=epochs, "
                                 "steps_per_epoch=steps)") from None
    if isinstance(schedule, torch.optim.Optimizer):
        raise TypeError("scheduler returned the optimizer itself, not a learning-rate schedule "
                        "(train would step the optimizer twice per batch); return a schedule "
                        "of it, e.g. lambda opt, epochs, steps: torch.optim.lr_scheduler."
                        "StepLR(opt, step_size=steps)")
    if isinstance(schedule, torch.optim.lr_scheduler.ReduceLROnPlateau):
        raise TypeError("scheduler: ReduceLROnPlateau needs a metric at every step, but train "
                        "steps the schedule after every batch without one; use a schedule of "
                        "steps, e.g. StepLR or OneCycleLR")
    if _made_by_build(scheduler):
        _check_built_peak(schedule, rates, lr)
    total = getattr(schedule, "total_steps", None)
    needed = num_epochs * steps_per_epoch
    if isinstance(total, numbers.Integral) and total < needed:
        raise ValueError(f"scheduler: the schedule lasts total_steps={total} steps, but train "
                         f"steps it after every batch, {needed} times ({num_epochs} epochs of "
                         f"{steps_per_epoch} batches); pass total_steps=epochs * steps")
    lasts = (getattr(schedule, "T_max", None)
             if isinstance(schedule, torch.optim.lr_scheduler.CosineAnnealingLR)
             else getattr(schedule, "total_iters", None)
             if isinstance(schedule, torch.optim.lr_scheduler.PolynomialLR) else None)
    if isinstance(lasts, numbers.Real) and lasts < needed:
        what = "T_max" if isinstance(schedule, torch.optim.lr_scheduler.CosineAnnealingLR) \
            else "total_iters"
        after = ("the rate would climb back and cycle" if what == "T_max"
                 else "the rate would stay at 0")
        raise ValueError(f"scheduler: {type(schedule).__name__}'s {what}={lasts} counts steps, "
                         f"and train steps it after every batch, {needed} times ({num_epochs} "
                         f"epochs of {steps_per_epoch} batches): after {lasts} steps {after}; "
                         f"pass {what}=epochs * steps, e.g. lambda opt, epochs, steps: "
                         f"{type(schedule).__name__}(opt, {what}=epochs * steps)")
    if hasattr(schedule, "step"):
        seen = getattr(scheduler, "_checked_rates", None)  # for _check_steps_again
        if isinstance(seen, list):
            seen.clear()
        _check_rates_stay_above_0(opt, schedule, needed, steps_per_epoch, seen)
    if getattr(schedule, "optimizer", opt) is opt:  # another optimizer's: check_built names it
        _check_epochs_as_steps(schedule, num_epochs, steps_per_epoch)


def _check_built_peak(schedule, rates, lr):
    """recipes.build's one-cycle schedule has the recipe's rate built in as its peak (max_lr),
    and sets the optimizer's rate itself at every step: a rate chosen after build (lr=, or an
    optimizer of another rate) would never be used. ``rates``: the optimizer's, before it."""
    if not isinstance(schedule, torch.optim.lr_scheduler.OneCycleLR):
        return
    for group, rate in zip(schedule.optimizer.param_groups, rates):
        try:
            peak, rate = float(group["max_lr"]), float(rate)
        except (KeyError, TypeError, ValueError, RuntimeError):
            return  # not numbers: the other checks name them
        if not math.isclose(peak, rate, rel_tol=1e-9):
            break
    else:
        return
    chosen = (f"lr={lr} (the optimizer's rate)" if _as_float(lr) == rate
              else f"the optimizer's rate is {rate:g}")
    raise ValueError(f"scheduler: this one-cycle schedule comes from recipes.build, with the "
                     f"recipe's peak learning rate, {peak:g}, built in (OneCycleLR's max_lr), "
                     f"but {chosen}: the schedule sets the rate "
                     f"itself at every step, up to {peak:g}, so {rate:g} would never be used; "
                     f"set 'lr' in the recipe and build again, e.g. net, options = "
                     f"recipes.build({{**recipe, 'lr': {rate:g}}}), or pass scheduler= of your "
                     f"own, e.g. lambda opt, epochs, steps: torch.optim.lr_scheduler.OneCycleLR("
                     f"opt, max_lr={rate:g}, epochs=epochs, steps_per_epoch=steps, "
                     f"cycle_momentum=False)")


def _check_epochs_as_steps(schedule, num_epochs, steps_per_epoch):
    """MultiStepLR's milestones count steps, and train steps the schedule after every batch:
    milestones that are all at most the number of epochs, none of them whole epochs of
    batches, were meant as epochs (a drop after the first few batches). StepLR and warm
    restarts are left alone: a small step_size or T_0 is a common per-batch choice."""
    if not isinstance(schedule, torch.optim.lr_scheduler.MultiStepLR) or steps_per_epoch < 2:
        return
    values = sorted(schedule.milestones)
    if not values or any(isinstance(v, bool) or not isinstance(v, numbers.Integral)
                         or not 0 < v <= num_epochs or v % steps_per_epoch == 0
                         for v in values):
        return
    needed = num_epochs * steps_per_epoch
    raise ValueError(f"scheduler: MultiStepLR's milestones={values} count steps, and train steps "
                     f"the schedule after every batch, {needed} times ({num_epochs} epochs of "
                     f"{steps_per_epoch} batches): the rate would drop after "
                     f"{', '.join(map(str, values))} batches; to count epochs, write them in "
                     f"steps, e.g. lambda opt, epochs, steps: MultiStepLR(opt, milestones=[m * "
                     f"steps for m in {values}], gamma={schedule.gamma:g})")


SCHEDULE_STEPS_TRIED = 100_000  # a few microseconds each: 0.3 s at most


def _check_rates_stay_above_0(opt, schedule, needed, steps_per_epoch=None, seen=None):
    """Steps the throwaway schedule as train will (its optimizer takes no step): no rate a
    training step would use may be negative or NaN, and the rate may not fall to 0 and stay
    there (StepLR(gamma=0) gives 0 after its first step_size steps, and training would go on
    without learning). A warm-up may start at 0, and the last step's rate is never used (a
    schedule may end at 0). Nor may a rate fall below ``_VANISHED`` of the group's largest so far
    and stay there from before the last epoch (or the second half of one epoch), and for the
    last tenth of the steps at least, to the end: a per-epoch decay stepped after every batch.
    The first ``SCHEDULE_STEPS_TRIED`` steps are tried; the rates of the first few are added
    to ``seen`` (a list) where one is given."""
    def rates():
        return [group.get("lr") for group in opt.param_groups]

    def refuse(rate_list, step):
        gamma = getattr(schedule, "gamma", None)
        hint = (f" (gamma={gamma}: it multiplies the rate by gamma, so gamma must be above "
                "0, e.g. 0.1)" if isinstance(gamma, numbers.Real) and gamma <= 0 else "")
        where = "starts with the learning rate" if step == 0 else "sets the learning rate to"
        after = "" if step == 0 else f" after {step} of the {needed} steps of training"
        raise ValueError(f"scheduler: the schedule {where} "
                         f"{', '.join(map(repr, rate_list))}{after}{hint}; training would "
                         "go on from there without learning (0) or climbing the loss (below "
                         "0): use a schedule whose rate stays above 0 until the last step, "
                         "e.g. StepLR(opt, step_size=steps, gamma=0.5)")

    def negative(rate_list):
        return any(not (_rate_above_0(rate) or rate == 0) for rate in rate_list)

    if seen is not None:
        seen.append([_as_float(rate) for rate in rates()])
    if negative(rates()):
        refuse(rates(), 0)
    zero_since = None if all(_rate_above_0(rate) for rate in rates()) else 0
    peaks, tiny_since = [_as_float(rate) for rate in rates()], None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "lr_scheduler.step() before optimizer.step()"
        for step in range(1, min(needed, SCHEDULE_STEPS_TRIED)):
            try:
                type(schedule).step(schedule)  # the class's own: not a logger on the instance
            except Exception as error:
                if isinstance(getattr(schedule, "step_size", 1), numbers.Real) \
                        and getattr(schedule, "step_size", 1) < 1:
                    return  # StepLR(step_size=0): check_built names it
                first = (str(error).strip().splitlines() or [type(error).__name__])[0]
                factor = getattr(schedule, "factor", None)
                hint = (f" (factor={factor}: it multiplies the rate by factor, which must be "
                        "above 0, e.g. 0.5)" if isinstance(factor, numbers.Real)
                        and factor <= 0 else "")
                raise ValueError(f"scheduler: the schedule fails at its step {step} of the "
                                 f"{needed} steps of training{hint}: PyTorch says {first!r}; "
                                 "fix its settings, e.g. StepLR(opt, step_size=steps, "
                                 "gamma=0.5)") from None
            if seen is not None and step <= _STEPS_COMPARED:
                seen.append([_as_float(rate) for rate in rates()])
            if negative(rates()):
                refuse(rates(), step)
            if all(_rate_above_0(rate) for rate in rates()):
                zero_since = None
            elif zero_since is None:
                zero_since, zero_rates = step, rates()
            now = [_as_float(rate) for rate in rates()]
            peaks = [max(p, r) for p, r in zip(peaks, now)]
            if not any(r < _VANISHED * p for p, r in zip(peaks, now)):
                tiny_since = None
            elif tiny_since is None:
                tiny_since = step
    if zero_since is not None:
        refuse(zero_rates if zero_since else rates(), zero_since)
    # vanished from before the last epoch (or half of one epoch) and for the last tenth of the
    # steps at least: a schedule that merely ends near 0 (cosine, polynomial) is left alone
    last_epoch = needed - (steps_per_epoch or needed)
    if tiny_since is not None and tiny_since <= min(max(last_epoch, needed // 2),
                                                    needed - max(needed // 10, 1)):
        _refuse_vanished(schedule, tiny_since, needed, steps_per_epoch, max(peaks))


_VANISHED = 1e-6  # a rate this share of its largest teaches nothing more (float32 weights)


def _as_float(rate):
    """A learning rate as a float (0 for one that is not a number: refused as such above)."""
    try:
        return float(rate)
    except (TypeError, ValueError, RuntimeError):
        return 0.0


def _refuse_vanished(schedule, step, needed, steps_per_epoch, peak):
    """The schedule's rate fell below _VANISHED of its largest at ``step`` and stayed there:
    named with a per-batch form of the same decay."""
    kind = type(schedule).__name__
    steps = steps_per_epoch or 1
    gamma = getattr(schedule, "gamma", None)
    if not isinstance(gamma, numbers.Real):
        fix = "LambdaLR(opt, lambda k: 0.9 ** (k // steps))"
    elif isinstance(schedule, torch.optim.lr_scheduler.ExponentialLR):
        fix = f"ExponentialLR(opt, gamma={gamma:g} ** (1 / steps))"
    elif isinstance(schedule, torch.optim.lr_scheduler.StepLR):
        fix = f"StepLR(opt, step_size={schedule.step_size} * steps, gamma={gamma:g})"
    else:
        fix = "LambdaLR(opt, lambda k: 0.9 ** (k // steps))"
    raise ValueError(f"scheduler: {kind}'s learning rate falls below {_VANISHED:g} of its "
                     f"largest ({peak:g}) after {step} of the {needed} steps (epoch "
                     f"{step // steps + 1}) and stays there, so training would stop learning "
                     f"long before its end: train steps the schedule after every batch "
                     f"({steps} per epoch), not once per epoch; count the decay in steps, e.g. "
                     f"lambda opt, epochs, steps: {fix}")


def _generators_kept(device):
    """torch's random generators (the CPU's, and the GPU's of ``device``) put back on exit."""
    if device.type != "cuda":
        return torch.random.fork_rng(devices=[])
    return torch.random.fork_rng(devices=[device.index if device.index is not None
                                          else torch.cuda.current_device()])


def _torch_refuses(error):
    """Whether ``error`` is torch's or torchvision's refusal of what they were given (a
    TypeError, ValueError or RuntimeError raised in their code, not out of memory), which a
    transform's caller cannot read: then re-raised with its words and the learner's line."""
    if type(error) not in (TypeError, ValueError, RuntimeError, NotImplementedError):
        return False  # out of memory, the learner's own classes: caught as they are
    traceback = error.__traceback__
    while traceback.tb_next is not None:
        traceback = traceback.tb_next
    return traceback.tb_frame.f_code.co_filename.startswith(str(Path(torch.__file__).parent))


def _transformed(net, batch_transform, images, generator, batch_of_one=True):
    """``batch_transform`` on one batch: it must take (images, generator) and return uint8
    images, one per image, of a size the network takes."""
    try:
        inspect.signature(batch_transform).bind(images, generator)
    except TypeError:
        raise TypeError(f"batch_transform must take two arguments, (images, generator): a uint8 "
                        f"batch N×H×W and the torch.Generator that train seeds, e.g. def "
                        f"shift(images, generator): ...; it takes "
                        f"{inspect.signature(batch_transform)}") from None
    except ValueError:
        pass  # no signature to read (a built-in): call it
    how = ("wrap it so that it gets the batch alone, transform = ... once, then "
           "batch_transform=lambda images, generator: transform(images) (a transform that draws "
           "nothing, such as a pad, a centre crop or a cast, then works as it is; a random one "
           "draws once per batch, one choice for all its images: to draw per image, write a "
           "function of the batch that draws from the generator, e.g. batch_transform=lambda "
           "images, generator: torch.where(torch.rand(len(images), 1, 1, generator=generator, "
           "device=images.device) < 0.5, images.flip(-1), images), as recipes.random_crop_flip "
           "does)")
    if isinstance(batch_transform, nn.Module):  # its __call__ takes anything: its forward says
        try:
            inspect.signature(batch_transform.forward).bind(images, generator)
        except TypeError:
            name = type(batch_transform).__name__
            raise TypeError(f"batch_transform is called as batch_transform(images, generator), "
                            f"a uint8 batch N×H×W and a torch.Generator, and {name}'s forward "
                            f"takes {inspect.signature(batch_transform.forward)}: wrap it, "
                            f"transform = {name}(...) once, then batch_transform=lambda "
                            "images, generator: transform(images) (a random transform then "
                            "draws once per batch, one choice for all its images; "
                            "recipes.random_crop_flip draws per image)") from None
        except ValueError:
            pass
    try:
        out = batch_transform(images, generator)
    except Exception as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        if isinstance(error, TypeError) and error.__traceback__.tb_next is None:
            raise TypeError(f"batch_transform is called as batch_transform(images, generator), "
                            f"a uint8 batch N×H×W and a torch.Generator, and this one cannot "
                            f"take them (PyTorch says {first!r}); {how}") from None
        if not _torch_refuses(error):  # the learner's own error, or the book's: as it is
            raise
        # torch's or torchvision's refusal, from deep inside them: named with the line calling it
        floats = re.search(r"float tensor|floating[- ]point|scalar type (?:Float|Double)|"
                           r"Float but found|to be float", first, re.IGNORECASE)
        raise type(error)(
            f"batch_transform fails on the first batch: it raised {type(error).__name__}: "
            f"{first.rstrip('.')}{_forward_line(error)}. It gets a uint8 batch N×H×W (pixels "
            "0-255) and must return one"
            + ("; a step that needs floats, such as Normalize, belongs in the network, e.g. a "
               "first layer computing (x - 0.286) / 0.353 on the pixels divided by 255"
               if floats else "")) from error
    if isinstance(out, tuple):
        raise TypeError(f"batch_transform returned a tuple of {len(out)}: it is called as "
                        "batch_transform(images, generator), and a transform that takes any "
                        "number of inputs (torchvision's v2 transforms) returns them all; it "
                        f"must return the images only: {how}")
    if not isinstance(out, torch.Tensor) or out.dtype != torch.uint8:
        got = out.dtype if isinstance(out, torch.Tensor) else f"{_a_kind(out)}"
        raise TypeError(f"batch_transform returned {got}: a batch_transform must return uint8 "
                        "images too (pixels 0-255, as it gets them), which to_float divides by "
                        "255")
    if out.dim() != 3 or len(out) != len(images) or out.device != images.device:
        raise ValueError(f"batch_transform must return the batch it is given, one N×H×W image "
                         f"per image on {images.device}: for a batch of shape "
                         f"{tuple(images.shape)} it returned shape {tuple(out.shape)} on "
                         f"{out.device}")
    _check_same_order(images, out)
    problem = _input_problem(net, *out.shape[1:], batch_of_one=batch_of_one)
    if problem:
        raise ValueError(f"batch_transform returns {out.shape[1]}×{out.shape[2]} images: "
                         f"{problem}")
    return out


def _check_same_order(images, out):
    """Each output image must stay at its input's place, or the labels no longer match: refused
    when most outputs are exactly another image of the batch (e.g. flip(0), roll along dim 0).
    One fingerprint per image (a fixed weighted sum of its pixels), on the first batch only."""
    if len(images) < 2 or out.shape != images.shape:
        return
    weights = torch.randint(0, 2**31, (images[0].numel(),), dtype=torch.int64,  # exact sums
                            generator=torch.Generator().manual_seed(0)).to(images.device)
    def prints(batch):  # one number per image, in slices of 4096 images (bounded memory)
        flat = batch.reshape(len(batch), -1)
        return torch.cat([(part.long() * weights).sum(dim=1) for part in flat.split(4096)])

    prints_in, prints_out = prints(images), prints(out)
    moved = torch.isin(prints_out, prints_in) & (prints_out != prints_in)
    if moved.sum().item() * 2 > len(images):
        raise ValueError(f"batch_transform moves the images to other places in the batch "
                         f"({moved.sum().item()} of {len(images)} outputs are another input "
                         "image), so the images and their labels no longer match; transform "
                         "each image where it is: flip(-1) mirrors the images, flip(0) "
                         "reverses the order of the batch")


def _is_nll(loss_fn):
    return isinstance(loss_fn, nn.NLLLoss) or loss_fn is torch.nn.functional.nll_loss


# network -> (its layers, the loss) once its scores were checked: a replaced layer checks again
_LOG_PROBABILITIES = weakref.WeakKeyDictionary()


def _check_log_probabilities(net, loss_fn, X, y):
    """For ``train_step`` with nn.NLLLoss or F.nll_loss: the network must give
    log-probabilities. Tried once per network, set of layers and loss on the first images of the
    batch, as ``train``'s first-batch probe does (no step, eval mode, the modes and random
    generators put back)."""
    if not _is_nll(loss_fn):
        return
    key = (_layers_key(net), id(loss_fn))
    try:
        if _LOG_PROBABILITIES.get(net) == key:
            return
    except TypeError:  # a network that cannot be weakly referenced: checked every time
        pass
    modes = [(module, module.training) for module in net.modules()]
    with _generators_kept(X.device), torch.no_grad():
        net.eval()
        try:
            # the weights' type: a batch for autocast (amp_dtype) runs here without it
            scores = net(X[:8].to(next(net.parameters(), X).dtype))
        finally:
            for module, mode in modes:
                module.training = mode
    if isinstance(scores, torch.Tensor):
        _check_loss_value(loss_fn, scores.float(), y[:8])
        with contextlib.suppress(TypeError):
            _LOG_PROBABILITIES[net] = key


def _check_loss_value(loss_fn, scores, labels):
    """The first batch's loss: one number, and not below 0 (a loss without a minimum)."""
    loss = _loss_of(loss_fn, scores, labels)
    _check_loss_shape(loss)
    log_probabilities = bool((scores.logsumexp(dim=1).abs() < 1e-3).all() and (scores <= 0).all())
    if _is_nll(loss_fn) and not log_probabilities and _are_probabilities(scores):
        raise ValueError("nn.NLLLoss (F.nll_loss) takes log-probabilities, but this network "
                         "gives probabilities (every row is at least 0 and sums to 1: it ends in "
                         "a softmax), on which the loss falls below 0; end the network in "
                         "nn.LogSoftmax(dim=1) instead of the softmax, or remove the softmax "
                         "and use nn.CrossEntropyLoss(), which applies log-softmax itself")
    if _is_nll(loss_fn) and not log_probabilities:
        raise ValueError("nn.NLLLoss (F.nll_loss) takes log-probabilities (a network that ends in "
                         "nn.LogSoftmax(dim=1)), but this network gives raw scores, on which "
                         "the loss falls below 0 without end; use nn.CrossEntropyLoss(), which "
                         "applies log-softmax itself")
    value = loss.item()  # a summed loss: check_loss has refused it on fixed scores already
    if value < 0:
        raise ValueError(f"loss_fn gives a negative loss, {value:.4g}, on the first batch: "
                         "training lowers the loss, and one that goes below 0 has no minimum "
                         "to reach; use a loss that is at least 0, e.g. nn.CrossEntropyLoss() "
                         "on the scores")


def _are_probabilities(scores):
    """Whether every row of ``scores`` (N×classes) is at least 0 and sums to 1, as a network
    that ends in a softmax gives them (16-bit outputs of autocast: to 1%)."""
    if not (isinstance(scores, torch.Tensor) and scores.dim() == 2 and scores.shape[1] > 1
            and len(scores) and scores.is_floating_point()):
        return False
    rows = scores.detach().float()
    tolerance = 1e-2 if scores.element_size() < 4 else 1e-3
    return bool((rows >= 0).all() and ((rows.sum(dim=1) - 1).abs() <= tolerance).all())


def _applies_softmax(loss_fn, device=None):
    """Whether ``loss_fn`` applies a softmax of its own to the outputs, as cross-entropy does:
    tried on fixed outputs (as ``_favours``), its value stays the same when a constant is added
    to each row, and changes when the outputs are scaled (a loss that ignores them is not
    meant). A loss of log-probabilities, e.g. F.nll_loss(outputs.log(), labels), changes."""
    if _is_cross_entropy(loss_fn):
        return True
    generator = torch.Generator().manual_seed(0)
    outputs = (1 + torch.rand(4, NUM_CLASSES, generator=generator)).to(device)
    shift = torch.tensor([[0.5], [1.5], [2.5], [4.0]], device=device)
    labels = torch.tensor([0, 3, 5, 9], device=device)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            given, shifted, scaled = (float(loss_fn(o, labels))
                                      for o in (outputs, outputs + shift, outputs * 3))
    except Exception:  # a loss that cannot take such outputs: the other probes say more
        return False
    return (math.isfinite(given) and math.isclose(given, shifted, rel_tol=1e-4, abs_tol=1e-6)
            and not math.isclose(given, scaled, rel_tol=1e-4, abs_tol=1e-6))


def _check_not_probabilities(name, loss_fn, scores, loss_given=True):
    """The first batch's outputs must not be probabilities when the loss applies its own
    softmax (cross-entropy): a network that ends in a softmax (nn.Softmax anywhere before
    layers that keep it, or F.softmax in a forward of one's own) would take it twice and barely
    learn. ``loss_given``: the loss is the caller's choice (else the text's fixed
    cross-entropy)."""
    if not _are_probabilities(scores) or not _applies_softmax(loss_fn, scores.device):
        return
    fix = ("remove the softmax from the network (its largest output stays the prediction), or "
           "keep it and give the loss log-probabilities: loss_fn=nn.NLLLoss() on a network that "
           "ends in nn.LogSoftmax(dim=1) instead (or lambda p, y: F.nll_loss(p.log(), y))"
           if loss_given else "remove the softmax from the network (its largest output stays "
           "the prediction)")
    loss = ("loss_fn reads them as raw scores, with a softmax of its own, as cross-entropy does "
            "(its value stays the same when a constant is added to each image's outputs)"
            if loss_given else "the loss, cross-entropy, applies a softmax of its own")
    raise ValueError(f"{name}: the network already ends in a softmax: its outputs on the first "
                     f"batch are probabilities (every row is at least 0 and sums to 1), but "
                     f"{loss}, so the softmax would be taken twice and the network would barely "
                     f"learn; {fix}")


def _check_first_outputs(name, loss_fn, scores, loss_given=True):
    """The outputs of the first training step, before its backward: they must carry gradients
    back to the weights (named without ``name``: train's steps are train_step's), and not be
    probabilities given to a loss with its own softmax."""
    if not isinstance(scores, torch.Tensor):
        return
    if torch.is_grad_enabled() and not scores.requires_grad:
        raise ValueError("the network's output carries no gradient (requires_grad is False): "
                         "it is cut off from the network's weights, so backward cannot train "
                         "them and no step would change them; the usual causes are .detach() "
                         "or torch.no_grad() inside forward (or a forward decorated with "
                         "@torch.no_grad()), or a round trip through numpy (.numpy(), "
                         "torch.from_numpy, torch.tensor(...)): return the tensor that the "
                         "layers compute")
    if not (scores.is_cuda and torch.cuda.is_current_stream_capturing()):  # values: not in a graph
        _check_not_probabilities(name, loss_fn, scores, loss_given)
        _check_not_clipped_at_zero(name, loss_fn, scores)


def _check_not_clipped_at_zero(name, loss_fn, scores):
    """The first step's outputs clipped at 0 (a ReLU after the last layer, e.g. in a forward hook
    or a forward of one's own, where the layer check cannot see it): every score is at least 0
    and many are exactly 0, where their gradient is 0 too, so those classes never learn to
    score below the others."""
    if scores.dim() != 2 or not scores.is_floating_point() or scores.numel() < 20:
        return
    zero = (scores == 0).float().mean().item()
    # a clip leaves positive scores beside the zeros, differing by image; all zero, or every
    # row the same, is a head initialised to zero (and its bias)
    if zero < 0.1 or (scores < 0).any() or (scores > 0).float().mean().item() < 0.1 \
            or bool((scores == scores[:1]).all()) or not _applies_softmax(loss_fn, scores.device):
        return
    raise ValueError(f"{name}: the network's outputs on the first batch are clipped at 0: none "
                     f"is negative and {zero:.0%} are exactly 0, as after a ReLU (in the last "
                     "layer, a forward hook or the forward), but cross-entropy reads them as raw "
                     "scores, and a score held at 0 gets no gradient, so the network barely "
                     "learns; return the last Linear layer's outputs as they are")


_FIRST_OUTPUTS = weakref.WeakKeyDictionary()  # network -> (its layers, the loss) once checked


_IN_TRAINING_STEP = contextvars.ContextVar("in_training_step", default=False)


def in_training_step():
    """Whether a train_step is running: its outputs carry a gradient, and what they hold (NaN
    after a diverging step) is for train to name, with its epoch and step."""
    return _IN_TRAINING_STEP.get()


@contextlib.contextmanager
def _training_step_noted():
    token = _IN_TRAINING_STEP.set(True)
    try:
        yield
    finally:
        _IN_TRAINING_STEP.reset(token)


def _step_outputs_checked(bound):
    """``train_step``'s call: the first step of a network (set of layers) and loss gets a loss
    function that checks the outputs it is given before the loss is taken (no forward pass of
    its own, nothing stepped yet: a refusal leaves the weights as they were); later steps run
    as they are."""
    net, loss_fn = bound.arguments["net"], bound.arguments["loss_fn"]
    try:
        key = (_layers_key(net), id(loss_fn))
        if _FIRST_OUTPUTS.get(net) == key:
            return _training_step_noted()
    except TypeError:  # a network that cannot be weakly referenced: checked every time
        key = None

    def checking(scores, labels):
        _check_first_outputs("train_step", loss_fn, scores)
        if key is not None:
            with contextlib.suppress(TypeError):
                _FIRST_OUTPUTS[net] = key
        return loss_fn(scores, labels)

    bound.arguments["loss_fn"] = checking
    return _training_step_noted()


@contextlib.contextmanager
def _text_outputs_checked(bound):
    """``textbook.train_text_loop``'s call: the outputs of its first forward pass (the first
    training step, before its backward) are checked by a forward hook, removed after it (no
    forward pass of its own): cross-entropy, the loop's loss, applies its own softmax."""
    net = bound.arguments["net"]

    def hook(module, inputs, output):
        handle.remove()
        _check_first_outputs("train_text_loop", None, output, loss_given=False)

    try:
        handle = net.register_forward_hook(hook)
    except Exception:  # e.g. a scripted network that takes no hooks: nothing checked
        yield
        return
    try:
        yield
    finally:
        handle.remove()


def _check_transformed_pixels(given, returned):
    """A transform of 0-255 images must keep them 0-255: blank or 0/1 images are refused in the
    training data, and the same images made by the transform as well."""
    if given > 1 and returned == 0:
        raise ValueError("batch_transform returns blank images (every pixel 0) for the first "
                         "batch, so training would learn nothing from the pictures; return "
                         "the transformed uint8 images, 0-255")
    if given > 1 and returned <= 1:
        raise ValueError(f"batch_transform returns pixels of at most {returned} for the first "
                         "batch, whose pixels go up to 255: it must return uint8 images 0-255, "
                         "as it gets them (a 0/1 mask or x // 128 would train on near-black "
                         "images)")


def _random_states(device):
    """The random generators a transform may draw from (torch's, Python's, numpy's), to draw
    the same numbers again."""
    numpy = sys.modules.get("numpy")
    return (torch.get_rng_state(),
            torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            random.getstate(), numpy.random.get_state() if numpy is not None else None)


def _set_random_states(device, states):
    cpu, cuda, python, numpy_state = states
    torch.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state(cuda, device)
    random.setstate(python)
    if numpy_state is not None:
        sys.modules["numpy"].random.set_state(numpy_state)


def _rerun(batch_transform, images, seed, before, watch=None):
    """``batch_transform`` once more on ``images``, drawing the random numbers it drew from
    ``before`` (under ``watch``, a TorchFunctionMode, if given): ``(True, output)``, or
    ``(False, None)`` if it raises. The random generators end as the first run left them."""
    after = _random_states(images.device)
    try:
        _set_random_states(images.device, before)
        with warnings.catch_warnings(), watch or contextlib.nullcontext():
            warnings.simplefilter("ignore")
            return True, batch_transform(
                images, torch.Generator(device=images.device).manual_seed(seed))
    except Exception:
        return False, None
    finally:
        _set_random_states(images.device, after)


def _int16_run(batch_transform, images, seed, before):
    """``batch_transform`` once more on ``images`` (int16), drawing the same random numbers;
    None if it refuses them or returns no integer tensor."""
    _, wide = _rerun(batch_transform, images, seed, before)
    if not isinstance(wide, torch.Tensor) or wide.is_floating_point() or wide.is_complex():
        return None
    return wide


def _check_no_wrap(batch_transform, source, out, seed, before):
    """uint8 arithmetic wraps: 250 + 10 is 4 and 3 - 5 is 254, so white pixels turn black. The
    transform runs once more on the same images as int16, drawing the same random numbers: a
    pixel that leaves 0-255 there and is its value modulo 256 in ``out`` was wrapped. Flips,
    crops, erasing and clamped arithmetic stay within 0-255; a transform that refuses int16 (or
    draws other numbers) is not judged. The random generators end as the first run left them."""
    wide = _int16_run(batch_transform, source.to(torch.int16), seed, before)
    if wide is None or wide.shape != out.shape or wide.device != out.device:
        return
    if wide.dtype == torch.uint8:  # cast back by the transform itself: wrapped in that cast
        return _check_no_wrapping_cast(batch_transform, source, out, seed, before)
    wide, out_ = wide.to(torch.int64), out.to(torch.int64)
    if ((wide < -256) | (wide > 511)).any():
        return  # beyond uint8 arithmetic: the dtype's own bound (32767 - x inverts), not judged
    outside = (wide < 0) | (wide > 255)
    inside = ~outside
    if not outside.any() or outside.float().mean() > 0.99 \
            or (out_[inside] != wide[inside]).float().mean() > 0.1:
        return  # within 0-255; every pixel moved (~x, an invert); or other random numbers
    # not counted: a pixel of 0 or 255 (where a clamp puts it too), or 255 - x (~x, an invert)
    wrapped = outside & (out_ == wide % 256) & (out_ != 0) & (out_ != 255)
    if source.shape == out.shape:
        wrapped &= out_ != 255 - source.to(torch.int64)
    if wrapped.any():
        # ~x is -1 - x in int16: on images 256 brighter it comes out 256 lower, where wrapped
        # arithmetic (x + k, x * k) comes out higher. This tells an invert from a wrap also
        # where the pixel was moved (a flip or a crop before or after the invert).
        brighter = _int16_run(batch_transform, source.to(torch.int16) + 256, seed, before)
        if brighter is not None and brighter.shape == wide.shape:
            wrapped &= ~((wide < 0) & (brighter < wide))
        else:  # it takes no brighter images (a lookup table of 256): below 0 may be ~x
            wrapped &= wide > 255
    count = int(wrapped.sum())
    if count == 0:
        return
    index = tuple(wrapped.nonzero()[0].tolist())
    raise ValueError(f"batch_transform wraps pixels past 0-255: uint8 arithmetic counts modulo "
                     f"256, and {count} pixel{'s' * (count != 1)} of the first batch "
                     f"({count / out.numel():.1%}) came out wrapped (one is {int(out[index])} "
                     f"where its value would be {int(wide[index])}), so white turns black or "
                     "black white; compute in a wider type and clamp, e.g. (images.short() + "
                     "k).clamp(0, 255).to(torch.uint8)")


class _CastsToUint8(torch.overrides.TorchFunctionMode):
    """Counts the values outside 0-255 that a transform casts to uint8 (.to(torch.uint8),
    .byte(), .type, copy_ or assignment into a uint8 tensor), which wrap: 290 becomes 34."""

    CASTS = {torch.Tensor.to, torch.Tensor.byte, torch.Tensor.type, torch.Tensor.type_as}
    INTO = {torch.Tensor.copy_, torch.Tensor.__setitem__}

    def __init__(self):
        super().__init__()
        self.count, self.example = 0, None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        if func in self.CASTS and isinstance(result, torch.Tensor) and result.dtype == torch.uint8:
            self._look(args[0], result)
        elif func in self.INTO and isinstance(args[0], torch.Tensor) \
                and args[0].dtype == torch.uint8:
            value = args[1] if func is torch.Tensor.copy_ else args[2]
            self._look(value, None)
        return result

    def _look(self, value, cast):
        if not isinstance(value, torch.Tensor) or value.dtype in (torch.uint8, torch.bool) \
                or value.is_complex():
            return
        outside = (value <= -1) | (value >= 256)  # a float cast drops the fraction: -0.5 is 0
        if outside.any():
            self.count += int(outside.sum())
            if self.example is None:
                index = tuple(outside.nonzero()[0].tolist())
                shown = float(value[index])
                self.example = (int(shown) % 256,
                                int(shown) if shown.is_integer() else round(shown, 1))


def _check_no_wrapping_cast(batch_transform, source, out, seed, before):
    """A transform that casts to uint8 itself returns uint8 from int16 images too, so the int16
    run cannot see a wrap: it runs once more on the same uint8 images, watching its casts."""
    watch = _CastsToUint8()
    ran, _ = _rerun(batch_transform, source.clone(), seed, before, watch)
    if ran and watch.count:
        wrapped, value = watch.example
        raise ValueError(f"batch_transform wraps pixels past 0-255: it casts to uint8 "
                         f"{watch.count} value{'s' * (watch.count != 1)} outside 0-255 for the "
                         f"first batch (one is {value}, which becomes {wrapped}), so white turns "
                         "black or black white; clamp before the cast, e.g. (images.short() + "
                         "k).clamp(0, 255).to(torch.uint8)")


def _check_short_batch(batch_transform, images, batch_size, full, generator):
    """``batch_transform`` on a batch of the size of each epoch's short last batch: it must
    take it as it took the first (a transform with the batch size written in fails there, after
    the epoch's other steps); ``full``: what it returned for the first batch."""
    size = len(images)
    where = (f"the last batch of each epoch, which holds {size} images (the data do not fill "
             f"whole batches of {batch_size})")
    try:
        out = batch_transform(images, generator)
    except Exception as error:  # whatever it raises: named with the batch that causes it
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ValueError(f"batch_transform fails on {where}: it says {first!r}; it must take a "
                         "batch of any size: use len(images) rather than a fixed batch size, "
                         "e.g. torch.rand(len(images), 1, 1, generator=generator)") from None
    if not (isinstance(out, torch.Tensor) and out.dtype == full.dtype
            and tuple(out.shape) == (size, *full.shape[1:])):
        got = (f"{out.dtype} of shape {tuple(out.shape)}" if isinstance(out, torch.Tensor)
               else f"{_a_kind(out)}")
        raise ValueError(f"batch_transform returns {got} for {where}, but {full.dtype} of shape "
                         f"{tuple(full.shape)} for the first batch: it must return one image per "
                         "image it gets, as for the first batch; use len(images) rather than a "
                         "fixed batch size")


def check_first_batch(net, train_data, batch_size, loss_fn, batch_transform=None, seed=0):
    """The first batch, before any step: ``batch_transform`` (given a generator of its own) must
    return uint8 images that the network takes, and the loss of the network's scores must be one
    number of at least 0 (``nn.NLLLoss`` on raw scores is not). Cheap and without side effects:
    one batch, no gradients, every module in eval mode (batch norm's running statistics and
    dropout untouched, each module's mode put back), torch's random generators put back. The
    learner's forward hooks are set aside, unless the check fails without them: a hook may change
    what the network computes (padding, log_softmax), and then the check must see it."""
    try:
        _hooks_only_if_needed(_check_first_batch, net, train_data, batch_size, loss_fn,
                              batch_transform, seed)
    finally:
        _SCORED_SIZES.set((lambda: None, {}))  # the eval sets of the training that asked


def _check_first_batch(net, train_data, batch_size, loss_fn, batch_transform, seed):
    images, labels = train_data
    # a copy: a batch_transform that works in place must not change the caller's images
    X, y = images[:batch_size].clone(), labels[:batch_size]
    modes = [(module, module.training) for module in net.modules()]
    with _generators_kept(images.device), torch.no_grad():
        if batch_transform is not None:
            generator = torch.Generator(device=images.device).manual_seed(seed)
            given, source, before = X.max().item(), X.clone(), _random_states(images.device)
            X = _transformed(net, batch_transform, X, generator,
                             _batch_of_one(len(labels), batch_size))
            _check_kept_size(net, images, X)
            _check_transformed_pixels(given, X.max().item())
            _check_no_wrap(batch_transform, source, X, seed, before)
            short = len(labels) % batch_size if len(labels) > batch_size else 0
            if short:  # the last batch of each epoch: the transform only, no forward
                _check_short_batch(batch_transform, images[:short].clone(), batch_size, X,
                                   torch.Generator(device=images.device).manual_seed(seed))
        net.eval()
        try:
            scores = _forward_dtypes_named(net, X.unsqueeze(1).float().div_(255))
        finally:
            for module, mode in modes:
                module.training = mode
        if not isinstance(scores, torch.Tensor):
            raise TypeError(f"the network must return the N×{NUM_CLASSES} scores as one tensor, "
                            f"got {_a_kind(scores)}; return only the scores from forward (or "
                            "wrap the network in one that does)")
        _check_loss_value(loss_fn, scores.float(), y)
        _check_not_probabilities("train", loss_fn, scores)


def _forward_dtypes_named(net, X):
    """``net(X)``; a forward that fails on a mix of dtypes (e.g. a layer computed under
    autocast, whose bfloat16 output reaches a float32 layer) is run again with hooks, to name
    the layer that returned another dtype and the one that refused it."""
    try:
        return net(X)
    except RuntimeError as error:
        if "dtype" not in str(error) and "Half" not in str(error) \
                and "BFloat16" not in str(error):
            raise
        returned, entered, done = [], [], set()
        names = {id(module): name for name, module in net.named_modules()}

        def before(module, inputs):
            entered.append(module)

        def after(module, inputs, output):
            done.add(id(module))
            if (isinstance(output, torch.Tensor) and output.is_floating_point()
                    and output.dtype != X.dtype):
                returned.append((module, output.dtype))

        handles = [module.register_forward_pre_hook(before) for _, module in net.named_modules()]
        handles += [module.register_forward_hook(after) for _, module in net.named_modules()]
        try:
            net(X)
        except RuntimeError:
            pass
        else:  # it ran the second time: not a mix of dtypes that can be named
            raise error
        finally:
            for handle in handles:
                handle.remove()
        failed = [module for module in entered if id(module) not in done]
        if not returned or not failed:
            raise
        source, dtype = min(returned, key=lambda pair: names[id(pair[0])].count("."))
        refusing = failed[-1]
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise TypeError(
            f"layer {names[id(source)] or 'net'} ({type(source).__name__}) returns "
            f"{dtype}, "
            f"and layer {names[id(refusing)] or 'net'} ({type(refusing).__name__}) after it "
            f"computes in {X.dtype}: PyTorch says {first!r}; return the layer's output as "
            f"{X.dtype} (e.g. .float() at the end of its forward)"
            + (f", or train the whole network under autocast with amp_dtype={dtype}"
               if dtype in (torch.bfloat16, torch.float16) else "")) from None


LOSS_MAX = 1e6  # a mean loss per image above this has diverged (cross-entropy starts near 2.3)


def _first_bad_step(step_losses):
    """The index of the first non-finite step loss, or None when it cannot be told."""
    try:
        losses = torch.stack(step_losses)
        bad = (~torch.isfinite(losses)).nonzero()
        if not len(bad):  # finite but enormous: the first step whose summed loss is past it
            bad = (losses.abs() > LOSS_MAX).nonzero()
    except RuntimeError:  # e.g. outputs of torch.compile's CUDA graphs, overwritten since
        return None
    return bad[0].item() if len(bad) else None


def check_finite_loss(record, step_losses, optimizer, steps_per_epoch=None):
    """After an epoch: raise TrainingDiverged when its loss is NaN or infinite.

    ``step_losses`` holds the epoch's summed loss per step (empty for a CUDA-graph epoch, which
    runs as one piece), so that the message can name the first step that went wrong.
    ``optimizer`` gives the learning rate (``fused.train_fused``, which has none, passes the
    rate itself). The check reads the epoch's loss, already on the host: no extra sync.
    """
    if math.isfinite(record["loss"]) and abs(record["loss"]) <= LOSS_MAX:
        return
    where = f"epoch {record['epoch']}"
    if step_losses:
        bad = _first_bad_step(step_losses)
        if bad is not None:
            where += f", step {bad + 1} of {steps_per_epoch or len(step_losses)}"
    else:
        where += " (a CUDA graph runs the epoch as one piece: train without it to see the step)"
    rates = sorted({float(group["lr"]) for group in optimizer.param_groups}
                   if hasattr(optimizer, "param_groups") else {float(optimizer)})
    if math.isfinite(record["loss"]):
        where += f" (over {LOSS_MAX:.0e} per image, where a network that learns starts near 2.3)"
    raise TrainingDiverged(
        f"Training diverged: the loss became {record['loss']} in {where}, with learning rate "
        f"{', '.join(f'{r:g}' for r in rates)}; the network's weights are no longer numbers.\n"
        "How to fix it: build the network again (its weights are lost) and train with a smaller "
        "learning rate (e.g. 10 times smaller); check that the images and labels are the data "
        "set's, and that a custom loss gives finite values.")


def check_finite_weights(net):
    """After training: every weight a number. An epoch's loss is computed before its last
    step's update, so a step that made the weights NaN at the very end is seen only here."""
    bad = [name for name, p in net.named_parameters() if not bool(torch.isfinite(p).all())]
    if bad:
        raise TrainingDiverged(
            f"Training diverged at its last step: the weights {', '.join(bad[:3])}"
            f"{' ...' if len(bad) > 3 else ''} hold NaN or infinite numbers, although the loss "
            "was still finite.\nHow to fix it: build the network again (its weights are lost) "
            "and train with a smaller learning rate (e.g. 10 times smaller), or with the "
            "optimizer's other settings at their defaults.")


def check_fused_step(net, images, labels, lr, compile=True, channels_last=False):
    """``FusedStep``'s arguments: a float32 network it can train, the data, a learning rate and
    two flags."""
    check_network(net, compile=compile, channels_last=channels_last)
    if isinstance(net, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
        raise TypeError(f"FusedStep takes the network itself, not {type(net).__name__}: it "
                        "computes one device's step as a pure function of the weights; pass "
                        "net.module")
    _check_network_for_training(net, fused=True)
    check_fused_data(images, labels)
    check_number("lr", lr)
    problem = _input_problem(net, *images.shape[1:], batch_of_one=False)  # steps: _call_unchanged
    if problem:
        raise ValueError(f"FusedStep: {problem}")
    _check_softmax_output(net, None, "FusedStep")  # its loss is F.cross_entropy


def check_indices(idx, labels):
    """One step's batch: a 1-D tensor of int64 indices into the data, on its device (on the CPU
    also each in range; on a GPU that would wait for the device, so it is left to torch)."""
    if not (isinstance(idx, torch.Tensor) and idx.dim() == 1 and idx.dtype == torch.int64
            and idx.device == labels.device):
        got = (f"{idx.dtype} of shape {tuple(idx.shape)} on {idx.device}"
               if isinstance(idx, torch.Tensor) else f"{_a_kind(idx)}")
        raise TypeError(f"a step takes the batch's indices as a 1-D int64 tensor on "
                        f"{labels.device}, as torch.randperm(n).split(batch_size) gives, "
                        f"got {got}")
    if len(idx) == 0:
        raise ValueError("a step's batch is empty (0 indices): its mean loss would be NaN; give "
                         "at least one index")
    if idx.device.type == "cpu" and len(idx):
        low, high = (value.item() for value in torch.aminmax(idx))
        if low < 0 or high >= len(labels):
            raise ValueError(f"a step's indices must be 0 to {len(labels) - 1}, one per image of "
                             f"the data, found {low if low < 0 else high}")


def check_codes(codes):
    """The RBF codes of the 1998 network: a float tensor, one code of F6's 84 outputs per
    class."""
    if type(codes).__module__ == "numpy" and hasattr(codes, "dtype"):  # its dtype is not at fault
        raise TypeError(f"codes must be a float tensor {NUM_CLASSES}×84 (one code per class), "
                        f"got a numpy array ({codes.dtype}); convert it: "
                        "torch.from_numpy(codes).float()")
    if not isinstance(codes, torch.Tensor) or not codes.is_floating_point():
        raise TypeError(f"codes must be a float tensor {NUM_CLASSES}×84 (one code per class), "
                        f"got {getattr(codes, 'dtype', _a_kind(codes))}; e.g. "
                        "torch.tensor(codes, dtype=torch.float32)")
    check_dense("the RBF layer", codes=codes)
    if tuple(codes.shape) != (NUM_CLASSES, 84):
        raise ValueError(f"codes must hold one code of length 84 (F6's outputs) for each of the "
                         f"{NUM_CLASSES} classes, shape ({NUM_CLASSES}, 84), got "
                         f"{tuple(codes.shape)}")
    if not torch.isfinite(codes).all():
        raise ValueError("codes must be finite numbers, e.g. ±1 as hadamard_codes() gives")
    if _on_cpu(codes) and len(torch.unique(codes.detach(), dim=0)) < len(codes):
        raise ValueError("codes must differ from class to class: two classes with the same code "
                         "get the same penalty on every image, and the first of them always "
                         "wins; give distinct codes, e.g. hadamard_codes()")


def check_scores(name, scores, param="scores"):
    """What ``name`` gets as ``param``: a tensor of one row of scores (or penalties) per
    image."""
    if not isinstance(scores, torch.Tensor) or scores.dim() != 2:
        got = (f"shape {tuple(scores.shape)}" if isinstance(scores, torch.Tensor)
               else f"{_a_kind(scores)}")
        raise ValueError(f"{name}: {param} must be a batch of scores N×{NUM_CLASSES}, one row per "
                         f"image, got {got}"
                         + (f"; for one image use {param}.unsqueeze(0)"
                            if isinstance(scores, torch.Tensor) and scores.dim() == 1 else ""))
    if scores.shape[1] != NUM_CLASSES:
        raise ValueError(f"{name}: {param} must be a batch of scores N×{NUM_CLASSES}, one per "
                         f"class, got shape {tuple(scores.shape)}: {scores.shape[1]} scores per "
                         "image")


def check_window(n, kernel, padding, stride):
    """``output_size``'s arguments: whole numbers, and a window that fits the padded input."""
    for name, value, least in (("n", n, 1), ("kernel", kernel, 1), ("padding", padding, 0),
                               ("stride", stride, 1)):
        check_whole(name, value, least)
    if n + 2 * padding < kernel:
        raise ValueError(f"a window of {kernel} does not fit an input of {n} padded by {padding} "
                         f"on each side ({n} + 2×{padding} < {kernel}): the output would be "
                         "empty; use a smaller kernel, more padding or a larger input")


def check_trace(net, X):
    """``trace_shapes``'s arguments: an nn.Sequential and a tensor that it takes."""
    from lenet_book.shapes import describe, diagnose, input_problem, walk

    if not isinstance(net, nn.Sequential):
        raise TypeError(f"trace_shapes: net must be an nn.Sequential, run layer by layer, not a "
                        f"{_kind(net)}; trace its Sequential parts one at a time")
    if not isinstance(X, torch.Tensor):
        raise TypeError(f"trace_shapes: X must be a tensor that the layers run on, not a "
                        f"{_kind(X)}; for a shape such as (1, 1, 28, 28), "
                        "check_input_shape(net, shape) needs no data")
    check_dense("trace_shapes", meta=True, X=X)
    problem = input_problem(net, X.dtype, "tensor")
    if problem:
        raise TypeError(f"trace_shapes: {problem[0]}; {problem[1]}")
    problem = _layer_settings_problem(net)
    if problem:  # not X's fault
        raise ValueError(f"trace_shapes: {problem}")
    devices = {t.device for t in (*net.parameters(), *net.buffers())}
    if devices and X.device not in devices:
        raise ValueError(f"trace_shapes: X is on {X.device} but the network on "
                         f"{', '.join(sorted(map(str, devices)))}; move one to the other, e.g. "
                         "X.to(next(net.parameters()).device)")
    shapes, failure = walk(net, tuple(X.shape))
    if failure:
        index, layer, shape, expects = failure
        why, hint = diagnose(net, tuple(X.shape), shapes, failure)
        raise ValueError(f"trace_shapes: the network does not take X of shape {tuple(X.shape)}: "
                         f"layer {index}, {describe(layer)}, gets shape {shape} but expects "
                         f"{expects}" + "".join(f"; {text}" for text in (why, hint) if text))


# --- The door of the functions the chapters show ---------------------------------------------

def _call_problem(function, signature, args, kwargs):
    """Why ``function(*args, **kwargs)`` does not fit its parameters, with how to call it; None
    when it fits."""
    try:
        signature.bind(*args, **kwargs)
    except TypeError as error:
        said = str(error)
    else:
        return None
    name = function.__name__
    hints = []
    parameters = [p for p in signature.parameters if p not in ("args", "kwargs")]
    recipe_keys = _recipe_options_given(parameters, signature, kwargs)
    if recipe_keys:
        options = "is an option" if len(recipe_keys) == 1 else "are options"
        hints.append(f"{', '.join(recipe_keys)} {options} of a recipe, not of {name}: build "
                     "the network and train's options from the recipe, net, options = "
                     "recipes.build(recipe, seed=0), then "
                     "train(net, train_data, {'valid': valid_data}, **options).")
    for key in kwargs:
        if key not in signature.parameters and key not in recipe_keys:
            hint = _keyword_hint(name, parameters, key, kwargs[key])
            if hint:
                hints.append(hint)
    names = list(signature.parameters)
    if names[:2] == ["net", "path"] and (
            (len(args) == 1 and isinstance(args[0], (str, os.PathLike)) and "path" not in kwargs)
            or (not args and "net" not in kwargs and "path" in kwargs)):
        what = ("loads the weights into a network you build first" if name == "load_checkpoint"
                else "saves the network given first")
        call = ("net = load_checkpoint(models.lenet(), path) for the text's LeNet (the network "
                "the file holds; chapter 6's: net, _ = recipes.build(recipe), then "
                "load_checkpoint(net, path))" if name == "load_checkpoint"
                else "save_checkpoint(net, path)")
        hints.append(f"{name} {what}, and only the path was given: {call}.")
    for index, value in enumerate(args[:len(names) - 1]):
        if (names[index:index + 2] == ["images", "labels"] and isinstance(value, (tuple, list))
                and len(value) == 2):
            hints.append(f"the images and the labels are two arguments, and argument "
                         f"{index + 1} is one pair (images, labels): unpack it, "
                         f"{name}({', '.join(names[:index])}, *data).")
        if names[index] == "images" and isinstance(value, (torch.utils.data.DataLoader,
                                                           torch.utils.data.Dataset)):
            hints.append(f"{name} takes the images and the labels as two tensors (uint8 images "
                         f"N×28×28, {FROM_LOADER}), not {_a_kind(value)}"
                         + ("; to score a DataLoader of float batches, use "
                            "lenet_book.textbook.evaluate_accuracy_gpu(net, loader)."
                            if name == "evaluate" else "."))
    shown = re.sub(r"<function (\w+) at 0x[0-9a-f]+>", r"\1", str(signature))
    return f"{name}() {said}: {' '.join(hints) + ' ' if hints else ''}It takes {name}{shown}"


# Keywords that mean one of the book's parameters without being spelt like it (recipes.ALIASES
# too): the first of the parameters named that the function has
_KEYWORD_ALIASES = {
    "learning_rate": ("lr",), "epoch": ("num_epochs",), "n_epochs": ("num_epochs",),
    "max_epochs": ("num_epochs",), "bs": ("batch_size",), "callback": ("on_epoch",),
    "callbacks": ("on_epoch",), "loss": ("loss_fn",), "criterion": ("loss_fn",),
    "loss_function": ("loss_fn",), "opt": ("optimizer",), "optim": ("optimizer",),
    "lr_scheduler": ("scheduler",), "transform": ("batch_transform",),
    "augment": ("batch_transform",), "model": ("net",), "network": ("net",),
    "test_data": ("eval_sets",), "test_set": ("test_data", "eval_sets"),
    "eval_data": ("eval_sets", "test_data"), "eval_set": ("eval_sets", "eval_data", "test_data"),
    "eval_sets": ("test_data", "eval_data"), "val_data": ("eval_sets", "eval_data", "test_data"),
    "valid_data": ("eval_sets", "eval_data", "test_data"),
    "validation_data": ("eval_sets", "eval_data", "test_data"),
}


def _recipe_options_given(parameters, signature, kwargs):
    """The keywords of a recipe (recipes.OPTIONS: 'network', 'activation', 'augment', ...) given
    to a training function that does not take them, e.g. train(net, data, **recipe)."""
    if "num_epochs" not in parameters:
        return []
    from lenet_book.recipes import OPTIONS

    return [key for key in kwargs if key in OPTIONS and key not in signature.parameters
            and not callable(kwargs[key])]


# Parameters that take a function, and what a learner's flag or name there should be instead
_TAKES_A_FUNCTION = {
    "batch_transform": "a function (images, generator) -> images, e.g. "
                       "batch_transform=recipes.random_crop_flip (what a recipe's 'augment': True "
                       "uses)",
    "scheduler": "a function (optimizer, epochs, steps_per_epoch) -> a scheduler",
    "on_epoch": "a function of the epoch's record",
    "loss_fn": "a function (scores, labels) -> loss",
    "predict": "a function (scores) -> labels",
}

# Keywords of torch's loading and saving that the checkpoint functions do without
_CHECKPOINT_KEYWORDS = {
    "map_location": "load_checkpoint copies the weights into the network where it is: move the "
                    "network first, net.to(device), then load",
    "strict": "load_checkpoint loads only a checkpoint of this very network; to copy matching "
              "tensors of another one, net.load_state_dict(torch.load(path, weights_only=True)"
              "['state_dict'], strict=False)",
    "weights_only": "load_checkpoint reads weights only, always",
}


def _keyword_hint(name, parameters, key, value):
    """How to write the keyword ``key=value`` that the function ``name`` does not take: the
    parameter it means (by the aliases, else by its spelling), or the function that takes it;
    the value is named by its kind and shape when its repr is long."""
    try:
        from lenet_book.recipes import ALIASES
    except ImportError:  # pragma: no cover - the package is installed whole
        ALIASES = {}
    targets = _KEYWORD_ALIASES.get(key, ()) + ((ALIASES[key],) if key in ALIASES else ())
    meant = next((t for t in targets if t in parameters), None)
    if meant is None:
        close = difflib.get_close_matches(key, parameters, n=1, cutoff=0.7)
        meant = close[0] if close else None
    if meant == "eval_sets" and not isinstance(value, dict):
        split = "test" if key.startswith("test") else "valid"
        return (f"did you mean eval_sets={{{split!r}: (images, labels)}}? ({name} scores each "
                f"split of eval_sets after every epoch, as {split}_acc)")
    if meant in _TAKES_A_FUNCTION and not callable(value):
        return (f"did you mean {meant}=...? {meant} takes {_TAKES_A_FUNCTION[meant]}, not "
                f"{_brief(value)}.")
    if meant is not None:
        brief = _brief(value)
        shown = "..." if brief.startswith(("a ", "an ")) else brief
        return f"did you mean {meant}={shown}?"
    if key in _CHECKPOINT_KEYWORDS and name in ("load_checkpoint", "save_checkpoint"):
        return _CHECKPOINT_KEYWORDS[key] + "."
    if name != "train" and "test_data" in parameters:
        from lenet_book.train import train

        if key in inspect.signature(train).parameters:
            return (f"{key}= is an option of lenet_book.train.train, not of {name}: call "
                    f"train(net, train_data, {{'test': test_data}}, {key}=...), which {name} "
                    "calls with the text's recipe.")
    return None


def at_the_door(function, check=None, around=None):
    """``function`` with its arguments checked before it runs, for the functions the chapters
    show: ``check`` (taking the same arguments) refuses bad values, and a call that does not
    fit the parameters gets a message naming the closest one (``epochs=`` -> ``num_epochs=``)
    and the signature. ``functools.wraps`` keeps the function's name, docstring and signature,
    and ``inspect.getsource`` (what the chapters' ``show`` displays) gives the function's own
    source, unchanged. The results are the function's own: the checks change nothing.
    ``around``, if given, is a context manager taking the bound arguments (with defaults
    applied, which it may replace, e.g. a callback by one that gets a copy) and puts back what
    the call must not change (a network's train/eval modes, its batch-norm statistics)."""
    signature = inspect.signature(function)
    takes_on_epoch = "on_epoch" in signature.parameters

    @functools.wraps(function)
    def checked(*args, **kwargs):
        # the training function the learner called, for on_epoch's messages in its words
        token = _CALLED.set(function) if takes_on_epoch and _CALLED.get() is None else None
        try:
            if check is not None:
                check(*args, **kwargs)
            if around is None:
                return function(*args, **kwargs)
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError:
                raise TypeError(_call_problem(function, signature, args, kwargs)) from None
            bound.apply_defaults()
            with around(bound):
                _on_epoch_named(bound)
                return function(*bound.args, **bound.kwargs)
        except TypeError as error:
            # raised while binding the arguments (no frame of the function ran): say how to call it
            if error.__traceback__.tb_next is not None:
                raise
            problem = _call_problem(function, signature, args, kwargs)
            if problem is None:
                raise
            raise TypeError(problem) from None
        finally:
            if token is not None:
                _CALLED.reset(token)

    return checked


_CALLED = contextvars.ContextVar("called", default=None)


def _is_a_device(value):
    if isinstance(value, torch.device):
        return True
    return isinstance(value, str) and re.fullmatch(r"(cpu|cuda|mps|xpu)(:\d+)?", value) is not None


def check_no_device_given(function, args, kwargs):
    """A device given by position to a function that takes none (d2l's train_ch6(net,
    train_iter, test_iter, num_epochs, lr, device)): it lands in another parameter, named here
    with what to do instead."""
    try:
        bound = inspect.signature(function).bind(*args, **kwargs)
    except TypeError:
        return  # named by at_the_door
    for position, (name, value) in enumerate(bound.arguments.items(), start=1):
        if name != "device" and _is_a_device(value):
            raise TypeError(f"{function.__name__}'s argument {position}, {name}, got "
                            f"{value!r}, which is a device: {function.__name__} takes no device "
                            "(d2l's train_ch6 does, as its 6th argument); it trains where "
                            "the images and labels are: move them to the device first (e.g. "
                            "images.to(device)), and give "
                            f"{name} {'a number' if name != 'net' else 'the network'}")


class _RecordKeyError(KeyError):
    """A KeyError (as Python raised it, so ``except KeyError`` still catches it and ``args[0]``
    is still the key) whose message is a sentence, not the repr of a key."""

    def __init__(self, key, sentence):
        super().__init__(key)
        self.sentence = sentence

    def __str__(self):
        return self.sentence

    def __reduce__(self):  # a copy (pickle, copy.copy) keeps the sentence
        return type(self), (self.args[0], self.sentence)


def _on_epoch_named(bound):
    """``on_epoch`` (after ``around`` has wrapped it) wrapped once more: a mistake in its body
    shows only after an epoch has trained the network in place, so the error says so, and a
    missing key of the epoch's dict (e.g. record['val_acc'] for eval_sets={'valid': ...}) lists
    the keys it has. Not called before training: it may save or print."""
    on_epoch = bound.arguments.get("on_epoch")
    if on_epoch is None or isinstance(on_epoch, type) or not callable(on_epoch):
        return

    @functools.wraps(on_epoch)
    def named(record, *args, **kwargs):
        keys = list(record) if isinstance(record, dict) else None
        try:
            return on_epoch(record, *args, **kwargs)
        except Exception as error:
            if _raised_by_lenet_book(error):  # the book's own words already
                raise
            epoch = record.get("epoch") if isinstance(record, dict) else None
            trained = (f"the network has been trained {epoch} epoch{'s' * (epoch != 1)} in "
                       if isinstance(epoch, int) else "the network has been trained ") + (
                "place by now (train changes net itself): rebuild it (with the same seed) "
                "before training again, or the next run starts from these weights")
            key = error.args[0] if type(error) is KeyError and error.args else None
            if keys is not None and isinstance(key, str) and key not in keys:
                called = _CALLED.get()
                names = ""
                if "eval_sets" in bound.arguments:  # in the words of the call the learner wrote
                    parameters = (inspect.signature(called).parameters if called is not None
                                  else bound.arguments)
                    names = (" (one '<name>_acc' per eval set, named by eval_sets' keys)"
                             if "eval_sets" in parameters else
                             " (test_acc scores test_data)" if "test_data" in parameters else "")
                raise _RecordKeyError(
                    key, f"on_epoch raised KeyError {key!r}: if it read record[{key!r}], the "
                    f"epoch's dict holds only {', '.join(map(str, keys))}{names}; "
                    f"{trained}") from error
            error.add_note(f"(raised in on_epoch, after epoch {epoch}: {trained})")
            raise

    bound.arguments["on_epoch"] = named


@contextlib.contextmanager
def modes_kept(net):
    """Puts back the train/eval mode of every module of ``net`` (e.g. after ``evaluate``, which
    switches it to eval mode to score)."""
    modes = ([(module, module.training) for module in net.modules()]
             if isinstance(net, nn.Module) else [])
    try:
        yield
    finally:
        for module, mode in modes:
            module.training = mode


@contextlib.contextmanager
def buffers_kept(net):
    """Puts back the buffers of ``net`` (batch norm's running statistics and its count of
    batches): a diagnostic that runs the network in training mode must not change them."""
    kept = ([(b, b.detach().clone()) for b in net.buffers()
             if not isinstance(b, nn.parameter.UninitializedBuffer) and not b.is_meta]
            if isinstance(net, nn.Module) else [])
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in kept:
                if buffer.shape == value.shape:
                    buffer.copy_(value)


def _on_cpu(*tensors):
    """Values are checked on the CPU only: on a GPU reading them would wait for the device
    (and is not allowed while a CUDA graph is recorded)."""
    return all(t.device.type == "cpu" for t in tensors)


def _check_labels(name, labels, count, scores="scores", param="labels"):
    """A batch's labels (the argument ``param``): int64 class numbers 0-9, one per image
    (range checked on the CPU)."""
    if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64:
        got = labels.dtype if isinstance(labels, torch.Tensor) else f"{_a_kind(labels)}"
        raise TypeError(f"{name}: {param} must be the labels as int64 class numbers "
                        f"0-{NUM_CLASSES - 1}, one per image, got {got}"
                        + (f"; convert them: {param}.long()" if isinstance(labels, torch.Tensor)
                           else ""))
    if labels.dim() != 1 or len(labels) != count:
        raise ValueError(f"{name}: {param} must hold one label per image: {count} {scores}, "
                         f"labels of shape {tuple(labels.shape)}")
    if _on_cpu(labels) and len(labels):
        low, high = (value.item() for value in torch.aminmax(labels))
        if low < 0 or high >= NUM_CLASSES:
            raise ValueError(f"{name}: {param} must be class numbers 0-{NUM_CLASSES - 1}, found "
                             f"{low if low < 0 else high}; the labels of Fashion-MNIST are 0-9 "
                             f"({FROM_LOADER})")


_NOT_GIVEN = object()

# images normalised with the data set's mean and std stay within a few units (Fashion-MNIST's:
# -0.81 to 2.02); pixels 0-255 given as floats go far beyond
NORMALISED_MAX = 10.0


_CHECKED = weakref.WeakKeyDictionary()  # loss functions and predict rules found good


def _once(function, check):
    """``check()`` the first time ``function`` is seen (``train_step`` runs every step)."""
    try:
        if _CHECKED.get(function):
            return
    except TypeError:  # cannot be weakly referenced: checked every time
        check()
        return
    check()
    _CHECKED[function] = True


def _check_step_optimizer(optimizer):
    """What ``train`` refuses of an optimizer, for ``train_step``: LBFGS (no closure here),
    maximize, a non-finite option, dampening 1, and a rate below 0 or not finite (number rates
    only: a tensor rate would need a sync at every step). A rate of 0 is a step that changes
    nothing, by design: compile_and_warm_up (chapter 4) compiles the step that way."""
    if isinstance(optimizer, torch.optim.LBFGS):
        raise TypeError("train_step: LBFGS needs a closure that recomputes the loss at every "
                        "step, but train_step calls optimizer.step() without one; use an "
                        "optimizer of single steps, e.g. torch.optim.SGD(net.parameters(), "
                        "lr=0.1)")
    _check_dense_gradients(optimizer, "train_step: optimizer",
                           "torch.optim.Adam(net.parameters())")
    _check_optimizer_settings(optimizer, "train_step: optimizer")
    for group in optimizer.param_groups:
        rate = group.get("lr")
        if not isinstance(rate, torch.Tensor) and not (rate == 0 or _rate_above_0(rate)):
            raise ValueError(f"train_step: the optimizer's learning rate is {rate!r}: it must be "
                             "a finite number of at least 0 (a negative rate climbs the loss); "
                             "e.g. torch.optim.SGD(net.parameters(), lr=0.1)")


def _check_train_mode(net):
    """A training step on a network left in eval mode (``train`` leaves it so after scoring
    eval_sets) would train batch norm on frozen statistics and dropout on nothing dropped.
    Refused only when no module at all is in train mode: ``net.train()`` followed by
    ``.eval()`` of chosen layers (freezing batch norm on purpose) passes."""
    if net.training and not hasattr(net, "_orig_mod"):
        return
    modules = list(net.modules())
    if any(module.training for module in modules):
        return
    moded = [type(module).__name__ for module in modules
             if (isinstance(module, nn.modules.batchnorm._NormBase)
                 and module.track_running_stats)
             or (isinstance(module, nn.modules.dropout._DropoutNd) and module.p > 0)]
    if moded:
        raise ValueError(
            f"train_step: the network is in eval mode (net.training is False), so its "
            f"{' and '.join(dict.fromkeys(moded))} layers would not behave as in training "
            "(batch norm would use its running statistics and never update them; dropout would "
            "drop nothing); call net.train() before the training steps (train leaves the "
            "network in eval mode after scoring eval_sets); to freeze batch norm on purpose, "
            "call net.train() and then .eval() on those layers only")


def check_train_step(net, optimizer, loss_fn, X, y, amp_dtype=None, predict=_NOT_GIVEN):
    """``train_step``'s arguments: a network, its optimizer, a loss and a predict rule, a float
    batch N×1×H×W in [0, 1] (what ``to_float`` gives) and its labels 0-9. On the CPU also the
    values (a min/max of the batch)."""
    if not isinstance(net, nn.Module):
        raise TypeError(f"train_step trains a network: net must be a torch.nn.Module (e.g. "
                        f"models.lenet()), got {_a_kind(net)}")
    _check_grad_mode("train_step")
    _check_train_mode(net)
    if isinstance(optimizer, type) or not (callable(getattr(optimizer, "zero_grad", None))
                                           and callable(getattr(optimizer, "step", None))):
        raise TypeError(f"train_step needs the optimizer that updates the network, e.g. "
                        f"torch.optim.SGD(net.parameters(), lr=0.1), got {_got(optimizer)}")
    groups = getattr(optimizer, "param_groups", None)
    if isinstance(groups, list) and groups:
        ours = {id(p) for p in net.parameters()}
        if not any(id(p) in ours for group in groups for p in group.get("params", ())):
            raise ValueError("train_step: the optimizer updates the parameters of another "
                             "network, so this one would never change; build it from this "
                             "network: torch.optim.SGD(net.parameters(), lr=0.1)")
    _check_not_a_class("loss_fn", loss_fn, "train_step: ")
    if predict is not _NOT_GIVEN:
        _check_not_a_class("predict", predict, "train_step: ")
    for name, value in (("loss_fn", loss_fn), ("predict", predict)):
        if value is not _NOT_GIVEN and not callable(value):
            raise TypeError(f"train_step: {name} must be a function, e.g. "
                            + ("nn.CrossEntropyLoss()" if name == "loss_fn" else "argmax")
                            + f", got {_got(value)}")
    _check_amp_dtype(amp_dtype)
    check_dense("train_step", X=X, y=y)
    for what, tensor in (("X", X), ("y", y)):  # outside inference mode (_check_grad_mode)
        if isinstance(tensor, torch.Tensor) and tensor.is_inference():
            raise ValueError(f"train_step: {what} was made inside torch.inference_mode() (an "
                             "inference tensor), which autograd cannot save for backward; make "
                             f"it outside that block, or use {what}.clone() after the block")
    if not isinstance(X, torch.Tensor) or not X.is_floating_point():
        got = X.dtype if isinstance(X, torch.Tensor) else f"{_a_kind(X)}"
        raise TypeError(f"train_step: X must be a float batch N×1×height×width in [0, 1], got {got}"
                        + ("; convert uint8 pixels with to_float(images), which divides them "
                           "by 255 and adds the channel" if got == torch.uint8 else ""))
    weights = {p.dtype for p in net.parameters()}
    if weights and weights != {torch.float32} and amp_dtype is None and weights != {X.dtype}:
        raise TypeError(f"train_step: the network's weights are "
                        f"{', '.join(sorted(str(d) for d in weights))} but X is {X.dtype}; the "
                        "book's batches are float32 (to_float): convert the network with "
                        "net.float() (for mixed precision keep it float32 and use amp_dtype)")
    if weights == {torch.float32} and X.dtype not in (torch.float32, amp_dtype):
        raise TypeError(f"train_step: X must be float32 like the network's weights (to_float "
                        f"gives float32), got {X.dtype}; convert it with X.float()"
                        + (" (for mixed precision use amp_dtype)" if amp_dtype is None else
                           f" (autocast to amp_dtype={amp_dtype} casts it itself)"))
    if X.dim() != 4 or len(X) == 0:
        raise ValueError(f"train_step: X must be a batch N×1×height×width of at least one image, "
                         f"got shape {tuple(X.shape)}"
                         + ("; to_float(images) adds the channel to uint8 images N×28×28"
                            if X.dim() == 3 else ""))
    _check_labels("train_step", y, len(X), "images", "y")
    check_layers_built(net, "be trained")  # before the shapes: an unbuilt layer has no size
    _check_fits("train_step: X", net, tuple(X.shape[1:]), len(X))
    if isinstance(optimizer, torch.optim.Optimizer):
        _check_step_optimizer(optimizer)
    if not (X.is_cuda and torch.cuda.is_current_stream_capturing()):  # probes read values
        _once(loss_fn, lambda: check_loss(loss_fn, X.device))
        if predict is not _NOT_GIVEN:
            _once(predict, lambda: check_predict(predict, X.device))
        _check_log_probabilities(net, loss_fn, X, y)
    # after the loss's own checks, which name a bad loss better
    batch_norm = _check_step_network(net, optimizer, loss_fn, predict)
    if batch_norm and len(X) == 1 and net.training:
        raise ValueError("train_step: X holds one image, and batch normalisation cannot normalise "
                         "a batch of one in training (the variance of one number is 0); give "
                         "batches of at least 2 images")
    if _on_cpu(X):
        low, high = (value.item() for value in torch.aminmax(X.detach()))
        if not (-NORMALISED_MAX <= low and high <= NORMALISED_MAX):  # also NaN
            raise ValueError(f"train_step: X must hold images in [0, 1], as to_float gives them; "
                             f"these go from {low:g} to {high:g}"
                             + ("; they look like pixels 0-255 as floats: divide by 255, or "
                                "give the uint8 pixels to to_float" if low >= 0
                                and high > NORMALISED_MAX else
                                f" (images normalised with a mean and std, (X - mean) / std, "
                                f"are taken too: they stay within ±{NORMALISED_MAX:g})"))
        if high < 1.5 / 255:  # float32 rounding of 1/255
            raise ValueError(f"train_step: X's pixels are all at most {high:.3g} (1/255 is "
                             "0.00392): blank images, or pixels divided by 255 twice; to_float "
                             "divides the uint8 images once, give it the images themselves")


def check_epoch_graph(graph, net, optimizer, loss_fn, images, labels, batch_size, amp_dtype=None,
                      predict=_NOT_GIVEN):
    """``EpochGraph``'s arguments, before anything is recorded: ``train_step``'s network,
    optimizer, loss and predict rule, a split of the data on a CUDA device and a batch size."""
    check_network(net)
    if isinstance(optimizer, type) or not (callable(getattr(optimizer, "zero_grad", None))
                                           and callable(getattr(optimizer, "step", None))):
        raise TypeError(f"EpochGraph: optimizer must be the optimizer that updates the network, "
                        f"e.g. torch.optim.SGD(net.parameters(), lr=0.1), got {_got(optimizer)}")
    for name, value in (("loss_fn", loss_fn), ("predict", predict)):
        if value is not _NOT_GIVEN and not callable(value):
            raise TypeError(f"EpochGraph: {name} must be a function, e.g. "
                            + ("nn.CrossEntropyLoss()" if name == "loss_fn" else "argmax")
                            + f", got {_got(value)}")
    check_split("EpochGraph", images, labels, batch_size)
    _check_amp_dtype(amp_dtype)
    problem = _input_problem(net, *images.shape[1:],
                             batch_of_one=_batch_of_one(len(labels), batch_size))
    if problem:
        raise ValueError(f"EpochGraph: net: {problem}")
    if images.device.type != "cuda":
        raise ValueError(f"EpochGraph records a CUDA graph: the images must be on a CUDA device, "
                         f"they are on {images.device}; without a GPU train without cuda_graph")


_FITS = weakref.WeakKeyDictionary()  # network -> (its layers, the ((C, H, W), 1 image?) it takes)
_STEP_NETWORKS = weakref.WeakKeyDictionary()  # network -> (what was checked, has batch norm)


def _layers_key(net):
    """What a check of ``net`` depends on, cheaply: its modules and parameters (a replaced
    layer is another object) and which parameters train."""
    return (tuple(map(id, net.modules())),
            tuple((id(p), p.requires_grad) for p in net.parameters()))


def _check_fits(name, net, size, count=None):
    """The network must take inputs of ``size`` (C, H, W): checked by the shape rules once per
    network, size and set of layers (``train_step`` runs every step; the check would cost more
    than it). ``count``: the batch's number of images, if known (a forward that drops the batch
    dimension of one image takes the others)."""
    key = _layers_key(net)
    try:
        known_key, known = _FITS.get(net, (None, set()))
        if known_key != key:
            known = set()
            _FITS[net] = (key, known)
    except TypeError:  # a network that cannot be weakly referenced: checked every time
        known = set()
    one = count is None or count == 1
    if (size, one) in known:
        return
    problem = _input_problem(net, size[1], size[2], size[0],
                             batch_of_one="it holds one image" if count == 1 else one)
    if problem:
        raise ValueError(f"{name}: {problem}")
    known.add((size, one))


def _check_step_network(net, optimizer, loss_fn, predict):
    """What ``train`` refuses of a network, for ``train_step``: checked once per network, set of
    layers, optimizer, loss and predict rule. Returns whether the network has batch norm."""
    groups = getattr(optimizer, "param_groups", None)
    key = (_layers_key(net), id(optimizer), id(loss_fn), id(predict),
           tuple(len(g.get("params", ())) for g in groups) if isinstance(groups, list) else None)
    try:
        known = _STEP_NETWORKS.get(net)
    except TypeError:  # a network that cannot be weakly referenced: checked every time
        known = None
    if known is not None and known[0] == key:
        return known[1]
    _check_trainable(net)
    if isinstance(groups, list):
        given = {id(p) for group in groups for p in group.get("params", ())}
        left = [name for name, p in net.named_parameters()
                if p.requires_grad and id(p) not in given]
        if left:
            raise ValueError(f"train_step: the optimizer leaves {len(left)} trainable tensors of "
                             f"the network out (e.g. {left[0]}), so they would never learn (an "
                             "optimizer built before a layer was replaced?); build it again: "
                             "torch.optim.SGD(net.parameters(), lr=0.1); to freeze layers on "
                             "purpose, call requires_grad_(False) on them first")
    rbf = any(type(m).__name__ == "RBF" for m in net.modules())
    if rbf and (predict is _NOT_GIVEN or getattr(predict, "__name__", None) == "argmax"):
        raise ValueError("train_step: this network ends in RBF penalties (the 1998 LeNet-5, "
                         "chapter 5), where the smallest penalty wins; the default predict (the "
                         "largest score) would count the worst class as right: pass "
                         "predict=original.predict")
    if rbf:
        _check_loss_direction(loss_fn, penalties=True)
        if predict is not _NOT_GIVEN:
            _check_predict_picks("train_step", predict, penalties=True)
    else:
        _remember_trained(net, _check_loss_and_predict_agree(
            "train_step", loss_fn, None if predict is _NOT_GIVEN else predict))
    _check_softmax_output(net, loss_fn)
    batch_norm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())
    try:
        _STEP_NETWORKS[net] = (key, batch_norm)
    except TypeError:
        pass
    return batch_norm


def _output_kind(net, height, width, channels=1, probe=True):
    """"penalties" for a network ending in the 1998 network's RBF layer, "scores" for one whose
    outputs go below 0 on a few fixed images (RBF penalties, squared distances, never do), or
    None when it cannot be told (e.g. a penalty layer of the reader's own): the checks that
    depend on which it is are then left out. One forward, in eval mode, without gradients,
    modes and statistics put back; none without ``probe`` (the default loss and rule, right
    for scores, need no probe)."""
    if any(type(m).__name__ == "RBF" for m in net.modules()):
        return "penalties"
    if not probe:
        return None
    net = getattr(net, "_orig_mod", net)  # a compiled network: the one inside, not compiled now
    params = [*net.parameters(), *net.buffers()]
    if any(t.is_meta for t in params):
        return None
    device = params[0].device if params else "cpu"
    dtype = next((p.dtype for p in params if p.is_floating_point()), torch.float32)
    images = torch.rand(4, channels, height, width, generator=torch.Generator().manual_seed(0))
    images[0], images[1] = 0.0, 1.0
    try:
        with modes_kept(net), buffers_kept(net), _generators_kept(torch.device(device)), \
                torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = net.eval()(images.to(device=device, dtype=dtype))
        below_0 = bool((out < 0).any())
    except Exception:  # what the network cannot take is named by the other checks
        return None
    return "scores" if below_0 else None


def _is_penalty_rule(predict):
    """original.predict, the 1998 network's rule (the smallest RBF penalty)."""
    return (getattr(predict, "__module__", None) == "lenet_book.original"
            and getattr(predict, "__name__", None) == "predict")


def _favours(loss_fn):
    """Which output of the right class ``loss_fn`` trains towards, "largest" (cross-entropy on
    scores) or "smallest" (the paper's loss on penalties), from its gradient on fixed outputs
    of at least 1 (the paper's loss takes no negative penalties): in every row, the right
    class's gradient below every other class's (a step raises it against the others) or above;
    None when it cannot be told. Against the others, not against 0: MSE to one-hot targets
    lowers outputs above 1, the right class's least of all."""
    if _is_cross_entropy(loss_fn):
        return "largest"
    generator = torch.Generator().manual_seed(0)
    outputs = (1 + torch.rand(4, NUM_CLASSES, generator=generator)).requires_grad_()
    labels = torch.tensor([0, 3, 5, 9])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loss_fn(outputs, labels).backward()
        gradient = outputs.grad.float()
        right = gradient.gather(1, labels[:, None])
        others = gradient.scatter(1, labels[:, None], math.nan)  # NaN: left out of the min/max
        lowest, highest = others.nan_to_num(math.inf).amin(1), others.nan_to_num(-math.inf).amax(1)
    except Exception:  # check_loss and the first batch's probes say what is wrong
        return None
    return ("largest" if bool((right[:, 0] < lowest).all())
            else "smallest" if bool((right[:, 0] > highest).all()) else None)


PICKS_TRIED = {(2, 7): "largest", (6, 0): "smallest"}  # _picked's fixed outputs: their classes


def _picked(predict):
    """The classes ``predict`` picks on two fixed rows of outputs, whose largest are classes 2
    and 7 and smallest 6 and 0 (torch's random generators put back: a rule that draws must not
    move them); None when it cannot take them (check_predict and the first batch say more)."""
    outputs = torch.full((2, NUM_CLASSES), 5.0)
    outputs[0, 2], outputs[0, 6], outputs[1, 7], outputs[1, 0] = 9.0, 1.0, 9.0, 1.0
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            picked = predict(outputs).cpu().long().tolist()
    except Exception:
        return None
    if not (isinstance(picked, list) and len(picked) == 2
            and all(isinstance(c, int) for c in picked)):
        return None
    return tuple(picked)


def _picks(predict):
    """Which output ``predict`` takes as the class, "largest" or "smallest", tried on fixed
    outputs; None when it cannot be told (or picks neither)."""
    if predict is None or getattr(predict, "__name__", None) == "argmax":
        return "largest"
    return PICKS_TRIED.get(_picked(predict))


def _check_predict_picks_an_end(name, predict, trains,
                                why="the one loss_fn trains the right class's output to be"):
    """On the fixed outputs of ``_picked``, ``predict`` must pick the largest output or the
    smallest (the one the loss trains towards, ``trains``, when it can be told): a rule such as
    scores.argmax(1) + 1, a constant or a random class counts wrong predictions as right."""
    if predict is None or getattr(predict, "__name__", None) == "argmax":
        return
    picked = _picked(predict)
    if picked is None or picked in PICKS_TRIED:
        return
    want = {"largest": "the largest output (leave predict out: scores.argmax(dim=1))",
            "smallest": "the smallest output (penalties: predict=original.predict, "
                        "outputs.argmin(dim=1))"}
    wanted = (f"{want[trains]}, {why}" if trains in want
              else f"{want['largest']} for scores, or {want['smallest']}")
    raise ValueError(f"{name}: predict picks neither the largest nor the smallest output: on "
                     "two fixed rows of outputs whose largest are classes 2 and 7 (smallest 6 "
                     f"and 0) it picked classes {picked[0]} and {picked[1]}, so the accuracy "
                     f"would count other classes than the network's answer; it must pick "
                     f"{wanted}")


def _check_loss_and_predict_agree(name, loss_fn, predict):
    """The loss and the prediction rule must read the outputs the same way: both the largest
    wins (scores) or both the smallest (penalties, or outputs read as energies). Returns which
    the loss favours (None when it cannot be told)."""
    trains, picks = _favours(loss_fn), _picks(predict)
    if trains == "largest" and picks == "smallest":
        raise ValueError(f"{name}: predict picks the smallest output (tried on fixed outputs; e.g. "
                         "original.predict, made for the 1998 network's RBF penalties), but "
                         "loss_fn trains the right class's output to be the largest (as "
                         "cross-entropy does), so every prediction would be the worst class: "
                         "leave predict out (the largest score), or, for outputs read as "
                         "energies, train with F.cross_entropy(-outputs, labels)")
    if trains == "smallest" and picks == "largest":
        raise ValueError(f"{name}: loss_fn trains the right class's output to be the smallest (a "
                         "loss for penalties, such as original.paper_loss?), but predict picks "
                         "the largest, so every prediction would be the worst class: for a "
                         "network of scores use nn.CrossEntropyLoss(); for penalties pass a "
                         "rule that picks the smallest, predict=original.predict")
    _check_predict_picks_an_end(name, predict, trains)
    return trains


# which output a network's training loss favoured ("largest" or "smallest", as _favours
# tells): evaluate takes a rule that picks the smallest of outputs that go below 0 only for a
# network trained so (outputs read as energies), as train and train_step take it. The mark is
# an attribute of the network, so that a copy (copy.deepcopy, pickle) keeps it; checkpoints
# record it (save_checkpoint, load_checkpoint); the weak map serves networks that refuse it
_TRAINED_TOWARDS = weakref.WeakKeyDictionary()
_TRAINED_MARK = "_lenet_book_trained_towards"


def _remember_trained(net, trains):
    """Mark ``net`` as trained towards ``trains`` (None: clears the mark, e.g. when a
    checkpoint of a network of scores is loaded into it)."""
    net = getattr(net, "_orig_mod", net)  # compiled: the one inside
    if trains is None:
        with contextlib.suppress(AttributeError, TypeError, RuntimeError):
            net.__dict__.pop(_TRAINED_MARK, None)
        with contextlib.suppress(TypeError):
            _TRAINED_TOWARDS.pop(net, None)
        return
    with contextlib.suppress(AttributeError, TypeError, RuntimeError):  # e.g. a ScriptModule
        net.__dict__[_TRAINED_MARK] = trains
        if not net.__dict__.get(_TRAINED_MARK + "_hook"):  # new weights: the mark holds no more
            net.register_load_state_dict_post_hook(_forget_how_trained)
            net.__dict__[_TRAINED_MARK + "_hook"] = True
    with contextlib.suppress(TypeError):  # a network that cannot be weakly referenced
        _TRAINED_TOWARDS[net] = trains


def _forget_how_trained(net, incompatible_keys):
    """load_state_dict's post hook on a marked network: weights loaded from elsewhere were not
    trained as the mark says (load_checkpoint marks them again from its file)."""
    _remember_trained(net, None)


def _trained_towards(net):
    net = getattr(net, "_orig_mod", net)  # compiled: the one inside
    mark = getattr(net, "__dict__", {}).get(_TRAINED_MARK)
    if mark in ("largest", "smallest"):
        return mark
    try:
        return _TRAINED_TOWARDS.get(net)
    except TypeError:
        return None


def _is_cross_entropy(loss_fn):
    """The default loss (None) or cross-entropy itself: made for scores."""
    return loss_fn is None or isinstance(loss_fn, nn.CrossEntropyLoss) \
        or loss_fn is nn.functional.cross_entropy


def _check_not_penalty_predict(name, predict):
    """``original.predict`` picks the smallest RBF penalty: for a network of scores (the largest
    wins) it would pick the worst class."""
    if (getattr(predict, "__module__", None) == "lenet_book.original"
            and getattr(predict, "__name__", None) == "predict"):
        raise ValueError(f"{name}: predict=original.predict picks the smallest of the 1998 "
                         "network's RBF penalties, but this network gives scores, where the "
                         "largest wins: leave predict out (the largest score)")


def _check_predict_picks(name, predict, penalties):
    """Tried on fixed outputs whose best class is known (on the CPU, once): ``predict`` must not
    pick the worst one, the largest of the 1998 network's RBF penalties (where the smallest
    wins) or the smallest of a network's scores (where the largest wins), whatever its name."""
    rows, best, worst = torch.arange(3), torch.tensor([2, 7, 4]), torch.tensor([6, 0, 9])
    outputs = torch.full((3, NUM_CLASSES), 5.0)
    outputs[rows, best], outputs[rows, worst] = (1.0, 9.0) if penalties else (9.0, 1.0)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            picked = predict(outputs)
        picks_worst = torch.equal(picked.cpu().long(), worst)
    except Exception:
        return  # a rule that cannot take these: check_predict and the first batch say more
    if picks_worst and penalties:
        raise ValueError(f"{name}: this network ends in RBF penalties (the 1998 LeNet-5, chapter "
                         "5), where the smallest penalty wins, but predict picks the largest "
                         "(tried on fixed penalties), the worst class; pass "
                         "predict=original.predict (penalties.argmin(dim=1))")
    if picks_worst:
        raise ValueError(f"{name}: predict picks the smallest score (tried on fixed scores), but "
                         "this network gives scores, where the largest wins, so it would count "
                         "the worst class as right: leave predict out (the largest score)")
    _check_predict_picks_an_end(name, predict, "smallest" if penalties else "largest",
                                "as this network ends in RBF penalties (the 1998 LeNet-5)"
                                if penalties else "as this network gives scores")


def _check_j_fits(j, dtype=torch.float32):
    """eq. (9)'s constant becomes the score -j in the penalties' float type: it must fit."""
    largest = torch.finfo(dtype).max
    if isinstance(j, numbers.Real) and not isinstance(j, bool) and math.isfinite(j) \
            and abs(j) > largest:
        raise ValueError(f"j, the constant of eq. (9), is {j:g}, more than {dtype}'s largest "
                         f"number ({largest:.3g}), so the score -j cannot be stored; the paper "
                         "uses a small constant: leave j out (original.J) or give e.g. j=1.0")


def check_paper_loss(penalties, labels, j=None):
    """``original.paper_loss``'s arguments: penalties N×10 (floats) and labels 0-9 (the
    extra score of eq. (9) belongs to no class: label 10 would name it)."""
    check_scores("paper_loss", penalties, "penalties")
    if not penalties.is_floating_point():
        raise TypeError(f"paper_loss takes the RBF penalties as floats, got {penalties.dtype}")
    check_dense("paper_loss", penalties=penalties, labels=labels)
    if isinstance(labels, torch.Tensor) and labels.device != penalties.device:
        raise ValueError(f"paper_loss: the penalties are on {penalties.device} but the labels on "
                         f"{labels.device}; move both to one device, e.g. "
                         "labels.to(penalties.device)")
    _check_labels("paper_loss", labels, len(penalties), "rows of penalties")
    if len(penalties) == 0:
        raise ValueError("paper_loss: the batch is empty (0 rows of penalties), and the mean loss "
                         "of no images is NaN; give at least one image")
    _check_j_fits(j, penalties.dtype)
    if _on_cpu(penalties) and bool((penalties.detach() < 0).any()):
        raise ValueError("paper_loss takes the RBF penalties, squared distances of at least 0, "
                         "but these hold negative numbers (scores?); pass the output of "
                         "original_lenet(), whose last layer is the RBF")


def check_paper_schedule(optimizer, num_epochs, steps_per_epoch, factors=None):
    """``original.paper_schedule``'s arguments, as ``train`` passes them."""
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"paper_schedule schedules a torch.optim optimizer, e.g. "
                        f"torch.optim.SGD(net.parameters(), lr=0.005), got {_a_kind(optimizer)}")
    check_whole("num_epochs", num_epochs)
    if isinstance(steps_per_epoch, bool) or not isinstance(steps_per_epoch, numbers.Integral) \
            or steps_per_epoch < 1:
        raise ValueError(f"paper_schedule: steps_per_epoch must be a whole number of at least 1, "
                         f"the batches in an epoch (train passes it: the images divided by the "
                         f"batch size, rounded up), got {_got(steps_per_epoch)}")
    if factors is None:
        return
    if type(factors).__module__ == "numpy" and getattr(factors, "ndim", None) == 1:
        factors = factors.tolist()  # a 1-D numpy array of factors: indexed as a list is
    if isinstance(factors, (str, bytes)) or not isinstance(factors, (list, tuple)) \
            or not factors:
        raise ValueError(f"paper_schedule: factors must be a non-empty list of the first rate's "
                         f"factors, one per epoch (the last is kept after), e.g. "
                         f"original.LR_FACTORS, got {_got(factors)}")
    for factor in factors:
        check_number("each of paper_schedule's factors", factor)


def check_crop_flip(images, generator, padding=2):
    """``recipes.random_crop_flip``'s arguments: a uint8 batch N×H×W, the torch.Generator that
    train passes a batch_transform, and a padding of at least 0 pixels."""
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8:
        got = images.dtype if isinstance(images, torch.Tensor) else f"{_a_kind(images)}"
        raise TypeError(f"random_crop_flip: images must be a uint8 batch N×28×28 of pixels 0-255 "
                        f"(as train gives a batch_transform), got {got}")
    check_dense("random_crop_flip", images=images)
    if images.dim() != 3:
        raise ValueError(f"random_crop_flip takes a batch of grey images N×height×width, got "
                         f"shape {tuple(images.shape)}"
                         + ("; for N×1×28×28 use images.squeeze(1)"
                            if images.dim() == 4 and images.shape[1] == 1
                            else "; for one image use image.unsqueeze(0)"
                            if images.dim() == 2 else ""))
    if type(generator).__module__.startswith("numpy"):  # "(a Generator)" would read as right
        raise TypeError(f"random_crop_flip draws from a torch.Generator (train passes its own to "
                        f"a batch_transform as generator), got numpy's {_kind(generator)}; "
                        "for a seed use torch.Generator().manual_seed(seed)")
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"random_crop_flip draws from a torch.Generator (train passes its own to "
                        f"a batch_transform as generator), got {_got(generator)}; for a seed use "
                        "torch.Generator().manual_seed(seed)")
    if generator.device.type != images.device.type:
        raise ValueError(f"random_crop_flip: the generator is on {generator.device} but the images "
                         f"on {images.device}; use a generator of the images' device, "
                         "torch.Generator(device=images.device)")
    if isinstance(padding, bool) or not isinstance(padding, numbers.Integral) or padding < 0:
        raise (ValueError if isinstance(padding, numbers.Integral) else TypeError)(
            f"random_crop_flip: padding, the largest shift in pixels, must be a whole number of "
            f"at least 0, e.g. 2 (chapter 6), got {_got(padding)}")
    if len(images) == 0:
        raise ValueError("random_crop_flip: images is an empty batch (0 images); train gives a "
                         "batch_transform at least one image")
    if padding >= min(images.shape[1:], default=0):
        raise ValueError(f"random_crop_flip: padding={padding} shifts the images by up to their "
                         f"whole size ({images.shape[1]}×{images.shape[2]}), leaving them blank; "
                         "use a few pixels, e.g. 2 (chapter 6)")
