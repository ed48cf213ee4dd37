r"""Glow's layers (Kingma & Dhariwal 2018): the invertible 1×1 convolution and the affine coupling.

* :class:`InvertibleConv1x1` (Glow §3.2): ``y_{:,i,j} = W x_{:,i,j}`` at every pixel, a learned
  ``C × C`` matrix in place of a fixed channel permutation; ``log|det| = H·W·log|det W|``. In the
  LU parametrisation (the default, Glow Eq. 10) ``W = P L (U + diag(σ ⊙ exp(v)))`` with ``P`` a
  fixed permutation, ``L`` unit lower-triangular, ``U`` strictly upper-triangular, ``σ`` the fixed
  signs of the diagonal, so ``log|det W| = Σ v`` costs ``O(C)`` instead of ``O(C³)``. The plain
  parametrisation learns ``W`` itself (``slogdet``). Both start from a random rotation, drawn from
  ``torch``'s global generator (seed it to build the same model twice).
* :class:`GlowCoupling` (Glow §3.3, Table 1): ``(t, ŝ) = net(x_a)``,
  ``y_b = (x_b + t) ⊙ σ(ŝ + 2)``, ``log|det| = Σ log σ(ŝ + 2)``. The sigmoid bounds the scale in
  ``(0, 1)`` and its ``+2`` starts it near ``0.88``: with the zero-initialised last layer of
  :class:`~flowgan.nets.GlowNet`, every coupling starts as a near-identity whose scale cannot
  overflow (the NaN that unbounded ``exp(s)`` couplings produce early in training). The network's
  outputs are read alternately (channels ``0, 2, …`` shift, ``1, 3, …`` scale), as in Glow's code.
  The generating direction divides by that scale, unboundedly; flowgan's built-in Glow models
  therefore floor it, ``scale = f + (1 − f)·σ(ŝ + 2)`` with ``f = 0.05`` (``scale_floor``; 0 is
  Glow's coupling): a deviation from Glow that lets it train adversarially (issue 24).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import Flow, sum_except_batch
from .coupling import ChannelHalves


class InvertibleConv1x1(Flow):
    """A learned ``C × C`` channel mixing at every pixel; ``lu=True``: Glow's LU parametrisation."""

    def __init__(self, channels: int, lu: bool = True):
        super().__init__()
        self.channels, self.lu = channels, lu
        # the same rotation whatever the default dtype (a float64 build is the float32 one, rounded)
        draw = torch.randn(channels, channels, dtype=torch.float32).double()
        rotation = torch.linalg.qr(draw)[0].to(torch.get_default_dtype())
        if not lu:
            self.weight = nn.Parameter(rotation)
            return
        p, lower, upper = torch.linalg.lu(rotation)
        diagonal = torch.diagonal(upper)
        self.register_buffer("permutation", p)
        self.register_buffer("signs", torch.sign(diagonal))
        self.register_buffer("lower_mask", torch.tril(torch.ones(channels, channels), -1))
        self.lower = nn.Parameter(lower * self.lower_mask)
        self.upper = nn.Parameter(torch.triu(upper, 1))
        self.log_diagonal = nn.Parameter(torch.log(diagonal.abs()))

    def extra_repr(self) -> str:
        return f"channels={self.channels}, lu={self.lu}"

    def matrix(self) -> torch.Tensor:
        """``W``, and ``log|det W|``."""
        if not self.lu:
            return self.weight, torch.linalg.slogdet(self.weight)[1]
        eye = torch.eye(self.channels, dtype=self.lower.dtype, device=self.lower.device)
        lower = self.lower * self.lower_mask + eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.signs * torch.exp(self.log_diagonal))
        return self.permutation @ lower @ upper, self.log_diagonal.sum()

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"expected images (N, {self.channels}, H, W), got shape {tuple(x.shape)}")

    def forward(self, x):
        self._check(x)
        weight, logdet = self.matrix()
        y = F.conv2d(x, weight.view(self.channels, self.channels, 1, 1))
        return y, (logdet * x.shape[2] * x.shape[3]).expand(x.shape[0])

    def inverse(self, z):
        return self.inverse_and_logdet(z)[0]

    def inverse_and_logdet(self, z):
        self._check(z)
        weight, logdet = self.matrix()
        x = F.conv2d(z, torch.linalg.inv(weight).view(self.channels, self.channels, 1, 1))
        return x, -(logdet * z.shape[2] * z.shape[3]).expand(z.shape[0])


