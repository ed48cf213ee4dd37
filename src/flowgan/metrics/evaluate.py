"""The scores of a set of images, of real data and of a model's samples (issue #4, §3.2).

* :func:`score_images` -- IS, both MODE scores, FID and KID of any float images in ``[0, 1]``;
* :func:`evaluate_samples` -- the same for ``n`` samples of a flow model (fixed seed: the same
  checkpoint always gives the same numbers); used by ``flowgan evaluate``;
* :func:`score_split` -- the same for the real images of a dataset split (``flowgan score``): the
  reference a model's samples are read against.

Keys of the result: ``is``, ``is_std`` (Inception score, mean and std over 10 splits); ``mode_paper``
and ``mode`` (the two MODE scores of :mod:`.mode_score`, with ``mode_paper_std``, ``mode_std``,
``kl_marginal``); ``fid``; ``kid``, ``kid_std``; and what they were computed from: ``score_samples``,
``score_splits``, ``classifier`` (a description: which network, trained on which data, its test
accuracy, where its file is), ``classifier_trained_on``, ``classifier_test_accuracy``,
``reference`` (the real images of FID/KID). Images with NaN/Inf make every score NaN (and are
counted in ``nonfinite_samples``) rather than crash an evaluation. Each score is declared, with
its keys and direction, in :mod:`.registry`.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from ..errors import FlowganError
from .registry import METRICS, SCORES, ScoreInputs, parse_metrics
from .sampling import SAMPLE_BLOCK, default_n_samples, sample_blocks


def check_scores(scores: Iterable[str]) -> list[str]:
    """The sample scores asked for (names of :data:`.registry.SCORES`), in the order given."""
    scores = list(scores)
    if not scores:
        raise FlowganError("no scores asked for")
    return parse_metrics(scores, SCORES, what="score")


def scores_from_predictions(
    logits: torch.Tensor,
    features: torch.Tensor | None,
    dataset,
    scores: list[str],
    clf,
    *,
    split: str = "test",
    splits: int = 10,
    device=None,
    nonfinite: int = 0,
) -> dict:
    """The scores from a classifier's outputs on the images (see the module docstring): each
    metric's function of :data:`.registry.METRICS`, in the registry's order."""
    out: dict = {"score_samples": len(logits), "score_splits": splits, **clf.summary()}
    chosen = [m for name, m in METRICS.items() if name in scores and m.is_score]
    if nonfinite:
        out["nonfinite_samples"] = int(nonfinite)
        for m in chosen:
            out.update(m.nan_result())
        return out
    inputs = ScoreInputs(logits, features, dataset, clf, split=split, splits=splits, device=device)
    for m in chosen:
        if m.needs == "features" and "reference" not in out:
            out["reference"] = inputs.reference_text()
        out.update(m.compute(inputs))
    return out


def _needs_features(scores) -> bool:
    return any(METRICS[s].needs == "features" for s in scores)


def _check_images(images: torch.Tensor, dataset) -> None:
    if not isinstance(images, torch.Tensor) or not images.is_floating_point():
        raise FlowganError("score_images expects float images in [0, 1] (uint8 real images: use score_split)")
    if images.dim() != 4 or tuple(images.shape[1:]) != tuple(dataset.shape):
        raise FlowganError(
            f"images have shape {tuple(images.shape)}, the dataset {dataset.name} (N, "
            f"{', '.join(map(str, dataset.shape))})"
        )
    if len(images) < 2:
        raise FlowganError("scores need at least 2 images")


def _nonfinite(x: torch.Tensor) -> int:
    return int((~torch.isfinite(x)).flatten(1).any(1).sum())


def score_images(
    images: torch.Tensor,
    dataset,
    scores,
    classifier=None,
    device=None,
    split: str = "test",
    *,
    splits: int = 10,
    batch_size: int = 500,
) -> dict:
    """Scores of float ``images`` ``(N, C, H, W)`` in ``[0, 1]`` (samples, or real images of
    another source, e.g. a Gaussian-mixture baseline) for ``dataset``.

    ``scores`` among ``is, mode, fid, kid``; ``classifier``: ``None`` (the dataset's default, see
    :func:`~.classifiers.find_classifier`), a path, ``"inception"``, or a loaded
    :class:`~.classifiers.ScoreClassifier`; ``split``: the real images FID/KID compare with.
    """
    from .classifiers import find_classifier

    scores = check_scores(scores)
    _check_images(images, dataset)
    clf = find_classifier(dataset, classifier)
    bad = _nonfinite(images)
    need_features = _needs_features(scores)
    if bad:
        logits, feats = torch.zeros(len(images), 1), None
    else:
        logits, feats = clf.predict(images, features=need_features, batch_size=batch_size, device=device)
    return scores_from_predictions(
        logits, feats, dataset, scores, clf, split=split, splits=splits, device=device, nonfinite=bad
    )


def evaluate_samples(
    model,
    dataset,
    scores,
    n_samples: int | None = None,
    classifier=None,
    device=None,
    split: str = "test",
    *,
    seed: int = 0,
    splits: int = 10,
    batch_size: int = SAMPLE_BLOCK,
    temperature: float = 1.0,
) -> dict:
    """Scores of ``n_samples`` samples of ``model`` (default 50,000 on a GPU, 10,000 on a CPU),
    drawn with a fixed ``seed`` at the sampling ``temperature`` (see :func:`sample_blocks`);
    FID/KID against the real images of ``split``. Samples are classified block by block (never
    all held in memory)."""
    from .classifiers import find_classifier

    scores = check_scores(scores)
    if device is None:
        from ..models import device_dtype

        device = device_dtype(model)[0]
    n = int(n_samples) if n_samples is not None else default_n_samples(device)
    if n < 2:
        raise FlowganError("--samples must be at least 2")
    if tuple(model.shape) != tuple(dataset.shape):
        raise FlowganError(
            f"the model makes images of shape {tuple(model.shape)}, {dataset.name} has {tuple(dataset.shape)}"
        )
    clf = find_classifier(dataset, classifier)
    need_features = _needs_features(scores)
    logits, feats, bad = [], [], 0
    for x in sample_blocks(model, n, seed, batch_size, temperature=temperature):
        b = _nonfinite(x)
        bad += b
        if bad:
            continue  # the scores will be NaN: no need to classify
        lg, ft = clf.predict(x, features=need_features, batch_size=batch_size, device=device)
        logits.append(lg)
        if need_features:
            feats.append(ft)
    if bad:
        lg_all, ft_all = torch.zeros(n, 1), None
    else:
        lg_all, ft_all = torch.cat(logits), (torch.cat(feats) if need_features else None)
    out = scores_from_predictions(
        lg_all, ft_all, dataset, scores, clf, split=split, splits=splits, device=device, nonfinite=bad
    )
    out["sample_seed"] = seed
    if temperature != 1.0:
        out["temperature"] = temperature
    return out


def score_split(
    dataset,
    split: str = "test",
    scores=("is", "mode", "fid", "kid"),
    *,
    n_images: int | None = None,
    classifier=None,
    device=None,
    reference_split: str | None = None,
    splits: int = 10,
) -> dict:
    """Scores of the real images of ``dataset``'s ``split`` (all, or a fixed random subset of
    ``n_images``: seed 0), dequantized as
    in :func:`.features.real_images`; FID/KID against ``reference_split`` (default: ``test``, or
    ``val`` when scoring ``test``)."""
    from .features import PREPROCESSING, real_images

    images = real_images(dataset.split(split).images)  # each image's noise follows its index in the split
    if n_images is not None and n_images < len(images):
        # a fixed random subset, not the first n: splits are often sorted by class
        pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[:n_images].sort().values
        images = images[pick]
    reference_split = reference_split or ("val" if split == "test" else "test")
    out = score_images(
        images, dataset, scores, classifier=classifier, device=device, split=reference_split, splits=splits
    )
    out = {"dataset": dataset.name, "split": split, "images": PREPROCESSING, **out}
    if _needs_features(check_scores(scores)):
        out["reference_split"] = reference_split
    return out
