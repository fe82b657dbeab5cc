"""Specification of lenet_book.data: preparing and checking the Fashion-MNIST IDX files.

Most tests replace the four published files by tiny IDX files that they write themselves
(the `tiny` fixture patches `lenet_book.data.FILES` with specs whose sums are computed
from the tiny contents), so every path, including success, runs in milliseconds.
The tests at the end check the real data set, which CI always prepares.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import subprocess
import sys
import textwrap
import urllib.error
from pathlib import Path

import pytest
from other_user import run_as_nobody

from lenet_book import data
from lenet_book.data import FashionMNISTError, IdxFile

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = REPO / "data"
SHARED_GZ = REPO.parent / "shared" / "data" / "FashionMNIST" / "raw"

# Every error message ends with these ways to fix the data.
FIXES = (
    "python -m lenet_book.data prepare --source DIR",
    "apt-get install dataset-fashion-mnist",
    "online: delete",
)

# name: (IDX magic, shape) of the tiny stand-ins for the four files.
TINY = {
    "train-images-idx3-ubyte": (0x803, (3, 2, 2)),
    "train-labels-idx1-ubyte": (0x801, (3,)),
    "t10k-images-idx3-ubyte": (0x803, (2, 2, 2)),
    "t10k-labels-idx1-ubyte": (0x801, (2,)),
}
IMAGES = "train-images-idx3-ubyte"  # the file the damage tests spoil; 4 + 3 * 4 + 12 = 28 bytes


# --- helpers -----------------------------------------------------------------------------

def idx(magic: int, shape: tuple[int, ...], seed: int = 0) -> bytes:
    """An IDX file: big-endian magic and sizes, then one byte per element."""
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in shape)
    return header + bytes((seed + 7 * i) % 256 for i in range(math.prod(shape)))


def gz(content: bytes, name: str = "", mtime: int = 0) -> bytes:
    """Gzip ``content``; ``name`` and ``mtime`` only change the gzip header."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename=name, mode="wb", fileobj=buffer, mtime=mtime) as f:
        f.write(content)
    return buffer.getvalue()


def published_gz(name: str, content: bytes) -> bytes:
    """The tiny stand-in for a published .gz: the file name in its header, like Zalando's."""
    return gz(content, name=name)


def md5(content: bytes) -> str:
    return hashlib.md5(content).hexdigest()


def raw_dir(root: Path) -> Path:
    return root / "FashionMNIST" / "raw"


def write_raw(root: Path, contents: dict[str, bytes]) -> Path:
    raw = raw_dir(root)
    raw.mkdir(parents=True, exist_ok=True)
    for name, content in contents.items():
        (raw / name).write_bytes(content)
    return raw


def assert_explains(message: str, *fragments: str) -> None:
    """The message holds every fragment and the ways to fix it."""
    for text in (*fragments, *FIXES):
        assert text in message, f"{text!r} not in the message:\n{message}"


# --- fixtures ----------------------------------------------------------------------------

@pytest.fixture
def tiny(monkeypatch) -> dict[str, bytes]:
    """Make the module expect the tiny files; return {name: uncompressed contents}."""
    contents = {name: idx(magic, shape, seed) for seed, (name, (magic, shape)) in enumerate(TINY.items())}
    specs = tuple(IdxFile(name, magic, shape, md5(contents[name]), md5(published_gz(name, contents[name])))
                  for name, (magic, shape) in TINY.items())
    monkeypatch.setattr(data, "FILES", specs)
    return contents


@pytest.fixture
def source(tmp_path, tiny) -> Path:
    """A folder holding the four good .gz files."""
    folder = tmp_path / "source"
    folder.mkdir()
    for name, content in tiny.items():
        (folder / f"{name}.gz").write_bytes(published_gz(name, content))
    return folder


@pytest.fixture
def root(tmp_path) -> Path:
    return tmp_path / "root"


# --- prepare -----------------------------------------------------------------------------

def test_prepare_unpacks_the_four_files_and_check_passes(source, root, tiny):
    raw = data.prepare_fashion_mnist(source, root)

    assert raw == raw_dir(root)
    assert {p.name: p.read_bytes() for p in raw.iterdir()} == tiny  # no .partial left over
    assert data.check_fashion_mnist(root) == raw


def test_prepare_again_keeps_correct_files(source, root, monkeypatch):
    raw = data.prepare_fashion_mnist(source, root)
    for path in raw.iterdir():
        os.utime(path, ns=(1_000_000_000, 1_000_000_000))

    def no_rewrite(*args):
        raise AssertionError(f"rewrote a correct file: {args}")

    monkeypatch.setattr(data, "_gunzip_verified", no_rewrite)
    data.prepare_fashion_mnist(source, root)

    assert all(path.stat().st_mtime_ns == 1_000_000_000 for path in raw.iterdir())


