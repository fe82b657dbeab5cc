"""Fashion-MNIST on disk: prepare it offline, check it, and explain what is wrong.

torchvision (and so ``d2l.load_data_fashion_mnist``) reads the four uncompressed IDX files
from ``<root>/FashionMNIST/raw/``. When one of them is missing it tries to download all of
them, and when one is damaged it fails deep inside its parser. The functions here check the
files first and stop with a message that names the file, says what was expected and how to
fix it. The same goes for the folders: a path that is a file, or that this user may not read
or write, is named with what is wrong and the fix, never left to a traceback.

torchvision also prefers an old cache, ``<root>/FashionMNIST/processed/{training,test}.pt``,
to the raw files, unchecked. ``check`` reports such a cache as a problem and changes nothing;
``prepare`` and :func:`ensure_fashion_mnist` (which the chapters and the fast path call before
loading) delete it with a message, so the data a chapter trains on are the verified raw files.
The cache only duplicates the raw files, so nothing is lost. Only the pair of torch files that
torchvision would load is deleted: a lone file, or one that is not a torch file, is not its
cache and is never deleted.

``prepare`` unpacks each file into a uniquely named temporary file, verifies it, and renames
it into place (atomic): a killed run leaves no half-written data file, and several runs at
once on the same folder are safe.

Command line (relative paths start from the current folder; the defaults suit the repository
root)::

    python -m lenet_book.data prepare              # copy from a local copy, verify, unpack
    python -m lenet_book.data prepare --source DIR # DIR holds the four *-ubyte.gz files
                                                   # (or the unpacked files of another raw/)
    python -m lenet_book.data check                # verify data/FashionMNIST/raw
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import errno
import glob
import gzip
import hashlib
import os
import re
import shlex
import stat
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from lenet_book._grammar import _a_kind

try:
    import fcntl
except ImportError:  # Windows: no flock; leftovers of killed runs are then removed by age
    fcntl = None

__all__ = [
    "FILES",
    "FashionMNISTError",
    "check_fashion_mnist",
    "ensure_fashion_mnist",
    "find_local_copy",
    "prepare_fashion_mnist",
    "remove_stale_cache",
    "too_deep_root",
]


@dataclass(frozen=True)
class IdxFile:
    """One of the four files as Zalando published them."""

    name: str  # uncompressed file name, as torchvision expects it
    magic: int  # 0x801: uint8 vector (labels), 0x803: uint8 3-D array (images)
    shape: tuple[int, ...]
    md5: str  # of the uncompressed file
    gz_md5: str  # of the published .gz file (the sum torchvision checks)

    @property
    def size(self) -> int:
        header = 4 + 4 * len(self.shape)
        count = 1
        for dim in self.shape:
            count *= dim
        return header + count


# Sums from Zalando's README and torchvision; PROVENANCE.md in ../shared lists them too.
FILES = (
    IdxFile("train-images-idx3-ubyte", 0x803, (60000, 28, 28),
            "f4a8712d7a061bf5bd6d2ca38dc4d50a", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
    IdxFile("train-labels-idx1-ubyte", 0x801, (60000,),
            "9018921c3c673c538a1fc5bad174d6f9", "25c81989df183df01b3e8a0aad5dffbe"),
    IdxFile("t10k-images-idx3-ubyte", 0x803, (10000, 28, 28),
            "8181f5470baa50b63fa0f6fddb340f0a", "bef4ecab320f06d8554ea6380940ec79"),
    IdxFile("t10k-labels-idx1-ubyte", 0x801, (10000,),
            "15d484375f8d13e6eb1aabb0c3f46965", "bb300cfdad3c16e7a12a480ee83cd310"),
)

# Where a local copy may be, in the order they are tried.
LOCAL_COPIES = (
    Path("../shared/data/FashionMNIST/raw"),  # beside a checkout of this book
    Path("/usr/share/datasets/fashion-mnist"),  # Debian: apt-get install dataset-fashion-mnist
)

HOW_TO_FIX = ("How to fix it (in a terminal opened in {cwd}; relative paths start from there):\n"
              "  * from a local copy (checked against the published MD5 sums):\n"
              "      python -m lenet_book.data prepare --source DIR --root {root}"
              "   (DIR holds the four *-ubyte.gz files, or the unpacked files of another\n"
              "       checkout's data/FashionMNIST/raw)\n"
              "  * on Debian or Ubuntu:  apt-get install dataset-fashion-mnist\n"
              "      then: python -m lenet_book.data prepare"
              " --source /usr/share/datasets/fashion-mnist --root {root}\n"
              "  * online: {online}")

# The online fix. check and prepare never download: on the command line it names what does, and
# deletes only a folder that exists (the download runs only when the raw folder holds no file).
ONLINE_IN_PYTHON = "delete {raw} and run again; torchvision downloads the files."
ONLINE_ON_THE_COMMAND_LINE = ("{delete}python -c \"from lenet_book.data import "
                              "ensure_fashion_mnist; ensure_fashion_mnist('{root}')\" downloads "
                              "them with torchvision (check and prepare never download).")

# torchvision's FashionMNIST loads these two files, when both exist, instead of the raw files:
# a cache that older torchvision versions wrote, and which nothing here verifies.
PROCESSED_CACHE = ("training.pt", "test.pt")

# prepare unpacks into hidden, uniquely named temporary files beside the targets. One that a
# killed run left behind is never read as data; prepare deletes those older than this.
STALE_PARTIAL_SECONDS = 3600


class FashionMNISTError(RuntimeError):
    """The Fashion-MNIST files are missing or not the published ones, or cannot be read
    or written."""


def umask_mode() -> int:
    """The mode a new file gets from ``open`` under the process's umask (e.g. 0o644 for 022).

    ``tempfile.mkstemp`` creates files readable by their owner only (0o600); files that the book
    renames into place from one get this mode instead, as a plain ``open`` would give them.
    """
    try:  # Linux shows the umask without changing it
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: read it by setting it, and put it back at once
    os.umask(mask)
    return 0o666 & ~mask


def _root(root: str | os.PathLike) -> Path:
    """The data root as a Path; anything but a str or a path is refused, naming what to give."""
    if isinstance(root, bytes) or not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"the data root must be a folder path (a str or pathlib.Path) such as "
                        f"'../data' in a chapter or 'data' in the repository, got {root!r} "
                        f"({_a_kind(root)})")
    if not os.fspath(root):
        raise ValueError("the data root is empty (''): give a folder such as 'data' (in the "
                         "repository) or '../data' (in a chapter)")
    if "\0" in os.fspath(root):
        raise ValueError(f"the data root {os.fspath(root)!r} holds a NUL character ('\\0'), which "
                         "no file or folder name may hold (a pasted binary string?); give a "
                         "folder such as 'data' or '../data'")
    _check_no_control_characters(os.fspath(root))
    if not os.path.isabs(root):
        _current_folder()  # a relative root needs it
    remote = _not_a_local_path(root, data_root=True)
    if remote:
        raise ValueError(f"the data root {os.fspath(root)} {remote}, such as 'data' (in the "
                         "repository) or '../data' (in a chapter); nothing was created")
    return Path(root)


DRIVE = "/content/drive"  # where Colab mounts Google Drive


def _not_a_local_path(path: str | os.PathLike, *, data_root: bool = False) -> str | None:
    """Why ``path`` cannot be written as a local path, to follow it, ending where the caller's
    example of a local path goes ('...; or give a local path'), else None: a URL (it would become
    a folder 'https:' here), or a path on Google Drive while Drive is not mounted (folders on the
    runtime's own disk, lost with it, where Colab then refuses to mount Drive). The tools call it
    for their output options too. ``data_root``: a URL is told that ensure_fashion_mnist
    downloads the files itself (ending '...; give a local folder')."""
    text = os.fspath(path)
    scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", text)
    if scheme and scheme[1].lower() == "file":  # a file URL names a local path: that path
        return (f"is a file URL, not a path: it would be taken as a folder named 'file:' here; "
                f"give the path itself, {text[len('file://'):] or '/'}")
    if scheme and data_root:  # the data are downloaded by torchvision, never from a given URL
        return (f"is a URL ({scheme[1]}://...), not a local folder: it would be taken as a folder "
                f"named '{scheme[1]}:' here. ensure_fashion_mnist downloads the files into a "
                "local folder itself (from torchvision's mirrors); give a local folder")
    if scheme:
        return (f"is a URL ({scheme[1]}://...), not a local path: it would be taken as a folder "
                f"named '{scheme[1]}:' here. Copy files to or from that storage with its own tool "
                "(e.g. gsutil cp, aws s3 cp); give a local path")
    try:
        full = os.path.abspath(text)
    except FileNotFoundError:  # a relative path, the current folder gone: said elsewhere
        return None
    if (full == DRIVE or full.startswith(DRIVE + "/")) and not _drive_mounted():
        # an existing folder is not enough: Drive is a FUSE mount (an unmount or a mkdir leaves
        # the folder, on the runtime's own disk)
        where = (f"{DRIVE} does not exist" if not os.path.lexists(DRIVE)
                 else f"{DRIVE} links to {os.path.realpath(DRIVE)}, where nothing is mounted"
                 if os.path.islink(DRIVE)
                 else f"{DRIVE} is a plain folder on this runtime's disk, nothing is mounted there")
        return (f"is on Google Drive, but Drive is not mounted ({where}): a path "
                "there is on this runtime's own disk, lost when the runtime ends (and Colab then "
                "refuses to mount Drive there). Mount Drive first (on Colab: from google.colab "
                f"import drive; drive.mount('{DRIVE}')), or give a local path")
    return None


def _drive_mounted() -> bool:
    """Whether something is mounted on :data:`DRIVE` (Colab's Drive is a FUSE mount there), or
    on the folder it links to (a local runtime's link to a mounted Drive)."""
    return os.path.ismount(os.path.realpath(DRIVE))


def _check_no_control_characters(text: str) -> None:
    """A data root holding a newline, a tab or another control character inside its name
    ('nl\nroot', from a pasted path): a slip, which would be created as a folder of that name.
    White space at either end is :func:`_check_no_stray_space`'s to name."""
    inside = [character for character in text.strip()
              if ord(character) < 32 or ord(character) == 127]
    if inside:
        raise ValueError(f"the data root {text!r} holds a control character "
                         f"({', '.join(dict.fromkeys(map(repr, inside)))}: a newline or a tab, "
                         "from a pasted path?), which a folder name almost never means; give a "
                         "folder such as 'data' or '../data', written without it")


def _check_no_tilde(root: str | os.PathLike) -> None:
    """A path that starts with '~' and does not exist: Python does not expand '~' to the home
    folder (nor does a shell after '=', as in --root=~/data), so it would name a folder called
    '~' here, and prepare or a download would create it."""
    text = os.fspath(root) if isinstance(root, (str, os.PathLike)) else None
    if isinstance(text, str) and text.startswith("~") and not os.path.lexists(text):
        raise FashionMNISTError(f"The data folder {text} starts with '~', which Python does not "
                                "expand to the home folder (it names a folder called '~' here, "
                                "which does not exist); write the path in full, or "
                                "os.path.expanduser(root). On the command line, a shell expands "
                                f"'~' after a space but not after '=': --root {text}.")


def _check_root_folder(root: Path) -> None:
    """A data root that exists must be a folder (one that does not exist yet may be created)."""
    if os.path.islink(root) and not os.path.isdir(root):
        try:
            os.stat(root)
        except FileNotFoundError:
            raise ValueError(f"the data root {root} is a symbolic link to {os.readlink(root)}, "
                             "which does not exist: create that folder, or give root as the "
                             "folder that holds FashionMNIST/raw/") from None
        except OSError as error:
            raise ValueError(f"the data root {root} cannot be used: {_os_words(error)}; give "
                             "root as the folder that holds FashionMNIST/raw/") from None
    if os.path.lexists(root) and not root.is_dir():
        raise ValueError(f"the data root {root} is a file, not a folder: give root as the folder "
                         "that holds FashionMNIST/raw/, such as 'data' (in the repository) or "
                         "'../data' (in a chapter)")


def _check_no_stray_space(root: str | os.PathLike) -> None:
    """A data root that does not exist and starts or ends with white space ('data '): most often
    a slip in typing or pasting the path, which would otherwise read as missing files, or be
    created as a folder named with the space."""
    text = os.fspath(root)
    if isinstance(text, str) and text != text.strip() and not os.path.lexists(text):
        there = os.path.isdir(text.strip())
        raise FashionMNISTError(
            f"The data folder {text!r} starts or ends with white space, and no such folder "
            f"exists" + (f"; {text.strip()!r} does: write the path without the space."
                         if there else ": write the path without the space."))


WRITE_MODES = ("w", "wb", "wt")


def _check_replaced(path, mode, encoding) -> Path:
    """``replaced_atomically``'s arguments: a file path in an existing folder, a write mode and
    an encoding for text (checked before the temporary file is made)."""
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise TypeError(f"path must be the path of the file to write (a str or pathlib.Path), "
                        f"got {path!r} ({_a_kind(path)})")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"path {str(path)!r} is a folder; give the path of a file in it, e.g. "
                         f"{str(path / 'file.bin')!r}")
    problem = _folder_problem(path.parent)
    if problem is None and not path.parent.is_dir():
        problem = f"the folder {path.parent} does not exist"
    if problem:
        raise ValueError(f"path {str(path)!r} cannot be written: {problem.rstrip('.')}; create "
                         "the folder first, or write to another path")
    if mode not in WRITE_MODES:
        raise ValueError(f"mode must be a mode that writes a new file, one of {WRITE_MODES} "
                         f"('wb' for bytes, 'w' for text), got {mode!r}")
    if encoding is not None:
        if "b" in mode:
            raise ValueError(f"encoding must be None for the binary mode {mode!r} (bytes have no "
                             f"encoding), got {encoding!r}; write text with mode='w'")
        try:
            import codecs

            codecs.lookup(encoding)
        except (LookupError, TypeError):
            raise (TypeError if not isinstance(encoding, str) else ValueError)(
                f"encoding must be None or the name of a text encoding such as 'utf-8' or "
                f"'ascii', got {encoding!r}") from None
    return path


def _another_users_file(path) -> str | None:
    """Why an existing file at ``path`` may not be replaced: another user's file that this user
    may not write (in a folder anyone may write, a rename over it would succeed where a plain
    open(path, "w") is refused), or None."""
    try:
        status = os.stat(path)
    except OSError:
        return None  # no file there (or it cannot be reached: the write says why)
    if status.st_uid != os.geteuid() and not os.access(path, os.W_OK):
        return (f"it belongs to another user (uid {status.st_uid}), and this user may not write "
                f"it (mode {stat.S_IMODE(status.st_mode):o}), so it is kept as it is")
    return None


@contextlib.contextmanager
def replaced_atomically(path: Path, mode: str = "wb", encoding: str | None = None):
    """Write ``path`` through a temporary file in its folder, renamed over it only once it is
    written and flushed to disk, so that ``path`` always holds a whole file; on any error the
    temporary file is removed and the old file stays as it was. The new file gets the user's
    umask (:func:`umask_mode`), as a plain ``open`` would give it."""
    path = _check_replaced(path, mode, encoding)
    # A file its owner made read-only is protected: replacing it (which a rename would do,
    # whatever its mode, and as root) would lose what it holds. It is refused before any write.
    try:
        existing = os.stat(path)
    except OSError:
        existing = None
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        raise OSError(errno.EINVAL, "it is a device, pipe or socket, not a regular file, so it is "
                      "kept as it is (a rename would replace it); write to a file's path",
                      str(path))
    if (existing is not None
            and not existing.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)):
        raise PermissionError(errno.EACCES, f"the file is read-only (mode "
                              f"{stat.S_IMODE(existing.st_mode):o}), so it is kept as it is; make "
                              "it writable first (chmod u+w) or write to another path", str(path))
    problem = _another_users_file(path)
    if problem:
        raise PermissionError(errno.EACCES, f"{problem}; write to another path, or ask its "
                              "owner", str(path))
    # A unique name in the same folder: the rename stays on one file system (atomic), and two
    # writers at once never share a temporary file.
    _remove_leftovers(path.parent, path.name, ".tmp")
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=_temporary_prefix(path.name),
                                     suffix=".tmp")
    try:
        _hold_as_writer(fd)
        # a new file gets the umask; a file replaced keeps its mode (one made private stays so)
        os.chmod(fd, existing.st_mode & 0o777 if existing is not None else umask_mode())
        with os.fdopen(fd, mode, encoding=encoding) as f:
            fd = None
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
        temporary = None
    finally:
        if fd is not None:
            os.close(fd)
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)


