r"""Coupling layers (NICE additive, Real-NVP affine) and the partitions they split inputs with.

A coupling layer splits its input into a conditioning part ``x_a`` and a changed part ``x_b``,
keeps ``x_a`` and updates ``x_b`` with a function of ``x_a`` only, so that its Jacobian is
triangular:

* additive (NICE, Dinh et al. 2014, Eq. 2): ``y_b = x_b + t(x_a)``; ``log|det| = 0``;
* affine (Real-NVP, Dinh et al. 2017, Eq. 6): ``y_b = x_b ⊙ exp(s(x_a)) + t(x_a)``;
  ``log|det| = Σ s(x_a)``. The scale is bounded, ``s = γ ⊙ tanh(ŝ)`` with a learned per-channel
  ``γ``, which keeps early adversarial updates from blowing up ``exp(s)``.

Partitions say how ``x`` is split and put back together:

* :class:`AlternatingHalves` -- vectors; even or odd indices condition (NICE on MNIST);
* :class:`ChannelHalves` -- images; the first or second half of the channels condition;
* :class:`Checkerboard` -- images; pixels with ``(i + j) % 2 == parity`` condition. It is applied
  with a mask (Real-NVP, §3.4): the network sees ``x ⊙ m`` and its outputs are multiplied by
  ``1 - m``, so only the other pixels change.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import Flow, sum_except_batch


class Partition(nn.Module):
    """How a coupling splits ``x`` into ``(x_cond, x_change)`` and merges them back; ``parity``
    (0 or 1) says which of the two halves conditions."""

    def __init__(self, parity: int):
        super().__init__()
        if parity not in (0, 1):
            raise ValueError("parity must be 0 or 1")
        self.parity = parity

    def extra_repr(self):
        return f"parity={self.parity}"

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover
        raise NotImplementedError

    def merge(self, x_cond: torch.Tensor, x_change: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def restrict(self, params: torch.Tensor) -> torch.Tensor:
        """Zero the coupling parameters that would act on conditioning entries (masks only)."""
        return params


class AlternatingHalves(Partition):
    """Vectors ``(N, D)``: indices ``parity, parity+2, …`` condition, the others change."""

    @staticmethod
    def sizes(n_features: int, parity: int) -> tuple[int, int]:
        """``(n_cond, n_change)`` for a vector of ``n_features``."""
        n_cond = len(range(parity, n_features, 2))
        return n_cond, n_features - n_cond

    def split(self, x):
        return x[:, self.parity :: 2], x[:, 1 - self.parity :: 2]

    def merge(self, x_cond, x_change):
        n = x_cond.shape[1] + x_change.shape[1]
        if x_cond.shape[1] == x_change.shape[1]:  # even D: interleave with one stack (no scatter)
            pair = (x_cond, x_change) if self.parity == 0 else (x_change, x_cond)
            return torch.stack(pair, dim=2).reshape(x_cond.shape[0], n)
        out = x_cond.new_empty(x_cond.shape[0], n)
        out[:, self.parity :: 2] = x_cond
        out[:, 1 - self.parity :: 2] = x_change
        return out


class ChannelHalves(Partition):
    """Images ``(N, C, H, W)``: channels ``[:C//2]`` (parity 0) or ``[C//2:]`` (parity 1) condition."""

    @staticmethod
    def sizes(n_channels: int, parity: int) -> tuple[int, int]:
        first = n_channels // 2
        return (first, n_channels - first) if parity == 0 else (n_channels - first, first)

    def split(self, x):
        first = x.shape[1] // 2
        a, b = x[:, :first], x[:, first:]
        return (a, b) if self.parity == 0 else (b, a)

    def merge(self, x_cond, x_change):
        pair = (x_cond, x_change) if self.parity == 0 else (x_change, x_cond)
        return torch.cat(pair, dim=1)


class Checkerboard(Partition):
    """Images ``(N, C, H, W)``: the pixels with ``(i + j) % 2 == parity`` condition (all channels)."""

    def mask(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ii = torch.arange(h, device=x.device).view(h, 1)
        jj = torch.arange(w, device=x.device).view(1, w)
        return ((ii + jj) % 2 == self.parity).to(x.dtype)

    def split(self, x):
        return x * self.mask(x), x

    def merge(self, x_cond, x_change):
        # x_change already holds the conditioning pixels unchanged (restricted parameters are 0).
        return x_change

    def restrict(self, params):
        return params * (1.0 - self.mask(params))


class AdditiveCoupling(Flow):
    """NICE coupling ``y_b = x_b + t(x_a)``; volume preserving (``log|det| = 0``)."""

    volume_preserving = True

    def __init__(self, partition: Partition, net: nn.Module):
        super().__init__()
        self.partition = partition
        self.net = net

    def forward(self, x):
        cond, change = self.partition.split(x)
        shift = self.partition.restrict(self.net(cond))
        return self.partition.merge(cond, change + shift), x.new_zeros(x.shape[0])

    def inverse(self, z):
        cond, change = self.partition.split(z)
        shift = self.partition.restrict(self.net(cond))
        return self.partition.merge(cond, change - shift)

    def inverse_and_logdet(self, z):
        return self.inverse(z), z.new_zeros(z.shape[0])


class AffineCoupling(Flow):
    """Real-NVP coupling ``y_b = x_b ⊙ exp(s) + t`` with ``(ŝ, t) = net(x_a)``, ``s = γ ⊙ tanh(ŝ)``.

    ``net`` returns ``2·k`` features (vectors) or channels (images) for ``k`` changed ones; the first
    ``k`` are ``ŝ``, the rest ``t``. ``scale_shape`` is the shape of ``γ`` (e.g. ``(C, 1, 1)``).
    """

    def __init__(self, partition: Partition, net: nn.Module, scale_shape: tuple[int, ...]):
        super().__init__()
        self.partition = partition
        self.net = net
        self.scale = nn.Parameter(torch.ones(scale_shape))

    def _params(self, cond):
        raw_s, shift = self.net(cond).chunk(2, dim=1)
        log_scale = self.scale * torch.tanh(raw_s)
        return self.partition.restrict(log_scale), self.partition.restrict(shift)

    def forward(self, x):
        cond, change = self.partition.split(x)
        log_scale, shift = self._params(cond)
        y = change * torch.exp(log_scale) + shift
        return self.partition.merge(cond, y), sum_except_batch(log_scale)

    def inverse(self, z):
        return self.inverse_and_logdet(z)[0]

    def inverse_and_logdet(self, z):
        cond, change = self.partition.split(z)
        log_scale, shift = self._params(cond)
        x = (change - shift) * torch.exp(-log_scale)
        return self.partition.merge(cond, x), -sum_except_batch(log_scale)