def test_prepare_replaces_only_a_damaged_file(source, root, tiny):
    raw = data.prepare_fashion_mnist(source, root)
    (raw / IMAGES).write_bytes(b"damaged")
    labels_mtime = (raw / "train-labels-idx1-ubyte").stat().st_mtime_ns

    data.prepare_fashion_mnist(source, root)

    assert (raw / IMAGES).read_bytes() == tiny[IMAGES]
    assert (raw / "train-labels-idx1-ubyte").stat().st_mtime_ns == labels_mtime


def test_prepare_accepts_a_gz_with_another_gzip_header(source, root, tiny):
    # Debian's copies: no file name in the header and another mtime, same data inside.
    debian = gz(tiny[IMAGES], name="", mtime=1_234_567_890)
    assert md5(debian) != data.FILES[0].gz_md5
    (source / f"{IMAGES}.gz").write_bytes(debian)

    data.prepare_fashion_mnist(source, root)

    assert (raw_dir(root) / IMAGES).read_bytes() == tiny[IMAGES]


def test_prepare_names_a_missing_source_gz(source, root):
    (source / "t10k-labels-idx1-ubyte.gz").unlink()

    with pytest.raises(FashionMNISTError) as error:
        data.prepare_fashion_mnist(source, root)

    assert_explains(str(error.value), f"{source / 't10k-labels-idx1-ubyte.gz'} is missing",
                    "must hold the four published .gz files")


def test_prepare_without_source_uses_fashion_mnist_source_then_local_copies(
        source, root, tmp_path, monkeypatch):
    incomplete = tmp_path / "incomplete"
    incomplete.mkdir()
    monkeypatch.setattr(data, "LOCAL_COPIES", (tmp_path / "nowhere", source))
    monkeypatch.setenv("FASHION_MNIST_SOURCE", str(incomplete))
    assert data.find_local_copy() == source  # an incomplete folder is skipped

    monkeypatch.setattr(data, "LOCAL_COPIES", ())
    monkeypatch.setenv("FASHION_MNIST_SOURCE", str(source))
    assert data.find_local_copy() == source
    assert data.prepare_fashion_mnist(None, root) == raw_dir(root)


def test_prepare_without_any_local_copy_says_where_it_looked(tiny, root, tmp_path, monkeypatch):
    places = (tmp_path / "first", tmp_path / "second")
    monkeypatch.setattr(data, "LOCAL_COPIES", places)
    monkeypatch.delenv("FASHION_MNIST_SOURCE", raising=False)

    with pytest.raises(FashionMNISTError) as error:
        data.prepare_fashion_mnist(None, root)

    assert_explains(str(error.value), "No local copy of Fashion-MNIST was found",
                    "$FASHION_MNIST_SOURCE", str(places[0]), str(places[1]))