def too_deep_root(root: str | os.PathLike) -> str | None:
    """The data root meant when ``root`` is one level too deep, else None.

    The data root is the folder that holds ``FashionMNIST/raw/``. Given ``.../FashionMNIST`` or
    ``.../FashionMNIST/raw`` instead, where the files are, torchvision would look for them (and
    download them) under ``.../FashionMNIST/FashionMNIST/raw``: returns the folder to give.
    A root that is a symbolic link to such a folder (ln -s ~/datasets/FashionMNIST data) is
    judged by the folder it leads to, whose parent is then the one to give.
    """
    root = _root(root)
    _check_root_folder(root)

    def holds_files(folder: Path) -> bool:
        return any(os.path.lexists(folder / name) for spec in FILES
                   for name in (spec.name, f"{spec.name}.gz"))

    if holds_files(root / "FashionMNIST" / "raw"):
        return None
    where = Path(os.path.abspath(root))

    def written(levels: int) -> str | None:
        """The folder ``levels`` up from root as written, when the OS means the same folder by
        it ('lnk/..' is the parent of the link's target, not '.'); else None."""
        up = os.path.join(root, *[".."] * levels)
        short = os.path.normpath(up)
        if os.path.realpath(short) == os.path.realpath(up):
            return short
        # a FashionMNIST folder that is a link (ln -s ~/datasets/FashionMNIST data/): the
        # folder as written, which holds the files through the link, not the target's parent
        return short if holds_files(Path(short) / "FashionMNIST" / "raw") else None

    if where.name == "FashionMNIST" and holds_files(root / "raw") and written(1):
        return written(1)
    if (where.name == "raw" and where.parent.name == "FashionMNIST" and holds_files(root)
            and written(2)):
        return written(2)
    real = Path(os.path.realpath(root))  # through links: root/.. there is the link's target's
    if real.name == "FashionMNIST" and holds_files(root / "raw"):
        return str(real.parent)
    if real.name == "raw" and real.parent.name == "FashionMNIST" and holds_files(root):
        return str(real.parent.parent)
    return None


def _check_not_too_deep(root: str | os.PathLike) -> None:
    parent = too_deep_root(root)
    if parent is not None:
        raise FashionMNISTError(
            f"The data root {root} is too deep: it is the FashionMNIST folder (or its raw "
            f"folder) itself, and the data root is the folder that holds FashionMNIST/.\n"
            f"How to fix it: use --root {parent} (in Python: root={parent!r}). Nothing was "
            "created, deleted or downloaded.")


def _raw_dir(root: str | os.PathLike) -> Path:
    return _root(root) / "FashionMNIST" / "raw"


def _processed_dir(root: str | os.PathLike) -> Path:
    return _root(root) / "FashionMNIST" / "processed"


def _how_to_fix(root: str | os.PathLike) -> str:
    raw = _raw_dir(root)
    kept = _held_folders(raw)
    # never advise deleting a folder that holds a copy of the user's (raw/raw, 3 of 4 files),
    # nor a file of theirs kept there (a checkpoint, an archive)
    files = (f"the Fashion-MNIST files in {raw} (not {', '.join(map(str, kept))}, which "
             f"{'hold' if len(kept) > 1 else 'holds'} files of yours)") if kept else None
    # a cache beside the four raw files goes (its own line says so); without them it is kept,
    # and blocks the download until moved aside
    cache = _stale_cache(root) and not all(os.path.isfile(raw / spec.name) for spec in FILES)
    # with the cache, an empty raw/ needs no deleting either: the mv alone unblocks the download
    there = os.path.lexists(raw) and not (cache and _empty_folder(raw))
    if _ON_THE_COMMAND_LINE.get() and _DOWNLOAD_ASKED.get() and cache and not there:
        online = ("then python -m lenet_book.data prepare --download --root "
                  f"{shlex.quote(str(root))} downloads them with torchvision.")
    elif _ON_THE_COMMAND_LINE.get():
        delete = (f"delete {files or raw}, then " if there
                  else "" if cache else f"delete nothing ({raw} does not exist yet): ")
        online = ONLINE_ON_THE_COMMAND_LINE.format(delete=delete, root=root)
    else:
        online = (f"delete {files} and run again; torchvision downloads the files." if kept
                  else ONLINE_IN_PYTHON.format(raw=raw) if there
                  else "run again; torchvision downloads the files." if cache
                  else f"delete nothing ({raw} does not exist yet) and run again; torchvision "
                       "downloads the files.")
        if _DOWNLOAD_OFF.get():  # running again as it was (download=False) downloads nothing
            online = online.replace("run again;", "run again with download=True;")
    if cache:  # kept (the raw files are not verified): torchvision would load it
        processed = _processed_dir(root)
        online = online.removeprefix("then ")
        online = (f"move {processed} aside first ({_mv(processed, f'{processed}.old')}), as "
                  f"torchvision loads it instead of downloading; then {online[0].lower()}"
                  f"{online[1:]}")
    return HOW_TO_FIX.format(cwd=_current_folder(), root=shlex.quote(os.fspath(root)),
                             online=online)


def _mv(source, target) -> str:
    """The shell command that renames ``source`` to ``target``, both quoted (a space in a path,
    as in Colab's 'Colab Notebooks', would split it)."""
    return f"mv {shlex.quote(os.fspath(source))} {shlex.quote(os.fspath(target))}"


def _empty_folder(folder: Path) -> bool:
    """Whether ``folder`` is a folder holding nothing."""
    try:
        return folder.is_dir() and not os.listdir(folder)
    except OSError:
        return False


def _held_folders(raw: Path) -> list[Path]:
    """The folders inside ``raw`` that hold anything (a copy of the files put one folder
    down, raw/raw), and the files there that are none of the data set's and hold something (a
    checkpoint, an archive): deleting ``raw`` would delete them too."""
    ours = {name for spec in FILES for name in (spec.name, f"{spec.name}.gz")}
    try:
        return [raw / name for name in sorted(os.listdir(raw))
                if not os.path.islink(raw / name) and (
                    (os.path.isdir(raw / name) and os.listdir(raw / name))
                    or (os.path.isfile(raw / name) and name not in ours
                        and not name.startswith(".") and os.path.getsize(raw / name) > 0))]
    except OSError:  # missing, or cannot be listed
        return []


def _current_folder() -> Path:
    """The current folder; a FashionMNISTError when it was deleted or moved since the program
    started (every relative path would then fail)."""
    try:
        return Path.cwd()
    except FileNotFoundError:
        raise FashionMNISTError(_CURRENT_FOLDER_GONE[0].upper() + _CURRENT_FOLDER_GONE[1:] + "."
                                ) from None


_CURRENT_FOLDER_GONE = ("the current folder no longer exists (deleted or moved by another "
                        "program since this one started), so no relative path can be found: cd "
                        "to an existing folder and run again")


