r"""Factorised priors ``p(z) = Π_i p(z_i)`` over the latent; ``log_prob`` sums per sample.

* :class:`StandardLogistic` -- ``log p(z) = -softplus(z) - softplus(-z)`` per dimension, the prior
  NICE used on MNIST (Dinh et al. 2014, §3.4) and the Flow-GAN MNIST models (Appendix A);
* :class:`StandardNormal` -- ``log p(z) = -z²/2 - log(2π)/2``, Real-NVP's prior on CIFAR-10.

``sample(shape, temperature=T)`` draws from the prior with its scale multiplied by ``T`` (Glow's
"temperature": the standard deviation of the latent, in units of the prior's own): ``z = T·ε``
with ``ε`` a standard draw, so the random stream consumed does not depend on ``T`` and ``T = 1``
is the prior itself, bit for bit. ``T < 1`` trades diversity for typical-looking samples; ``T = 0``
gives the prior's mode ``z = 0`` (``decode(0)``: the generator's image of the origin).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .base import sum_except_batch


def check_temperature(temperature) -> float:
    """``temperature`` as a float; a ``ValueError`` (one line) unless it is finite and ``>= 0``."""
    try:
        t = float(temperature)
    except (TypeError, ValueError):
        t = math.nan
    if not (math.isfinite(t) and t >= 0.0):
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature!r}")
    return t


class Prior(nn.Module):
    """A factorised prior of scale 1; ``sample(..., temperature=T)`` draws ``T·ε``, ``ε`` from it."""

    name = "prior"

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def standard_sample(self, shape, *, device=None, dtype=None, generator=None) -> torch.Tensor:  # pragma: no cover
        """A draw of the prior itself (temperature 1)."""
        raise NotImplementedError

    def sample(self, shape, *, device=None, dtype=None, generator=None, temperature=1.0) -> torch.Tensor:
        """``T·ε`` for ``T = temperature`` (finite, ``>= 0``) and ``ε`` a draw of the prior: the same
        random numbers for every ``T``; ``T = 1`` returns the draw untouched, ``T = 0`` the mode 0."""
        t = check_temperature(temperature)
        eps = self.standard_sample(shape, device=device, dtype=dtype, generator=generator)
        return eps if t == 1.0 else eps * t


class StandardNormal(Prior):
    """``N(0, I)``. Temperature ``T`` is the standard deviation: ``z = T·ε ~ N(0, T²I)``."""

    name = "normal"

    def log_prob(self, z):
        return sum_except_batch(-0.5 * z * z) - 0.5 * math.log(2 * math.pi) * z[0].numel()

    def standard_sample(self, shape, *, device=None, dtype=None, generator=None):
        return torch.randn(shape, device=device, dtype=dtype, generator=generator)


class StandardLogistic(Prior):
    """Logistic(0, 1) per dimension. Temperature ``T`` is the logistic *scale*: ``z = T·logit(u)``,
    ``u ~ U(0, 1)``, so ``z ~ Logistic(0, T)``, whose standard deviation is ``T·π/√3`` (not ``T``)."""

    name = "logistic"

    def log_prob(self, z):
        return sum_except_batch(-F.softplus(z) - F.softplus(-z))

    def standard_sample(self, shape, *, device=None, dtype=None, generator=None):
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
