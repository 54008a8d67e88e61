"""The asset registry: resolution order, sha256 checks, offline errors and `ganbench assets import`."""

import hashlib
import os
import stat
import urllib.request

import pytest
from typer.testing import CliRunner

from ganbench import assets
from ganbench.assets import ASSETS, Asset, AssetError
from ganbench.cli import app


@pytest.fixture()
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GANBENCH_ASSETS", raising=False)
    return tmp_path


def _asset(payload: bytes, **kw) -> Asset:
    digest = hashlib.sha256(payload).hexdigest()
    return Asset(name="test-net", filename="test-net.pt", url="https://example.invalid/test-net.pt",
                 sha256=kw.pop("sha256", digest), **kw)


def test_cache_hit(env):
    asset = _asset(b"weights")
    (env / "cache" / "assets").mkdir(parents=True)
    (env / "cache" / "assets" / "test-net.pt").write_bytes(b"weights")
    assert assets.resolve(asset) == env / "cache" / "assets" / "test-net.pt"


def test_env_folder_wins_over_cache(env, monkeypatch):
    asset = _asset(b"weights")
    folder = env / "mine"
    folder.mkdir()
    (folder / "test-net.pt").write_bytes(b"weights")
    (env / "cache" / "assets").mkdir(parents=True)
    (env / "cache" / "assets" / "test-net.pt").write_bytes(b"weights")
    monkeypatch.setenv("GANBENCH_ASSETS", str(folder))
    assert assets.resolve(asset) == folder / "test-net.pt"


def test_explicit_path_wins_and_is_not_hash_checked(env):
    asset = _asset(b"weights")
    mine = env / "anything.bin"
    mine.write_bytes(b"my own random weights")
    assert assets.resolve(asset, mine) == mine
    with pytest.raises(AssetError, match="does not exist"):
        assets.resolve(asset, env / "missing.bin")


def test_hash_mismatch_is_one_line_naming_file_url_and_import(env):
    asset = _asset(b"weights")
    (env / "cache" / "assets").mkdir(parents=True)
    bad = env / "cache" / "assets" / "test-net.pt"
    bad.write_bytes(b"corrupted")
    with pytest.raises(AssetError) as err:
        assets.resolve(asset)
    msg = str(err.value)
    assert "\n" not in msg and str(bad) in msg and asset.url in msg and "ganbench assets import PATH" in msg


def test_prefix_hash_verification():
    digest = hashlib.sha256(b"abc").hexdigest()
    assert Asset("a", "a", None, sha256_prefix=digest[:8]).check(digest) is True
    assert Asset("a", "a", None, sha256_prefix="00000000").check(digest) is False
    assert Asset("a", "a", None).check(digest) is None


def test_offline_download_error(env, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    asset = _asset(b"weights")
    with pytest.raises(AssetError) as err:
        assets.resolve(asset)
    msg = str(err.value)
    assert "\n" not in msg and "test-net.pt" in msg and asset.url in msg and "ganbench assets import PATH" in msg
    assert not list((env / "cache" / "assets").glob("*"))  # no partial file left behind


def test_download_verifies_and_renames(env, monkeypatch):
    import io

    class Response(io.BytesIO):
        headers = {"Content-Length": "7"}

    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: Response(b"weights"))
    path = assets.resolve(_asset(b"weights"))
    assert path.read_bytes() == b"weights" and path.parent == env / "cache" / "assets"
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: Response(b"tampered"))
    path.unlink()
    with pytest.raises(AssetError, match="expected"):
        assets.resolve(_asset(b"weights"))
    assert not path.exists() and not list(path.parent.glob(".*part"))


def test_nothing_downloads_without_permission(env):
    with pytest.raises(AssetError, match="ganbench assets import PATH"):
        assets.resolve(_asset(b"weights"), download=False)


def test_registry_has_reference_files():
    files = {ASSETS.get(n).filename for n in ASSETS}
    assert {"inception-2015-12-05.pt", "weights-inception-2015-12-05-6726825d.pth",
            "pt_inception-2015-12-05-6726825d.pth", "vgg16.pt", "vgg16-397923af.pth"} <= files
    for n in ASSETS:
        a = ASSETS.get(n)
        assert a.url or a.bundled
        if a.sha256_prefix:  # torch.hub convention: the prefix is part of the file name
            assert a.sha256_prefix in a.filename


