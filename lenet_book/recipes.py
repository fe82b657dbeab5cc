"""The book's training recipes, in one place, as plain dictionaries of options (shared by the
whole book: change a copy, ``recipe = dict(recipes.TEXT)``).

``TEXT`` is the text's recipe (d2l's ``train_ch6``, chapter 3). Chapter 6 changes it one step at
a time (``MODERN_STEPS``); chapter 5 trains the 1998 network (``ORIGINAL``). ``build`` turns a
recipe into a network and the arguments of ``lenet_book.train.train``, so that a chapter, the
seed study (``benchmarks/accuracy_seeds.py``) and the tests train exactly the same thing.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import math
import numbers

import numpy as np
import torch
from scipy import stats
from torch import nn

from lenet_book import models, original
from lenet_book import train as _train  # restore_published binds VALIDATION_SIZE again
from lenet_book._grammar import _a_kind
from lenet_book.checks import (
    SEED_MAX,
    _brief,
    _check_j_fits,
    _is_flag,
    at_the_door,
    check_crop_flip,
    check_number,
    check_whole,
)
from lenet_book.results import _read_once

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

# The recipes as published, with how to copy each. They stay plain (checkpoints, torch.load and
# YAML configs store them as any dict), so ``recipe = recipes.TEXT`` aliases TEXT and a change
# to ``recipe`` changes it: build and modern_recipe refuse a recipe changed in place.
_PUBLISHED = [("recipes.TEXT", TEXT, copy.deepcopy(TEXT),
               "recipe = dict(recipes.TEXT), or {**recipes.TEXT, 'lr': 0.1}"),
              ("recipes.ORIGINAL", ORIGINAL, copy.deepcopy(ORIGINAL),
               "recipe = dict(recipes.ORIGINAL), or {**recipes.ORIGINAL, 'lr': 0.01}"),
              ("recipes.MODERN_STEPS", MODERN_STEPS, copy.deepcopy(MODERN_STEPS),
               "steps = copy.deepcopy(recipes.MODERN_STEPS), or for one step's changes, changes "
               "= dict(recipes.MODERN_STEPS[i][1])")]


def _check_recipes_published():
    """Refuse TEXT, ORIGINAL or MODERN_STEPS changed in place, naming the change."""
    for name, shared, published, how_to_copy in _PUBLISHED:
        original._check_unchanged(name, shared, published, "the chapters, recipes.build and "
                                  "modern_recipe, the seed study", how_to_copy)


def restore_published():
    """Put the book's recipes (TEXT, ORIGINAL, MODERN_STEPS) and the paper's factors
    (original.LR_FACTORS) back as published, in place: after ``recipe = recipes.TEXT`` and a
    change to ``recipe``, which changed the book's recipe. Constants rebound (original.J,
    original.LR_FACTORS, train.VALIDATION_SIZE) are bound to their published values again."""
    global TEXT, ORIGINAL, MODERN_STEPS
    for _, shared, published, _ in _PUBLISHED:
        if isinstance(shared, dict):
            shared.clear()
            shared.update(copy.deepcopy(published))
        else:
            shared[:] = copy.deepcopy(published)
    TEXT, ORIGINAL, MODERN_STEPS = (shared for _, shared, _, _ in _PUBLISHED)
    factors, published = original._FACTORS_PUBLISHED
    factors[:] = published
    original.LR_FACTORS = factors
    original.J = original._J_PUBLISHED
    _train.VALIDATION_SIZE = _train._VALIDATION_SIZE_PUBLISHED


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


# Chapter 6 shows random_crop_flip as written above; at_the_door (lenet_book.checks) checks its
# arguments before it runs (a uint8 batch N×H×W, a torch.Generator, a padding of at least 0).
random_crop_flip = at_the_door(random_crop_flip, check_crop_flip)


def modern_recipe(kept_steps):
    """The text's recipe with the changes of the named steps of ``MODERN_STEPS`` applied."""
    _check_recipes_published()  # it reads TEXT and MODERN_STEPS
    kept_steps = _check_steps(kept_steps)
    recipe = dict(TEXT)
    for name, changes in MODERN_STEPS:
        if name in kept_steps:
            recipe.update(changes)
    return recipe


