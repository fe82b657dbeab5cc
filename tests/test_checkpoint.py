"""Specification of lenet_book.checkpoint: weights are saved whole and loaded only when intact.

Every failure is a CheckpointError (a ValueError) whose message names the file, says what is
wrong and how to fix it, and leaves the network untouched.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from other_user import run_as_nobody
from torch import nn

from lenet_book.checkpoint import FORMAT, CheckpointError, load_checkpoint, save_checkpoint
from lenet_book.fast import lenet

REPO = Path(__file__).resolve().parents[1]


def weights(net: nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.clone() for name, tensor in net.state_dict().items()}


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[name], b[name]) for name in a)


def fresh_lenet(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return lenet()


@pytest.fixture
def saved(tmp_path) -> tuple[Path, dict[str, torch.Tensor]]:
    """A checkpoint of a seeded LeNet, and the weights it holds."""
    net = fresh_lenet(0)
    return save_checkpoint(net, tmp_path / "lenet.pt"), weights(net)


def refused(path: Path, net: nn.Module | None = None) -> str:
    """Load ``path`` into a fresh LeNet, expect a CheckpointError that leaves the net untouched,
    and return the message."""
    net = net if net is not None else fresh_lenet(1)
    before = weights(net)
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(net, path)
    assert same_weights(weights(net), before), "a refused checkpoint must not change the network"
    message = str(error.value)
    assert str(path) in message and "How to fix it:" in message, message
    return message


# --- the good path -----------------------------------------------------------------------

def test_save_then_load_restores_every_weight(saved):
    path, original = saved
    net = fresh_lenet(1)
    assert not same_weights(weights(net), original)

    assert load_checkpoint(net, path) is net
    assert same_weights(weights(net), original)


def test_save_returns_the_path_creates_the_folder_and_leaves_no_temporary_file(tmp_path):
    path = save_checkpoint(fresh_lenet(0), tmp_path / "new" / "folder" / "lenet.pt")

    assert path == tmp_path / "new" / "folder" / "lenet.pt"
    assert sorted(p.name for p in path.parent.iterdir()) == ["lenet.pt"]


def test_the_file_records_format_architecture_checksum_and_loads_with_weights_only(saved):
    path, original = saved
    record = torch.load(path, weights_only=True)

    assert record["format"] == FORMAT
    assert [(name, tuple(shape)) for name, shape in record["architecture"]] == \
        [(name, tuple(t.shape)) for name, t in original.items()]
    assert len(record["sha256"]) == 64 and int(record["sha256"], 16) >= 0
    assert same_weights(record["state_dict"], original)


def test_save_over_an_old_checkpoint_replaces_it(saved):
    path, _ = saved
    newer = fresh_lenet(2)
    save_checkpoint(newer, path)

    assert same_weights(weights(load_checkpoint(fresh_lenet(3), path)), weights(newer))


# --- damaged files -----------------------------------------------------------------------

def test_a_missing_file_is_refused(tmp_path):
    assert "does not exist" in refused(tmp_path / "never-saved.pt")


def test_an_empty_file_is_refused(tmp_path):
    path = tmp_path / "lenet.pt"
    path.write_bytes(b"")
    assert "is empty (0 bytes)" in refused(path)


def test_a_truncated_file_is_refused(saved):
    path, _ = saved
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])

    message = refused(path)
    assert "cannot be read as a checkpoint" in message and "truncated" in message


def find_weight_bytes(content: bytes, tensor: torch.Tensor) -> int:
    """Offset of a tensor's raw bytes inside a torch.save file (its zip stores them as they are)."""
    offset = content.find(tensor.contiguous().numpy().tobytes())
    assert offset > 0
    return offset


def test_flipped_bytes_in_the_weights_are_caught_by_the_checksum(saved):
    path, original = saved
    content = bytearray(path.read_bytes())
    middle = find_weight_bytes(bytes(content), original["7.weight"]) + 4 * 24_000
    content[middle] ^= 0xFF
    path.write_bytes(bytes(content))

    assert "SHA-256" in refused(path)


@pytest.mark.parametrize("where", [0.25, 0.5, 0.75, 0.999])
def test_flipped_bytes_anywhere_are_refused(saved, where):
    path, _ = saved
    content = bytearray(path.read_bytes())
    for offset in range(int(len(content) * where), int(len(content) * where) + 16):
        content[offset] ^= 0xFF
    path.write_bytes(bytes(content))

    refused(path)


def test_a_network_of_another_architecture_is_refused_with_the_differences(saved):
    path, _ = saved
    wider = fresh_lenet(1)
    wider[7] = nn.Linear(16 * 6 * 6, 120)  # a LeNet for 32×32 images

    message = refused(path, wider)
    assert "another architecture" in message
    assert "7.weight has shape (120, 400) in the file but (120, 576) in the network" in message


def test_a_network_with_other_layers_is_refused(saved):
    path, _ = saved
    message = refused(path, nn.Sequential(nn.Flatten(), nn.Linear(784, 10)))
    assert "is in the file but not in the network" in message
    assert "is in the network but not in the file" in message


# --- not a checkpoint --------------------------------------------------------------------

