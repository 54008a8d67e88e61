"""The on-disk cache of real-data outputs (issue 15 item 10): verified on read, recomputed when damaged.

Before the fix a truncated cache file raised BadZipFile on every later run, and a well-formed but
altered file was used silently (a wrong FID with no hint).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from ganbench.metrics.context import MetricContext


def _images(n: int, seed: int) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def _context(cache) -> MetricContext:
    return MetricContext(generator=_images(12, 1), real=_images(12, 2), n_gen=12, extractor="shapes-net",
                         batch_size=6, cache_dir=cache)


@pytest.fixture
def cached(tmp_path):
    """(cache folder, cache file, the real features computed fresh)."""
    ctx = _context(tmp_path)
    fresh = ctx.real_outputs()["features"].copy()
    path = ctx.real_cache_path()
    assert path.is_file()
    return tmp_path, path, fresh


def _reload(cache) -> tuple[np.ndarray, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        feats = _context(cache).real_outputs()["features"]
    return feats, [str(w.message) for w in caught]


def test_intact_cache_is_used_without_warning(cached, monkeypatch):
    cache, path, fresh = cached
    monkeypatch.setattr(MetricContext, "_pass", lambda *a, **k: pytest.fail("an intact cache was recomputed"))
    feats, messages = _reload(cache)
    np.testing.assert_array_equal(feats, fresh)
    assert messages == []


def test_truncated_stats_cache_is_recomputed_with_a_warning(cached):
    cache, path, fresh = cached
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    feats, messages = _reload(cache)  # before: zipfile.BadZipFile traceback
    np.testing.assert_allclose(feats, fresh, rtol=1e-6, atol=1e-6)
    damaged = [m for m in messages if "damaged" in m]
    assert len(damaged) == 1 and str(path) in damaged[0] and "\n" not in damaged[0]
    assert np.load(path)["out_features"].shape == fresh.shape  # rewritten whole


def test_altered_stats_cache_is_recomputed_with_a_warning(cached):
    cache, path, fresh = cached
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["mom_total"] = arrays["mom_total"] * 1.01  # well-formed, plausible, wrong
    arrays["out_features"] = arrays["out_features"] + 0.5
    np.savez(path, **arrays)
    feats, messages = _reload(cache)  # before: the altered numbers were used silently
    np.testing.assert_allclose(feats, fresh, rtol=1e-6, atol=1e-6)
    assert any("damaged" in m and str(path) in m for m in messages), messages
    ctx = _context(cache)
    np.testing.assert_allclose(ctx.real_moments().total, fresh.astype(np.float64).sum(0), rtol=1e-6)