def _check_steps(kept_steps):
    """The names of steps to keep: a list (or another collection, or a generator) of names from
    MODERN_STEPS, each spelled as there (a step that is misspelt would otherwise be left out
    without a word). Returns them as a list (a generator is read once: one used up is named)."""
    names = [name for name, _ in MODERN_STEPS]
    if isinstance(kept_steps, (str, bytes)) or not hasattr(kept_steps, "__iter__"):
        raise TypeError(f"modern_recipe takes a list of step names from MODERN_STEPS as "
                        f"kept_steps, e.g. [{names[0]!r}, {names[1]!r}], got {kept_steps!r} ("
                        f"{_a_kind(kept_steps)})")
    # an exhausted generator would read as no steps: the text's recipe, without a word
    kept_steps = _read_once(kept_steps, "kept_steps",
                            "for the text's recipe, with no step kept, pass []")
    for step in kept_steps:
        if isinstance(step, (tuple, list)) and len(step) == 2 and step[0] in names:
            raise TypeError(f"kept_steps holds MODERN_STEPS' (name, changes) pairs, e.g. "
                            f"{step[0]!r} with its changes; modern_recipe takes the names "
                            "alone: pass [name for name, _ in steps]")
        if step not in names:
            close = difflib.get_close_matches(str(step), names, n=1, cutoff=0.5)
            raise ValueError(f"kept_steps: unknown step {step!r}"
                             + (f"; did you mean {close[0]!r}?" if close else ".")
                             + f" The steps are {', '.join(map(repr, names))}.")
    return kept_steps


# The options a recipe may set, each with its check (lenet_book.checks): (kind, arguments)
OPTIONS = {"num_epochs": ("whole", 1), "batch_size": ("whole", 1), "lr": ("number", 0.0),
           "momentum": ("fraction",), "nesterov": ("flag",), "weight_decay": ("number", 0.0),
           "one_cycle": ("flag",), "augment": ("flag",), "label_smoothing": ("fraction",),
           "batch_norm": ("flag",), "j": ("number", 0.0),
           "activation": ("choice", ACTIVATIONS), "pool": ("choice", POOLS),
           "network": ("choice", {"lenet": None, "original": None})}
ALIASES = {"learning_rate": "lr", "epochs": "num_epochs", "batch": "batch_size",
           "smoothing": "label_smoothing", "wd": "weight_decay"}  # names used elsewhere
# The options that only one of the two networks uses (the others would be ignored or refused)
ONLY_FOR = {"lenet": ("activation", "pool", "batch_norm", "nesterov", "weight_decay", "one_cycle",
                      "augment", "label_smoothing"),
            "original": ("j",)}


