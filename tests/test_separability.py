"""Linear separability: hand-computed entropies, ground-truth logits, and shapes-net labels end to end."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from ganbench.data.shapes import (BINARY_ATTRIBUTE_NAMES, POSITION_RANGE, SIZE_RANGE, ShapeAttributes,
                                  binary_attributes, render)
from ganbench.errors import ConfigError
from ganbench.metrics import get_metric
from ganbench.metrics.context import MetricContext
from ganbench.metrics.separability import collect_latents_and_attributes, conditional_entropy, separability

RES = 32
SIZE_MID, POS_MID = sum(SIZE_RANGE) / 2, sum(POSITION_RANGE) / 2


def _attributes(z: np.ndarray, scrambled: bool) -> list[ShapeAttributes]:
    """Latent dims -> shapes attributes: by sign of one dim each, or (scrambled) of a product of two."""
    s = z[:, :6] if not scrambled else z[:, :6] * z[:, [1, 2, 3, 4, 5, 0]]
    out = []
    for row, zz in zip(s, z):
        out.append(ShapeAttributes(
            shape=0 if row[0] > 0 else 1,                       # circle / square
            color=0 if row[1] > 0 else 1,                       # red / green
            size=float(SIZE_MID + 0.09 * np.tanh(row[2])),      # size_large iff > 0
            x=float(POS_MID - 0.15 * np.tanh(row[3])),          # pos_left iff > 0
            y=float(POS_MID - 0.15 * np.tanh(row[4])),          # pos_top iff > 0
            rotation=float(np.pi / 4 * np.tanh(zz[6])), background=40))
    return out


class _Mapping(nn.Module):
    def __init__(self, z_dim: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.register_buffer("A", torch.linalg.qr(torch.randn(z_dim, z_dim, generator=g))[0])
        self.num_ws = 2

    def forward(self, z, c=None, truncation_psi=1.0):
        return (z @ self.A).unsqueeze(1).repeat(1, self.num_ws, 1)


class _Synthesis(nn.Module):
    def __init__(self, mapping: _Mapping, scrambled: bool) -> None:
        super().__init__()
        self.mapping, self.scrambled = [mapping], scrambled  # a list: do not register twice

    def forward(self, ws, noise_mode="const"):
        z = (ws[:, -1] @ self.mapping[0].A.T).numpy()  # W is a rotation of Z: recover z
        imgs = np.stack([render(a, RES) for a in _attributes(z, self.scrambled)])
        return (torch.from_numpy(imgs).float() + 0.5 - 128) / 127.5


class AttributeGenerator(nn.Module):
    """Draws shapes whose attributes are read off the latent (style-based: W = rotated Z)."""

    def __init__(self, scrambled: bool = False) -> None:
        super().__init__()
        self.z_dim = self.w_dim = 8
        self.c_dim, self.num_ws, self.img_resolution, self.img_channels = 0, 2, RES, 3
        self.mapping = _Mapping(self.z_dim)
        self.synthesis = _Synthesis(self.mapping, scrambled)

    def forward(self, z, c=None, truncation_psi=1.0, noise_mode="const"):
        return self.synthesis(self.mapping(z), noise_mode)


def _truth_logits(z: np.ndarray, scrambled: bool) -> np.ndarray:
    """A classifier stand-in: ground-truth binary attributes as +-(margin) logits (class 0 = attribute true)."""
    s = np.abs(z[:, :6] if not scrambled else z[:, :6] * z[:, [1, 2, 3, 4, 5, 0]])
    margin = np.ones((z.shape[0], len(BINARY_ATTRIBUTE_NAMES)))
    margin[:, [0, 1]], margin[:, [4, 5]], margin[:, 10:] = s[:, [0]], s[:, [1]], s[:, 2:5]
    return np.where(binary_attributes(_attributes(z, scrambled)), 1.0, -1.0) * margin


def test_conditional_entropy_hand_cases():
    y = np.array([0, 0, 1, 1, 0, 1, 0, 1], dtype=bool)
    assert conditional_entropy(y, y) == 0.0
    assert conditional_entropy(~y, y) == 0.0  # a flipped predictor still determines the label
    assert conditional_entropy(np.array([0, 1, 0, 1, 0, 1, 0, 1], bool), np.array([0, 0, 1, 1] * 2, bool)) == \
        pytest.approx(1.0)  # independent fair bits
    # pred = [0]*4 + [1]*4, target agrees on 3 of 4 in each row: H = h(1/4) bits
    pred = np.array([0, 0, 0, 0, 1, 1, 1, 1], bool)
    target = np.array([0, 0, 0, 1, 1, 1, 1, 0], bool)
    h = -(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75))
    assert conditional_entropy(pred, target) == pytest.approx(h)


def test_ground_truth_labels_separable_vs_scrambled():
    z = np.random.default_rng(0).standard_normal((400, 8))
    good, ent = separability(z, _truth_logits(z, False))
    assert ent.shape == (len(BINARY_ATTRIBUTE_NAMES),)
    assert good == pytest.approx(1.0, abs=0.05)
    bad, ent_bad = separability(z, _truth_logits(z, True))
    assert bad > 30.0  # 7 XOR-like attributes at ~1 bit each
    assert ent_bad[[0, 4, 10, 11, 12]].min() > 0.3


def test_most_confident_half_is_kept():
    z = np.random.default_rng(1).standard_normal((200, 2))
    logits = (z[:, :1] > 0) * 2.0 - 1.0
    logits = logits * np.abs(z[:, :1])
    noisy = logits.copy()
    noisy[np.argsort(np.abs(z[:, 0]))[:40]] *= -1  # flip the 40 least confident labels
    assert separability(z, noisy, keep_fraction=0.5)[0] == pytest.approx(1.0, abs=1e-9)
    assert separability(z, noisy, keep_fraction=1.0)[0] > 1.2


def test_bad_shapes_are_config_errors():
    with pytest.raises(ConfigError):
        separability(np.zeros((4, 2)), np.zeros((5, 3)))
    with pytest.raises(ConfigError):
        separability(np.zeros((4, 2)), np.zeros((4, 3)), keep_fraction=0)


def test_shapes_net_labels_end_to_end():
    """The real pipeline: shapes-net labels images of one-to-one vs scrambled latent->attribute generators."""
    ctx = MetricContext(generator=AttributeGenerator(False), n_gen=320, batch_size=64, cache_dir=False)
    good = get_metric("ls").compute(ctx)
    assert set(good) == {"ls_z", "ls_w"}
    ctx_bad = MetricContext(generator=AttributeGenerator(True), n_gen=320, batch_size=64, cache_dir=False)
    bad = get_metric("ls").compute(ctx_bad)
    assert good["ls_z"] < 1.6 and good["ls_w"] < 1.6, good
    assert bad["ls_z"] > 10 * good["ls_z"] and bad["ls_w"] > 10 * good["ls_w"], (good, bad)


def test_generator_without_w_space_gets_ls_z_only():
    class ZOnly(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = AttributeGenerator(False)
            self.z_dim, self.c_dim, self.img_resolution, self.img_channels = 8, 0, RES, 3

        def forward(self, z, c=None, truncation_psi=1.0, noise_mode="const"):
            return self.inner(z)

    ctx = MetricContext(generator=ZOnly(), n_gen=64, cache_dir=False)
    assert set(get_metric("ls").compute(ctx)) == {"ls_z"}
    assert set(get_metric("ls_z").compute(ctx)) == {"ls_z"}
    with pytest.raises(ConfigError, match="no W space"):
        collect_latents_and_attributes(ctx, "shapes-net", 8, ("z", "w"))
    with pytest.raises(ConfigError, match="generator network"):
        get_metric("ls").compute(MetricContext(generator=torch.zeros(4, 3, RES, RES, dtype=torch.uint8), n_gen=4,
                                               cache_dir=False))


def test_user_classifier_set_plugs_in_and_must_have_attributes():
    """A non-shapes dataset brings its own FeatureExtractor with an 'attributes' output."""
    from ganbench.features.base import FeatureExtractor

    class TruthClassifier(FeatureExtractor):
        """Reads the attributes off the stand-in generator's images: red channel > green means 'red'."""

        name, feature_dim, outputs = "truth-attributes", 1, ("features", "attributes")

        def extract(self, images):
            x = images.float()
            red = x[:, 0].mean((1, 2)) - x[:, 1].mean((1, 2))  # color_red vs color_green
            return {"features": red[:, None], "attributes": red[:, None]}

    class FeaturesOnly(TruthClassifier):
        name, outputs = "features-only", ("features",)

    ctx = MetricContext(generator=AttributeGenerator(False), n_gen=96, extractor=TruthClassifier(), cache_dir=False)
    out = get_metric("ls", classifier="truth-attributes").compute(ctx)
    assert out["ls_z"] == pytest.approx(1.0, abs=0.05) and out["ls_w"] == pytest.approx(1.0, abs=0.05)
    bad_ctx = MetricContext(generator=AttributeGenerator(True), n_gen=96, extractor=TruthClassifier(), cache_dir=False)
    assert get_metric("ls", classifier="truth-attributes").compute(bad_ctx)["ls_z"] > 1.5
    ctx2 = MetricContext(generator=AttributeGenerator(False), n_gen=8, extractor=FeaturesOnly(), cache_dir=False)
    with pytest.raises(ConfigError, match="no 'attributes' output"):
        get_metric("ls", classifier="features-only").compute(ctx2)


