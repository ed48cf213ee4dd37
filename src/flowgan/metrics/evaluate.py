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
counted in ``nonfinite_samples``) rather than crash an evaluation.
"""

from __future__ import annotations

from typing import Iterable

import torch

from ..errors import FlowganError
from ..runtime import mix_seed

SCORES = ("is", "mode", "fid", "kid")
DEFAULT_SAMPLES = {"cuda": 50_000, "cpu": 10_000}
SAMPLE_BLOCK = 500


def check_scores(scores: Iterable[str]) -> list[str]:
    scores = [s for s in scores]
    unknown = [s for s in scores if s not in SCORES]
    if unknown:
        raise FlowganError(f"unknown score(s) {', '.join(unknown)}; choose from {', '.join(SCORES)}")
    if not scores:
        raise FlowganError("no scores asked for")
    return scores


def default_n_samples(device) -> int:
    """50,000 on a GPU, 10,000 on a CPU."""
    return DEFAULT_SAMPLES["cuda"] if torch.device(device or "cpu").type == "cuda" else DEFAULT_SAMPLES["cpu"]


@torch.no_grad()
def sample_blocks(model, n: int, seed: int = 0, block: int = SAMPLE_BLOCK):
    """Yield ``n`` samples of ``model`` in blocks, as float32 CPU tensors in ``[0, 1]``.

    Block ``b`` is drawn with its own CPU generator seeded from ``(seed, b)``: deterministic, and
    independent of the device. The model is sampled in eval mode and put back in its previous
    mode; no global random state is used.
    """
    was_training = model.training
    model.eval()
    try:
        for b, start in enumerate(range(0, n, block)):
            gen = torch.Generator().manual_seed(mix_seed(seed, b, 11))
            x = model.sample(min(block, n - start), generator=gen)
            yield x.detach().to("cpu", torch.float32)
    finally:
        model.train(was_training)


def _p_star(dataset, num_classes: int) -> torch.Tensor:
    from .mode_score import label_marginal

    labels = dataset.train.labels
    if labels is None:
        raise FlowganError(f"{dataset.name} has no training labels: the MODE score needs p*(y)")
    if dataset.num_classes is not None and dataset.num_classes != num_classes:
        raise FlowganError(
            f"the classifier has {num_classes} classes, {dataset.name} {dataset.num_classes}: the MODE score needs a "
            "classifier over the dataset's labels (not Inception)"
        )
    return label_marginal(labels, num_classes)


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
    """The scores from a classifier's outputs on the images (see the module docstring)."""
    from .inception_score import inception_score
    from .mode_score import mode_score

    n = len(logits)
    out: dict = {"score_samples": n, "score_splits": splits, **clf.summary()}
    if nonfinite:
        out["nonfinite_samples"] = int(nonfinite)
        nan = float("nan")
        for s in scores:
            out.update({"is": {"is": nan, "is_std": nan}, "mode": {"mode": nan, "mode_paper": nan}, "fid": {"fid": nan}, "kid": {"kid": nan, "kid_std": nan}}[s])
        return out
    if "is" in scores:
        r = inception_score(logits, splits)
        out["is"], out["is_std"] = r["is"], r["is_std"]
    if "mode" in scores:
        r = mode_score(logits, _p_star(dataset, logits.shape[1]), splits)
        out.update(r)
    if "fid" in scores or "kid" in scores:
        from .features import PREPROCESSING, reference_features
        from .fid import fid_from_features, kid_from_features

        real = reference_features(dataset, split, clf, device=device)
        out["reference"] = f"{dataset.name} {split} split: {len(real)} real images, {PREPROCESSING}"
        if "fid" in scores:
            out.update(fid_from_features(real, features))
        if "kid" in scores:
            out.update(kid_from_features(real, features))
    return out


def _check_images(images: torch.Tensor, dataset) -> None:
    if not isinstance(images, torch.Tensor) or not images.is_floating_point():
        raise FlowganError("score_images expects float images in [0, 1] (uint8 real images: use score_split)")
    if images.dim() != 4 or tuple(images.shape[1:]) != tuple(dataset.shape):
        raise FlowganError(f"images have shape {tuple(images.shape)}, the dataset {dataset.name} (N, {', '.join(map(str, dataset.shape))})")
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
    need_features = "fid" in scores or "kid" in scores
    if bad:
        logits, feats = torch.zeros(len(images), 1), None
    else:
        logits, feats = clf.predict(images, features=need_features, batch_size=batch_size, device=device)
    return scores_from_predictions(logits, feats, dataset, scores, clf, split=split, splits=splits, device=device, nonfinite=bad)


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
) -> dict:
    """Scores of ``n_samples`` samples of ``model`` (default 50,000 on a GPU, 10,000 on a CPU),
    drawn with a fixed ``seed`` (see :func:`sample_blocks`); FID/KID against the real images of
    ``split``. Samples are classified block by block (never all held in memory)."""
    from .classifiers import find_classifier

    scores = check_scores(scores)
    if device is None:
        from ..models import device_dtype

        device = device_dtype(model)[0]
    n = int(n_samples) if n_samples is not None else default_n_samples(device)
    if n < 2:
        raise FlowganError("--samples must be at least 2")
    if tuple(model.shape) != tuple(dataset.shape):
        raise FlowganError(f"the model makes images of shape {tuple(model.shape)}, {dataset.name} has {tuple(dataset.shape)}")
    clf = find_classifier(dataset, classifier)
    need_features = "fid" in scores or "kid" in scores
    logits, feats, bad = [], [], 0
    for x in sample_blocks(model, n, seed, batch_size):
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
    out = scores_from_predictions(lg_all, ft_all, dataset, scores, clf, split=split, splits=splits, device=device, nonfinite=bad)
    out["sample_seed"] = seed
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
    out = score_images(images, dataset, scores, classifier=classifier, device=device, split=reference_split, splits=splits)
    out = {"dataset": dataset.name, "split": split, "images": PREPROCESSING, **out}
    if "fid" in scores or "kid" in scores:
        out["reference_split"] = reference_split
    return out