@pytest.mark.parametrize("spoil", [
    pytest.param(lambda good: b"this is not a gzip file at all", id="not-gzip"),
    pytest.param(lambda good: good[: len(good) // 2], id="truncated"),
    pytest.param(lambda good: good[:10] + b"\xff" * (len(good) - 10), id="damaged-deflate-stream"),
])
def test_prepare_rejects_a_corrupt_gzip_and_leaves_no_partial_file(source, root, tiny, spoil):
    gz_path = source / f"{IMAGES}.gz"
    gz_path.write_bytes(spoil(gz(tiny[IMAGES])))  # no file name: the deflate data starts at byte 10

    with pytest.raises(FashionMNISTError) as error:
        data.prepare_fashion_mnist(source, root)

    assert_explains(str(error.value), f"{gz_path} is not a readable gzip file",
                    f"Expected the published {IMAGES}.gz (MD5 {data.FILES[0].gz_md5})")
    assert not raw_dir(root).exists()  # no partial file, and no folder it created


def test_prepare_rejects_a_gz_that_unpacks_to_other_contents(source, root, tiny):
    other = bytearray(tiny[IMAGES])
    other[-1] ^= 0xFF
    gz_path = source / f"{IMAGES}.gz"
    gz_path.write_bytes(gz(bytes(other)))

    with pytest.raises(FashionMNISTError) as error:
        data.prepare_fashion_mnist(source, root)

    assert_explains(str(error.value), f"{gz_path} does not unpack to the published {IMAGES}",
                    "the unpacked file has the right size but its MD5 sum is not the published "
                    + data.FILES[0].md5)
    assert not raw_dir(root).exists()  # no partial file, and no folder it created


# --- check -------------------------------------------------------------------------------

def with_header(content: bytes, magic: int, shape: tuple[int, ...]) -> bytes:
    return idx(magic, shape)[: 4 + 4 * len(shape)] + content[4 + 4 * len(shape):]


def flip_last_byte(content: bytes) -> bytes:
    return content[:-1] + bytes([content[-1] ^ 0xFF])


@pytest.mark.parametrize("spoil, expected", [
    pytest.param(lambda c: None, ["is missing."], id="missing"),
    pytest.param(lambda c: c[:6], ["holds only 6 bytes, too few for an IDX header (expected 28 bytes)"],
                 id="shorter-than-header"),
    pytest.param(lambda c: c[:-3], ["holds 25 bytes; expected 28", "truncated"], id="truncated"),
    pytest.param(lambda c: c + b"\0", ["holds 29 bytes; expected 28", "extra bytes"], id="extra-bytes"),
    pytest.param(lambda c: with_header(c, 0x801, (3, 2, 2)),
                 ["magic 0x0801 with sizes (3,); expected magic 0x0803 with sizes (3, 2, 2)",
                  "This is train-labels-idx1-ubyte"],
                 id="wrong-magic"),
    pytest.param(lambda c: with_header(c, 0x803, (3, 4, 1)),
                 ["magic 0x0803 with sizes (3, 4, 1); expected magic 0x0803 with sizes (3, 2, 2)"],
                 id="wrong-dims"),
    pytest.param(lambda c: gz(c), ["a .gz left compressed"], id="left-compressed"),
    pytest.param(flip_last_byte, ["has the right size but its MD5 sum is not the published"],
                 id="wrong-md5"),
])
def test_check_names_the_file_and_what_was_expected(tiny, root, spoil, expected):
    raw = write_raw(root, tiny)
    path = raw / IMAGES
    spoiled = spoil(tiny[IMAGES])
    if spoiled is None:
        path.unlink()
    else:
        path.write_bytes(spoiled)

    with pytest.raises(FashionMNISTError) as error:
        data.check_fashion_mnist(root)

    message = str(error.value)
    assert_explains(message, f"Fashion-MNIST is not ready in {raw}:", f"  - {path} ", *expected)
    if "MD5" in expected[0]:
        assert data.FILES[0].md5 in message


def test_check_lists_all_problems_at_once(tiny, root):
    raw = write_raw(root, tiny)
    (raw / "train-labels-idx1-ubyte").unlink()
    (raw / "t10k-images-idx3-ubyte").write_bytes(flip_last_byte(tiny["t10k-images-idx3-ubyte"]))

    with pytest.raises(FashionMNISTError) as error:
        data.check_fashion_mnist(root)

    problems = [line for line in str(error.value).splitlines() if line.startswith("  - ")]
    assert problems == [f"  - {raw / 'train-labels-idx1-ubyte'} is missing.",
                        f"  - {raw / 't10k-images-idx3-ubyte'} has the right size but its MD5 sum "
                        f"is not the published {data.FILES[2].md5}: its contents are damaged or altered."]


# --- ensure_fashion_mnist ----------------------------------------------------------------

@pytest.fixture
def torchvision_calls(monkeypatch) -> list[dict]:
    """Replace torchvision.datasets.FashionMNIST by a fake that records its calls and fails
    as it does offline; a test may set ``calls.download`` to make it write the files."""
    import torchvision.datasets

    class Calls(list):
        download = None

    calls = Calls()

    def fake_fashion_mnist(**kwargs):
        calls.append(kwargs)
        if calls.download is None:
            raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
        calls.download(kwargs["root"])

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", fake_fashion_mnist)
    return calls


def test_ensure_with_correct_files_does_nothing(tiny, root, torchvision_calls):
    raw = write_raw(root, tiny)

    assert data.ensure_fashion_mnist(root) == raw
    assert torchvision_calls == []


def test_ensure_downloads_with_torchvision_when_nothing_is_there(tiny, root, torchvision_calls):
    torchvision_calls.download = lambda where: write_raw(Path(where), tiny)

    assert data.ensure_fashion_mnist(root) == raw_dir(root)
    assert torchvision_calls == [dict(root=str(root), train=True, download=True),
                                 dict(root=str(root), train=False, download=True)]


def test_ensure_explains_a_failed_download(tiny, root, torchvision_calls):
    with pytest.raises(FashionMNISTError) as error:
        data.ensure_fashion_mnist(root, download=True)

    assert_explains(str(error.value), f"Fashion-MNIST is not in {raw_dir(root)}",
                    "torchvision could not download it (URLError:",
                    "Temporary failure in name resolution")
    assert error.value.__suppress_context__  # a message, not a chained traceback


def test_ensure_without_download_reports_the_missing_files(tiny, root, torchvision_calls):
    with pytest.raises(FashionMNISTError) as error:
        data.ensure_fashion_mnist(root, download=False)

    assert_explains(str(error.value), *(f"{raw_dir(root) / name} is missing." for name in TINY))
    assert torchvision_calls == []


def test_ensure_does_not_download_over_a_corrupt_file(tiny, root, torchvision_calls):
    raw = write_raw(root, tiny)
    (raw / IMAGES).write_bytes(tiny[IMAGES][:-3])

    with pytest.raises(FashionMNISTError) as error:
        data.ensure_fashion_mnist(root, download=True)

    assert_explains(str(error.value), f"{raw / IMAGES} holds 25 bytes; expected 28")
    assert torchvision_calls == []


# --- command line ------------------------------------------------------------------------

def test_cli_check_fails_with_the_message_on_stderr(tiny, root, capsys):
    assert data.main(["check", "--root", str(root)]) == 1

    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"error: Fashion-MNIST is not ready in {raw_dir(root)}:")
    assert_explains(err, f"{raw_dir(root) / IMAGES} is missing.")


def test_cli_prepare_then_check_succeed(source, root, capsys):
    ready = f"Fashion-MNIST ready in {raw_dir(root)}: 4 files, MD5 sums verified.\n"

    assert data.main(["prepare", "--source", str(source), "--root", str(root)]) == 0
    assert capsys.readouterr() == (ready, "")
    assert data.main(["check", "--root", str(root)]) == 0
    assert capsys.readouterr() == (ready, "")


def test_cli_prepare_fails_with_the_message_on_stderr(source, root, capsys):
    (source / f"{IMAGES}.gz").write_bytes(b"not gzip")

    assert data.main(["prepare", "--source", str(source), "--root", str(root)]) == 1

    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"error: {source / IMAGES}.gz is not a readable gzip file")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lenet_book.data", *args],
                          cwd=REPO, capture_output=True, text=True, timeout=120)


