"""Choosing where to train: d2l.try_gpu() knows only CUDA; this also knows Apple's GPU."""

from __future__ import annotations

import torch


def try_device() -> torch.device:
    """The first CUDA GPU if there is one, else Apple's GPU (``mps``), else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda:0")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
