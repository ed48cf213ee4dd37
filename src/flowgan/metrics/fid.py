r"""Fréchet distance (FID, Heusel et al. 2017) and kernel distance (KID, Bińkowski et al. 2018)
between the features of real and generated images, computed by torchmetrics.

FID fits a Gaussian to each set of features ``f`` (mean ``μ``, covariance ``Σ`` with ``N - 1``
normalisation) and returns the squared Fréchet (2-Wasserstein) distance between them:

.. math::

    \mathrm{FID} = \|\mu_r - \mu_g\|^2 + \mathrm{Tr}\big(\Sigma_r + \Sigma_g - 2(\Sigma_r\Sigma_g)^{1/2}\big).

KID is the unbiased estimate of the squared maximum mean discrepancy with the cubic polynomial
kernel ``k(a, b) = (aᵀb / d + 1)³``, averaged over ``subsets`` random subsets of ``subset_size``
images of each set (mean and standard deviation over subsets, as torchmetrics reports them).
Unlike FID it is unbiased in the number of images, so values from different sample sizes compare.

"Inception" in the names refers to the feature network of the original definitions; offline,
flowgan uses its own classifier's penultimate layer (see :mod:`.classifiers`), so the numbers are
*not* comparable with published FIDs; with ``classifier="inception"`` they are torchmetrics'
Inception-v3 2048-d pool features. Both sets are rounded to float32 (the precision of the cached
reference features) and computed in float64. The subsets of KID come from a fixed seed and do not
touch the global random state.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from ..errors import FlowganError


class _Precomputed(nn.Module):
    """A "feature extractor" for torchmetrics that passes precomputed features through."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = int(num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _torchmetrics(name: str):
    try:
        if name == "fid":
            from torchmetrics.image.fid import FrechetInceptionDistance as cls
        else:
            from torchmetrics.image.kid import KernelInceptionDistance as cls
    except ImportError as e:
        raise FlowganError(f"FID/KID need torchmetrics (pip install 'flowgan[metrics]'): {e}") from None
    return cls


def _prepare(real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if real.dim() != 2 or fake.dim() != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"features must be (N, d) with the same d, got {tuple(real.shape)} and {tuple(fake.shape)}")
    if len(real) < 2 or len(fake) < 2:
        raise FlowganError("FID/KID need at least 2 real and 2 generated images")
    return real.float().double().cpu(), fake.float().double().cpu()


def fid_from_features(real: torch.Tensor, fake: torch.Tensor) -> dict:
    """``{"fid": ...}`` between real and generated features ``(N, d)`` (torchmetrics'
    ``FrechetInceptionDistance`` with the features passed through)."""
    real, fake = _prepare(real, fake)
    metric = _torchmetrics("fid")(feature=_Precomputed(real.shape[1]), normalize=False)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    return {"fid": float(metric.compute())}


def kid_from_features(
    real: torch.Tensor, fake: torch.Tensor, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> dict:
    """``{"kid", "kid_std", "kid_subset_size"}`` (torchmetrics' ``KernelInceptionDistance``); the
    subset size is capped at the smaller set's size; subsets are drawn with ``seed`` in a forked
    random state."""
    real, fake = _prepare(real, fake)
    size = int(min(subset_size, len(real), len(fake)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "will save all extracted features in buffer"
        metric = _torchmetrics("kid")(
            feature=_Precomputed(real.shape[1]), subsets=subsets, subset_size=size, normalize=False
        )
    metric.update(real, real=True)
    metric.update(fake, real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return {"kid": float(mean), "kid_std": float(std), "kid_subset_size": size}
