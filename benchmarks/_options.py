"""The checks both benchmarks (train_speed.py, accuracy_seeds.py) make of their options before any
run, with lenet_book's own checks and words: the device, the data folder, --subset, and the
--json record, which replaces only a record of the same kind (written whole, through a temporary
file), so that no other file is ever lost, and which one run at a time holds (hold_record)."""

from __future__ import annotations

import atexit
import errno
import hashlib
import json
import os
import stat
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock, so no lock (as lenet_book.data)
    fcntl = None

TRAIN_IMAGES = 60_000  # Fashion-MNIST's training set


def check_device_option(parser, device, auto=False):
    """``--device`` as lenet_book.checks.check_device takes it (a torch.device); else the parser's
    error with its words (``auto``: the script also takes --device auto)."""
    from lenet_book.checks import check_device

    try:
        return check_device(device, "--device")
    except (TypeError, ValueError) as error:
        parser.error(f"{error}" + (" (here: --device auto)" if auto else ""))


def check_data_option(parser, root):
    """``--data`` holds Fashion-MNIST (downloaded first when none of its files are there, as every
    loader of lenet_book does), checked once here, before any run; else the parser's error with
    lenet_book.data's words."""
    from lenet_book.data import FashionMNISTError, ensure_fashion_mnist, too_deep_root

    try:  # nothing may be created under a data folder given too deep
        parent = too_deep_root(root)
    except (TypeError, ValueError) as error:  # an empty root, a file: lenet_book's message
        parser.error(f"--data {root!r}: {error}")
    if parent is not None:
        parser.error(f"--data {root} is too deep: it is the FashionMNIST folder (or its raw "
                     f"folder) itself; give the folder that holds FashionMNIST/: --data {parent}")
    try:
        ensure_fashion_mnist(root)
    except (FashionMNISTError, ValueError) as error:  # missing or damaged files: nothing was run
        parser.error(f"--data {root}: {error}")


def check_subset_option(parser, subset, least=1, why=None):
    """``--subset``: 0 for all 60,000 training images, else ``least`` to 60,000 of them (``why``
    the least)."""
    if subset != 0 and not least <= subset <= TRAIN_IMAGES:
        parser.error(f"--subset must be a number of training images to train on, {least:,} to "
                     f"{TRAIN_IMAGES:,}" + (f" ({why})" if why else "") + f", or 0 for all "
                     f"{TRAIN_IMAGES:,} (the default), got {subset}")


def _white_space(option, text):
    """Why ``text``, a file or folder the tool writes (``option``), is refused: a name in it that
    starts or ends with white space (a space, a pasted newline) and is not there already, as
    tools/export_weights.py's --out and save_checkpoint refuse it; or None. The one home of this
    check for the benchmarks' --json, colab_check's --record and gpu_check's --out and $OUT."""
    path = Path(text)
    for index, part in enumerate(path.parts):
        if part != part.strip() and not os.path.lexists(Path(*path.parts[:index + 1])):
            return (f"{option} {os.fspath(text)!r} has a name that starts or ends with white "
                    "space (a space or a pasted newline), which a file or folder name almost "
                    "never means; write it without")
    return None


def _standard_output(option, text, example):
    """Why ``text``, a record the tool writes (``option``), is refused when it is '-', which many
    tools read as standard output but open() makes a file named '-'; or None. The one home of this
    check for the benchmarks' --json and colab_check's --record (``example``: a file to give)."""
    if text != "-":
        return None
    return (f"{option} - would write a file named '-' here: the record is a file, which is read "
            f"again and replaced, not standard output; give a file name, e.g. {option} {example} "
            f"(or {option} ./- for a file named '-')")


def _not_local(option, text):
    """Why ``text``, a file or folder the tool writes (``option``), is refused: a URL, or a path on
    Google Drive while Drive is not mounted (lenet_book.data's words), which would become local
    folders ('https:') written only after the whole run; or None. The one home of this check for
    the benchmarks' --json, colab_check's --record and gpu_check's --out and $OUT."""
    from lenet_book.data import _not_a_local_path

    problem = _not_a_local_path(text)
    return None if problem is None else f"{option} {os.fspath(text)} {problem}"


