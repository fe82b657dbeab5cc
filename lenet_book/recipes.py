"""The book's training recipes, in one place, as plain dictionaries of options.

``TEXT`` is the text's recipe (d2l's ``train_ch6``, chapter 3). Chapter 6 changes it one step at
a time (``MODERN_STEPS``); chapter 5 trains the 1998 network (``ORIGINAL``). ``build`` turns a
recipe into a network and the arguments of ``lenet_book.train.train``, so that a chapter, the
seed study (``benchmarks/accuracy_seeds.py``) and the tests train exactly the same thing.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lenet_book import models, original

# The text's recipe: Xavier init, SGD, learning rate 0.9, batches of 256, 10 epochs.
TEXT = {"network": "lenet", "lr": 0.9, "batch_size": 256, "num_epochs": 10}

# Chapter 6: each step's changes, applied on top of the steps kept before it.
MODERN_STEPS = [
    ("ReLU (learning rate 0.1)", {"activation": "relu", "lr": 0.1}),
    ("max pooling", {"pool": "max"}),
    ("batch normalisation", {"batch_norm": True}),
    ("SGD + Nesterov momentum, weight decay, one-cycle",
     {"lr": 0.2, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4, "one_cycle": True}),
    ("augmentation (shift ±2 px, mirror)", {"augment": True}),
    ("label smoothing 0.1", {"label_smoothing": 0.1}),
]

# Chapter 5: the 1998 network, with SGD + momentum on the first 10 passes of the paper's schedule.
ORIGINAL = {"network": "original", "lr": 0.005, "momentum": 0.9, "batch_size": 256,
            "num_epochs": 10, "j": original.J}

ACTIVATIONS = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU}
POOLS = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}


def random_crop_flip(images, generator, padding=2):
    """Random shifts (crops of the zero-padded images) and mirror images of a uint8 batch N×28×28.

    Chapter 6, "Augmentation on the device": one indexing operation builds the whole batch.
    """
    n, h, w = images.shape
    device = images.device
    padded = nn.functional.pad(images, (padding, padding, padding, padding))
    top = torch.randint(0, 2 * padding + 1, (n, 1, 1), generator=generator, device=device)
    left = torch.randint(0, 2 * padding + 1, (n, 1, 1), generator=generator, device=device)
    rows = top + torch.arange(h, device=device).view(1, h, 1)    # n×h×1
    cols = left + torch.arange(w, device=device).view(1, 1, w)   # n×1×w
    crops = padded[torch.arange(n, device=device).view(n, 1, 1), rows, cols]
    mirror = torch.rand(n, 1, 1, generator=generator, device=device) < 0.5
    return torch.where(mirror, crops.flip(-1), crops)


def modern_recipe(kept_steps):
    """The text's recipe with the changes of the named steps of ``MODERN_STEPS`` applied."""
    recipe = dict(TEXT)
    for name, changes in MODERN_STEPS:
        if name in kept_steps:
            recipe.update(changes)
    return recipe


def build(recipe, seed=0):
    """A fresh, initialised network and the keyword arguments of ``train`` for this recipe.

    The seed fixes the initial weights (``torch.manual_seed``) and, through ``train``'s
    generator, the order of the batches and any augmentation.
    """
    r = dict(recipe)
    network = r.pop("network", "lenet")
    torch.manual_seed(seed)
    train_options = {"num_epochs": r.pop("num_epochs", 10), "batch_size": r.pop("batch_size", 256),
                     "lr": r.pop("lr", 0.9), "seed": seed}
    momentum, nesterov = r.pop("momentum", 0.0), r.pop("nesterov", False)
    weight_decay = r.pop("weight_decay", 0.0)
    lr = train_options["lr"]
    if network == "original":
        j = r.pop("j", original.J)
        net = original.init_paper(original.original_lenet())
        train_options.update(
            optimizer=lambda params: torch.optim.SGD(params, lr=lr, momentum=momentum),
            scheduler=original.paper_schedule,
            loss_fn=lambda penalties, labels: original.paper_loss(penalties, labels, j),
            predict=original.predict)
    elif network == "lenet":
        net = models.init_xavier(models.modern_lenet(ACTIVATIONS[r.pop("activation", "sigmoid")],
                                                     POOLS[r.pop("pool", "avg")],
                                                     r.pop("batch_norm", False)))
        if momentum or weight_decay:
            train_options["optimizer"] = lambda params: torch.optim.SGD(
                params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
        if r.pop("one_cycle", False):
            # momentum stays at its set value: cycle_momentum=False
            train_options["scheduler"] = lambda opt, epochs, steps: (
                torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, epochs=epochs,
                                                    steps_per_epoch=steps, cycle_momentum=False))
        if r.pop("augment", False):
            train_options["batch_transform"] = random_crop_flip
        smoothing = r.pop("label_smoothing", 0.0)
        if smoothing:
            train_options["loss_fn"] = nn.CrossEntropyLoss(label_smoothing=smoothing)
    else:
        raise ValueError(f"unknown network {network!r}: use 'lenet' or 'original'")
    if r:
        raise ValueError(f"unknown recipe options {sorted(r)}; known: see lenet_book.recipes.build")
    return net, train_options


def summarize(values):
    """Mean, standard deviation (n - 1), min, max and count of a list of accuracies."""
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {"mean": mean, "std": std, "min": min(values), "max": max(values), "n": n}


def keep_change(before, after):
    """Chapter 6's rule, on validation accuracy over seeds: keep a change when it raises the mean
    by more than the standard error of the difference of the two means; otherwise the simpler
    recipe stays."""
    standard_error = math.sqrt(before["std"] ** 2 / before["n"] + after["std"] ** 2 / after["n"])
    return after["mean"] - before["mean"] > standard_error
