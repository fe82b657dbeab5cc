"""The networks of the book and their initialisation.

- ``lenet`` and ``init_xavier``: LeNet-5 as the text writes it (chapter 1) and the
  initialisation of its training recipe (chapter 3).
- ``modern_lenet``: the same network with a choice of activation and pooling and optional batch
  normalisation (chapter 6, "Modernising LeNet").
The 1998 network of chapter 5 is in ``lenet_book.original``.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils import parametrize

from lenet_book.checks import (
    _remember_trained,
    at_the_door,
    check_layer_choices,
    check_layers_built,
    check_network,
)


def lenet():
    """LeNet-5 exactly as d2l writes it (explained in chapter 1): 61,706 parameters."""
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
    """Xavier-uniform weights for every linear and convolutional layer, as train_ch6 does
    (chapter 3): nn.Linear and every convolution (Conv1d/2d/3d and ConvTranspose1d/2d/3d),
    subclasses too; biases and other layers are left as they are."""
    check_network(net)
    for m in net.modules():
        if isinstance(m, _XAVIER_LAYERS):
            _xavier_uniform(m)
    _remember_trained(net, None)  # new weights: how the old ones were trained holds no more
    return net


# the layers init_xavier redraws (the text's are nn.Linear and nn.Conv2d); _ConvNd is the base
# class of every convolution, transposed ones included
_XAVIER_LAYERS = (nn.Linear, nn.modules.conv._ConvNd)


def _xavier_uniform(layer):
    """Xavier-uniform weights for one layer. A weight that a parametrization computes
    (weight_norm, spectral_norm, orthogonal of torch.nn.utils.parametrizations) is drawn and
    assigned through it, and the old nn.utils.weight_norm's magnitude and direction are set to
    the drawn weight: as if the layer had been initialised before they were added (writing into
    a computed weight would be lost)."""
    if parametrize.is_parametrized(layer, "weight"):
        with torch.no_grad():
            layer.weight = nn.init.xavier_uniform_(torch.empty_like(layer.weight))
            _restart_power_method(layer.parametrizations.weight)  # spectral_norm's estimate
        return
    norm = _old_weight_norm(layer)
    if norm is not None:
        with torch.no_grad():
            weight = nn.init.xavier_uniform_(torch.empty_like(layer.weight_v))
            layer.weight_v.copy_(weight)
            layer.weight_g.copy_(torch.norm_except_dim(weight, 2, norm.dim))
            layer.weight = norm.compute_weight(layer)
        return
    nn.init.xavier_uniform_(layer.weight)


def _restart_power_method(parametrizations):
    """spectral_norm estimates the weight's largest singular value by power iterations that
    continue from the last weight's: after a new weight, 15 of them, as when it is added."""
    spectral = [p for p in parametrizations if type(p).__name__ == "_SpectralNorm"
                and hasattr(p, "_u") and hasattr(p, "_power_method")]
    if len(parametrizations) == 1 and spectral and hasattr(parametrizations, "original"):
        weight_matrix = spectral[0]._reshape_weight_to_matrix(parametrizations.original)
        spectral[0]._power_method(weight_matrix, 15)


def _old_weight_norm(layer):
    """The hook of the old torch.nn.utils.weight_norm on ``layer``'s weight, or None."""
    return next((hook for hook in layer._forward_pre_hooks.values()
                 if type(hook).__name__ == "WeightNorm"
                 and getattr(hook, "name", None) == "weight"), None)


_PARAMETRIZATIONS = {"_WeightNorm": "weight_norm", "_SpectralNorm": "spectral_norm",
                     "_Orthogonal": "orthogonal"}  # torch.nn.utils.parametrizations'


def _computed_by(layer, name):
    """What computes ``layer``'s tensor ``name`` from other tensors at every use (a
    parametrization such as weight_norm, or a hook: the old nn.utils.weight_norm or spectral_norm,
    pruning), or None when it is the layer's own parameter or buffer, which an initialisation
    writes into."""
    if name in layer._parameters or name in layer._buffers or not hasattr(layer, name):
        return None
    if parametrize.is_parametrized(layer, name):
        return " and ".join(_PARAMETRIZATIONS.get(type(p).__name__, type(p).__name__)
                            for p in layer.parametrizations[name])
    for hook in layer._forward_pre_hooks.values():
        if name in (getattr(hook, "name", None), getattr(hook, "_tensor_name", None)):
            kind = type(hook)
            return ("pruning (torch.nn.utils.prune)" if kind.__module__.endswith(".prune")
                    else f"nn.utils.{kind.__module__.rsplit('.', 1)[-1]}"
                    if kind.__module__.startswith("torch.nn.utils.") else kind.__name__)
    return "code of its own (it is not a parameter)"


