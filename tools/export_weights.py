"""Export the trained LeNet-5 and some Fashion-MNIST test images for the page "LeNet in your browser".

    python tools/export_weights.py                      # train as chapter 7 does (about 1 min on a CPU)
    python tools/export_weights.py --state-dict w.pt    # or the text's LeNet-5 saved by save_checkpoint

Writes two JavaScript files that book/lenet_in_browser.md includes in its page:

* book/browser/lenet_weights.js: the 61,706 parameters of ``lenet_book.fast.lenet()`` as float32
  little-endian, base64 (one string per tensor), and the training record (recipe, test accuracy on
  all 10,000 test images, date, torch version) that the page quotes;
* book/browser/test_images.js: the first 24 test images of every class (240 in all, uint8, class by
  class in turn so that the first ten are one of each), with their labels and test-set indices.

Training is seeded (``torch.manual_seed(0)`` before building, batch order seed 0: the recipe of
chapter 7), so on one machine a rerun writes the same numbers; only the date can differ.
"""

from __future__ import annotations

import argparse
import datetime
import errno
import os
import platform
import stat
import sys
from pathlib import Path

try:  # torch cannot load in a folder that was deleted (oneMKL's "Cannot load libtorch_cpu.so")
    os.getcwd()
except FileNotFoundError:
    sys.exit("the current folder no longer exists (deleted or moved by another program): cd to "
             "an existing folder and run again")

import torch  # noqa: E402
import torchvision  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # lenet_book from this checkout, installed or not

from lenet_book import fast  # noqa: E402
from lenet_book.checks import TrainingDiverged, _trained_towards  # noqa: E402
from lenet_book.data import (  # noqa: E402
    FashionMNISTError,
    _broken_path_problem,
    _not_a_local_path,
    replaced_atomically,
    too_deep_root,
)
from lenet_book.export import (  # noqa: E402
    IMAGES_FORMAT,
    WEIGHTS_FORMAT,
    ExportError,
    _written_by_this_export,
    encode_images,
    encode_state_dict,
    write_js_data,
)
from tools.export_training_subset import _too_long, cannot_replace, with_its_fix  # noqa: E402

OUT = REPO / "book" / "browser"
CLASSES = torchvision.datasets.FashionMNIST.classes  # 'T-shirt/top', 'Trouser', ...
TEST_PER_CLASS = 1000  # Fashion-MNIST's test set: 1,000 images of each class
RECIPE = {"init": "Xavier uniform, torch.manual_seed(0)", "optimizer": "SGD", "lr": 0.9,
          "batch_size": 256, "epochs": 10, "batch_order_seed": 0}
# Below this test accuracy the page would show guesses (chance is 0.10 for ten classes; chapter
# 7's recipe reaches about 0.80): such weights are refused unless --allow-low-accuracy is given.
LOW_ACCURACY = 0.5
# A score is judged on Fashion-MNIST's test set; fewer images are stand-ins (tests), on which a
# score says nothing about the weights.
JUDGED_FROM = 1000


def train(train_data, test_data):
    """The text's LeNet-5 trained with chapter 7's recipe; returns (net, last epoch's record)."""
    torch.manual_seed(0)
    net = fast.init_xavier(fast.lenet())
    history, seconds = fast.train_fast(net, train_data, test_data, num_epochs=RECIPE["epochs"],
                                       lr=RECIPE["lr"], batch_size=RECIPE["batch_size"],
                                       seed=RECIPE["batch_order_seed"])
    last = history[-1]
    print(f"trained {RECIPE['epochs']} epochs in {seconds:.0f} s: loss {last['loss']:.3f}, "
          f"train acc {last['train_acc']:.3f}, test acc {last['test_acc']:.3f}")
    return net, {"loss": round(last["loss"], 4), "train_acc": round(last["train_acc"], 4)}


PAGE_NETWORK = ("the page computes the text's LeNet-5 only (sigmoid activations, average "
                "pooling: lenet_book.fast.lenet(), chapter 1)")
SAVE_IT = ("save the text's LeNet-5 with lenet_book.checkpoint.save_checkpoint(net, 'lenet.pt') "
           "and give that file, or leave --state-dict out to train it as chapter 7 does")


