"""A generator and a critic of one's own, as a researcher would write them: no flowgan base class.

Imported by path in the tests (``--model tests/own_modules.py:logit_gaussian``)."""

import math

import torch
import torch.nn.functional as F
from torch import nn


class LogitGaussian(nn.Module):
    r"""Independent pixels: ``h = logit(a + (1-2a)x) ~ N(μ, σ²)`` per pixel, ``μ, log σ`` learned.

    ``log p(x) = Σ_i log N(h_i; μ_i, σ_i) + log(1-2a) + softplus(h_i) + softplus(-h_i)``; sampling
    is reparametrized (``h = μ + T·σ·ε``), so the adversarial loss backpropagates. It has no
    ``encode``, ``decode`` or ``prior``: the minimal generator of the protocol."""

    def __init__(self, shape, alpha=1e-7, init_std=1.0):
        super().__init__()
        self.shape = tuple(shape)
        self.alpha = alpha
        self.mean = nn.Parameter(torch.zeros(self.shape))
        self.log_std = nn.Parameter(torch.full(self.shape, math.log(init_std)))

    def log_prob(self, x):
        a = self.alpha
        y = a + (1 - 2 * a) * x
        h = torch.log(y) - torch.log1p(-y)
        z = (h - self.mean) / self.log_std.exp()
        log_normal = -0.5 * z**2 - self.log_std - 0.5 * math.log(2 * math.pi)
        log_det = math.log1p(-2 * a) + F.softplus(h) + F.softplus(-h)
        return (log_normal + log_det).flatten(1).sum(1)

    def sample(self, n, generator=None, temperature=1.0):
        eps = torch.randn((n, *self.shape), generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        h = self.mean + temperature * self.log_std.exp() * eps
        return ((torch.sigmoid(h) - self.alpha) / (1 - 2 * self.alpha)).clamp(0, 1)


def logit_gaussian(shape, **kwargs):
    return LogitGaussian(shape, **kwargs)


def mlp_critic(shape, hidden=32):
    """Scores of shape (N, 1), as many critics written for other GAN code return them."""
    d = math.prod(shape)
    return nn.Sequential(nn.Flatten(), nn.Linear(d, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 1))


class NoLogProb(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(shape)
        self.w = nn.Parameter(torch.zeros(1))

    def sample(self, n, generator=None, temperature=1.0):
        return torch.zeros(n, *self.shape)


def no_log_prob(shape):
    return NoLogProb(shape)


def raises(shape):
    raise RuntimeError("out of ideas")


def not_a_module(shape):
    return 42