def _relative_path_problem(path: str | os.PathLike) -> str | None:
    """:data:`_CURRENT_FOLDER_GONE` when ``path`` is relative and the current folder was deleted
    (a relative path would read as missing, or fail to be written, for no visible reason), else
    None. Checkpoints and exports name it with their own error."""
    if os.path.isabs(path):
        return None
    try:
        os.getcwd()
    except FileNotFoundError:
        return _CURRENT_FOLDER_GONE
    return None


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _folder_problem(folder: Path, write: bool = False) -> str | None:
    """Say why ``folder`` cannot be used (a file in its path, no permission to enter it, not
    writable).

    Returns None when it is usable, and also when it (or a folder above it) does not exist yet:
    the callers report missing files themselves, or create the folder.
    """
    for part in [*reversed(folder.parents), folder]:  # from the top: data, data/FashionMNIST, ...
        try:
            status = part.stat()
        except FileNotFoundError:
            if os.path.islink(part):  # creating the folder would fail with "File exists"
                return (f"{part} is a symbolic link to {os.readlink(part)}, which does not "
                        "exist: create that folder, or remove the link.")
            return None
        except PermissionError:
            return f"{part} cannot be reached: no permission to enter {part.parent}."
        except OSError as error:  # e.g. a link that points to itself, a name too long
            return f"{part} cannot be used: {_os_words(error)}."
        if not stat.S_ISDIR(status.st_mode):
            inside = f" (it is part of the path {folder})" if part != folder else ""
            return f"{part} is a file, not a folder{inside}."
        if not os.access(part, os.X_OK):
            return f"{part} cannot be entered: no permission (execute/search) for this user."
    # No read (list) permission is needed: every file is opened by its name, as torchvision does,
    # so a shared folder of mode 711 works; only the clean-up of leftovers lists, and skips it.
    if write and not os.access(folder, os.W_OK):
        return f"{folder} is not writable: no permission to create files in it for this user."
    return None


def _os_words(error: OSError) -> str:
    """What an OSError means, in words for the path problems the book's files meet."""
    if error.errno == errno.ELOOP:
        return "it is a symbolic link that points to itself (a loop), or a chain of links too long"
    if error.errno == errno.ENAMETOOLONG:
        return ("the path is too long (a file or folder name may have 255 bytes, a whole path "
                "4,096)")
    return error.strerror or str(error)


# _folder_problem's answers that no write can get past: save and export refuse these up front
BROKEN_PATH = ("is a file, not a folder", "is a symbolic link to", "cannot be used:")


def _broken_path_problem(folder: Path) -> str | None:
    """``_folder_problem``'s answer when ``folder`` can never be written into as given (a file or
    a dangling link in its path, a loop, a name too long), else None."""
    problem = _folder_problem(folder)
    return problem if problem and any(kind in problem for kind in BROKEN_PATH) else None


PERMISSION_FIX = ("How to fix it: give this user access (e.g. as the owner: chmod -R u+rwX PATH, "
                  "or a+rX to let everyone read), run as the user who owns the data, or use "
                  "another --root.")

# Set by main(): the fixes then name the command line's --root; a Python call has the parameter root
_ON_THE_COMMAND_LINE = contextvars.ContextVar("_ON_THE_COMMAND_LINE", default=False)
# set while ensure_fashion_mnist(download=False) runs: its online fix names download=True
_DOWNLOAD_OFF = contextvars.ContextVar("_DOWNLOAD_OFF", default=False)
# prepare --download: the online fix is to run it again, not a python -c line
_DOWNLOAD_ASKED = contextvars.ContextVar("_DOWNLOAD_ASKED", default=False)


def _root_option() -> str:
    """How the caller gives the data root: ``--root`` under :func:`main`, else ``root``."""
    return "--root" if _ON_THE_COMMAND_LINE.get() else "root"


def _permission_fix() -> str:
    return PERMISSION_FIX.replace("--root", _root_option())


def _folder_error(problem: str, doing: str, root: str | os.PathLike) -> FashionMNISTError:
    """A FashionMNISTError for a folder that cannot be used, with the fix that fits the problem."""
    if "is a file, not a folder" in problem and os.path.isfile(root):  # e.g. a checkpoint
        fix = (f"How to fix it: give {_root_option()} the folder that holds FashionMNIST/raw/, "
               "such as 'data' (in the repository) or '../data' (in a chapter), not a file "
               f"({root} is left as it is).")
    elif "is a file, not a folder" in problem:
        fix = (f"How to fix it: move or delete that file, or give {_root_option()} a folder "
               "(a missing folder is created).")
    elif "is a symbolic link to" in problem or "cannot be used:" in problem:
        fix = ("How to fix it: mend that part of the path (a link to a folder that exists, a "
               f"shorter name), or give {_root_option()} another folder.")
    else:
        fix = _permission_fix()
    return FashionMNISTError(f"Cannot {doing}: {problem}\n{fix}\n"
                             f"(Paths are relative to {_current_folder()}; the data root is "
                             f"{root}.)")


def _os_problem(error: OSError, path: Path | None = None) -> str:
    """'PATH: what is wrong' for an OSError, in words."""
    where = error.filename if error.filename is not None else path
    if isinstance(error, PermissionError):
        what = "no permission for this user"
    elif isinstance(error, IsADirectoryError):
        what = "is a folder, not a file"
    elif isinstance(error, NotADirectoryError):
        what = "a part of this path is a file, not a folder"
    elif isinstance(error, FileNotFoundError):
        what = "does not exist"
    else:
        what = error.strerror or str(error)
    return f"{where}: {what}"


def _problem(path: Path, spec: IdxFile) -> str | None:
    """Say what is wrong with one uncompressed IDX file, or return None if it is right."""
    try:
        status = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return _dangling_link(path) or f"{path} is missing."
    except PermissionError:
        return f"{path} cannot be reached: no permission to enter {path.parent}."
    except OSError as error:  # a loop, a path too long
        return f"{path} cannot be used: {_os_words(error)}."
    if stat.S_ISDIR(status.st_mode):
        return (f"{path} is a folder, not the file: delete it (rm -r {path}), "
                "then prepare the data again.")
    if not stat.S_ISREG(status.st_mode):
        return f"{path} is not a regular file: delete it, then prepare the data again."
    size = status.st_size
    try:
        with open(path, "rb") as f:
            header = f.read(max(_header_size(spec), _longest_header()))
        if len(header) < 4 + 4 * len(spec.shape):
            return (f"{path} holds only {size} bytes, too few for an IDX header "
                    f"(expected {spec.size:,} bytes).")
        if not any(header[:_header_size(spec)]):  # no data set's header: nothing was written
            return (f"{path} holds only zero bytes where its IDX header should be (its first "
                    f"{_header_size(spec)} bytes): an unfinished copy (space reserved and never "
                    "written, or a sync tool's placeholder?), not another file; copy it again.")
        wrong = _header_problem(header, spec)
        if wrong:
            return f"{path} {wrong}"
        if size != spec.size:
            return (f"{path} holds {size:,} bytes; expected {spec.size:,}. "
                    "It is truncated or has extra bytes (an interrupted download or copy?).")
        if _md5(path) != spec.md5:
            return (f"{path} has the right size but its MD5 sum is not the published "
                    f"{spec.md5}: its contents are damaged or altered.")
    except FileNotFoundError:  # removed between the stat and the read (by another run?)
        return _dangling_link(path) or f"{path} is missing."
    except PermissionError:
        return (f"{path} cannot be read: no permission for this user "
                f"(as its owner: chmod a+r {path}).")
    except OSError as error:
        return f"{path} cannot be read ({error.strerror or error})."
    return None


def _dangling_link(path: Path) -> str | None:
    """What is wrong with ``path`` when it is a symbolic link to nothing (shared data moved or
    deleted): a link that ``ls`` shows, so not "missing"; else None."""
    try:
        if not os.path.islink(path):
            return None
        target = os.readlink(path)
    except OSError:
        return None
    where = (target if os.path.isabs(target)
             else f"{target} (= {os.path.normpath(path.parent / target)})")
    nothing = ("which is itself a link to nothing" if os.path.lexists(path.parent / target)
               else "which does not exist")
    return (f"{path} is a symbolic link to {where}, {nothing} (the data it led to were moved or "
            f"deleted?): point it at the file (ln -sf FILE {path}) or delete it, then prepare "
            "the data again.")


# How a file torch.save wrote starts: a zip archive, or a pickle before torch 1.6
_TORCH_HEADS = (b"PK\x03\x04", b"\x80\x02\x8a\x0a")


def _torch_file(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) in _TORCH_HEADS
    except OSError:
        return False


def _cache_pair(root: str | os.PathLike) -> tuple[list[Path], list[Path]]:
    """``(cache, foreign)``: torchvision loads ``processed/{training,test}.pt`` only when both are
    files, so only such a pair counts. When both are torch files they are its cache; when one is
    not (a user's file?) the pair is foreign, and is never deleted. A lone file is neither."""
    processed = _processed_dir(root)
    pair = [processed / name for name in PROCESSED_CACHE]
    if not all(os.path.isfile(path) for path in pair):
        return [], []
    foreign = [path for path in pair if not _torch_file(path)]
    return ([], foreign) if foreign else (pair, [])


def _header_size(spec: IdxFile) -> int:
    return 4 + 4 * len(spec.shape)


def _longest_header() -> int:
    """The bytes to read to tell any of the four files by its header (that of the images)."""
    return max(_header_size(spec) for spec in FILES)


def _header_problem(header: bytes, spec: IdxFile) -> str | None:
    """What is wrong with an IDX header, to follow the file's name, or None.

    ``header`` holds at least ``spec``'s header, and may hold more (up to
    :func:`_longest_header`): a header that is another of the four files' (the training and test
    files swapped, images and labels mixed up) is then named as that file. A magic of one of the
    four files says how many sizes follow (0x0801: one, the labels' count), so the bytes after
    them are not read as sizes."""
    magic = int.from_bytes(header[:4], "big")
    count = magic & 0xFF if magic in {other.magic for other in FILES} else len(spec.shape)
    dims = tuple(int.from_bytes(header[i:i + 4], "big")
                 for i in range(4, min(len(header) - 3, 4 + 4 * count), 4))
    if magic == spec.magic and dims == spec.shape:
        return None
    said = (f"has the IDX header magic {magic:#06x} with sizes {dims}; "
            f"expected magic {spec.magic:#06x} with sizes {spec.shape}. ")
    other = next((other for other in FILES
                  if other != spec and (magic, dims) == (other.magic, other.shape)), None)
    if other is None:
        return (said + "It is not this Fashion-MNIST file "
                "(a .gz left compressed, or another data set?).")
    same_kind = other.magic == spec.magic
    same_split = other.name.split("-")[0] == spec.name.split("-")[0]
    mixed = ("the training and test files are swapped?" if same_kind
             else "the images and labels files are swapped?" if same_split
             else "the files are mixed up?")
    return said + f"This is {other.name}: {mixed}"


def _stale_cache(root: str | os.PathLike) -> list[Path]:
    """The files of torchvision's old ``processed`` cache under ``root``: both or none (see
    :func:`_cache_pair`). A folder of that name is never counted or deleted."""
    return _cache_pair(root)[0]


def _foreign_cache_problem(root: str | os.PathLike) -> str | None:
    """Two files named like the cache, not both torch's: torchvision would load them, and fail."""
    foreign = _cache_pair(root)[1]
    if not foreign:
        return None
    return (f"{_processed_dir(root)} holds {' and '.join(PROCESSED_CACHE)}, which torchvision "
            f"loads instead of the raw files, but {' and '.join(p.name for p in foreign)} "
            f"{'is not a torch file' if len(foreign) == 1 else 'are not torch files'}, so not "
            "its old cache (your own?); nothing was deleted. Move them out of that folder.")


def _not_a_cache(root: str | os.PathLike) -> list[Path]:
    """Folders named like the cache's files: someone else's, which are left as they are."""
    processed = _processed_dir(root)
    return [processed / name for name in PROCESSED_CACHE if os.path.isdir(processed / name)]


def _rm_cache(cache: list[Path]) -> str:
    """The command that deletes the cache's files and nothing else in their folder."""
    return "rm " + " ".join(str(path) for path in cache)


