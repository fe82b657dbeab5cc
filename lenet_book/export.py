"""LeNet-5's weights and some test images as small JavaScript files for the page
"LeNet in your browser".

The page must work when opened from disk (file://), where a browser refuses fetch() of local
files, so the data travels as JavaScript: one statement ``window.NAME = {...};`` whose object is
plain JSON. Numbers are packed, not written as text: weights as float32 little-endian and images
as uint8, both base64-encoded. Nothing is pickled, and the browser runs no code from the data.

``tools/export_weights.py`` writes the files; ``tests/test_browser_page.py`` reads them back
with :func:`read_js_data` to compare the page's JavaScript with PyTorch.
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import stat
import sys
from pathlib import Path

import numpy as np
import torch

from lenet_book._grammar import _a_kind
from lenet_book.checks import check_flags
from lenet_book.data import (
    _another_users_file,
    _broken_path_problem,
    _os_words,
    _relative_path_problem,
    replaced_atomically,
)
from lenet_book.results import _shown

__all__ = ["IMAGES_FORMAT", "WEIGHTS_FORMAT", "ExportError", "decode_images", "decode_state_dict",
           "encode_images", "encode_state_dict", "read_js_data", "write_js_data"]

WEIGHTS_FORMAT = "float32 little-endian, base64, one string per tensor, in state-dict order"
IMAGES_FORMAT = "uint8 N×28×28 row by row, base64; 0 is black (background), 255 white (object)"


class ExportError(ValueError):
    """A data file for the browser page is missing or not what the page expects."""


def _check_finite(name: str, values: np.ndarray, fix: str) -> None:
    bad = int(values.size - np.isfinite(values).sum())
    if bad:
        raise ExportError(f"tensor {name} holds {bad} number(s) that are NaN or infinite "
                          f"(as float32), with which the page would show NaN; {fix}")


def encode_state_dict(state_dict: dict[str, torch.Tensor]) -> list[dict]:
    """Every tensor as ``{name, shape, base64}`` (float32 little-endian), in state-dict order."""
    if not isinstance(state_dict, dict):
        raise ExportError(f"encode_state_dict takes a state dict, e.g. net.state_dict(), "
                          f"not {_a_kind(state_dict)}")
    if not state_dict:
        raise ExportError("encode_state_dict: the state dict is empty, so there is nothing to "
                          "export; give the trained network's, e.g. net.state_dict()")
    tensors = []
    for name, tensor in state_dict.items():
        if not isinstance(name, str):
            raise ExportError(f"tensor names must be strings, as net.state_dict() gives them "
                              f"(e.g. '0.weight'), got {name!r} ({_a_kind(name)})")
        if isinstance(tensor, torch.Tensor) and tensor.is_nested:  # it has no one shape
            raise ExportError(f"tensor {name} is a nested tensor (tensors of different sizes in "
                              "one), and the page takes one tensor of one shape per name; export "
                              "the state dict of a network of ordinary weights, e.g. "
                              "net.state_dict()")
        if isinstance(tensor, torch.Tensor) and tensor.is_quantized:
            raise ExportError(f"tensor {name} is quantized ({tensor.dtype}), and the page takes "
                              "float32 weights; export the float network's state dict, or "
                              "convert each tensor with tensor.dequantize()")
        if isinstance(tensor, torch.Tensor) and not tensor.is_floating_point() \
                and not tensor.is_complex() and tensor.dtype != torch.bool and not torch.equal(
                    tensor.to(torch.float64).to(torch.float32).to(tensor.dtype), tensor):
            raise ExportError(f"tensor {name}: its whole numbers ({tensor.dtype}) do not all fit "
                              "float32 exactly (beyond 2**24), and the page reads float32; "
                              "export a state dict of weights, e.g. net.state_dict()")
        if isinstance(tensor, torch.Tensor) and tensor.dtype == torch.bool:
            raise ExportError(f"tensor {name}: a bool tensor (a mask) would come back as float32 "
                              "0s and 1s, and the page reads weights; export the state dict of a "
                              "network's weights, e.g. net.state_dict()")
        if isinstance(tensor, torch.Tensor) and tensor.layout != torch.strided:
            raise ExportError(f"tensor {name} is a sparse tensor ({tensor.layout}); convert it "
                              "with tensor.to_dense(), or export net.state_dict() as it is")
        if isinstance(tensor, torch.Tensor) and tensor.is_meta:
            raise ExportError(f"tensor {name} is on the meta device, which holds shapes but no "
                              "numbers; export a network whose weights were made on the CPU or a "
                              "GPU, or load its checkpoint first (load_checkpoint)")
        if not isinstance(tensor, torch.Tensor) or tensor.is_complex():
            raise ExportError(f"tensor {name}: the page takes real float32 numbers, got "
                              + (f"{tensor.dtype}" if isinstance(tensor, torch.Tensor)
                                 else f"{_a_kind(tensor)}")
                              + "; export the state dict of a network of real weights")
        values = tensor.detach().to("cpu", torch.float32).contiguous().numpy().astype("<f4")
        _check_finite(name, values, "export the weights of a network that trained without "
                                    "diverging (lenet_book.train stops one that diverges)")
        tensors.append({"name": name, "shape": list(tensor.shape),
                        "base64": base64.b64encode(values.tobytes()).decode("ascii")})
    return tensors


def _check_entry(number: int, entry) -> None:
    """One entry of the weights file: ``{name, shape, base64}`` as encode_state_dict writes it."""
    keys = ("name", "shape", "base64")
    if not isinstance(entry, dict):
        raise ExportError(f"tensor entry {number} is {_a_kind(entry)}, not a dict with "
                          f"the keys {', '.join(keys)}; rerun tools/export_weights.py")
    label = f"tensor {entry['name']}" if isinstance(entry.get("name"), str) else (
        f"tensor entry {number}")
    missing = [key for key in keys if key not in entry]
    if missing:
        raise ExportError(f"{label} has no {', '.join(map(repr, missing))}: each entry holds "
                          f"{', '.join(keys)}, as encode_state_dict writes it; rerun "
                          "tools/export_weights.py")
    if not isinstance(entry["name"], str):
        raise ExportError(f"{label}: its name must be a string such as '0.weight', got "
                          f"{entry['name']!r}")
    shape = entry["shape"]
    if not (isinstance(shape, (list, tuple)) and all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
        raise ExportError(f"{label}: its shape must be a list of whole numbers such as [6, 1, 5, "
                          f"5], got {shape!r}; rerun tools/export_weights.py")
    if not isinstance(entry["base64"], str):
        raise ExportError(f"{label}: its numbers must be base64 text, got "
                          f"{_a_kind(entry['base64'])}; rerun tools/export_weights.py")


def decode_state_dict(tensors: list[dict]) -> dict[str, torch.Tensor]:
    """The inverse of :func:`encode_state_dict`: a state dict of float32 tensors."""
    if not isinstance(tensors, (list, tuple)):
        raise ExportError(f"decode_state_dict takes the list of tensors that encode_state_dict "
                          f"gives (the weights file's \"tensors\"), not {_a_kind(tensors)}")
    state_dict = {}
    for number, entry in enumerate(tensors):
        _check_entry(number, entry)
        if entry["name"] in state_dict:
            raise ExportError(f"tensor {entry['name']} is in the file twice (entries "
                              f"{list(state_dict).index(entry['name'])} and {number}), so one "
                              "would silently replace the other: the file is damaged; rerun "
                              "tools/export_weights.py")
        try:
            raw = base64.b64decode(entry["base64"], validate=True)
        except (ValueError, TypeError) as error:  # binascii.Error is a ValueError
            raise ExportError(f"tensor {entry['name']}: its numbers are not base64 text as "
                              f"encode_state_dict writes it ({error}); rerun "
                              "tools/export_weights.py") from None
        if len(raw) % 4:
            raise ExportError(f"tensor {entry['name']}: {len(raw)} bytes is not a whole number of "
                              "float32 numbers (4 bytes each); rerun tools/export_weights.py")
        values = np.frombuffer(raw, dtype="<f4")
        expected = math.prod(entry["shape"])  # Python ints: np.prod wraps past 2**63
        if values.size != expected:
            raise ExportError(f"tensor {entry['name']}: {values.size} numbers "
                              f"for shape {entry['shape']} ({expected} expected); "
                              "rerun tools/export_weights.py")
        shape = entry["shape"]  # numpy refuses more than 64 dimensions, or sizes whose bytes
        if len(shape) > 64 or math.prod(max(d, 1) for d in shape) * 4 > sys.maxsize:  # (0 as 1)
            raise ExportError(f"tensor {entry['name']}: its shape {_shown(shape)} cannot be an "
                              "array (more than 64 dimensions, or more numbers than memory can "
                              "address): the file is damaged; rerun tools/export_weights.py")
        _check_finite(entry["name"], values, "rerun tools/export_weights.py")
        state_dict[entry["name"]] = torch.from_numpy(
            values.astype(np.float32).reshape(entry["shape"]))
    return state_dict


def encode_images(images: torch.Tensor) -> str:
    """uint8 N×28×28 images as one base64 string."""
    if not isinstance(images, torch.Tensor):
        raise ExportError(f"expected uint8 N×28×28 images as a torch tensor, "
                          f"got {_a_kind(images)}")
    if images.dtype != torch.uint8 or images.dim() != 3 or tuple(images.shape[1:]) != (28, 28):
        raise ExportError(f"expected uint8 N×28×28 images, "
                          f"got {images.dtype} {tuple(images.shape)}")
    if images.layout != torch.strided:
        raise ExportError(f"expected uint8 N×28×28 images as a dense tensor, got a sparse one "
                          f"({images.layout}); convert it with images.to_dense()")
    if images.is_meta:
        raise ExportError("the images are on the meta device, which holds shapes but no "
                          "pixels; export images loaded from the data set "
                          "(fast.load_fashion_mnist_tensors)")
    return base64.b64encode(images.cpu().contiguous().numpy().tobytes()).decode("ascii")


def decode_images(text: str) -> torch.Tensor:
    """The inverse of :func:`encode_images`."""
    try:
        raw = np.frombuffer(base64.b64decode(text, validate=True), dtype=np.uint8)
    except (ValueError, TypeError) as error:  # binascii.Error is a ValueError
        raise ExportError(f"the images are not base64 text as encode_images writes it ({error}); "
                          "rerun tools/export_weights.py") from None
    if raw.size % 784:
        raise ExportError(f"{raw.size} bytes of images is not a whole number of 28×28 images")
    return torch.from_numpy(raw.copy()).reshape(-1, 28, 28)


JS_SAFE_INT = 2**53  # beyond it a browser's numbers (float64) no longer hold every whole number


def _check_int(name: str, digits: str, read: Path | None = None) -> int:
    # more than 16 digits is beyond 2**53 (JSON has no leading zeros), and int() of more than
    # 4,300 digits raises Python's own error
    value = int(digits) if len(digits.lstrip("-")) <= 16 else JS_SAFE_INT + 1
    if abs(value) > JS_SAFE_INT and read is not None:
        raise ExportError(f"{read}: window.{name} holds the whole number {digits[:20]}"
                          f"{'...' if len(digits) > 20 else ''} ({len(digits.lstrip('-'))} "
                          "digits), beyond 2**53, which the page's numbers (float64) cannot hold "
                          "exactly and write_js_data never writes; the file was edited by hand "
                          "or written by another program: rerun tools/export_weights.py")
    if abs(value) > JS_SAFE_INT:
        raise ExportError(f"the data for {name} hold the whole number {digits[:20]}"
                          f"{'...' if len(digits) > 20 else ''} ({len(digits.lstrip('-'))} "
                          "digits), beyond 2**53, which the page's numbers (float64) cannot "
                          "hold exactly (or at all: it would read Infinity); nothing was "
                          "written: export smaller numbers, or the number as a string")
    return value


def _check_path_text(path, done: str) -> None:
    """A path without a NUL character, and a relative one only while the current folder exists."""
    if isinstance(path, (str, os.PathLike)) and "\0" in str(os.fspath(path)):
        raise ExportError(f"path {os.fspath(path)!r} holds a NUL character (\\0), which no file "
                          f"name may hold; {done}: write the path without it")
    gone = (isinstance(path, (str, os.PathLike)) and isinstance(os.fspath(path), str)
            and os.fspath(path) and _relative_path_problem(path))
    if gone:
        raise ExportError(f"path {os.fspath(path)} is relative, and {gone} (or give the full "
                          f"path); {done}")


def _check_keys(name: str, data, where: str = "") -> None:
    """Every key in ``data`` (and in the dicts inside it) is a string: JSON writes the key 1 as
    "1", so {1: "a", "1": "b"} would hold "1" twice, and the page would keep only the last."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key == "__proto__":  # in the page's object literal it sets the prototype instead
                raise ExportError(
                    f"the data for {name} hold the key '__proto__'"
                    f"{' (in ' + where + ')' if where else ''}, which the page would not read as "
                    "a key: in a JavaScript object literal it sets the object's prototype, so "
                    "its value would be lost there while Python reads it back; nothing was "
                    "written: rename that key")
            if not isinstance(key, str):
                written = json.dumps({key: 0})[1:].rsplit(":", 1)[0]
                raise ExportError(
                    f"the data for {name} hold the key {key!r} ({type(key).__name__}"
                    f"{', in ' + where if where else ''}), and JSON keys are strings: it would be "
                    f"written as {written}, and a key {written} beside it would be lost; nothing "
                    "was written: use strings as keys")
            _check_keys(name, value, f"{where}[{key!r}]")
    elif isinstance(data, (list, tuple)):
        for index, value in enumerate(data):
            _check_keys(name, value, f"{where}[{index}]")


