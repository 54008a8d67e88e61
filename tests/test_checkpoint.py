"""Checkpoints: round trip, refusal of anything that is not a ganbench checkpoint, no code execution, atomic saves."""

from __future__ import annotations

import os
import re
import pickle
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from ganbench.checkpoint import (
    FORMAT,
    Checkpoint,
    atomic_write_bytes,
    load_checkpoint,
    save_checkpoint,
    snapshot_name,
)
from ganbench.errors import CheckpointError

META = {"arch": "stylegan2", "config": {"name": "stylegan2", "resolution": 16, "preset": "tiny"},
        "dataset": "shapes-n100-r16-seed0", "resolution": 16, "seed": 0, "kimg": 1}


def state() -> dict:
    g = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(g.parameters(), lr=1e-3)
    g(torch.ones(1, 3)).sum().backward()
    opt.step()
    return {"G": g.state_dict(), "optimizers": {"G": opt.state_dict()}, "augment_p": 0.25, "cur_nimg": 4000,
            "rng": {"torch": torch.get_rng_state(), "python": (3, (1, 2, 3), None)}, "pl_mean": torch.zeros([])}


def test_round_trip(tmp_path):
    s = state()
    path = save_checkpoint(tmp_path / snapshot_name(4), s, META)
    assert path.name == "network-snapshot-000004.pt"
    ckpt = load_checkpoint(path)
    assert isinstance(ckpt, Checkpoint) and ckpt.kimg == 4.0
    assert ckpt.metadata["arch"] == "stylegan2" and ckpt.metadata["config"] == META["config"]
    assert ckpt.metadata["ganbench_version"] and isinstance(ckpt.metadata["torch_version"], str)
    for key, value in s["G"].items():
        assert torch.equal(ckpt.state["G"][key], value)
    assert ckpt.state["optimizers"]["G"]["param_groups"][0]["lr"] == 1e-3
    assert torch.equal(ckpt.state["rng"]["torch"], s["rng"]["torch"])
    assert ckpt.state["rng"]["python"] == (3, (1, 2, 3), None)
    # Optimizer state can be restored from what was loaded.
    g = torch.nn.Linear(3, 2)
    torch.optim.Adam(g.parameters()).load_state_dict(ckpt.state["optimizers"]["G"])


def test_every_allowed_type_round_trips(tmp_path):
    values = {"s": "x", "i": 3, "f": 1.5, "b": True, "none": None, "bytes": b"\x00", "size": torch.Size([2, 3]),
              "dtype": torch.float16, "device": torch.device("cpu"), "param": torch.nn.Parameter(torch.ones(2)),
              "od": OrderedDict(a=torch.zeros(1)), "list": [1, [2.0]], "tuple": (1, "a"), 7: "int key"}
    save_checkpoint(tmp_path / "a.pt", values, META)
    back = load_checkpoint(tmp_path / "a.pt").state
    assert back["size"] == torch.Size([2, 3]) and back["dtype"] == torch.float16 and back[7] == "int key"
    assert torch.equal(back["param"], torch.ones(2)) and back["tuple"] == (1, "a")


@pytest.mark.parametrize("bad,where", [
    (pytest.importorskip("numpy").zeros(2), "state['bad']"),
    (pytest.importorskip("numpy").float32(1.0), "state['bad']"),
    (torch.__version__, "state['bad']"),  # TorchVersion: a str subclass a weights-only load refuses
    ({"deep": [1, {2, 3}]}, "state['bad']['deep'][1]"),
    (Path("x"), "state['bad']"),
])
def test_save_refuses_values_a_weights_only_load_would_reject(tmp_path, bad, where):
    with pytest.raises(CheckpointError, match=re.escape(where)):
        save_checkpoint(tmp_path / "a.pt", {"bad": bad}, META)
    assert list(tmp_path.iterdir()) == []


def test_save_requires_metadata(tmp_path):
    with pytest.raises(CheckpointError, match="lacks config, resolution"):
        save_checkpoint(tmp_path / "a.pt", {}, {"arch": "x"})


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.9, 0.99])
def test_truncated_file_is_rejected(tmp_path, fraction):
    path = save_checkpoint(tmp_path / "a.pt", state(), META)
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * fraction)])
    with pytest.raises(CheckpointError, match=r"a\.pt.*(truncated|corrupt|empty)"):
        load_checkpoint(path)


def test_random_bytes_and_missing_file_are_rejected(tmp_path):
    path = tmp_path / "noise.pt"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError, match=r"noise\.pt is not a ganbench checkpoint"):
        load_checkpoint(path)
    path.write_bytes(b"PK\x03\x04" + os.urandom(4096))  # looks like a zip, is not one
    with pytest.raises(CheckpointError, match=r"noise\.pt is truncated or corrupt"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_plain_torch_file_without_header_is_rejected(tmp_path):
    torch.save({"G": torch.nn.Linear(2, 2).state_dict()}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not a ganbench checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")
    torch.save(torch.ones(3), tmp_path / "tensor.pt")
    with pytest.raises(CheckpointError, match="not a ganbench checkpoint"):
        load_checkpoint(tmp_path / "tensor.pt")
    torch.save({"format": FORMAT, "format_version": 99, "metadata": {}, "state": {}}, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="newer ganbench"):
        load_checkpoint(tmp_path / "future.pt")
    torch.save({"format": FORMAT, "format_version": 1, "metadata": [], "state": {}}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(tmp_path / "bad.pt")


class Payload:
    """Unpickling this object runs `Path.touch(marker)`: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickle_that_would_run_code_is_rejected_without_running(tmp_path):
    marker = tmp_path / "code-ran"
    # Sanity check of the test itself: a plain unpickle does run the payload.
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.exists()
    marker.unlink()
    # Inside a torch zip archive, with a valid-looking ganbench header around it.
    evil = {"format": FORMAT, "format_version": 1, "metadata": dict(META), "state": {"G": Payload(marker)}}
    torch.save(evil, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match=r"refusing to load .*evil\.pt: it would import"):
        load_checkpoint(tmp_path / "evil.pt")
    # As a bare pickle file.
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps(evil))
    with pytest.raises(CheckpointError, match="not a ganbench checkpoint"):
        load_checkpoint(tmp_path / "evil.pkl")
    # As the legacy (non-zip) torch format.
    torch.save(evil, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "legacy.pt")
    assert not marker.exists()


def test_failed_save_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "a.pt", {"v": torch.ones(1)}, META)
    before = path.read_bytes()

    def half_then_fail(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"v": torch.zeros(1)}, META)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]
    assert torch.equal(load_checkpoint(path).state["v"], torch.ones(1))


def test_atomic_write_replaces_and_cleans_up_on_interrupt(tmp_path):
    target = tmp_path / "sub" / "f.bin"
    atomic_write_bytes(target, lambda f: f.write(b"one"))
    assert target.read_bytes() == b"one"

    def interrupted(f):
        f.write(b"tw")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(target, interrupted)
    assert target.read_bytes() == b"one" and [p.name for p in target.parent.iterdir()] == ["f.bin"]
    old = os.umask(0o022)
    try:
        atomic_write_bytes(target, lambda f: f.write(b"two"))
    finally:
        os.umask(old)
    assert target.read_bytes() == b"two" and target.stat().st_mode & 0o777 == 0o644
