"""Save and load trained weights so that a damaged or foreign file is refused, never used.

A plain ``torch.save`` over the old file leaves a 0-byte or truncated file when it is
interrupted, and ``torch.load`` reads a file with flipped bytes in its tensor data without a
word. Here:

* :func:`save_checkpoint` writes a temporary file in the same folder, flushes it to disk
  (``fsync``) and renames it over the old file (``os.replace``, atomic), so the path holds
  either the old checkpoint or the new one, whole. Beside the state dict it stores a SHA-256
  of the names, dtypes, shapes and bytes of its tensors, the architecture (the list of
  ``(name, shape)`` of the state dict) and the network: every module's name, type and settings
  (:func:`network_description`), with a SHA-256 of its own.
* :func:`load_checkpoint` loads with ``torch.load(..., weights_only=True)`` (no code in the
  file runs), recomputes the checksums, compares the architecture and the network with the
  network it loads into (a ReLU network is refused by a sigmoid one even when every tensor has
  the same name and shape), and only then calls ``load_state_dict``. Every failure raises
  :class:`CheckpointError` naming the file, what is wrong and how to fix it; so does a file of
  the first format, which did not record the network.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import pickletools
import re
import shutil
import signal
import stat
import threading
import zipfile
from pathlib import Path

import torch
from torch import nn

from lenet_book._grammar import _a_kind
from lenet_book.checks import (
    _remember_trained,
    _trained_towards,
    at_the_door,
    check_flags,
    check_layers_built,
)
from lenet_book.data import (
    FILES,
    _another_users_file,
    _broken_path_problem,
    _not_a_local_path,
    _os_words,
    _relative_path_problem,
    replaced_atomically,
)

__all__ = ["CheckpointError", "FORMAT", "architecture", "load_checkpoint", "network_description",
           "save_checkpoint", "state_dict_sha256"]

FORMAT = "lenet_book checkpoint 2"  # stored in every file; a file without it is not ours
OLD_FORMATS = ("lenet_book checkpoint 1",)  # without the network's description: refused
_RECORD_KEYS = {"architecture", "sha256", "network", "network_sha256", "state_dict"}  # beside it

LEGACY_HEAD = b"\x80\x02\x8a\x0a"  # torch.save's format before torch 1.6 (a pickle, not a zip)

# How a file compressed whole starts, the compression's name, and the command that undoes it
_COMPRESSIONS = ((b"\x1f\x8b", "gzip", "gunzip"), (b"\xfd7zXZ\x00", "xz", "unxz"),
                (b"BZh", "bzip2", "bunzip2"), (b"\x28\xb5\x2f\xfd", "zstd", "unzstd"))

# torch.save writes <prefix>/data.pkl first in its zip, uncompressed, and the first value in the
# pickle of every file save_checkpoint writes is FORMAT: a file cut short after a few hundred
# bytes still shows that it is a checkpoint of this module (or of an older or newer lenet_book).
_FORMAT_MARK = b"lenet_book checkpoint "

RETRAIN = ("retrain the network and save it again with save_checkpoint "
           "(in this book: rerun the training cell of chapter 3, notebooks/03_training.ipynb)")


class CheckpointError(ValueError):
    """A checkpoint file is missing, damaged, not a checkpoint, or for another architecture."""


def _check_state_dict(state_dict, name) -> None:
    if not isinstance(state_dict, dict):
        raise TypeError(f"{name} takes a state dict, e.g. net.state_dict(), got "
                        f"{_a_kind(state_dict)} as state_dict")
    for key, value in state_dict.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise TypeError(f"{name}: state_dict must map names (str) to tensors, as "
                            f"net.state_dict() does, got {key!r}: {_a_kind(value)}")


def architecture(state_dict: dict[str, torch.Tensor]) -> list[tuple[str, tuple[int, ...]]]:
    """The architecture as a checkpoint records it: ``[(name, shape), ...]`` in state-dict order."""
    _check_state_dict(state_dict, "architecture")
    return [(name, tuple(tensor.shape)) for name, tensor in state_dict.items()]


def network_description(net: nn.Module) -> list[list[str]]:
    """Every module of ``net`` in order, as ``[name, type, settings]``, e.g.
    ``["1", "Sigmoid", ""]`` or ``["0", "Conv2d", "1, 6, kernel_size=(5, 5), ..."]``: the
    settings are the module's ``extra_repr()``, what ``print(net)`` shows in brackets. A block
    compiled on its own (``net[0] = torch.compile(net[0])``) is described as the plain block."""
    _check_network(net)
    net = _inside(net)
    return [_module_entry(_uncompiled_name(name), module) for name, module in net.named_modules()
            if not _compiled(module)]


def _compiled(module: nn.Module) -> bool:
    """Whether ``module`` is torch.compile's wrapper (it holds the module itself as _orig_mod)."""
    return isinstance(getattr(module, "_orig_mod", None), nn.Module)


def _uncompiled_name(name: str) -> str:
    """``"0._orig_mod.weight"`` as ``"0.weight"``: a block compiled on its own
    (``net[0] = torch.compile(net[0])``) holds its module as ``_orig_mod``, as a compiled network
    does; its weights are the plain block's, under the plain block's names."""
    return ".".join(part for part in name.split(".") if part != "_orig_mod")


def _named_state(net: nn.Module) -> dict[str, torch.Tensor]:
    """``net.state_dict()`` under the names of the plain network (:func:`_uncompiled_name`)."""
    state = net.state_dict()
    names = [_uncompiled_name(name) for name in state]
    if len(set(names)) < len(names):  # a module of one's own named _orig_mod: torch's names
        return state
    return dict(zip(names, state.values()))


def _uncompiled_record(state_dict, stored, network):
    """A checkpoint that an older lenet_book saved from a network with a compiled block holds
    its names with ``_orig_mod`` and the wrapper as a module of its own: the same record under
    the plain network's names, as checkpoints are saved now."""
    if not any("_orig_mod" in name.split(".") for name, _ in stored):
        return state_dict, stored, network
    wrapped = {name for name, _, _ in network if name == "_orig_mod"
               or name.endswith("._orig_mod")}
    wrappers = {name.removesuffix("_orig_mod").removesuffix(".") for name in wrapped}
    network = [[_uncompiled_name(name), kind, settings] for name, kind, settings in network
               if not (kind == "OptimizedModule" and name in wrappers)]
    return ({_uncompiled_name(name): tensor for name, tensor in state_dict.items()},
            [(_uncompiled_name(name), shape) for name, shape in stored], network)


def _module_entry(name: str, module: nn.Module) -> list[str]:
    """A module as ``[name, type, settings]``; a scripted one (torch.jit.script) as
    ``[name, "RecursiveScriptModule", "Conv2d(1, 6, ...)"]``: its own repr shows no settings."""
    settings = _scripted_settings(module)
    return [name, type(module).__name__, module.extra_repr() if settings is None else settings]


class _ScriptedSettings:
    """A scripted module's settings where its class's extra_repr reads them: constants (a
    Conv2d's padding, a Dropout's p) in __dict__, anything else (its bias) from the module."""

    def __init__(self, module):
        self.__dict__.update(module._concrete_type.get_constants())
        self._module = module

    def __getattr__(self, name):
        return getattr(self._module, name)


def _scripted_settings(module: nn.Module) -> str | None:
    """``"Conv2d(1, 6, kernel_size=...)"`` for a module made by torch.jit.script, else None (a
    plain module; or a traced or torch.jit.load'ed one, which keeps no settings)."""
    if not isinstance(module, torch.jit.RecursiveScriptModule):
        return None
    try:
        plain = module._concrete_type.py_class
        return f"{plain.__name__}({plain.extra_repr(_ScriptedSettings(module))})"
    except Exception:  # no _concrete_type, or an extra_repr that needs what scripting dropped
        return None


_JIT_KINDS = ("RecursiveScriptModule", "TracedModule", "TopLevelTracedModule")


def _unscripted(entry: list[str]) -> list[str]:
    """A scripted module's entry as the plain module's: ``["0", "Conv2d", "1, 6, ..."]``."""
    name, kind, settings = entry
    inner = re.fullmatch(r"(\w+)\((.*)\)", settings, re.S)
    return [name, inner[1], inner[2]] if kind in _JIT_KINDS and inner else entry


def _settings_unrecorded(network: list[list[str]]) -> bool:
    """Whether a description holds torch.jit modules without their settings, as an older
    lenet_book recorded them (``original_name=Conv2d``)."""
    return any(kind in _JIT_KINDS and settings.startswith("original_name=")
               for _, kind, settings in network)


def _comparable(stored: list[list[str]], expected: list[list[str]]) -> list[list[str]]:
    """The stored description, as plain modules when the file comes from a scripted network and
    the network given is plain: scripting changes how a layer runs, not what it computes."""
    scripted = any(kind in _JIT_KINDS for _, kind, _ in stored)
    if scripted and not any(kind in _JIT_KINDS for _, kind, _ in expected):
        return [_unscripted(entry) for entry in stored]
    return stored


def _inside(net):
    """The network itself: a torch.compile'd one holds it as ``_orig_mod``, and nn.DataParallel
    or DistributedDataParallel as ``module``; their state dicts' names carry that prefix, so that
    a wrapped and a plain network would not match."""
    while isinstance(net, nn.Module):
        if hasattr(net, "_orig_mod"):
            net = net._orig_mod
        elif isinstance(net, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            net = net.module
        else:
            break
    return net


def _description_sha256(description: list[list[str]]) -> str:
    return hashlib.sha256(json.dumps(description).encode()).hexdigest()


def _without_values(tensor: torch.Tensor) -> str | None:
    """Why a tensor has no plain bytes to take a checksum of (nested, sparse, meta); None when
    it has them."""
    if tensor.is_nested:
        return "a nested tensor"
    if tensor.layout != torch.strided:
        return f"a {tensor.layout} tensor"
    if tensor.is_meta:
        return "on the 'meta' device, whose tensors have shapes but no values"
    return None


def _entries_of_a_checkpoint(record: dict) -> bool:
    """Whether the entries a checkpoint holds beside its format field have save_checkpoint's kinds
    (a learner's own dict may use the same names for notes: 'network': 'LeNet-5')."""
    def hex64(value):
        return isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value) is not None
    kinds = {"sha256": hex64, "network_sha256": hex64,
             "network": lambda v: isinstance(v, list) and all(isinstance(e, list) for e in v),
             "architecture": lambda v: isinstance(v, list) and all(
                 isinstance(e, (list, tuple)) and len(e) == 2 for e in v),
             "state_dict": lambda v: isinstance(v, dict)}
    return all(kinds[key](record[key]) for key in _RECORD_KEYS if key in record)


