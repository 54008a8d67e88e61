"""Pretrained weight files: a registry (name -> file, URL, sha256, loader) and a verified local cache.

`resolve(name, path=None)` looks, in order, at: the explicit `path`; the `$GANBENCH_ASSETS` folder;
the cache `$GANBENCH_CACHE/assets` (default `~/.cache/ganbench/assets`); files shipped with the
package (`ganbench/assets_data`); and finally downloads the URL with a progress bar into the cache
(temp file, sha256 check, atomic rename). Nothing happens at import time.

Hashes: where the publisher's full sha256 is not known to us, the entry records the sha256 prefix
that torch.hub-style file names embed (`...-6726825d.pth`) and verification checks that prefix; the
NVlabs TorchScript files carry no published hash, so they are recorded as unverifiable (`assets
list` says so) and the sha256 of whatever file is used is recorded with every result instead.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ganbench.errors import AssetError
from ganbench.registry import Registry

Loader = Literal["torchscript", "state_dict", "safetensors"]
IMPORT_HINT = "ganbench assets import PATH"


@dataclass(frozen=True)
class Asset:
    """One pretrained file: where it comes from and how to check it."""

    name: str
    filename: str
    url: str | None
    sha256: str | None = None          # full hex digest, when published
    sha256_prefix: str | None = None   # torch.hub-style prefix embedded in the file name
    loader: Loader = "state_dict"
    description: str = ""
    bundled: bool = False              # shipped in ganbench/assets_data
    holds: tuple[tuple[int, ...], ...] = ()  # tensor shapes the file must contain (what its users need)

    def check(self, digest: str) -> bool | None:
        """True/False when a hash is known for this asset, None when it cannot be verified."""
        if self.sha256:
            return digest == self.sha256
        if self.sha256_prefix:
            return digest.startswith(self.sha256_prefix)
        return None

    @property
    def expected(self) -> str:
        """The recorded hash (or prefix) as text, for messages."""
        return self.sha256 or (f"{self.sha256_prefix}..." if self.sha256_prefix else "(none published)")


ASSETS: Registry[Asset] = Registry("asset")


def _add(asset: Asset) -> None:
    ASSETS.register(asset.name)(asset)


_NV = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics"
_add(Asset("inception-nvlabs", "inception-2015-12-05.pt", f"{_NV}/inception-2015-12-05.pt",
           loader="torchscript", holds=((1008, 2048),),
           description="NVlabs/clean-fid TorchScript FID Inception (TF 2015-12-05 weights); used by clean-fid"))
_add(Asset("inception-torch-fidelity", "weights-inception-2015-12-05-6726825d.pth",
           "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
           "weights-inception-2015-12-05-6726825d.pth",
           sha256_prefix="6726825d", loader="state_dict", holds=((32, 3, 3, 3), (1008, 2048)),
           description="torch-fidelity's FID Inception state dict (same TF weights)"))
_add(Asset("inception-pytorch-fid", "pt_inception-2015-12-05-6726825d.pth",
           "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
           "pt_inception-2015-12-05-6726825d.pth",
           sha256_prefix="6726825d", loader="state_dict", holds=((32, 3, 3, 3), (1008, 2048)),
           description="pytorch-fid's FID Inception state dict (same sha256 prefix as torch-fidelity's file)"))
_add(Asset("vgg16-nvlabs", "vgg16.pt", f"{_NV}/vgg16.pt", loader="torchscript", holds=((4096, 4096),),
           description="NVlabs TorchScript VGG16 used for precision/recall (fc2 4096-d features)"))
_add(Asset("vgg16-torchvision", "vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth",
           sha256_prefix="397923af", loader="state_dict", holds=((64, 3, 3, 3), (4096, 4096), (1000, 4096)),
           description="torchvision ImageNet VGG16 (used by lpips; fc2 features for PR)"))
_add(Asset("shapes-net", "shapes_net.safetensors", None,
           sha256="ca476f751f530c38346c33a65a4c3ba6938f84043f505aaf4432721dbe3a8ba0",
           loader="safetensors", bundled=True, holds=((32, 3, 3, 3), (256, 2048), (13, 256)),
           description="embedded shapes-net (trained by ganbench/features/_train_shapes_net.py)"))


def cache_root() -> Path:
    """`$GANBENCH_CACHE`, default `~/.cache/ganbench`."""
    return Path(os.environ.get("GANBENCH_CACHE") or Path.home() / ".cache" / "ganbench").expanduser()


def cache_dir() -> Path:
    """Where downloaded and imported weight files live."""
    return cache_root() / "assets"


def bundled_dir() -> Path:
    """Package data folder holding the shipped weight files."""
    return Path(__file__).resolve().parent / "assets_data"


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def get_asset(name: str | Asset) -> Asset:
    """The registry entry for `name` (an Asset passes through)."""
    return name if isinstance(name, Asset) else ASSETS.get(name)


_SHAPE_CHECKED: set[tuple[str, str]] = set()   # (asset name, sha256) whose file passed check_asset_file


def _verified(asset: Asset, path: Path) -> Path:
    """Return `path` if its hash matches the registry; else a one-line AssetError. Where no hash is published
    (NVlabs' TorchScript files) the file must pass the checks `assets import` makes (its format and the tensor
    shapes its users need), once per process and file: a wrong file placed by hand was a RuntimeError deep in
    the first forward pass."""
    digest = sha256_file(path)
    verdict = asset.check(digest)
    if verdict is False:
        where = asset.url or "the ganbench package"
        raise AssetError(f"{path} has sha256 {digest[:16]}..., expected {asset.expected} for {asset.filename} "
                         f"({where}); replace it with the right file via `{IMPORT_HINT}`")
    if verdict is None and (asset.name, digest) not in _SHAPE_CHECKED:
        check_asset_file(asset, path)
        _SHAPE_CHECKED.add((asset.name, digest))
    return path


def candidates(asset: Asset) -> list[Path]:
    """Where `resolve` looks for an asset before downloading, in order."""
    out = []
    if os.environ.get("GANBENCH_ASSETS"):
        out.append(Path(os.environ["GANBENCH_ASSETS"]).expanduser() / asset.filename)
    out.append(cache_dir() / asset.filename)
    if asset.bundled:
        out.append(bundled_dir() / asset.filename)
    return out


def resolve(name: str | Asset, path: str | os.PathLike | None = None, download: bool = True) -> Path:
    """Local path of asset `name`: explicit path, $GANBENCH_ASSETS, cache, package data, then download."""
    asset = get_asset(name)
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise AssetError(f"weight file {p} for {asset.name} does not exist")
        return p  # an explicit file is the user's choice; its own sha256 is recorded with results
    for p in candidates(asset):
        if p.is_file():
            return _verified(asset, p)
    if asset.url is None:
        raise AssetError(f"{asset.filename} is missing from the ganbench package and has no download URL; "
                         f"reinstall ganbench or place it with `{IMPORT_HINT}`")
    if not download:
        raise AssetError(f"{asset.filename} is not in {cache_dir()}; download it from {asset.url} "
                         f"and place it with `{IMPORT_HINT}`")
    return download_asset(asset)


def resolve_any(names: list[str], path: str | os.PathLike | None = None) -> Path:
    """The first of several interchangeable assets found locally, else the first one downloaded."""
    if path is not None:
        return resolve(names[0], path)
    for name in names:
        for p in candidates(get_asset(name)):
            if p.is_file():
                return _verified(get_asset(name), p)
    return resolve(names[0])


def download_asset(name: str | Asset) -> Path:
    """Download into the cache with a progress bar: temp file, sha256 check, atomic rename."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    asset = get_asset(name)
    dest = cache_dir() / asset.filename
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{asset.filename}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as f:
            try:
                response = urllib.request.urlopen(asset.url, timeout=30)
            except (urllib.error.URLError, OSError, ValueError) as exc:
                reason = getattr(exc, "reason", exc)
                raise AssetError(f"cannot download {asset.filename} from {asset.url} ({reason}); download it "
                                 f"elsewhere and place it with `{IMPORT_HINT}`") from None
            with response, Progress(TextColumn(f"downloading {asset.filename}"), BarColumn(), DownloadColumn(),
                                    TransferSpeedColumn(), transient=True) as progress:
                total = int(response.headers.get("Content-Length") or 0) or None
                task = progress.add_task("download", total=total)
                try:
                    for block in iter(lambda: response.read(1 << 20), b""):
                        f.write(block)
                        h.update(block)
                        progress.advance(task, len(block))
                except OSError as exc:
                    raise AssetError(f"download of {asset.filename} from {asset.url} broke off ({exc}); "
                                     f"place the file by hand with `{IMPORT_HINT}`") from None
            f.flush()
            os.fsync(f.fileno())
        digest = h.hexdigest()
        if asset.check(digest) is False:
            raise AssetError(f"{asset.filename} downloaded from {asset.url} has sha256 {digest[:16]}..., expected "
                             f"{asset.expected}; place a good copy with `{IMPORT_HINT}`")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _match(path: Path, digest: str, name: str | None) -> Asset:
    if name is not None:
        return get_asset(name)
    by_hash = [ASSETS.get(n) for n in ASSETS if ASSETS.get(n).check(digest)]
    if by_hash:
        return by_hash[0]
    by_name = [ASSETS.get(n) for n in ASSETS if ASSETS.get(n).filename == path.name]
    if by_name:
        return by_name[0]
    raise AssetError(f"{path} matches no registered asset by hash or file name; pass --name "
                     f"(known: {', '.join(ASSETS.names())})")


