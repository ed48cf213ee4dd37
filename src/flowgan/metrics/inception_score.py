r"""Inception score (Salimans et al. 2016), as in §3.2 of the paper.

.. math::

    \mathrm{IS} = \exp\Big(\mathbb{E}_{x}\, KL\big(p(y|x)\,\|\,p(y)\big)\Big),
    \qquad p(y) = \mathbb{E}_x\, p(y|x),

where ``p(y|x)`` is the softmax of a pretrained classifier and ``p(y)`` the label marginal of the
scored images as the classifier sees them. It lies in ``[1, K]`` for ``K`` classes: 1 when every
``p(y|x)`` is the same, ``K`` when each image is classified with certainty and the classes are
balanced.

Splits. As in Salimans et al. and torchmetrics' ``InceptionScore``, the images are cut into
``splits`` consecutive chunks (``torch.chunk``: chunks of ``ceil(N / splits)``), the score is
computed on each chunk with that chunk's own marginal ``p(y)``, and the mean and standard
deviation over chunks are reported. The standard deviation is torchmetrics' (``ddof = 1``); the
original TensorFlow code of Salimans et al. used ``np.std`` (``ddof = 0``); with one split it is 0.

Order. Each chunk must be a fair sample of the whole set: real data splits are often sorted by
class (mnist5k is), and a chunk of one class has an Inception score of 1. torchmetrics shuffles
with the global random state; flowgan shuffles with a *fixed* permutation (``torch.randperm`` of a
generator seeded with ``seed``, default 0), so the numbers are a deterministic function of the
input and the global random state is untouched. ``permute=False`` keeps the given order (then the
result equals torchmetrics' for the same order). Computed in float64.
"""

from __future__ import annotations

import math

import torch


def as_probs(logits: torch.Tensor | None = None, probs: torch.Tensor | None = None) -> torch.Tensor:
    """``p(y|x)`` as a float64 ``(N, K)`` tensor, from logits (softmax) or given probabilities."""
    if (logits is None) == (probs is None):
        raise ValueError("give exactly one of logits or probs")
    if logits is not None:
        if logits.dim() != 2:
            raise ValueError(f"logits must be (N, K), got shape {tuple(logits.shape)}")
        return torch.softmax(logits.double(), dim=1)
    p = probs.double()
    if p.dim() != 2:
        raise ValueError(f"probs must be (N, K), got shape {tuple(p.shape)}")
    if (p < 0).any() or not torch.allclose(p.sum(1), torch.ones(len(p), dtype=p.dtype), atol=1e-6):
        raise ValueError("probs must be non-negative and sum to 1 over the classes")
    return p


def entropy_terms(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``KL(p_i || q)`` for each row ``p_i`` of ``p`` (``0·log 0 = 0``); ``q`` is ``(K,)`` or ``(N, K)``."""
    return (torch.special.xlogy(p, p) - torch.special.xlogy(p, q.expand_as(p))).sum(-1)


def kl(p: torch.Tensor, q: torch.Tensor) -> float:
    """``KL(p || q)`` of two distributions over the same ``K`` classes, in nats."""
    return float(entropy_terms(p.double().view(1, -1), q.double().view(1, -1))[0])


def shuffled(p: torch.Tensor, permute: bool = True, seed: int = 0) -> torch.Tensor:
    """``p`` in a fixed random order (see the module docstring), or as given."""
    if not permute:
        return p
    return p[torch.randperm(len(p), generator=torch.Generator().manual_seed(seed))]


def _spread(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    return float(torch.tensor(values, dtype=torch.float64).std(correction=1))


def inception_score(
    logits: torch.Tensor | None = None,
    splits: int = 10,
    *,
    probs: torch.Tensor | None = None,
    permute: bool = True,
    seed: int = 0,
) -> dict:
    """``{"is": mean, "is_std": std, "is_splits": [...]}`` over ``splits`` chunks (see the module
    docstring); ``logits`` or ``probs`` are ``(N, K)``. Reproduces torchmetrics' ``InceptionScore``
    given the same classifier outputs in the same order (``permute=False``)."""
    p = shuffled(as_probs(logits, probs), permute, seed)
    if splits < 1 or len(p) < 1:
        raise ValueError("need at least one image and one split")
    values = []
    for chunk in torch.chunk(p, splits, dim=0):
        marginal = chunk.mean(0)
        values.append(math.exp(float(entropy_terms(chunk, marginal).mean())))
    return {"is": float(sum(values) / len(values)), "is_std": _spread(values), "is_splits": values}
