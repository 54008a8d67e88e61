"""Reference statistics as files: FID against published `mu`/`sigma`, KID/PR against stored features.

A statistics file is an `.npz` holding `mu` (float64 [d]) and `sigma` (float64 [d, d]) plus metadata:
`n`, `extractor`, `extractor_sha256`, `resize`, `covariance` ('biased' = ÷N as NVlabs, 'unbiased' = ÷(N-1)),
`dataset`, `resolution`. A features file holds `features` (float32 [N, d]) and the same metadata; it serves
KID and PR, and FID through its moments. `ganbench stats export` writes both kinds from a MetricContext pass
(the real-statistics cache is shared with `eval`).

Files with only `mu` and `sigma` are what pytorch-fid (`--save-stats`) and clean-fid write: they are read as
*foreign* statistics (extractor settings, resize and N unknown; their covariance is ÷(N-1)), and the rows say
so (their rows' params add `real_covariance` when FID asks for another convention than the file's sigma, which
cannot be rescaled without N). Every check (shapes, finiteness, symmetry, extractor, feature dimension, and
positive semi-definiteness, which FID's own eigendecomposition finds at no extra cost) fails with one line naming
the file. Files are read with `allow_pickle=False`: nothing in them is executed.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ganbench.errors import ConfigError, DataError

SYMMETRY_RTOL = 1e-6    # |sigma - sigma^T| allowed, relative to max |sigma| (float round-off of X^T X)
META_KEYS = ("n", "extractor", "extractor_sha256", "resize", "covariance", "dataset", "resolution")
FOREIGN = "unknown (foreign file)"


@dataclass(frozen=True)
class FileMoments:
    """Mean and covariance read from a statistics file; `cov(convention)` converts between ÷N and ÷(N-1)
    when N is known (a foreign file's sigma is returned as it is)."""

    n: int | None
    mu: np.ndarray
    sigma: np.ndarray
    covariance: str | None

    @property
    def mean(self) -> np.ndarray:
        return self.mu

    def cov(self, covariance: str = "biased") -> np.ndarray:
        if self.n is None or self.covariance is None or covariance == self.covariance:
            return self.sigma
        if self.n < 2:
            return self.sigma
        scale = (self.n - 1) / self.n if covariance == "biased" else self.n / (self.n - 1)
        return self.sigma * scale


@dataclass(frozen=True)
class RealStatsFile:
    """A checked statistics or features file: its moments, features (or None) and recorded settings."""

    path: Path
    moments: Any                   # FileMoments, or context.Moments of the features
    features: np.ndarray | None
    extractor: str | None          # None: foreign file, unknown
    extractor_sha256: str | None
    resize: str | None
    digest: str
    resolution: int | None = None  # the image size the statistics were computed at, when recorded

    def check_n_real(self, n: int | None) -> None:
        """A mu/sigma file holds the moments of all its images, which cannot be cut to fewer: a metric asking for
        fewer (fid50k: n_real 50000, against a 70k file) would get the number of all of them under its own name.
        More than the file holds takes them all, as NVlabs caps n_real at the data's size."""
        if self.features is None and n is not None and self.n and int(n) < int(self.n):
            raise ConfigError(f"{self.path} holds the statistics of {self.n} real images, which cannot be cut to the "
                              f"{int(n)} this metric asks for (its n_real); pass the real images, a features file "
                              f"(--real-features, from `stats export --features`) or a metric that uses every real "
                              f"image (e.g. fid50k_full)")

    def check_resolution(self, resolution: int) -> None:
        """The statistics must come from real images at the size being scored (eval opens reals at the
        generator's size): 64 px statistics against a 32 px generator gave a silently different FID."""
        if self.resolution is not None and int(resolution) != self.resolution:
            raise DataError(f"{self.path}: statistics of {self.resolution}px real images, but the images scored are "
                            f"{int(resolution)}px; export them at that size (`ganbench stats export -r "
                            f"{int(resolution)}`)")

    @property
    def foreign(self) -> bool:
        return self.extractor is None

    def sigma_as_given(self, covariance: str) -> str | None:
        """The file's own convention when a metric asking for `covariance` gets sigma unconverted (N or the
        convention unknown, as in pytorch-fid / clean-fid files: ÷(N-1)); None when it gets what it asks."""
        moments = self.moments
        if not isinstance(moments, FileMoments) or moments.covariance in (None, covariance):
            return None
        return moments.covariance if moments.n is None or moments.n < 2 else None

    @property
    def n(self) -> int | None:
        return self.moments.n

    @property
    def dim(self) -> int:
        return int(self.moments.mean.shape[0])

    @property
    def identity(self) -> str:
        """The `dataset` value rows measured against this file record."""
        kind = "foreign-stats" if self.foreign else ("features" if self.features is not None else "stats")
        return f"{kind}-{self.path.stem}-{self.digest}"

    def check_extractor(self, describe: dict[str, Any], feature_dim: int) -> None:
        """Stop with one line naming the file when it was made by another extractor or has another dimension."""
        if self.dim != int(feature_dim):
            raise DataError(f"{self.path}: statistics have feature dimension {self.dim} but extractor "
                            f"{describe.get('extractor')!r} gives {feature_dim}")
        if self.foreign:
            return
        if self.extractor != describe.get("extractor"):
            raise DataError(f"{self.path}: statistics were computed with extractor {self.extractor!r}, "
                            f"not {describe.get('extractor')!r} (pass --extractor {self.extractor})")
        want = describe.get("weights_sha256") or ""
        if self.extractor_sha256 and want and self.extractor_sha256 != want:
            raise DataError(f"{self.path}: statistics were computed with other {self.extractor} weights "
                            f"(sha256 {self.extractor_sha256[:12]}…, this one {want[:12]}…)")
        if self.resize and describe.get("resize_mode") and self.resize != describe.get("resize_mode"):
            raise DataError(f"{self.path}: statistics were computed with resize mode {self.resize!r}, not "
                            f"{describe.get('resize_mode')!r}")

    def resize_text(self) -> str:
        return self.resize if self.resize else FOREIGN


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    if path.is_dir():   # was "not found", which sent people looking for a missing file
        raise DataError(f"{path}: is a folder; a statistics file is an .npz (image folders go to --real)")
    if not path.is_file():
        raise DataError(f"{path}: statistics file not found")
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):   # a .npy: one bare array, no names (was a TypeError)
            raise DataError(f"{path}: not an .npz file (expected mu and sigma, or features)")
        with z:
            return {k: z[k] for k in z.files}
    except DataError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        reason = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: not a readable .npz statistics file ({reason})") from None


