"""The asset registry: resolution order, sha256 checks, offline errors and `ganbench assets import`."""

import hashlib
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
    # an asset with no published hash (NVlabs TorchScript) is imported by name
    src2 = env / "downloaded.pt"
    src2.write_bytes(payload)
    result = runner.invoke(app, ["assets", "import", str(src2), "--name", "vgg16-nvlabs"])
    assert result.exit_code == 0, result.output
    assert (env / "cache" / "assets" / "vgg16.pt").read_bytes() == payload
    result = runner.invoke(app, ["assets", "list", "--json"])
    assert result.exit_code == 0
    import json

    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["vgg16-nvlabs"]["present"] == "yes" and rows["vgg16-nvlabs"]["verified"].startswith("unknown")
    assert rows["shapes-net"]["verified"] == "yes"
    assert rows["inception-nvlabs"]["present"] == "no"
    assert runner.invoke(app, ["assets", "list"]).exit_code == 0


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