def _check_not_inference(name, net):
    """Weights made inside torch.inference_mode() cannot be written into outside it (torch's
    words would say only "Inplace update to inference tensor")."""
    if isinstance(net, nn.Module) and not torch.is_inference_mode_enabled() and any(
            p.is_inference() for p in net.parameters()
            if not isinstance(p, nn.parameter.UninitializedParameter)):
        raise ValueError(f"{name}: the network was built inside torch.inference_mode(), so its "
                         "weights are inference tensors, which cannot be redrawn outside that "
                         "block; build it outside it (e.g. net = models.lenet() before `with "
                         "torch.inference_mode():`)")


def _check_init_xavier(net):
    check_network(net)
    _check_not_inference("init_xavier", net)
    paper = sorted({type(m).__name__ for m in net.modules()
                    if type(m).__name__ in ("RBF", "PartialConv2d", "Subsampling")})
    if paper:
        raise TypeError(f"init_xavier re-initialises linear and convolutional layers only; this is "
                        f"the 1998 network (it has {', '.join(paper)}), whose other layers it "
                        "would leave as they are, a mix of two schemes: initialise it with "
                        "original.init_paper(net)")
    # a lazy layer built later would get PyTorch's default weights, not Xavier's
    check_layers_built(net, "be initialised")
    for name, layer in net.named_modules():
        if isinstance(layer, _XAVIER_LAYERS):
            _check_weight_drawable(name, layer)


def _check_weight_drawable(name, layer, fix=None):
    """A weight computed from other tensors is drawn through its parametrization (tried on a
    copy first, so that a refusal leaves the network as it was) or the old weight_norm's hook;
    one computed otherwise (the old spectral_norm, pruning) cannot be redrawn. ``fix`` replaces
    the advice to initialise first (the text's loop, whose init=True redraws, says init=False)."""
    by = _computed_by(layer, "weight")
    if by is None or _old_weight_norm(layer) is not None:
        return
    where = (f"init_xavier cannot redraw the weight of layer {name or 'net'!r} "
             f"({type(layer).__name__})")
    if parametrize.is_parametrized(layer, "weight"):
        try:
            trial = copy.deepcopy(layer)
        except Exception:  # a copy cannot be made: the weight is drawn as it is
            return
        weight = trial.weight.detach().clone()
        # no random numbers used up (orthogonal draws some to complete a matrix that is not square)
        on_gpu = [weight.device] if weight.device.type == "cuda" else []
        with torch.random.fork_rng(devices=on_gpu), torch.no_grad():
            try:
                trial.weight = weight
            except (NotImplementedError, RuntimeError, ValueError) as error:
                raise ValueError(f"{where}: {by} computes it from other tensors, and cannot be "
                                 f"given a new weight (PyTorch says {str(error)!r}); "
                                 + (fix or f"initialise the layer before adding {by}, e.g. "
                                    "models.init_xavier(net) first")) from None
        return
    raise ValueError(f"{where}: {by} computes it from other tensors at every forward pass, so "
                     f"what it writes into the weight would be lost; "
                     + (fix or "initialise the network before adding it: models.init_xavier(net) "
                        "first" + (", or use torch.nn.utils.parametrizations.spectral_norm, "
                                   "which init_xavier draws through" if "spectral_norm" in by
                                   else "")))


init_xavier = at_the_door(init_xavier, _check_init_xavier)


def modern_lenet(activation=nn.Sigmoid, pool=nn.AvgPool2d, batch_norm=False):
    """LeNet-5 with a choice of activation and pooling, and optional batch normalisation
    (chapter 6).

    With the defaults it is ``lenet()``. With batch normalisation the layers before it have no
    bias: it subtracts the mean, so a bias would be redundant, and its shift β takes its role.
    """
    check_layer_choices(activation, pool, batch_norm)  # classes, not names (lenet_book.checks)
    bias = not batch_norm

    def activate(norm, width):
        return [norm(width), activation()] if batch_norm else [activation()]

    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2, bias=bias), *activate(nn.BatchNorm2d, 6),
        pool(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5, bias=bias), *activate(nn.BatchNorm2d, 16),
        pool(kernel_size=2, stride=2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120, bias=bias), *activate(nn.BatchNorm1d, 120),
        nn.Linear(120, 84, bias=bias), *activate(nn.BatchNorm1d, 84),
        nn.Linear(84, 10))


def num_parameters(net):
    """Trainable parameters (buffers such as batch norm's running statistics are not counted)."""
    check_network(net)  # a torch.nn.Module, not the function that builds one (lenet_book.checks)
    check_layers_built(net, "be counted")  # a lazy layer has no sizes before its first forward
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


# a misspelt or extra argument is named, with the signature (lenet() takes none: its 10 classes
# are Fashion-MNIST's); chapter 6 shows modern_lenet as written above
lenet = at_the_door(lenet)
modern_lenet = at_the_door(modern_lenet)
num_parameters = at_the_door(num_parameters)