def _cache_problem(root: str | os.PathLike, ready: bool = True) -> str | None:
    """The cache as check names it; ``ready``: whether the four raw files are verified, without
    which it is kept (it may be the folder's only copy) and never advised to be deleted."""
    cache = _stale_cache(root)
    if not cache:
        return _foreign_cache_problem(root)
    if not ready:
        return (f"{_processed_dir(root)} holds {' and '.join(p.name for p in cache)}: an old "
                "torchvision cache (torchvision before 0.9 wrote it), which the book does not "
                "use: it reads the four raw files, verified by their MD5 sums. It is kept, as it "
                "may be this folder's only copy of the data; prepare and ensure_fashion_mnist "
                "delete it only once the raw files are there and verified. To get them online, "
                "first move it aside, as torchvision loads it instead of downloading: "
                f"{_mv(_processed_dir(root), f'{_processed_dir(root)}.old')}")
    return (f"{_processed_dir(root)} holds an old torchvision cache "
            f"({', '.join(p.name for p in cache)}) "
            "that torchvision loads instead of the verified raw files, unchecked. Delete it "
            f"({_rm_cache(cache)}), or run prepare, which deletes it.")


def remove_stale_cache(root: str | os.PathLike = "../data") -> list[Path]:
    """Delete torchvision's old ``processed/{training,test}.pt`` cache under ``root``, saying so.

    torchvision's FashionMNIST prefers that cache to the raw files, so a stale one would be
    trained on although ``check`` verified the raw files. Once the four raw files are verified
    it only duplicates them (torchvision no longer writes it), so deleting it loses nothing:
    prepare and :func:`ensure_fashion_mnist` call this only then (else it may be the folder's
    only copy, and is kept); a direct call deletes it all the same. Only a pair of torch files
    is deleted: a lone file, which torchvision ignores, is left; two files of which one is not a
    torch file are refused, not deleted. Returns the deleted files.
    """
    _check_root_folder(_root(root))
    foreign = _foreign_cache_problem(root)
    if foreign:
        raise FashionMNISTError(foreign)
    cache = _stale_cache(root)
    for path in _not_a_cache(root):
        print(f"{path} is a folder, not torchvision's cache; left as it is.", file=sys.stderr)
    for path in cache:
        try:
            path.unlink(missing_ok=True)  # another run may be deleting it at the same time
        except OSError as error:
            raise FashionMNISTError(
                f"{_processed_dir(root)} holds an old torchvision cache that torchvision would "
                "load instead of the verified raw files, and it cannot be deleted "
                f"({_os_problem(error, path)}).\n"
                f"How to fix it: delete it yourself: {_rm_cache(cache)}") from None
    if cache:
        try:
            _processed_dir(root).rmdir()  # only when nothing else is in it
        except OSError:
            pass
        print(f"Deleted {', '.join(str(p) for p in cache)}: an old torchvision cache that "
              "torchvision would have loaded instead of the verified raw files.", file=sys.stderr)
    return cache


def check_fashion_mnist(root: str | os.PathLike = "data") -> Path:
    """Check the four uncompressed files under ``root/FashionMNIST/raw``; change nothing.

    Returns that folder. Raises FashionMNISTError naming every file that is missing or wrong,
    a folder that cannot be read, and a stale torchvision ``processed/`` cache (which torchvision
    would load instead of the raw files): ``check`` only reports it, ``prepare`` and
    :func:`ensure_fashion_mnist` delete it.
    """
    raw = _raw_dir(root)
    folder = _folder_problem(raw)
    if folder:
        raise _folder_error(folder, f"read Fashion-MNIST in {raw}", root)
    _check_not_too_deep(root)
    _check_no_stray_space(root)
    _check_no_tilde(root)
    packed = [spec for spec in FILES if os.path.isfile(raw / f"{spec.name}.gz")
              and not _empty_leftover(raw / f"{spec.name}.gz")]  # an empty one unpacks to nothing
    problems = _raw_problems(raw, FILES)
    renames = sum(p.endswith(_RENAME_END) for p in problems)
    cache = _cache_problem(root, ready=not problems)
    leftovers = _leftovers_beside_files(raw) if _writable(raw) else []
    if len(problems) == len(FILES) and not cache and all(
            p.endswith(" is missing.") or _empty_leftover(raw / f"{spec.name}.gz")
            for spec, p in zip(FILES, problems)):
        folder = _source_given_as_root(root)  # the files are there, one level off
        if folder is not None:
            raise _source_as_root_error(root, folder)
        folder = _one_folder_off(root)  # or one folder off the raw folder
        if folder is not None:
            raise _one_folder_off_error(root, folder)
    if problems or cache:
        nearby = (_nearby_root(root) if len(problems) == len(FILES) and all(
            p.endswith(" is missing.") for p in problems) else None)
        raise FashionMNISTError(
            "Fashion-MNIST is not ready in " + str(raw) + ":\n"
            + "\n".join("  - " + p for p in problems + ([cache] if cache else [])) + "\n"
            + (f"The four files are in {_raw_dir(nearby)}: did you mean {_root_option()} "
               f"{nearby}?\n" if nearby else "")
            + (_replace_leftovers(root, leftovers) if problems and leftovers
               else _unpack_still_packed(root) if problems and not cache and _writable(raw)
               and len(packed) < len(FILES) and all(p.endswith(_PACKED_END) for p in problems)
               else _unpack_here(root) if problems and len(packed) == len(FILES)
               and renames < len(problems)  # .gz files saved unpacked need a rename only
               else f"How to fix it: rename the files as said above (torchvision reads only "
                    f"these names), then check again.\n(Paths are relative to "
                    f"{_current_folder()}.)" if problems and renames == len(problems) and not cache
               else _how_to_fix(root)))
    return raw


def _raw_problems(raw: Path, specs) -> list[str]:
    """What is wrong with each of ``specs``' files in ``raw``, as check says it: a missing file
    whose .gz is there is still packed (or an empty leftover, or saved unpacked under the .gz
    name), and one there under another spelling is to be renamed."""
    problems = []
    for spec in specs:
        problem = _problem(raw / spec.name, spec)
        gz = raw / f"{spec.name}.gz"
        if problem is None:
            continue
        if os.path.isfile(gz) and problem == f"{raw / spec.name} is missing.":
            problem = (_unpacked_as_gz(raw, spec) if _unpacked_under_gz(gz, spec)
                       else problem[:-1] + f", but {gz.name} is there, "
                       + ("empty (left by a failed download)." if _empty_leftover(gz)
                          else "still" + _PACKED_END))
        else:
            problem = _respelt(problem, raw, spec)
        problems.append(problem)
    return problems


_PACKED_END = " packed."


def _download_url() -> str:
    """Where torchvision downloads the four .gz files from (its first mirror)."""
    from torchvision.datasets import mnist  # slow to import: only for this message

    return mnist.FashionMNIST.mirrors[0]


def _leftovers_beside_files(raw: Path) -> list[Path]:
    """The empty .gz files a failed download left in ``raw`` when every other file there is
    still packed or correct (a download in which one file failed): the fix is to replace those
    alone, keeping the rest. Else []."""
    leftovers = []
    for spec in FILES:
        gz = raw / f"{spec.name}.gz"
        if _empty_leftover(gz) and not os.path.lexists(raw / spec.name):
            leftovers.append(gz)
        elif _problem(raw / spec.name, spec) is not None and not (
                os.path.isfile(gz) and not os.path.lexists(raw / spec.name)):
            return []  # a file missing or wrong: not only leftovers to replace
    return leftovers if len(leftovers) < len(FILES) else []


def _replace_leftovers(root: str | os.PathLike, leftovers: list[Path]) -> str:
    """The fix for empty leftovers beside good files: delete them, fetch those files alone, and
    prepare (the other files are kept); deleting the raw folder would lose them."""
    raw = _raw_dir(root)
    names = [path.name for path in leftovers]
    fetch = " && ".join(f"curl -fo {shlex.quote(str(path))} {_download_url()}{path.name}"
                        for path in leftovers)
    return (f"How to fix it (in a terminal opened in {_current_folder()}): delete the empty "
            f"leftover{'s' if len(names) > 1 else ''} (rm "
            f"{' '.join(shlex.quote(str(path)) for path in leftovers)}), then put the published "
            f"{', '.join(names)} in {raw}/, from a local copy (cp DIR/{names[0]} "
            f"{shlex.quote(str(raw))}/" + (", and the others" if len(names) > 1 else "")
            + f") or downloaded ({fetch}); then python -m lenet_book.data prepare --root "
            f"{shlex.quote(str(root))} unpacks and verifies the "
            "files there. The other files there are kept.")


def _unpack_still_packed(root: str | os.PathLike) -> str:
    """The fix when the only problems are .gz files still packed beside correct files: prepare
    unpacks them where they are. The general advice's online fix would delete the good ones."""
    return (f"How to fix it (in a terminal opened in {_current_folder()}): python -m "
            f"lenet_book.data prepare --root {root} unpacks and verifies them there; the files "
            "already there and the .gz files are kept.")


def _spelling(name: str) -> str:
    """A file name as compared with the published one: in lower case, and with the dot of some
    mirrors' spelling ('train-images.idx3-ubyte') as the published dash."""
    return name.lower().replace(".idx", "-idx")


def _other_spelling(folder: Path, name: str) -> str | None:
    """The name of a file in ``folder`` that is ``name`` spelt otherwise (in upper case, as copied
    from a case-insensitive file system, or dotted as some mirrors spell it), else None."""
    try:
        names = sorted(os.listdir(folder))
    except OSError:  # cannot be listed (mode 711): only the published names are looked at
        return None
    return next((other for other in names if other != name and _spelling(other) == _spelling(name)
                 and os.path.isfile(folder / other)), None)


def _misnamed(folder: Path, spec: IdxFile) -> tuple[str, str] | None:
    """``(found, name)`` when ``folder`` holds ``spec``'s file, or its .gz, only under another
    spelling ``found`` of its published ``name``; else None."""
    for name in (spec.name, f"{spec.name}.gz"):
        other = _other_spelling(folder, name)
        if other:
            return other, name
    return None


_RENAME_END = " under its published name)."


def _unpacked_under_gz(path: Path, spec: IdxFile) -> bool:
    """Whether ``path`` (a .gz name) holds the unpacked file: it starts with the file's IDX header,
    not gzip's. Browsers unpack a download sent gzip-encoded and keep its .gz name."""
    try:
        with open(path, "rb") as file:
            return file.read(4) == spec.magic.to_bytes(4, "big")
    except OSError:
        return False


def _unpacked_as_gz(folder: Path, spec: IdxFile) -> str:
    """The problem of a file saved unpacked under its .gz name: only its name is wrong."""
    gz = folder / f"{spec.name}.gz"
    return (f"{folder / spec.name} is missing, but {gz.name} is there, already unpacked (it starts "
            "with the file's IDX header, not gzip's: a browser unpacked the download and kept its "
            f".gz name): rename it to {spec.name} ({_mv(gz, folder / spec.name)}; torchvision "
            "reads it only" + _RENAME_END)


def _respelt(problem: str, folder: Path, spec: IdxFile) -> str:
    """``problem``, with the rename to make when the missing file is in ``folder`` under another
    spelling (or its .gz is): that file is not missing, only misnamed."""
    misnamed = _misnamed(folder, spec)
    if problem != f"{folder / spec.name} is missing." or misnamed is None:
        return problem
    other, name = misnamed
    return (f"{folder / spec.name} is missing, but a file {other} is there: rename it to {name} "
            f"({_mv(folder / other, folder / name)}; torchvision reads it only" + _RENAME_END)


def _nearby_root(root: str | os.PathLike) -> str | None:
    """The data root, relative to the current folder, of a ready data folder when ``root`` is a
    chapter's 'data', '../data' or '../../data' (a solution's cell pasted into a chapter) that
    holds none of the files; else None. The ready folder is looked for only at 'data' and
    '../data' (``_data_roots_above``). Any other root was given on purpose: no guess."""
    given = os.path.normpath(root)
    parts = Path(given).parts
    other_case = _other_case(given)
    if other_case is not None:
        return other_case
    if not parts or parts[-1] != "data" or any(part != os.pardir for part in parts[:-1]):
        return None
    for nearby in _data_roots_above():
        if os.path.normpath(nearby) != given and all(
                os.path.isfile(_raw_dir(nearby) / spec.name) for spec in FILES):
            return nearby
    return None


