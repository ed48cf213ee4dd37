"""Sample-quality metrics (issue #4): Inception score, MODE score (both definitions), FID, KID.

The paper ranks objectives by held-out NLL and by sample quality: the Inception score on CIFAR-10
and the MODE score on MNIST (§3.2, Tables 1-2, Appendix B). One small module per piece:

=================== ===========================================================================
inception_score     IS = exp(E_x KL(p(y|x) || p(y))) (Salimans et al. 2016), 10 splits
mode_score          MODE (Che et al. 2017): the issue's ``mode_paper`` (= IS algebraically) and
                    the ``mode`` variant IS·exp(-KL(p(y) || p*(y))); what the paper prints
fid                 FID (Heusel et al. 2017) and KID (Bińkowski et al. 2018) via torchmetrics
registry            every metric declared once: name, result keys, direction, function, needs
classifier_nets     the offline classifiers' networks (small CNN / ResNet)
score_classifier    ScoreClassifier: a loaded classifier, its predictions and provenance
classifiers         classifier files, names and lookup (shipped, cache, paths)
classifier_training training a classifier (``flowgan classifier train``)
features            real images as scored, cached reference features of a split
inception           torch-fidelity's Inception-v3 when its weights are present
sampling            samples of a model in fixed-seed blocks
evaluate            score_images, evaluate_samples, score_split
collapse            collapse diagnostics (near duplicates, saturation, classes covered)
noise               pixel noise for classifier checks and flow-like augmentation
training            score_hook: the scores during training (best_<metric>.pt checkpoints)
cli                 ``flowgan classifier train|info`` and ``flowgan score``
=================== ===========================================================================

Nothing is imported until used (``flowgan --help`` stays fast).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "score_images": "flowgan.metrics.evaluate",
    "evaluate_samples": "flowgan.metrics.evaluate",
    "score_split": "flowgan.metrics.evaluate",
    "SCORES": "flowgan.metrics.registry",
    "METRICS": "flowgan.metrics.registry",
    "Metric": "flowgan.metrics.registry",
    "mode_score_as_printed": "flowgan.metrics.mode_score",
    "label_marginal": "flowgan.metrics.mode_score",
    "fid_from_features": "flowgan.metrics.fid",
    "kid_from_features": "flowgan.metrics.fid",
    "find_classifier": "flowgan.metrics.classifiers",
    "load_classifier": "flowgan.metrics.classifiers",
    "train_classifier": "flowgan.metrics.classifier_training",
    "save_classifier": "flowgan.metrics.classifiers",
    "classifier_family": "flowgan.metrics.classifiers",
    "default_classifier_dir": "flowgan.metrics.classifiers",
    "real_images": "flowgan.metrics.features",
    "reference_features": "flowgan.metrics.features",
    "score_hook": "flowgan.metrics.training",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'flowgan.metrics' has no attribute {name!r}")


def __dir__():
    return __all__
