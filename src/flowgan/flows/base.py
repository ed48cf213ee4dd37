"""The flow contract shared by every layer and every model.

A flow is an invertible map ``f`` from data space to latent space. Every layer implements

* ``forward(x) -> (z, logdet)`` with ``z = f(x)`` and ``logdet = log|det ∂f(x)/∂x|``, one value
  per sample (shape ``(N,)``);
* ``inverse(z) -> x`` with ``x = f⁻¹(z)``.

Models are compositions ``f = f_K ∘ … ∘ f_1``; the log-determinants add up (chain rule):
``log|det ∂f/∂x| = Σ_k log|det ∂f_k/∂h_{k-1}|``. The generator of a Flow-GAN is the inverse,
``G = f⁻¹`` (Grover et al. 2018, §3, Eq. 6), so sampling is ``x = G(z)`` with ``z`` drawn from the
prior and the exact density is ``log p(x) = log p_Z(f(x)) + log|det ∂f(x)/∂x|``.
"""

from __future__ import annotations

import torch
from torch import nn


def sum_except_batch(x: torch.Tensor) -> torch.Tensor:
    """Sum every dimension but the first: ``(N, ...) -> (N,)``."""
    return x.reshape(x.shape[0], -1).sum(dim=1)


class Flow(nn.Module):
    """Base class of an invertible layer. Subclasses implement ``forward`` and ``inverse``."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover
        raise NotImplementedError

    def inverse(self, z: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def inverse_and_logdet(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x = f⁻¹(z)`` and ``log|det ∂f⁻¹(z)/∂z| = -log|det ∂f/∂x|`` at that ``x``.

        The default evaluates ``forward`` at the pre-image. Layers override it where that loses
        precision or costs a second pass (the logit step computes it from ``z`` directly, so it
        stays finite where ``σ(z)`` rounds to 0 or 1; couplings reuse their inverse pass).
        """
        x = self.inverse(z)
        return x, -self.forward(x)[1]


class FlowSequence(Flow):
    """Composition ``f = f_K ∘ … ∘ f_1`` of flows; ``inverse`` runs the layers backwards."""

    def __init__(self, *flows: Flow):
        super().__init__()
        self.flows = nn.ModuleList(flows)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logdet = x.new_zeros(x.shape[0])
        for flow in self.flows:
            x, ld = flow(x)
            logdet = logdet + ld
        return x, logdet

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        for flow in reversed(self.flows):
            z = flow.inverse(z)
        return z

    def inverse_and_logdet(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logdet = z.new_zeros(z.shape[0])
        for flow in reversed(self.flows):
            z, ld = flow.inverse_and_logdet(z)
            logdet = logdet + ld
        return z, logdet

    def __len__(self) -> int:
        return len(self.flows)

    def __getitem__(self, i: int) -> Flow:
        return self.flows[i]


class InverseFlow(Flow):
    """The inverse ``g = f⁻¹`` of a flow whose inverse log-determinant is data-independent.

    Used for volume-preserving permutations such as :class:`~flowgan.flows.Squeeze`, whose
    log-determinant is zero in both directions, so ``forward`` of the wrapper can report
    ``logdet = 0`` without evaluating a Jacobian.
    """

    def __init__(self, flow: Flow):
        super().__init__()
        if not getattr(flow, "volume_preserving", False):
            raise ValueError(f"InverseFlow needs a volume-preserving flow, got {type(flow).__name__}")
        self.flow = flow
        self.volume_preserving = True

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.flow.inverse(x), x.new_zeros(x.shape[0])

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        return self.flow(z)[0]

    def inverse_and_logdet(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.flow(z)[0], z.new_zeros(z.shape[0])