def not_a_file(path: Path) -> str:
    """What is at ``path``, which is not a regular file (nor a link to one): the words for it."""
    if not os.path.lexists(path):
        return "no such file"
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "a symbolic link that loops (it leads back to itself), not a file"
        if os.path.islink(path) and error.errno == errno.ENOENT:
            return f"a symbolic link to {os.readlink(path)}, which does not exist"
        return f"it cannot be read ({error.strerror or error})"
    if stat.S_ISDIR(mode):
        return "a folder, not a file"
    return "not a regular file (a device, pipe or socket)"


def load(path: Path):
    """The text's LeNet-5 with the weights of ``path``, a file written by
    ``lenet_book.checkpoint.save_checkpoint`` from that network. A plain ``torch.save`` of a
    state dict is refused: it does not record the layers, and chapter 6's ReLU/max-pool LeNet
    has the very same tensors, which the sigmoid page would compute wrongly."""
    from lenet_book.checkpoint import CheckpointError, _held_state_dicts, load_checkpoint

    problem = _too_long(path)
    if problem:  # no such file can exist (pathlib's is_dir() raises on it)
        sys.exit(f"--state-dict {path}: {problem}; give the file of saved weights; nothing "
                 "exported")
    if path.is_dir():
        sys.exit(f"--state-dict {path} is a folder; give the file of saved weights in it "
                 f"(e.g. {path / 'lenet.pt'})")
    if not path.is_file():
        sys.exit(f"--state-dict {path}: {not_a_file(path)}; give the file of saved weights")
    net = fast.lenet()
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # truncated, damaged, not a torch file: load_checkpoint says which
        saved = None
    plain, ours = _held_state_dicts(saved)  # e.g. PyTorch's "general checkpoint": named below
    if isinstance(saved, dict) and "format" not in saved and not (plain or ours):
        kind = ("a plain state dict (torch.save(net.state_dict(), ...))"
                if all(isinstance(t, torch.Tensor) for t in saved.values()) else "not a checkpoint")
        sys.exit(f"nothing exported: --state-dict {path} is {kind}, which does not record the "
                 f"network's layers: chapter 6's ReLU/max-pool LeNet has the same tensors, and "
                 f"{PAGE_NETWORK}.\nHow to fix it: {SAVE_IT}.")
    try:
        load_checkpoint(net, path)  # a damaged file, another network's, named with what differs
    except CheckpointError as error:
        # the refusal itself, not its fix, says whether the file is another network's: a fix
        # may say "another" too ("(or another key)" of a dict of two state dicts)
        what = str(error).split("\nHow to fix it:")[0]
        if "another" not in what and "batch normalisation" not in str(error):
            sys.exit(f"nothing exported: --state-dict: {error}")
        # load_checkpoint's fix (build the network as the file's was, e.g. with batch
        # normalisation) is not the page's: it computes one network
        sys.exit(f"nothing exported: --state-dict: {what}\n{PAGE_NETWORK[0].upper()}"
                 f"{PAGE_NETWORK[1:]}: {SAVE_IT}.")
    if _trained_towards(net) == "smallest":  # the page reads the largest output as the class
        sys.exit(f"nothing exported: --state-dict {path} holds a network trained so that its "
                 "smallest output wins (its outputs read as energies, e.g. trained with "
                 "loss_fn=lambda out, y: F.cross_entropy(-out, y); the checkpoint records it), "
                 "and the page takes the largest output as the class, so it would name the "
                 "worst class for every image.\nHow to fix it: export a network whose largest "
                 "output wins: leave --state-dict out to train one as chapter 7 does, retrain "
                 "yours with cross-entropy on its outputs, or negate its last layer in a fresh "
                 "network (which turns energies into scores): net = load_checkpoint(fast.lenet(), "
                 f"{str(path)!r}); scores = fast.lenet(); scores.load_state_dict(net.state_dict()); "
                 "scores[-1].weight.data.neg_(); scores[-1].bias.data.neg_(); "
                 "save_checkpoint(scores, 'scores.pt'), and give --state-dict scores.pt.")
    broken = [name for name, tensor in net.state_dict().items() if not tensor.isfinite().all()]
    if broken:
        sys.exit(f"--state-dict {path}: tensor(s) {', '.join(broken)} hold NaN or infinite numbers "
                 "(the training diverged), which the page would show as NaN; nothing exported. "
                 "Export the weights of a network that trained without diverging.")
    return net, {"state_dict": path.name}


