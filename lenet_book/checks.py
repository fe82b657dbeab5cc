"""Checks at the door of the trainer: bad arguments and data are refused before training starts.

``lenet_book.train.train`` calls :func:`check_training` before its first step and
:func:`check_finite_loss` after every epoch; ``recipes.build`` checks a recipe with
``recipes.check_recipe``. Each problem raises a ``TypeError`` (a value of the wrong kind) or a
``ValueError`` (a value out of range) whose message says what is wrong and what is expected, or
:class:`TrainingDiverged` when the loss stops being a finite number. The checks cost one min/max
over the labels of each split, never a pass over the images.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import nn

__all__ = ["NUM_CLASSES", "TrainingDiverged", "check_device", "check_finite_loss", "check_number",
           "check_pixels", "check_split", "check_training", "check_whole"]

NUM_CLASSES = 10  # Fashion-MNIST's classes, numbered 0-9

FROM_LOADER = "as lenet_book.fast.load_fashion_mnist_tensors gives them"


class TrainingDiverged(FloatingPointError):
    """The training loss became NaN or infinite: the weights are no longer numbers."""


def _kind(value):
    return type(value).__name__


SEED_MAX = 2**64 - 1  # the largest seed torch.manual_seed and a Generator take


def check_whole(name, value, least=1, most=None):
    """``value`` must be a whole number (not a bool) of at least ``least`` (and at most
    ``most``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a whole number of at least {least}, got {value!r} "
                        f"(a {_kind(value)})")
    if value < least:
        raise ValueError(f"{name} must be at least {least}, got {value}")
    if most is not None and value > most:
        raise ValueError(f"{name} must be at most {most}, got {value}")