def _text(arrays: dict[str, np.ndarray], key: str) -> str | None:
    if key not in arrays:
        return None
    value = arrays[key]
    item = value.item() if value.ndim == 0 else value
    if isinstance(item, bytes):   # np.array(b'shapes-net'): the text, not "b'shapes-net'"
        return item.decode("utf-8", errors="replace")
    return str(item) if value.dtype.kind in "USO" else str(value)


def _resolution(arrays: dict[str, np.ndarray], path: Path) -> int | None:
    if "resolution" not in arrays:
        return None
    raw = np.asarray(arrays["resolution"])
    if raw.size != 1 or raw.dtype.kind not in "iu" or int(raw.item()) < 1:
        raise DataError(f"{path}: resolution must be a positive whole number of pixels, got {raw.tolist()!r}")
    return int(raw.item())


def _count(arrays: dict[str, np.ndarray], path: Path) -> int | None:
    """The recorded N: a positive whole number, or None when the file records none."""
    if "n" not in arrays:
        return None
    raw = np.asarray(arrays["n"])
    value = raw.item() if raw.size == 1 and raw.dtype.kind in "iuf" else None
    if value is None or not np.isfinite(value) or value < 1 or value != int(value):
        shown = raw.item() if raw.size == 1 else f"an array of shape {list(raw.shape)}"
        raise DataError(f"{path}: n must be the positive whole number of real images, got {shown!r}")
    return int(value)


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def load_real_file(path: str | os.PathLike, want: str = "stats") -> RealStatsFile:
    """Read and check a statistics (`want='stats'`) or features (`want='features'`) file."""
    from ganbench.metrics.context import Moments

    path = Path(path)
    arrays = _read_npz(path)
    features = None
    if want == "features":
        if "features" not in arrays:
            raise DataError(f"{path}: no 'features' array (write one with `ganbench stats export --features`)")
        features = arrays["features"]
        if features.ndim != 2 or features.shape[0] < 2 or features.dtype.kind not in "fiu":
            raise DataError(f"{path}: 'features' must be a float array [N >= 2, d], got {features.dtype} "
                            f"{list(features.shape)}")
        features = features.astype(np.float32, copy=False)
        if not np.isfinite(features).all():
            raise DataError(f"{path}: 'features' holds NaN or inf")
        f64 = features.astype(np.float64)
        moments: Any = Moments(n=int(f64.shape[0]), total=f64.sum(0), outer=f64.T @ f64)
    else:
        missing = [k for k in ("mu", "sigma") if k not in arrays]
        if missing:
            raise DataError(f"{path}: no {' or '.join(missing)} array (a statistics file holds mu and sigma)")
        mu, sigma = arrays["mu"], arrays["sigma"]
        if mu.dtype.kind not in "fiu" or sigma.dtype.kind not in "fiu":
            raise DataError(f"{path}: mu and sigma must be numbers, got {mu.dtype} and {sigma.dtype}")
        mu, sigma = mu.astype(np.float64), sigma.astype(np.float64)
        if mu.ndim != 1 or sigma.shape != (mu.size, mu.size):
            raise DataError(f"{path}: mu {list(arrays['mu'].shape)} and sigma {list(sigma.shape)} do not fit "
                            f"(expected [d] and [d, d])")
        if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
            raise DataError(f"{path}: mu or sigma holds NaN or inf")
        scale = float(np.abs(sigma).max(initial=0.0))
        asym = float(np.abs(sigma - sigma.T).max(initial=0.0))
        if asym > SYMMETRY_RTOL * max(scale, 1e-300):
            raise DataError(f"{path}: sigma is not symmetric (max |sigma - sigma^T| = {asym:.3g}), so it is not "
                            f"a covariance matrix")
        n = _count(arrays, path)
        cov = _text(arrays, "covariance")
        if cov is not None and cov not in ("biased", "unbiased"):
            raise DataError(f"{path}: covariance must be 'biased' or 'unbiased', got {cov!r}")
        if cov is None and "extractor" not in arrays:   # pytorch-fid / clean-fid: np.cov, i.e. ÷(N-1)
            cov = "unbiased"                            # (a recorded covariance always wins)
        moments = FileMoments(n=n, mu=mu, sigma=(sigma + sigma.T) / 2, covariance=cov)
    return RealStatsFile(path=path, moments=moments, features=features, extractor=_text(arrays, "extractor"),
                         extractor_sha256=_text(arrays, "extractor_sha256"), resize=_text(arrays, "resize"),
                         digest=_digest(path), resolution=_resolution(arrays, path))


