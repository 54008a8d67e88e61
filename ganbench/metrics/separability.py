"""Linear separability (Karras et al., StyleGAN): how well a hyperplane in Z or W predicts attributes.

Generated images are labelled by binary attribute classifiers: each attribute's logit l becomes the
two-class probabilities softmax([l, -l]) (class 0 when l >= 0). Per attribute, the `keep_fraction`
most confident samples are kept (stable order on ties), a linear SVM (scikit-learn `LinearSVC()`,
default settings, unscaled inputs) is fitted on their latents and predicts the same samples, and the
conditional entropy H(label | prediction) in bits is read off the 2x2 joint table. An attribute
whose kept labels are all one class counts as perfectly predicted. The score is 2^(sum of the
entropies): 1.0 when every attribute is linearly separable, up to 2^(attributes) when none is.
The reference setting is 200k samples keeping 100k (n_gen=200000, keep_fraction=0.5); W is the
mapping output of the last layer.

Classifiers: `classifier` names a registered feature extractor whose `extract` returns an
'attributes' output of shape [N, A] (one logit per binary attribute). For `shapes` that is
`shapes-net` (13 attributes, `ganbench.data.shapes.BINARY_ATTRIBUTE_NAMES`). For another dataset,
register your own: a `FeatureExtractor` subclass with `outputs = ('features', 'attributes')`,
decorated with `@EXTRACTORS.register('my-attributes')` in a module under `ganbench/features/`
(or imported before evaluation), and pass `classifier='my-attributes'`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from ganbench.errors import ConfigError, NotApplicable
from ganbench.heap import reuse_freed_memory
from ganbench.metrics._sampling import progress_reporter
from ganbench.metrics.base import METRICS, Metric

if TYPE_CHECKING:
    from ganbench.metrics.context import MetricContext


def _entropy_bits(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def conditional_entropy(predicted: np.ndarray, target: np.ndarray) -> float:
    """H(target | predicted) in bits from the 2x2 joint of two binary label vectors (clipped at 0)."""
    predicted, target = np.asarray(predicted, dtype=bool), np.asarray(target, dtype=bool)
    joint = np.array([[np.mean(~predicted & ~target), np.mean(~predicted & target)],
                      [np.mean(predicted & ~target), np.mean(predicted & target)]])
    return max(0.0, _entropy_bits(joint.ravel()) - _entropy_bits(joint.sum(axis=1)))


def attribute_entropy(latents: np.ndarray, logits: np.ndarray, keep: int) -> float:
    """H(label | SVM prediction) for one attribute, on the `keep` samples the classifier is surest of."""
    order = np.argsort(-np.abs(logits), kind="stable")[:keep]  # max(softmax([l, -l])) grows with |l|
    x, y = latents[order], logits[order] < 0  # argmax of [l, -l]: class 1 iff l < 0
    if y.all() or not y.any():
        return 0.0  # one class only: an SVM cannot be fitted, and the label is perfectly predictable
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        svm = LinearSVC().fit(x, y)
    return conditional_entropy(svm.predict(x).astype(bool), y)


def separability(latents: np.ndarray, attribute_logits: np.ndarray, keep_fraction: float = 0.5
                 ) -> tuple[float, np.ndarray]:
    """(2^(sum of entropies), per-attribute entropies) for latents [N, d] and attribute logits [N, A]."""
    latents, attribute_logits = np.asarray(latents, dtype=np.float64), np.asarray(attribute_logits)
    if latents.ndim != 2 or attribute_logits.ndim != 2 or latents.shape[0] != attribute_logits.shape[0]:
        raise ConfigError(f"separability needs latents [N, d] and logits [N, A] with one N, got "
                          f"{latents.shape} and {attribute_logits.shape}")
    if not 0 < keep_fraction <= 1:
        raise ConfigError(f"keep_fraction must be in (0, 1], got {keep_fraction}")
    keep = max(2, int(round(latents.shape[0] * keep_fraction)))
    entropies = np.array([attribute_entropy(latents, attribute_logits[:, a], keep)
                          for a in range(attribute_logits.shape[1])])
    return float(2.0 ** entropies.sum()), entropies


@torch.no_grad()
def collect_latents_and_attributes(ctx: "MetricContext", classifier: str, n: int, spaces: tuple[str, ...]
                                   ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Stream n generated images: their z (and last-layer w) and the classifier's attribute logits."""
    G = ctx.generator
    if not isinstance(G, torch.nn.Module):
        raise ConfigError("linear separability needs a generator network (its latents), not pre-generated images")
    if "w" in spaces and not callable(getattr(G, "mapping", None)):
        raise NotApplicable(f"ls_w needs a style-based generator; {type(G).__name__} has no W space")
    ext = ctx.extractor_model(classifier)
    if "attributes" not in ext.outputs:
        raise ConfigError(f"classifier {classifier!r} has no 'attributes' output (it has {', '.join(ext.outputs)}); "
                          f"register an extractor that returns attribute logits")
    lat: dict[str, list[np.ndarray]] = {s: [] for s in spaces}
    logits = []
    report = progress_reporter(ctx, "linear separability: sampling", n)
    with reuse_freed_memory():  # each batch reuses the last one's pages instead of faulting in new ones
        for images, z, c in ctx.generated_batches(n, seed=ctx.seed):
            lat["z"].append(z.numpy())
            if "w" in spaces:
                ws = G.mapping(z.to(ctx.device), None if c is None else c.to(ctx.device), truncation_psi=1.0)
                lat["w"].append(ws[:, -1].float().cpu().numpy())
            images = images.repeat(1, 3, 1, 1) if images.shape[1] == 1 else images
            logits.append(ext.extract(images.to(ctx.device))["attributes"].float().cpu().numpy())
            report(sum(len(v) for v in logits))
    return {s: np.concatenate(v) for s, v in lat.items()}, np.concatenate(logits)


@METRICS.register("ls")
@dataclass
class LinearSeparability(Metric):
    """Linear separability in Z and W (`ls_z`, `ls_w`); reference: n_gen=200000, keep_fraction=0.5.

    For a generator without a W space (ProGAN) only `ls_z` is reported.
    """

    n_gen: int | None = None  # None: the context's n_gen
    keep_fraction: float = 0.5
    classifier: str = "shapes-net"

    name = "ls"
    outputs = {"ls_z": "lower", "ls_w": "lower"}
    needs = frozenset({"generator", "gen_attributes"})
    reference = "StyleGAN metrics/linear_separability.py (LinearSVC per attribute, 2^sum H(Y|X))"
    cost = "its own generator + classifier pass over n_gen samples, then a linear SVM per attribute"
    spaces = ("z", "w")

    def compute(self, ctx: "MetricContext") -> dict[str, float]:
        spaces = self.spaces if callable(getattr(ctx.generator, "mapping", None)) else ("z",)
        latents, logits = collect_latents_and_attributes(ctx, self.classifier, self.n_gen or ctx.num_gen(), spaces)
        return {f"ls_{s}": separability(latents[s], logits, self.keep_fraction)[0] for s in spaces}


@METRICS.register("ls_z")
@dataclass
class LinearSeparabilityZ(LinearSeparability):
    """Linear separability in Z only (skips the W pass of `ls`)."""

    name = "ls_z"
    outputs = {"ls_z": "lower"}
    spaces = ("z",)
