"""`MetricContext`: everything metrics read, computed once per (source, extractor) and shared.

One streaming pass over the generated (or real) images per extractor yields every output of that
extractor (features, logits, attributes) plus float64 running moments of the features; metrics
then work on the memoised arrays. Real-data outputs are also cached on disk under
`$GANBENCH_CACHE/stats/`, keyed by a readable name plus a hash of (dataset identity, resolution,
extractor, weights sha256, resize mode, N), and written atomically.

Generated images follow NVlabs: z ~ N(0, I) from a torch.Generator seeded with `seed`, no truncation,
noise_mode='random' (the global RNG is seeded per batch inside `torch.random.fork_rng`, so noise is
deterministic too), labels drawn from the real dataset for conditional generators, and images
converted with (x * 127.5 + 128).clamp(0, 255) then truncated to uint8. Single-channel images are
repeated to three channels before any extractor sees them. A plain function `z -> images` (float in
[-1, 1] or uint8, NCHW) is measured like a generator (`CallableGenerator`).

Real data may also be a statistics or features file (`real_file`, see stats_files.py): FID then uses the
file's mean and covariance, KID and PR its features; the file is checked against the extractor first.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from ganbench.devices import process_device, resolve_device, use_exact_fp32
from ganbench.errors import ConfigError, DataError
from ganbench.features import FeatureExtractor, get_extractor
from ganbench.heap import reuse_freed_memory
from ganbench.metrics._generator import measured_generator, require_finite
from ganbench.metrics._sampling import check_label_dim

ImageSource = Any  # an ImageDataset, a uint8 NCHW (or NHWC) tensor / ndarray, or a dataset spec string (reals)

# A plain function's float images must lie in [-1, 1]; NVlabs clamps x*127.5+128 to [0, 255], so a little
# overshoot is legitimate (a network without a final tanh, e.g. a foreign StyleGAN2/3 wrapped in a lambda, goes
# somewhat past +-1). Past +-2 the clamp would throw away more than a whole half-range: no [-1, 1] image lies
# there, while every other common convention does ([0, 255] or [-127.5, 127.5] floats; ImageNet-normalised
# (x-mean)/std reaches -2.1 and 2.6), and clamping those gives a wrong FID without a word.
FLOAT_IMAGE_LIMIT = 2.0


@dataclass(frozen=True)
class Moments:
    """Float64 running sums of a feature set: mean and covariance under either convention."""

    n: int
    total: np.ndarray   # [d] sum of x
    outer: np.ndarray   # [d, d] sum of x x^T

    @property
    def mean(self) -> np.ndarray:
        return self.total / self.n

    def cov(self, covariance: str = "biased") -> np.ndarray:
        """Covariance: 'biased' divides by N (NVlabs), 'unbiased' by N-1 (pytorch-fid, clean-fid, torch-fidelity)."""
        mu = self.mean
        scatter = self.outer - self.n * np.outer(mu, mu)
        if covariance == "biased":
            return scatter / self.n
        if covariance == "unbiased":
            if self.n < 2:
                raise ConfigError("unbiased covariance needs at least 2 samples")
            return scatter / (self.n - 1)
        raise ConfigError(f"covariance must be 'biased' or 'unbiased', got {covariance!r}")


class _Images:
    """Uniform batch access to a dataset, tensor or array of uint8 NCHW images."""

    def __init__(self, source: ImageSource, what: str) -> None:
        from ganbench.data.base import ImageDataset

        self.dataset = source if isinstance(source, ImageDataset) else None
        if self.dataset is None:
            arr = torch.as_tensor(np.asarray(source)) if not isinstance(source, torch.Tensor) else source
            if arr.ndim != 4 or arr.dtype != torch.uint8:
                raise DataError(f"{what} images must be uint8 NCHW, got {tuple(arr.shape)} {arr.dtype}")
            if arr.shape[-1] in (1, 2, 3, 4) and arr.shape[1] not in (1, 2, 3, 4):  # NHWC (numpy / PIL layout)
                if arr.shape[-1] not in (1, 3):
                    raise DataError(f"{what} images have NHWC shape {tuple(arr.shape)} with {arr.shape[-1]} "
                                    f"channels; ganbench measures 1 or 3 channels (drop the alpha channel)")
                arr = arr.permute(0, 3, 1, 2)   # taken as NCHW; a view, each batch is made contiguous
            elif arr.shape[1] not in (1, 3):    # RGBA went into MS-SSIM's mean (0.42 for 0.22) and broke SWD
                raise DataError(f"{what} images have NCHW shape {tuple(arr.shape)} with {arr.shape[1]} channels; "
                                f"ganbench measures 1 or 3 channels (drop the alpha channel)")
            self.array = arr
        self.what = what

    def __len__(self) -> int:
        return len(self.dataset) if self.dataset is not None else int(self.array.shape[0])

    @property
    def identity(self) -> str:
        if self.dataset is not None:
            return self.dataset.identity
        h = hashlib.sha256(self.array.cpu().contiguous().numpy().tobytes()).hexdigest()[:16]
        return f"array-{tuple(self.array.shape)}-{h}"

    @property
    def name(self) -> str:
        return self.dataset.name if self.dataset is not None else "array"

    @property
    def resolution(self) -> int:
        return int(self.dataset.resolution if self.dataset is not None else self.array.shape[-1])

    def batch(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.dataset is None:
            return self.array[start:stop].contiguous(), None
        items = [self.dataset[i] for i in range(start, stop)]
        return torch.stack([im for im, _ in items]), torch.stack([lb for _, lb in items])

    @property
    def label_dim(self) -> int:
        return int(self.dataset.label_dim) if self.dataset is not None else 0

    def label(self, index: int) -> np.ndarray:
        return self.dataset.label(index)


def _three_channels(images: torch.Tensor) -> torch.Tensor:
    return images.repeat(1, 3, 1, 1) if images.shape[1] == 1 else images


class CallableGenerator(torch.nn.Module):
    """A plain function `z -> images` (torch or numpy; float in [-1, 1] or uint8; NCHW) as a generator.

    `z_dim` is the latent size the function takes; latents, seeds and sample counts follow the context
    exactly as for a network, and uint8 output is used as it is (no re-quantisation). Float output beyond
    +-FLOAT_IMAGE_LIMIT is a DataError naming the range seen (pixels in [0, 255] as floats would be clamped to
    white); a first batch wholly in [0, 1] is warned about once (read as [-1, 1], it scores washed-out images).
    """

    c_dim = 0

    def __init__(self, fn: Callable[[torch.Tensor], Any], z_dim: int) -> None:
        super().__init__()
        if z_dim is None or int(z_dim) < 1:
            raise ConfigError("a generator function needs its latent size: pass z_dim (or give it a z_dim attribute)")
        self.fn = fn
        self.z_dim = int(z_dim)
        self.device = torch.device("cpu")  # where the probe's latent goes; MetricContext sets its own
        self._resolution: int | None = None
        self._seen_batch = False   # the range of the first real batch (not the size probe's) is judged once
        self.train(False)

    @property
    def img_resolution(self) -> int:
        """Width of the function's images (one call on a zero latent, remembered)."""
        if self._resolution is None:
            with torch.no_grad():
                z = torch.zeros([1, self.z_dim], device=self.device)
                self._resolution = int(self._images(self.fn(z), z).shape[-1])
        return self._resolution

    def forward(self, z: torch.Tensor, c: Any = None, truncation_psi: float = 1.0, noise_mode: str = "random"
                ) -> torch.Tensor:
        out = self._images(self.fn(z), z)
        if out.is_floating_point() and out.numel():
            self._check_range(out)
        return out

    def _check_range(self, out: torch.Tensor) -> None:
        lo, hi = (float(v) for v in torch.aminmax(out.detach()))
        if not (np.isfinite(lo) and np.isfinite(hi)):
            return   # NaN / inf: the context's require_finite names it
        if lo < -FLOAT_IMAGE_LIMIT or hi > FLOAT_IMAGE_LIMIT:
            raise DataError(f"the generator function returned float images with values in [{lo:g}, {hi:g}]; "
                            f"expected float in [-1, 1] (NVlabs' convention, pixel = x*127.5+128) or uint8 in "
                            f"[0, 255]: for float pixels in [0, 255] return x/127.5-1 or x.round().to(torch.uint8)")
        if not self._seen_batch and lo >= 0 and hi <= 1:
            import warnings

            warnings.warn(f"the generator function's first batch of float images lies in [0, 1] ([{lo:g}, {hi:g}]), "
                          f"but float images are read in NVlabs' [-1, 1] convention; if it returns [0, 1] images, "
                          f"return x*2-1 (else the metrics measure washed-out images)", stacklevel=2)
        self._seen_batch = True

    def _images(self, out: Any, z: torch.Tensor) -> torch.Tensor:
        out = out if isinstance(out, torch.Tensor) else torch.as_tensor(np.asarray(out))
        if out.ndim != 4 or out.shape[0] != z.shape[0] or out.shape[1] not in (1, 3):
            raise DataError(f"the generator function must return NCHW images with 1 or 3 channels for "
                            f"{z.shape[0]} latents, got shape {tuple(out.shape)}")
        if out.dtype != torch.uint8 and not out.is_floating_point():
            raise DataError(f"the generator function must return float images in [-1, 1] or uint8, got {out.dtype}")
        return out.to(z.device)