def check_record_option(parser, path, is_record, kind, option="--json"):
    """``--json``: a file this script may write, checked before any run. It may not exist yet, or
    be empty, or hold a record that ``is_record`` (a function of the parsed JSON) accepts, the
    ``kind`` of record this script wrote there before; any other file is kept, and refused.
    Returns the path (a Path); the parser's error otherwise."""
    from tools.export_training_subset import _too_long, cannot_replace  # as export_weights does

    if not path:
        parser.error(f"{option} is empty (''): give the file to write the record to, e.g. "
                     f"{option} results.json")
    text = os.fspath(path)
    problem = _standard_output(option, text, "results.json") or _not_local(option, text)
    if problem:  # checked on the text as given: Path() makes 'https://x' 'https:/x'
        parser.error(f"{problem}; nothing was run")
    problem = _white_space(option, text)
    if problem:  # the record would be written, after every run, to a name nobody reads
        parser.error(f"{problem}; nothing was run")
    if os.path.basename(text) in ("", ".") and not os.path.isdir(text):  # Path() drops the slash
        parser.error(f"{option} {text} ends in a slash, so it names a folder, which does not exist; give a "
                     f"file name, e.g. {option} {os.path.join(text, 'results.json')}; nothing was run")
    if str(path).startswith("~") and not os.path.lexists(path):
        parser.error(f"{option} {path} starts with '~', which Python does not expand to the home "
                     "folder (it would name a folder called '~' here); write the path in full, "
                     f"e.g. {option} {os.path.expanduser(path)}; nothing was run")
    path = Path(path)
    problem = _too_long(path)
    if problem:  # pathlib's is_dir() raises on it
        parser.error(f"{option} {path}: {problem}; give a shorter {option}; nothing was run")
    if path.is_dir():
        parser.error(f"{option} {path} is a folder; give the path of a file in it, e.g. "
                     f"{option} {path / 'results.json'}; nothing was run")
    above = next((folder for folder in path.parents if os.path.lexists(folder)), None)
    if above is not None and not above.is_dir():  # mkdir would fail once the runs are done
        parser.error(f"{option} {path}: {above} is a file, not a folder; give another {option}; nothing was run")
    problem = cannot_replace(path, option)
    if problem:
        parser.error(f"{option} {path}: {problem}; nothing was run")
    if os.path.exists(path) and not os.path.isfile(path):  # reading a pipe would wait for ever
        parser.error(f"{option} {path} is a device, pipe or socket, not a file, so it is kept as it is; give "
                     f"the path of a file; nothing was run")
    try:
        # utf-8-sig: a record saved with a byte-order mark (a Windows editor) is still its own
        text = Path(os.path.realpath(path)).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return path  # a new file
    except OSError as error:
        parser.error(f"{option} {path} cannot be read ({error.strerror or error}) to check that this script "
                     f"wrote it; give another {option}; nothing was run")
    except ValueError:
        text, problem = None, "it is not text"
    if text is not None and text.strip():  # an empty file holds nothing to lose
        try:
            problem = None if is_record(json.loads(text)) else "it is JSON of another kind"
        except ValueError:
            problem = "it is not JSON"
        except RecursionError:  # json's own limit: no record is nested so deep
            problem = "it is damaged: its JSON is nested too deeply for Python to read"
    if problem:
        parser.error(f"{option} {path} exists and is not {kind}, which this script writes ({problem}): "
                     f"nothing was run, so nothing of it is lost; give another {option}, or move that "
                     "file away")
    return path


