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
import urllib.error
from pathlib import Path

import pytest

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
    assert list(raw_dir(root).iterdir()) == []


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
    assert list(raw_dir(root).iterdir()) == []


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
                 ["magic 0x0801 with sizes (3, 2, 2); expected magic 0x0803 with sizes (3, 2, 2)"],
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