def _written_by_this_export(path: Path, name: str) -> bool:
    """Whether ``path`` starts as write_js_data writes a file for ``name``: one comment line of
    ASCII, whatever its length, then ``window.<name> = ``."""
    start = f"window.{name} = ".encode("ascii")
    with open(path, "rb") as f:
        if f.read(3) != b"// ":
            return False
        while True:  # to the end of the comment, read in blocks (a binary file may have no \n)
            block = f.read(1 << 16)
            end = block.find(b"\n")
            comment = block if end < 0 else block[:end]
            if not block or not comment.isascii() or b"\r" in comment:
                return False
            if end >= 0:
                f.seek(f.tell() - len(block) + end + 1)
                return f.read(len(start)) == start


def write_js_data(path: Path, name: str, data: dict, comment: str, overwrite: bool = False) -> int:
    """Write ``window.<name> = <JSON>;`` after a comment line; returns the file's size in bytes.

    ``path`` ends in ``.js``. An existing file is replaced only when it is this kind of file for
    the same ``name`` (a rerun of the same export), or with ``overwrite=True``; a symbolic link is
    written through, to the file it points to."""
    check_flags(overwrite=overwrite)  # overwrite="no" would count as True
    if not isinstance(name, str) or not re.fullmatch(r"[A-Z_][A-Z0-9_]*", name):
        raise ExportError(f"{name!r}: use an upper-case JavaScript name such as LENET_WEIGHTS")
    if not isinstance(data, dict):  # read_js_data gives back a dict, and the page reads fields
        raise ExportError(f"the data for {name} must be a dict of named fields, such as "
                          "{'format': ..., 'tensors': encode_state_dict(...)}, got "
                          f"{_a_kind(data)}; nothing was written: put it in a dict, e.g. "
                          "{'values': data}")
    try:  # NaN and infinity are not JSON: the page would read them as NaN
        data_json = json.dumps(data, separators=(",", ":"), allow_nan=False)
    except TypeError as error:
        raise ExportError(f"the data for {name} hold something JSON cannot carry ({error}); "
                          "convert tensors first: encode_state_dict(...) for weights, "
                          ".tolist() for numbers") from None
    except ValueError as error:
        if "Circular reference" in str(error):
            raise ExportError(f"the data for {name} refer to themselves (a circular reference: "
                              "a dict or list inside itself), which JSON cannot carry; nothing "
                              "was written: export a copy without that reference") from None
        if "integer string conversion" in str(error):  # Python's limit of 4,300 digits
            raise ExportError(f"the data for {name} hold a whole number of thousands of digits, "
                              "beyond 2**53, which the page's numbers (float64) cannot hold (it "
                              "would read Infinity); nothing was written: export smaller numbers, "
                              "or the number as a string") from None
        raise ExportError(f"the data for {name} hold a NaN or infinite number, which JSON cannot "
                          "carry and the page would show as NaN; nothing was written: export "
                          "finite numbers only (e.g. the weights of a training that did not "
                          "diverge)") from None
    except RecursionError:
        raise ExportError(f"the data for {name} are nested too deep for JSON (dicts or lists "
                          "inside each other hundreds of levels deep); nothing was written: "
                          "export flatter data") from None
    if not isinstance(comment, str) or not comment.isascii() or "\n" in comment \
            or "\r" in comment:
        raise ExportError(f"the comment must be one line of ASCII text (the file is ASCII, and a "
                          f"second line would run as JavaScript in the page), got {comment!r}; "
                          "nothing was written: write it on one line, without accents")
    json.loads(data_json, parse_int=lambda digits: _check_int(name, digits))
    _check_keys(name, data)
    text = f"// {comment}\nwindow.{name} = {data_json};\n"
    if not isinstance(path, (str, os.PathLike)) or isinstance(os.fspath(path), bytes):
        raise TypeError(f"write_js_data: path must be a str or pathlib.Path such as "
                        f"'lenet_weights.js', got {path!r} ({_a_kind(path)}); nothing "
                        "was written")
    _check_path_text(path, "nothing was written")
    path = Path(path)
    if any(part != part.strip() for part in path.parts):
        raise ExportError(f"path {str(path)!r} has a name that starts or ends with white space (a "
                          "space or a pasted newline), which a file or folder name almost never "
                          "means; write it without; nothing was written")
    if str(path).startswith("~"):
        raise ExportError(f"path {path} starts with '~', which Python does not expand to the home "
                          "folder (it would name a folder called '~' here); nothing was written: "
                          "write Path.home() / ... or os.path.expanduser(path)")
    problem = _broken_path_problem(path.parent)  # a file or a dangling link in the way, a loop
    if problem:
        raise ExportError(f"Cannot write {path}: {problem} Give a folder to write into (a missing "
                          "one is created), or fix that part of the path; nothing was written")
    if path.suffix != ".js":
        raise ExportError(f"path {path}: the page includes JavaScript files, so the path must end "
                          "in .js; nothing was written")
    try:
        os.lstat(path)
        if path.is_symlink():
            path = path.resolve(strict=True)  # replace the file it points to, keep the link
    except (FileNotFoundError, NotADirectoryError):
        pass  # a new file (or a link to one that does not exist yet: written where it points)
    except (OSError, RuntimeError) as error:  # a link that points to itself, a name too long
        words = (_os_words(error) if isinstance(error, OSError)
                 else "it is a symbolic link that points to itself (a loop)")
        raise ExportError(f"Cannot write {path}: {words}; give another path, nothing was "
                          "written") from None
    if path.is_symlink():
        path = path.resolve()  # a dangling link: the file it names is created
    if path.is_dir():  # even with overwrite=True: a folder is never replaced by a file
        raise ExportError(f"path {path} is a folder; give a file name ending in .js, e.g. "
                          f"{path / 'data.js'}; nothing was written")
    problem = _another_users_file(path)  # even with overwrite=True, as open(path, "w") would be
    if problem:
        raise ExportError(f"Cannot write {path}: {problem}; nothing was written: give another "
                          "path, or ask its owner")
    if path.exists() and not overwrite:
        if not path.is_file():  # a folder is refused above
            raise ExportError(f"path {path} is a device, pipe or socket, not a regular file; give "
                              "a file name ending in .js; nothing was written")
        try:
            ours = _written_by_this_export(path, name)
        except PermissionError:
            raise ExportError(f"path {path} exists and this user cannot read it (no permission) "
                              "to check that this export wrote it; nothing was written: give "
                              "another path, or ask its owner") from None
        except OSError as error:
            raise ExportError(f"path {path} exists and cannot be read ({_os_words(error)}) to "
                              "check that this export wrote it; nothing was written: give another "
                              "path") from None
        if not ours:
            raise ExportError(f"path {path} exists and is not a window.{name} file that this "
                              "export wrote: nothing was written, so nothing of it is lost; "
                              "give another path, or overwrite=True to replace it")
    try:  # renamed over the old file only when whole: the page never reads half a file
        path.parent.mkdir(parents=True, exist_ok=True)
        with replaced_atomically(path, "w", encoding="ascii") as f:
            f.write(text)
    except OSError as error:
        if "so it is kept as it is" in str(error.strerror):  # replaced_atomically's refusal
            raise ExportError(f"Cannot write {path}: {error.strerror}; nothing was written"
                              ) from None
        raise ExportError(f"Cannot write {path}: {error.strerror or error}; check that its folder "
                          "is writable and has free space (the old file, if any, is unchanged)"
                          ) from None
    return path.stat().st_size