class GlowCoupling(Flow):
    r"""Glow's affine coupling over channel halves: ``y_b = (x_b + t) ⊙ σ(ŝ + 2)``.

    ``net`` maps the ``C_a`` conditioning channels to ``2·C_b`` (shift and raw scale,
    interleaved); ``parity`` as for :class:`~flowgan.flows.ChannelHalves`.

    ``scale_floor`` ``f`` (default 0: Glow's coupling) bounds the scale from below,
    ``scale = f + (1 − f)·σ(ŝ + 2)`` in ``[f, 1)``, so the generating direction
    ``x_b = y_b / scale − t`` multiplies by at most ``1/f``. Glow's own scale has no floor: on
    latents at temperature 1, a trained glow-small's first coupling reached ``σ = 4·10⁻⁴`` (a gain
    of 2,700) in the last good checkpoint of an adversarial run that diverged, and ``3·10⁻⁷`` after
    200 maximum-likelihood updates; the product of such gains overflows float32 -- the NaN of
    Glow trained adversarially (issue 24; docs/generators.md)."""

    def __init__(self, net: nn.Module, parity: int = 0, scale_floor: float = 0.0):
        super().__init__()
        if not 0.0 <= scale_floor < 1.0:
            raise ValueError(f"scale_floor must be in [0, 1), got {scale_floor}")
        self.partition = ChannelHalves(parity)
        self.net = net
        self.scale_floor = float(scale_floor)

    def extra_repr(self) -> str:
        return f"scale_floor={self.scale_floor}" if self.scale_floor else ""

    def _params(self, cond):
        h = self.net(cond)
        shift, raw = h[:, 0::2], h[:, 1::2]
        if not self.scale_floor:
            return shift, F.logsigmoid(raw + 2.0)
        f = self.scale_floor
        return shift, torch.log(f + (1.0 - f) * torch.sigmoid(raw + 2.0))

    def forward(self, x):
        cond, change = self.partition.split(x)
        shift, log_scale = self._params(cond)
        y = (change + shift) * torch.exp(log_scale)
        return self.partition.merge(cond, y), sum_except_batch(log_scale)

    def inverse(self, z):
        return self.inverse_and_logdet(z)[0]

    def inverse_and_logdet(self, z):
        cond, change = self.partition.split(z)
        shift, log_scale = self._params(cond)
        x = change * torch.exp(-log_scale) - shift
        return self.partition.merge(cond, x), -sum_except_batch(log_scale)


class GlowSplitPrior(Flow):
    r"""Glow's learned prior of the channels a level factors out, written as a flow.

    Glow models the factored half ``x_1`` (channels ``[:C//2]``) as
    ``N(μ(x_2), exp(log σ(x_2))²)`` given the kept half ``x_2`` (a zero-initialised 3×3
    convolution, :class:`~flowgan.nets.ZeroConv2d`, so it starts as the standard normal). The same
    density is this layer, ``z_1 = (x_1 − μ(x_2)) ⊙ exp(−log σ(x_2))`` with
    ``log|det| = −Σ log σ``, followed by the model's standard normal prior on ``z_1``: the
    likelihood is identical and every flowgan prior and analysis still sees one factorised
    latent. Put it just before :class:`~flowgan.flows.FactorOut`, which passes ``z_1`` out."""

    def __init__(self, channels: int):
        super().__init__()
        from ..nets import ZeroConv2d

        self.factored = channels // 2
        self.net = ZeroConv2d(channels - self.factored, 2 * self.factored)

    def _params(self, kept):
        h = self.net(kept)
        return h[:, 0::2], h[:, 1::2]

    def forward(self, x):
        k = self.factored
        mean, log_std = self._params(x[:, k:])
        z = (x[:, :k] - mean) * torch.exp(-log_std)
        return torch.cat([z, x[:, k:]], dim=1), -sum_except_batch(log_std)

    def inverse(self, z):
        return self.inverse_and_logdet(z)[0]

    def inverse_and_logdet(self, z):
        k = self.factored
        mean, log_std = self._params(z[:, k:])
        x = z[:, :k] * torch.exp(log_std) + mean
        return torch.cat([x, z[:, k:]], dim=1), sum_except_batch(log_std)
