"""Export a small, balanced subset of Fashion-MNIST for training in the page "LeNet in your browser".

    python tools/export_training_subset.py        # 500 training and 100 test images of every class

Writes book/browser/train_data.min.js: the first ``--train-per-class`` training images of every class
(from the first 50,000 training images: the last 10,000 are the book's validation split) and the
first ``--test-per-class`` test images of every class, as uint8 bytes (0 black, 255 white), train
images first, gzip-compressed and base64-encoded, with their labels and their positions in the
data set's files. The page decompresses them with the browser's DecompressionStream("gzip").
The gzip header carries no date or name, so a rerun writes the same bytes.
"""

from __future__ import annotations

import argparse
import base64
import errno
import gzip
import locale  # noqa: F401  (argparse's, see below)
import os
import shutil  # noqa: F401  (argparse's)
import stat
import sys
import textwrap  # noqa: F401  (argparse's)
from pathlib import Path
from typing import TYPE_CHECKING

# argparse loads locale, shutil and textwrap only when it first says something (torch loaded them
# with this tool before its imports were made lazy): loaded with the tool, so that a caller that
# imports it and then runs as another user, who may not read Python's own files, still hears why
# its --out is refused (tests/test_bad_input.py runs it so, as nobody)

if TYPE_CHECKING:
    import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # lenet_book from this checkout, installed or not

# torch and the modules that load it are imported where they are needed, so that the other tools
# that check their files with cannot_replace (make_pdf) do not load torch for it
from lenet_book.data import (  # noqa: E402
    FashionMNISTError,
    _broken_path_problem,
    _not_a_local_path,
    too_deep_root,
)

OUT = REPO / "book" / "browser" / "train_data.min.js"  # codespell skips *.min.js (base64, no prose)


def _format() -> str:
    """The format the page reads (lenet_book.export's IMAGES_FORMAT, gzipped)."""
    from lenet_book.export import IMAGES_FORMAT

    return "gzip of " + IMAGES_FORMAT.replace(", base64", "") + ", then base64; training images first"


def __getattr__(name: str):
    """FORMAT (_format()), made when it is first asked for: lenet_book.export loads torch."""
    if name == "FORMAT":
        return _format()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def first_per_class(labels: torch.Tensor, per_class: int) -> torch.Tensor:
    """Indices of the first ``per_class`` images of every class, taken one class after another
    (class 0, 1, ..., 9, then the second of each, ...)."""
    import torch

    from lenet_book.export import ExportError

    firsts = [torch.nonzero(labels == c).flatten()[:per_class] for c in range(10)]
    if min(len(f) for f in firsts) < per_class:
        raise ExportError(f"some class has fewer than {per_class} images")
    return torch.stack(firsts, dim=1).flatten()


def _not_ours(out: Path) -> str | None:
    """Why ``out`` may not be replaced (it exists and this export did not write it: the test
    write_js_data makes), or None; checked before the 70,000 images are loaded."""
    try:
        path = out.resolve() if out.is_symlink() else out  # as write_js_data does
        if not path.is_file() or not os.access(path, os.R_OK):
            return None  # new, a folder (write_js_data names it), unreadable (cannot_replace)
        from lenet_book.export import _written_by_this_export  # torch: only for a file to read

        ours = _written_by_this_export(path, "LENET_TRAIN_DATA")  # as write_js_data checks
    except (OSError, RuntimeError):  # unreadable (cannot_replace names it), a link that loops
        return None
    if not ours:
        return f"{path} exists and is not a window.LENET_TRAIN_DATA file that this export wrote"
    return None


def _special_file(out: Path, option: str = "--out") -> str | None:
    """Why nothing can be written at ``out`` because it is a device, pipe or socket (itself, or
    where its symbolic link leads), with what to do, or None; checked before the 70,000 images
    are loaded (write_js_data refuses it only once they are)."""
    try:
        mode = os.stat(out).st_mode
    except (OSError, ValueError):  # missing, a loop, a NUL: named elsewhere
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    target = os.path.realpath(out)
    leads = f" leads to {target}, which" if target != os.path.abspath(out) else ""
    return (f"{out}{leads} is a device, pipe or socket, not a regular file, so no export can be "
            f"written there: give the path of a file ending in .js with {option}")


def _loop(out: Path, option: str) -> str | None:
    """Why nothing can be written at ``out`` because a symbolic link loops there (``out`` itself,
    or a folder on the way to it, leads back to itself), with what to do, or None."""
    if not _loops(out):
        return None
    if os.path.islink(out) and not _loops(out.parent):
        return (f"{out} is a symbolic link to {os.readlink(out)} that loops (following it "
                "leads back to itself), so nothing can be written through it: remove the link "
                f"(rm {out}) or give another {option}")
    return (f"{out} cannot be reached: a symbolic link on the way to it loops (it leads back to "
            f"itself), so nothing can be written there: fix that link or give another {option}")


