r"""Factorised priors ``p(z) = Π_i p(z_i)`` over the latent; ``log_prob`` sums per sample.

* :class:`StandardLogistic` -- ``log p(z) = -softplus(z) - softplus(-z)`` per dimension, the prior
  NICE used on MNIST (Dinh et al. 2014, §3.4) and the Flow-GAN MNIST models (Appendix A);
* :class:`StandardNormal` -- ``log p(z) = -z²/2 - log(2π)/2``, Real-NVP's prior on CIFAR-10.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .base import sum_except_batch


class Prior(nn.Module):
    name = "prior"

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def sample(self, shape, *, device=None, dtype=None, generator=None) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


class StandardNormal(Prior):
    name = "normal"

    def log_prob(self, z):
        return sum_except_batch(-0.5 * z * z) - 0.5 * math.log(2 * math.pi) * z[0].numel()

    def sample(self, shape, *, device=None, dtype=None, generator=None):
        return torch.randn(shape, device=device, dtype=dtype, generator=generator)


class StandardLogistic(Prior):
    name = "logistic"

    def log_prob(self, z):
        return sum_except_batch(-F.softplus(z) - F.softplus(-z))

    def sample(self, shape, *, device=None, dtype=None, generator=None):
        dtype = dtype or torch.get_default_dtype()
        u = torch.rand(shape, device=device, dtype=dtype, generator=generator)
        info = torch.finfo(dtype)
        u = u.clamp(info.tiny, 1.0 - info.eps)
        return torch.log(u) - torch.log1p(-u)


PRIORS = {"normal": StandardNormal, "gaussian": StandardNormal, "logistic": StandardLogistic}


def build_prior(name: str) -> Prior:
    try:
        return PRIORS[name]()
    except KeyError:
        raise ValueError(f"unknown prior {name!r}; choose from {sorted(set(PRIORS))}") from None