def check_recipe(recipe, seed):
    """Refuse a recipe with a value of the wrong kind or out of range, naming the option."""
    if not isinstance(recipe, dict):
        raise TypeError(f"a recipe is a dict of options such as recipes.TEXT, "
                        f"got {_a_kind(recipe)}")
    check_whole("seed", seed, least=0, most=SEED_MAX)
    # a recipe aliased (recipe = recipes.TEXT) and changed: build would train it, and the book's
    # later uses of it would change without a word
    _check_recipes_published()
    for name, value in recipe.items():
        if name not in OPTIONS:  # refused before build seeds torch's generator
            close = ([ALIASES[name]] if name in ALIASES
                     else difflib.get_close_matches(str(name), OPTIONS, n=1))
            seed_hint = (f": the seed is not a recipe option but build's argument; remove it "
                         f"from the recipe and pass it to build, recipes.build(recipe, "
                         f"seed={_seed_shown(value)})."
                         if name in ("seed", "random_seed") else "")
            raise ValueError(f"unknown recipe options [{name!r}]"
                             + (seed_hint or (f"; did you mean {close[0]!r}?" if close else "."))
                             + f" The options are {', '.join(map(repr, OPTIONS))}.")
        kind, *arguments = OPTIONS[name]
        if kind == "whole":
            check_whole(f"recipe option {name!r}", value, *arguments)
        elif kind == "number":
            check_number(f"recipe option {name!r}", value, arguments[0],
                         low_open=name in ("lr", "j"))  # j > 0, as paper_loss takes it
            if name == "j":
                _check_j_fits(value)
        elif kind == "fraction":
            check_number(f"recipe option {name!r}", value, 0.0, 1.0, low_open=False,
                         high_open=True)
        elif kind == "flag" and not _is_flag(value):
            raise TypeError(f"recipe option {name!r} must be True or False, got {value!r}")
        elif kind == "choice" and (not isinstance(value, str) or value not in arguments[0]):
            close = _close_choice(value, arguments[0])
            raise ValueError(f"recipe option {name!r} must be one of "
                             f"{', '.join(map(repr, arguments[0]))}, got {value!r}"
                             + (f"; did you mean {close!r}?" if close else ""))
    network = recipe.get("network", "lenet")
    if network == "original":  # trained on the paper's schedule, original.LR_FACTORS
        original._check_factors_published()
        # original.J rebound: build takes the recipe's j, and recipes.ORIGINAL's is the published
        # one (a recipe without 'j' takes original.J as it is now)
        if "j" in recipe and original._same(recipe["j"], original._J_PUBLISHED):
            original._check_j_published()
    for other, names in ONLY_FOR.items():
        misplaced = [name for name in names if name in recipe and other != network]
        if misplaced:
            raise ValueError(f"recipe option(s) {', '.join(map(repr, misplaced))} apply to the "
                             f"network {other!r} only, and this recipe trains {network!r}: "
                             "remove them (they would be ignored)")
    if recipe.get("nesterov") and not recipe.get("momentum"):
        raise ValueError("recipe option 'nesterov' needs a momentum above 0 (e.g. 'momentum': 0.9)")
    # build's defaults are the text's (lr 0.9): under the paper's loss and schedule the 1998
    # network stays at chance at that rate, without a word
    if network == "original" and "lr" not in recipe:
        raise ValueError("this recipe trains the network 'original' but gives no 'lr', so build "
                         "would use the text's 0.9, at which the 1998 network (the paper's loss "
                         "and schedule) stays at chance level: start from the paper's recipe, "
                         "{**recipes.ORIGINAL, ...} (lr 0.005, momentum 0.9), or give 'lr'")


def _seed_shown(value):
    """A seed given in a recipe, as build's argument would take it (3 if it is not one)."""
    whole = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    return value if whole and 0 <= value <= SEED_MAX else 3


def _close_choice(value, choices):
    """The choice ``value`` likely meant: the same name in another case ('ReLU'), a close
    spelling ('sigmiod'), or the class the choice stands for (nn.ReLU); None if none."""
    if isinstance(value, type) or isinstance(value, nn.Module):
        cls = value if isinstance(value, type) else type(value)
        return next((key for key, chosen in choices.items() if chosen is cls), None)
    if not isinstance(value, str):
        return None
    lower = {key.lower(): key for key in choices}
    close = difflib.get_close_matches(value.lower(), lower, n=1, cutoff=0.8)
    return lower[close[0]] if close else None