def check_number(name, value, low=0.0, high=math.inf, low_open=True, high_open=False):
    """``value`` must be a finite real number (not a bool or a string) in the given range."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.requires_grad:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r} (a {_kind(value)})"
                        + (f"; write it without quotes, e.g. {name}={value.strip()}"
                           if isinstance(value, str) else ""))
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if not math.isfinite(value) or too_low or too_high:
        interval = (("(" if low_open else "[") + f"{low:g}, {high:g}"
                    + (")" if high_open or math.isinf(high) else "]"))
        raise ValueError(f"{name} must be a finite number in {interval}, got {value}")


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
    kinds, has = _device_kinds()
    fix = (f"; accepted: {kinds}, 'cuda:N' for the N-th GPU, or "
           "lenet_book.device.try_device(), which picks the best one here")
    if isinstance(device, bool) or not isinstance(device, (str, torch.device, int)):
        raise TypeError(f"{name} must be a device name such as 'cpu', got {device!r} "
                        f"(a {_kind(device)}){fix}")
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
        raise TypeError(f"to_float takes a uint8 tensor of pixels 0-255 ({FROM_LOADER}), "
                        f"not a {_kind(images)}")
    if images.dtype != torch.uint8:
        raise TypeError(f"to_float takes uint8 pixels 0-255 and divides them by 255; got "
                        f"{images.dtype} (a batch_transform must return uint8 images too)")


def check_split(name, images, labels, batch_size=1):
    """One split of the data: uint8 images N×H×W (0-255) and int64 labels 0-9, one per image."""
    check_whole("batch_size", batch_size)
    for what, tensor in (("images", images), ("labels", labels)):
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"{name}: the {what} must be a torch tensor ({FROM_LOADER}), "
                            f"not a {_kind(tensor)}")
    if images.dtype != torch.uint8:
        hint = ("; if they are already in [0, 1], give the 0-255 pixels instead: "
                "(images * 255).round().to(torch.uint8)" if images.is_floating_point() else "")
        raise TypeError(f"{name}: the images must be uint8 pixels 0-255 ({FROM_LOADER}, "
                        f"divided by 255 batch by batch), got {images.dtype}{hint}")
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
                            if isinstance(images, torch.Tensor) else f"a {_kind(images)}"))
    if not isinstance(labels, torch.Tensor) or labels.shape != images.shape[:1]:
        raise ValueError(f"labels must be one per image: {len(images)} images, labels of shape "
                         f"{tuple(getattr(labels, 'shape', ()))} (a {_kind(labels)})")
    check_split("FusedStep", images, labels)


def check_pair(name, data):
    """``data`` must be a pair (images, labels); returns it."""
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise TypeError(f"{name} must be a pair (images, labels) ({FROM_LOADER}), "
                        f"got a {_kind(data)}")
    return data


def check_validation_split(train_data, size):
    """``split_validation``'s arguments: a pair of images and labels, one per image, and a whole
    number ``size``. Returns (images, labels)."""
    images, labels = check_pair("train_data", train_data)
    for what, tensor in (("images", images), ("labels", labels)):
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"train_data: the {what} must be a torch tensor ({FROM_LOADER}), "
                            f"not a {_kind(tensor)}")
    if labels.dim() != 1 or len(labels) != len(images):
        raise ValueError(f"train_data: there must be one label per image: {len(images)} images, "
                         f"labels of shape {tuple(labels.shape)}; a split would pair them wrongly")
    check_whole("size", size)
    return images, labels


def check_predict(predict, device=None):
    """``predict`` must turn scores N×10 into N integer class numbers (one per image): one
    call on a tiny tensor of zeros, without gradients."""
    if not callable(predict):
        raise TypeError(f"predict must be a function of the scores, got {predict!r} "
                        f"(a {_kind(predict)})")
    with torch.no_grad():
        out = predict(torch.zeros(3, NUM_CLASSES, device=device))
    if (not isinstance(out, torch.Tensor) or tuple(out.shape) != (3,)
            or out.is_floating_point() or out.is_complex() or out.dtype == torch.bool):
        got = (f"{out.dtype} of shape {tuple(out.shape)}" if isinstance(out, torch.Tensor)
               else f"a {_kind(out)}")
        raise ValueError(f"predict must return one integer class number per image (for scores "
                         f"of shape (3, {NUM_CLASSES}): int64 of shape (3,), as "
                         f"scores.argmax(dim=1) gives), got {got}; it is compared with the "
                         "labels to count the correct predictions")


def check_loss(loss_fn, device=None):
    """``loss_fn`` must give one number (a scalar tensor) for a batch: one call on a tiny tensor
    of zeros, without gradients (backward needs a scalar)."""
    with torch.no_grad():
        loss = loss_fn(torch.zeros(2, NUM_CLASSES, device=device),
                       torch.zeros(2, dtype=torch.int64, device=device))
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1 or not loss.is_floating_point():
        got = (f"{loss.dtype} of shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor)
               else f"a {_kind(loss)}")
        raise ValueError(f"loss_fn must return the batch's loss as one number (a float tensor "
                         f"of shape ()), got {got}; average it over the batch, e.g. "
                         "nn.CrossEntropyLoss() (reduction='mean'), not reduction='none'")


def check_built(optimizer, schedule, scheduler):
    """What ``train``'s optimizer and scheduler functions built must be an optimizer and a
    schedule."""
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a function of the parameters that returns a "
                        f"torch.optim optimizer, e.g. lambda params: torch.optim.SGD(params, "
                        f"lr=0.1); it returned a {_kind(optimizer)}")
    if scheduler is not None and not callable(getattr(schedule, "step", None)):
        raise TypeError(f"scheduler must be a function of (optimizer, epochs, steps per epoch) "
                        f"that returns a learning-rate schedule (with a step() method), e.g. "
                        f"torch.optim.lr_scheduler.OneCycleLR(...); it returned a "
                        f"{_kind(schedule)}")


def check_evaluate(net, images, labels, predict, batch_size):
    """``evaluate``'s arguments: a network that takes the images, a split and a predict rule."""
    check_network(net)
    check_split("evaluate", images, labels, batch_size)
    problem = _input_problem(net, *images.shape[1:])
    if problem:
        raise ValueError(f"evaluate: {problem}")
    check_predict(predict, images.device)


