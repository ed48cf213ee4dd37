r"""MODE score (Che et al. 2017), as used for MNIST in §3.2 / Table 1 of the paper: two definitions.

``p(y|x)`` is the classifier's softmax, ``p(y) = E_x p(y|x)`` the label marginal of the scored
images, and ``p*(y)`` the label distribution of the *training data* of the dataset being scored
(measured from its training labels by :func:`label_marginal`, not assumed uniform: mnist5k is
balanced, full MNIST is not quite).

``mode_paper`` -- the paper's MODE score as issue #4 writes it (the second KL from ``p(y)`` to
``p*(y)``):

.. math::

    \mathrm{MODE}_{paper} = \exp\Big(\mathbb{E}_x KL\big(p(y|x)\,\|\,p^*(y)\big) - KL\big(p(y)\,\|\,p^*(y)\big)\Big).

It **equals the Inception score** algebraically. With ``H`` the entropy,
``E_x KL(p(y|x)||p*) = -E_x H(p(y|x)) - Σ_y p(y) log p*(y)`` and
``KL(p(y)||p*) = -H(p(y)) - Σ_y p(y) log p*(y)``, so the difference is
``H(p(y)) - E_x H(p(y|x)) = E_x KL(p(y|x)||p(y))``: the ``p*`` terms cancel and the score does
not depend on ``p*`` at all (it is computed from the formula above, which the tests check against
the Inception score). *What the paper prints* (§3.2) is different:
``exp(E_x[KL(p(y|x)||p*(y)) - KL(p*(y)||p(y))])``, with the arguments of the second KL swapped;
that expression has no such identity. It is available as :func:`mode_score_as_printed` (key
``mode_printed``) but is not what flowgan reports as ``mode_paper``.

``mode`` -- the variant that does penalise a wrong label marginal:

.. math::

    \mathrm{MODE} = \exp\Big(\mathbb{E}_x KL\big(p(y|x)\,\|\,p(y)\big) - KL\big(p(y)\,\|\,p^*(y)\big)\Big)
                  = \mathrm{IS}\cdot e^{-KL(p(y)\,\|\,p^*(y))}.

A model that draws every class with certainty but in the wrong proportions keeps its Inception
score (and ``mode_paper``) but loses ``mode``; for balanced ``p(y) = p*(y)`` the two agree.

The training hook keeps ``best_mode.pt`` by ``mode`` (the best ``mode_paper`` is the best ``is``).

Both are computed, like the Inception score, on ``splits`` chunks of the images (shuffled with a
fixed permutation; each chunk with its own ``p(y)``), mean and standard deviation over the chunks
reported. With few images per chunk the estimate of ``KL(p(y)||p*)`` is biased upwards (about
``(K-1)/(2n)`` nats for ``n`` images per chunk), so ``mode`` is biased slightly downwards (real
mnist5k test images, 50 per chunk: 8.31 against an Inception score of 9.05; real MNIST test
images, 1,000 per chunk: 9.71 against 9.76): use ≥ 1,000 images per chunk for stable numbers.
Computed in float64.
"""

from __future__ import annotations

import math

import torch

from .inception_score import _spread, as_probs, entropy_terms, kl, shuffled


def label_marginal(labels: torch.Tensor, num_classes: int | None = None) -> torch.Tensor:
    """``p*(y)``: the class frequencies of integer ``labels`` (float64, length ``num_classes``)."""
    if labels is None or len(labels) == 0:
        raise ValueError("p*(y) needs the training labels of the dataset")
    labels = torch.as_tensor(labels).long()
    k = int(num_classes) if num_classes is not None else int(labels.max()) + 1
    counts = torch.bincount(labels, minlength=k).double()
    if len(counts) > k:
        raise ValueError(f"labels go up to {int(labels.max())}, more than {k} classes")
    return counts / counts.sum()


def dataset_label_marginal(dataset, num_classes: int) -> torch.Tensor:
    """``p*(y)`` of ``dataset``: the label marginal of its training split, for a classifier with
    ``num_classes`` outputs (a :class:`FlowganError` if the dataset has no labels, or other classes)."""
    from ..errors import FlowganError

    labels = dataset.train.labels
    if labels is None:
        raise FlowganError(f"{dataset.name} has no training labels: the MODE score needs p*(y)")
    if dataset.num_classes is not None and dataset.num_classes != num_classes:
        raise FlowganError(
            f"the classifier has {num_classes} classes, {dataset.name} {dataset.num_classes}: the MODE score needs a "
            "classifier over the dataset's labels (not Inception)"
        )
    return label_marginal(labels, num_classes)


def mode_score(
    logits: torch.Tensor | None = None,
    p_star: torch.Tensor | None = None,
    splits: int = 10,
    *,
    probs: torch.Tensor | None = None,
    permute: bool = True,
    seed: int = 0,
) -> dict:
    """Both MODE scores (see the module docstring) over ``splits`` chunks of the images:
    ``{"mode_paper", "mode_paper_std", "mode", "mode_std", "kl_marginal"}`` where ``kl_marginal`` is
    the mean over chunks of ``KL(p(y)||p*(y))`` in nats. The images are shuffled first with the
    same fixed permutation as in :func:`~.inception_score.inception_score` (``permute``, ``seed``)."""
    p = shuffled(as_probs(logits, probs), permute, seed)
    if p_star is None:
        raise ValueError("mode_score needs p_star, the label distribution of the training data")
    p_star = torch.as_tensor(p_star, dtype=torch.float64)
    if p_star.shape != (p.shape[1],):
        raise ValueError(f"p_star has {tuple(p_star.shape)} entries, the classifier {p.shape[1]} classes")
    paper, variant, kls = [], [], []
    for chunk in torch.chunk(p, splits, dim=0):
        marginal = chunk.mean(0)
        kl_marg = kl(marginal, p_star)
        paper.append(math.exp(float(entropy_terms(chunk, p_star).mean()) - kl_marg))
        variant.append(math.exp(float(entropy_terms(chunk, marginal).mean()) - kl_marg))
        kls.append(kl_marg)
    n = len(paper)
    return {
        "mode_paper": sum(paper) / n,
        "mode_paper_std": _spread(paper),
        "mode": sum(variant) / n,
        "mode_std": _spread(variant),
        "kl_marginal": sum(kls) / n,
    }


def mode_score_as_printed(
    logits: torch.Tensor | None = None,
    p_star: torch.Tensor | None = None,
    splits: int = 10,
    *,
    probs: torch.Tensor | None = None,
    permute: bool = True,
    seed: int = 0,
) -> dict:
    """The expression as printed in §3.2 of the paper, ``exp(E_x KL(p(y|x)||p*) - KL(p*||p(y)))``
    (second KL reversed with respect to the issue's formula); for reference only:
    ``{"mode_printed": ..., "mode_printed_std": ...}``."""
    p = shuffled(as_probs(logits, probs), permute, seed)
    p_star = torch.as_tensor(p_star, dtype=torch.float64)
    values = [
        math.exp(float(entropy_terms(chunk, p_star).mean()) - kl(p_star, chunk.mean(0)))
        for chunk in torch.chunk(p, splits, dim=0)
    ]
    return {"mode_printed": sum(values) / len(values), "mode_printed_std": _spread(values)}