def _loops(path: Path) -> bool:
    """Whether following the symbolic links in ``path`` never ends (or takes too many links)."""
    try:
        os.stat(path)
    except OSError as error:
        return error.errno == errno.ELOOP
    except ValueError:  # a NUL in the name: write_js_data names it
        return False
    return False


def _in_the_way(out: Path, option: str) -> str | None:
    """Why no file can ever be written at ``out`` as given (a folder there, a file or a dangling
    symbolic link on the way to it, a name too long: what write_js_data and replaced_atomically
    refuse, or fail on, once the work is done), with what to do, or None."""
    try:
        if os.path.isdir(out):  # through a link too: a file never replaces a folder
            example = f", e.g. {option} {out / ('data' + out.suffix)}" if out.suffix else ""
            return (f"{out} is a folder, and a file cannot replace it: give the path of a file "
                    f"with {option}{example}")
        problem = _broken_path_problem(out.parent)  # lenet_book.data's rules, as the writers'
    except ValueError:  # a NUL in the name: write_js_data names it
        return None
    return None if problem is None else with_its_fix(problem, option)


def _too_long(path: Path) -> str | None:
    """Why no file can ever be at ``path`` because a name in it, or the whole path, is too long
    for the file system (lenet_book.data's words), or None. By length, not by os.stat alone: a
    missing folder on the way hides the name from it until the work is done, and pathlib's
    exists() and is_dir() raise on it in Python 3.11."""
    from lenet_book.data import _os_words

    words = _os_words(OSError(errno.ENAMETOOLONG, "File name too long"))
    try:
        whole = os.fsencode(os.path.abspath(path))
        above = next((p for p in Path(path).absolute().parents if os.path.isdir(p)), Path("/"))
    except (OSError, ValueError):  # a NUL, a current folder deleted: named where it is used
        return None
    if len(whole) >= 4096:  # Linux's PATH_MAX, with the final NUL
        return f"{words}; this one has {len(whole):,} bytes"
    try:
        most = os.pathconf(above, "PC_NAME_MAX")
    except (OSError, ValueError):
        most = 255
    for name in Path(path).parts:
        size = len(os.fsencode(name))
        if size > most:
            return f"{words}; the name {name[:20]}...{name[-8:]} has {size:,} bytes"
    try:
        os.lstat(path)
    except OSError as error:
        if error.errno == errno.ENAMETOOLONG:
            return words
    except ValueError:  # a NUL in the name: the writers name it
        pass
    return None


def with_its_fix(problem, option="--out"):
    """A problem that lenet_book.data's _broken_path_problem found, with what to do about it."""
    problem = problem.rstrip(".")
    if "is a file, not a folder" in problem:
        return (f"{problem}, so nothing can be written under it: move that file away, or give "
                f"another {option} (a missing folder is created)")
    if "is a symbolic link to" in problem:  # one that leads nowhere: its fix is said already
        return f"{problem}, or give another {option}"
    return f"{problem}: mend that part of the path, or give another {option}"


def cannot_replace(out: Path, option: str = "--out") -> str | None:
    """Why this user cannot check or replace ``out`` (written to a temporary file in its folder,
    then renamed over it), with what to do (``option``: the argument to give again), or None;
    checked before the 70,000 images are loaded (tools/export_weights.py checks its two files
    with it too, tools/make_pdf.py its PDFs before it builds one)."""
    problem = _too_long(out)
    if problem:  # write_js_data names it too, but only once the work is done
        return f"{problem}: give a shorter {option}"
    problem = _loop(out, option) or _in_the_way(out, option)
    if problem:
        return problem
    try:
        path = out.resolve() if out.is_symlink() else out  # as write_js_data does
        if path.is_file():
            mode = path.stat().st_mode
            if not os.access(path, os.R_OK):
                return (f"{path} exists and this user cannot read it to check that this export "
                        f"wrote it: give another {option}, or ask the file's owner")
            if not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
                return (f"{path} is read-only (mode {stat.S_IMODE(mode):o}), so it is kept as it "
                        f"is: make it writable (chmod u+w {path}) or give another {option}")
            if not os.access(path, os.W_OK):
                return (f"{path} cannot be written by this user (no permission): give another "
                        f"{option}, or ask the file's owner")
        folder = path.parent
        while not folder.is_dir() and folder != folder.parent:  # a missing folder is created
            folder = folder.parent
    except PermissionError as error:  # a folder on the way that cannot be entered
        return f"{out} cannot be reached ({error.strerror}): give another {option}"
    except (OSError, RuntimeError):  # a link that loops on the way: write_js_data names it
        return None
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"this user may not write in the folder {folder}: give another {option}"
    return None