def check_layer_choices(activation, pool, batch_norm):
    """``models.modern_lenet``'s arguments: layer classes (nn.ReLU, not "relu" or nn.ReLU())
    and a flag."""
    for name, value, example in (("activation", activation, "nn.ReLU"),
                                 ("pool", pool, "nn.MaxPool2d")):
        if not (isinstance(value, type) and issubclass(value, nn.Module)):
            hint = (f"the class itself, {type(value).__name__}, without brackets"
                    if isinstance(value, nn.Module) else f"e.g. {example}")
            raise TypeError(f"{name} must be a layer class such as {example} (the network builds "
                            f"one per layer), got {value!r}; pass {hint}")
    if not isinstance(batch_norm, bool):
        raise TypeError(f"batch_norm must be True or False, got {batch_norm!r}")


def check_network(net, name="net"):
    """``net`` must be a torch.nn.Module."""
    if not isinstance(net, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module (e.g. lenet_book.models.lenet()), "
                        f"got a {_kind(net)}")


def _input_problem(net, height, width):
    """What is wrong when ``net`` cannot take a batch 1×1×height×width, else None."""
    from lenet_book.shapes import ShapeError, describe, shape_by_pytorch, walk

    net = getattr(net, "_orig_mod", net)  # a torch.compile'd network: the network inside
    if not isinstance(net, nn.Sequential):  # the checker follows Sequential networks only:
        try:                                  # PyTorch itself, on a meta tensor (no data)
            out = shape_by_pytorch(net, (1, 1, height, width))
        except ShapeError:
            return None  # e.g. a forward that reads values: let the network run as it is
        failure = None
    else:
        shapes, failure = walk(net, (1, 1, height, width))
    if failure is None:
        if isinstance(net, nn.Sequential):
            out = shapes[-1] if shapes else (1, 1, height, width)
        if out != (1, NUM_CLASSES):
            return (f"the network gives an output of shape {out} for one image, but training "
                    f"needs one score per class, (1, {NUM_CLASSES}): end it with a layer of "
                    f"{NUM_CLASSES} outputs, e.g. nn.Linear(..., {NUM_CLASSES})")
        return None
    index, layer, shape, expects = failure
    return (f"the network does not take {height}×{width} images (batches N×1×{height}×{width}): "
            f"its layer {index}, {describe(layer)}, gets shape {shape} but expects {expects}")