def _other_case(given: str) -> str | None:
    """A ready data root beside ``given`` whose name differs from its only in letter case
    ('data' for 'Data': Linux and Colab tell them apart), as the user spelt the rest; else None."""
    head, name = os.path.split(given)
    try:
        names = sorted(os.listdir(head or os.curdir))
    except OSError:
        return None
    for other in names:
        nearby = os.path.join(head, other)
        if other != name and other.lower() == name.lower() and all(
                os.path.isfile(_raw_dir(nearby) / spec.name) for spec in FILES) and not (
                os.path.exists(given) and os.path.samefile(given, nearby)):
            return nearby
    return None


def _data_roots_above() -> list[str]:
    """'data' and '../data': the chapters' root and the repository's, one folder apart. Further up
    is not guessed: colab_check runs chapters in folders inside the repository, where the
    download must go ahead."""
    return ["data", os.path.join(os.pardir, "data")]


def _unpack_here(root: str | os.PathLike) -> str:
    """The fix when the raw folder holds the four .gz files (a download left packed): unpack
    them where they are; deleting the folder, the general advice, would lose them. A folder
    that is not writable (a shared, read-only copy of the .gz files) is left alone: they are
    unpacked into a data root of one's own."""
    raw = _raw_dir(root)
    if _writable(raw):
        return (f"How to fix it (in a terminal opened in {_current_folder()}): python -m "
                f"lenet_book.data prepare --source {raw} --root {root} unpacks and "
                "verifies the four files there; the .gz files are kept.")
    own = _own_root(raw)
    use = (f"--root {own}" if _ON_THE_COMMAND_LINE.get()
           else f"root={own!r} (a tool's --data {own})")
    return (f"How to fix it (in a terminal opened in {_current_folder()}): {raw} is read-only "
            "(a shared copy?), so do not unpack them there; unpack them into a data folder of "
            f"your own: python -m lenet_book.data prepare --source {raw} --root {own} "
            f"unpacks and verifies the four files in {_raw_dir(own)}"
            + (" (DIR: a folder you can write)" if own == "DIR" else "")
            + f", then use {use}. The .gz files are only read.")


def _writable(folder: Path) -> bool:
    """Whether this user may create files in ``folder``, and it is not marked read-only for
    everyone (no w bit: a shared copy, which root could write all the same)."""
    try:
        return (os.access(folder, os.W_OK)
                and bool(stat.S_IMODE(os.stat(folder).st_mode) & 0o222))
    except OSError:
        return False


def _own_root(raw: Path) -> str:
    """A data root to unpack a read-only ``raw`` folder's files into: 'data' in the current
    folder when it is another folder that can be written (or created), else 'DIR'."""
    folder = _raw_dir("data")
    if os.path.realpath(folder) == os.path.realpath(raw):
        return "DIR"
    existing = next((part for part in (folder, *folder.parents) if os.path.isdir(part)), Path("."))
    return "data" if _writable(existing) else "DIR"


def _gunzip_verified(source: Path, spec: IdxFile, target: Path,
                     root: str | os.PathLike = "data") -> None:
    """Unpack ``source`` into ``target``, keeping it only if its MD5 is the published one.

    The uncompressed sum is checked rather than the .gz sum, because Debian's copies carry
    other gzip headers around the same compressed data. A ``source`` not named ``.gz`` is an
    unpacked file (another checkout's raw folder): it is copied, and checked the same way. The
    file is unpacked into a uniquely named temporary file beside ``target``, verified, flushed
    to disk and renamed over ``target`` (``os.replace``, atomic): ``target`` is never
    half-written, and several runs at once each write their own temporary file.
    """
    raw = target.parent
    try:
        fd, name = tempfile.mkstemp(dir=raw, prefix=_temporary_prefix(spec.name),
                                    suffix=".partial")
        _hold_as_writer(fd)
    except OSError as error:
        raise FashionMNISTError(
            f"Cannot write into the data folder {raw}: "
            f"{_os_problem(error, raw).split(': ', 1)[1]}.\n"
            + _permission_fix()) from None
    partial = Path(name)
    packed = Path(source).suffix == ".gz"
    # what a wrong file is called: one unpacked from a .gz, or the copied file itself
    not_published = (f"{source} does not unpack to the published {spec.name}: the unpacked file"
                     if packed else f"{source} is not the published {spec.name}: it")
    instead = ("" if packed else "Give the four published .gz files instead (or a raw folder "
               "that python -m lenet_book.data check accepts).\n")
    try:
        os.chmod(fd, umask_mode())  # the user's umask, not mkstemp's 0o600
        with os.fdopen(fd, "wb") as dst:
            try:
                compressed = open(source, "rb")
            except OSError as error:
                raise FashionMNISTError(
                    f"Cannot read the source file: {_os_problem(error, source)}.\n"
                    "How to fix it: give this user read access (e.g. as its owner: "
                    f"chmod a+r {source}), or copy the .gz files to a folder it can read and "
                    "pass that one.") from None
            written, head = 0, b""
            with compressed, (gzip.GzipFile(fileobj=compressed, mode="rb") if packed
                              else contextlib.nullcontext(compressed)) as src:
                while True:
                    try:
                        block = src.read(1 << 20)
                    # BadGzipFile is an OSError, a truncated file raises EOFError, and a damaged
                    # deflate stream behind a valid header raises zlib.error.
                    except (OSError, EOFError, zlib.error) as error:
                        extra = _bytes_after_gzip(source, spec.size) if packed else None
                        if extra:
                            raise FashionMNISTError(
                                f"{source} has {extra:,} extra bytes after the gzip data (e.g. "
                                "an HTML page appended by a download), so it is not the "
                                f"published {spec.name}.gz (MD5 {spec.gz_md5}).\n"
                                + _how_to_fix(root)) from None
                        if not packed:
                            raise FashionMNISTError(
                                f"Cannot read the source file: {_os_problem(error, source)}."
                                ) from None
                        if _unpacked_under_gz(source, spec):
                            raise FashionMNISTError(
                                f"{source} is not a gzip file but {spec.name} itself, already "
                                "unpacked (a browser unpacked the download and kept its .gz "
                                f"name): rename it to {spec.name} "
                                f"({_mv(source, source.with_name(spec.name))}) and prepare "
                                "again; the source "
                                "may hold the unpacked files.") from None
                        raise FashionMNISTError(
                            f"{source} is not a readable gzip file ({error}).\n"
                            f"Expected the published {spec.name}.gz (MD5 {spec.gz_md5}).\n"
                            + _how_to_fix(root)) from None
                    if not block:
                        break
                    # a wrong or huge file (a gzip bomb) is refused as soon as it shows, before
                    # it fills the disk: by its header, then by its size
                    head += block[:max(0, _longest_header() - len(head))]
                    written += len(block)
                    wrong = (_header_problem(head, spec) if len(head) >= _header_size(spec)
                             else None)
                    early = wrong
                    if early is None and written > spec.size:
                        early = (f"holds more than {spec.size:,} bytes; "
                                 f"expected {spec.size:,}. It is truncated or has extra bytes "
                                 "(an interrupted download or copy?).")
                    if early:
                        raise FashionMNISTError(f"{not_published} {early}\n{instead}"
                                                + _how_to_fix(root))
                    try:
                        dst.write(block)
                    except OSError as error:
                        raise FashionMNISTError(
                            f"Cannot write {target} in the data folder: "
                            f"{_os_problem(error, partial)}.\n"
                            "How to fix it: free some space, or use another "
                            f"{_root_option()}.") from None
            dst.flush()
            os.fsync(dst.fileno())
            # checked and renamed while still open, so still locked: another run's stale-partial
            # cleanup never takes a live run's verified file for a leftover
            problem = _problem(partial, spec)
            if problem:
                raise FashionMNISTError(
                    problem.replace(str(partial), not_published) + "\n" + instead
                    + _how_to_fix(root))
            partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


def _bytes_after_gzip(source: Path, most: int) -> int | None:
    """How many bytes follow the gzip data in ``source`` (an HTML page that a download appended:
    Python's gzip then reads them as a second, broken member), or None when its gzip data are
    themselves broken, or unpack to more than ``most`` bytes (read no further)."""
    decompressor = zlib.decompressobj(wbits=31)  # one gzip member
    unpacked = 0
    try:
        with open(source, "rb") as f:
            while not decompressor.eof:
                chunk = decompressor.unconsumed_tail or f.read(1 << 20)
                if not chunk:
                    return None
                unpacked += len(decompressor.decompress(chunk, 1 << 20))
                if unpacked > most:
                    return None
            return len(decompressor.unused_data) + os.fstat(f.fileno()).st_size - f.tell()
    except (OSError, zlib.error):
        return None


def _temporary_prefix(name: str) -> str:
    """The start of a temporary file's name for writing ``name``: ``.<name>.``, with a long name
    cut short (to 200 bytes, whole characters), so that mkstemp's 8 characters and the suffix
    still fit in a name's 255 bytes."""
    short = os.fsencode(name)[:200]
    return f".{os.fsdecode(short.decode('utf-8', 'ignore').encode('utf-8'))}."


def _made_by_mkstemp(path: Path, name: str, suffix: str) -> bool:
    """Whether ``path`` has the name tempfile.mkstemp gives a temporary file of ``name``:
    ``.<name>.`` then 8 characters of [a-z0-9_], then ``suffix``. A user's own file such as
    ``.lenet.pt.backup.tmp`` does not, and is never deleted as a leftover."""
    return re.fullmatch(rf"{re.escape(_temporary_prefix(name))}[a-z0-9_]{{8}}{re.escape(suffix)}",
                        path.name) is not None


def _hold_as_writer(fd: int) -> None:
    """Lock a temporary file while it is written: the lock says a run is writing it, and it goes
    when the run ends, killed or not (flock; without it, leftovers are removed by age)."""
    if fcntl is not None:
        with contextlib.suppress(OSError):  # e.g. a file system without locks: age decides
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _remove_leftovers(folder: Path, name: str, suffix: str) -> list[Path]:
    """Delete the temporary files that killed writes of ``folder/name`` left; returns them.

    A running writer holds a lock on its temporary file (:func:`_hold_as_writer`), which goes
    with the process: a file whose lock is free and that holds data, or is older than a few
    seconds, is a leftover. Only names that mkstemp makes are touched, never a user's file.
    Without flock (Windows) only files older than ``STALE_PARTIAL_SECONDS`` are removed."""
    removed = []
    try:
        candidates = list(folder.glob(f"{glob.escape(_temporary_prefix(name))}*{suffix}"))
    except OSError:
        return removed
    for path in candidates:
        if not _made_by_mkstemp(path, name, suffix):
            continue
        try:
            status = path.lstat()
            if not stat.S_ISREG(status.st_mode):
                continue
            age = time.time() - status.st_mtime
            if fcntl is None:
                if age > STALE_PARTIAL_SECONDS:
                    path.unlink()
                    removed.append(path)
                continue
            if status.st_size == 0 and age < 5:  # perhaps made a moment ago, not yet locked
                continue
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while a writer holds it
                path.unlink()
                removed.append(path)
            finally:
                os.close(fd)
        except OSError:
            pass  # a running writer's file, another run removed it, or not ours to remove
    return removed


def _remove_stale_partials(raw: Path) -> None:
    """Delete the partial files that killed runs left in ``raw`` (never a running one's)."""
    for spec in FILES:
        _remove_leftovers(raw, spec.name, ".partial")