def test_import_command(env):
    payload = b"fake vgg weights"
    src = env / "vgg16-397923af.pth"
    src.write_bytes(payload)
    runner = CliRunner()
    # wrong hash for a registered asset: refused with exit code 2
    result = runner.invoke(app, ["assets", "import", str(src)])
    assert result.exit_code == 2 and "refusing" in result.output
    assert not (env / "cache" / "assets" / "vgg16-397923af.pth").exists()
    # an asset with no published hash (NVlabs TorchScript) is still checked: these bytes are no TorchScript
    src2 = env / "downloaded.pt"
    src2.write_bytes(payload)
    result = runner.invoke(app, ["assets", "import", str(src2), "--name", "vgg16-nvlabs"])
    assert result.exit_code == 2 and "does not load as a TorchScript archive" in result.output
    assert not (env / "cache" / "assets" / "vgg16.pt").exists()
    (env / "cache" / "assets").mkdir(parents=True)
    (env / "cache" / "assets" / "vgg16.pt").write_bytes(payload)   # placed by hand
    result = runner.invoke(app, ["assets", "list", "--json"])
    assert result.exit_code == 0
    import json

    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["vgg16-nvlabs"]["present"] == "yes" and rows["vgg16-nvlabs"]["verified"].startswith("unknown")
    assert rows["shapes-net"]["verified"] == "yes"
    assert rows["inception-nvlabs"]["present"] == "no"
    assert runner.invoke(app, ["assets", "list"]).exit_code == 0


@pytest.fixture()
def tiny_assets(monkeypatch):
    """Small stand-ins (no published hash, like NVlabs' TorchScript files) for each loader kind."""
    tiny = {"tiny-ts": Asset("tiny-ts", "tiny-ts.pt", "https://example.invalid/tiny-ts.pt", loader="torchscript",
                             holds=((8, 4),)),
            "tiny-sd": Asset("tiny-sd", "tiny-sd.pth", "https://example.invalid/tiny-sd.pth", loader="state_dict",
                             holds=((3, 5, 1, 1),))}
    for name, asset in tiny.items():
        monkeypatch.setitem(ASSETS._items, name, asset)
    return tiny


def _torchscript(path, out_features=8, seed=0):
    import torch

    torch.manual_seed(seed)
    torch.jit.script(torch.nn.Linear(4, out_features)).save(str(path))
    return path


def test_import_refuses_files_that_do_not_load_as_the_assets_format(env, tiny_assets):
    """A text file for an asset with no recorded hash used to be imported as is."""
    import torch

    text = env / "notes.txt"
    text.write_text("this is not a network")
    for name in ("tiny-ts", "tiny-sd", "inception-nvlabs"):
        with pytest.raises(AssetError, match=f"does not load as .* the format of {name}"):
            assets.import_asset(text, name)
    pickled = env / "module.pth"
    torch.save({"w": torch.zeros(3, 5, 1, 1), "obj": torch.nn.ReLU()}, pickled)   # needs full unpickling
    with pytest.raises(AssetError, match="does not load as a PyTorch state dict"):
        assets.import_asset(pickled, "tiny-sd")
    assert not (env / "cache" / "assets").exists() or not list((env / "cache" / "assets").iterdir())


def test_import_refuses_files_whose_shapes_do_not_fit(env, tiny_assets):
    import torch

    wrong = _torchscript(env / "wrong.pt", out_features=6)
    with pytest.raises(AssetError, match=r"holds no tensor of shape \(8, 4\)"):
        assets.import_asset(wrong, "tiny-ts")
    torch.save({"conv.weight": torch.zeros(3, 5, 3, 3)}, env / "sd.pth")
    with pytest.raises(AssetError, match=r"\(3, 5, 1, 1\)"):
        assets.import_asset(env / "sd.pth", "tiny-sd")
    torch.save({"conv.weight": torch.zeros(3, 5, 1, 1)}, env / "good.pth")
    assert assets.import_asset(env / "good.pth", "tiny-sd").is_file()
    # torchvision's 2017 VGG16 file predates zip serialization: the legacy format is a state dict too
    torch.save({"conv.weight": torch.ones(3, 5, 1, 1)}, env / "legacy.pth", _use_new_zipfile_serialization=False)
    assert assets.import_asset(env / "legacy.pth", "tiny-sd", force=True).read_bytes() == (env / "legacy.pth").read_bytes()


def test_import_never_overwrites_a_good_copy_without_force(env, tiny_assets):
    first = _torchscript(env / "first.pt", seed=0)
    second = _torchscript(env / "second.pt", seed=1)
    dest = assets.import_asset(first, "tiny-ts")
    assert assets.import_asset(first, "tiny-ts") == dest          # the identical file again: nothing to do
    runner = CliRunner()
    result = runner.invoke(app, ["assets", "import", str(second), "--name", "tiny-ts"])
    assert result.exit_code == 2 and "--force" in result.output and "passes its checks" in result.output
    assert dest.read_bytes() == first.read_bytes()
    result = runner.invoke(app, ["assets", "import", str(second), "--name", "tiny-ts", "--force"])
    assert result.exit_code == 0, result.output
    assert dest.read_bytes() == second.read_bytes()
    dest.write_text("broken")                                     # a copy that fails its checks is replaced
    assert assets.import_asset(first, "tiny-ts") == dest and dest.read_bytes() == first.read_bytes()


