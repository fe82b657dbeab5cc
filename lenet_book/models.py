"""The networks of the book and their initialisation.

- ``lenet`` and ``init_xavier``: LeNet-5 as the text writes it (chapter 1) and the
  initialisation of its training recipe (chapter 3).
- ``modern_lenet``: the same network with a choice of activation and pooling and optional batch
  normalisation (chapter 6, "Modernising LeNet").
The 1998 network of chapter 5 is in ``lenet_book.original``.
"""

from __future__ import annotations

from torch import nn

from lenet_book.checks import at_the_door, check_layer_choices, check_layers_built, check_network


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
    (chapter 3)."""
    check_network(net)
    for m in net.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):  # subclasses too
            nn.init.xavier_uniform_(m.weight)
    return net


def _check_init_xavier(net):
    check_network(net)
    paper = sorted({type(m).__name__ for m in net.modules()
                    if type(m).__name__ in ("RBF", "PartialConv2d", "Subsampling")})
    if paper:
        raise TypeError(f"init_xavier re-initialises plain Conv2d and Linear layers only; this is "
                        f"the 1998 network (it has {', '.join(paper)}), whose other layers it "
                        "would leave as they are, a mix of two schemes: initialise it with "
                        "original.init_paper(net)")
    # a lazy layer built later would get PyTorch's default weights, not Xavier's
    check_layers_built(net, "be initialised")


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