def _source_file(folder: Path, spec: IdxFile, target: Path | None = None) -> Path | None:
    """The file of ``folder`` to prepare ``spec`` from: the published .gz, or else the unpacked
    file (another checkout's raw folder; checked by its MD5 all the same), or None. The unpacked
    file is not taken when it is ``target``, the file to replace (a source that is the raw
    folder itself). Both there (torchvision's raw folder): the unpacked file when it is
    correct, so that a damaged or dangling .gz beside it does not stop prepare."""
    unpacked = folder / spec.name
    if os.path.lexists(unpacked) and (
            target is not None and os.path.realpath(unpacked) == os.path.realpath(target)):
        unpacked = None
    packed = folder / f"{spec.name}.gz"
    if os.path.lexists(packed):
        return unpacked if unpacked is not None and _problem(unpacked, spec) is None else packed
    return unpacked if unpacked is not None and os.path.lexists(unpacked) else None


def _in_source(folder: Path, spec: IdxFile) -> bool:
    """Whether ``folder`` holds ``spec``'s file, as the .gz or unpacked (an empty .gz that a
    failed download left does not count)."""
    return any(os.path.isfile(folder / name) and not _empty_leftover(folder / name)
               for name in (f"{spec.name}.gz", spec.name))


# Folders below a source that may hold the four files: another checkout's data root, its
# FashionMNIST folder, and a clone of Zalando's repository (or its data folder), data/fashion.
_BELOW_A_SOURCE = (("FashionMNIST", "raw"), ("raw",), ("data", "fashion"), ("fashion",))


def _files_folder(source: Path) -> Path:
    """The folder of ``source`` that holds the files: ``source`` itself, or, when it holds none
    of them, the folder below it (:data:`_BELOW_A_SOURCE`) holding all four (every file is
    MD5-checked all the same)."""
    if any(os.path.lexists(source / name) and not _empty_leftover(source / name)
           for spec in FILES for name in (spec.name, f"{spec.name}.gz")):
        return source
    for below in (source.joinpath(*parts) for parts in _BELOW_A_SOURCE):
        if all(_in_source(below, spec) for spec in FILES):
            return below
    return source


def _source_given_as_root(root: str | os.PathLike) -> Path | None:
    """The folder holding the four files (as .gz or unpacked) when ``root``, given as a data
    root, is really a source: it holds them itself or in a folder of :data:`_BELOW_A_SOURCE`
    other than FashionMNIST/raw, which holds none of them. Else None."""
    raw = _raw_dir(root)
    if any(os.path.lexists(raw / name) for spec in FILES
           for name in (spec.name, f"{spec.name}.gz") if not _empty_leftover(raw / name)):
        return None
    folder = _files_folder(_root(root))
    return folder if all(_in_source(folder, spec) for spec in FILES) else None


def _source_as_root_error(root: str | os.PathLike, folder: Path) -> FashionMNISTError:
    """The files are right there, in ``folder``: say so, and how to make a data root of them,
    rather than that they are missing (or that a download failed)."""
    raw = _raw_dir(root)
    own = _own_root(raw)
    names = ", ".join(next(name for name in (f"{spec.name}.gz", spec.name)
                           if os.path.isfile(folder / name)) for spec in FILES)
    where = "itself" if folder == _root(root) else f"in {folder}"
    use = (f"--root {own}" if _ON_THE_COMMAND_LINE.get()
           else f"root={own!r} (a tool's --data {own})")
    return FashionMNISTError(
        f"{root} holds the four Fashion-MNIST files {where} ({names}), but it is given as the "
        f"data root, the folder that holds them in FashionMNIST/raw/: {raw} holds none of them. "
        f"{folder} is a source to prepare a data root from, not a data root.\n"
        f"How to fix it (in a terminal opened in {_current_folder()}): python -m "
        f"lenet_book.data prepare --source {folder} --root {own} "
        f"{'unpacks' if names.endswith('.gz') else 'copies'} and verifies them into "
        f"{_raw_dir(own)}" + (" (DIR: a folder you can write)" if own == "DIR" else "")
        + f", then use {use}; or move the four files into {raw}/. Nothing was created, deleted "
        "or downloaded.")


def _folder_key(name: str) -> str:
    """A folder's name as compared with FashionMNIST's ('fashion-mnist', 'Fashion_MNIST')."""
    return re.sub(r"[-_. ]", "", name.lower())


def _folders_named(folder: Path, key: str) -> list[Path]:
    """The folders in ``folder`` whose name is ``key`` spelt otherwise (:func:`_folder_key`)."""
    try:
        names = sorted(os.listdir(folder))
    except OSError:  # missing, or cannot be listed: only the published spelling is looked at
        return []
    return [folder / name for name in names
            if _folder_key(name) == key and os.path.isdir(folder / name)]


def _one_folder_off(root: str | os.PathLike) -> Path | None:
    """The folder one level off the raw folder that holds the four files (as .gz or unpacked),
    when the raw folder holds none of them: raw/raw or raw/FashionMNIST/raw (a cp -r into a
    folder that existed), FashionMNIST/FashionMNIST/raw, FashionMNIST/ itself, another spelling
    (FashionMNIST/Raw, fashion-mnist/raw), or data/FashionMNIST/raw (the repository root given
    as the root). Else None. A few stats and two listings: no file is read."""
    raw = _raw_dir(root)
    if any(os.path.lexists(raw / name) for spec in FILES
           for name in (spec.name, f"{spec.name}.gz") if not _empty_leftover(raw / name)):
        return None
    base = _root(root)
    fashion = base / "FashionMNIST"
    candidates = [raw / "raw", raw / "FashionMNIST" / "raw", fashion / "FashionMNIST" / "raw",
                  fashion]
    for folder in _folders_named(base, "fashionmnist"):  # fashion-mnist/, FashionMNIST/ ...
        candidates += [*_folders_named(folder, "raw"), folder]  # ... and their Raw/ or raw/
    candidates.append(base / "data" / "FashionMNIST" / "raw")
    return next((folder for folder in dict.fromkeys(candidates) if folder != raw
                 and all(_in_source(folder, spec) for spec in FILES)), None)


def _empty_leftover(path: Path) -> bool:
    """Whether ``path`` is an empty .gz, as a failed (offline) download leaves."""
    try:
        return path.name.endswith(".gz") and path.is_file() and path.stat().st_size == 0
    except OSError:
        return False


def _one_folder_off_error(root: str | os.PathLike, folder: Path) -> FashionMNISTError:
    """The four files are one folder off, in ``folder``: name it and how to move them (or the
    root to give), rather than call them missing, or download a second copy."""
    raw = _raw_dir(root)
    names = ", ".join(next(name for name in (spec.name, f"{spec.name}.gz")
                           if os.path.isfile(folder / name)) for spec in FILES)
    # a folder that is itself a data root's FashionMNIST/raw (not one inside raw/) may be given
    other = (str(folder.parent.parent) if folder.name == "raw"
             and folder.parent.name == "FashionMNIST" and raw not in folder.parents else None)
    use = (None if other is None else f"--root {other}" if _ON_THE_COMMAND_LINE.get()
           else f"root={other!r} (a tool's --data {other})")
    leftovers = [spec.name + ".gz" for spec in FILES if _empty_leftover(raw / f"{spec.name}.gz")]
    said = (f"Fashion-MNIST is not in {raw}, which holds none of the four files"
            + (f" (only empty {', '.join(leftovers)}, left by a failed download)" if leftovers
               else "") + f", but {folder} holds all four ({names})")
    if folder == _root(root) / "data" / "FashionMNIST" / "raw":  # the repository root, say
        return FashionMNISTError(
            f"{said}: {root} is the folder above the data root.\nHow to fix it: use {use}. "
            "Nothing was created, deleted or downloaded.")
    mkdir = "" if os.path.isdir(raw) else f"mkdir -p {shlex.quote(str(raw))} && "
    # a copy inside the folder it was to replace: raw/raw, FashionMNIST/FashionMNIST/raw
    nested = raw in folder.parents or raw.parent / "FashionMNIST" in folder.parents
    return FashionMNISTError(
        f"{said}, one folder off" + (" (a cp -r into a folder that already existed?)"
                                     if nested else "") + "; torchvision reads "
        f"them only from {raw}/.\nHow to fix it (in a terminal opened in {_current_folder()}): "
        f"move them there: {mkdir}mv {shlex.quote(str(folder))}/*-ubyte* "
        f"{shlex.quote(str(raw))}/" + (f", or use {use}" if use else "")
        + ". Nothing was created, deleted or downloaded.")


def find_local_copy() -> Path | None:
    """Return the first folder among $FASHION_MNIST_SOURCE and LOCAL_COPIES holding
    the four files, each as the .gz or unpacked (a data root: its FashionMNIST/raw)."""
    candidates = ([Path(os.environ["FASHION_MNIST_SOURCE"])]
                  if os.environ.get("FASHION_MNIST_SOURCE") else [])
    for folder in candidates + list(LOCAL_COPIES):
        folder = _files_folder(folder)
        if all(_in_source(folder, spec) for spec in FILES):
            return folder
    return None


def _source_problem(source: Path) -> str | None:
    """Say why ``source`` is not a folder this user can read, or None."""
    try:
        source.stat()
    except (FileNotFoundError, NotADirectoryError):
        if str(source).startswith("~"):
            return (f"the source folder {source} does not exist: it starts with '~', which "
                    "Python does not expand to the home folder (nor does a shell after '=', as "
                    "in --source=~/...); write the path in full.")
        return f"the source folder {source} does not exist."
    except OSError:
        pass  # _folder_problem names a folder that cannot be entered, or a link that loops
    problem = _folder_problem(source)
    return f"the source {problem}" if problem else None


def _check_source_variable() -> None:
    """$FASHION_MNIST_SOURCE, when set, must be a folder holding the four .gz files (or the
    unpacked files): one that is not is named with its value, rather than passed over for
    another copy."""
    value = os.environ.get("FASHION_MNIST_SOURCE")
    if not value:
        return
    folder = Path(value)
    files = _files_folder(folder)
    missing = [f"{spec.name}.gz" for spec in FILES if not _in_source(files, spec)]
    problem = _source_problem(folder) or (
        f"the folder {folder} lacks {', '.join(missing)}." if missing else None)
    if problem:
        where = "" if folder.is_absolute() else f" (= {os.path.abspath(folder)})"
        raise FashionMNISTError(
            f"$FASHION_MNIST_SOURCE is set to {value!r}{where}, but {problem}\n"
            "It must be a folder holding the four published *-ubyte.gz files (or the four "
            "unpacked files, as another checkout's data/FashionMNIST/raw).\n"
            "How to fix it: set it to such a folder (export FASHION_MNIST_SOURCE=DIR), or unset "
            "it (unset FASHION_MNIST_SOURCE) to use the first local copy found, or give --source "
            "DIR.")