def state_dict_sha256(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in state-dict order."""
    _check_state_dict(state_dict, "state_dict_sha256")
    for name, tensor in state_dict.items():  # torch's own errors there name no tensor
        what = _without_values(tensor)
        if what:
            raise ValueError(
                f"state_dict_sha256: state_dict holds {name}, {what}; the checksum is taken "
                "over the values of dense tensors. "
                + ("Give the state dict of a network with weights (on the CPU or a GPU), e.g. "
                   "the one you trained, or give it storage first: net.to_empty(device='cpu')."
                   if tensor.is_meta and not tensor.is_nested else
                   "Give it as a dense tensor: tensor.to_dense(), or "
                   "torch.nested.to_padded_tensor(tensor, 0) for a nested one."))
    digest = hashlib.sha256()
    for name, tensor in state_dict.items():
        tensor = tensor.detach().to("cpu").resolve_conj().resolve_neg().contiguous()  # lazy views
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


def _check_network(net: nn.Module) -> None:
    if not isinstance(net, nn.Module):
        raise TypeError(f"the network must be a torch.nn.Module (e.g. lenet_book.models.lenet()), "
                        f"got {_a_kind(net)} as net")
    for name, value in net.state_dict().items():
        if (not isinstance(value, torch.Tensor) or value.layout != torch.strided
                or value.is_nested):
            what = (f"{_a_kind(value)} (get_extra_state)"
                    if not isinstance(value, torch.Tensor) else "a nested tensor"
                    if value.is_nested else f"a {value.layout} tensor")
            raise CheckpointError(
                f"the network's state dict holds {name}, {what}; a checkpoint holds only dense "
                "tensors (weights and buffers), which load back without running any code. "
                "Give such a buffer as a dense tensor (tensor.to_dense(), or "
                "torch.nested.to_padded_tensor(tensor, 0) for a nested one), register it with "
                "persistent=False if it need not be saved, or keep extra state beside the "
                "checkpoint yourself (e.g. json.dump(net.get_extra_state(), file)).")
    if any(tensor.is_meta for tensor in net.state_dict().values()):
        raise CheckpointError("the network is on the 'meta' device, whose tensors have shapes but "
                              "no values: there is nothing to save, and weights loaded into it "
                              "would be dropped. Use a network on the CPU (e.g. models.lenet()), "
                              "or give it storage first: net.to_empty(device='cpu').")


def _check_no_overlap(net: nn.Module, saving: bool) -> None:
    """Refuse a tensor whose elements share memory (a buffer made with expand): load_state_dict
    cannot copy into it, so its checkpoint would never load back into such a network."""
    for name, tensor in net.state_dict().items():
        if (tensor.layout == torch.strided and not tensor.is_meta
                and torch._debug_has_internal_overlap(tensor) == 1):
            raise CheckpointError(
                f"Cannot {'save' if saving else 'load'} a checkpoint of this network: its "
                f"tensor {name} ({tuple(tensor.shape)}) is an expanded view whose elements share "
                "memory (e.g. made with tensor.expand), which load_state_dict cannot copy into. "
                "Give it memory of its own: register_buffer(name, tensor.clone()) (or "
                "nn.Parameter(tensor.clone()) for a weight); nothing was "
                f"{'written' if saving else 'loaded'}.")


def _check_not_inference(net: nn.Module) -> None:
    """Weights made under torch.inference_mode() cannot be changed outside it."""
    if torch.is_inference_mode_enabled():
        return  # inside it, load_state_dict may copy into them
    made = [name for name, tensor in net.state_dict().items() if tensor.is_inference()]
    if made:
        raise CheckpointError(
            f"Cannot load a checkpoint into this network: its weights ({made[0]}"
            f"{', ...' if len(made) > 1 else ''}) were made under torch.inference_mode(), and "
            "such tensors cannot be changed outside it. Build the network outside "
            "torch.inference_mode() (e.g. net = models.lenet() before the with block), or load "
            "inside it; nothing was loaded.")


def _check_path(path, saving: bool) -> Path:
    """A file path (str or os.PathLike) as a Path; a symlink to be saved over: its target."""
    if not isinstance(path, (str, os.PathLike)) and any(hasattr(path, name)
                                                         for name in ("read", "write")):
        free = _unused_path(Path("lenet.pt"), ending="")  # an existing lenet.pt is kept
        # an io.BytesIO or an open file, as torch.save and torch.load take: the atomic save needs
        # a path (a temporary file renamed over it), and load checks the file by its path
        raise TypeError(f"the checkpoint path must be a str or pathlib.Path such as 'lenet.pt', "
                        f"got {_a_kind(path)}, a file object: checkpoints are "
                        + ("written atomically (a temporary file renamed over the path), which "
                           "needs a path. Save to a file, then read its bytes: "
                           f"save_checkpoint(net, {free}); data = Path({free}).read_bytes()"
                           if saving else
                           "checked and loaded from a file path. Write the bytes to a file "
                           f"first, then load it: Path({free}).write_bytes(buffer.getvalue()); "
                           f"load_checkpoint(net, {free})"))
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"the checkpoint path must be a str or pathlib.Path such as 'lenet.pt', "
                        f"got {path!r} ({_a_kind(path)})")
    text = os.fspath(path)
    if isinstance(text, bytes) or not text:
        raise CheckpointError(f"The checkpoint path {path!r} is not a file name; "
                              "give one such as 'lenet.pt'.")
    if "\0" in text:
        raise CheckpointError(f"The checkpoint path {text!r} holds a NUL character (\\0), which "
                              "no file name may hold; write the path without it.")
    gone = _relative_path_problem(text)
    if gone:
        raise CheckpointError(f"Cannot {'save' if saving else 'load'} the checkpoint {text}: the "
                              f"path is relative, and {gone} (or give the full path); nothing "
                              f"was {'written' if saving else 'read'}.")
    remote = _not_a_local_path(text)
    if remote:  # before anything is created: the folders would be made here, not there
        raise CheckpointError(f"Cannot {'save' if saving else 'load'} the checkpoint {text}: it "
                              f"{remote} such as 'lenet.pt'; nothing was "
                              f"{'written' if saving else 'read'}.")
    if text.startswith("~"):
        raise CheckpointError(f"The checkpoint path {text} starts with '~', which Python does not "
                              "expand to the home folder (it would name a folder called '~' "
                              "here); write Path.home() / ... or os.path.expanduser(path).")
    if saving and any(part != part.strip() for part in Path(text).parts):
        raise CheckpointError(f"The checkpoint path {text!r} has a name that starts or ends with "
                              "white space (a space or a pasted newline), which a file or "
                              "folder name almost never means; write it without, e.g. "
                              "'runs/lenet.pt'.")
    # white space at either end of a path to load is named where the file is opened
    inside = [c for c in (text if saving else text.strip()) if ord(c) < 32 or ord(c) == 127]
    if inside and (saving or not os.path.lexists(text)):  # an existing file of that name loads
        raise CheckpointError(f"The checkpoint path {text!r} holds a control character "
                              f"({', '.join(dict.fromkeys(map(repr, inside)))}: a newline or a "
                              "tab, from a pasted path?), which a file name almost never means; "
                              "write the path without it, e.g. 'runs/lenet.pt'.")
    if text.endswith(("/", os.sep)) and os.path.isfile(text.rstrip("/" + os.sep)):
        raise CheckpointError(f"The checkpoint path {text} ends in a slash, but "
                              f"{text.rstrip('/' + os.sep)} is a file (a checkpoint?), not a "
                              "folder: write the path without the slash, e.g. "
                              f"{text.rstrip('/' + os.sep)!r}.")
    if text.endswith(("/", os.sep)):
        raise CheckpointError(f"The checkpoint path {text} ends in a slash, so it names a folder; "
                              f"give the path of a file, e.g. {text}lenet.pt.")
    path = Path(text)
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        pass  # said where the file is opened, with what to do
    except OSError as error:  # a name or path too long, a loop in a folder of the path
        raise CheckpointError(f"The checkpoint path {text} cannot be used: {_os_words(error)}; "
                              "give a shorter path, or fix that folder.") from None
    if saving and path.is_symlink():
        # the rename would replace the link itself with a file, and leave its target as it was
        try:
            return path.resolve(strict=False)
        except (RuntimeError, OSError):
            raise CheckpointError(f"Cannot save the checkpoint to {path}: it is a symbolic link "
                                  "that points to itself (a loop). Delete the link or save "
                                  "somewhere else.") from None
    return path


def _check_finite(state_dict: dict[str, torch.Tensor], path: Path) -> None:
    """Refuse weights that are NaN or infinite: a file of them would load and predict rubbish."""
    bad = {name: int((~_finite(tensor)).sum()) for name, tensor in state_dict.items()
           if (tensor.is_floating_point() or tensor.is_complex()) and not _finite(tensor).all()}
    if bad:
        which = ", ".join(f"{name} ({count} of {state_dict[name].numel()})"
                          for name, count in bad.items())
        raise CheckpointError(
            f"Cannot save the checkpoint to {path}: the network's weights hold NaN or infinite "
            f"numbers, in {which}; the training diverged, so these weights predict nothing. "
            "Nothing was written (an existing file is unchanged).\nHow to fix it: build the "
            "network again and retrain it with a smaller learning rate (e.g. 10 times smaller), "
            "then save it.")


def _finite(tensor: torch.Tensor) -> torch.Tensor:
    # torch has no isfinite for some 1-byte floats (float8_e4m3fn); float32 holds their values
    if tensor.is_floating_point() and tensor.element_size() == 1:
        tensor = tensor.float()
    return torch.isfinite(tensor)


def _is_torchscript(path: Path) -> bool:
    """Whether ``path`` is a torch.jit.save archive (it holds constants.pkl, as torch checks)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("/constants.pkl") for name in archive.namelist())
    except (OSError, zipfile.BadZipFile, ValueError):
        return False