def _reference_score(latents: np.ndarray, logits: np.ndarray, keep: int) -> float:
    """StyleGAN's procedure written plainly: softmax([l, -l]) confidences, Python sort, SVM, H(Y) - I(X;Y)."""
    from sklearn.svm import LinearSVC

    total = 0.0
    for a in range(logits.shape[1]):
        probs = np.exp(np.stack([logits[:, a], -logits[:, a]], 1))
        probs /= probs.sum(1, keepdims=True)
        kept = sorted(range(len(probs)), key=lambda i: -np.max(probs[i]))[:keep]
        targets = np.argmax(probs[kept], axis=1)
        try:
            outputs = LinearSVC().fit(latents[kept], targets).predict(latents[kept])
        except ValueError:  # one class only
            outputs = targets
        p = np.array([[np.mean([(o, t) == (r, c) for o, t in zip(outputs, targets)]) for c in (0, 1)]
                      for r in (0, 1)])
        px, py = p.sum(1), p.sum(0)
        h_y = -sum(v * np.log2(v) for v in py if v > 0)
        mi = sum(p[r, c] * np.log2(p[r, c] / (px[r] * py[c])) for r in (0, 1) for c in (0, 1) if p[r, c] > 0)
        total += max(0.0, h_y - mi)
    return 2.0 ** total


def test_matches_plain_rewrite_of_the_stylegan_procedure():
    rng = np.random.default_rng(3)
    z = rng.standard_normal((240, 6))
    logits = np.stack([z[:, 0] + 0.3 * rng.standard_normal(240),          # mostly separable
                       z[:, 1] * z[:, 2],                                  # XOR-like
                       np.full(240, 2.0),                                  # one class only
                       rng.standard_normal(240)], axis=1)                  # unrelated to z
    ours = separability(z, logits, keep_fraction=0.5)[0]
    assert ours == pytest.approx(_reference_score(z, logits, 120), rel=1e-3)
