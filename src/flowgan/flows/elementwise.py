"""Element-wise flows: the logit pre-processing step and NICE's diagonal scaling."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .base import Flow, sum_except_batch


class Logit(Flow):
    r"""Map images in ``[0, 1]`` to the real line: ``y = a + (1 - 2a)·x``, ``h = logit(y)``.

    The squeeze by ``a`` keeps ``logit`` finite at the pixel bounds (the original code and the
    paper's configurations use ``a = 1e-7``; Real-NVP used ``a = 0.05``). The log-determinant is

    .. math:: \log\left|\frac{\partial h}{\partial x}\right| = \sum_i \log(1-2a) - \log y_i - \log(1-y_i)
              = \sum_i \log(1-2a) + \operatorname{softplus}(h_i) + \operatorname{softplus}(-h_i),

    the second form being the numerically stable one used here. ``inverse`` is
    ``x = (σ(h) - a) / (1 - 2a)``; it lies in ``[-a/(1-2a), (1-a)/(1-2a)]``.
    """

    def __init__(self, alpha: float = 1e-7):
        super().__init__()
        if not 0.0 <= alpha < 0.5:
            raise ValueError(f"logit alpha must lie in [0, 0.5), got {alpha}")
        self.alpha = float(alpha)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = self.alpha
        y = a + (1.0 - 2.0 * a) * x
        h = torch.log(y) - torch.log1p(-y)
        n_dims = x[0].numel()
        logdet = sum_except_batch(F.softplus(h) + F.softplus(-h)) + n_dims * math.log1p(-2.0 * a)
        return h, logdet

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        a = self.alpha
        return (torch.sigmoid(z) - a) / (1.0 - 2.0 * a)

    def inverse_and_logdet(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # log|dx/dh| = log σ(h) + log(1 - σ(h)) - log(1 - 2a), finite for every h
        n_dims = z[0].numel()
        logdet = -sum_except_batch(F.softplus(z) + F.softplus(-z)) - n_dims * math.log1p(-2.0 * self.alpha)
        return self.inverse(z), logdet

    def extra_repr(self) -> str:
        return f"alpha={self.alpha:g}"


class DiagonalScaling(Flow):
    r"""NICE's top layer (Dinh et al. 2014, §3.3): ``z = x ⊙ exp(s)`` with a learned ``s``.

    ``s`` has the shape of one sample (``event_shape``); ``log|det| = Σ_i s_i`` for every sample.
    """

    def __init__(self, event_shape: tuple[int, ...]):
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(event_shape))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = x * torch.exp(self.log_scale)
        return z, self.log_scale.sum().expand(x.shape[0])

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        return z * torch.exp(-self.log_scale)

    def inverse_and_logdet(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inverse(z), -self.log_scale.sum().expand(z.shape[0])