def _pickle_is_whole(path: Path) -> bool:
    """Whether the torch zip at ``path`` holds a data.pkl whose bytes pass the zip's CRC and
    whose opcodes run to STOP (pickletools reads them without running anything): a file that
    weights_only refuses for what it holds, not because it is broken."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [name for name in archive.namelist() if name.endswith("/data.pkl")]
            if len(names) != 1:
                return False
            operations = list(pickletools.genops(archive.read(names[0])))
    except Exception:  # a truncated zip, a bad CRC, a broken opcode
        return False
    return bool(operations) and operations[-1][0].name == "STOP"


def _pickles_a_module(path: Path) -> bool:
    """Whether the torch zip at ``path`` holds a whole nn.Module (torch.save(net)), of any class
    (a notebook's own ``class Net``): its pickle names the attributes every module has."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [name for name in archive.namelist() if name.endswith("/data.pkl")]
            strings = {argument for _, argument, _ in pickletools.genops(archive.read(names[0]))
                       if isinstance(argument, str)}
    except Exception:  # a truncated zip, a bad CRC, a broken opcode, no data.pkl
        return False
    return {"_parameters", "_buffers", "_modules"} <= strings


def _modules_under_keys(path: Path) -> list | None:
    """The keys of the dict at the top of the torch zip at ``path`` whose values hold a whole
    nn.Module (torch.save({'model': net, 'epoch': 3})), read with pickletools without running
    anything; None when the top is not a dict, or the pickle cannot be followed."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [name for name in archive.namelist() if name.endswith("/data.pkl")]
            operations = list(pickletools.genops(archive.read(names[0])))
        if len(operations) < 2 or operations[1][0].name not in ("EMPTY_DICT", "DICT"):
            return None
        mark, stack, memo, found = object(), [], {}, []
        for op, argument, _ in operations:  # each item: [its string or None, strings within]
            if op.name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
                memo[len(memo) if op.name == "MEMOIZE" else argument] = stack[-1]
            elif op.name in ("GET", "BINGET", "LONG_BINGET"):
                stack.append(memo[argument])
            elif op.name == "MARK":
                stack.append(mark)
            elif op.name != "STOP":
                taken = []
                if pickletools.markobject in op.stack_before:
                    at = len(stack) - 1 - stack[::-1].index(mark)
                    taken, stack = stack[at + 1:], stack[:at]
                    fixed = op.stack_before.index(pickletools.markobject)
                else:
                    fixed = len(op.stack_before)
                if fixed:
                    taken, stack = stack[-fixed:] + taken, stack[:-fixed]
                if op.name in ("SETITEM", "SETITEMS") and not stack:  # the top dict's items
                    found += [pair[0][0] for pair in zip(taken[1::2], taken[2::2])
                              if {"_parameters", "_modules"} <= pair[1][1]]
                if op.stack_after:
                    item = taken[0] if taken else [
                        argument, {argument} if isinstance(argument, str) else set()]
                    for other in taken[1:]:  # in place: the memo shares the item
                        item[1] |= other[1]
                    stack.append(item)
        return found
    except Exception:  # a truncated zip, a broken opcode, a stack it does not follow
        return None


def _compression(head: bytes) -> tuple[str, str] | None:
    """``(name, command)`` of the compression a file starting with ``head`` was packed with,
    e.g. ``("xz", "unxz")``, or None."""
    for start, name, command in _COMPRESSIONS:
        if head.startswith(start) and (name != "bzip2" or head[3:4].isdigit()):
            return name, command
    return None


def _ours_by_its_start(path: Path) -> bool | None:
    """Whether a torch file that cannot be loaded is a checkpoint that save_checkpoint wrote,
    damaged or cut short: its zip's first record is ``<prefix>/data.pkl``, stored as it is, and
    its pickle starts with :data:`_FORMAT_MARK`; a whole zip also holds torch's
    ``<prefix>/byteorder`` or ``<prefix>/version``. None when the file is cut too short to
    tell (within data.pkl's first bytes)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return None
    if head[:4] != b"PK\x03\x04":
        return False
    method = int.from_bytes(head[8:10], "little")
    name_length = int.from_bytes(head[26:28], "little")
    extra_length = int.from_bytes(head[28:30], "little")
    name = head[30:30 + name_length]
    if len(head) < 30 or len(name) < name_length:
        return None  # cut within the zip's first header
    if method != 0 or not re.fullmatch(rb"[^/]+/data\.pkl", name, re.S):
        return False
    start = 30 + name_length + extra_length
    pickle = head[start:start + 128]
    if _FORMAT_MARK not in pickle:
        return None if len(pickle) < 64 else False  # ours holds FORMAT after 24 bytes
    prefix = name[:-len("data.pkl")].decode("utf-8", "replace")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except Exception:  # cut short: no zip directory at the end, data.pkl's start decides
        return True
    return f"{prefix}byteorder" in names or f"{prefix}version" in names


def _zip_contents(path: Path) -> tuple[str, str] | None:
    """What a whole zip archive that is not torch's holds: ("npz", "") for numpy's np.savez,
    ("checkpoint", name) for a zip archive holding a torch file (a checkpoint zipped up),
    ("zip", names) for any other; None for a torch file, or a zip that cannot be read."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if not names or any(name.endswith(("/data.pkl", "/constants.pkl"))
                                for name in names):
                return None
            if all(name.endswith(".npy") for name in names):
                return "npz", ""
            for name in [name for name in names if not name.endswith("/")][:50]:
                with archive.open(name) as member:
                    if member.read(4) == b"PK\x03\x04":  # torch.save's files are zip files
                        return "checkpoint", name
    except Exception:  # cut short, encrypted, damaged
        return None
    shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
    return "zip", shown


def _zip_words(contents: tuple[str, str]) -> str:
    kind, name = contents
    return ("a numpy .npz file (np.savez), not a torch.save file" if kind == "npz" else
            f"a zip archive holding {name}" if kind == "checkpoint" else
            f"a zip archive holding {name}, not a torch.save file")


def _what_is_there(path: Path) -> tuple[str, object]:
    """What an existing file at ``path`` is: ("none"|"empty"|"damaged"|"unsure", None),
    ("other", why) or ("checkpoint", record). A torch zip that cannot be read because it is
    broken counts as a damaged checkpoint (load_checkpoint tells its owner to save again over it)
    only when its start shows that save_checkpoint wrote it (:func:`_ours_by_its_start`); one
    cut too short to tell is "unsure"; any other (a user's torch.save of their own, a zip
    archive), or one that weights_only refuses for what it holds (a whole pickled network,
    numpy arrays), is foreign."""
    try:
        if not path.is_file():
            return ("none", None) if not path.exists() else ("other", "not a regular file")
        if path.stat().st_size == 0:
            return "empty", None
        with open(path, "rb") as f:
            head = f.read(4096)
    except PermissionError:
        return "unreadable", None  # e.g. another user's private file: it may be anything
    except OSError:
        return "none", None  # the save itself reports what is wrong
    if _compression(head):
        name = _compression(head)[0]
        return "other", f"{'an' if name == 'xz' else 'a'} {name}-compressed file"
    if head[:4] == LEGACY_HEAD:
        return "other", "a torch.save file of the old format, before torch 1.6"
    if head[:4] != b"PK\x03\x04":
        return "other", "not a checkpoint (no zip archive)"
    if _is_torchscript(path):
        return "other", "a TorchScript archive, torch.jit.save"
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        if _pickle_is_whole(path):
            return "other", ("a torch file that weights_only=True refuses for what it holds, e.g. "
                             "a whole network, torch.save(net), or numpy arrays")
        contents = _zip_contents(path)
        if contents:
            return "other", _zip_words(contents)
        ours = _ours_by_its_start(path)
        if ours is None:
            return "unsure", None
        if not ours:
            return "other", ("a torch.save file, cut short or damaged, whose start shows "
                             "that save_checkpoint did not write it")
        return "damaged", None
    if isinstance(record, dict) and record.get("format") in (FORMAT, *OLD_FORMATS):
        return "checkpoint", record
    return "other", "a torch file that save_checkpoint did not write (e.g. a plain torch.save)"


# Files that are clearly no checkpoint, by their name: a chapter, the learner's code, a record or
# the browser demo's data, and the data set's files. overwrite=True would destroy them.
_NOT_CHECKPOINTS = {".ipynb": "a Jupyter notebook", ".py": "a Python file",
                    ".json": "a JSON file, such as a benchmark or run record",
                    ".js": "a JavaScript file, such as the browser demo's data or weights"}


# ... and, for a new file, the names of other kinds of file: a checkpoint saved under one would
# be a torch archive that the programs reading such files fail on
_OTHER_KINDS = {**_NOT_CHECKPOINTS, ".csv": "a CSV table", ".txt": "a text file",
                ".gz": "a gzip file", ".onnx": "an ONNX model",
                ".safetensors": "a safetensors file (another format, which neither torch.load nor "
                                "load_checkpoint reads)"}


def _clearly_not_a_checkpoint(path: Path) -> str | None:
    """What the file at ``path`` is by its name, when that is clearly not a checkpoint."""
    if any(path.name in (spec.name, f"{spec.name}.gz") for spec in FILES):
        return "one of the four Fashion-MNIST data files"
    return _NOT_CHECKPOINTS.get(path.suffix.lower())


def _check_replacing(net: nn.Module, path: Path, overwrite: bool) -> None:
    """Refuse to replace a file that is not a checkpoint, or the checkpoint of another network,
    unless ``overwrite=True``; the checkpoint of the same network is replaced (chapters re-run).
    A file this user may not write, and a notebook, Python file, JSON or JavaScript file or data
    file that is not a checkpoint, are never replaced, even with overwrite=True."""
    problem = _another_users_file(path)
    if problem:
        raise CheckpointError(f"Cannot save the checkpoint to {path}: {problem}; nothing was "
                              "written. Save to another path, or ask its owner.")
    what = _clearly_not_a_checkpoint(path)
    named = what or _OTHER_KINDS.get(path.suffix.lower())
    if named and not os.path.lexists(path):
        instead = ("lenet.pt" if what and what.endswith("data files") else path.stem
                   if path.stem.lower().endswith(".pt") else path.with_suffix(".pt").name)
        raise CheckpointError(f"Cannot save the checkpoint to {path}: its name says "
                              f"{named}, which a checkpoint (a torch archive) is not, and the "
                              "programs that open such files would fail on it. Save it under a "
                              f"checkpoint's name, e.g. '{instead}'; nothing "
                              "was written.")
    if what and _what_is_there(path)[0] in ("other", "unsure", "unreadable"):
        instead = "lenet.pt" if what.endswith("data files") else path.with_suffix(".pt").name
        raise CheckpointError(f"Cannot save the checkpoint to {path}: that file exists and is "
                              f"not a lenet_book checkpoint ({what}), so saving would destroy "
                              "it; a checkpoint never replaces such a file. Save it to another "
                              f"path, e.g. '{instead}'; nothing was written.")
    if overwrite:
        return
    kind, found = _what_is_there(path)
    again = ("Save to another path, or pass overwrite=True to replace it; nothing was written.")
    if kind == "unreadable":
        raise CheckpointError(f"Cannot save the checkpoint to {path}: that file exists and this "
                              "user cannot read it (no permission) to check that it is a "
                              f"checkpoint, so saving could destroy it. {again}")
    if kind == "other":
        raise CheckpointError(f"Cannot save the checkpoint to {path}: that file exists and is "
                              f"not a lenet_book checkpoint ({found}), so saving would destroy "
                              f"it. {again}")
    if kind == "unsure":
        raise CheckpointError(f"Cannot save the checkpoint to {path}: that file exists, is cut "
                              "short (a few bytes of a zip archive) and too short to tell whether "
                              "save_checkpoint wrote it, so saving could destroy someone's file. "
                              "If it is a damaged checkpoint of yours, delete it or pass "
                              "overwrite=True to replace it; otherwise save to another path. "
                              "Nothing was written.")
    if kind != "checkpoint":
        return
    try:
        stored = [(str(name), tuple(int(d) for d in shape))
                  for name, shape in found["architecture"]]
        network = found.get("network")
        network = None if network is None else [[str(x) for x in entry] for entry in network]
        if network is not None:  # an older lenet_book's nn.DataParallel or compiled names
            _, stored, network = _uncompiled_record({}, *_inside_record({}, stored, network)[1:])
    except (KeyError, TypeError, ValueError):
        return  # a damaged checkpoint: load_checkpoint says to save again over it
    expected = architecture(_named_state(net))
    pruning = _pruning_words(stored, expected, saving=True)
    if not _same_tensors(stored, expected) and pruning:
        raise CheckpointError(f"Cannot save the checkpoint to {path}: {pruning[0]}; nothing was "
                              f"written.\nHow to fix it: {pruning[1]}.")
    if not _same_tensors(stored, expected):
        raise CheckpointError(f"Cannot save the checkpoint to {path}: that file holds the "
                              "checkpoint of a network of another architecture:\n"
                              + _differences(stored, expected) + f"\n{again}")
    if network is not None and _settings_unrecorded(network):
        raise CheckpointError(f"Cannot save the checkpoint to {path}: that file holds the "
                              "checkpoint of a scripted or traced network saved by an older "
                              "lenet_book, which did not record its layers' settings, so it "
                              f"cannot be checked that it is this network's. {again}")
    expected = network_description(net)
    if network is not None and not _same_computation(_comparable(network, expected), expected):
        raise CheckpointError(f"Cannot save the checkpoint to {path}: that file holds the "
                              "checkpoint of another network (same tensors, other layers):\n"
                              + _network_differences(_comparable(network, expected), expected)
                              + f"\n{again}")


def save_checkpoint(net: nn.Module, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Save ``net``'s weights to ``path`` atomically, with a checksum and its architecture.

    Returns the path as given (a symbolic link's: the file it points to is written, the link
    kept). The folder is created if needed. An existing checkpoint of the same
    network is replaced; a file that is not a lenet_book checkpoint, or the checkpoint of
    another network, is refused unless ``overwrite=True``. Raises CheckpointError when the file
    cannot be written (the message names the path and why), and when a weight is NaN or
    infinite (the training diverged): nothing is written then.
    """
    _check_network(net)
    net = _inside(net)  # a torch.compile'd network: its weights under their own names
    if _settings_unrecorded(network_description(net)):
        raise CheckpointError(
            "Cannot save a checkpoint of a traced network (torch.jit.trace) or of one loaded with "
            "torch.jit.load: it keeps its layers' types but not their settings (a Conv2d's "
            "padding, a Dropout's p), so the file could not be checked against the network it is "
            "loaded into; nothing was written. Save the plain network instead: the module you "
            "traced (net before torch.jit.trace, which shares its weights), or a plain copy, e.g. "
            "plain = models.lenet(); plain.load_state_dict(traced.state_dict()); "
            "save_checkpoint(plain, path). A network made by torch.jit.script is saved as it is.")
    check_layers_built(net, "be saved")
    if not net.state_dict():
        raise CheckpointError(f"Cannot save a checkpoint of {type(net).__name__}: the network has "
                              "no weights or buffers, so the file would hold nothing to load; "
                              "save the network you trained, e.g. models.lenet() after train.")
    check_flags(overwrite=overwrite)  # numpy's bool too, as the other flags
    _check_no_overlap(net, saving=True)
    given, path = path, _check_path(path, saving=True)  # a link: path is its target
    given = Path(os.fspath(given))  # returned as given, as a plain file's path is
    if any(tensor.is_meta for tensor in net.state_dict().values()):
        raise CheckpointError(f"Cannot save the checkpoint to {path}: the network is on the "
                              "'meta' device, whose tensors have shapes but no values, so there "
                              "is nothing to save; save the network you trained (on the CPU or "
                              "a GPU).")
    state_dict = {name: tensor.detach().to("cpu").clone()
                  for name, tensor in _named_state(net).items()}  # a compiled block: plain names
    _check_finite(state_dict, path)
    if not path.is_dir():
        _check_replacing(net, path, overwrite)
    record = {
        "format": FORMAT,
        "architecture": [(name, list(shape)) for name, shape in architecture(state_dict)],
        "sha256": state_dict_sha256(state_dict),
        "network": network_description(net),
        "state_dict": state_dict,
    }
    record["network_sha256"] = _description_sha256(record["network"])
    if _trained_towards(net) == "smallest":  # outputs read as energies (evaluate's argmin)
        record["trained_towards"] = "smallest"
    if path.is_dir():
        raise CheckpointError(f"Cannot save the checkpoint: {path} is a folder. "
                              "Give the path of a file, e.g. lenet.pt inside that folder.")
    problem = _broken_path_problem(path.parent)  # a file or a dangling link in the way, a loop
    if problem:
        raise CheckpointError(f"Cannot save the checkpoint to {path}: {problem} Save it in a "
                              "folder (a missing one is created; give another path), or fix "
                              "that part of the path; nothing was written.")
    interrupted = ("interrupted (Ctrl-C) while saving the checkpoint to "
                   f"{path}: nothing was written; the old file, if any, is unchanged")
    noted = {"interrupted": False, "writing": True}
    try:
        with _ctrl_c_noted(noted):
            path.parent.mkdir(parents=True, exist_ok=True)
            with replaced_atomically(path) as f:
                torch.save(record, _NotingWrites(f, noted))
                noted["writing"] = False  # from here a Ctrl-C waits until the file is whole
    except KeyboardInterrupt:
        raise KeyboardInterrupt(interrupted) from None
    except OSError as error:
        if noted["interrupted"]:
            raise KeyboardInterrupt(interrupted) from None
        sticky = (error.errno == errno.EPERM and path.parent.is_dir()
                  and path.parent.stat().st_mode & stat.S_ISVTX)
        kept = "so it is kept as it is" in str(error.strerror)  # replaced_atomically's refusal
        raise CheckpointError(
            f"Cannot save the checkpoint to {path}: {error.strerror or error} "
            f"({error.filename or path})"
            + (". Nothing was written." if kept else
               ". Its folder has the sticky bit (as /tmp does): only a file's owner may replace "
               "it there; save under another name, or ask the file's owner." if sticky else
               ". Check that its folder exists as a folder, is writable and has free space, or "
               "save it somewhere else.")) from None
    except RuntimeError as error:  # torch's writer reports a full disk as "[enforce fail at ...]"
        if noted["interrupted"]:  # and a KeyboardInterrupt in its write callback the same way
            raise KeyboardInterrupt(interrupted) from None
        first = (str(error).strip().splitlines() or ["no details"])[0]
        free = _free_bytes(path.parent)
        needed = sum(tensor.nbytes for tensor in state_dict.values())
        cause = noted.get("error")  # what the file's write raised, which torch's message drops
        if cause is not None and cause.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise CheckpointError(
                f"Cannot save the checkpoint to {path}: {_os_words(cause)} ({first}). Save it "
                "somewhere else; the old file, if any, is unchanged.") from None
        low = free is not None and free < needed + (1 << 20)  # a zip's own bytes too
        if cause is not None or low or re.search(r"No space left|ENOSPC|quota", str(error), re.I):
            quota = cause is not None and cause.errno == errno.EDQUOT
            raise CheckpointError(
                f"Cannot save the checkpoint to {path}: torch could not write the file ({first}); "
                + ("your disk quota is used up" if quota else "the disk is full")
                + (f" ({free / 1e6:,.1f} MB free, {needed / 1e6:,.1f} MB needed)" if low else "")
                + ". Free some space or save it somewhere else; the old file, if any, is "
                "unchanged.") from None
        raise CheckpointError(
            f"Cannot save the checkpoint to {path}: torch could not write the file ({first}), "
            "although the disk has room for it"
            + (f" ({free / 1e6:,.1f} MB free)" if free is not None else "")
            + ", so something else cut the write short (the file system, another program); "
            "try again, or save it somewhere else. The old file, if any, is unchanged.") from None
    _fsync_folder(path.parent)
    if noted["interrupted"]:  # a Ctrl-C once the file was written: it stops the program still
        raise KeyboardInterrupt(f"interrupted (Ctrl-C) after the checkpoint was written: {path} "
                                "holds the new checkpoint, whole")
    return given


@contextlib.contextmanager
def _ctrl_c_noted(noted: dict):
    """Note a Ctrl-C (SIGINT) while a checkpoint is written: torch's writer turns the
    KeyboardInterrupt raised in its write callback into a RuntimeError, which must not read as
    a full disk. While ``noted["writing"]`` a Ctrl-C stops the write at once; after it, it waits
    until the file is in place. Only where Ctrl-C raises KeyboardInterrupt (Python's own
    handler, in the main thread): a handler of one's own is left as it is."""

    def note(signum, frame):
        noted["interrupted"] = True
        if noted["writing"]:
            raise KeyboardInterrupt

    ours = (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler)
    if ours:
        signal.signal(signal.SIGINT, note)
    try:
        yield
    finally:
        if ours:
            signal.signal(signal.SIGINT, signal.default_int_handler)


class _NotingWrites:
    """The file torch.save writes to, noting the OSError a write raises (a full disk's
    ENOSPC): torch's writer reports any failed write as "[enforce fail at ...]" only."""

    def __init__(self, file, noted: dict):
        self._file, self._noted = file, noted

    def write(self, data):
        try:
            return self._file.write(data)
        except OSError as error:
            self._noted["error"] = error
            raise

    def flush(self):
        return self._file.flush()

    def __getattr__(self, name):  # the rest of the file's methods (tell, fileno, ...)
        return getattr(self._file, name)


def _free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _unused_path(path: Path, ending: str = "_checkpoint") -> str:
    """The path (repr'd) that a fix's code writes: beside ``path``, named after it
    ('<stem>_checkpoint.pt', then '_2', '_3', ...), and not there yet, so running the fix never
    replaces the file loaded or another of the learner's (save_checkpoint silently replaces a
    checkpoint of the same network)."""
    for number in range(1, 1000):
        name = f"{path.stem}{ending}{'' if number == 1 else f'_{number}'}.pt"
        if ending == "" and number == 1:
            name = path.name  # the name itself, where it is free
        candidate = path.with_name(name)
        if not os.path.lexists(candidate):
            break
    return repr(str(candidate))


def _zip_refusal(path: Path, contents: tuple[str, str]) -> CheckpointError:
    """load_checkpoint's refusal of a zip archive that torch.save did not write."""
    kind, name = contents
    if kind == "npz":
        return _refuse(path, "is a numpy .npz file (np.savez), numpy's format, not a file "
                             "written by torch.save; only the checkpoints save_checkpoint writes "
                             "are loaded here",
                       "give the .pt file that save_checkpoint wrote; if the .npz holds the "
                       "weights, copy them into the network: net.load_state_dict({name: "
                       "torch.from_numpy(array) for name, array in numpy.load(path).items()}), "
                       f"then save_checkpoint(net, {_unused_path(path)}) and load that file from "
                       "then on")
    if kind == "checkpoint":
        return _refuse(path, f"is a zip archive holding {name}, not a checkpoint itself (a "
                             "checkpoint zipped up, e.g. to send it)",
                       f"unzip it first (unzip {path}) and load the {name} it gives")
    return _refuse(path, f"is a zip archive holding {name}, not a file written by torch.save",
                   "give the .pt file that save_checkpoint wrote")


def _plain_state_dict(record) -> bool:
    """Whether ``record`` is a plain state dict, torch.save(net.state_dict(), path): names to
    tensors, with no format field."""
    return (isinstance(record, dict) and bool(record) and "format" not in record
            and all(isinstance(name, str) and isinstance(tensor, torch.Tensor)
                    for name, tensor in record.items()))


def _held_state_dicts(record) -> tuple[list, list]:
    """The keys of ``record`` that hold a plain state dict, and those that hold a lenet_book
    checkpoint: PyTorch's tutorial "general checkpoint" keeps the model's state dict under
    'model_state_dict', beside the optimizer's and the epoch; others wrap a whole file."""
    if isinstance(record, (list, tuple)):  # e.g. torch.save([ckpt], path): positions as keys
        record = dict(enumerate(record))
    if not isinstance(record, dict):
        return [], []
    plain = [key for key, value in record.items() if _plain_state_dict(value)]
    ours = [key for key, value in record.items() if isinstance(value, dict)
            and str(value.get("format", "")).startswith("lenet_book checkpoint ")]
    return plain, ours


def _container(record) -> str:
    """``a dict of 2 entries ('best', 'last')`` or ``a list of 2 items``."""
    if isinstance(record, dict):
        return f"a dict of {len(record)} entries ({_keys(record)})"
    return (f"{'a list' if isinstance(record, list) else 'a tuple'} of {len(record)} "
            + ("item" if len(record) == 1 else "items"))


def _where(record, keys: list) -> str:
    """Where ``keys`` are in ``record``: ``under 'best' and 'last'``, ``at [0] and [1]``."""
    shown = [repr(key) for key in keys] if isinstance(record, dict) else \
        [f"[{key}]" for key in keys]
    listed = (", ".join(shown[:-1]) + " and " + shown[-1]) if len(shown) > 1 else shown[0]
    return ("under " if isinstance(record, dict) else "at ") + listed


def _held_refusal(path: Path, record: dict, net: nn.Module) -> CheckpointError | None:
    """load_checkpoint's refusal of a dict (or list) holding state dicts or lenet_book
    checkpoints, naming the keys (positions) that hold them; None for any other file."""
    plain, ours = _held_state_dicts(record)
    new = _unused_path(path)
    if ours and (len(ours) > 1 or plain or not isinstance(record, dict)):
        return _held_checkpoints_refusal(path, record, plain, ours)
    if len(plain) > 1 and not ours and not isinstance(record, dict):
        return _refuse(path, f"is not a lenet_book checkpoint: it is {_container(record)}, "
                             f"holding {len(plain)} plain state dicts, {_where(record, plain)}, "
                             "which record neither a checksum nor the network's layers; only "
                             "files written by save_checkpoint are loaded",
                       "if one of them holds the weights of a network with exactly this one's "
                       f"layers, load it without the checks: net.load_state_dict(torch.load("
                       f"{str(path)!r}, weights_only=True)[{plain[0]!r}]) (or [{plain[1]!r}]), "
                       f"then save_checkpoint(net, {new}) makes a checkpoint of them, to "
                       "load from then on; otherwise " + RETRAIN)
    if len(plain) > 1 and not ours:  # e.g. a model's weights beside their moving average's
        return _refuse(path, f"is not a lenet_book checkpoint: it is a dict ({_keys(record)}) "
                             f"holding {len(plain)} plain state dicts, under "
                             f"{', '.join(map(repr, plain))}, which record neither a checksum "
                             "nor the network's layers; only files written by save_checkpoint "
                             "are loaded",
                       "if one of them holds the weights of a network with exactly this one's "
                       f"layers, load it without the checks: net.load_state_dict(torch.load("
                       f"{str(path)!r}, weights_only=True)[{plain[0]!r}]) (or another key), "
                       f"then save_checkpoint(net, {new}) makes a checkpoint of them, to "
                       "load from then on; otherwise " + RETRAIN)
    if len(plain) + len(ours) != 1:
        return None
    if plain:
        holder = (f"a dict ({_keys(record)})" if isinstance(record, dict) else
                  _container(record))
        return _plain_state_dict_refusal(path, record[plain[0]], net, key=plain[0],
                                         keys=holder, where=_where(record, plain))
    key = ours[0]
    return _refuse(path, f"is not a lenet_book checkpoint itself: it is a dict of {len(record)} "
                         f"entries ({_keys(record)}) that holds a lenet_book checkpoint under "
                         f"{key!r} (a checkpoint wrapped in a dict, e.g. to add a note); only "
                         "files written by save_checkpoint are loaded",
                   f"write the checkpoint inside as a file of its own, which load_checkpoint "
                   f"checks and loads: torch.save(torch.load({str(path)!r}, weights_only=True)"
                   f"[{key!r}], {new}), then load_checkpoint(net, {new}); keep notes "
                   "in a file beside it")


def _held_checkpoints_refusal(path: Path, record, plain: list, ours: list) -> CheckpointError:
    """load_checkpoint's refusal of a dict or list holding lenet_book checkpoints (two of them,
    e.g. {'best': ..., 'last': ...}; one in a list; one beside a plain state dict), naming where
    they are and the one line that writes one of them as a file of its own."""
    count = f"{len(ours)} lenet_book checkpoints" if len(ours) > 1 else "a lenet_book checkpoint"
    beside = "" if not plain else (
        f", and {'plain state dicts' if len(plain) > 1 else 'a plain state dict'} "
        f"{_where(record, plain)}, which records neither a checksum nor the network's layers")
    loaded = f"torch.load({str(path)!r}, weights_only=True)"
    new = _unused_path(path)
    others = (" (or " + ", ".join(f"[{key!r}]" for key in ours[1:4])
              + (", ..." if len(ours) > 4 else "") + ")") if len(ours) > 1 else ""
    return _refuse(path, f"is not a lenet_book checkpoint itself: it is {_container(record)} "
                         f"that holds {count} {_where(record, ours)}{beside}; only files written "
                         "by save_checkpoint are loaded",
                   f"write the checkpoint you want as a file of its own, which load_checkpoint "
                   f"checks and loads: torch.save({loaded}[{ours[0]!r}], {new})"
                   f"{others}, then load_checkpoint(net, {new})")


def _keys(record: dict, limit: int = 6) -> str:
    keys = [repr(key) for key in record]
    return ", ".join(keys[:limit]) + (", ..." if len(keys) > limit else "")


def _plain_state_dict_refusal(path: Path, record: dict, net: nn.Module, key=None,
                              keys: str = "", where: str = "") -> CheckpointError:
    """A plain state dict holds trained weights, but nothing to check them by: refused (chapter
    6's ReLU LeNet has the sigmoid LeNet's very tensors), naming the one-line load and the
    conversion into a checkpoint, with retraining left as the fallback. ``key``: the key (or
    list position) in the file that holds the state dict (a "general checkpoint"), ``keys`` what
    holds it ("a dict ('epoch', ...)") and ``where`` where ("under 'model_state_dict'"); None for
    a file that is the state dict itself."""
    stored = architecture(record)
    expected = architecture(_named_state(net))
    fits = _same_tensors(stored, expected)
    loaded = f"torch.load({str(path)!r}, weights_only=True)" + ("" if key is None else
                                                                f"[{key!r}]")
    new = _unused_path(path)  # e.g. a state dict saved as lenet.pt: never that file
    what = ("is not a lenet_book checkpoint: it is "
            + (f"a plain state dict of {len(record)} tensors (torch.save(net.state_dict(), path))"
               if key is None else
               f"{keys} holding a plain state dict of {len(record)} tensors {where}"
               + (" (as PyTorch's tutorial \"general checkpoint\" saves the model's state dict "
                  "beside the optimizer's)" if where.startswith("under") else ""))
            + ", which records neither a checksum nor the network's layers, so it cannot be "
            "checked against this network (chapter 6's ReLU LeNet has the same tensors as the "
            "text's sigmoid LeNet); only files written by save_checkpoint are loaded")
    words = None if fits else _prefix_words(stored, expected)
    if words:
        side, prefix, attribute = words
        what += f", and {_prefix_sentence(stored, expected, side, prefix)}"
        if side == "file":  # the names without the prefix are this network's
            loaded = (f"{{name.removeprefix({prefix!r}): tensor for name, tensor in "
                      f"{loaded}.items()}}")
        fits = True
    norms = None if fits or words else _state_batch_norm_words(stored, expected, net)
    if norms:  # the names are shifted by the batch norms: a list of them would not say so
        return _refuse(path, f"{what}, and {norms[0]}",
                       f"{norms[1]}, then load them into it without the checks: "
                       f"net.load_state_dict({loaded}), and save_checkpoint(net, {new}) "
                       f"makes a checkpoint of them, to load from then on; or {norms[2]}")
    if not fits and not words:
        what += (", and its tensors do not fit this network:\n"
                 + _differences(stored, expected))
    target = "net" if not words or words[0] == "file" else f"net{words[2]}"
    load = (f"{target}.load_state_dict({loaded}), then save_checkpoint({target}, {new}) "
            "makes a checkpoint of them, to load from then on")
    return _refuse(path, what, (
        "if it holds the weights of a network with exactly this one's layers, load them into it "
        f"without the checks: {load}; otherwise " if fits else
        f"load them into the network it was saved from (net, with its very layers): {load}; "
        "or ") + RETRAIN)


def _running_statistics(stored) -> list[str]:
    """The layers whose tensors (``[(name, shape), ...]``) hold running statistics,
    running_mean beside running_var, as batch normalisation keeps them."""
    names = {name for name, _ in stored}
    layers = []
    for name, _ in stored:
        layer, _, last = name.rpartition(".")
        if last == "running_mean" and name.removesuffix("mean") + "var" in names:
            layers.append(layer)
    return layers


def _state_batch_norm_words(stored, expected, net: nn.Module) -> tuple[str, str, str] | None:
    """``(what differs, the network to build, how to retrain)`` when the tensors of a plain
    state dict (``stored``) hold batch normalisation's running statistics and the network's
    (``expected``) none, or the other way round, else None: a state dict records no layers, but
    these names show batch normalisation."""
    in_file, in_net = _running_statistics(stored), _running_statistics(expected)
    if bool(in_file) == bool(in_net):
        return None
    layers = [name or "the network itself" for name in (in_file or in_net)]
    listed = ", ".join(layers[:-1]) + " and " + layers[-1] if len(layers) > 1 else layers[0]
    counted = f"layer{'s' if len(layers) > 1 else ''} {listed}"
    if in_file:
        what = (f"its tensors show that the file's network has batch normalisation (the "
                f"running_mean and running_var of {counted}), this one has none")
    else:
        what = (f"this network has batch normalisation (the running_mean and running_var of "
                f"{counted}), the file's has none (its tensors hold no running statistics)")
    norm = "with" if in_file else "without"
    built = _modern_lenet_built(nn.ReLU, nn.MaxPool2d, bool(in_file))  # its tensors alone count
    matches = built is not None and _same_tensors(stored, architecture(_named_state(built)))
    given = _modern_lenet_settings(network_description(net)) if matches else None
    unrecorded = "a state dict does not record the activation and pooling"
    if given is not None and given[2] != bool(in_file):
        build = (f"build this network {norm} batch normalisation, whose tensors are the file's: "
                 f"net = {_modern_lenet_words(given[0], given[1], bool(in_file))} ({unrecorded}: "
                 "use those it was trained with)")
    elif matches:
        build = ("build the network whose tensors the file's are: net = "
                 + ("models.modern_lenet(activation, pool, batch_norm=True)" if in_file else
                    "models.lenet() for the text's LeNet, or models.modern_lenet(activation, "
                    "pool)")
                 + f" with the activation and pooling it was trained with ({unrecorded})")
    else:
        build = (f"build the network it was saved from, {norm} batch normalisation, as net (the "
                 "same layers in the same places)")
    # only the book's networks with batch normalisation say which chapter trained them
    retrain = (_retrain([_module_entry(name, module) for name, module in built.named_modules()])
               if matches and in_file else
               "retrain the network and save it again with save_checkpoint")
    return what, build, retrain


def _prefix_words(stored, expected) -> tuple[str, str, str] | None:
    """``("file", "net.", ".net")`` when every tensor of the file (``stored``) is one of the
    network's (``expected``), with the same shape, under its name with one prefix ('net.'), as
    a model that holds the network as ``.net`` (d2l's Classifier) saves it; ``("network", ...)``
    the other way round; else None."""
    for side, longer, shorter in (("file", stored, expected), ("network", expected, stored)):
        prefix = _common_prefix(longer, shorter)
        if prefix:
            attribute = "".join(f"[{part}]" if part.isdigit() else f".{part}"
                                for part in prefix[:-1].split("."))
            return side, prefix, attribute
    return None


def _common_prefix(longer, shorter) -> str | None:
    """The prefix ending in '.' that turns the names of ``shorter`` into those of ``longer``,
    one for one and with the same shapes, else None."""
    if not longer or len(longer) != len(shorter):
        return None
    first, target = longer[0][0], dict(shorter)
    for end, character in enumerate(first):
        prefix = first[:end + 1]
        if character == "." and all(name.startswith(prefix) for name, _ in longer) \
                and {name[end + 1:]: shape for name, shape in longer} == target:
            return prefix
    return None


def _prefix_sentence(stored, expected, side: str, prefix: str) -> str:
    """'the file's tensors are this network's with the prefix 'net.' (net.0.weight for
    0.weight, ...)', or the other way round."""
    longer, shorter = (stored, expected) if side == "file" else (expected, stored)
    example = dict(shorter)
    name = next(name for name, _ in longer if name[len(prefix):] in example)
    if side == "file":
        return (f"the file's tensors are this network's with the prefix {prefix!r} ({name} for "
                f"{name[len(prefix):]}, and so on)")
    return (f"this network's tensors are the file's with the prefix {prefix!r} ({name} for "
            f"{name[len(prefix):]}, and so on)")


def _refuse(path: Path, what: str, fix: str = RETRAIN) -> CheckpointError:
    return CheckpointError(f"Checkpoint {path} {what}.\nHow to fix it: {fix}.")


def _same_tensors(stored: list[tuple[str, tuple[int, ...]]],
                  expected: list[tuple[str, tuple[int, ...]]]) -> bool:
    """The same names with the same shapes, in any order: load_state_dict copies by name, and
    prune.remove registers a weight again after its layer's bias."""
    return len(stored) == len(expected) and dict(stored) == dict(expected)


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


def _expression(module: str) -> str:
    """How a module's name reads in Python: ``"features.0"`` as ``net.features[0]``."""
    return "net" + "".join(f"[{part}]" if part.isdigit() else f".{part}"
                           for part in module.split(".") if part)


def _pruned(names: set[str], others: set[str]) -> list[tuple[str, str]]:
    """``(module, tensor)`` for every tensor that torch.nn.utils.prune holds as ``X_orig`` and
    ``X_mask`` in ``names`` where ``others`` holds it as ``X`` (a pruned network, a plain one)."""
    found = []
    for name in sorted(names):
        plain = name.removesuffix("_orig")
        if name.endswith("_orig") and plain + "_mask" in names and plain in others \
                and name not in others:
            module, _, tensor = plain.rpartition(".")
            found.append((module, tensor))
    return found


def _pruning_words(stored, expected, saving: bool = False) -> tuple[str, str] | None:
    """What differs and how to fix it when the names of a checkpoint (``stored``) and of the
    network (``expected``) differ because one of them is pruned (torch.nn.utils.prune), else
    None: retraining is never the fix."""
    in_file, in_net = {name for name, _ in stored}, {name for name, _ in expected}
    file_pruned, net_pruned = _pruned(in_file, in_net), _pruned(in_net, in_file)
    if not (file_pruned or net_pruned):
        return None
    pruned = file_pruned or net_pruned
    module, tensor = pruned[0]
    more = f" (and {len(pruned) - 1} more)" if len(pruned) > 1 else ""
    full = f"{module}.{tensor}" if module else tensor
    remove = f"prune.remove({_expression(module)}, {tensor!r})"
    identity = f"prune.identity({_expression(module)}, {tensor!r})"
    if saving and net_pruned:
        return (f"that file holds the checkpoint of a network that is not pruned, and this one "
                f"is (torch.nn.utils.prune): it holds {full}_orig and {full}_mask{more} where "
                f"the file holds {full}",
                f"call {remove} on each pruned layer before save_checkpoint (it makes the "
                "pruning permanent, and the weights are saved under their plain names), or pass "
                "overwrite=True to replace that file, or save to another path")
    if saving:
        return (f"that file holds the checkpoint of a pruned network (torch.nn.utils.prune): it "
                f"holds {full}_orig and {full}_mask{more} where this network has {full}",
                "pass overwrite=True to replace that file, or save to another path")
    if file_pruned:
        return (f"was saved from a pruned network (torch.nn.utils.prune): it holds {full}_orig "
                f"and {full}_mask{more} where this network has {full}",
                f"in the network you saved, call {remove} on each pruned layer before "
                "save_checkpoint (it makes the pruning permanent), and save it again; or prune "
                f"this network the same way before loading, e.g. {identity}")
    return (f"does not match this network, which is pruned (torch.nn.utils.prune): it holds "
            f"{full}_orig and {full}_mask{more} where the file has {full}",
            f"call {remove} on each pruned layer of this network before load_checkpoint, or load "
            "into a network that is not pruned")


def _layer(entry: list[str]) -> str:
    name, kind, settings = entry
    return f"{name or 'the network itself'}: {kind}({settings})"


def _computing(entry: list[str]) -> list[str]:
    """A module's description without ``inplace=...``, which saves memory but computes the
    same (ReLU(inplace=True) is ReLU()), and without the addresses of objects in its settings
    (``f=<function <lambda> at 0x7f...>``), which differ in every session."""
    name, kind, settings = entry
    settings = re.sub(r" at 0x[0-9a-fA-F]+", " at 0x...", settings)
    settings = re.sub(r"(?:^|,\s*|(?<=\())inplace=(?:True|False)(?=,|\)$|$)", "", settings)
    # settings of training alone, which leave the weights and eval mode's outputs as they are:
    # a dropout's rate (off in eval mode) and batch norm's momentum (for its running statistics)
    training_only = ("p" if "Dropout" in kind else "momentum" if "Norm" in kind else None)
    if training_only:
        settings = re.sub(rf"(?:^|,\s*){training_only}=[^,]*(?=,|$)", "", settings)
    return [name, kind, settings.removeprefix(", ").strip()]


def _same_computation(stored: list[list[str]], expected: list[list[str]]) -> bool:
    return [_computing(e) for e in stored] == [_computing(e) for e in expected]


def _network_differences(stored: list[list[str]], expected: list[list[str]],
                         limit: int = 5) -> str:
    """The first few modules that differ between two network descriptions, one per line."""
    lines = []
    for index in range(max(len(stored), len(expected))):
        here = stored[index] if index < len(stored) else None
        there = expected[index] if index < len(expected) else None
        if here is not None and there is not None and _computing(here) == _computing(there):
            continue
        if there is None:
            lines.append(f"{_layer(here)} is in the file but not in the network")
        elif here is None:
            lines.append(f"{_layer(there)} is in the network but not in the file")
        elif here[0] == there[0] == "":  # "the network the network itself" would read badly
            lines.append(f"the file has the network itself as {here[1]}({here[2]}), "
                         f"the network given is {there[1]}({there[2]})")
        else:
            lines.append(f"the file has {_layer(here)}, the network {_layer(there)}")
    more = len(lines) - limit
    return ("\n".join("  - " + line for line in lines[:limit])
            + (f"\n  ... and {more} more" if more > 0 else ""))


def _leaves(network: list[list[str]]) -> list[list[str]]:
    """The layers of a description that hold no other module (Conv2d, ReLU; not Sequential)."""
    names = [name for name, _, _ in network]
    return [entry for entry in network
            if not any(other.startswith(f"{entry[0]}." if entry[0] else "") and other != entry[0]
                       for other in names)]


def _without_bias(entry: list[str]) -> tuple[str, str]:
    """A layer as compared when looking for inserted ones: a layer before batch normalisation
    has no bias (models.modern_lenet), and is otherwise the same layer."""
    _, kind, settings = _computing(entry)
    settings = re.sub(r"(?:^|,\s*)bias=(?:True|False)", "", settings)
    return kind, settings.removeprefix(", ").strip()


def _inserted(longer: list[list[str]], shorter: list[list[str]]) -> list[int] | None:
    """The indices of ``longer``'s layers that are not in ``shorter`` when ``shorter`` is
    ``longer`` with those layers taken out (biases aside), else None."""
    if len(longer) <= len(shorter):
        return None
    keys, extra, at = [_without_bias(entry) for entry in shorter], [], 0
    for index, entry in enumerate(longer):
        if at < len(keys) and _without_bias(entry) == keys[at]:
            at += 1
        else:
            extra.append(index)
    return extra if at == len(keys) else None


def _short_layer(entry: list[str]) -> str:
    """``BatchNorm2d(6)``: a layer's type and its first setting."""
    return f"{entry[1]}({entry[2].split(',')[0]})"


def _setting_parts(settings: str) -> list[str]:
    """A layer's settings split at its top-level commas: ``"1, 6, kernel_size=(5, 5)"`` as
    ``["1", "6", "kernel_size=(5, 5)"]``."""
    parts, depth, start = [], 0, 0
    for index, character in enumerate(settings):
        depth += (character in "([{") - (character in ")]}")
        if character == "," and depth == 0:
            parts.append(settings[start:index])
            start = index + 1
    parts.append(settings[start:])
    return [part.strip() for part in parts if part.strip()]


def _in_out(parts: list[str]) -> tuple[str, list[str]] | None:
    """``("1 → 6", parts read)`` for a layer whose settings start with its inputs and outputs
    (a Conv2d's channels, a Linear's features), else None."""
    if len(parts) >= 2 and all(re.fullmatch(r"\d+", part) for part in parts[:2]):
        return f"{parts[0]} → {parts[1]}", parts[:2]
    named = [part for part in parts if part.startswith(("in_features=", "out_features="))]
    if len(named) == 2:
        sizes = dict(part.split("=", 1) for part in named)
        return f"{sizes['in_features']} → {sizes['out_features']}", named
    return None


def _differing_pair(mine: list[str], theirs: list[str]) -> tuple[str, str] | None:
    """Two layers as their types and the settings in which they differ, e.g. ``("Conv2d(1 →
    16)", "Conv2d(1 → 6)")`` (a layer's first setting alone may be the same in both); None when
    they would read the same (biases aside, as compared)."""
    if mine[1] != theirs[1]:
        return _short_layer(mine), _short_layer(theirs)
    parts = [_setting_parts(_without_bias(entry)[1]) for entry in (mine, theirs)]
    shown = []
    for own, other in (parts, parts[::-1]):
        head = _in_out(own)
        rest = [part for part in own if part not in (head[1] if head else [])]
        shown.append([head[0]] if head else [])
        shown[-1] += [part for part in rest if part not in other]
    words = [f"{mine[1]}({', '.join(settings)})" for settings in shown]
    if words[0] == words[1]:  # e.g. the same settings in another order
        words = [f"{entry[1]}({_without_bias(entry)[1]})" for entry in (mine, theirs)]
    return None if words[0] == words[1] else (words[0], words[1])


def _modern_lenet_built(activation, pool, batch_norm: bool) -> nn.Module | None:
    """models.modern_lenet(activation, pool, batch_norm) on the meta device (no memory, and no
    draw from the random generator), or None when it cannot build it."""
    from lenet_book import models  # here: models needs nothing of this module

    try:
        with torch.device("meta"):
            return models.modern_lenet(activation, pool, batch_norm)
    except Exception:  # not layer classes modern_lenet takes
        return None


def _modern_lenet_settings(network: list[list[str]]) -> tuple[type, type, bool] | None:
    """``(activation, pool, batch_norm)`` with which models.modern_lenet builds ``network``, or
    None when it is not such a network."""
    kinds = [kind for _, kind, _ in _leaves(network)]
    if "Flatten" not in kinds or kinds.index("Flatten") < 2:
        return None
    where = kinds.index("Flatten")
    activation, pool = (getattr(nn, kinds[where - 2], None), getattr(nn, kinds[where - 1], None))
    for batch_norm in (False, True):
        built = _modern_lenet_built(activation, pool, batch_norm)
        if built is None:
            return None
        built = [_module_entry(name, module) for name, module in built.named_modules()]
        if _same_computation(network, built):
            return activation, pool, batch_norm
    return None


def _modern_lenet_words(activation, pool, batch_norm: bool) -> str:
    """``models.modern_lenet(nn.ReLU, nn.MaxPool2d, batch_norm=True)``; ``models.lenet()`` for
    the text's LeNet."""
    if not batch_norm and (activation, pool) == (nn.Sigmoid, nn.AvgPool2d):
        return "models.lenet()"
    return (f"models.modern_lenet(nn.{activation.__name__}, nn.{pool.__name__}"
            + (", batch_norm=True)" if batch_norm else ")"))


def _modern_lenet_call(network: list[list[str]]) -> str | None:
    """How models.modern_lenet builds ``network``, e.g. ``models.modern_lenet(nn.ReLU,
    nn.MaxPool2d, batch_norm=True)``, or None when it is not such a network."""
    settings = _modern_lenet_settings(network)
    return None if settings is None else _modern_lenet_words(*settings)


def _paper_network(network: list[list[str]]) -> bool:
    """Whether ``network`` is the 1998 network, original.original_lenet() (its codes aside: the
    RBF layer's description does not show them)."""
    from lenet_book import original  # here: original needs nothing of this module

    if not any(kind == "RBF" for _, kind, _ in network):
        return False
    try:
        codes = original.hadamard_codes()  # deterministic: no draw from the random generator
        with torch.device("meta"):
            built = original.original_lenet(codes)
    except Exception:  # a damaged installation: the network is then not named
        return False
    return _same_computation(network, [_module_entry(name, module)
                                       for name, module in built.named_modules()])


def _builder_call(network: list[list[str]]) -> str | None:
    """How the book builds ``network``: ``models.lenet()``, ``models.modern_lenet(...)``, or
    ``original.original_lenet()`` for the 1998 network; None for a network of one's own."""
    call = _modern_lenet_call(network)
    if call is None and _paper_network(network):
        call = "original.original_lenet()"
    return call


def _retrain(network: list[list[str]]) -> str:
    """RETRAIN with the chapter that trains the file's network, where its layers show which:
    the text's LeNet (chapter 3), a models.modern_lenet (chapter 6); else without a chapter."""
    call = _modern_lenet_call(network)
    if call == "models.lenet()":
        return RETRAIN
    if call is not None:
        return ("retrain the network and save it again with save_checkpoint (in this book: "
                "chapter 6 trains such networks with recipes.build, "
                "notebooks/06_modern_lenet.ipynb)")
    return "retrain the network and save it again with save_checkpoint"


def _renaming_words(path, stored, expected, network, here) -> tuple[str, str] | None:
    """What happened and how to load it when the file holds this network's layers (the same
    types and settings, in the same order) and tensors (the same shapes, in the same order),
    under other names (a Sequential built with names of its own, or the layers renamed)."""
    def layers(description):
        return [_computing(entry)[1:] for entry in _leaves(description)]

    if (len(stored) != len(expected) or layers(network) != layers(here)
            or [shape for _, shape in stored] != [shape for _, shape in expected]):
        return None
    pairs = [(theirs, mine) for (theirs, _), (mine, _) in zip(stored, expected) if theirs != mine]
    example = ", ".join(f"{theirs} is {mine} here" for theirs, mine in pairs[:2])
    return (f"holds this network's layers (the same types and settings, in the same order) and "
            f"tensors of the same shapes, under other names ({example}"
            f"{', and so on' if len(pairs) > 2 else ''}): its layers were named otherwise when "
            "it was saved",
            "name the layers as the file does, or copy the weights in their order: "
            f"file = torch.load({str(path)!r}, weights_only=True)['state_dict']; "
            "net.load_state_dict(dict(zip(net.state_dict(), file.values()))), then "
            f"save_checkpoint(net, {_unused_path(path)}) to load it by name from then on")


def _trained_with(network: list[list[str]]) -> str:
    """"load it into the network it was trained with", naming it where the file's layers are
    those of models.lenet, models.modern_lenet or original.original_lenet."""
    call = _builder_call(network)
    return ("load it into the network it was trained with"
            + (f", {call} (as the file records)" if call else ""))


def _batch_norms(layers: list[list[str]]) -> list[int]:
    return [index for index, (_, kind, _) in enumerate(layers) if "BatchNorm" in kind]


def _insertion_words(network: list[list[str]], expected: list[list[str]]) -> tuple[str, str] | None:
    """What differs and how to fix it when one network is the other with some layers added
    (e.g. batch normalisation after each Conv2d and Linear, models.modern_lenet(...,
    batch_norm=True)), or has batch normalisation where the other has none (beside other layers
    that differ), else None: the tensors' names are then shifted, and a list of them does not
    say what differs."""
    mine, theirs = _leaves(network), _leaves(expected)
    file_extra, net_extra = _inserted(mine, theirs), _inserted(theirs, mine)
    changed = []  # (file's layer, network's layer) that differ beside the batch norms
    if not (file_extra or net_extra):
        file_extra = _batch_norms(mine) if not _batch_norms(theirs) else []
        net_extra = _batch_norms(theirs) if not _batch_norms(mine) else []
        if not (file_extra or net_extra):
            return None
        rest_mine = [e for i, e in enumerate(mine) if i not in file_extra]
        rest_theirs = [e for i, e in enumerate(theirs) if i not in net_extra]
        if len(rest_mine) != len(rest_theirs):
            return None
        changed = [(a, b) for a, b in zip(rest_mine, rest_theirs)
                   if _without_bias(a) != _without_bias(b)]
    longer, shorter, extra = (mine, theirs, file_extra) if file_extra else \
        (theirs, mine, net_extra)
    listed = [f"{_short_layer(longer[i])} "
              + (f"after layer {longer[i - 1][0]} ({longer[i - 1][1]})" if i else "at the start")
              for i in extra]
    listed = ", ".join(listed[:4]) + (f" and {len(listed) - 4} more" if len(listed) > 4 else "")
    norms = all("BatchNorm" in longer[i][1] for i in extra)
    none = not _batch_norms(shorter)
    has, other = ("the file's network", "this one") if file_extra else \
        ("this network", "the file's")
    if norms:
        what = (f"was saved from another network: {has} has batch normalisation ({listed}), "
                + (f"{other} has none" if none else f"which {other} lacks"))
    else:
        what = f"was saved from another network: {has} has layers that {other} lacks ({listed})"
    pairs = [(a[0], _differing_pair(a, b)) for a, b in changed]
    pairs = [f"{words[0]} as layer {name} where this one has {words[1]}"
             for name, words in pairs if words is not None]
    if pairs:
        what += ("; its other layers differ too: the file has " + ", ".join(pairs[:3])
                 + (f" and {len(pairs) - 3} more" if len(pairs) > 3 else ""))
    call = _modern_lenet_call(network)
    if call is not None and norms and none:
        recipe = "with 'batch_norm': True" if file_extra else "without 'batch_norm': True"
        fix = (f"build this network as the file's was, {call}, or with recipes.build on the "
               f"recipe it was saved from ({recipe})")
    else:
        fix = ("load it into a network built as the file's was, with the same layers in the same "
               "places")
    return what, f"{fix}; or {_retrain(network)}"


def _prefix_refusal(path: Path, stored, expected, side: str, prefix: str,
                    attribute: str) -> CheckpointError:
    """load_checkpoint's refusal of a checkpoint whose tensors are the network's under names
    with one prefix more (saved from a model that holds the network, e.g. d2l's Classifier as
    .net) or less (saved from a part of this network)."""
    sentence = _prefix_sentence(stored, expected, side, prefix)
    if side == "file":
        d2l = " (as d2l's Classifier holds its layers as .net)" if prefix == "net." else ""
        return _refuse(path, f"was saved from a model that holds this network as "
                             f"model{attribute}{d2l}: {sentence}",
                       f"load it into that model (built as it was saved; a model with lazy "
                       f"layers after one batch has run through it), or save the network "
                       f"itself, save_checkpoint(model{attribute}, {_unused_path(path)}), and "
                       "load that "
                       f"file into this network")
    return _refuse(path, f"was saved from a part of this network, the one it holds as "
                         f"model{attribute}: {sentence}",
                   f"load it into that part: load_checkpoint(model{attribute}, "
                   f"{str(path)!r}), where model is this network")


WRAPPERS = ("DataParallel", "DistributedDataParallel")


def _inside_record(state_dict, stored, network):
    """A checkpoint that an older lenet_book saved from nn.DataParallel (or
    DistributedDataParallel) holds the names of the wrapper ('module.0.weight'): the same
    record under the names of the network inside, as checkpoints are saved now."""
    if not (network and network[0][1] in WRAPPERS and network[0][0] == ""
            and all(name.startswith("module.") for name, _ in stored)):
        return state_dict, stored, network
    inside = [[name.removeprefix("module").removeprefix("."), kind, settings]
              for name, kind, settings in network[1:]
              if name == "module" or name.startswith("module.")]
    return ({name.removeprefix("module."): tensor for name, tensor in state_dict.items()},
            [(name.removeprefix("module."), shape) for name, shape in stored], inside)


def load_checkpoint(net: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load the weights saved by :func:`save_checkpoint` into ``net`` and return ``net``.

    Raises CheckpointError, before touching ``net``, when the file is missing, empty,
    truncated or damaged (its checksum differs), not a checkpoint of this format, or saved from
    a network of another architecture or with other layers (types or settings), e.g. the ReLU
    LeNet of chapter 6 into the text's sigmoid LeNet.
    """
    _check_network(net)
    given, net = net, _inside(net)  # a torch.compile'd network: the network inside
    check_layers_built(net, "be compared with the checkpoint")
    _check_not_inference(net)
    _check_no_overlap(net, saving=False)
    path = _check_path(path, saving=False)
    try:
        status = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        text = os.fspath(path)
        if text != text.strip() and os.path.lexists(text.strip()):  # e.g. a pasted newline
            raise _refuse(path, "does not exist: its path starts or ends with white space "
                                f"({text!r}), and {text.strip()!r} exists",
                          "write the path without the space or newline") from None
        raise _refuse(path, "does not exist (wrong path, or never saved)") from None
    except PermissionError:
        raise _refuse(path, "cannot be reached: no permission to enter its folder",
                      f"let your user enter {path.parent} and the folders above it "
                      "(e.g. chmod a+rx, as their owner), or copy the file elsewhere") from None
    except OSError as error:  # e.g. a symbolic link that points to itself (a loop)
        raise _refuse(path, f"cannot be reached: {error.strerror or error}",
                      "give the path of the checkpoint file itself") from None
    if stat.S_ISDIR(status.st_mode):
        raise _refuse(path, "is a folder, not a checkpoint file", "give the path of the .pt file")
    if not stat.S_ISREG(status.st_mode):  # torch.load would wait forever on a pipe
        raise _refuse(path, "is not a regular file (a device, a pipe or a socket), so it holds "
                            "no checkpoint", "give the path of the .pt file save_checkpoint wrote")
    try:
        if status.st_size == 0:
            raise _refuse(path, "is empty (0 bytes), or not a regular file: it holds no "
                                "checkpoint (a plain torch.save that was interrupted leaves such "
                                "a file, and files under /proc read as 0 bytes)",
                          "give the path of the .pt file save_checkpoint wrote, or " + RETRAIN)
        with open(path, "rb") as f:
            head = f.read(8)
        compression = _compression(head)
        if compression:
            raise _refuse(path, "cannot be read as a checkpoint: it is "
                                f"{compression[0]}-compressed",
                          f"decompress it first ({compression[1]} {path}) and load the file it "
                          "gives")
        if head[:4] == LEGACY_HEAD:
            raise _refuse(path, "was written by torch.save in its old format (before torch "
                                "1.6, or _use_new_zipfile_serialization=False), not by "
                                "save_checkpoint, so it has no checksum or network to check",
                          "if it holds a state dict: net.load_state_dict(torch.load(path, "
                          f"weights_only=True)), then save_checkpoint(net, {_unused_path(path)}) "
                          "and load that file from then on")
        if head[:4] != b"PK\x03\x04":
            raise _refuse(path, "cannot be read as a checkpoint: it is not a file written by "
                                "torch.save (a text file, a .js export, a data file?)",
                          "give the .pt file that save_checkpoint wrote")
        if _is_torchscript(path):
            raise _refuse(path, "is a TorchScript archive (torch.jit.save), not the weights "
                                "that save_checkpoint writes; only those are loaded here (as plain "
                                "weights, without running code from the file)",
                          "if you trust the file, copy its weights into the plain network: "
                          "net.load_state_dict(torch.jit.load(path).state_dict()), then "
                          f"save_checkpoint(net, {_unused_path(path)}) and load that file from "
                          "then on")
        contents = _zip_contents(path)
        if contents:
            raise _zip_refusal(path, contents)
        record = torch.load(path, map_location="cpu", weights_only=True)
    except CheckpointError:
        raise
    except PermissionError:
        raise _refuse(path, "cannot be read: no permission",
                      f"give your user read permission (e.g. chmod a+r {path}, as its owner), "
                      "or copy it elsewhere") from None
    except Exception as error:  # torch.load raises many kinds for a truncated or damaged zip
        details = str(error).splitlines()[0] if str(error) else "no details"
        if "Weights only load failed" in str(error):  # torch's advice there is unsafe
            details = "it holds Python objects other than tensors, which are never loaded"
            if (re.search(r"torch\.nn\.modules|GLOBAL .*(Sequential|Module)", str(error))
                    or _pickles_a_module(path)):
                held = _modules_under_keys(path)
                if held:  # torch.save({'model': net, 'epoch': 3}): the fix names the key
                    others = "".join(f" (or [{key!r}])" for key in held[1:3])
                    raise _refuse(path, "is a dict holding a whole pickled network under "
                                        f"{held[0]!r} (torch.save({{{held[0]!r}: net, ...}})), "
                                        "not the weights that save_checkpoint writes; "
                                        "unpickling it could run any code, so it is not loaded "
                                        "here",
                                  "if you made the file yourself, or trust where it came from "
                                  "(never for a file from elsewhere: it runs code as it loads), "
                                  "copy its weights into the network: net.load_state_dict("
                                  f"torch.load({str(path)!r}, weights_only=False)[{held[0]!r}]"
                                  f".state_dict()){others} (its class, e.g. your Net, must be "
                                  f"defined), then save_checkpoint(net, {_unused_path(path)}) "
                                  "and load that file from then on") from None
                raise _refuse(path, "holds a whole pickled network (torch.save(net)), not the "
                                    "weights that save_checkpoint writes; unpickling it could run "
                                    "any code, so it is not loaded here",
                              "if you trust the file, copy its weights into the network: "
                              "net.load_state_dict(torch.load(path, weights_only=False)"
                              ".state_dict()) (its class, e.g. your Net, must be defined), then "
                              f"save_checkpoint(net, {_unused_path(path)}) and load that file "
                              "from then on") from None
        if _pickle_is_whole(path):  # whole, but holding objects weights_only refuses
            raise _refuse(path, "is a torch file that save_checkpoint did not write: it holds "
                                "Python objects other than tensors (e.g. numpy arrays or dates "
                                "beside the weights), which are never loaded here, as they "
                                "could run code",
                          "if you trust the file, load it with torch.load(path, "
                          "weights_only=False), put its weights into the network with "
                          f"net.load_state_dict(...), then save_checkpoint(net, "
                          f"{_unused_path(path)})") from None
        raise _refuse(path, f"cannot be read as a checkpoint ({type(error).__name__}: "
                            f"{details}); "
                            "it is truncated, damaged, or not a file saved by "
                            "save_checkpoint") from None
    if isinstance(record, dict) and record.get("format") in OLD_FORMATS:
        raise _refuse(path, f"was written in an older format ({record['format']!r}) that does "
                            "not record the network's layers, so it cannot be checked against "
                            "the network it is loaded into; it is not loaded")
    if (isinstance(record, dict) and isinstance(record.get("format"), str)
            and record["format"].startswith("lenet_book checkpoint ")
            and record["format"] != FORMAT):
        version = re.fullmatch(r"lenet_book checkpoint ([0-9]+)", record["format"])
        if version is None or int(version[1]) <= int(FORMAT.rsplit(" ", 1)[1]):
            # only a version number above this one's is a newer lenet_book's
            raise _refuse(path, f"is damaged: its format field reads {record['format']!r}, which "
                                "no lenet_book writes (they write 'lenet_book checkpoint N', "
                                f"this one {FORMAT!r})")
        raise _refuse(path, f"was written by a newer lenet_book (format "
                            f"{record['format'].removeprefix('lenet_book checkpoint ')!r}; this "
                            f"one reads {FORMAT!r})",
                      "update lenet_book (git pull in the book's folder), or save the network "
                      "again with this version")
    written = record.get("format") if isinstance(record, dict) else None
    if (isinstance(record, dict) and len(_RECORD_KEYS & set(record)) >= 3
            and _entries_of_a_checkpoint(record)
            and not (isinstance(written, str) and written.startswith("lenet_book checkpoint "))):
        # a checkpoint's entries but for its format field: damaged, not a "general checkpoint"
        shown = ("missing" if "format" not in record else f"{written!r}"
                 if len(repr(written)) <= 60 else _a_kind(written))
        new = _unused_path(path)
        raise _refuse(path, f"is damaged: its 'format' field is {shown}, not a lenet_book format "
                            f"string (save_checkpoint writes {FORMAT!r}), though it holds a "
                            "checkpoint's other entries",
                      "if only that field was changed (e.g. by hand), write the checkpoint again "
                      "with it set back, and load_checkpoint checks the rest: record = torch.load("
                      f"{str(path)!r}, weights_only=True); record['format'] = {FORMAT!r}; "
                      f"torch.save(record, {new}); load_checkpoint(net, {new}); otherwise "
                      + RETRAIN)
    if _plain_state_dict(record):
        raise _plain_state_dict_refusal(path, record, net)
    held = None if isinstance(record, dict) and record.get("format") == FORMAT else \
        _held_refusal(path, record, net)
    if held is not None:  # e.g. PyTorch's "general checkpoint": {'model_state_dict': ..., ...}
        raise held
    if not (isinstance(record, dict) and record.get("format") == FORMAT):
        raise _refuse(path, "is not a lenet_book checkpoint (a torch.save of something else?); "
                            "only files written by save_checkpoint are loaded")
    try:
        state_dict = record["state_dict"]
        stored = [(str(name), tuple(int(d) for d in shape))
                  for name, shape in record["architecture"]]
        checksum = str(record["sha256"])
        network = [[str(name), str(kind), str(settings)]
                   for name, kind, settings in record["network"]]
        network_checksum = str(record["network_sha256"])
        if not all(isinstance(t, torch.Tensor) for t in state_dict.values()):
            raise TypeError("a state-dict entry is not a tensor")
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise _refuse(path, f"is damaged: its contents are incomplete ({error})") from None
    for name, tensor in state_dict.items():
        what = _without_values(tensor)
        if what:
            raise _refuse(path, f"is damaged: its weights hold {name}, {what}, which "
                                "save_checkpoint never writes (it saves dense tensors with "
                                "values)")
    if state_dict_sha256(state_dict) != checksum or architecture(state_dict) != stored:
        raise _refuse(path, "is damaged: the SHA-256 of its weights is not the one stored at "
                            "save time (bytes changed on disk or in a copy)")
    if _description_sha256(network) != network_checksum:
        raise _refuse(path, "is damaged: the SHA-256 of its network description is not the one "
                            "stored at save time (bytes changed on disk or in a copy)")
    state_dict, stored, network = _uncompiled_record(
        *_inside_record(state_dict, stored, network))
    expected = architecture(_named_state(net))  # a compiled block: under the plain names
    pruning = _pruning_words(stored, expected)
    if not _same_tensors(stored, expected) and pruning:
        raise _refuse(path, *pruning)
    prefix = None if _same_tensors(stored, expected) else _prefix_words(stored, expected)
    if prefix:  # the same tensors under names with one prefix more or less: never loaded as such
        raise _prefix_refusal(path, stored, expected, *prefix)
    if not _same_tensors(stored, expected):
        here = network_description(net)
        inserted = _insertion_words(_comparable(network, here), here)  # e.g. batch norm
        if inserted:
            raise _refuse(path, *inserted)
        renamed = _renaming_words(path, stored, expected, network, here)
        if renamed:
            raise _refuse(path, *renamed)
        raise _refuse(path, "was saved from a network of another architecture:\n"
                      + _differences(stored, expected),
                      f"{_trained_with(network)}, or {_retrain(network)}")
    if _settings_unrecorded(network):
        raise _refuse(path, "was saved from a scripted or traced network (torch.jit) by an older "
                            "lenet_book, which recorded its layers' types but not their settings "
                            "(a Conv2d's padding, a Dropout's p), so it cannot be checked against "
                            "this network; its weights are fine",
                      "if this is the network it was trained with, copy the weights without that "
                      "check: net.load_state_dict(torch.load(path, weights_only=True)"
                      f"['state_dict']), then save_checkpoint(net, {_unused_path(path)}) records "
                      "its layers, to load from then on")
    expected_network = network_description(net)
    if _settings_unrecorded(expected_network):
        raise _refuse(path, "cannot be checked against this network: it is traced "
                            "(torch.jit.trace) or loaded with torch.jit.load, which keeps its "
                            "layers' types but not their settings (a Conv2d's padding)",
                      "load it into the plain network first, then trace it: "
                      "net = load_checkpoint(models.lenet(), path); torch.jit.trace(net, images)")
    network = _comparable(network, expected_network)  # a scripted network's file, a plain net
    if not _same_computation(network, expected_network) \
            and isinstance(net, torch.jit.ScriptModule) \
            and not any(entry[1] == "RecursiveScriptModule" for entry in network):
        call = _builder_call(network)  # the file's network, which the scripted one may not be
        raise _refuse(path, "was saved from a plain network, and this one is scripted "
                            "(torch.jit.script), whose layers cannot be compared with it",
                      "load it into the plain network first, then script it: "
                      + (f"net = load_checkpoint({call}, path); torch.jit.script(net), where "
                         f"{call} is the network the file records" if call else
                         "net = load_checkpoint(plain, path); torch.jit.script(net), where plain "
                         "is the network it was saved from, built as it was (the file's layers "
                         "are not one of the book's networks)"))
    if not _same_computation(network, expected_network):
        raise _refuse(path, "was saved from another network: its tensors have the same names "
                            "and shapes, but its layers differ:\n"
                      + _network_differences(network, expected_network),
                      "load it into the network it was trained with (e.g. the same "
                      "recipes.build recipe or models.modern_lenet settings), or "
                      + _retrain(network))
    names = {_uncompiled_name(name): name for name in net.state_dict()}  # its own names again
    net.load_state_dict({names.get(name, name): tensor for name, tensor in state_dict.items()})
    trained = record.get("trained_towards")
    _remember_trained(net, trained if trained in ("largest", "smallest") else None)
    return given


# the arguments checked first (a path alone, a misspelt keyword), as the chapters' other functions
save_checkpoint = at_the_door(save_checkpoint)
load_checkpoint = at_the_door(load_checkpoint)
