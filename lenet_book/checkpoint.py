"""Save and load trained weights so that a damaged or foreign file is refused, never used.

A plain ``torch.save`` over the old file leaves a 0-byte or truncated file when it is
interrupted, and ``torch.load`` reads a file with flipped bytes in its tensor data without a
word. Here:

* :func:`save_checkpoint` writes a temporary file in the same folder, flushes it to disk
  (``fsync``) and renames it over the old file (``os.replace``, atomic), so the path holds
  either the old checkpoint or the new one, whole. Beside the state dict it stores a SHA-256
  of the names, dtypes, shapes and bytes of its tensors, and the architecture: the list of
  ``(name, shape)`` of the state dict.
* :func:`load_checkpoint` loads with ``torch.load(..., weights_only=True)`` (no code in the
  file runs), recomputes the checksum, compares the architecture with the network's, and only
  then calls ``load_state_dict``. Every failure raises :class:`CheckpointError` naming the
  file, what is wrong and how to fix it.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from pathlib import Path

import torch
from torch import nn

__all__ = ["CheckpointError", "FORMAT", "architecture", "load_checkpoint", "save_checkpoint",
           "state_dict_sha256"]

FORMAT = "lenet_book checkpoint 1"  # stored in every file; a file without it is not ours

RETRAIN = ("retrain the network and save it again with save_checkpoint "
           "(in this book: rerun the training cell of chapter 3, notebooks/03_training.ipynb)")


class CheckpointError(ValueError):
    """A checkpoint file is missing, damaged, not a checkpoint, or for another architecture."""


def architecture(state_dict: dict[str, torch.Tensor]) -> list[tuple[str, tuple[int, ...]]]:
    """The architecture as a checkpoint records it: ``[(name, shape), ...]`` in state-dict order."""
    return [(name, tuple(tensor.shape)) for name, tensor in state_dict.items()]


def state_dict_sha256(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in state-dict order."""
    digest = hashlib.sha256()
    for name, tensor in state_dict.items():
        tensor = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        # A uint8 view gives the raw bytes of any dtype, bfloat16 included (numpy has none).
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _fsync_folder(folder: Path) -> None:
    # The rename itself is only durable once the folder's entry is on disk (POSIX).
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # e.g. Windows cannot open a folder; the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(net: nn.Module, path: str | os.PathLike) -> Path:
    """Save ``net``'s weights to ``path`` atomically, with a checksum and its architecture.

    Returns the path. The folder is created if needed. Raises CheckpointError when the file
    cannot be written (the message names the path and why).
    """
    path = Path(path)
    state_dict = {name: tensor.detach().to("cpu").clone()
                  for name, tensor in net.state_dict().items()}
    record = {
        "format": FORMAT,
        "architecture": [(name, list(shape)) for name, shape in architecture(state_dict)],
        "sha256": state_dict_sha256(state_dict),
        "state_dict": state_dict,
    }
    if path.is_dir():
        raise CheckpointError(f"Cannot save the checkpoint: {path} is a folder. "
                              "Give the path of a file, e.g. lenet.pt inside that folder.")
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # A unique name in the same folder: the rename stays on one file system (atomic), and two
        # saves at once never write into the same temporary file.
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            torch.save(record, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
        temporary = None
    except OSError as error:
        raise CheckpointError(
            f"Cannot save the checkpoint to {path}: {error.strerror or error} "
            f"({error.filename or path}). Check that its folder exists as a folder, is writable "
            "and has free space, or save it somewhere else.") from None
    finally:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
    _fsync_folder(path.parent)
    return path


def _refuse(path: Path, what: str, fix: str = RETRAIN) -> CheckpointError:
    return CheckpointError(f"Checkpoint {path} {what}.\nHow to fix it: {fix}.")


def _differences(stored: list[tuple[str, tuple[int, ...]]],
                 expected: list[tuple[str, tuple[int, ...]]], limit: int = 5) -> str:
    """The first few differences between two architectures, one per line."""
    stored_shapes, expected_shapes = dict(stored), dict(expected)
    lines = []
    for name, shape in expected:
        if name not in stored_shapes:
            lines.append(f"{name} {shape} is in the network but not in the file")
        elif stored_shapes[name] != shape:
            lines.append(f"{name} has shape {stored_shapes[name]} in the file "
                         f"but {shape} in the network")
    lines += [f"{name} {shape} is in the file but not in the network"
              for name, shape in stored if name not in expected_shapes]
    if not lines:
        lines.append("the same tensors are stored in another order")
    more = len(lines) - limit
    return ("\n".join("  - " + line for line in lines[:limit])
            + (f"\n  ... and {more} more" if more > 0 else ""))


def load_checkpoint(net: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load the weights saved by :func:`save_checkpoint` into ``net`` and return ``net``.

    Raises CheckpointError, before touching ``net``, when the file is missing, empty,
    truncated or damaged (its checksum differs), not a checkpoint of this format, or saved from
    a network of another architecture.
    """
    path = Path(path)
    try:
        status = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise _refuse(path, "does not exist (wrong path, or never saved)") from None
    except PermissionError:
        raise _refuse(path, "cannot be reached: no permission to enter its folder",
                      f"let your user enter {path.parent} and the folders above it "
                      "(e.g. chmod a+rx, as their owner), or copy the file elsewhere") from None
    if stat.S_ISDIR(status.st_mode):
        raise _refuse(path, "is a folder, not a checkpoint file", "give the path of the .pt file")
    try:
        if status.st_size == 0:
            raise _refuse(path, "is empty (0 bytes): the save that wrote it was interrupted")
        record = torch.load(path, map_location="cpu", weights_only=True)
    except CheckpointError:
        raise
    except PermissionError:
        raise _refuse(path, "cannot be read: no permission",
                      f"give your user read permission (e.g. chmod a+r {path}, as its owner), "
                      "or copy it elsewhere") from None
    except Exception as error:  # torch.load raises many kinds for a truncated or damaged zip
        raise _refuse(path, f"cannot be read as a checkpoint ({type(error).__name__}: "
                            f"{str(error).splitlines()[0] if str(error) else 'no details'}); "
                            "it is truncated, damaged, or not a file saved by "
                            "save_checkpoint") from None
    if not (isinstance(record, dict) and record.get("format") == FORMAT):
        raise _refuse(path, "is not a lenet_book checkpoint (a plain torch.save of a state dict, "
                            "or another file?); only files written by save_checkpoint are loaded")
    try:
        state_dict = record["state_dict"]
        stored = [(str(name), tuple(int(d) for d in shape))
                  for name, shape in record["architecture"]]
        checksum = str(record["sha256"])
        if not all(isinstance(t, torch.Tensor) for t in state_dict.values()):
            raise TypeError("a state-dict entry is not a tensor")
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise _refuse(path, f"is damaged: its contents are incomplete ({error})") from None
    if state_dict_sha256(state_dict) != checksum or architecture(state_dict) != stored:
        raise _refuse(path, "is damaged: the SHA-256 of its weights is not the one stored at "
                            "save time (bytes changed on disk or in a copy)")
    expected = architecture(net.state_dict())
    if stored != expected:
        raise _refuse(path, "was saved from a network of another architecture:\n"
                      + _differences(stored, expected),
                      "load it into the network it was trained with, or " + RETRAIN)
    net.load_state_dict(state_dict)
    return net