def write_real_file(path: str | os.PathLike, moments: Any, describe: dict[str, Any], dataset: str, resolution: int,
                    covariance: str = "biased", features: np.ndarray | None = None) -> Path:
    """Write `mu`/`sigma` (float64, `covariance` convention) and the metadata, plus `features` when given, atomically."""
    from ganbench.checkpoint import atomic_write_bytes

    arrays: dict[str, np.ndarray] = {
        "mu": np.asarray(moments.mean, np.float64), "sigma": np.asarray(moments.cov(covariance), np.float64),
        "n": np.int64(moments.n), "extractor": np.array(str(describe["extractor"])),
        "extractor_sha256": np.array(str(describe.get("weights_sha256", ""))),
        "resize": np.array(str(describe.get("resize_mode", ""))), "covariance": np.array(covariance),
        "dataset": np.array(str(dataset)), "resolution": np.int64(resolution),
    }
    if features is not None:
        arrays["features"] = np.asarray(features, np.float32)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, lambda f: f.write(buf.getvalue()))
    return Path(path)





def export_real_stats(real: str, out: str | os.PathLike, extractor: str = "shapes-net", features: bool = False,
                      n_real: int | None = None, resolution: int | None = None, covariance: str = "biased",
                      device: str = "cpu", batch_size: int = 64, skip_unknown: bool = False,
                      cache_dir: Any = None, overwrite: bool = False, mirror: bool = False) -> dict[str, Any]:
    """Compute the statistics (and with `features`, the features) of real data `real` and write them to `out`.

    The images are opened as `eval --real` opens them at `resolution` (default: the data's own size when that is
    a square power of two, else the largest power of two within the shorter side); the feature pass goes
    through MetricContext, so it shares the real-statistics cache with `eval`. `mirror` adds the x-flipped copies
    (2N images), as `eval --mirror` and NVlabs' metrics of runs trained with x-flips. Returns what was written.
    """
    from ganbench.data import open_dataset
    from ganbench.data.preprocess import AUTO
    from ganbench.errors import ConfigError
    from ganbench.metrics.context import MetricContext, check_n_real

    if covariance not in ("biased", "unbiased"):
        raise ConfigError(f"--covariance must be 'biased' (NVlabs, ÷N) or 'unbiased' (÷(N-1)), got {covariance!r}")
    if Path(out).suffix.lower() != ".npz":
        raise ConfigError(f"{out}: the statistics file must end in .npz")
    if Path(out).is_dir():
        raise ConfigError(f"{out}: is a folder; give the path of the .npz to write")
    if Path(out).exists() and not overwrite:   # before any work: it replaced published statistics silently
        raise ConfigError(f"{out} already exists; choose another path or pass --overwrite")
    on_disk = Path(str(real)).expanduser().exists()   # files get the automatic size, embedded sets their default
    auto = AUTO if on_disk else None
    dataset = open_dataset(str(real), resolution=auto if resolution is None else resolution, skip_unknown=skip_unknown,
                           mirror=mirror)
    check_n_real(n_real, dataset, real)
    ctx = MetricContext(real=dataset, n_real=n_real, extractor=extractor, device=device, batch_size=batch_size,
                        cache_dir=cache_dir)
    moments = ctx.real_moments()
    described = ctx.describe()
    feats = ctx.real_outputs()["features"] if features else None
    path = write_real_file(out, moments, described, dataset.identity, dataset.resolution, covariance, feats)
    return {"path": str(path), "n": int(moments.n), "dim": int(moments.mean.shape[0]),
            "extractor": described["extractor"], "extractor_sha256": described.get("weights_sha256", ""),
            "resize": described.get("resize_mode", ""), "covariance": covariance, "dataset": dataset.identity,
            "resolution": int(dataset.resolution), "features": features}


__all__ = ["FileMoments", "RealStatsFile", "export_real_stats", "load_real_file", "write_real_file"]