def build(recipe, seed=0):
    """A fresh, initialised network and the keyword arguments of ``train`` for this recipe.

    The seed fixes the initial weights (``torch.manual_seed``) and, through ``train``'s
    generator, the order of the batches and any augmentation.
    """
    check_recipe(recipe, seed)
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
    if isinstance(values, (str, bytes)):
        raise TypeError(f"summarize takes a list of accuracies, e.g. [0.91, 0.90], got the text "
                        f"{values!r} as values; write the numbers without quotes")
    if isinstance(values, dict):
        raise TypeError("summarize takes a list of accuracies as values, not a dict (it would "
                        "summarise its keys, e.g. the seeds): pass list(runs.values())")
    if not hasattr(values, "__iter__"):
        raise TypeError(f"summarize: values must be a list of accuracies, e.g. [0.91, 0.90], got "
                        f"{values!r} ({_a_kind(values)})")
    if getattr(values, "ndim", 1) == 0:  # a 0-d array or tensor: one number, not iterable
        raise TypeError(f"summarize takes a list of accuracies, e.g. [0.91, 0.90], got one "
                        f"accuracy {values.item():g} (a 0-d {type(values).__name__}); for one "
                        "accuracy write summarize([value])")
    # tensors and numpy numbers as Python numbers: the summary holds floats (json.dump writes
    # them), whatever the accuracies came as
    values = [_as_number(v) for v in values]
    if not values:
        raise ValueError("summarize needs at least one accuracy in values, got an empty list")
    for value in values:
        check_number("an accuracy in values", value, -math.inf)
        if not 0 <= value <= 100:
            raise ValueError(f"summarize: an accuracy must be a fraction in [0, 1] or a "
                             f"percentage in [0, 100], got {value}")
    # 1.0 (or 0.0) beside percentages of at least chance (10 %): a fraction, 100 % (or 0 %)
    if any(v > 1 for v in values) and (any(0 < v < 1 for v in values)
                                        or (any(v <= 1 for v in values)
                                            and all(v >= 10 for v in values if v > 1))):
        raise ValueError(f"summarize: the accuracies mix fractions and percentages ({values}); "
                         "write them all as fractions (0.91) or all as percentages (91.0)")
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {"mean": float(mean), "std": std, "min": float(min(values)),
            "max": float(max(values)), "n": n}


# Chapter 6's rule, fixed before any result: keep a change when a one-sided paired t-test over
# the seeds both recipes share gives p < ALPHA (the change raises validation accuracy).
ALPHA = 0.05


def paired_test(before, after):
    """Compare two recipes run from the same seeds: ``before`` and ``after`` map each seed to its
    accuracy. Returns the two means, the mean gain (after - before), the seeds improved (wins),
    the number of pairs n, the one-sided paired t-test's p-value and the sign test's (chapter 6).
    """
    for name, runs in (("before", before), ("after", after)):
        if not isinstance(runs, dict):
            raise TypeError(f"{name} must be a dict {{seed: accuracy}}, got {runs!r}")
        if not runs:
            raise ValueError(f"{name} has no runs: it must map at least 2 seeds to accuracies")
        for seed, accuracy in runs.items():
            check_number(f"{name}'s accuracy for seed {seed!r}", accuracy, 0.0, 1.0,
                         low_open=False)
    if before.keys() != after.keys():
        raise ValueError(f"the seeds must match: only before has {sorted(before.keys() - after)}, "
                         f"only after has {sorted(after.keys() - before)}")
    if len(before) < 2:
        raise ValueError(f"a paired test needs at least 2 seeds, got {len(before)}")
    seeds = sorted(before)  # the pairs: the two accuracies of each seed
    a, b = [before[s] for s in seeds], [after[s] for s in seeds]
    gains = [y - x for x, y in zip(a, b)]
    wins, losses = sum(g > 0 for g in gains), sum(g < 0 for g in gains)
    if len(set(gains)) == 1:  # every seed gains the same: no spread to test against
        p = 0.0 if gains[0] > 0 else 1.0
    else:
        p = float(stats.ttest_rel(b, a, alternative="greater").pvalue)
    sign_p = (float(stats.binomtest(wins, wins + losses, alternative="greater").pvalue)
              if wins + losses else 1.0)  # ties (equal accuracies) count for neither side
    return {"mean_before": sum(a) / len(a), "mean_after": sum(b) / len(b),
            "gain": sum(gains) / len(gains), "wins": wins, "n": len(gains), "p": p,
            "sign_p": sign_p}


