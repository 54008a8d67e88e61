"""Checkpoints: round trip, refusal of anything that is not a ganbench checkpoint, no code execution, atomic saves."""

from __future__ import annotations

import json
import os
import pickle
import re
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from ganbench.checkpoint import (
    FORMAT,
    Checkpoint,
    atomic_write_bytes,
    load_checkpoint,
    save_checkpoint,
    snapshot_kimg,
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


def test_snapshot_names_round_trip_and_sort_by_kimg():
    assert snapshot_name(4) == "network-snapshot-000004.pt"                     # NVlabs' whole-kimg name
    assert snapshot_name(0.25) == "network-snapshot-000000.250.pt"
    assert snapshot_name(12.5) == "network-snapshot-000012.500.pt"
    for kimg in (0, 0.016, 0.25, 1, 1.5, 25000):
        assert snapshot_kimg(snapshot_name(kimg)) == pytest.approx(kimg)
    assert snapshot_kimg("network-snapshot-000001.5.pt") is None and snapshot_kimg("model.pt") is None


def test_latest_snapshot_orders_by_kimg_not_by_name(tmp_path):
    from ganbench.train.loop import latest_snapshot

    for kimg in (1, 1.5, 0.5):   # "000001.500.pt" sorts before "000001.pt" as text
        (tmp_path / snapshot_name(kimg)).write_bytes(b"")
    assert latest_snapshot(tmp_path).name == "network-snapshot-000001.500.pt"
    (tmp_path / "empty").mkdir()
    assert latest_snapshot(tmp_path / "empty") is None


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
    (np.zeros(2), "state['bad']"),
    (np.float32(1.0), "state['bad']"),
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


# -- .safetensors + JSON ------------------------------------------------------------------------

def test_safetensors_round_trip_with_readable_sidecar(tmp_path):
    s = state()
    s.update({"size": torch.Size([2]), "dtype": torch.bfloat16, "tuple": (1, None, "x"), "bytes": b"\x01\x02",
              7: "int key", "looks_tagged": {"__tensor__": "t0"}, "bf16": torch.ones(3, dtype=torch.bfloat16)})
    path = save_checkpoint(tmp_path / "snap.safetensors", s, META)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snap.json", "snap.safetensors"]
    sidecar = json.loads((tmp_path / "snap.json").read_text())
    assert sidecar["metadata"]["arch"] == "stylegan2" and len(sidecar["tensors_sha256"]) == 64
    for ckpt in (load_checkpoint(path), load_checkpoint(tmp_path / "snap.json")):
        assert ckpt.path == path and ckpt.metadata["config"] == META["config"] and ckpt.kimg == 4.0
        back = ckpt.state
        for key, value in s["G"].items():
            assert torch.equal(back["G"][key], value)
        assert back["size"] == torch.Size([2]) and back["dtype"] == torch.bfloat16 and back[7] == "int key"
        assert back["tuple"] == (1, None, "x") and back["bytes"] == b"\x01\x02"
        assert back["looks_tagged"] == {"__tensor__": "t0"}  # user data that looks like a tag stays data
        assert back["bf16"].dtype == torch.bfloat16 and back["rng"]["python"] == (3, (1, 2, 3), None)
        torch.nn.Linear(3, 2).load_state_dict(back["G"])
        torch.optim.Adam(torch.nn.Linear(3, 2).parameters()).load_state_dict(back["optimizers"]["G"])
    with pytest.raises(CheckpointError, match=r"numpy"):
        save_checkpoint(tmp_path / "bad.safetensors", {"x": np.zeros(1)}, META)


def test_safetensors_damaged_or_foreign_files_are_rejected(tmp_path):
    from safetensors.torch import save_file

    path = save_checkpoint(tmp_path / "a.safetensors", state(), META)
    raw = path.read_bytes()
    for cut in (0, 7, 100, len(raw) - 5):
        path.write_bytes(raw[:cut])
        with pytest.raises(CheckpointError, match=r"a\.safetensors is truncated or corrupt"):
            load_checkpoint(path)
    path.write_bytes(os.urandom(500))
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(path)
    save_file({"w": torch.ones(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(CheckpointError, match="not a ganbench checkpoint"):
        load_checkpoint(tmp_path / "plain.safetensors")
    save_file({"w": torch.ones(2)}, str(tmp_path / "future.safetensors"),
              metadata={"ganbench": '{"format": "ganbench-checkpoint", "format_version": 99}'})
    with pytest.raises(CheckpointError, match="newer ganbench"):
        load_checkpoint(tmp_path / "future.safetensors")
    save_file({"w": torch.ones(2)}, str(tmp_path / "dangling.safetensors"),
              metadata={"ganbench": '{"format": "ganbench-checkpoint", "format_version": 1, "metadata": {}, '
                                    '"state": {"G": {"__tensor__": "missing"}}}'})
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(tmp_path / "dangling.safetensors")


def test_failed_safetensors_save_keeps_old_file(tmp_path, monkeypatch):
    import safetensors.torch

    path = save_checkpoint(tmp_path / "a.safetensors", {"v": torch.ones(1)}, META)
    before = path.read_bytes()

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save", fail)
    with pytest.raises(OSError):
        save_checkpoint(path, {"v": torch.zeros(1)}, META)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "a.safetensors"]


# -- damaged contents (issue 15, item 15): one line naming the field, never a traceback ----------------

def _damaged(tmp_path, name: str, metadata: dict, state: dict | None = None) -> Path:
    """A checkpoint file with a valid header around `metadata` (written by torch.save, as a damaged file would be)."""
    path = tmp_path / name
    torch.save({"format": FORMAT, "format_version": 1, "metadata": metadata, "state": state or {}}, path)
    return path


def _spec_state():
    import model_zoo

    spec = model_zoo.build("stylegan2", 16, preset="tiny")
    return spec, {"G": spec.G.state_dict(), "D": spec.D.state_dict(), "G_ema": spec.G.state_dict(), "cur_nimg": 0}


DAMAGED_METADATA = {
    "missing-config": ({"arch": "stylegan2", "resolution": 16}, r"metadata 'config' is missing, expected a dict"),
    "config-not-a-dict": ({"arch": "stylegan2", "config": ["stylegan2", 16], "resolution": 16},
                          r"metadata 'config' is a list .*expected a dict"),
    "config-without-name": ({"arch": "stylegan2", "config": {"resolution": 16}, "resolution": 16},
                            r"metadata config\['name'\] is missing, expected a model name"),
    "config-resolution-a-string": ({"arch": "stylegan2", "config": {"name": "stylegan2", "resolution": "16"},
                                    "resolution": 16}, r"metadata config\['resolution'\] is a str \('16'\), expected an integer"),
    "arch-not-a-string": ({"arch": 3, "config": {"name": "stylegan2", "resolution": 16}, "resolution": 16},
                          r"metadata 'arch' is a int \(3\), expected a model name"),
    "kimg-not-a-number": ({"arch": "stylegan2", "config": {"name": "stylegan2", "resolution": 16}, "resolution": 16,
                           "kimg": "4"}, r"metadata 'kimg' is a str \('4'\), expected a number"),
    "resolutions-disagree": ({"arch": "stylegan2", "config": {"name": "stylegan2", "resolution": 16},
                              "resolution": 32}, r"metadata resolution 32 differs from config\['resolution'\] 16"),
}


@pytest.mark.parametrize("case", list(DAMAGED_METADATA))
def test_damaged_metadata_is_one_line_naming_the_field(tmp_path, case):
    import model_zoo

    metadata, message = DAMAGED_METADATA[case]
    path = _damaged(tmp_path, "network-snapshot-000004.pt", metadata, {"cur_nimg": 4000})
    for read in (load_checkpoint, model_zoo.load, model_zoo.describe):
        with pytest.raises(CheckpointError, match=r"network-snapshot-000004\.pt is a damaged ganbench checkpoint: "
                                                  + message) as err:
            read(path)
        assert "\n" not in str(err.value)
    with pytest.raises(CheckpointError, match=f"{message}|lacks config"):   # and save refuses to write such a file
        save_checkpoint(tmp_path / "again.pt", {}, metadata)


@pytest.mark.parametrize("case,state,message", [
    ("cur-nimg-a-float", {"cur_nimg": 4000.5}, r"state 'cur_nimg' is a float \(4000\.5\), expected an integer"),
    ("g-ema-not-a-dict", {"G_ema": [1, 2]}, r"state 'G_ema' is a list .*expected a state dict"),
])
def test_damaged_state_entries_are_one_line_naming_the_entry(tmp_path, case, state, message):
    import model_zoo

    path = _damaged(tmp_path, "a.pt", dict(META), state)
    with pytest.raises(CheckpointError, match=r"a\.pt is a damaged ganbench checkpoint: " + message):
        model_zoo.load(path)


def test_damaged_metadata_through_the_cli_exits_2_with_one_line(tmp_path):
    from typer.testing import CliRunner

    from ganbench.cli import app

    path = _damaged(tmp_path, "network-snapshot-000004.pt", DAMAGED_METADATA["missing-config"][0])
    result = CliRunner().invoke(app, ["eval", str(path), "--metrics", "fid", "--n", "8", "--real", "shapes:8"])
    assert result.exit_code == 2, result.output
    assert "metadata 'config' is missing" in result.output and "Traceback" not in result.output


def test_state_dict_mismatch_names_missing_and_unexpected_keys(tmp_path):
    import model_zoo

    spec, state = _spec_state()
    g_ema = dict(state["G_ema"])
    removed = [k for k in list(g_ema) if k.startswith("synthesis.b16.")]       # 16 keys: more than are listed
    for key in removed:
        del g_ema[key]
    g_ema["synthesis.b32.conv0.weight"] = torch.zeros(1)
    g_ema["mapping.fc0.weight"] = torch.zeros(3, 3)                               # right name, wrong shape
    meta = {"arch": "stylegan2", "config": spec.config, "resolution": 16}
    path = save_checkpoint(tmp_path / "mismatch.pt", {**state, "G_ema": g_ema}, meta)
    with pytest.raises(CheckpointError) as err:
        model_zoo.load(path)
    msg = str(err.value)
    assert "mismatch.pt (G_ema) does not fit the network it describes" in msg and "\n" not in msg
    assert f"{len(removed)} missing key(s): {', '.join(removed[:5])}, ... ({len(removed) - 5} more)" in msg
    assert "1 unexpected key(s): synthesis.b32.conv0.weight" in msg
    assert "1 shape mismatch(es) (file vs network): mapping.fc0.weight (3, 3) vs (64, 64)" in msg
    model_zoo.load(path, which="G")   # the intact networks still load