def subset(data_root, train_per_class: int, test_per_class: int) -> dict:
    """The data the page ships: indices, labels and the gzip+base64 pixels."""
    import torch

    from lenet_book import fast
    from lenet_book.train import VALIDATION_SIZE

    (train_images, train_labels), (test_images, test_labels) = fast.load_fashion_mnist_tensors(data_root, "cpu")
    usable = len(train_labels) - VALIDATION_SIZE  # never the validation split
    train_idx = first_per_class(train_labels[:usable], train_per_class)
    test_idx = first_per_class(test_labels, test_per_class)
    pixels = torch.cat([train_images[train_idx], test_images[test_idx]]).contiguous().numpy().tobytes()
    packed = gzip.compress(pixels, compresslevel=9, mtime=0)
    return {"format": _format(),
            "source": "Fashion-MNIST: train-images-idx3-ubyte (first 50,000) and t10k-images-idx3-ubyte",
            "train": {"count": len(train_idx), "indices": train_idx.tolist(),
                      "labels": train_labels[train_idx].tolist()},
            "test": {"count": len(test_idx), "indices": test_idx.tolist(),
                     "labels": test_labels[test_idx].tolist()},
            "bytes": len(pixels), "gzip_bytes": len(packed),
            "gzip_base64": base64.b64encode(packed).decode("ascii")}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(REPO / "data"), help="data root (default: data; make data)")
    parser.add_argument("--train-per-class", type=int, default=500, help="training images per class (500)")
    parser.add_argument("--test-per-class", type=int, default=100, help="test images per class (100)")
    parser.add_argument("--out", default=OUT, help=f"file to write (default: {OUT.relative_to(REPO)})")
    args = parser.parse_args(argv)
    if not str(args.out):  # Path("") is the current folder, which an unset variable never means
        parser.error(f"--out is empty (''): give the file to write, e.g. --out "
                     f"{OUT.relative_to(REPO)} (leave --out out for it); nothing was written")
    problem = _not_a_local_path(args.out)
    if problem:  # on the text as given: Path() makes 'https://x' a folder 'https:/x', written at the end
        parser.error(f"--out {args.out} {problem}; nothing was written")
    args.out = Path(args.out)
    if not (1 <= args.train_per_class <= 4000 and 1 <= args.test_per_class <= 1000):
        parser.error("--train-per-class must be 1 to 4,000 and --test-per-class 1 to 1,000")
    if str(args.out).startswith("~"):  # before a folder called '~' is created here
        parser.error(f"--out {args.out} starts with '~', which Python does not expand to the home "
                     "folder (it would name a folder called '~' here); write the path in full, "
                     f"e.g. --out {os.path.expanduser(args.out)}; nothing was written")
    if args.out.name.lower() == ".js":  # a hidden file with no suffix, not a name ending in .js
        parser.error(f"--out {args.out}: the file name .js has no name before the .js; give one, "
                     f"e.g. --out {args.out.with_name('train_data.min.js')}; nothing was written")
    if args.out.suffix != ".js" and os.path.isdir(args.out):  # export_weights' --out is a folder
        parser.error(f"--out {args.out} is a folder: give a file in it, e.g. --out "
                     f"{args.out / OUT.name}; nothing was written")
    if args.out.suffix != ".js":  # as write_js_data says, but before the images are loaded
        parser.error(f"--out {args.out}: the page includes JavaScript files, so the path must end "
                     "in .js; nothing was written")
    if any(part != part.strip() for part in args.out.parts):  # as write_js_data, before loading
        parser.error(f"--out {str(args.out)!r} has a name that starts or ends with white space (a "
                     "space or a pasted newline), which a file or folder name almost never "
                     "means; write it without; nothing was written")
    problem = _special_file(args.out)
    if problem:
        parser.error(f"--out {args.out}: {problem}; nothing was written")
    problem = _not_ours(args.out)
    if problem:
        parser.error(f"--out {args.out}: {problem}: nothing was written, so nothing of it is "
                     "lost; give another --out, or move that file away")
    problem = cannot_replace(args.out)
    if problem:
        parser.error(f"--out {args.out}: {problem}; nothing was written")
    try:  # an empty root or a file: lenet_book's message, not a traceback
        parent = too_deep_root(args.data)
    except (TypeError, ValueError) as error:
        parser.error(f"--data {args.data!r}: {error}")
    if parent is not None:  # named with this tool's option (lenet_book's message says --root)
        parser.error(f"--data {args.data} is too deep: it is the FashionMNIST folder (or its raw "
                     f"folder) itself; give the folder that holds FashionMNIST/: --data {parent}")
    try:
        data = subset(args.data, args.train_per_class, args.test_per_class)
    except FashionMNISTError as error:
        sys.exit(f"nothing exported: {error}")
    from lenet_book.export import write_js_data

    size = write_js_data(args.out, "LENET_TRAIN_DATA", data,
                         "Fashion-MNIST images to train LeNet-5 in lenet_in_browser.md; "
                         "written by tools/export_training_subset.py")
    print(f"{args.out}: {data['train']['count']:,} training and {data['test']['count']:,} test images, "
          f"{data['bytes']:,} bytes as uint8, {data['gzip_bytes']:,} gzipped, {size:,} bytes as a file")


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # lenet_book.export loads torch: imported once it is needed
        from lenet_book.export import ExportError

        if not isinstance(error, ExportError):
            raise
        sys.exit(f"nothing exported: {error}")