def prepare_fashion_mnist(source: str | os.PathLike | None = None,
                          root: str | os.PathLike = "data") -> Path:
    """Unpack the four .gz files from ``source`` into ``root/FashionMNIST/raw`` and verify them.

    ``source`` may hold the unpacked files instead (another checkout's data/FashionMNIST/raw):
    they are copied, and verified by the same MD5 sums.

    With no ``source``, the first local copy that :func:`find_local_copy` finds is used; a
    ``$FASHION_MNIST_SOURCE`` that is set but not such a copy is refused, naming its value. When
    the four files are already correct, no copy is needed (nothing is looked for). A source may
    also be a folder above the files: a data root, or a clone of Zalando's repository.
    Files already there and correct are kept; a stale torchvision ``processed/`` cache is
    deleted (see :func:`remove_stale_cache`). Works offline, and several runs at once on the
    same root are safe. Returns the raw folder.
    """
    raw = _raw_dir(root)
    folder = _folder_problem(raw)
    if folder:
        raise _folder_error(folder, f"prepare Fashion-MNIST in {raw}", root)
    _check_not_too_deep(root)
    _check_no_stray_space(root)
    _check_no_tilde(root)
    if source is not None and not str(source).strip():
        raise FashionMNISTError(
            "The source folder is empty text (--source \"\"): give the folder that holds the four "
            "*-ubyte.gz files, or leave --source out to use a local copy.\n" + _how_to_fix(root))
    if source is not None:
        _check_source_kind(source, root)
    todo = [spec for spec in FILES if _problem(raw / spec.name, spec) is not None]
    if source is None and todo:  # data already ready need no copy (make data, gpu_check)
        _check_source_variable()
        folder = _one_folder_off(root)  # the user's own copy, misplaced: not a second one
        if folder is not None:
            raise _one_folder_off_error(root, folder)
        source = find_local_copy()
        if source is None:
            folder = _source_given_as_root(root)  # the root itself holds the files
            if folder is not None:
                raise _source_as_root_error(root, folder)
            source = _no_local_copy(raw, todo, root)
        _check_source_kind(source, root)
    if source is not None:
        source = _files_folder(Path(source))
    for spec in todo:
        if os.path.isdir(raw / spec.name):
            raise FashionMNISTError(f"Cannot prepare Fashion-MNIST in {raw}: "
                                    f"{_problem(raw / spec.name, spec)}")
        gz = _source_file(source, spec, raw / spec.name)
        if gz is None:
            misnamed = _misnamed(source, spec)
            raise FashionMNISTError(
                (f"{source / spec.name}.gz is missing, but a file {misnamed[0]} is there: give it "
                 f"its published name, {misnamed[1]} "
                 f"({_mv(source / misnamed[0], source / misnamed[1])}), or copy the four "
                 "files under their published names into a folder of your own and give that "
                 "one as the source. The"
                 if misnamed else f"{source / spec.name}.gz is missing: the")
                + " source folder must hold the four "
                f"published .gz files ({', '.join(s.name + '.gz' for s in FILES)}), or the "
                "four unpacked files (another checkout's data/FashionMNIST/raw, checked by "
                "their MD5 sums).\n" + _how_to_fix(root))
        if os.path.isdir(gz):
            raise FashionMNISTError(f"{gz} is a folder, not the published {gz.name} file.\n"
                                    + _how_to_fix(root))
        try:
            regular = stat.S_ISREG(os.stat(gz).st_mode)
        except OSError as error:
            raise FashionMNISTError(f"Cannot read the source file {gz}: {_os_words(error)}.\n"
                                    + (_permission_fix() if isinstance(error, PermissionError)
                                       else f"Replace it with the published {gz.name}."
                                       )) from None
        if not regular:  # reading a pipe would wait for a writer forever
            raise FashionMNISTError(f"{gz} is not a regular file (a pipe, socket or device), so "
                                    f"it is not read: put the published {gz.name} there.")
    created = _folders_to_create(raw) if todo else []
    if todo:  # only a folder that must be written to needs to be writable
        try:
            raw.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            problem = _folder_problem(raw, write=True) or _os_problem(error, raw)
            raise _folder_error(problem, f"create the data folder {raw}", root) from None
        folder = _folder_problem(raw, write=True)
        if folder:
            raise _folder_error(folder, f"prepare Fashion-MNIST in {raw}", root)
    held = _use_folder(raw) if todo else None
    try:
        _remove_stale_partials(raw)
        foreign = _foreign_cache_problem(root)  # said before any work
        if foreign:
            raise FashionMNISTError(foreign)
        for spec in todo:
            _gunzip_verified(_source_file(source, spec, raw / spec.name), spec, raw / spec.name,
                             root)
        remove_stale_cache(root)  # the raw files are verified: it only duplicates them now
    except BaseException:  # a failed first prepare leaves no empty folders behind
        held, fd = None, held
        _remove_unless_in_use(created, raw, fd)
        raise
    finally:
        if held is not None:
            os.close(held)
    return check_fashion_mnist(root)


class _NoLocalCopy(FashionMNISTError):
    """prepare found no local copy: ``prepare --download`` then lets torchvision download."""


def _no_local_copy(raw: Path, todo: list[IdxFile], root: str | os.PathLike) -> Path:
    """prepare without a source, and no local copy: the learner's own .gz files in ``raw`` (a
    browser download saved there, a download left packed) are the source, when ``raw`` can be
    written; else what ``raw`` holds is named as check names it, with check's fix. The general
    advice, whose online fix deletes ``raw``, is left for a folder holding no copy of theirs."""
    gz = [raw / f"{spec.name}.gz" for spec in todo]
    packed = all(os.path.isfile(path) and not _empty_leftover(path) for path in gz)
    if packed and _writable(raw):
        return raw  # unpacked and verified where they are; the .gz files are kept
    damaged = _damaged_here(raw, todo)
    lines = _raw_problems(raw, todo)
    leftovers = _leftovers_beside_files(raw) if _writable(raw) else []
    if leftovers:
        raise FashionMNISTError(damaged + _replace_leftovers(root, leftovers))
    if packed:  # a shared, read-only folder: unpacked into a data root of one's own
        raise FashionMNISTError(damaged + _unpack_here(root))
    if lines and all(line.endswith(_RENAME_END) for line in lines):
        raise FashionMNISTError(
            damaged + "How to fix it: rename the files as said above (torchvision reads only "
            f"these names), then prepare again.\n(Paths are relative to {_current_folder()}.)")
    nearby = None if damaged else _nearby_root(root)  # 'data' run in notebooks/: ../data
    if nearby is not None:
        raise FashionMNISTError(
            f"Fashion-MNIST is not in {raw}, but the four files are in {_raw_dir(nearby)} "
            f"(paths relative to {_current_folder()}): did you mean {_root_option()} {nearby}?"
            " Nothing was created, deleted or downloaded.")
    raise _NoLocalCopy(
        damaged + "No local copy of Fashion-MNIST was found (looked at $FASHION_MNIST_SOURCE, "
        + ", ".join(f"{p} (= {os.path.abspath(p)})" if not p.is_absolute() else str(p)
                    for p in LOCAL_COPIES) + ").\n" + _cache_alone(root) + _how_to_fix(root))


def _cache_alone(root: str | os.PathLike) -> str:
    """A line naming the kept old cache, which stops a download until it is moved aside."""
    if not _stale_cache(root):
        return ""
    processed = _processed_dir(root)
    return (f"{processed} holds torchvision's old cache (training.pt, test.pt), which the book "
            "does not use and keeps; it stops a download (torchvision loads it instead): move it "
            f"aside first, {_mv(processed, f'{processed}.old')}, as said below.\n")


def _damaged_here(raw: Path, todo: list[IdxFile]) -> str:
    """What is wrong with the files already in ``raw`` (as check says it), when some are there,
    packed or under another spelling included: a hand copy cut short is named, not hidden
    behind 'no local copy was found'. Else '' (empty .gz files a failed download left, only)."""
    lines = _raw_problems(raw, todo)
    if all(line == f"{raw / spec.name} is missing." or "left by a failed download" in line
           for spec, line in zip(todo, lines)):
        return ""
    return ("Fashion-MNIST is not ready in " + str(raw) + ":\n"
            + "".join(f"  - {line}\n" for line in lines))


