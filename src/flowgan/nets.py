"""The networks inside coupling layers: NICE's MLP and Real-NVP's residual CNN.

Both end in a zero-initialised layer, so every coupling starts as the identity and a freshly
built flow is the logit step followed by (almost) nothing: training starts from a well-posed
density, which matters for adversarial training, whose generator gets no likelihood signal.

Both normalise inside by default, as the Flow-GAN code did (ermongroup/flow-gan,
``real_nvp/nn.py``): NICE's MLP with :class:`ScalarBatchNorm` before every linear layer, the
ResNet with per-channel batch normalisation. In training mode the statistics of the batch are
used; in evaluation mode the running averages, so that each coupling network is a fixed function
of its input and the flow an exact, sample-independent bijection. Every likelihood, sample score
and analysis in flowgan runs the model in evaluation mode.
"""

from __future__ import annotations

import torch
from torch import nn


class ScalarBatchNorm(nn.Module):
    r"""Batch normalisation with *one* mean and variance over the batch and all features.

    ``y = (h - μ) / sqrt(σ² + ε) · g + b`` for an activation matrix ``h`` of shape ``(N, F)``,
    where ``μ`` and ``σ²`` are the mean and the (biased) variance of all ``N·F`` entries and the
    gain ``g`` (1) and shift ``b`` (0) are learned scalars. This is what the NICE coupling networks
    of the Flow-GAN code apply before each of their linear layers (``batch_norm`` with
    ``axes=[0, 1]``, ``decay=0.1``, ``epsilon=1e-6``): batch statistics while training, running
    averages, moved ``momentum`` of the way to each batch's, at evaluation.

    Why it matters (docs/design.md): without it, the additive shifts of NICE's couplings cascade
    (shifts of hundreds in logit space), the generator's sigmoid saturates most pixels, saturated
    pixels get no gradient, and adversarial training collapses onto one template.

    ``sync = True`` (set by :func:`set_sync_batchnorm`) takes the training statistics over the
    global batch of all data-parallel processes with a differentiable all-reduce; by default each
    process normalises with the statistics of its own shard.
    """

    def __init__(self, momentum: float = 0.1, eps: float = 1e-6):
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.sync = False
        self.gain = nn.Parameter(torch.ones(()))
        self.shift = nn.Parameter(torch.zeros(()))
        self.register_buffer("running_mean", torch.zeros(()))
        self.register_buffer("running_var", torch.ones(()))

    def extra_repr(self) -> str:
        return f"momentum={self.momentum}, eps={self.eps}, sync={self.sync}"

    def _batch_stats(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if h.dtype in (torch.bfloat16, torch.float16):  # under autocast: statistics in float32 (exact, and
            h = h.float()  # 6x faster than a bf16 var on a CPU)
        if self.sync:  # the global batch's (flowgan.distributed.global_moments)
            from .distributed import global_moments

            return global_moments(h)
        return h.mean(), h.var(unbiased=False)

    def affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The evaluation-mode map as ``h·a + c``: scalars ``a = g/sqrt(σ²_run + ε)``,
        ``c = b - μ_run·a`` (folded into linear layers and Jacobians)."""
        a = self.gain * torch.rsqrt(self.running_var + self.eps)
        return a, self.shift - self.running_mean * a

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.training:
            mean, var = self._batch_stats(h)
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), self.momentum)
                self.running_var.lerp_(var.detach().to(self.running_var.dtype), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        return (h - mean) * torch.rsqrt(var + self.eps) * self.gain + self.shift


def set_sync_batchnorm(module: nn.Module, enabled: bool = True) -> int:
    """Make every :class:`ScalarBatchNorm` in ``module`` take global-batch statistics under
    data parallelism (or not); returns how many layers it set."""
    layers = [m for m in module.modules() if isinstance(m, ScalarBatchNorm)]
    for m in layers:
        m.sync = enabled
    return len(layers)


#: normalisation inside NICE's coupling MLP: "batch" (the original's, default) or "none"
MLP_NORMS = ("batch", "none")


class MLP(nn.Sequential):
    """``in → hidden``, ``depth × (hidden → hidden)``, ``→ out``; ReLU between (NICE, §5.1).

    ``norm="batch"`` puts a :class:`ScalarBatchNorm` before every linear layer, the output layer
    included (the Flow-GAN code's NICE); ``norm="none"`` is the plain MLP of checkpoints written
    before this normalisation existed (spec version 1), whose parameter names it keeps.
    """

    def __init__(self, in_features: int, out_features: int, hidden: int, depth: int, norm: str = "none"):
        if norm not in MLP_NORMS:
            raise ValueError(f"unknown coupling-network normalization {norm!r}; choose 'batch' or 'none'")

        def pre() -> list[nn.Module]:
            return [ScalarBatchNorm()] if norm == "batch" else []

        layers: list[nn.Module] = [*pre(), nn.Linear(in_features, hidden), nn.ReLU(inplace=True)]
        for _ in range(depth):
            layers += [*pre(), nn.Linear(hidden, hidden), nn.ReLU(inplace=True)]
        last = nn.Linear(hidden, out_features)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        layers += [*pre(), last]
        super().__init__(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """In training, or with gradients enabled, the layers one after another. In evaluation
        without gradients (likelihoods, samples, analyses), each :class:`ScalarBatchNorm` is an
        affine map ``h·a + c`` with scalars ``a = g/sqrt(σ²_run + ε)``, ``c = b - μ_run·a``, folded
        into the linear layer after it: ``W(h·a + c) + w0 = a·(W h) + (w0 + c·W1)``, one ``addmm``
        instead of four passes over the activations (the same function up to rounding)."""
        if self.training or torch.is_grad_enabled():
            return super().forward(x)
        layers, i = list(self), 0
        while i < len(layers):
            layer = layers[i]
            following = layers[i + 1] if i + 1 < len(layers) else None
            if isinstance(layer, ScalarBatchNorm) and isinstance(following, nn.Linear):
                a, c = layer.affine()
                weight = following.weight
                bias = c * weight.sum(dim=1)
                if following.bias is not None:
                    bias = bias + following.bias
                x = torch.addmm(bias.to(x.dtype), x, weight.t().to(x.dtype), alpha=float(a))
                i += 2
            else:
                x = layer(x)
                i += 1
        return x


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown normalization {kind!r}; choose 'batch' or 'none'")


class ResidualBlock(nn.Module):
    """Pre-activation block ``x + conv(relu(norm(conv(relu(norm(x))))))`` with 3×3 convolutions."""

    def __init__(self, channels: int, norm: str):
        super().__init__()
        self.body = nn.Sequential(
            _norm(norm, channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1, bias=norm == "none"),
            _norm(norm, channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x):
        return x + self.body(x)


class ResNet(nn.Module):
    """Real-NVP's ``s``/``t`` network (Dinh et al. 2017, §4.1): a 3×3 convolution to ``channels``,
    ``blocks`` residual blocks, normalization and ReLU, and a zero-initialised 3×3 convolution."""

    def __init__(self, in_channels: int, out_channels: int, channels: int, blocks: int, norm: str = "batch"):
        super().__init__()
        self.inp = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.blocks = nn.Sequential(*[ResidualBlock(channels, norm) for _ in range(blocks)])
        self.out_norm = _norm(norm, channels)
        self.out = nn.Conv2d(channels, out_channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x):
        h = self.blocks(self.inp(x))
        return self.out(nn.functional.relu(self.out_norm(h)))


class ZeroConv2d(nn.Module):
    """Glow's last layer of a coupling network: a 3×3 convolution with zero weights and bias,
    its output scaled per channel by ``exp(3·s)`` with a zero-initialised ``s`` (Glow's
    ``Conv2dZeros``), so a fresh coupling is the identity and the scale learns quickly."""

    def __init__(self, in_channels: int, out_channels: int, logscale_factor: float = 3.0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)
        self.logscale_factor = logscale_factor
        self.logs = nn.Parameter(torch.zeros(out_channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * torch.exp(self.logs * self.logscale_factor)


class GlowNet(nn.Sequential):
    """Glow's coupling network (Glow §3.3): 3×3 convolution to ``hidden`` channels, ReLU, 1×1
    convolution, ReLU, :class:`ZeroConv2d` to ``out_channels``. Glow normalises the two hidden
    convolutions with actnorm; this network has plain biases instead (no data-dependent state
    inside a coupling network)."""

    def __init__(self, in_channels: int, out_channels: int, hidden: int):
        super().__init__(
            nn.Conv2d(in_channels, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, 1),
            nn.ReLU(),
            ZeroConv2d(hidden, out_channels),
        )
