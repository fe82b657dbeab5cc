"""Fashion-MNIST on disk: prepare it offline, check it, and explain what is wrong.

torchvision (and so ``d2l.load_data_fashion_mnist``) reads the four uncompressed IDX files
from ``<root>/FashionMNIST/raw/``. When one of them is missing it tries to download all of
them, and when one is damaged it fails deep inside its parser. The functions here check the
files first and stop with a message that names the file, says what was expected and how to
fix it.

Command line (run from the repository root)::

    python -m lenet_book.data prepare              # copy from a local copy, verify, unpack
    python -m lenet_book.data prepare --source DIR # DIR holds the four *-ubyte.gz files
    python -m lenet_book.data check                # verify data/FashionMNIST/raw
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import shutil
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "FILES",
    "FashionMNISTError",
    "check_fashion_mnist",
    "ensure_fashion_mnist",
    "find_local_copy",
    "prepare_fashion_mnist",
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

HOW_TO_FIX = """How to fix it, from the repository root:
  * from a local copy (checked against the published MD5 sums):
      python -m lenet_book.data prepare --source DIR   (DIR holds the four *-ubyte.gz files)
  * on Debian or Ubuntu:  apt-get install dataset-fashion-mnist
      then: python -m lenet_book.data prepare --source /usr/share/datasets/fashion-mnist
  * online: delete {raw} and run again; torchvision downloads the files."""


class FashionMNISTError(RuntimeError):
    """The Fashion-MNIST files are missing or not the published ones."""


def _raw_dir(root: str | os.PathLike) -> Path:
    return Path(root) / "FashionMNIST" / "raw"


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _problem(path: Path, spec: IdxFile, raw: Path) -> str | None:
    """Say what is wrong with one uncompressed IDX file, or return None if it is right."""
    if not path.is_file():
        return f"{path} is missing."
    size = path.stat().st_size
    with open(path, "rb") as f:
        header = f.read(4 + 4 * len(spec.shape))
    if len(header) < 4 + 4 * len(spec.shape):
        return f"{path} holds only {size} bytes, too few for an IDX header (expected {spec.size:,} bytes)."
    magic = int.from_bytes(header[:4], "big")
    dims = tuple(int.from_bytes(header[i:i + 4], "big") for i in range(4, len(header), 4))
    if magic != spec.magic or dims != spec.shape:
        return (f"{path} has the IDX header magic {magic:#06x} with sizes {dims}; "
                f"expected magic {spec.magic:#06x} with sizes {spec.shape}. "
                "It is not this Fashion-MNIST file (a .gz left compressed, or another data set?).")
    if size != spec.size:
        return (f"{path} holds {size:,} bytes; expected {spec.size:,}. "
                "It is truncated or has extra bytes (an interrupted download or copy?).")
    if _md5(path) != spec.md5:
        return (f"{path} has the right size but its MD5 sum is not the published "
                f"{spec.md5}: its contents are damaged or altered.")
    return None


def check_fashion_mnist(root: str | os.PathLike = "data") -> Path:
    """Check the four uncompressed files under ``root/FashionMNIST/raw``.

    Returns that folder. Raises FashionMNISTError naming every file that is missing or wrong.
    """
    raw = _raw_dir(root)
    problems = [p for spec in FILES if (p := _problem(raw / spec.name, spec, raw))]
    if problems:
        raise FashionMNISTError(
            "Fashion-MNIST is not ready in " + str(raw) + ":\n"
            + "\n".join("  - " + p for p in problems) + "\n"
            + HOW_TO_FIX.format(raw=raw))
    return raw


def _gunzip_verified(source: Path, spec: IdxFile, target: Path) -> None:
    """Unpack ``source`` into ``target``, keeping it only if its MD5 is the published one.

    The uncompressed sum is checked rather than the .gz sum, because Debian's copies carry
    other gzip headers around the same compressed data.
    """
    partial = target.with_suffix(".partial")
    try:
        with gzip.open(source, "rb") as src, open(partial, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    # BadGzipFile is an OSError, a truncated file raises EOFError, and a damaged deflate
    # stream behind a valid header raises zlib.error.
    except (OSError, EOFError, zlib.error) as error:
        partial.unlink(missing_ok=True)
        raise FashionMNISTError(
            f"{source} is not a readable gzip file ({error}).\n"
            f"Expected the published {spec.name}.gz (MD5 {spec.gz_md5}).\n"
            + HOW_TO_FIX.format(raw=target.parent)) from None
    problem = _problem(partial, spec, target.parent)
    if problem:
        partial.unlink(missing_ok=True)
        raise FashionMNISTError(
            f"{source} does not unpack to the published {spec.name}: "
            + problem.replace(str(partial), "the unpacked file") + "\n"
            + HOW_TO_FIX.format(raw=target.parent))
    partial.replace(target)


def find_local_copy() -> Path | None:
    """Return the first folder among $FASHION_MNIST_SOURCE and LOCAL_COPIES holding the .gz files."""
    candidates = [Path(os.environ["FASHION_MNIST_SOURCE"])] if os.environ.get("FASHION_MNIST_SOURCE") else []
    for folder in candidates + list(LOCAL_COPIES):
        if all((folder / f"{spec.name}.gz").is_file() for spec in FILES):
            return folder
    return None


def prepare_fashion_mnist(source: str | os.PathLike | None = None,
                          root: str | os.PathLike = "data") -> Path:
    """Unpack the four .gz files from ``source`` into ``root/FashionMNIST/raw`` and verify them.

    With no ``source``, the first local copy that :func:`find_local_copy` finds is used.
    Files already there and correct are kept. Works offline. Returns the raw folder.
    """
    raw = _raw_dir(root)
    if source is None:
        source = find_local_copy()
        if source is None:
            raise FashionMNISTError(
                "No local copy of Fashion-MNIST was found (looked at $FASHION_MNIST_SOURCE, "
                + ", ".join(str(p) for p in LOCAL_COPIES) + ").\n" + HOW_TO_FIX.format(raw=raw))
    source = Path(source)
    raw.mkdir(parents=True, exist_ok=True)
    for spec in FILES:
        target = raw / spec.name
        if _problem(target, spec, raw) is None:
            continue
        gz = source / f"{spec.name}.gz"
        if not gz.is_file():
            raise FashionMNISTError(
                f"{gz} is missing: the source folder must hold the four published .gz files "
                f"({', '.join(s.name + '.gz' for s in FILES)}).\n" + HOW_TO_FIX.format(raw=raw))
        _gunzip_verified(gz, spec, target)
    return check_fashion_mnist(root)


def ensure_fashion_mnist(root: str | os.PathLike = "../data", download: bool = True) -> Path:
    """Make sure Fashion-MNIST is ready under ``root`` before a chapter loads it.

    Correct files: nothing to do. None of the files: torchvision downloads them when
    ``download`` is true and the machine is online. Anything else (a file missing, truncated,
    with a wrong header or sum, or no network): FashionMNISTError saying what and how to fix.
    """
    raw = _raw_dir(root)
    present = [spec for spec in FILES if (raw / spec.name).exists()]
    if not present and download:
        try:
            import torchvision

            for train in (True, False):
                torchvision.datasets.FashionMNIST(root=str(root), train=train, download=True)
        except Exception as error:  # torchvision raises several kinds when offline
            raise FashionMNISTError(
                f"Fashion-MNIST is not in {raw} and torchvision could not download it "
                f"({type(error).__name__}: {error}).\n" + HOW_TO_FIX.format(raw=raw)) from None
    return check_fashion_mnist(root)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lenet_book.data", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    prepare = commands.add_parser("prepare", help="unpack and verify a local copy into ROOT/FashionMNIST/raw")
    prepare.add_argument("--source", help="folder with the four *-ubyte.gz files "
                         "(default: $FASHION_MNIST_SOURCE, ../shared/data/FashionMNIST/raw, "
                         "/usr/share/datasets/fashion-mnist)")
    prepare.add_argument("--root", default="data", help="data root that d2l reads (default: data)")
    check = commands.add_parser("check", help="verify ROOT/FashionMNIST/raw")
    check.add_argument("--root", default="data")
    args = parser.parse_args(argv)
    try:
        if args.command == "prepare":
            raw = prepare_fashion_mnist(args.source, args.root)
        else:
            raw = check_fashion_mnist(args.root)
    except FashionMNISTError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"Fashion-MNIST ready in {raw}: 4 files, MD5 sums verified.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
