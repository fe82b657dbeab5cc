"""LeNet-5 as published by LeCun, Bottou, Bengio and Haffner (1998), explained in chapter 5.

The parts in the order the chapter explains them: the padded, shifted input; the scaled tanh;
trainable subsampling; C3's partial connections (Table I of the paper); the RBF output with
fixed ±1 codes; the paper's initialisation; its loss, eq. (9), and prediction rule; and the
learning-rate schedule of its first 10 passes.
"""

from __future__ import annotations

import contextlib
import functools
import math
import numbers
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from lenet_book.checks import (
    _a_kind,
    _brief,
    _on_cpu,
    at_the_door,
    check_codes,
    check_layers_built,
    check_network,
    check_number,
    check_paper_loss,
    check_paper_schedule,
    check_scores,
    check_whole,
    in_training_step,
)
from lenet_book.models import _check_not_inference, _computed_by


class PaperInput(nn.Module):
    """28×28 images in [0, 1] → 32×32, background −0.1, full intensity 1.175."""

    def forward(self, X):
        return -0.1 + 1.275 * F.pad(X, (2, 2, 2, 2), value=0.0)


class ScaledTanh(nn.Module):
    """The paper's squashing function f(a) = 1.7159 tanh(2a/3)."""

    def forward(self, a):
        return 1.7159 * torch.tanh(2 / 3 * a)


class Subsampling(nn.Module):
    """Sum of each 2×2 window × a trainable coefficient + a trainable bias, per feature map."""

    def __init__(self, channels):
        super().__init__()
        self.coefficient = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, X):
        window_sums = 4 * F.avg_pool2d(X, kernel_size=2, stride=2)
        return window_sums * self.coefficient.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


# Table I of the paper: the S2 maps (0-5) read by each C3 map (0-15)
C3_INPUTS = [[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5], [0, 4, 5], [0, 1, 5],
             [0, 1, 2, 3], [1, 2, 3, 4], [2, 3, 4, 5], [0, 3, 4, 5], [0, 1, 4, 5], [0, 1, 2, 5],
             [0, 1, 3, 4], [1, 2, 4, 5], [0, 2, 3, 5],
             [0, 1, 2, 3, 4, 5]]


