"""Named metric presets (NVlabs' fid50k_full, ppl2_wend, ...) are their base metric with other defaults."""

import pytest

from ganbench.errors import ConfigError
from ganbench.metrics import METRICS, get_metric, list_metrics
from ganbench.metrics.base import register_variant
from ganbench.metrics.fid import FID


def test_presets_keep_base_parameters_and_change_only_their_defaults():
    list_metrics()
    full = get_metric("fid50k_full")
    assert isinstance(full, FID) and full.n_gen == 50000 and full.n_real is None
    assert full.covariance == "biased" and list(full.outputs) == ["fid50k_full"]
    assert get_metric("fid50k_full", covariance="unbiased").covariance == "unbiased"
    assert get_metric("pr50k3").extractor == "vgg16"
    assert get_metric("eqr50k").kind == "rot" and get_metric("eqt50k_frac").kind == "frac"


def test_ppl_presets_fix_their_space_and_sampling():
    assert (get_metric("ppl2_wend").space, get_metric("ppl2_wend").sampling) == ("w", "end")
    with pytest.raises(ConfigError, match="fixes its space"):
        get_metric("ppl_wend", space="z")


def test_variant_of_an_unknown_parameter_is_refused():
    with pytest.raises(ValueError, match="no parameters"):
        register_variant(FID, "fid_typo_test", "x", {"fid_typo_test": "lower"}, n_gne=5)
    assert "fid_typo_test" not in METRICS
