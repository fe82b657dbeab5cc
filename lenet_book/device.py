"""Where to train, in one place for chapters, benchmarks and tools.

d2l.try_gpu() knows only CUDA; ``try_device`` also knows Apple's GPU. ``device_name`` says which
processor that is, for the records that chapters and benchmarks keep.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

from lenet_book.checks import _brief, at_the_door, check_device


def try_device() -> torch.device:
    """The first CUDA GPU if there is one, else Apple's GPU (``mps``), else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda:0")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _check_try_device(*args, **kwargs):
    # d2l's try_gpu(i=0) takes a GPU's index; this one chooses the kind of device itself
    if args or kwargs:
        given = ", ".join([*map(_brief, args), *(f"{k}={_brief(v)}" for k, v in kwargs.items())])
        raise TypeError(f"try_device() takes no arguments, got try_device({given}): it picks "
                        "CUDA, else mps, else the CPU; for GPU i use torch.device(f'cuda:{i}')")


try_device = at_the_door(try_device, _check_try_device)


def synchronize(device):
    """Wait for the device to finish, so that wall-clock timers measure the work (chapter 4)."""
    if device is None:
        raise TypeError("synchronize waits for a device: give one, e.g. images.device or 'cuda'")
    if device == "meta" if isinstance(device, str) else (isinstance(device, torch.device)
                                                        and device.type == "meta"):
        return  # a meta tensor's device: shapes only, nothing to wait for
    # as device_name: 'xla' or 'cpu:5' would not be waited for; names the devices there are
    kind = check_device(device).type
    if kind == "cuda":
        torch.cuda.synchronize(device)
    elif kind == "mps":
        torch.mps.synchronize()


def device_name(device=None) -> str:
    """A readable name of ``device`` (default: ``try_device()``): the GPU's name or the
    CPU model."""
    device = check_device(device) if device is not None else try_device()
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple GPU (mps)"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return f"CPU: {line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    return f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores"