def test_cli_as_a_program_exits_1_with_a_message_not_a_traceback(root):
    result = run_cli("check", "--root", str(root))  # the real FILES: nothing in root

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: Fashion-MNIST is not ready in {raw_dir(root)}:")
    assert "Traceback" not in result.stderr
    assert_explains(result.stderr, f"{raw_dir(root) / 'train-images-idx3-ubyte'} is missing.")


# --- torchvision's old processed/ cache -------------------------------------------------

def write_stale_cache(root: Path, images: int = 100) -> Path:
    """torchvision's old cache of blank images, as older versions wrote it beside raw/."""
    import torch

    processed = root / "FashionMNIST" / "processed"
    processed.mkdir(parents=True, exist_ok=True)
    for name, count in (("training.pt", images), ("test.pt", images // 10)):
        torch.save((torch.zeros(count, 2, 2, dtype=torch.uint8), torch.zeros(count, dtype=torch.int64)),
                   processed / name)
    return processed


def test_a_stale_cache_would_be_loaded_instead_of_the_raw_files(tiny, root):
    # Why the book must act: torchvision reads the cache, not the verified raw files.
    import torchvision

    write_raw(root, tiny)
    write_stale_cache(root)
    assert len(torchvision.datasets.FashionMNIST(root=str(root), train=True)) == 100


def test_check_reports_a_stale_cache_and_deletes_nothing(tiny, root):
    write_raw(root, tiny)
    processed = write_stale_cache(root)

    with pytest.raises(FashionMNISTError) as error:
        data.check_fashion_mnist(root)

    assert_explains(str(error.value), f"  - {processed} holds an old torchvision cache (training.pt, test.pt)",
                    "loads instead of the verified raw files",
                    f"rm {processed / 'training.pt'} {processed / 'test.pt'}")
    assert sorted(p.name for p in processed.iterdir()) == ["test.pt", "training.pt"]


def test_cli_check_exits_1_on_a_stale_cache(tiny, root, capsys):
    write_raw(root, tiny)
    write_stale_cache(root)

    assert data.main(["check", "--root", str(root)]) == 1
    assert "holds an old torchvision cache" in capsys.readouterr().err


def test_after_ensure_the_chapters_loaders_read_the_verified_raw_files(tiny, root, capsys):
    import torchvision

    from lenet_book.fast import load_fashion_mnist_tensors

    write_raw(root, tiny)
    processed = write_stale_cache(root)

    assert data.ensure_fashion_mnist(root) == raw_dir(root)

    assert f"Deleted {processed / 'training.pt'}, {processed / 'test.pt'}" in capsys.readouterr().err
    assert not processed.exists()
    raw_counts = {train: TINY[name][1][0] for train, name in ((True, IMAGES), (False, "t10k-images-idx3-ubyte"))}
    for train, count in raw_counts.items():  # what d2l.load_data_fashion_mnist builds on
        assert len(torchvision.datasets.FashionMNIST(root=str(root), train=train, download=True)) == count
    # the fast path (chapter 4 and later) calls ensure_fashion_mnist itself
    write_stale_cache(root)
    (train_x, train_y), (test_x, test_y) = load_fashion_mnist_tensors(root)
    assert (len(train_x), len(train_y), len(test_x), len(test_y)) == (3, 3, 2, 2) == \
        (raw_counts[True], raw_counts[True], raw_counts[False], raw_counts[False])
    assert train_x.tolist() == [[[tiny[IMAGES][16 + 4 * i + 2 * r + c] for c in range(2)] for r in range(2)]
                                for i in range(3)]


def test_prepare_leaves_half_of_a_stale_cache_which_torchvision_never_loads(source, root, capsys):
    # torchvision loads its old cache only when both files are there: one alone may be the
    # user's own file, and is kept
    data.prepare_fashion_mnist(source, root)
    processed = write_stale_cache(root)
    (processed / "test.pt").unlink()
    (processed / "notes.txt").write_text("not torchvision's")

    data.prepare_fashion_mnist(source, root)

    assert "Deleted " not in capsys.readouterr().err
    assert sorted(p.name for p in processed.iterdir()) == ["notes.txt", "training.pt"]
    assert data.check_fashion_mnist(root) == raw_dir(root)


# --- folders and permissions -------------------------------------------------------------

def test_prepare_with_a_root_that_is_a_file_says_so(source, tmp_path, capsys):
    a_file = tmp_path / "data.txt"
    a_file.write_text("not a folder")

    assert data.main(["prepare", "--source", str(source), "--root", str(a_file)]) == 1

    err = capsys.readouterr().err
    assert err.startswith(f"error: Cannot prepare Fashion-MNIST in {raw_dir(a_file)}: "
                          f"{a_file} is a file, not a folder (it is part of the path {raw_dir(a_file)}).")
    assert "give --root the folder that holds FashionMNIST/raw/" in err and "delete" not in err
    assert a_file.read_text() == "not a folder"


def test_check_with_a_file_inside_the_path_says_which(tiny, root, capsys):
    root.mkdir()
    (root / "FashionMNIST").write_text("")

    assert data.main(["check", "--root", str(root)]) == 1

    assert f"{root / 'FashionMNIST'} is a file, not a folder" in capsys.readouterr().err


def test_a_raw_file_that_is_a_folder_is_named_and_nothing_is_written(source, root, tiny):
    raw = write_raw(root, {})
    (raw / IMAGES).mkdir()

    with pytest.raises(FashionMNISTError) as error:
        data.check_fashion_mnist(root)
    assert f"{raw / IMAGES} is a folder, not the file: delete it (rm -r {raw / IMAGES})" in str(error.value)

    with pytest.raises(FashionMNISTError) as error:
        data.prepare_fashion_mnist(source, root)
    assert f"{raw / IMAGES} is a folder, not the file" in str(error.value)
    assert [p.name for p in raw.iterdir()] == [IMAGES]  # no .partial, nothing half-done


@pytest.mark.parametrize("kind", ["missing", "a file", "empty text"])
def test_a_bad_source_is_reported_as_such(source, root, tmp_path, capsys, kind):
    bad = {"missing": str(tmp_path / "no-such-folder"), "a file": str(source / f"{IMAGES}.gz"),
           "empty text": ""}[kind]

    assert data.main(["prepare", "--source", bad, "--root", str(root)]) == 1

    err = capsys.readouterr().err
    expected = {"missing": f"the source folder {bad} does not exist",
                "a file": f"the source {bad} is a file, not a folder",
                "empty text": 'The source folder is empty text (--source "")'}[kind]
    assert expected in err, err
    assert ".gz is missing" not in err
    assert not root.exists()


def test_a_source_gz_that_is_a_folder_is_named(source, root):
    (source / f"{IMAGES}.gz").unlink()
    (source / f"{IMAGES}.gz").mkdir()

    with pytest.raises(FashionMNISTError, match=f"{IMAGES}.gz is a folder, not the published"):
        data.prepare_fashion_mnist(source, root)


def test_a_data_folder_that_cannot_be_written_is_not_blamed_on_the_source(source, root, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(raw_dir(root)))

    monkeypatch.setattr(data.tempfile, "mkstemp", refuse)
    with pytest.raises(FashionMNISTError) as error:
        data.prepare_fashion_mnist(source, root)

    message = str(error.value)
    assert message.startswith(f"Cannot write into the data folder {raw_dir(root)}: no permission")
    assert "gzip" not in message and str(source) not in message


def test_a_full_disk_while_unpacking_is_named_and_leaves_nothing(source, root, monkeypatch):
    real_fdopen = os.fdopen

    class FullDisk:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, block):
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(data.os, "fdopen", lambda fd, mode: FullDisk(real_fdopen(fd, mode)))
    with pytest.raises(FashionMNISTError) as error:
        data.prepare_fashion_mnist(source, root)

    assert f"Cannot write {raw_dir(root) / IMAGES} in the data folder" in str(error.value)
    assert "No space left on device" in str(error.value) and "gzip" not in str(error.value)
    assert not raw_dir(root).exists()  # no partial file, and no folder it created


def test_the_fix_names_the_folder_its_relative_paths_start_from(source, tmp_path, monkeypatch, capsys):
    # A chapter runs in notebooks/ with root "../data": the commands must work from there.
    workdir = tmp_path / "notebooks"
    workdir.mkdir()
    monkeypatch.chdir(workdir)

    assert data.main(["check", "--root", "../data"]) == 1
    err = capsys.readouterr().err
    assert f"How to fix it (in a terminal opened in {workdir}; relative paths start from there):" in err
    command = next(line.split("   (")[0].split()[3:] for line in err.splitlines()
                   if "python -m lenet_book.data prepare --source DIR" in line)
    assert command == ["prepare", "--source", "DIR", "--root", "../data"]

    command[2] = str(source)
    assert data.main(command) == 0  # the advice, followed in that folder, works
    assert data.check_fashion_mnist(tmp_path / "data") == raw_dir(tmp_path / "data")


def test_cli_as_a_program_explains_a_root_that_is_a_file(tmp_path):
    a_file = tmp_path / "data"
    a_file.write_text("")
    for command in ("check", "prepare"):
        result = run_cli(command, "--root", str(a_file))

        assert result.returncode == 1, command
        assert "Traceback" not in result.stderr
        assert f"{a_file} is a file, not a folder" in result.stderr


# Permission tests: root reads and writes every file, so as root they run in a child Python
# that drops to the user nobody (tests/other_user.py), with the tiny files of the `tiny` fixture.

TINY_FILES = """
import argparse, encodings.ascii, gettext, locale, sys  # what data.main uses, imported first
from lenet_book import data
from lenet_book.data import IdxFile
data.FILES = {specs!r}
"""


def as_another_user(run: str) -> subprocess.CompletedProcess:
    """Run ``run`` after TINY_FILES in a child Python, as a user the permission bits apply to:
    this one, or nobody when we are root."""
    prepare = TINY_FILES.format(specs=data.FILES)
    if os.geteuid() == 0:
        print("running as root: the check runs as the user nobody")
        return run_as_nobody(prepare, run)
    return subprocess.run([sys.executable, "-c", prepare + textwrap.dedent(run)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def cli_as_another_user(tiny, args: list[str]) -> tuple[int, str]:
    """(exit status, stderr) of ``python -m lenet_book.data ARGS`` as another user."""
    result = as_another_user(f"sys.exit(data.main({args!r}))")
    return result.returncode, result.stderr


def copy_source(source: Path, folder: Path) -> Path:
    copy = folder / "source"
    copy.mkdir()
    for path in source.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    return copy


@pytest.mark.other_user
@pytest.mark.parametrize("locked", ["folder", "gz file"])
def test_an_unreadable_source_is_named_with_no_permission(tiny, source, open_folder, locked):
    source = copy_source(source, open_folder)
    root = open_folder / "root"
    root.mkdir(mode=0o777)
    root.chmod(0o777)
    (source if locked == "folder" else source / f"{IMAGES}.gz").chmod(0o000)

    status, err = cli_as_another_user(tiny, ["prepare", "--source", str(source), "--root", str(root)])

    assert status == 1 and "Traceback" not in err, err
    expected = (f"the source {source} cannot be entered: no permission" if locked == "folder"
                else f"Cannot read the source file: {source / IMAGES}.gz: no permission")
    assert expected in err, err
    assert "give this user read access" in err and "gzip" not in err
    assert not any(raw_dir(root).glob("*")) if raw_dir(root).exists() else True


@pytest.mark.other_user
@pytest.mark.parametrize("locked", ["unpacked file", "raw folder"])
@pytest.mark.parametrize("command", ["check", "ensure"])
def test_unreadable_data_is_named_with_no_permission(tiny, open_folder, locked, command):
    root = open_folder / "root"
    raw = write_raw(root, tiny)
    for folder in (root, root / "FashionMNIST", raw):
        folder.chmod(0o755)
    (raw / IMAGES if locked == "unpacked file" else raw).chmod(0o000)  # closed to owner and others

    if command == "ensure":  # what the chapters and the fast path call
        err = ensure_as_another_user(tiny, root)
        assert err, "ensure_fashion_mnist accepted data it cannot read"
    else:
        status, err = cli_as_another_user(tiny, ["check", "--root", str(root)])
        assert status == 1 and "Traceback" not in err, err
    expected = (f"{raw / IMAGES} cannot be read: no permission" if locked == "unpacked file"
                else f"{raw} cannot be entered: no permission")
    assert expected in err, err


def ensure_as_another_user(tiny, root: Path) -> str:
    """The FashionMNISTError message of ensure_fashion_mnist(root), as another user; '' if none."""
    result = as_another_user(f"""
        try:
            data.ensure_fashion_mnist({str(root)!r}, download=False)
        except data.FashionMNISTError as error:
            print(error)
    """)
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout


@pytest.mark.other_user
def test_an_unwritable_data_folder_is_named_as_such(tiny, source, open_folder):
    source = copy_source(source, open_folder)
    root = open_folder / "root"
    raw_dir(root).mkdir(parents=True)
    for folder in (open_folder, root, root / "FashionMNIST"):
        folder.chmod(0o755)
    raw_dir(root).chmod(0o555)  # readable by all, writable by nobody but root

    status, err = cli_as_another_user(tiny, ["prepare", "--source", str(source), "--root", str(root)])

    assert status == 1 and "Traceback" not in err, err
    assert f"{raw_dir(root)} is not writable: no permission to create files in it" in err, err
    assert "gzip" not in err and str(source) not in err
    assert list(raw_dir(root).iterdir()) == []


# --- interrupted and concurrent runs -----------------------------------------------------

SLOW_PREPARE = """
import gzip, sys, time
from lenet_book import data
from lenet_book.data import IdxFile
data.FILES = {specs!r}
real_read = gzip.GzipFile.read
def slow_read(self, size=-1):  # a few bytes at a time, so that runs overlap and can be killed
    time.sleep({pause})
    return real_read(self, 4)
gzip.GzipFile.read = slow_read
sys.exit(data.main(["prepare", "--source", {source!r}, "--root", {root!r}]))
"""


def start_slow_prepare(source: Path, root: Path, pause: float = 0.02) -> subprocess.Popen:
    code = SLOW_PREPARE.format(specs=data.FILES, pause=pause, source=str(source), root=str(root))
    return subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_a_prepare_killed_mid_way_leaves_nothing_that_passes_as_good(source, root, tiny):
    import signal
    import time

    raw = raw_dir(root)
    run = start_slow_prepare(source, root, pause=0.05)
    deadline = time.monotonic() + 60
    # Kill it once the first file is in place and the second is being unpacked.
    while not ((raw / IMAGES).exists() and list(raw.glob(".train-labels-idx1-ubyte.*.partial"))):
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()
        time.sleep(0.005)
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=60)

    assert (raw / IMAGES).read_bytes() == tiny[IMAGES]  # whole, or not there at all
    assert not (raw / "train-labels-idx1-ubyte").exists()
    with pytest.raises(FashionMNISTError) as error:
        data.check_fashion_mnist(root)
    assert_explains(str(error.value), f"{raw / 'train-labels-idx1-ubyte'} is missing.")
    leftover = list(raw.glob(".*.partial"))
    assert len(leftover) == 1

    # The next run completes the data and deletes the killed run's leftover: a running writer
    # holds a lock on its partial file, and the lock went with the killed process. (A file of
    # 0 bytes made a moment ago may be a writer's that has not locked it yet: it is left.)
    old = time.time() - 60
    os.utime(leftover[0], (old, old))
    running = raw / ".train-images-idx3-ubyte.running1.partial"  # a run still going
    running.write_bytes(b"half")
    with open(running, "rb") as held:
        fcntl = pytest.importorskip("fcntl")
        fcntl.flock(held, fcntl.LOCK_EX)
        data.prepare_fashion_mnist(source, root)
    assert {p.name: p.read_bytes() for p in raw.iterdir() if not p.name.startswith(".")} == tiny
    assert list(raw.glob(".*.partial")) == [running]


def test_concurrent_prepare_runs_on_one_root_all_succeed(source, root, tiny):
    runs = [start_slow_prepare(source, root) for _ in range(3)]
    results = [run.communicate(timeout=120) for run in runs]

    assert [run.returncode for run in runs] == [0, 0, 0], results
    assert all(err == "" and "ready" in out for out, err in results), results
    assert {p.name: p.read_bytes() for p in raw_dir(root).iterdir()} == tiny  # no .partial left


# --- the real data set (CI prepares it: these tests fail, never skip, when it is missing) -

# name: (magic, shape, bytes) as Zalando published them.
PUBLISHED = {
    "train-images-idx3-ubyte": (0x803, (60000, 28, 28), 47_040_016),
    "train-labels-idx1-ubyte": (0x801, (60000,), 60_008),
    "t10k-images-idx3-ubyte": (0x803, (10000, 28, 28), 7_840_016),
    "t10k-labels-idx1-ubyte": (0x801, (10000,), 10_008),
}


def require_real_data() -> Path:
    try:
        return data.check_fashion_mnist(REAL_DATA)
    except FashionMNISTError as error:
        pytest.fail("The real Fashion-MNIST is not prepared. From the repository root run\n"
                    "    python -m lenet_book.data prepare\n"
                    f"(CI does this before the tests.)\n{error}", pytrace=False)


def test_real_data_is_prepared_and_is_the_published_one():
    raw = require_real_data()

    assert {spec.name: (spec.magic, spec.shape, spec.size) for spec in data.FILES} == PUBLISHED
    for name, (magic, shape, size) in PUBLISHED.items():
        path = raw / name
        with open(path, "rb") as f:
            header = f.read(4 + 4 * len(shape))
        assert path.stat().st_size == size
        assert header == idx(magic, shape)[: len(header)], name


def test_real_data_prepares_from_the_shared_copy(tmp_path, monkeypatch):
    if not SHARED_GZ.parents[2].is_dir() and os.environ.get("CI") != "true":
        pytest.skip(f"no shared/ folder beside this checkout ({SHARED_GZ.parents[2]}): the default "
                    "source ../shared/data/FashionMNIST/raw is checked where it exists, and in CI")
    missing = [spec.name + ".gz" for spec in data.FILES if not (SHARED_GZ / f"{spec.name}.gz").is_file()]
    if missing:
        pytest.fail(f"The shared copy of Fashion-MNIST is missing from {SHARED_GZ}: {', '.join(missing)}.\n"
                    "Put the four published *-ubyte.gz files there (or see PROVENANCE.md in ../shared), "
                    "then run `python -m lenet_book.data prepare` from the repository root.", pytrace=False)
    for spec in data.FILES:
        assert md5((SHARED_GZ / f"{spec.name}.gz").read_bytes()) == spec.gz_md5, spec.name

    monkeypatch.chdir(REPO)  # the default LOCAL_COPIES are relative to the repository root
    monkeypatch.delenv("FASHION_MNIST_SOURCE", raising=False)
    assert data.find_local_copy().resolve() == SHARED_GZ.resolve()

    raw = data.prepare_fashion_mnist(None, tmp_path)
    assert data.check_fashion_mnist(tmp_path) == raw
    assert sorted(p.name for p in raw.iterdir()) == sorted(PUBLISHED)


def test_real_data_cli_check_as_a_program():
    require_real_data()
    result = run_cli("check", "--root", str(REAL_DATA))

    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == f"Fashion-MNIST ready in {raw_dir(REAL_DATA)}: 4 files, MD5 sums verified.\n"


# --- paths in odd states (issue 21, a probe of files and killed runs) ---------------------

def test_a_killed_runs_partial_file_is_removed_by_the_next_run_even_with_nothing_to_do(
        source, root, tiny):
    raw = data.prepare_fashion_mnist(source, root)
    leftover = raw / f".{IMAGES}.k1ll3d_x.partial"  # its writer was killed: no lock on it
    leftover.write_bytes(b"half a file")
    users = raw / f".{IMAGES}.notes.partial"  # not a name mkstemp makes: a user's, kept
    users.write_text("mine\n")
    data.prepare_fashion_mnist(source, root)
    assert not leftover.exists() and users.read_text() == "mine\n"


def test_prepare_refuses_a_source_file_that_is_a_pipe_instead_of_waiting_forever(
        source, root, tiny):
    import signal

    pipe = source / f"{IMAGES}.gz"
    pipe.unlink()
    os.mkfifo(pipe)

    def waited(*_):
        raise TimeoutError("prepare waited on the pipe")

    signal.signal(signal.SIGALRM, waited)
    signal.alarm(30)
    try:
        with pytest.raises(FashionMNISTError, match="is not a regular file .a pipe"):
            data.prepare_fashion_mnist(source, root)
    finally:
        signal.alarm(0)


@pytest.mark.parametrize("kind", ["loop", "dangling"])
def test_a_data_root_through_a_broken_link_is_named(kind, tmp_path):
    link = tmp_path / "root"
    os.symlink(link if kind == "loop" else tmp_path / "gone", link)
    said = "points to itself" if kind == "loop" else "is a symbolic link to .*gone, which does not"
    for call in (data.ensure_fashion_mnist, data.check_fashion_mnist,
                 lambda root: data.prepare_fashion_mnist(tmp_path, root)):
        with pytest.raises((FashionMNISTError, ValueError), match=said) as error:
            call(link / "inside" if kind == "loop" else link)
        assert "chmod" not in str(error.value)
    result = run_cli("check", "--root", str(link))
    assert result.returncode in (1, 2) and "Traceback" not in result.stderr, result.stderr
    assert not (tmp_path / "gone").exists()


def test_the_cli_in_a_deleted_current_folder_says_so(tmp_path):
    gone = tmp_path / "gone"
    gone.mkdir()
    code = ("import os, sys; os.chdir(sys.argv[1]); os.rmdir(sys.argv[1]); "
            "from lenet_book import data; sys.exit(data.main(['check']))")
    result = subprocess.run([sys.executable, "-c", code, str(gone)], capture_output=True,
                            text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "current folder no longer exists" in result.stderr