def keep_change(before, after):
    """Chapter 6's rule: keep the change when the paired t-test's p-value is below ALPHA."""
    return paired_test(before, after)["p"] < ALPHA


def _check_seeds(before, after):
    """The seeds of a paired comparison are whole numbers (train's seed=), never True/False."""
    for name, runs in (("before", before), ("after", after)):
        if not isinstance(runs, dict):  # named briefly: not a long list's or a Series' repr
            series = type(runs).__name__ == "Series" and hasattr(runs, "to_dict")
            raise TypeError(f"{name} must be a dict {{seed: accuracy}}, e.g. {{0: 0.81, 1: 0.83}}"
                            f", got {_brief(runs)}"
                            + ("; for a pandas Series of accuracies indexed by seed pass "
                               f"{name}.to_dict()" if series else
                               "; pair the accuracies with their seeds, e.g. "
                               "dict(zip(seeds, accuracies))"
                               if isinstance(runs, (list, tuple)) else ""))
        for seed in runs:
            if isinstance(seed, bool):
                raise TypeError(f"{name} must map each seed (a whole number, as train's seed=) "
                                f"to its accuracy, got the seed {seed!r}: a bool, not a seed")
            if not isinstance(seed, numbers.Integral):
                raise TypeError(f"{name} must map each seed (a whole number, as train's seed=) "
                                f"to its accuracy, got the seed {seed!r} ("
                                f"{_a_kind(seed)}); write the seeds as numbers, e.g. "
                                "{0: 0.81, 1: 0.83}")
        for seed, accuracy in runs.items():  # a table's percentages: said before the range check
            if (isinstance(accuracy, numbers.Real) and not isinstance(accuracy, bool)
                    and 1 < accuracy <= 100):
                raise ValueError(f"{name}'s accuracy for seed {seed!r} must be a fraction in "
                                 f"[0, 1], got {accuracy!r}, which looks like a percentage: give "
                                 f"fractions ({accuracy!r} -> {accuracy / 100:g}), e.g. "
                                 f"{{seed: a / 100 for seed, a in {name}.items()}}")


def _as_number(accuracy):
    """One accuracy given as a tensor or numpy array of one number, a numpy scalar or another
    real number (fractions.Fraction, which scipy cannot take), as a Python number; anything else
    as it is (paired_test's own check names it)."""
    if isinstance(accuracy, torch.Tensor) and accuracy.numel() == 1:
        return accuracy.item()
    if isinstance(accuracy, (np.ndarray, np.generic)) and accuracy.size == 1:
        return accuracy.item()
    if isinstance(accuracy, numbers.Real) and not isinstance(accuracy, (int, float)):
        try:
            return float(accuracy)
        except (OverflowError, TypeError, ValueError):  # too large: the range check names it
            return accuracy
    return accuracy


@contextlib.contextmanager
def _accuracies_as_numbers(bound):
    """Accuracies given as tensors (evaluate's .item() left out) or numpy numbers are compared
    as the Python numbers they hold, so that the results are numbers too (json.dump writes
    them), as summarize's are; the caller's dicts are left as they are."""
    for name in ("before", "after"):
        runs = bound.arguments[name]
        if isinstance(runs, dict):
            bound.arguments[name] = {seed: _as_number(value) for seed, value in runs.items()}
    yield


# chapter 6 shows paired_test and keep_change as written above
paired_test = at_the_door(paired_test, _check_seeds, around=_accuracies_as_numbers)
keep_change = at_the_door(keep_change, _check_seeds)
# the other functions a reader calls: a misspelt or extra argument is named, with the signature
build = at_the_door(build)
modern_recipe = at_the_door(modern_recipe)
check_recipe = at_the_door(check_recipe)
restore_published = at_the_door(restore_published)
summarize = at_the_door(summarize)