def _low_accuracy(test_acc: float, images: int, state_dict: Path | None) -> str | None:
    """Why weights that score ``test_acc`` on ``images`` test images are not exported for the page
    (no better than a guess: saved before training, or a training that did not learn), or None."""
    if images < JUDGED_FROM or test_acc >= LOW_ACCURACY:
        return None
    score = (f"scores {test_acc:.3f} on the {images:,} test images "
             f"({'about chance, 0.10, ' if test_acc < 0.2 else ''}for 10 classes; chapter 7's "
             f"recipe reaches about 0.80), so the page would show guesses")
    if state_dict is None:
        return (f"nothing exported: the network trained with chapter 7's recipe {score}: the "
                "training did not learn.\nHow to fix it: check the data (python -m "
                "lenet_book.data check) and rerun; or give --allow-low-accuracy to export it "
                "anyway")
    return (f"nothing exported: --state-dict {state_dict} {score}: was it saved before "
            "training (e.g. save_checkpoint(models.lenet(), ...) or the save cell run before the "
            "training cell)?\nHow to fix it: train the network (in this book: the training cell of "
            "chapter 3, notebooks/03_training.ipynb) and save it again, or leave --state-dict "
            "out to train it as chapter 7 does; or give --allow-low-accuracy to export these "
            "weights anyway")


def pick_images(labels: torch.Tensor, per_class: int) -> torch.Tensor:
    """Test-set indices: the first ``per_class`` of every class, taken one class after another."""
    firsts = [torch.nonzero(labels == c).flatten()[:per_class] for c in range(len(CLASSES))]
    if min(len(f) for f in firsts) < per_class:
        sys.exit(f"the test set has fewer than {per_class} images of some class")
    return torch.stack(firsts, dim=1).flatten()  # class 0, 1, ..., 9, then the second of each, ...


OUTPUTS = (("lenet_weights.js", "LENET_WEIGHTS"), ("test_images.js", "LENET_TEST_IMAGES"))


def not_ours(out: Path) -> str | None:
    """Why one of the files this export writes under ``out`` may not be replaced (it exists and
    this export did not write it: the test write_js_data makes), or None. Both are checked before
    either is written, so that a refusal never leaves half an export (new weights, old images)."""
    for file, name in OUTPUTS:
        path = out / file
        try:
            path = path.resolve() if path.is_symlink() else path  # as write_js_data does
            if not path.exists():
                continue
            if path.is_dir():
                return f"{path} is a folder, not a file"
            if not path.is_file():
                return f"{path} is a device, pipe or socket, not a regular file"
            ours = _written_by_this_export(path, name)  # as write_js_data checks
        except (OSError, RuntimeError) as error:  # unreadable, or a symbolic link that loops
            return f"{path} cannot be read ({getattr(error, 'strerror', None) or error})"
        if not ours:
            return f"{path} exists and is not a window.{name} file that this export wrote"
    return None


def _one_file(out: Path) -> str | None:
    """Why the two files this export writes under ``out`` cannot both be written: a symbolic link
    makes both names lead to one file (the images would replace the weights), or None."""
    (weights, _), (images, _) = OUTPUTS
    try:
        same = os.path.realpath(out / weights) == os.path.realpath(out / images)
    except (OSError, ValueError):  # a loop or a NUL: the other checks name it
        return None
    if not same:
        return None
    link = next((out / name for name in (weights, images) if os.path.islink(out / name)),
                out / weights)
    return (f"{out / weights} and {out / images} lead to the same file ({link} is a symbolic "
            f"link to {os.readlink(link)}), and the two must be two files; remove that link "
            f"(rm {link}), or give another --out")


def _on_the_command_line(error: Exception) -> str:
    """An ExportError's message with the fix this command line offers: it has no overwrite=True,
    the Python argument that write_js_data's message names."""
    return str(error).replace("give another path, or overwrite=True to replace it",
                              "give another --out, or move that file away")


def _unwritable(out: Path) -> str | None:
    """Why this user cannot replace one of the files this export writes under ``out`` (each is
    written to a temporary file in its folder, then renamed over the old one), or None. Checked
    for both before either is written: new weights beside old images would not match."""
    for file, _ in OUTPUTS:
        problem = cannot_replace(out / file)
        if problem:
            return problem
    return None


