"""Parameter counts equal NVlabs' published networks at the same settings (built on the meta device: no memory)."""

from __future__ import annotations

import pytest
import torch

import model_zoo
from model_zoo.layers import count_params

# (name, resolution, overrides) -> (G, G.mapping, G.synthesis, D); numbers from NVlabs' network summaries.
CASES = [
    ("stylegan2", 32, {}, (21_523_475, 2_101_248, 19_422_227, 21_507_073)),
    ("stylegan2", 256, {}, (30_034_338, None, None, 28_864_129)),
    ("stylegan2", 1024, {}, (30_370_060, None, None, 29_012_513)),
    ("stylegan2-ada", 32, {"preset": "cifar"}, (19_947_539, None, None, 20_720_641)),
    ("stylegan2-ada", 32, {"preset": "stylegan2"}, (21_523_475, 2_101_248, 19_422_227, 21_507_073)),
]


@pytest.mark.parametrize("name,resolution,overrides,expected", CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[2].get('preset', 'default')}" for c in CASES])
def test_param_counts_match_nvlabs(name: str, resolution: int, overrides: dict, expected: tuple) -> None:
    with torch.device("meta"):
        spec = model_zoo.build(name, resolution, **overrides)
    g, mapping, synthesis, d = expected
    assert count_params(spec.G) == g
    assert count_params(spec.D) == d
    if mapping is not None:
        assert count_params(spec.G.mapping) == mapping
        assert count_params(spec.G.synthesis) == synthesis


@pytest.mark.parametrize("name,g_millions,d_millions", [("progan", 23.1, 23.1), ("stylegan", 26.2, 23.1)])
def test_progressive_families_match_paper_totals(name: str, g_millions: float, d_millions: float) -> None:
    """ProGAN Table 2 and StyleGAN section 2 report 23.1M (ProGAN G and D) and 26.2M (StyleGAN G) at 1024px."""
    with torch.device("meta"):
        spec = model_zoo.build(name, 1024)
    assert round(count_params(spec.G) / 1e6, 1) == g_millions
    assert round(count_params(spec.D) / 1e6, 1) == d_millions