def load_torchscript(path: str | os.PathLike) -> Any:
    """A TorchScript archive on the CPU (a serialized graph: no Python code from the file runs), without torch's
    deprecation notice for torch.jit.load, which every eval would otherwise print."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path), map_location="cpu")


def _tensors(asset: Asset, path: Path) -> list[Any]:
    """The tensors of `path` read as `asset.loader` (TorchScript archive, weights-only state dict, safetensors),
    never running code from the file; AssetError naming the file and the format when it is not one."""
    import torch

    what = {"torchscript": "a TorchScript archive", "state_dict": "a PyTorch state dict of tensors",
            "safetensors": "a safetensors file"}[asset.loader]
    try:
        if asset.loader == "torchscript" and not zipfile.is_zipfile(path):
            raise ValueError("not a zip archive, which TorchScript files are")
        if asset.loader == "torchscript":
            module = load_torchscript(path)
            return [t for _, t in module.named_parameters()] + [t for _, t in module.named_buffers()]
        if asset.loader == "safetensors":
            from safetensors.torch import load_file

            return list(load_file(str(path)).values())
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any failure to read the file is the file's fault
        reason = str(exc).strip().splitlines()[0].split(". ")[0][:120] if str(exc).strip() else type(exc).__name__
        raise AssetError(f"{path} does not load as {what}, the format of {asset.name} ({reason})") from None
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise AssetError(f"{path} does not load as {what}, the format of {asset.name} "
                         f"(it holds a {type(state).__name__}, not a flat dict of tensors)")
    return list(state.values())


def check_asset_file(asset: str | Asset, path: str | os.PathLike) -> None:
    """AssetError unless `path` loads as the asset's format and holds the tensor shapes its users need.

    2-D shapes match in either orientation (TF-converted files may store dense weights transposed).
    """
    asset = get_asset(asset)
    shapes = {tuple(t.shape) for t in _tensors(asset, Path(path))}
    for need in asset.holds:
        if need not in shapes and not (len(need) == 2 and need[::-1] in shapes):
            raise AssetError(f"{path} loads as {asset.loader} but holds no tensor of shape {need}, which "
                             f"{asset.name} ({asset.description or asset.filename}) has; is it the right file?")


def import_asset(path: str | os.PathLike, name: str | None = None, force: bool = False) -> Path:
    """Copy a hand-downloaded file into the cache after checking it: its sha256 against the registry (when one
    is recorded), that it loads as the asset's format and holds the shapes its users need.

    A cached copy that passes the same checks is never replaced without `force` (importing the identical file
    again is a no-op); the copy is written atomically with an ordinary file mode.
    """
    from ganbench.checkpoint import atomic_write_bytes

    src = Path(path).expanduser()
    if not src.is_file():
        raise AssetError(f"{src} does not exist or is not a file")
    digest = sha256_file(src)
    asset = _match(src, digest, name)
    if asset.check(digest) is False:
        raise AssetError(f"{src} has sha256 {digest[:16]}..., expected {asset.expected} for {asset.name} "
                         f"({asset.filename}); refusing to import it")
    check_asset_file(asset, src)
    dest = cache_dir() / asset.filename
    if dest.is_file():
        if sha256_file(dest) == digest:
            return dest
        if not force and _passes_checks(asset, dest):
            raise AssetError(f"{dest} already holds a copy of {asset.name} that passes its checks; "
                             f"pass --force to replace it with {src}")
    try:
        with open(src, "rb") as inp:
            atomic_write_bytes(dest, lambda out: shutil.copyfileobj(inp, out, 1 << 20))
    except OSError as exc:  # a read-only or full cache: the old copy, if any, is left as it was
        raise AssetError(f"cannot write {dest} ({exc.strerror or exc}); set GANBENCH_CACHE to a writable folder") from None
    return dest


def _passes_checks(asset: Asset, path: Path) -> bool:
    if asset.check(sha256_file(path)) is False:
        return False
    try:
        check_asset_file(asset, path)
    except AssetError:
        return False
    return True


def status() -> list[dict[str, str]]:
    """One row per registered asset: where it would be found, whether it is present and verified."""
    rows = []
    for name in ASSETS:
        asset = ASSETS.get(name)
        found = next((p for p in candidates(asset) if p.is_file()), None)
        if found is None:
            present, verified = "no", "-"
        else:
            ok = asset.check(sha256_file(found))
            present, verified = "yes", {True: "yes", False: "NO (hash mismatch)", None: "unknown (no published hash)"}[ok]
        rows.append({"name": name, "file": asset.filename, "path": str(found or cache_dir() / asset.filename),
                     "present": present, "verified": verified, "url": asset.url or "(bundled)",
                     "description": asset.description})
    return rows


__all__ = ["ASSETS", "Asset", "AssetError", "cache_dir", "cache_root", "check_asset_file", "download_asset",
           "get_asset", "import_asset", "resolve", "resolve_any", "sha256_file", "status"]