def _broken_out(out: Path) -> str | None:
    """Why no file can ever be written into the folder ``out`` as given (a file in its path, a
    symbolic link that loops or leads nowhere, a name too long), with what to do, or None."""
    try:
        problem = _broken_path_problem(out)
    except ValueError:  # a NUL in the name: write_js_data names it
        return None
    return None if problem is None else with_its_fix(problem, "--out")


def _old_bytes(path: Path) -> bytes | None:
    """What ``path`` holds before this export replaces it, or None when it does not exist yet."""
    try:
        return Path(os.path.realpath(path)).read_bytes()
    except FileNotFoundError:
        return None


def _put_back(path: Path, old: bytes | None) -> str:
    """Put ``path`` back as it was before this export (``old``: :func:`_old_bytes`); what was done."""
    target = Path(os.path.realpath(path))  # write_js_data wrote through a link
    try:
        if old is None:
            target.unlink(missing_ok=True)
            return f"{path}, new, was removed again"
        with replaced_atomically(target, "wb") as f:
            f.write(old)
        return f"{path} was put back as it was"
    except (OSError, ValueError) as error:
        return (f"{path} could not be put back ({getattr(error, 'strerror', None) or error}): it "
                "holds new weights beside old images; rerun the export once the cause is fixed")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(REPO / "data"), help="data root (default: data; make data)")
    parser.add_argument("--state-dict", help="export these weights instead of training: "
                        "the text's LeNet-5 saved by lenet_book.checkpoint.save_checkpoint")
    parser.add_argument("--per-class", type=int, default=24, help="test images per class (default: 24)")
    parser.add_argument("--out", default=OUT, help=f"folder to write (default: {OUT.relative_to(REPO)})")
    parser.add_argument("--allow-low-accuracy", action="store_true",
                        help=f"export weights that score below {LOW_ACCURACY} on the test set "
                        "(refused by default: an untrained network's guesses)")
    args = parser.parse_args(argv)
    if not str(args.out):  # Path("") is the current folder: the files would land wherever one is
        parser.error(f"--out '': the folder to write is empty (''); give a folder such as "
                     f"{OUT.relative_to(REPO)} (leave --out out for it), or '.' for the current "
                     "folder; nothing was written")
    problem = _not_a_local_path(args.out)
    if problem:  # on the text as given: Path() makes 'https://x' a folder 'https:/x', written at the end
        parser.error(f"--out {args.out} {problem}; nothing was written")
    args.out = Path(args.out)
    if args.state_dict is not None and not args.state_dict:  # Path("") would be the current folder
        parser.error("--state-dict is empty (''): give the file of saved weights, e.g. "
                     "--state-dict lenet.pt, or leave --state-dict out to train the network as "
                     "chapter 7 does; nothing was written")
    args.state_dict = None if args.state_dict is None else Path(args.state_dict)
    if args.per_class < 1:
        parser.error("--per-class must be at least 1")
    if args.per_class > TEST_PER_CLASS:  # before anything is written
        parser.error(f"--per-class must be at most {TEST_PER_CLASS:,}: the test set has "
                     f"{TEST_PER_CLASS:,} images of each class")
    if str(args.out).startswith("~"):  # before a folder called '~' is created here
        parser.error(f"--out {args.out} starts with '~', which Python does not expand to the home "
                     "folder (it would name a folder called '~' here); write the path in full, "
                     f"e.g. --out {os.path.expanduser(args.out)}; nothing was written")
    if any(part != part.strip() for part in args.out.parts):  # before training and writing
        parser.error(f"--out {str(args.out)!r} has a name that starts or ends with white space (a "
                     "space or a pasted newline), which a folder name almost never means; write "
                     "it without; nothing was written")
    problem = next(filter(None, (_too_long(args.out / file) for file, _ in OUTPUTS)), None)
    if problem:  # pathlib's exists() raises on it
        parser.error(f"--out {args.out} cannot be written into: {problem}; give a shorter --out; "
                     "nothing was written")
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out} is a file; give a folder to write lenet_weights.js and "
                     "test_images.js into (a missing one is created)")
    problem = _broken_out(args.out)
    if problem:  # before the data are loaded and the network trained: no write could get past it
        parser.error(f"--out {args.out} cannot be written into: {problem}; nothing was written")
    problem = _one_file(args.out)
    if problem:  # before the data are loaded: the second write would overwrite the first
        parser.error(f"--out {args.out}: {problem}; nothing was written")
    problem = not_ours(args.out)
    if problem:
        parser.error(f"--out {args.out}: {problem}: nothing was written, so nothing of it is "
                     "lost; give another --out, or move that file away")
    problem = _unwritable(args.out)
    if problem:
        parser.error(f"--out {args.out}: {problem}; nothing was written")
    try:  # nothing may be created under a data folder given too deep
        parent = too_deep_root(args.data)
    except (TypeError, ValueError) as error:  # an empty root, a file: lenet_book's message
        parser.error(f"--data {args.data!r}: {error}")
    if parent is not None:
        parser.error(f"--data {args.data} is too deep: it is the FashionMNIST folder (or its raw "
                     f"folder) itself; give the folder that holds FashionMNIST/: --data {parent}")

    net, record = load(args.state_dict) if args.state_dict else (None, None)  # a bad file fails first
    try:
        train_data, test_data = fast.load_fashion_mnist_tensors(args.data, "cpu")
    except FashionMNISTError as error:  # missing or damaged data: the message, not a traceback
        sys.exit(f"nothing exported: {error}")
    if net is None:
        try:
            net, record = train(train_data, test_data)
        except TrainingDiverged as error:
            sys.exit(f"nothing exported: {error}")
    net.eval()
    test_acc = fast.evaluate(net, *test_data)
    problem = None if args.allow_low_accuracy else _low_accuracy(
        test_acc, len(test_data[1]), args.state_dict)
    if problem:  # before anything is written
        sys.exit(problem)
    count = sum(p.numel() for p in net.parameters())
    record = {**record, "test_acc": round(test_acc, 4), "test_images": len(test_data[1]),
              "parameters": count, "recipe": RECIPE if not args.state_dict else None,
              "date": datetime.date.today().isoformat(), "torch": torch.__version__,
              "python": platform.python_version(), "device": "cpu"}

    try:  # before anything is written: NaN or infinite weights are refused
        tensors = encode_state_dict(net.state_dict())
    except ExportError as error:
        source = f"--state-dict {args.state_dict}" if args.state_dict else "the trained network"
        sys.exit(f"nothing exported: {source}: {error}")
    images, labels = test_data
    chosen = pick_images(labels, args.per_class)  # before anything is written
    weights = {"format": WEIGHTS_FORMAT, "network": "lenet_book.fast.lenet()",
               "classes": CLASSES, "training": record, "tensors": tensors}
    sample = {"format": IMAGES_FORMAT,
              "source": "Fashion-MNIST test set (t10k-images-idx3-ubyte)",
              "indices": chosen.tolist(), "labels": labels[chosen].tolist(),
              "pixels": encode_images(images[chosen])}
    weights_js = args.out / "lenet_weights.js"
    old_weights = _old_bytes(weights_js)
    weights_size = write_js_data(weights_js, "LENET_WEIGHTS", weights, "LeNet-5's trained "
                                 "weights for lenet_in_browser.md; written by tools/export_weights.py")
    try:  # both files or neither: new weights beside old images would not match
        size = write_js_data(args.out / "test_images.js", "LENET_TEST_IMAGES", sample,
                             "Fashion-MNIST test images for lenet_in_browser.md; written by "
                             "tools/export_weights.py")
    except ExportError as error:
        sys.exit(f"nothing exported: {_on_the_command_line(error)}; "
                 f"{_put_back(weights_js, old_weights)}")
    print(f"{weights_js}: {count:,} parameters, {4 * count:,} bytes as float32, "
          f"{weights_size:,} bytes as a file; test accuracy {test_acc:.4f} on "
          f"{len(test_data[1]):,} images")
    print(f"{args.out / 'test_images.js'}: {len(chosen)} images ({args.per_class} per class), "
          f"{len(chosen) * 784:,} bytes as uint8, {size:,} bytes as a file")


if __name__ == "__main__":
    try:
        main()
    except ExportError as error:  # a file that cannot be written: the message, no traceback
        sys.exit(f"nothing more exported: {_on_the_command_line(error)}")