def read_record(path):
    """The parsed JSON of ``path`` (a file check_record_option accepted), None where it holds
    none (missing or empty), or its problem in words (a str)."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")  # a byte-order mark is no damage
        return json.loads(text) if text.strip() else None
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError) as error:
        return f"{type(error).__name__}: {error}"


def write_record(record, path, indent=2):
    """Write ``record`` as JSON to ``path`` through a temporary file (lenet_book.data's
    replaced_atomically), so that the file always holds a whole record; through a symbolic link,
    the file it points to is written."""
    from lenet_book.data import replaced_atomically

    target = Path(os.path.realpath(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    with replaced_atomically(target, "w", encoding="utf-8") as f:
        f.write(json.dumps(record, indent=indent) + "\n")


_held = {}  # lock file -> (its descriptor, the folders made for it), while this process holds it


def lock_name(name):
    """The name of the lock file of the record ``name``: ``.<name>.lock``, or, where that would
    be longer than a file name may be (255 bytes), the name cut short with a hash of the whole."""
    lock = f".{name}.lock"
    if len(os.fsencode(lock)) <= 255:
        return lock
    digest = hashlib.sha256(os.fsencode(name)).hexdigest()[:16]
    short = os.fsencode(name)[:200].decode("utf-8", "ignore")  # whole characters
    return f".{short}.{digest}.lock"


def _kind(mode):
    """What a file of mode ``mode`` (not a regular file) is, in words."""
    return ("a symbolic link" if stat.S_ISLNK(mode) else "a named pipe" if stat.S_ISFIFO(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "not a regular file")


def hold_record(parser, path, option="--json"):
    """Hold the record ``path`` (an flock on a hidden ``.<name>.lock`` beside the file it names)
    until :func:`release_records` or the end of the process, so that two runs never write one
    record: each rewrites it whole from its own runs, and the last writer would drop the other's.
    A record another run holds is refused (the parser's error), before any run; so is a lock path
    that is not a lock file of this script (a link, a pipe, a user's file), which is kept."""
    if fcntl is None:
        return
    target = Path(os.path.realpath(path))
    lock = target.parent / lock_name(target.name)
    if str(lock) in _held:
        return
    made = [folder for folder in (target.parent, *target.parent.parents) if not folder.exists()]
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        parser.error(f"{option} {path}: its folder {target.parent} cannot be made ({error.strerror or error}); "
                     f"give another {option}; nothing was run")

    def not_ours(what):
        _remove_folders(made)
        parser.error(f"{option} {path}: its lock file {lock} is {what}, not a lock file this script made, so it "
                     f"is left as it is and nothing was run; remove it (rm {lock}) if it is nothing of yours, "
                     f"or give another {option}")

    while True:
        try:  # never opened through a link, nor opened at all when it is a pipe or a device
            mode = os.lstat(lock).st_mode
        except OSError:  # missing (made below), or a problem that os.open names
            mode = None
        if mode is not None and not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):  # os.open names a folder
            not_ours(_kind(mode))
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
        except OSError as error:
            if error.errno == errno.ELOOP:  # made a link since lstat
                not_ours("a symbolic link")
            _remove_folders(made)
            parser.error(f"{option} {path}: its lock file {lock} cannot be made ({error.strerror or error}), "
                         f"so two runs could write it at once; give another {option}; nothing was run")
        held = os.fstat(fd)
        if not stat.S_ISREG(held.st_mode) or held.st_nlink > 1:  # a hard link: another name's file
            os.close(fd)
            not_ours(_kind(held.st_mode) if not stat.S_ISREG(held.st_mode)
                     else f"a file with {held.st_nlink} names (hard links)")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # another run holds it
            holder = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            parser.error(f"{option} {path} is being written by another run ("
                         + (f"process {holder}, " if holder.isdigit() else "")
                         + f"which holds {lock}): the two would each write their own runs over the other's. "
                         f"Wait for it to end, or give another {option}; nothing was run")
        try:  # the holder before us removes the file as it ends: hold the one now at that path
            same = os.path.samestat(os.stat(lock, follow_symlinks=False), os.fstat(fd))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    # what a lock file of this script holds: nothing, or the process id of the run that held it
    held_text = os.read(fd, 64).strip()
    if held_text and not held_text.isdigit() or os.fstat(fd).st_size > 64:
        os.close(fd)
        not_ours("a file that holds something other than a process id")
    os.lseek(fd, 0, os.SEEK_SET)
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _held[str(lock)] = (fd, made)


def release_records():
    """Release the records this process holds (hold_record), removing their lock files, and the
    folders made for them if nothing was written there."""
    for lock, (fd, made) in list(_held.items()):
        del _held[lock]
        try:
            os.unlink(lock)  # while still held, so that no other run holds a removed file
        except OSError:
            pass
        os.close(fd)
        _remove_folders(made)


def _remove_folders(made):
    for folder in made:  # deepest first; one that holds something stays
        try:
            folder.rmdir()
        except OSError:
            break


atexit.register(release_records)