FUNCTIONS = ("optimizer", "scheduler", "loss_fn", "batch_transform", "predict", "on_epoch")
COMPILE_MODES = (None, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def _check_network_for_training(net, fused):
    """Trainable float32 weights (``to_float`` gives float32 batches); for ``train_fused``, a
    network that cross-entropy and the largest score fit."""
    params = list(net.parameters())
    if not any(p.requires_grad for p in params):
        raise ValueError("the network has no trainable parameters (every requires_grad is False, "
                         "or it has none): training could not change it; for frozen layers, "
                         "leave requires_grad=True on the layers to train")
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


def _check_fused_options(options):
    """``train_fused``'s compiler options: checked here, not at the first step inside torch."""
    backend, mode = options["backend"], options["mode"]
    if not callable(backend):
        import torch._dynamo  # noqa: F401  (list_backends; imported by torch.compile anyway)

        known = torch._dynamo.list_backends(exclude_tags=())
        if not isinstance(backend, str) or backend not in known:
            raise ValueError(f"backend must be one of torch.compile's backends {known}, got "
                             f"{backend!r}")
    if mode not in COMPILE_MODES:
        raise ValueError(f"mode must be one of {COMPILE_MODES}, got {mode!r}")
    layers = options["bf16_layers"]
    if isinstance(layers, (str, int)) or not isinstance(layers, (tuple, list, set, frozenset)):
        raise TypeError(f"bf16_layers must be a list of layer names, e.g. ['3'] or [3], got "
                        f"{layers!r} (a {_kind(layers)})")
AMP_DTYPES = (None, torch.float16, torch.bfloat16)


def check_training(net, train_data, eval_sets=None, num_epochs=10, batch_size=256, lr=0.9, seed=0,
                   test_data=None, amp_dtype=None, **options):
    """Refuse, before any training, arguments of ``train`` (or ``train_fused``, whose
    ``test_data`` is an eval set) that would fail or mislead later. ``train`` passes all of its
    arguments; the functions among them must be callable or None."""
    check_network(net)
    for name in FUNCTIONS:
        if options.get(name) is not None and not callable(options[name]):
            raise TypeError(f"{name} must be a function (or None), got {options[name]!r} "
                            f"(a {_kind(options[name])}); see the docstring of train")
        if isinstance(options.get(name), type) and name in ("optimizer", "scheduler"):
            raise TypeError(f"{name} must be a function that builds one, not the class "
                            f"{options[name].__name__} (it would get torch's default settings, "
                            f"not lr): e.g. lambda params: torch.optim.SGD(params, lr=0.1)")
    if amp_dtype not in AMP_DTYPES:
        raise TypeError(f"amp_dtype must be None, torch.float16 or torch.bfloat16, "
                        f"got {amp_dtype!r}")
    if test_data is not None:
        eval_sets = {"test": test_data}
    check_whole("num_epochs", num_epochs)
    check_whole("batch_size", batch_size)
    check_number("lr", lr)
    check_whole("seed", seed, least=0, most=SEED_MAX)
    check_pair("train_data", train_data)
    fused = "bf16_layers" in options
    if fused:
        _check_fused_options(options)
    _check_network_for_training(net, fused)
    if eval_sets is not None and not isinstance(eval_sets, dict):
        raise TypeError(f"eval_sets must be a dict {{name: (images, labels)}}, "
                        f"got a {_kind(eval_sets)}")
    splits = {"train_data": train_data}
    for name, split in (eval_sets or {}).items():
        if not (isinstance(split, (tuple, list)) and len(split) == 2):
            raise TypeError(f"eval_sets[{name!r}] must be a pair (images, labels), "
                            f"got a {_kind(split)}")
        splits[f"eval_sets[{name!r}]"] = split
    for name, (images, labels) in splits.items():
        check_split(name, images, labels)
        if images.device != train_data[0].device:
            raise ValueError(f"{name} is on {images.device} but train_data on "
                             f"{train_data[0].device}; move every split to one device")
    for name, (images, _) in splits.items():
        problem = _input_problem(net, *images.shape[1:])
        if problem:
            raise ValueError(problem if name == "train_data" else f"{name}: {problem}")
    device = train_data[0].device
    check_predict(options.get("predict") or (lambda scores: scores.argmax(dim=1)), device)
    if options.get("loss_fn") is not None:
        check_loss(options["loss_fn"], device)
    n = len(train_data[1])
    if n % batch_size == 1 and any(isinstance(m, nn.modules.batchnorm._BatchNorm)
                                   for m in net.modules()):
        raise ValueError(f"with {n} images in batches of {batch_size}, the last batch of every "
                         "epoch holds one image, and batch normalisation cannot normalise a "
                         "batch of one; choose a batch size that does not leave one image over, "
                         f"e.g. {batch_size + 1}")


def _first_bad_step(step_losses):
    """The index of the first non-finite step loss, or None when it cannot be told."""
    try:
        bad = (~torch.isfinite(torch.stack(step_losses))).nonzero()
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
    if math.isfinite(record["loss"]):
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
    raise TrainingDiverged(
        f"Training diverged: the loss became {record['loss']} in {where}, with learning rate "
        f"{', '.join(f'{r:g}' for r in rates)}; the network's weights are no longer numbers.\n"
        "How to fix it: build the network again (its weights are lost) and train with a smaller "
        "learning rate (e.g. 10 times smaller); check that the images and labels are the data "
        "set's, and that a custom loss gives finite values.")