def test_a_plain_torch_save_of_a_state_dict_is_refused(tmp_path):
    path = tmp_path / "plain.pt"
    torch.save(fresh_lenet(0).state_dict(), path)
    assert "is not a lenet_book checkpoint" in refused(path)


def test_a_text_file_is_refused(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("these are not weights\n")
    assert "cannot be read as a checkpoint" in refused(path)


class WritesAFile:
    """A pickle that would create a file when unpickled without weights_only."""

    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):
        return (Path.touch, (Path(self.target),))


def test_a_pickle_with_code_is_refused_without_running_it(tmp_path):
    path, target = tmp_path / "evil.pt", tmp_path / "code-ran"
    torch.save({"format": FORMAT, "payload": WritesAFile(str(target))}, path)

    assert "never loaded here, as they could run code" in refused(path)
    assert not target.exists()


def test_a_record_with_a_changed_checksum_field_is_refused(saved):
    path, _ = saved
    record = torch.load(path, weights_only=True)
    record["sha256"] = "0" * 64
    torch.save(record, path)

    assert "SHA-256" in refused(path)


def test_a_record_with_a_missing_field_is_refused(saved):
    path, _ = saved
    record = torch.load(path, weights_only=True)
    del record["architecture"]
    torch.save(record, path)

    assert "incomplete" in refused(path)


def test_a_folder_is_refused(tmp_path):
    assert "is a folder" in refused(tmp_path)


def test_checkpoint_error_is_a_value_error():
    assert issubclass(CheckpointError, ValueError)


def test_saving_onto_a_folder_or_below_a_file_says_why(tmp_path):
    with pytest.raises(CheckpointError, match="is a folder"):
        save_checkpoint(fresh_lenet(0), tmp_path)
    a_file = tmp_path / "file"
    a_file.write_text("")
    with pytest.raises(CheckpointError, match="Cannot save the checkpoint to"):
        save_checkpoint(fresh_lenet(0), a_file / "lenet.pt")


# --- interrupted saves -------------------------------------------------------------------

def test_a_failing_save_keeps_the_old_checkpoint_and_no_temporary_file(saved, monkeypatch):
    path, original = saved

    def write_half_then_fail(obj, f):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", write_half_then_fail)
    with pytest.raises(CheckpointError, match="No space left on device"):
        save_checkpoint(fresh_lenet(5), path)

    monkeypatch.undo()
    assert same_weights(weights(load_checkpoint(fresh_lenet(1), path)), original)
    assert sorted(p.name for p in path.parent.iterdir()) == ["lenet.pt"]


def test_a_save_killed_mid_write_leaves_the_old_checkpoint_loadable(saved):
    path, original = saved
    # The child starts a save of other weights and is killed (SIGKILL) while writing them.
    child = textwrap.dedent(f"""
        import os, signal, torch
        from lenet_book.checkpoint import save_checkpoint
        from lenet_book.fast import lenet

        real_save = torch.save
        def save_then_die(obj, f):
            real_save(obj, f)
            f.flush()
            f.truncate(1000)
            os.kill(os.getpid(), signal.SIGKILL)
        torch.save = save_then_die
        torch.manual_seed(7)
        save_checkpoint(lenet(), {str(path)!r})
    """)
    result = subprocess.run([sys.executable, "-c", child], cwd=REPO, capture_output=True, timeout=120)
    assert result.returncode == -signal.SIGKILL, result.stderr

    assert same_weights(weights(load_checkpoint(fresh_lenet(1), path)), original)
    leftovers = [p for p in path.parent.iterdir() if p != path]
    assert all(p.name.startswith(".lenet.pt.") and p.suffix == ".tmp" for p in leftovers), leftovers
    for temporary in leftovers:  # the half-written file is never taken for a checkpoint
        assert "is not a lenet_book checkpoint" not in refused(temporary)


# As root, the load runs as the user nobody (tests/conftest.py). torch.load imports modules on
# first use, which nobody may be unable to read: one load as root, before the drop, imports them.
PREPARE_LOAD = """
import tempfile
from lenet_book.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from lenet_book.fast import lenet
net = lenet()
with tempfile.TemporaryDirectory() as folder:
    load_checkpoint(lenet(), save_checkpoint(lenet(), folder + "/warm-up.pt"))
"""

LOAD = """
try:
    load_checkpoint(net, {path!r})
except CheckpointError as error:
    print(error)
"""


@pytest.mark.other_user
@pytest.mark.parametrize("locked", ["file", "folder"])
def test_a_permission_problem_is_explained(open_folder, locked):
    path = save_checkpoint(fresh_lenet(0), open_folder / "run" / "lenet.pt")
    (path if locked == "file" else path.parent).chmod(0o000 if locked == "file" else 0o600)
    if os.geteuid() == 0:
        message = run_as_nobody(PREPARE_LOAD, LOAD.format(path=str(path))).stdout
    else:
        with pytest.raises(CheckpointError) as error:
            load_checkpoint(fresh_lenet(1), path)
        message = str(error.value)

    expected = ("cannot be read: no permission" if locked == "file"
                else "cannot be reached: no permission to enter its folder")
    assert f"Checkpoint {path} {expected}" in message
    assert "How to fix it:" in message