def _folders_to_create(folder: Path) -> list[Path]:
    """The folders that ``folder.mkdir(parents=True)`` would create, deepest first."""
    missing = []
    while not os.path.lexists(folder) and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _use_folder(raw: Path) -> int | None:
    """Hold a shared lock on the folder ``raw`` while this run writes in it; returns its fd (None
    where folders cannot be locked). A failed run removes the folders it created only when no
    other run holds one (:func:`_remove_unless_in_use`); one removed just before it was locked
    is made again."""
    if fcntl is None:
        return None
    for _ in range(20):
        try:
            raw.mkdir(parents=True, exist_ok=True)
            fd = os.open(raw, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return None  # mkstemp then says what is wrong with the folder
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
        except OSError:  # a file system without locks
            os.close(fd)
            return None
        try:
            if os.path.samestat(os.fstat(fd), os.stat(raw)):
                return fd
        except OSError:
            pass  # removed by a failed run while this one waited for the lock: made again
        os.close(fd)
    return None


def _remove_unless_in_use(folders: list[Path], raw: Path, fd: int | None = None) -> None:
    """Remove those of ``folders`` (deepest first) that are empty, as :func:`_remove_if_empty`,
    unless another run holds ``raw`` (:func:`_use_folder`): it is about to write there. ``fd``
    is this run's own hold on ``raw``, closed here."""
    try:
        if fcntl is not None:
            if fd is None:
                fd = os.open(raw, os.O_RDONLY | os.O_DIRECTORY)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while another run holds it
        _remove_if_empty(folders)
    except FileNotFoundError:
        _remove_if_empty(folders)  # no raw folder: nobody writes in it
    except OSError:
        pass  # another run is writing there (or no locks): its folders stay
    finally:
        if fd is not None:
            os.close(fd)


def _remove_if_empty(folders: list[Path]) -> None:
    """Remove ``folders`` (deepest first) that are still empty; another run's files stay."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def _check_source_kind(source, root: str | os.PathLike) -> None:
    """``source`` must be a path of a folder this user can read (an archive or a single file is
    named with what to give instead)."""
    if isinstance(source, bytes) or not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"the source must be a folder path (a str or pathlib.Path) that holds the "
                        f"four *-ubyte.gz files, got {source!r} ({_a_kind(source)})")
    source = Path(source)
    source_problem = _source_problem(source)
    if source_problem:
        fix = (f"How to fix it: give this user read access to {source} and its files (e.g. as "
               f"their owner: chmod -R a+rX {source}), or copy the .gz files to a folder it can "
               "read and pass that one."
               if "no permission" in source_problem else
               "How to fix it: mend that symbolic link (ls -l shows where it points) or remove "
               "it, or give --source (or $FASHION_MNIST_SOURCE) another folder."
               if "points to itself" in source_problem else _how_to_fix(root))
        raise FashionMNISTError(
            f"Cannot prepare Fashion-MNIST from {source}: {source_problem}\n"
            "--source (or $FASHION_MNIST_SOURCE) must be a folder holding the four published "
            "*-ubyte.gz files (or the four unpacked files).\n" + _archive_hint(source) + fix)


_ARCHIVES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.xz", ".tar.bz2")


def _archive_hint(source: Path) -> str:
    """What to give instead of a file given as the source: the folder an archive unpacks to, or
    the folder of one of the four files. Else ''."""
    if not os.path.isfile(source):
        return ""
    name = source.name.lower()
    if name.endswith(_ARCHIVES):
        unpack = f"unzip {source}" if name.endswith(".zip") else f"tar xf {source}"
        return (f"{source} is an archive: unpack it first ({unpack}) and give the folder that "
                "holds the four files it unpacks to.\n")
    if any(name in (spec.name, f"{spec.name}.gz") for spec in FILES):
        return (f"{source} is one of the four files: give the folder that holds all four, "
                f"--source {source.parent}.\n")
    return ""


def _where_the_chapters_look(root, nearby) -> str:
    """The second way out of a nearby root: run where the chapters' '../data' is that folder,
    or, from notebooks/ (a prepare run there made notebooks/data), move it up to ../data."""
    if os.path.normpath(nearby) != "data" or Path(os.path.normpath(root)).name != "data":
        return ""  # a root spelt in other letter case: only its spelling is wrong
    if os.path.basename(os.path.abspath(os.curdir)) != "notebooks":
        return ", or run from notebooks/, where the chapters' '../data' is that folder"
    if os.path.normpath(root) != os.path.normpath("../data"):
        return ""
    if not os.path.lexists("../data"):
        return ", or move it where the chapters look: mv data ../data"
    if not os.path.lexists("../data/FashionMNIST"):
        return ", or move it where the chapters look: mv data/FashionMNIST ../data/"
    if not os.path.lexists("../data/FashionMNIST/raw"):
        return (", or move it where the chapters look: mv data/FashionMNIST/raw "
                "../data/FashionMNIST/")
    if _only_leftovers(Path("../data/FashionMNIST/raw")):  # a failed download's
        return (", or move its files where the chapters look: mv data/FashionMNIST/raw/* "
                "../data/FashionMNIST/raw/")
    return ""


def _only_leftovers(folder: Path) -> bool:
    """Whether ``folder`` is empty but for the empty .gz files a failed download leaves."""
    try:
        return all(_empty_leftover(folder / name) for name in os.listdir(folder))
    except OSError:
        return False


def ensure_fashion_mnist(root: str | os.PathLike = "../data", download: bool = True) -> Path:
    """Make sure Fashion-MNIST is ready under ``root`` before a chapter loads it.

    Correct files: nothing to do. None of the files: torchvision downloads them when
    ``download`` is true and the machine is online. Anything else (a file missing, truncated,
    with a wrong header or sum, a folder that cannot be read, or no network):
    FashionMNISTError saying what and how to fix. A stale torchvision ``processed/`` cache,
    which torchvision would load instead of the verified raw files, is deleted with a message
    once the raw files are verified (see :func:`remove_stale_cache`), so what a chapter loads
    is what was checked; without them it is kept, as it may be the folder's only copy.
    """
    # numpy's False too (check_flags takes it); a wrong kind is refused inside
    off = download is False or (type(download).__module__ == "numpy"  # bool_, or bool in numpy 2
                                and type(download).__name__ in ("bool_", "bool") and not download)
    token = _DOWNLOAD_OFF.set(off)
    try:
        return _ensure_fashion_mnist(root, download)
    finally:
        _DOWNLOAD_OFF.reset(token)


def _ensure_fashion_mnist(root: str | os.PathLike, download: bool) -> Path:
    if not isinstance(download, bool):  # 'no' would count as True and try the network
        from lenet_book.checks import check_flags  # imports torch: only when needed

        check_flags(download=download)  # numpy's bool passes, as for the other flags
    raw = _raw_dir(root)
    folder = _folder_problem(raw)
    if folder:
        raise _folder_error(folder, f"read Fashion-MNIST in {raw}", root)
    _check_not_too_deep(root)
    _check_no_stray_space(root)
    _check_no_tilde(root)
    _check_root_folder(_root(root))
    foreign = _foreign_cache_problem(root)
    if foreign:
        raise FashionMNISTError(foreign)
    if raw.is_dir():
        _remove_stale_partials(raw)
    present = [spec for spec in FILES if os.path.lexists(raw / spec.name)]
    packed = all(os.path.isfile(raw / f"{spec.name}.gz")
                 and not _empty_leftover(raw / f"{spec.name}.gz") for spec in FILES)
    shared = all(os.path.isfile(raw / f"{spec.name}.gz") for spec in FILES) and not _writable(raw)
    if not present:
        folder = _source_given_as_root(root)  # torchvision would download a second copy
        if folder is not None:
            raise _source_as_root_error(root, folder)
        folder = _one_folder_off(root)  # the same, beside files one folder off
        if folder is not None:
            raise _one_folder_off_error(root, folder)
        gz = [raw / f"{spec.name}.gz" for spec in FILES]
        nearby = (None if any(os.path.isfile(p) and not _empty_leftover(p) for p in gz)
                  else _nearby_root(root))  # '../data' run from the repository root
        if nearby is not None:
            use = (f"--root {nearby}" if _ON_THE_COMMAND_LINE.get()
                   else f"root={nearby!r} (a tool's --data {nearby})")
            raise FashionMNISTError(
                f"Fashion-MNIST is not in {raw}, but the four files are in {_raw_dir(nearby)} "
                f"(paths relative to {_current_folder()}): give {use}"
                + _where_the_chapters_look(root, nearby)
                + ". Nothing was created, deleted or downloaded.")
        if any(_misnamed(raw, spec) for spec in FILES):  # a rename, not a second copy beside
            check_fashion_mnist(root)
    if not present and download and packed and not shared:
        # unpacked and verified here: torchvision would try to download a damaged .gz again and
        # say only that the download failed (offline), leaving the others unpacked unverified
        return prepare_fashion_mnist(raw, root)
    if not present and download and not shared and _stale_cache(root):
        try:  # torchvision would load the cache: kept, and named; its mv leads, as it unblocks
            return check_fashion_mnist(root)
        except FashionMNISTError as error:
            raise FashionMNISTError(_cache_blocks_the_download(root) + str(error)) from None
    if not present and download and not shared:  # shared: torchvision would unpack them there
        new = _folders_to_create(raw)  # torchvision creates them all: removed if it fails
        if _ON_THE_COMMAND_LINE.get():  # prepare --download: said once nothing else stops it
            print("No local copy of Fashion-MNIST was found: downloading it with torchvision ...",
                  file=sys.stderr)
        leftovers = _leftovers_beside_files(raw)
        try:
            import torchvision

            for train in (True, False):
                torchvision.datasets.FashionMNIST(root=str(root), train=train, download=True)
        except Exception as error:  # torchvision raises several kinds when offline
            if raw in new:
                _remove_unless_in_use(new, raw)  # a prepare started meanwhile may write there
            else:
                _remove_empty_folders(new)
            # torchvision unpacks each file as it goes: those before the failure are there now
            unpacked = [spec.name for spec in FILES if os.path.lexists(raw / spec.name)]
            raise FashionMNISTError(
                f"Fashion-MNIST is {'not complete' if unpacked else 'not'} in {raw}"
                f"{':' if unpacked else ' and'} torchvision could not download it "
                f"({type(error).__name__}: {error})"
                + (f"; it had unpacked {', '.join(unpacked)} there first (kept).\n" if unpacked
                   else ".\n")
                + _rejected_gz(raw, replaced=bool(leftovers))
                + (_replace_leftovers(root, leftovers) if leftovers else _how_to_fix(root))
            ) from None
    if _stale_cache(root) and all(_problem(raw / spec.name, spec) is None for spec in FILES):
        remove_stale_cache(root)  # only once the raw files are verified: else a copy is lost
    return check_fashion_mnist(root)


def _cache_blocks_the_download(root: str | os.PathLike) -> str:
    """The first line when only the old cache stops a download: the mv that unblocks it."""
    processed = _processed_dir(root)
    again = ("python -m lenet_book.data prepare --download --root "
             f"{shlex.quote(os.fspath(root))}" if _ON_THE_COMMAND_LINE.get()
             else f"ensure_fashion_mnist({os.fspath(root)!r})")
    return (f"No download was tried: {processed} holds torchvision's old cache, which torchvision "
            f"loads instead of downloading. Move it aside first "
            f"({_mv(processed, f'{processed}.old')}), "
            f"then run {again} again to download the files.\n")


def _rejected_gz(raw: Path, replaced: bool = False) -> str:
    """A line naming the .gz files in ``raw`` whose MD5 is not the published one: torchvision
    downloads those again, so a damaged one reads as a failed download. Else ''. ``replaced``:
    the empty leftovers get :func:`_replace_leftovers`' fix below (the other files were kept, so
    no later download comes): pointed to, not promised a download."""
    rejected, empty = [], []
    for spec in FILES:
        gz = raw / f"{spec.name}.gz"
        try:
            if _empty_leftover(gz):  # no file of the learner's: named as check names it
                empty.append(gz)
            elif os.path.isfile(gz) and _md5(gz) != spec.gz_md5:
                rejected.append(f"{gz} (expected MD5 {spec.gz_md5})")
        except OSError:
            pass
    return ((f"{', '.join(map(str, empty))} {'is' if len(empty) == 1 else 'are'} empty (left by "
             "an earlier failed download): nothing of yours is lost; "
             + (f"delete {'it' if len(empty) == 1 else 'them'} and fetch "
                f"{'that file' if len(empty) == 1 else 'those files'} alone, as below.\n"
                if replaced else
                f"the next download replaces {'it' if len(empty) == 1 else 'them'}, or delete "
                f"{'it' if len(empty) == 1 else 'them'} (rm {' '.join(map(str, empty))}).\n")
             if empty else "")
            + ("torchvision tried to download again, as they are not the published files: "
               + ", ".join(rejected) + ". Replace or delete them.\n" if rejected else ""))


def _remove_empty_folders(folders: list[Path]) -> None:
    """Remove those of ``folders`` (deepest first) that are empty: the tree a failed download
    created (a mistyped root would otherwise be left behind as nodata/FashionMNIST/raw). A
    folder holding anything, a file of another run included, is kept."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            pass


def _for_the_terminal(message: str, root: str | os.PathLike) -> str:
    """The command line's message: when the data folder holds some of the four files and only a
    few are wrong (one truncated or swapped), what is wrong and one fix, instead of the three
    ways to get the data from scratch."""
    copy = find_local_copy()
    if "No local copy of Fashion-MNIST was found" in message or copy is None:
        return message  # the fix below needs a local copy: else the full advice
    what, _, _ = message.partition(_how_to_fix(root))
    lines = what.rstrip("\n").splitlines()
    wrong = [line for line in lines if line.startswith("  - ")]
    missing = [line for line in wrong if line.endswith(" is missing.")]
    if not what or what == message or not wrong or len(missing) == len(FILES):
        return message
    return (what.rstrip("\n") + "\nHow to fix it: python -m lenet_book.data prepare --root "
            f"{root} (run in {Path.cwd()}) unpacks and verifies the four files again from the "
            f"local copy in {copy}.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lenet_book.data",
                                     description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    prepare = commands.add_parser("prepare",
                                  help="unpack and verify a local copy into ROOT/FashionMNIST/raw")
    prepare.add_argument("--source", help="folder with the four *-ubyte.gz files, or the "
                         "unpacked files of another data/FashionMNIST/raw (default:"
                         " $FASHION_MNIST_SOURCE, ../shared/data/FashionMNIST/raw, "
                         "/usr/share/datasets/fashion-mnist)")
    prepare.add_argument("--root", default="data", help="data root that d2l reads, a folder "
                         "(default: data, relative to the current folder)")
    prepare.add_argument("--download", action="store_true", help="when no local copy is found "
                         "and ROOT holds none of the files, let torchvision download them "
                         "(make data)")
    check = commands.add_parser("check", help="verify ROOT/FashionMNIST/raw")
    check.add_argument("--root", default="data")
    args = parser.parse_args(argv)
    on_the_command_line = _ON_THE_COMMAND_LINE.set(True)
    asked = _DOWNLOAD_ASKED.set(args.command == "prepare" and args.download)
    already = args.command == "prepare" and _ready(args.root)
    try:
        if args.command == "prepare":
            try:
                raw = prepare_fashion_mnist(args.source, args.root)
            except _NoLocalCopy as error:
                if not args.download or not str(error).startswith("No local copy"):
                    raise  # damaged files here: a download would not replace them
                raw = ensure_fashion_mnist(args.root)  # says so when it downloads
        else:
            raw = check_fashion_mnist(args.root)
    except FashionMNISTError as error:
        try:
            print(f"error: {_for_the_terminal(str(error), args.root)}", file=sys.stderr)
        except FashionMNISTError:  # the current folder is gone: the message alone
            print(f"error: {error}", file=sys.stderr)
        return 1
    except (ValueError, TypeError) as error:  # the root's own checks (a file, a dangling link)
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # one not foreseen above: still a message, not a traceback
        try:
            print(f"error: {_os_problem(error)}.\n{_how_to_fix(args.root)}", file=sys.stderr)
        except FashionMNISTError as gone:
            print(f"error: {_os_problem(error)}. {gone}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: no half-written file is kept; run the command again.", file=sys.stderr)
        return 130
    finally:
        _ON_THE_COMMAND_LINE.reset(on_the_command_line)
        _DOWNLOAD_ASKED.reset(asked)
    print(f"Fashion-MNIST ready in {raw}: 4 files, MD5 sums verified"
          + (" (they were already there: nothing to unpack)." if already else "."))
    return 0


def _ready(root) -> bool:
    """Whether the four files under ``root`` are already correct (a bad root: False, and the
    command says why)."""
    try:
        return all(_problem(_raw_dir(root) / spec.name, spec) is None for spec in FILES)
    except (FashionMNISTError, TypeError, ValueError, OSError):
        return False


if __name__ == "__main__":
    sys.exit(main())