def read_js_data(path: Path, name: str) -> dict:
    """The JSON object that :func:`write_js_data` wrote to ``path`` as ``window.<name>``."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Z_][A-Z0-9_]*", name):
        raise ExportError(f"{name!r}: give the upper-case JavaScript name the data were written "
                          "under, such as LENET_WEIGHTS")
    if not isinstance(path, (str, os.PathLike)) or isinstance(os.fspath(path), bytes):
        raise TypeError(f"read_js_data: path must be a str or pathlib.Path such as "
                        f"'lenet_weights.js', got {path!r} ({_a_kind(path)})")
    if not os.fspath(path):
        raise ExportError("read_js_data: path is empty (''): give the .js file's path, such as "
                          "'lenet_weights.js'")
    _check_path_text(path, "nothing was read")
    path = Path(path)
    try:
        status = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise ExportError(f"{path} is missing: run `python tools/export_weights.py` to write "
                          "it") from None
    except OSError as error:  # a loop, a name too long, a folder that cannot be entered
        raise ExportError(f"{path} cannot be read: {_os_words(error)}") from None
    if stat.S_ISDIR(status.st_mode):
        raise ExportError(f"{path} is a folder, not a .js file: give the file's path, e.g. "
                          f"{path / 'lenet_weights.js'}")
    if not stat.S_ISREG(status.st_mode):
        raise ExportError(f"{path} is not a regular file (a device, pipe or socket), so it holds "
                          "no export: give the .js file that tools/export_weights.py wrote")
    try:
        # a byte-order mark before the comment: a browser skips it, and so does this
        text = path.read_bytes().removeprefix(b"\xef\xbb\xbf").decode("ascii")
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    except PermissionError:
        raise ExportError(f"{path} cannot be read: no permission for this user (as its owner: "
                          f"chmod a+r {path})") from None
    except UnicodeDecodeError:
        raise ExportError(f"{path} is not ASCII text, as tools/export_weights.py writes it (it "
                          "was edited by hand, or is another file): rerun "
                          "tools/export_weights.py") from None
    matches = list(re.finditer(rf"^window\.{name} = (.*);[ \t]*$", text, re.M))
    if not matches:
        line = re.search(rf"^[ \t]*window\.{name}[ \t]*=.*$", text, re.M)
        difference = line and _one_line_difference(line[0], name)
        if difference:
            raise ExportError(f"{path} sets window.{name} on one line, but {difference}, where "
                              f"write_js_data writes window.{name} = {{...}}; and nothing more on "
                              "that line: it was edited by hand or written by another program; "
                              "rerun tools/export_weights.py")
        if line:  # over several lines
            raise ExportError(f"{path} sets window.{name}, but not on one line as write_js_data "
                              f"writes it (window.{name} = {{...}}; on a single line): it was "
                              "edited by hand or written by another program; rerun "
                              "tools/export_weights.py")
        raise ExportError(f"{path} does not define window.{name}: rerun tools/export_weights.py")
    if len(matches) > 1 or len(re.findall(rf"^[ \t]*window\.{name}[ \t]*=", text, re.M)) > 1:
        raise ExportError(f"{path} sets window.{name} more than once; the page would use the last "
                          "one and Python the first, so the file was edited by hand or written "
                          "twice: rerun tools/export_weights.py")
    try:
        data = json.loads(matches[0].group(1), parse_constant=_no_constant(path, name),
                          parse_float=_finite_float(path, name),
                          parse_int=lambda digits: _check_int(name, digits, read=path))
    except json.JSONDecodeError as error:
        raise ExportError(f"{path}: window.{name} is not valid JSON ({error}); the file is "
                          "damaged or was edited by hand: rerun tools/export_weights.py") from None
    except RecursionError:  # brackets nested thousands deep, which write_js_data never writes
        raise ExportError(f"{path}: window.{name} is nested too deep to read (lists or objects "
                          "inside each other thousands of levels deep); the file is damaged or "
                          "was edited by hand: rerun tools/export_weights.py") from None
    if not isinstance(data, dict):
        raise ExportError(f"{path}: window.{name} is {_a_kind(data)} in JSON, not the "
                          "object (dict) that write_js_data writes; the file was edited by hand "
                          "or written by another program: rerun tools/export_weights.py")
    return data


def _one_line_difference(line: str, name: str) -> str | None:
    """How a line that sets ``window.<name>`` to a whole JSON value differs from what
    write_js_data writes (``window.<name> = <JSON>;``), in words; None when the value does not
    end on that line (it runs over several)."""
    start = re.match(rf"([ \t]*)window\.{name}([ \t]*)=([ \t]*)", line)
    try:
        _, end = json.JSONDecoder().raw_decode(line, start.end())
    except (ValueError, RecursionError):
        return None
    rest = line[end:].rstrip(" \t")
    if not rest:
        return "the final ';' is missing"
    if not rest.startswith(";"):
        return f"the value is followed by {_shown_text(rest.lstrip())} instead of ';'"
    if rest[1:].strip():
        return f"the ';' is followed by {_shown_text(rest[1:].strip())}"
    if start[1]:
        return "the line is indented"
    return "the '=' is not written ' = ' (one space on each side)"


def _shown_text(text: str) -> str:
    return repr(text[:40] + ("..." if len(text) > 40 else ""))


def _finite_float(path: Path, name: str):
    """json.loads's parse_float for read_js_data: a number too large for float64 (1e400), which
    a browser reads as Infinity, is refused as Infinity itself is."""
    def parse(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise ExportError(f"{path}: window.{name} holds the number {text[:20]}"
                              f"{'...' if len(text) > 20 else ''}, beyond the largest float64, "
                              "which the page would read as Infinity and write_js_data never "
                              "writes; the file was edited by hand or written by another "
                              "program: rerun tools/export_weights.py")
        return value
    return parse


def _no_constant(path: Path, name: str):
    """json.loads's parse_constant for read_js_data: NaN and Infinity, which are not JSON and
    which write_js_data never writes, are refused."""
    def refuse(constant: str):
        raise ExportError(f"{path}: window.{name} holds {constant}, which is not JSON and which "
                          "write_js_data never writes (the page would compute with it); the file "
                          "was edited by hand or written by another program: rerun "
                          "tools/export_weights.py")
    return refuse