def as_generator(generator: Any, z_dim: int | None = None) -> Any:
    """`generator` itself, or a plain function (not a network, dataset, tensor or array) as a CallableGenerator."""
    from ganbench.data.base import ImageDataset

    if (callable(generator) and not isinstance(generator, (torch.nn.Module, ImageDataset, torch.Tensor, np.ndarray))):
        return CallableGenerator(generator, z_dim if z_dim is not None else getattr(generator, "z_dim", None))
    return generator


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Generator output in [-1, 1] -> uint8, exactly as NVlabs: clamp(x*127.5+128) then truncate."""
    return (images * 127.5 + 128).clamp(0, 255).to(torch.uint8)


class MetricContext:
    """Shared inputs of one evaluation: generator, real data, extractors and memoised feature passes.

    `generator` is a generator network (called as G(z, c, truncation_psi=1, noise_mode='random')) or
    already-generated uint8 NCHW images (tensor, ndarray or ImageDataset; an array whose last axis holds 1 or 3
    channels and whose second does not is NHWC, taken as such). `real` is an ImageDataset, uint8 images, or a
    dataset spec for `ganbench.data.open_dataset` (opened at the generator's size); generated and real images
    of different sizes are a ConfigError. `n_real=None` uses every real. `device` is a torch device; `cuda`
    on a machine without CUDA (or a name torch does not know) is a ConfigError, as the CLI's --device.
    `cache_dir` is the folder of cached real outputs (default `$GANBENCH_CACHE/stats`; False disables).
    `progress` is a rich Progress (a task per pass) or a callable(stage, done, total).
    `prefetch` generates the next batch on a background thread while the extractor works on this one
    (None: on when it costs no compute threads, i.e. on CUDA or when the CPU has cores beyond torch's).
    `timings` accumulates seconds: 'real_images' (computing real outputs; 0 when they come from the
    cache), 'generation' (inside the generator), 'gen_features' (the generated pass, generation included).
    `real_file` (a stats_files.RealStatsFile) replaces `real` with stored statistics or features; `z_dim` is
    the latent size of a plain generator function. `extractors` is a dict of built extractors by name that
    the context uses and fills (eval passes one dict to every checkpoint's context, so each extractor is
    built once per evaluation, not once per checkpoint).
    """

    def __init__(self, generator: Any = None, real: ImageSource = None, n_gen: int = 10000,
                 n_real: int | None = None, extractor: str | FeatureExtractor = "shapes-net", seed: int = 0,
                 batch_size: int = 64, device: str | torch.device = "cpu", cache_dir: str | os.PathLike | None | bool = None,
                 progress: Any = None, prefetch: bool | None = None, real_file: Any = None,
                 z_dim: int | None = None, extractors: dict[str, FeatureExtractor] | None = None) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be positive, got {batch_size}")
        if real is not None and real_file is not None:
            raise ConfigError("give real images or a statistics/features file, not both")
        self.real_file = real_file
        try:
            self.device = process_device(device)  # an explicit CUDA index: the prefetch thread must agree
        except (RuntimeError, AssertionError):  # no such device, or no CUDA here: torch's own error is pages long
            resolve_device(device)   # one line naming the device
            raise
        use_exact_fp32(self.device)  # CUDA: no TF32, as NVlabs' calc_metrics (published numbers are fp32)
        generator = as_generator(generator, z_dim)
        if isinstance(generator, CallableGenerator):
            generator.device = self.device  # its latents come on this device, the size probe's too
        if isinstance(real, str):  # a spec: open it at the generator's resolution so reals match fakes
            from ganbench.data import open_dataset

            resolution = getattr(generator, "img_resolution", None)
            if resolution is None and generator is not None and not isinstance(generator, torch.nn.Module):
                resolution = _Images(generator, "generated").resolution
            real = open_dataset(real, resolution=resolution)
        self.generator = generator = measured_generator(generator)  # metrics never change the measured network
        self.real = real
        self._real = _Images(real, "real") if real is not None else None
        self._gen_images = None
        if generator is not None and not isinstance(generator, torch.nn.Module):
            self._gen_images = _Images(generator, "generated")
        if self._gen_images is not None:
            self._check_resolution(self._gen_images.resolution)
        elif not isinstance(generator, CallableGenerator) and getattr(generator, "img_resolution", None):
            self._check_resolution(int(generator.img_resolution))   # a function's size is checked on its first batch
        self.n_gen = int(n_gen)
        self.n_real = n_real
        self.default_extractor = extractor.name if isinstance(extractor, FeatureExtractor) else extractor
        self.seed = int(seed)
        self.batch_size = int(batch_size)
        if cache_dir is None or cache_dir is True:
            from ganbench.assets import cache_root

            cache_dir = cache_root() / "stats"
        self.cache_dir = Path(cache_dir) if cache_dir is not False else None
        self.progress = progress
        self._extractors: dict[str, FeatureExtractor] = extractors if extractors is not None else {}
        if isinstance(extractor, FeatureExtractor):
            self._extractors[extractor.name] = extractor
        self._outputs: dict[tuple[str, str], dict[str, np.ndarray]] = {}
        self._moments: dict[tuple[str, str], Moments] = {}
        self.prefetch = prefetch
        self.timings: dict[str, float] = {"real_images": 0.0, "generation": 0.0, "gen_features": 0.0}

    # ---- extractors -------------------------------------------------------------------------
    def extractor_model(self, name: str | None = None) -> FeatureExtractor:
        """The extractor `name` (default: the context's), built once per context."""
        name = name or self.default_extractor
        if name not in self._extractors:
            self._extractors[name] = get_extractor(name, device=self.device)
        return self._extractors[name]

    def describe(self, extractor: str | None = None) -> dict[str, Any]:
        """What to record next to a number: extractor, weights hash, resize mode, N, seed."""
        described = {**self.extractor_model(extractor).describe(), "n_gen": self.num_gen(), "seed": self.seed}
        if self._real is None and self.real_file is not None:
            described["n_real"] = self.real_file.n   # None: a foreign file that does not say
            if self.real_file.foreign:
                described["resize_mode"] = f"{described.get('resize_mode', '')}; real: {self.real_file.resize_text()}"
            return described
        return {**described, "n_real": self.num_real()}

    def _check_resolution(self, generated: int) -> None:
        """Generated and real images of different sizes measure a different benchmark: a ConfigError."""
        if self._real is None or int(generated) == self._real.resolution:
            return
        r, g = self._real.resolution, int(generated)
        raise ConfigError(f"the generated images are {g}x{g} px but the real images ({self._real.name}) are "
                          f"{r}x{r} px; compare at one size: open the real data at {g} px "
                          f"(open_dataset(spec, resolution={g})) or pass real as a spec string, which is opened "
                          f"at the generator's size")

    # ---- sample counts ----------------------------------------------------------------------
    def num_gen(self) -> int:
        """How many generated images the metrics see."""
        if self._gen_images is not None and self.n_gen > len(self._gen_images):
            raise ConfigError(f"n_gen={self.n_gen} but only {len(self._gen_images)} generated images were given")
        return self.n_gen

    def num_real(self) -> int:
        """How many real images the metrics see (all when n_real is None, capped at the dataset size)."""
        if self._real is None and self.real_file is not None:
            return int(self.real_file.n or 0)
        if self._real is None:
            raise ConfigError("this metric needs real images but the context has no real dataset")
        total = len(self._real)
        return total if self.n_real is None else min(int(self.n_real), total)

    # ---- image streams ----------------------------------------------------------------------
    def generated_batches(self, n: int | None = None, seed: int | None = None, shard: tuple[int, int] | None = None
                          ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]]:
        """(uint8 NCHW images, z, c) batches of `n` generated images, deterministic in `seed`.

        `shard=(rank, world)` yields only that rank's contiguous block of batches (see `shard_block`);
        latents are still drawn for the batches before it, so every image keeps its unsharded z.

        Every batch is generated whole (`batch_size` latents, noise seeded per batch) and the last one cut to `n`,
        as NVlabs' metrics do: image i depends only on the seed, the batch size and i. A last batch of n - start
        latents made an image depend on n, so FID of the first 50 images changed when a metric sharing the pass
        asked for 100 (33.14 against 33.12), under the same row identity.
        """
        n = self.num_gen() if n is None else int(n)
        lo, hi = shard_block(n, self.batch_size, shard)
        if self._gen_images is not None:
            if n > len(self._gen_images):
                raise ConfigError(f"asked for {n} generated images but only {len(self._gen_images)} were given")
            for k, start in enumerate(range(0, n, self.batch_size)):
                if lo <= k < hi:
                    yield self._gen_images.batch(start, min(start + self.batch_size, n))[0], None, None
            return
        G = self.generator
        if G is None:
            raise ConfigError("this metric needs generated images but the context has no generator")
        seed = self.seed if seed is None else int(seed)
        gen = torch.Generator().manual_seed(seed)
        c_dim = int(getattr(G, "c_dim", 0) or 0)
        if c_dim and self._real is None:
            raise ConfigError("a conditional generator needs a real dataset to draw labels from")
        if c_dim:
            check_label_dim(self._real, c_dim)
        devices = [self.device] if self.device.type == "cuda" else []
        for k, start in enumerate(range(0, n, self.batch_size)):
            if k >= hi:
                break
            b, keep = self.batch_size, min(self.batch_size, n - start)
            z = torch.randn([b, G.z_dim], generator=gen)
            c = None
            if c_dim:
                idx = torch.randint(len(self._real), [b], generator=gen)
                c = torch.from_numpy(np.stack([self._real.label(int(i)) for i in idx]))
            if k < lo:
                continue
            start_s = time.perf_counter()
            with torch.no_grad(), torch.random.fork_rng(devices=devices):
                torch.manual_seed(seed * 1000003 + k)
                images = G(z.to(self.device), None if c is None else c.to(self.device),
                           truncation_psi=1.0, noise_mode="random")
            if images.dtype != torch.uint8:   # a function may hand back uint8 pixels: taken as they are
                require_finite(images, "generator output", "generator")
                images = to_uint8(images)
            self._check_resolution(images.shape[-1])
            self.timings["generation"] += time.perf_counter() - start_s
            yield images[:keep], z[:keep], None if c is None else c[:keep]

    def real_batches(self, n: int | None = None, shard: tuple[int, int] | None = None
                     ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """(uint8 NCHW images, labels) batches of the first `n` reals (default: num_real()); `shard` as above."""
        if self._real is None:
            where = f" ({self.real_file.path} holds statistics, not images)" if self.real_file is not None else ""
            raise ConfigError(f"this metric needs real images but the context has none{where}")
        n = self.num_real() if n is None else min(int(n), len(self._real))
        lo, hi = shard_block(n, self.batch_size, shard)
        for k, start in enumerate(range(0, n, self.batch_size)):
            if lo <= k < hi:
                yield self._real.batch(start, min(start + self.batch_size, n))

    # ---- feature passes ---------------------------------------------------------------------
    def gen_outputs(self, extractor: str | None = None) -> dict[str, np.ndarray]:
        """Every output of `extractor` on the n_gen generated images (one pass, memoised)."""
        return self._ensure("gen", extractor)[0]

    def real_outputs(self, extractor: str | None = None) -> dict[str, np.ndarray]:
        """Every output of `extractor` on the reals (memoised, cached on disk)."""
        return self._ensure("real", extractor)[0]

    def gen_moments(self, extractor: str | None = None) -> Moments:
        """Float64 moments of the generated 'features' (accumulated during the same pass)."""
        return self._ensure("gen", extractor)[1]

    def real_moments(self, extractor: str | None = None) -> Moments:
        """Float64 moments of the real 'features' (cached on disk with the outputs)."""
        return self._ensure("real", extractor)[1]

    def outputs(self, source: str, output: str = "features", extractor: str | None = None,
                n: int | None = None) -> np.ndarray:
        """The first `n` rows (default all) of one output of `source` ('gen' or 'real')."""
        allout = self._ensure(_check_source(source), extractor)[0]
        if output not in allout and source == "real" and self.real_file is not None:
            raise ConfigError(f"{self.real_file.path} holds only mu/sigma statistics, but KID and PR need real "
                              f"{output}: write them with `ganbench stats export --features` and pass "
                              f"--real-features FILE")
        if output not in allout:
            ext = self.extractor_model(extractor)
            raise ConfigError(f"extractor {ext.name!r} has no output {output!r}; it has {', '.join(allout)}")
        return allout[output][:_check_n(n, len(allout[output]), source)]

    def moments(self, source: str, extractor: str | None = None, n: int | None = None) -> Moments:
        """Float64 feature moments of the first `n` rows of `source` (the streamed sums when n covers all)."""
        full = self._ensure(_check_source(source), extractor)[1]
        if source == "real" and self._real is None and self.real_file is not None:
            self.real_file.check_n_real(n)   # eval checks before any work; compute() here
        if source == "real" and self.real_file is not None and (
                self.real_file.features is None or n is None or int(n) >= int(full.n)):
            return full   # moments as stored (a statistics file cannot be cut to fewer samples)
        n = _check_n(n, full.n, source)
        if n == full.n:
            return full
        feats = self.outputs(source, "features", extractor, n)
        total = np.zeros(feats.shape[1])
        outer = np.zeros((feats.shape[1], feats.shape[1]))
        for start in range(0, n, 4096):
            block = feats[start:start + 4096].astype(np.float64)
            total += block.sum(0)
            outer += block.T @ block
        return Moments(n=n, total=total, outer=outer)

    def real_cache_path(self, extractor: str | None = None) -> Path | None:
        """Cache file of the real outputs for `extractor` (None when caching is off)."""
        if self.cache_dir is None:
            return None
        ext = self.extractor_model(extractor)
        n = self.num_real()
        key = {"dataset": self._real.identity, "resolution": self._real.resolution, "extractor": ext.name,
               "weights_sha256": ext.weights_sha256, "resize_mode": ext.resize_mode, "n": n, "format": 2,
               "extractor_version": getattr(ext, "version", 0)}
        readable = f"{self._real.name}-r{self._real.resolution}-{ext.name}-{ext.resize_mode}-n{n}"
        if self.device.type == "cuda" and torch.backends.cudnn.allow_tf32:  # GANBENCH_ALLOW_TF32=1: not fp32
            key["tf32"], readable = True, readable + "-tf32"
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        return self.cache_dir / f"{readable}-{digest}.npz"

    def _ensure(self, source: str, extractor: str | None) -> tuple[dict[str, np.ndarray], Moments]:
        name = extractor or self.default_extractor
        key = (source, name)
        if key not in self._outputs and source == "real" and self._real is None and self.real_file is not None:
            ext = self.extractor_model(name)
            self.real_file.check_extractor(ext.describe(), ext.feature_dim)
            stored = self.real_file.features
            self._outputs[key] = {"features": stored} if stored is not None else {}
            self._moments[key] = self.real_file.moments
        if key not in self._outputs:
            cache = self.real_cache_path(name) if source == "real" else None
            loaded = _load_cache(cache) if cache is not None else None
            shard = _dist_shard()
            if shard is not None and cache is not None:
                loaded = loaded if _rank0_says(loaded is not None) else None  # every rank takes the same path
            if loaded is None:
                start_s = time.perf_counter()
                batches = ((imgs for imgs, *_ in self.generated_batches(shard=shard)) if source == "gen"
                           else (imgs for imgs, _ in self.real_batches(shard=shard)))
                if source == "gen" and self._prefetching():
                    batches = prefetched(batches)
                total = self.num_gen() if source == "gen" else self.num_real()
                if shard is None:
                    loaded = self._pass(self.extractor_model(name), batches, total, f"{source} {name}")
                else:
                    lo, hi = shard_block(total, self.batch_size, shard)
                    mine = max(0, min(hi * self.batch_size, total) - lo * self.batch_size)
                    part = self._pass(self.extractor_model(name), batches, mine, f"{source} {name}", allow_empty=True)
                    loaded = _gather_pass(part, f"{source} {name}")
                self.timings["gen_features" if source == "gen" else "real_images"] += time.perf_counter() - start_s
                if cache is not None and (shard is None or shard[0] == 0):
                    _save_cache(cache, *loaded)
            self._outputs[key], self._moments[key] = loaded
        return self._outputs[key], self._moments[key]

    def _prefetching(self) -> bool:
        """Whether generated batches are made one ahead on a background thread (see `prefetch`)."""
        if self.prefetch is not None:
            return bool(self.prefetch)
        if self._gen_images is not None:
            return False  # images already in memory: nothing to overlap
        return self.device.type == "cuda" or torch.get_num_threads() < (os.cpu_count() or 1)

    def _pass(self, ext: FeatureExtractor, batches: Iterator[torch.Tensor], total: int,
              stage: str, allow_empty: bool = False) -> tuple[dict[str, np.ndarray], Moments]:
        """Run `ext` over the batches; collect every output and float64 feature moments."""
        chunks: dict[str, list[np.ndarray]] = {}
        s = so = None
        done = 0
        report = _progress(self.progress, stage, total)
        with reuse_freed_memory():  # each batch reuses the last one's pages instead of faulting in new ones
            for images in batches:
                out = ext.extract(_three_channels(images).to(self.device))
                require_finite(out["features"], f"{stage} features", "features")
                for k, v in out.items():
                    chunks.setdefault(k, []).append(v.detach().float().cpu().numpy())
                f64 = out["features"].detach().cpu().double()
                s = f64.sum(0) if s is None else s + f64.sum(0)
                so = f64.T @ f64 if so is None else so + f64.T @ f64
                done += images.shape[0]
                report(done)
        if done == 0:
            if allow_empty:  # a rank whose shard is empty (fewer batches than processes)
                return {}, Moments(n=0, total=np.zeros(0), outer=np.zeros((0, 0)))
            raise ConfigError(f"no images for the {stage} feature pass")
        outputs = {k: np.concatenate(v) for k, v in chunks.items()}
        return outputs, Moments(n=done, total=s.numpy(), outer=so.numpy())


def check_n_real(n_real: int | None, real: Any, spec: Any) -> None:
    """`--n-real` above the data's size was capped without a word (the rows recorded the smaller count); a metric's
    own n_real (NVlabs' fid50k on a smaller set) is still capped, as NVlabs caps it."""
    if n_real is not None and int(n_real) > len(real):
        raise ConfigError(f"--n-real {n_real}, but the real data {spec} has {len(real)} images (leave --n-real out "
                          f"to use all of them)")


def prefetched(items: Iterator[Any]) -> Iterator[Any]:
    """`items`, produced one ahead on a background thread: the next batch is made while this one is used.

    Errors in the producer are raised in the consumer; a consumer that stops early stops the producer.
    """
    import queue
    import threading

    box: queue.Queue = queue.Queue(maxsize=1)
    taken = threading.Semaphore(0)   # released by the consumer for each item it takes
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for item in items:
                box.put((item, None))
                while not taken.acquire(timeout=0.1):  # one ahead only: wait until this one is taken
                    if stop.is_set():
                        return
                if stop.is_set():
                    return
            box.put((done, None))
        except BaseException as exc:  # handed to the consumer, which raises it
            box.put((done, exc))

    worker = threading.Thread(target=produce, name="ganbench-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item, exc = box.get()
            taken.release()
            if exc is not None:
                raise exc
            if item is done:
                return
            yield item
    finally:
        stop.set()
        worker.join(timeout=5)


# ---- distributed feature passes (torchrun) ----------------------------------------------------
def shard_block(n: int, batch_size: int, shard: tuple[int, int] | None) -> tuple[int, int]:
    """[lo, hi) batch indices of `shard=(rank, world)`: contiguous blocks, so rank order is batch order."""
    batches = -(-int(n) // int(batch_size))
    if shard is None:
        return 0, batches
    rank, world = shard
    return rank * batches // world, (rank + 1) * batches // world


def _dist_shard() -> tuple[int, int] | None:
    """(rank, world) inside an initialised process group of more than one process, else None."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return dist.get_rank(), dist.get_world_size()
    return None


def _rank0_says(flag: bool) -> bool:
    import torch.distributed as dist

    box = [flag]
    dist.broadcast_object_list(box, src=0)
    return bool(box[0])


def _gather_pass(part: tuple[dict[str, np.ndarray], Moments], stage: str) -> tuple[dict[str, np.ndarray], Moments]:
    """Concatenate every rank's outputs in rank order and add their float64 moments.

    Only a small description of each rank's part (row count, per-key shape and dtype) goes through
    `all_gather_object`; the arrays travel as tensors (`all_gather` of row-padded blocks, on the GPU under
    nccl) and the moments as one float64 `all_reduce`, so no rank pickles or unpickles 50k x 2048 features.
    """
    import torch
    import torch.distributed as dist

    outputs, moments = part
    world = dist.get_world_size()
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    info: list[Any] = [None] * world
    dist.all_gather_object(info, (moments.n, moments.total.size, {k: (v.shape[1:], v.dtype.str) for k, v in outputs.items()}))
    counts = [n for n, _, _ in info]
    full = [(dim, specs) for n, dim, specs in info if n > 0]
    if not full:
        raise ConfigError(f"no images for the {stage} feature pass")
    dim, specs = full[0]

    gathered: dict[str, np.ndarray] = {}
    for key, (shape, dtype) in specs.items():
        block = np.zeros((max(counts), *shape), dtype=np.dtype(dtype))   # every rank sends the same size
        if moments.n > 0:
            block[:moments.n] = outputs[key]
        local = torch.from_numpy(block).to(device)
        blocks = [torch.empty_like(local) for _ in range(world)]
        dist.all_gather(blocks, local)
        gathered[key] = np.concatenate([b[:n].cpu().numpy() for b, n in zip(blocks, counts) if n > 0])

    flat = torch.zeros(1 + dim + dim * dim, dtype=torch.float64)    # [n, total, outer] summed in one call
    if moments.n > 0:
        flat[0] = moments.n
        flat[1:1 + dim] = torch.from_numpy(np.asarray(moments.total, np.float64).reshape(-1))
        flat[1 + dim:] = torch.from_numpy(np.asarray(moments.outer, np.float64).reshape(-1))
    flat = flat.to(device)
    dist.all_reduce(flat)
    sums = flat.cpu().numpy()
    return gathered, Moments(n=int(round(sums[0])), total=sums[1:1 + dim].copy(),
                             outer=sums[1 + dim:].reshape(dim, dim).copy())


def _check_source(source: str) -> str:
    if source not in ("gen", "real"):
        raise ConfigError(f"source must be 'gen' or 'real', got {source!r}")
    return source


def _check_n(n: int | None, available: int, source: str) -> int:
    if n is None:
        return available
    if source == "real" and int(n) > 0:
        return min(int(n), available)  # as NVlabs: asking for more reals than exist uses them all
    if not 0 < int(n) <= available:
        raise ConfigError(f"a metric asks for {n} {source} samples but the context holds {available}; "
                          f"raise the context's n_{source}")
    return int(n)


def _progress(progress: Any, stage: str, total: int) -> Callable[[int], None]:
    if progress is None:
        return lambda done: None
    if hasattr(progress, "add_task"):
        task = progress.add_task(f"features: {stage}", total=total)
        return lambda done: progress.update(task, completed=done)
    return lambda done: progress(stage, done, total)


def _content_hash(arrays: dict[str, np.ndarray]) -> str:
    """sha256 over every array's name, dtype, shape and bytes (in name order): the cache file's checksum."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _load_cache(path: Path) -> tuple[dict[str, np.ndarray], Moments] | None:
    """Cached real outputs, verified against the checksum stored in the file; None (and a warning) if damaged.

    A truncated, unreadable or altered file is never used: it is recomputed and rewritten.
    """
    import warnings

    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        stored = str(arrays.pop("sha256"))
        if stored != _content_hash(arrays):
            raise ValueError("content does not match its checksum (altered file)")
        outputs = {k[4:]: v for k, v in arrays.items() if k.startswith("out_")}
        moments = Moments(n=int(arrays["mom_n"]), total=arrays["mom_total"], outer=arrays["mom_outer"])
    except Exception as exc:  # zipfile.BadZipFile, EOFError, ValueError, KeyError, OSError...
        reason = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        warnings.warn(f"real-statistics cache {path} is damaged ({reason}); recomputing it", stacklevel=2)
        return None
    return outputs, moments


def _save_cache(path: Path, outputs: dict[str, np.ndarray], moments: Moments) -> None:
    from ganbench.checkpoint import atomic_write_bytes

    arrays = {f"out_{k}": v for k, v in outputs.items()}
    arrays.update(mom_n=np.int64(moments.n), mom_total=np.asarray(moments.total), mom_outer=np.asarray(moments.outer))
    arrays["sha256"] = np.array(_content_hash(arrays))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, lambda f: f.write(buf.getvalue()))


__all__ = ["CallableGenerator", "MetricContext", "Moments", "as_generator", "check_n_real", "prefetched",
           "to_uint8"]