def test_imported_files_get_an_ordinary_mode(env, tiny_assets):
    umask = os.umask(0o022)
    try:
        dest = assets.import_asset(_torchscript(env / "m.pt"), "tiny-ts")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(dest.stat().st_mode) == 0o644


def test_the_bundled_shapes_net_passes_its_import_checks(env):
    assets.check_asset_file("shapes-net", assets.bundled_dir() / "shapes_net.safetensors")


@pytest.mark.slow  # tracing a full Inception takes ~20 s on 2 cores
def test_inception_stand_ins_built_like_the_originals_pass_their_import_checks(env, tmp_path):
    from ganbench.features import _random_weights as rw

    assets.check_asset_file("inception-torch-fidelity", rw.write_torch_fidelity_inception(tmp_path / "tf.pth"))
    assets.check_asset_file("inception-nvlabs", rw.write_torchscript_inception(tmp_path / "nv.pt"))


def test_import_matches_by_hash(env):
    src = env / "renamed.bin"
    src.write_bytes(assets.bundled_dir().joinpath("shapes_net.safetensors").read_bytes())
    dest = assets.import_asset(src)
    assert dest == env / "cache" / "assets" / "shapes_net.safetensors"
    assert assets.resolve("shapes-net") == dest  # the cache comes before the bundled copy


def test_resolve_any_prefers_a_local_interchangeable_file(env, monkeypatch):
    folder = env / "mine"
    folder.mkdir()
    monkeypatch.setenv("GANBENCH_ASSETS", str(folder))
    a = _asset(b"one")
    b = Asset(name="other", filename="other.pt", url="https://example.invalid/other.pt",
              sha256=hashlib.sha256(b"two").hexdigest())
    monkeypatch.setattr(assets, "get_asset", lambda n: {"test-net": a, "other": b}[n])
    (folder / "other.pt").write_bytes(b"two")
    assert assets.resolve_any(["test-net", "other"]) == folder / "other.pt"
    (folder / "test-net.pt").write_bytes(b"one")
    assert assets.resolve_any(["test-net", "other"]) == folder / "test-net.pt"


def test_assets_help():
    runner = CliRunner()
    for args in (["assets", "--help"], ["assets", "list", "--help"], ["assets", "import", "--help"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0 and "Usage" in result.output


def test_status_flags_a_hash_mismatch(env):
    (env / "cache" / "assets").mkdir(parents=True)
    (env / "cache" / "assets" / "vgg16-397923af.pth").write_bytes(b"not the torchvision file")
    rows = {r["name"]: r for r in assets.status()}
    assert rows["vgg16-torchvision"]["present"] == "yes"
    assert rows["vgg16-torchvision"]["verified"].startswith("NO")
    with pytest.raises(AssetError, match="397923af"):
        assets.resolve("vgg16-torchvision")


def test_import_into_a_cache_that_cannot_be_written_is_one_line(env, tiny_assets):
    (env / "cache").write_text("a file where the cache folder should be")
    result = CliRunner().invoke(app, ["assets", "import", str(_torchscript(env / "m.pt")), "--name", "tiny-ts"])
    assert result.exit_code == 2 and "cannot write" in result.output and "GANBENCH_CACHE" in result.output


def test_a_wrong_file_placed_by_hand_is_refused_when_resolved(env, tiny_assets, monkeypatch):
    """A file with no published hash (NVlabs' TorchScript files) copied by hand into $GANBENCH_ASSETS or the cache
    skipped the checks `assets import` makes, and failed later as a RuntimeError in the first forward pass. It is
    now checked when resolved (once per file and process): one line naming the file."""
    folder = env / "mine"
    folder.mkdir()
    _torchscript(folder / "tiny-ts.pt", out_features=6)              # loads, but not the shapes tiny-ts has
    monkeypatch.setenv("GANBENCH_ASSETS", str(folder))
    with pytest.raises(AssetError, match=r"tiny-ts.pt loads as torchscript but holds no tensor of shape \(8, 4\)"):
        assets.resolve("tiny-ts")
    (folder / "tiny-ts.pt").write_text("not a network")
    with pytest.raises(AssetError, match="does not load as a TorchScript archive"):
        assets.resolve("tiny-ts")
    _torchscript(folder / "tiny-ts.pt")
    assert assets.resolve("tiny-ts") == folder / "tiny-ts.pt"