class PartialConv2d(nn.Module):
    """A convolution in which output map o reads only the input maps inputs[o]."""

    def __init__(self, inputs, in_channels, kernel_size=5):
        super().__init__()
        pairs = [(o, i) for o, maps in enumerate(inputs) for i in maps]
        self.register_buffer("out_index", torch.tensor([o for o, _ in pairs]))
        self.register_buffer("in_index", torch.tensor([i for _, i in pairs]))
        self.in_channels, self.out_channels, self.kernel_size = (
            in_channels, len(inputs), kernel_size)
        # one kernel per pair
        self.weight = nn.Parameter(torch.empty(len(pairs), kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(len(inputs)))
        nn.init.uniform_(self.weight, -0.1, 0.1)

    def full_weight(self):
        k = self.kernel_size
        zeros = self.weight.new_zeros(self.out_channels, self.in_channels, k, k)
        return zeros.index_put((self.out_index, self.in_index), self.weight)

    def forward(self, X):
        return F.conv2d(X, self.full_weight(), self.bias)


def paley_hadamard(q=83):
    """Hadamard matrix of order q + 1 (Paley's first construction; q prime, q % 4 == 3)."""
    squares = {x * x % q for x in range(1, q)}

    def chi(a):  # the Legendre symbol
        return 0 if a % q == 0 else (1 if a % q in squares else -1)

    S = torch.zeros(q + 1, q + 1)
    S[0, 1:], S[1:, 0] = 1, -1
    S[1:, 1:] = torch.tensor([[chi(j - i) for j in range(q)] for i in range(q)],
                             dtype=torch.float32)
    return torch.eye(q + 1) + S


def hadamard_codes():
    """Ten ±1 codes of length 84: rows 1-10 of the 84×84 Hadamard matrix, 42 positions apart."""
    return paley_hadamard()[1:11]


class RBF(nn.Module):
    """Euclidean RBF units with fixed codes: penalty y_i = sum_j (x_j - codes[i, j])^2."""

    def __init__(self, codes):
        super().__init__()
        self.register_buffer("codes", codes.clone())

    def forward(self, X):
        return ((X.unsqueeze(1) - self.codes) ** 2).sum(dim=2)


def original_lenet(codes=None):
    """LeNet-5 as published in 1998: 60,000 trainable parameters."""
    codes = hadamard_codes() if codes is None else codes
    check_codes(codes)  # a float tensor 10×84 (lenet_book.checks)
    return nn.Sequential(OrderedDict(
        input=PaperInput(),
        C1=nn.Sequential(nn.Conv2d(1, 6, kernel_size=5), ScaledTanh()),
        S2=nn.Sequential(Subsampling(6), ScaledTanh()),
        C3=nn.Sequential(PartialConv2d(C3_INPUTS, in_channels=6), ScaledTanh()),
        S4=nn.Sequential(Subsampling(16), ScaledTanh()),
        C5=nn.Sequential(nn.Conv2d(16, 120, kernel_size=5), ScaledTanh(), nn.Flatten()),
        F6=nn.Sequential(nn.Linear(120, 84), ScaledTanh()),
        output=RBF(codes)))


def init_paper(net):
    """Weights and biases uniform in [-2.4/F, 2.4/F], F the fan-in of the unit
    (paper, Appendix A)."""
    check_network(net)  # a torch.nn.Module (lenet_book.checks)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, PartialConv2d):           # the fan-in differs from map to map
                fan_in = torch.bincount(m.out_index, minlength=m.out_channels) * m.kernel_size ** 2
                m.weight.uniform_(-1, 1).mul_((2.4 / fan_in[m.out_index]).view(-1, 1, 1))
                m.bias.uniform_(-1, 1).mul_(2.4 / fan_in)
                continue
            if isinstance(m, nn.Conv2d):
                fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
            elif isinstance(m, nn.Linear):
                fan_in = m.in_features
            elif isinstance(m, Subsampling):
                fan_in = 4
            else:
                continue
            for p in m.parameters(recurse=False):
                p.uniform_(-2.4 / fan_in, 2.4 / fan_in)
    return net


J = 10.0  # the constant of eq. (9)
_J_PUBLISHED = J  # paper_loss's default and recipes.ORIGINAL['j'], bound at import


def paper_loss(penalties, labels, j=J):
    """Eq. (9) of the paper, averaged over the batch: softmax cross-entropy over the
    scores -y_i plus one extra score -j that belongs to no class."""
    check_number("j, the constant of eq. (9),", j)  # a positive number (lenet_book.checks)
    rubbish = torch.full_like(penalties[:, :1], -j)
    return F.cross_entropy(torch.cat([-penalties, rubbish], dim=1), labels)


def _check_j_published():
    j = _brief(J) if isinstance(J, numbers.Real) else "5.0"
    _check_not_rebound("original.J", J, _J_PUBLISHED,
                       "paper_loss's default j and recipes.ORIGINAL['j']",
                       f"paper_loss(penalties, labels, j={j}), or in a recipe "
                       f"{{**recipes.ORIGINAL, 'j': {j}}}")


def _check_paper_loss(penalties, labels, j=None):
    if j is None:  # the default: J as published (None given is refused by paper_loss itself)
        _check_j_published()
        check_paper_loss(penalties, labels)
    else:
        check_paper_loss(penalties, labels, j)


# Chapter 5 shows paper_loss and paper_schedule as written here; at_the_door (lenet_book.checks)
# checks their arguments before they run (labels 0-9, penalties N×10, steps_per_epoch >= 1).
paper_loss = at_the_door(paper_loss, _check_paper_loss)


def predict(penalties):
    """The class whose code is closest: the smallest penalty."""
    check_scores("predict", penalties)  # one row per image (lenet_book.checks)
    return penalties.argmin(dim=1)


def _check_predict(penalties):
    check_scores("predict", penalties, "penalties")
    # argmin has no order for these (torch's words: "argmin(): does not support bool input")
    if penalties.dtype == torch.bool or penalties.is_complex():
        raise ValueError(f"predict: penalties must be real numbers, the RBF penalties (squared "
                         f"distances to the codes) that original_lenet() outputs, got "
                         f"{penalties.dtype} of shape {tuple(penalties.shape)}; pass the "
                         "network's output itself, predict(net(X))"
                         + (" (a comparison such as penalties > 0 gives bools)"
                            if penalties.dtype == torch.bool else ""))
    if _on_cpu(penalties) and penalties.is_floating_point() \
            and bool((penalties.detach() < 0).any()):
        raise ValueError("predict takes the RBF penalties, squared distances of at least 0, and "
                         "picks the smallest; these hold negative numbers (a network's scores?), "
                         "for which the smallest is the worst class: pass the output of "
                         "original_lenet(), or use scores.argmax(dim=1) for scores")
    _check_not_probabilities(penalties)
    # NaN penalties: argmin would pick class 0 without a word. Those of a training step are left
    # to train, which stops a diverging training naming its epoch and step; on a GPU reading them
    # would wait for the device.
    if _on_cpu(penalties) and penalties.is_floating_point() and not in_training_step() \
            and bool(penalties.isnan().any()):
        rows = int(penalties.isnan().any(dim=1).sum())
        raise ValueError(f"predict: the penalties hold NaN ({rows} of {len(penalties)} rows), "
                         "which have no smallest (argmin would pick class 0 for them): the "
                         "network's weights hold NaN or infinite numbers (a training that "
                         "diverged), or its images do; build it again and train with a smaller "
                         "learning rate, and check that the images are numbers")
    # a row of +inf only (penalties that overflowed) has no smallest either
    if _on_cpu(penalties) and penalties.is_floating_point() and not in_training_step() \
            and bool((penalties == math.inf).all(dim=1).any()):
        rows = int((penalties == math.inf).all(dim=1).sum())
        raise ValueError(f"predict: the penalties are all infinite in {rows} of "
                         f"{len(penalties)} rows, which have no smallest (argmin would pick "
                         "class 0 for them): they overflowed, as a training that diverged "
                         "leaves them (weights too large or no longer numbers), or the images "
                         "are not numbers; build the network again and train with a smaller "
                         "learning rate, and check that the images are numbers")


def _check_not_probabilities(penalties):
    """Probabilities (softmax(-penalties), or a network ending in nn.Softmin) are at least 0 like
    penalties, but their smallest is the least likely class. RBF penalties are squared distances
    to the codes (the paper's differ in 42 places: two penalties of a row add up to at least 84),
    so a batch of rows of numbers in [0, 1] summing to 1 is no batch of penalties as the network
    gives them. Penalties divided by their row's sum look the same but keep their order (their
    smallest still wins): the message gives no advice that is wrong for either. Read on the CPU
    only (on a GPU it would wait for the device); the largest value first, cheap, as real
    penalties go above 1."""
    if not _on_cpu(penalties) or not penalties.is_floating_point() or penalties.numel() == 0:
        return
    values = penalties.detach()
    if not bool(values.amax() <= 1):  # negative values were refused before (scores)
        return
    sums = values.float().sum(dim=1)
    # 0.01: a softmax in float16 or bfloat16 sums to 1 only within its rounding
    if not bool(((sums - 1).abs() <= 0.01).all()):
        return
    rows = "this row of numbers in [0, 1] sums" if len(values) == 1 \
        else "these rows of numbers in [0, 1] each sum"
    raise ValueError(f"predict takes the RBF penalties (squared distances to the codes, which "
                     f"original_lenet() outputs) and picks the smallest; {rows} to 1: "
                     "probabilities (softmax(-penalties), or a network ending in nn.Softmin or a "
                     "softmax?) do, and so do penalties divided by their row's sum, which predict "
                     "cannot tell apart (the RBF layer's own penalties never sum to 1: two of a "
                     "row add up to at least 84). If these are probabilities, their smallest is "
                     "the least likely class. For probabilities use probs.argmax(dim=1); or give "
                     "predict the penalties themselves, predict(net(X)), as a network that ends "
                     "in the RBF layer outputs them, with no softmax or division after it "
                     "(dividing penalties by their row's sum keeps their order: the smallest "
                     "wins either way)")


predict = at_the_door(predict, _check_predict)  # chapter 5 shows predict as written


def _differences(now, published, name):
    """How ``now`` differs from ``published`` (a dict, or a list of values or of (name, dict)
    steps), in at most three short phrases, for a message."""
    if isinstance(now, dict) and isinstance(published, dict):
        found = [f"{name}[{key!r}] is {_brief(now[key])} (published {published[key]!r})"
                 if key in published else f"{name}[{key!r}] = {_brief(now[key])} was added"
                 for key in now if key not in published or not _same(now[key], published[key])]
        found += [f"{name}[{key!r}] was removed (published {published[key]!r})"
                  for key in published if key not in now]
    elif isinstance(now, list) and len(now) != len(published) \
            and _same(now[:len(published)], published[:len(now)]):  # items added or removed
        found = ([f"{name}[{i}] = {_brief(item)} was added"
                  for i, item in enumerate(now[len(published):], len(published))]
                 or [f"{name}[{i}] was removed (published {_brief(was, 80)})"
                     for i, was in enumerate(published[len(now):], len(now))])
    elif isinstance(now, list) and len(now) == len(published):
        found = []
        for i, (item, was) in enumerate(zip(now, published)):
            if _same(item, was):
                continue
            if isinstance(item, tuple) and len(item) == 2 and item[0] == was[0]:
                found += _differences(item[1], was[1], f"{name}[{i}][1]")  # a step's changes
            else:
                found.append(f"{name}[{i}] is {_brief(item)} (published {_brief(was, 80)})")
    else:
        found = [f"{name} holds {_brief(now, 80)} (published {_brief(published, 80)})"]
    return found[:3] + (["..."] if len(found) > 3 else [])


def _same(now, published):
    try:
        return bool(now == published)
    except Exception:  # e.g. a numpy array put in: == is no yes or no
        return False


def _check_unchanged(name, shared, published, readers, how_to_copy):
    """Refuse a value the whole book reads (``recipes.TEXT``, ``original.LR_FACTORS``, ...) that
    was changed in place since import: ``recipe = recipes.TEXT`` names the same dict, so a change
    to ``recipe`` changed the book's recipe (and every later use of it) without a word."""
    if _same(shared, published):
        return
    alias = how_to_copy.split(" = ")[0]  # recipe, steps, factors
    raise ValueError(f"{name} was changed in place since lenet_book was imported: "
                     f"{'; '.join(_differences(shared, published, name))}. The whole book reads "
                     f"it ({readers}), so the change would carry into every later use in this "
                     f"session. `{alias} = {name}` does not copy it: {alias} names the same "
                     f"{type(published).__name__}, and a change to {alias} changes {name}. Put it "
                     f"back with `from lenet_book import recipes; recipes.restore_published()` "
                     f"(or restart the kernel), and change a copy: {how_to_copy}")


def _check_not_rebound(name, now, published, defaults, how_to_pass):
    """Refuse a constant of the book rebound (``original.J = 5.0``): ``defaults`` took the
    published value when lenet_book was imported, so the new one would be ignored without a
    word (a list of the same numbers, e.g. a copy, changes nothing and passes)."""
    if _same(now, published) or isinstance(now, tuple) and _same(list(now), published):
        return
    raise ValueError(f"{name} was rebound since lenet_book was imported: it is {_brief(now, 80)} "
                     f"(published {_brief(published, 80)}), but {defaults} took the published "
                     f"value when lenet_book was imported, so the new one would be ignored "
                     f"without a word. Put {name} back with `from lenet_book import recipes; "
                     f"recipes.restore_published()` (or restart the kernel), and pass your own "
                     f"instead: {how_to_pass}")


# The paper's learning-rate schedule for its first 10 passes, as factors of the first rate
LR_FACTORS = [1, 1, 0.4, 0.4, 0.4, 0.2, 0.2, 0.2, 0.1, 0.1]
# as published (a plain list, so that checkpoints and configs store it as one): paper_schedule
# refuses its default factors changed in place (``factors = LR_FACTORS`` aliases them)
_FACTORS_PUBLISHED = (LR_FACTORS, list(LR_FACTORS))


def _check_factors_published():
    shared, published = _FACTORS_PUBLISHED
    _check_unchanged("original.LR_FACTORS", shared, published,
                     "chapter 5, paper_schedule as its default factors, recipes.build's 1998 "
                     "recipes",
                     "factors = list(original.LR_FACTORS), then paper_schedule(optimizer, "
                     "num_epochs, steps_per_epoch, factors=factors)")
    # original.LR_FACTORS = [...]: paper_schedule's default is still the published list
    factors = _brief(LR_FACTORS, 60) if isinstance(LR_FACTORS, (list, tuple)) else "[...]"
    factors = factors if factors.startswith(("[", "(")) else "[...]"
    _check_not_rebound("original.LR_FACTORS", LR_FACTORS, published,
                       "paper_schedule's default factors, which recipes.build's 1998 recipes "
                       "use,",
                       f"paper_schedule(optimizer, num_epochs, steps_per_epoch, "
                       f"factors={factors}), or as train's scheduler (options['scheduler'] "
                       f"after recipes.build), "
                       f"functools.partial(original.paper_schedule, factors={factors})")


def paper_schedule(optimizer, num_epochs, steps_per_epoch, factors=LR_FACTORS):
    """``train``'s scheduler option: each epoch's rate is the paper's factor of the first rate."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: factors[min(step // steps_per_epoch, len(factors) - 1)])


def _factors_listed(factors):
    """A 1-D tensor or numpy array of factors as a list of numbers (each epoch's factor is read
    by indexing; a tensor's would make the learning rate a tensor)."""
    if (isinstance(factors, torch.Tensor) or type(factors).__module__ == "numpy") \
            and getattr(factors, "ndim", None) == 1:
        return factors.tolist()
    return factors


def _check_paper_schedule(optimizer, num_epochs, steps_per_epoch, factors=LR_FACTORS):
    if factors is _FACTORS_PUBLISHED[0]:
        _check_factors_published()
    if factors is None:
        raise ValueError("paper_schedule: factors must be a non-empty list of the first rate's "
                         "factors, one per epoch (the last is kept after), got None; leave "
                         "factors out for the paper's, original.LR_FACTORS")
    check_paper_schedule(optimizer, num_epochs, steps_per_epoch, _factors_listed(factors))
    _check_factors_not_rates(optimizer, _factors_listed(factors))


_TINY_FACTOR = 0.01  # factors all at most this: the paper's rates (0.0005, ...) given as factors


def _check_factors_not_rates(optimizer, factors):
    """The factors multiply the optimizer's first rate: the paper's learning rates themselves
    (0.0005, 0.0002, ...) given as factors would train at lr × 0.0005, e.g. 2.5e-06 with the
    1998 recipe's lr=0.005, and the network would stay at chance without a word. A warm-up that
    starts low still reaches about 1; an optimizer built with lr=1 makes rates right as
    factors (LambdaLR's own idiom), so it is left alone."""
    group = optimizer.param_groups[0] if optimizer.param_groups else {}
    lr = group.get("initial_lr", group.get("lr"))  # initial_lr: the rate a scheduler started at
    try:
        lr = float(lr)
    except (TypeError, ValueError, RuntimeError):  # e.g. a tensor of many rates: not told
        return
    largest = max(factors)
    if largest > _TINY_FACTOR or not 0 < lr < 1:
        return
    first = factors[0]
    raise ValueError(f"paper_schedule: factors multiply the optimizer's first rate (lr={lr:g}), "
                     f"but these are all at most {largest:g}, so the first epoch would train at "
                     f"{lr:g} × {first:g} = {lr * first:.3g}: they look like learning rates "
                     f"themselves (the paper's are 0.0005, 0.0002, ...). Give the rates as "
                     f"factors of the first, factors=[r / rates[0] for r in rates], with the "
                     f"optimizer's lr=rates[0] (here lr={first:g}); or leave factors out for the "
                     f"paper's, original.LR_FACTORS (1, 1, 0.4, ...)")


@contextlib.contextmanager
def _schedule_factors_listed(bound):
    """Factors given as a tensor or a numpy array schedule as the same list would."""
    bound.arguments["factors"] = _factors_listed(bound.arguments["factors"])
    yield


paper_schedule = at_the_door(paper_schedule, _check_paper_schedule,
                             around=_schedule_factors_listed)


# Chapter 5 shows the classes and functions above as written; their arguments are checked here
# (lenet_book.checks' at_the_door), before they run: the source shown and the results are theirs.

def _check_subsampling(self, channels):
    check_whole("Subsampling: channels, the number of feature maps,", channels)


def _check_partial_conv(self, inputs, in_channels, kernel_size=5):
    check_whole("PartialConv2d: in_channels", in_channels)
    check_whole("PartialConv2d: kernel_size", kernel_size)
    if isinstance(inputs, (str, bytes)) or not isinstance(inputs, (list, tuple)) or not inputs:
        raise TypeError(f"PartialConv2d: inputs must list, for each output map, the input maps "
                        f"it reads, e.g. C3_INPUTS, got {inputs!r}")
    for number, maps in enumerate(inputs):
        if isinstance(maps, (str, bytes)) or not isinstance(maps, (list, tuple)) or not maps:
            raise TypeError(f"PartialConv2d: each entry of inputs must be a non-empty list of "
                            f"input maps, e.g. [0, 1, 2], got {maps!r}")
        for i in maps:
            # numbers.Integral: numpy integers too, e.g. a table read from a numpy array
            if isinstance(i, bool) or not isinstance(i, numbers.Integral):
                raise TypeError(f"PartialConv2d: input maps must be whole numbers (int), the "
                                f"maps' numbers from 0, got {i!r} ({_a_kind(i)}) in "
                                f"{list(maps)}; write each map's number as an int, e.g. "
                                "[0, 1, 2]")
            if len(set(maps)) < len(maps) and maps.count(i) > 1:
                raise ValueError(f"PartialConv2d: output map {number} lists input map {i} twice "
                                 f"({list(maps)}), so it would read that map twice with two "
                                 "kernels; list each input map once")
            if not 0 <= i < in_channels:
                raise ValueError(f"PartialConv2d: input map {i!r} in inputs does not exist: with "
                                 f"in_channels={in_channels} the maps are 0-{in_channels - 1}; "
                                 "give in_channels as the number of input maps (6 for C3)")
    largest = max(i for maps in inputs for i in maps)
    if in_channels > largest + 1:
        raise ValueError(f"PartialConv2d: in_channels={in_channels}, but no output map reads the "
                         f"input maps {largest + 1}-{in_channels - 1}; give in_channels as the "
                         f"number of input maps, {largest + 1} here (6 for C3)")


def _check_paper_input(self, X):
    """Images in [0, 1] as floats: 0-255 pixels would be scaled 255 times too far. Their values
    are read as train_step's are (on the CPU only, so nothing waits for a GPU; not in a training
    step, which checked them, nor while torch.compile traces or torch.func's vmap or grad runs,
    where a value cannot be read)."""
    if not isinstance(X, torch.Tensor) or not X.is_floating_point():
        got = f"{X.dtype} images" if isinstance(X, torch.Tensor) else _a_kind(X)
        raise TypeError(f"PaperInput takes float images in [0, 1]: to_float(images) first "
                        f"(lenet_book.train.to_float), got {got}")
    if torch.compiler.is_compiling() or _in_functorch() or not _on_cpu(X) or X.numel() == 0 \
            or in_training_step():
        return
    low, high = (value.item() for value in torch.aminmax(X.detach()))
    # Pixels as floats (.float() of uint8) are whole numbers from 0 up. Normalised images are not
    # refused whatever their range: standardised Fashion-MNIST goes below 0 and up to 185 (per
    # pixel), and scaled without centring (X / std) holds fractions.
    if low >= 0 and high > 1 and bool((X.detach() == X.detach().round()).all()):
        raise ValueError(f"PaperInput takes float images in [0, 1]: to_float(images) first "
                         f"(lenet_book.train.to_float); these are whole numbers from {low:g} to "
                         f"{high:g}: they look like pixels "
                         + ("0-255 " if high <= 255 else "")
                         + "as floats (.float() without the division by 255): give the uint8 "
                         "pixels to to_float, or divide by 255")


def _in_functorch():
    """Whether torch.func's vmap, grad or another transform is running: it cannot read a
    tensor's values (.item() fails under vmap)."""
    active = getattr(torch._C, "_are_functorch_transforms_active", None)
    return bool(active and active())


def _maps_problem(X, channels):
    """Why X is not a batch of ``channels`` feature maps, N×channels×H×W (or one image's,
    channels×H×W); None if it is. Shapes only: nothing waits for a GPU."""
    if not isinstance(X, torch.Tensor):
        return _a_kind(X)
    if X.dim() not in (3, 4):
        return f"a tensor of shape {tuple(X.shape)} (a batch is 4-D, N×{channels}×H×W)"
    if X.shape[-3] != channels:
        return f"{X.shape[-3]} maps (shape {tuple(X.shape)})"
    if not X.is_floating_point():
        return f"{X.dtype} maps (the layers compute on floats: to_float(images) first)"
    return None


def _check_subsampling_input(self, X):
    channels = self.coefficient.shape[0]
    # its coefficient and bias are shaped 1×C×1×1: one image's maps would come out as a batch
    if isinstance(X, torch.Tensor) and X.dim() == 3 and X.shape[0] == channels:
        raise ValueError(f"Subsampling({channels}) takes a batch of feature maps, "
                         f"N×{channels}×H×W, got one image's maps, shape {tuple(X.shape)}: its "
                         "coefficient and bias are broadcast over a batch, so the output would "
                         f"gain a batch dimension (1×{channels}×H/2×W/2); give a batch "
                         "N×C×H×W (X.unsqueeze(0))")
    problem = _maps_problem(X, channels)
    if problem is None and min(X.shape[-2:]) < 2:
        problem = (f"maps of {X.shape[-2]}×{X.shape[-1]}, smaller than its 2×2 windows (S2 "
                   "takes C1's 28×28 maps, S4 C3's 10×10)")
    if problem:
        raise (ValueError if isinstance(X, torch.Tensor) else TypeError)(
            f"Subsampling({channels}) subsamples {channels} feature maps, one coefficient and "
            f"bias each (S2 takes C1's 6 maps, S4 C3's 16), got {problem}; give it the output "
            f"of a layer of {channels} maps, or build Subsampling with as many channels as its "
            "input has maps")


def _autocasting(X):
    """Whether autocast converts X and the weights to one type itself (and on the meta device,
    which the shape rules use, PyTorch's own words are read)."""
    try:
        return X.is_meta or torch.is_autocast_enabled(X.device.type)
    except RuntimeError:  # a device autocast does not know
        return True


def _check_partial_conv_input(self, X):
    problem = _maps_problem(X, self.in_channels)
    if problem is None and min(X.shape[-2:]) < self.kernel_size:
        problem = (f"maps of {X.shape[-2]}×{X.shape[-1]}, smaller than its {self.kernel_size}×"
                   f"{self.kernel_size} kernels (C3 takes S2's 14×14 maps)")
    if problem is None and X.dtype != self.weight.dtype and not _autocasting(X):
        raise TypeError(f"PartialConv2d's weights are {self.weight.dtype}, but the maps are "
                        f"{X.dtype}: a convolution takes both of one float type; convert the "
                        f"maps, X.to({self.weight.dtype}), or the layer, "
                        f"layer.to({X.dtype}) (as the whole network: net.to({X.dtype}))")
    if problem:
        raise (ValueError if isinstance(X, torch.Tensor) else TypeError)(
            f"PartialConv2d reads {self.in_channels} input maps (its in_channels; C3 reads S2's "
            f"6 maps), got {problem}; give it the output of a layer of {self.in_channels} maps, "
            "e.g. S2 = Subsampling(6)")


def _check_rbf(self, codes):
    check_codes(codes)
    if codes.requires_grad:
        kind = "an nn.Parameter" if isinstance(codes, nn.Parameter) else "requires_grad=True"
        raise ValueError(
            f"RBF keeps the paper's codes fixed (a buffer, which no optimizer trains), but these "
            f"codes require gradients ({kind}): they would never be learnt. "
            "To keep them fixed, pass codes.detach(); to learn them, use a layer of your own "
            "that holds them as an nn.Parameter, as chapter 5's exercise solution does "
            "(TrainableRBF: self.codes = nn.Parameter(codes.clone()), with "
            "forward = original.RBF.forward)")


def _check_rbf_input(self, X):
    """One row of F6's outputs per image, as many numbers as a code has (84)."""
    width = self.codes.shape[1]
    if not isinstance(X, torch.Tensor) or X.dim() != 2 or X.shape[1] != width:
        got = (f"shape {tuple(X.shape)}" if isinstance(X, torch.Tensor)
               else _a_kind(X))
        raise ValueError(f"RBF takes F6's {width} outputs per image, a tensor N×{width}, got "
                         f"{got}; put it after a layer of {width} outputs, e.g. "
                         f"nn.Linear(120, {width}) as F6")


_PALEY_MAX = 1000  # built in Python, in time and memory quadratic in q


def _check_paley(q=83):
    check_whole("paley_hadamard: q", q, least=3)
    if q > _PALEY_MAX:
        raise ValueError(f"paley_hadamard: q must be at most {_PALEY_MAX:,}, got {q:,}: it builds "
                         f"a (q+1)×(q+1) matrix in Python, in time and memory that grow as q²; "
                         "the paper's codes use q=83 (84×84)")
    if q % 4 != 3 or any(q % d == 0 for d in range(2, int(q ** 0.5) + 1)):
        raise ValueError(f"paley_hadamard: q must be a prime with q % 4 == 3 (e.g. 83, for "
                         f"84×84), got {q}: otherwise the matrix is not a Hadamard matrix")


PAPER_LAYERS = (ScaledTanh, Subsampling, PartialConv2d, RBF)


def _check_init_paper(net):
    check_network(net)
    _check_not_inference("init_paper", net)
    if not any(isinstance(m, PAPER_LAYERS) for m in net.modules()):
        raise TypeError("init_paper initialises the 1998 network (original_lenet()), whose "
                        "scaled tanh units its ranges are made for; this network has none of "
                        "its layers: initialise it with models.init_xavier(net)")
    # a lazy layer's fan-in is unknown before its first forward pass (it would divide by 0)
    check_layers_built(net, "be initialised by init_paper (whose ranges depend on each unit's "
                            "number of inputs)")
    for name, layer in net.named_modules():
        problem = _init_paper_problem(layer)
        if problem:
            raise ValueError(f"init_paper cannot initialise layer {name!r} "
                             f"({_brief(layer)}): {problem}")
    for name, layer in net.named_modules():
        if not isinstance(layer, (nn.Conv2d, nn.Linear, Subsampling, PartialConv2d)):
            continue
        drawn = ("coefficient", "bias") if isinstance(layer, Subsampling) else ("weight", "bias")
        for tensor in drawn:
            by = _computed_by(layer, tensor)
            if by is not None:
                raise ValueError(
                    f"init_paper cannot redraw the {tensor} of layer {name!r} "
                    f"({type(layer).__name__}): {by} computes it from other tensors at every "
                    "forward pass, so the paper's ranges "
                    + ("would be drawn into its magnitude and its direction apart, not into "
                       "the weights" if by == "nn.utils.weight_norm"
                       else "drawn into it would be lost")
                    + f"; initialise the network before adding {by}: net = "
                    "original.init_paper(original.original_lenet()) first, then add it")


def _init_paper_problem(layer):
    """Why init_paper would leave ``layer``'s weights at PyTorch's defaults or draw them from a
    wrong fan-in (it computes the fan-in of nn.Conv2d, nn.Linear, Subsampling and PartialConv2d
    only, from their sizes); None when it draws them right or the layer has none."""
    rule = ("the paper's rule is each weight and bias uniform in [-2.4/F, 2.4/F], F the number "
            "of inputs one unit reads")
    if isinstance(layer, nn.modules.conv._ConvTransposeNd):
        return (f"it draws the ranges of 2-D convolutions (nn.Conv2d) only, and would leave "
                f"this {type(layer).__name__} at PyTorch's default weights; the 1998 network "
                "has no transposed convolution: use nn.Conv2d, or initialise the network "
                f"yourself, adapting init_paper (show(original.init_paper)): {rule}")
    if isinstance(layer, (nn.modules.conv._ConvNd, nn.Bilinear)) \
            and not isinstance(layer, nn.Conv2d):
        return (f"it draws the ranges of nn.Conv2d, nn.Linear, Subsampling and PartialConv2d "
                f"only, and would leave this {type(layer).__name__} at PyTorch's default "
                "weights; use those layers (a 2-D convolution for images), or initialise the "
                f"network yourself, adapting init_paper (show(original.init_paper)): {rule}, "
                f"F = {layer.weight[0].numel()} here (layer.weight[0].numel())")
    if isinstance(layer, nn.Conv2d) and layer.groups > 1:
        k = layer.kernel_size[0] * layer.kernel_size[1]
        reads = layer.in_channels // layer.groups
        return (f"it has groups={layer.groups}, so each output map reads {reads} of the "
                f"{layer.in_channels} input maps and a unit's fan-in is {reads}·{k} = "
                f"{reads * k}, but init_paper takes in_channels·kernel area = "
                f"{layer.in_channels * k}: its bound would be {layer.groups} times too small. "
                "For sparse connections like C3's, use PartialConv2d(inputs, in_channels) with "
                "a table of the maps each output map reads, as C3 does (original.C3_INPUTS); "
                "or initialise the network yourself, adapting init_paper "
                f"(show(original.init_paper)) with F = in_channels/groups·kernel area = "
                f"{reads * k} for this layer")
    fan_in = (layer.in_channels * layer.kernel_size[0] * layer.kernel_size[1]
              if isinstance(layer, nn.Conv2d)
              else layer.in_features if isinstance(layer, nn.Linear) else None)
    if fan_in == 0:
        return ("its units read no inputs (fan-in 0), so the paper's bound 2.4/F has no value; "
                "give it at least one input")
    return None


def _check_scaled_tanh(self, a):
    if not isinstance(a, torch.Tensor):
        raise TypeError(f"ScaledTanh takes a tensor, got {_brief(a)} ({_a_kind(a)}); "
                        "e.g. f(torch.tensor(1.0)) or f(torch.linspace(-3, 3, 100))"
                        + ("; for a numpy array, f(torch.from_numpy(a))"
                           if type(a).__module__ == "numpy" else ""))


def _without_settings(cls, does, call):
    """``cls``'s __init__: the class defines none, so nn.Module's would refuse an argument in
    Python's words alone (ScaledTanh(inplace=True)); it is named, with what the layer is."""
    def __init__(self, *args, **kwargs):
        after = super(cls, self).__init__
        if (args or kwargs) and getattr(after, "__func__", None) is nn.Module.__init__:
            given = ", ".join([_brief(a) for a in args]
                              + [f"{key}={_brief(value)}" for key, value in kwargs.items()])
            tensor = any(isinstance(a, torch.Tensor) for a in (*args, *kwargs.values()))
            raise TypeError(f"{cls.__name__}() takes no arguments, got {cls.__name__}({given}): "
                            f"{does}; build it as original.{cls.__name__}()"
                            + (f", then call it on the tensor: {call}" if tensor else "")
                            + ("; it has no inplace option (it returns a new tensor)"
                               if "inplace" in kwargs else ""))
        after(*args, **kwargs)

    __init__.__qualname__ = f"{cls.__name__}.__init__"
    return __init__


# the classes are shown as written; their constructors (nn.Module's) get a message of their own
PaperInput.__init__ = _without_settings(
    PaperInput, "it pads 28×28 images to the paper's 32×32, background -0.1 and full intensity "
    "1.175, with nothing to set", "original.PaperInput()(X)")
ScaledTanh.__init__ = _without_settings(
    ScaledTanh, "it is the paper's squashing function f(a) = 1.7159 tanh(2a/3), with nothing to "
    "set", "f = original.ScaledTanh(); f(a)")


def _scriptable(checked):
    """``checked`` (a forward wrapped by at_the_door) as a function of this module: TorchScript
    compiles the forward's own source (inspect follows ``__wrapped__``) but looks its names (F,
    torch) up in the globals of the function it is given, which must be this module's. So a
    scripted layer (torch.jit.script(PaperInput())) runs its forward without the Python check
    at_the_door gave it: TorchScript cannot run it. The scripted network (original_lenet()) checks
    its input's shape, type and 0-255 pixels in its pre-hook (_check_scripted_input), and nothing
    inside; a traced one (torch.jit.trace) records no check at all."""
    @functools.wraps(checked)
    def forward(*args, **kwargs):
        return checked(*args, **kwargs)

    return forward


PaperInput.forward = _scriptable(at_the_door(PaperInput.forward, _check_paper_input))
ScaledTanh.forward = _scriptable(at_the_door(ScaledTanh.forward, _check_scaled_tanh))
Subsampling.__init__ = at_the_door(Subsampling.__init__, _check_subsampling)
Subsampling.forward = _scriptable(at_the_door(Subsampling.forward, _check_subsampling_input))
PartialConv2d.__init__ = at_the_door(PartialConv2d.__init__, _check_partial_conv)
PartialConv2d.forward = _scriptable(at_the_door(PartialConv2d.forward,
                                                _check_partial_conv_input))
RBF.__init__ = at_the_door(RBF.__init__, _check_rbf)
RBF.forward = _scriptable(at_the_door(RBF.forward, _check_rbf_input))


def _network_input_checked(net, args: tuple[torch.Tensor]) -> None:
    """The network's forward pre-hook: TorchScript compiles a network's hooks with it
    (torch.jit.script(original_lenet())), and a compiled network reads no Python check. Scripted,
    the network checks its input with _check_scripted_input only: the checks of its layers
    (PaperInput's, Subsampling's, PartialConv2d's, RBF's) are Python, which TorchScript cannot
    run, so the scripted layers check nothing."""
    if not torch.jit.is_scripting():
        _check_network_input(net, args)
    else:
        _check_scripted_input(args[0], net.C1[0].weight.dtype)


def _check_scripted_input(X: torch.Tensor, dtype: torch.dtype) -> None:
    """The scripted 1998 network's input checks, in TorchScript (which has no Python checks to
    call): a batch N×1×28×28 of float images of its weights' dtype, and on the CPU not 0-255
    pixels as floats (whole numbers above 1). A refusal comes as TorchScript raises it, a
    torch.jit.Error naming the ValueError or TypeError with these words after the
    interpreter's traceback."""
    if X.dim() != 4 or X.size(1) != 1 or X.size(2) != 28 or X.size(3) != 28:
        raise ValueError("original_lenet (scripted) takes a batch of grey 28×28 images, "
                         "N×1×28×28 floats in [0, 1] (to_float(images) gives them), got shape "
                         + str(X.shape)
                         + ("; for N images without a channel dimension, X.unsqueeze(1)"
                            if X.dim() == 3 else ""))
    if not X.is_floating_point():
        raise TypeError("original_lenet (scripted) takes float images in [0, 1], got images of "
                        "a whole-number type (uint8 pixels?): to_float(images) first "
                        "(lenet_book.train.to_float)")
    if X.dtype != dtype:  # TorchScript has no names for dtypes: none are given
        raise TypeError("original_lenet (scripted) takes images of its weights' float type, got "
                        "another (e.g. float64 images for float32 weights): convert them, "
                        "X.float() for float32 weights, or the network before scripting it, "
                        "net.to(X.dtype)")
    if X.device.type == "cpu" and X.numel() > 0:  # on a GPU reading values would wait for it
        if bool(X.min() >= 0) and bool(X.max() > 1) and bool(torch.equal(X, X.round())):
            raise ValueError("original_lenet (scripted) takes float images in [0, 1]: "
                             "to_float(images) first (lenet_book.train.to_float); these are "
                             "whole numbers above 1, pixels as floats (.float() without the "
                             "division by 255): give the uint8 pixels to to_float, or divide "
                             "by 255")


@torch.jit.unused
def _check_network_input(net, args):
    """The 1998 network's input: a batch N×1×H×W of float images of its weights' dtype (shapes
    and dtypes only: nothing waits for a GPU)."""
    X = args[0] if args else None
    weight = net.C1[0].weight
    if isinstance(X, torch.Tensor) and X.dim() == 4 and tuple(X.shape[1:]) == (1, 28, 28) \
            and X.dtype == weight.dtype:
        return
    got = (f"{X.dtype} of shape {tuple(X.shape)}" if isinstance(X, torch.Tensor)
           else _a_kind(X))
    raise (ValueError if isinstance(X, torch.Tensor) else TypeError)(
        f"original_lenet takes a batch of grey 28×28 images, N×1×28×28 {weight.dtype} in "
        f"[0, 1] (to_float(images) gives them; its input layer pads them to the paper's 32×32; "
        f"3-channel pictures must be made grey first), got {got}")


def _input_checked(build):
    """``build`` whose network checks its input before the first layer (chapter 5 shows
    original_lenet as written: its source is the function's own)."""
    @functools.wraps(build)
    def checked(*args, **kwargs):
        net = build(*args, **kwargs)
        net.register_forward_pre_hook(_network_input_checked)
        return net
    return checked


original_lenet = _input_checked(at_the_door(original_lenet))
hadamard_codes = at_the_door(hadamard_codes)
paley_hadamard = at_the_door(paley_hadamard, _check_paley)
init_paper = at_the_door(init_paper, _check_init_paper)
