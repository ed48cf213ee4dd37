r"""Kernel density (Parzen-window) estimates of a model's log-likelihood (Parzen 1962; Goodfellow et al. 2014).

Draw ``N`` samples ``s_1..s_N`` from the model (default 10,000), place an isotropic Gaussian kernel
of bandwidth ``h`` on each, and evaluate held-out points under the resulting density

.. math:: \hat p_h(x) = \frac1N \sum_{j=1}^N \mathcal N(x;\, s_j,\, h^2 I_D),

choosing ``h`` on the validation split (Goodfellow et al. 2014 used a grid search on validation
data) and reporting the mean test log-likelihood with its standard error. This is exactly the
Gaussian mixture of :mod:`flowgan.analysis.gmm` with model samples as centres, so the same chunked,
exact log-sum-exp and the same bandwidth line search are used.

Conventions, as for the flows and the mixture: samples are the model's ``sample()`` (``G(z)``
clamped to ``[0, 1]``); held-out points are the dequantized images ``(k + u)/256`` with the fixed
per-index noise of :func:`flowgan.likelihood.log_likelihoods`; log-likelihoods are in nats of a
continuous density on ``[0,1]^D`` (``bpd = (nats + D ln 256)/(D ln 2)``).

The estimate is known to be poor in high dimensions (Theis et al. 2016) and, as Table 3 of the
paper shows, need not even rank models correctly: it measures how close held-out points are to
the model's samples, not the model's density.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from .gmm import DEFAULT_GRID, GaussianMixtureBaseline, SigmaSearch, search_sigma


@dataclass
class ParzenResult:
    bandwidth: float
    val_ll: float  # mean log-likelihood (nats) of the validation points at the chosen bandwidth
    test_ll: torch.Tensor  # per test point (nats), float64
    search: SigmaSearch
    n_samples: int
    dim: int
    extra: dict = field(default_factory=dict)

    @property
    def mean(self) -> float:
        return float(self.test_ll.mean())

    @property
    def sem(self) -> float:
        n = len(self.test_ll)
        return float(self.test_ll.std(correction=1) / math.sqrt(n)) if n > 1 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        from ..likelihood import nats_to_bpd

        return {
            "method": "kde",
            "bandwidth": self.bandwidth,
            "n_samples": self.n_samples,
            "n_val": self.extra.get("n_val"),
            "n_test": len(self.test_ll),
            "val_ll_nats": self.val_ll,
            "test_ll_nats": self.mean,
            "test_ll_sem": self.sem,
            "test_nll_nats": -self.mean,
            "test_nll_bpd": float(nats_to_bpd(-self.mean, self.dim)),
            "bandwidth_search": self.search.to_dict(),
            **{k: v for k, v in self.extra.items() if k != "n_val"},
        }


def parzen_log_likelihood(
    samples: torch.Tensor,
    x_val: torch.Tensor,
    x_test: torch.Tensor,
    *,
    bandwidths: Sequence[float] = DEFAULT_GRID,
    refine_rounds: int = 2,
    refine_points: int = 6,
    precision: str = "float32",
    progress: bool = False,
) -> ParzenResult:
    """Parzen-window log-likelihoods of continuous ``x_test`` under kernels at ``samples``.

    ``samples``, ``x_val``, ``x_test``: float tensors ``(N, C, H, W)`` in ``[0, 1]``. The
    bandwidth minimises the validation NLL (coarse grid ``bandwidths``, then refinement; see
    :func:`flowgan.analysis.gmm.search_sigma`).
    """
    if not samples.is_floating_point():
        raise ValueError("samples must be continuous (float) images")
    kde = GaussianMixtureBaseline(samples.detach().float(), 1.0, precision=precision)
    search = search_sigma(
        kde, x_val, bandwidths, refine_rounds=refine_rounds, refine_points=refine_points, progress=progress
    )
    kde.sigma = search.sigma
    test_ll = kde.log_prob_sigmas(x_test, [search.sigma], progress=progress)[:, 0]
    return ParzenResult(search.sigma, -search.nll, test_ll, search, len(samples), kde.dim, {"n_val": len(x_val)})


@torch.no_grad()
def draw_samples(model, n: int, *, seed: int = 0, batch_size: int = 500) -> torch.Tensor:
    """``n`` samples of ``model.sample`` (clamped to [0, 1]) on the CPU, float32, drawn in batches
    from a generator seeded with ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    out = []
    try:
        for start in range(0, n, batch_size):
            out.append(model.sample(min(batch_size, n - start), generator=gen).float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(out) if out else torch.empty(0)


def kde_estimate(
    model,
    val_images: torch.Tensor,
    test_images: torch.Tensor,
    *,
    n_samples: int = 10000,
    seed: int = 0,
    bandwidths: Sequence[float] = DEFAULT_GRID,
    refine_rounds: int = 2,
    refine_points: int = 6,
    progress: bool = False,
) -> ParzenResult:
    """KDE estimate for a model with ``sample(n, generator=)``: ``n_samples`` samples, bandwidth
    chosen on ``val_images``, log-likelihood of ``test_images`` (both uint8, dequantized with the
    flows' fixed noise)."""
    from ..likelihood import dequantized

    samples = draw_samples(model, n_samples, seed=seed)
    result = parzen_log_likelihood(
        samples,
        dequantized(val_images),
        dequantized(test_images),
        bandwidths=bandwidths,
        refine_rounds=refine_rounds,
        refine_points=refine_points,
        progress=progress,
    )
    result.extra["seed"] = seed
    return result
