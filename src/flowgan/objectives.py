r"""Training objectives: small loss classes with one interface; the trainer never branches on them.

Each objective has

* ``critic_steps`` -- critic updates per generator update (0 for MLE, ``n_critic`` otherwise);
* ``generator_uses_data`` -- whether :meth:`generator_loss` needs a real batch;
* ``critic_loss(G, D, real, z, rand) -> (loss, logs)`` and
  ``generator_loss(G, D, real, z, rand) -> (loss, logs)``.

``G`` is the flow model (maybe wrapped for data parallelism), called as ``G(x=…, z=…) ->
(log_prob(x), G(z))``; ``D`` the critic; ``real`` dequantized images exactly as the likelihood sees
them, ``x = (k + u) / 256``; ``z`` prior samples; ``rand(n)`` draws ``n`` uniform numbers from the
run's own random stream (so that resumed training is exact). ``logs`` are detached scalars.

The objectives (§2, §4 of the paper):

* :class:`MaximumLikelihood` -- ``min_θ -E_data[log p_θ(x)]`` (Eq. 1).
* :class:`Adversarial` -- ``min_θ max_φ V(G_θ, D_φ)`` (Eq. 4) with one of :data:`LOSSES`; with
  ``lam > 0`` the hybrid objective of Eq. 7, ``min_θ max_φ V(G_θ, D_φ) - λ·E_data[log p_θ(x)]``:
  the generator loss is ``adversarial generator loss + λ·NLL``; ``λ = 0`` is ADV, large ``λ``
  approaches MLE.

Mapping of the original code's ``like_reg``: its generator gradient is
``∇(g_loss / like_reg + NLL) = (1/like_reg)·∇(g_loss + like_reg·NLL)``, i.e. ``λ = like_reg``
with the gradient scaled by ``1/like_reg``; Adam is invariant to that constant scale (up to its
``ε``), so ``like_reg = λ``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AdversarialLoss:
    """Critic loss ``E_data[real(D(x))] + E_G[fake(D(G(z)))]`` and generator loss ``E_G[gen(D(G(z)))]``."""

    real: Callable[[torch.Tensor], torch.Tensor]
    fake: Callable[[torch.Tensor], torch.Tensor]
    gen: Callable[[torch.Tensor], torch.Tensor]
    gradient_penalty: bool = False


#: The original code's losses on critic logits ``v`` (per sample; means are taken afterwards).
LOSSES: dict[str, AdversarialLoss] = {
    # Wasserstein GAN (Eq. 5) with the gradient penalty of Gulrajani et al. (2017)
    "wgan-gp": AdversarialLoss(real=lambda v: -v, fake=lambda v: v, gen=lambda v: -v, gradient_penalty=True),
    # Jensen-Shannon (Goodfellow et al. 2014), non-saturating generator loss
    "ce": AdversarialLoss(real=lambda v: F.softplus(-v), fake=F.softplus, gen=lambda v: F.softplus(-v)),
    # f-GANs (Nowozin et al. 2016), as in the original code
    "kl": AdversarialLoss(real=lambda v: -v, fake=lambda v: torch.exp(v - 1.0), gen=lambda v: -v),
    "rkl": AdversarialLoss(real=torch.exp, fake=lambda v: -v - 1.0, gen=lambda v: v + 1.0),
    "hellinger": AdversarialLoss(
        real=lambda v: torch.exp(-v), fake=lambda v: torch.exp(v) - 2.0, gen=lambda v: torch.exp(-v)
    ),
    "tv": AdversarialLoss(
        real=lambda v: -0.5 * torch.tanh(v), fake=lambda v: 0.5 * torch.tanh(v), gen=lambda v: -0.5 * torch.tanh(v)
    ),
    # least squares GAN (Mao et al. 2017)
    "lsgan": AdversarialLoss(
        real=lambda v: 0.5 * (v - 1.0) ** 2, fake=lambda v: 0.5 * v**2, gen=lambda v: 0.5 * (v - 1.0) ** 2
    ),
}


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    r"""``E[(‖∇_x̂ D(x̂)‖₂ - 1)²]`` at ``x̂ = real + α·(fake - real)`` (Gulrajani et al. 2017, Alg. 1).

    ``alpha`` has one value per sample; the norm is taken per sample over all channels and pixels
    (the original code took it over one axis only). Differentiable w.r.t. the critic's parameters.
    """
    alpha = alpha.view(-1, *([1] * (real.dim() - 1))).to(real.dtype)
    x_hat = (real + alpha * (fake - real)).detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    norms = grad.flatten(1).norm(dim=1)
    return ((norms - 1.0) ** 2).mean()


class Objective:
    critic_steps: int = 0
    generator_uses_data: bool = True
    double_backward: bool = False  # the critic loss differentiates a gradient (torch.compile cannot)

    @property
    def batches_per_update(self) -> int:
        """Training batches one generator update reads: one per critic step, one for a generator
        loss that uses data (at least 1, for a run's epoch count)."""
        return max(self.critic_steps + int(self.generator_uses_data), 1)

    def critic_loss(self, G, D, real, z, rand):  # pragma: no cover - MLE has no critic
        raise NotImplementedError

    def generator_loss(self, G, D, real, z, rand):  # pragma: no cover
        raise NotImplementedError


class MaximumLikelihood(Objective):
    """``-E[log p(x)]`` on a dequantized batch (Eq. 1); no critic."""

    critic_steps = 0
    generator_uses_data = True

    def generator_loss(self, G, D, real, z, rand):
        log_prob, _ = G(x=real)
        nll = -log_prob.mean()
        return nll, {"train_nll": nll.detach()}


class Adversarial(Objective):
    """Adversarial (``lam = 0``) or hybrid (``lam > 0``, Eq. 7) training with a critic."""

    def __init__(self, loss: str = "wgan-gp", lam: float = 0.0, n_critic: int = 5, gp_weight: float = 10.0):
        if loss not in LOSSES:
            raise ValueError(f"unknown adversarial loss {loss!r}; choose from {', '.join(LOSSES)}")
        self.name, self.loss, self.lam, self.gp_weight = loss, LOSSES[loss], float(lam), float(gp_weight)
        self.critic_steps = int(n_critic)
        self.generator_uses_data = self.lam > 0
        self.double_backward = self.loss.gradient_penalty and self.gp_weight > 0

    def critic_loss(self, G, D, real, z, rand):
        with torch.no_grad():
            fake = _generator_module(G).decode(z)
        v_real, v_fake = D(real), D(fake)
        loss_real, loss_fake = self.loss.real(v_real).mean(), self.loss.fake(v_fake).mean()
        loss = loss_real + loss_fake
        logs = {
            "critic_loss": loss.detach(),
            "critic_real": v_real.detach().mean(),
            "critic_fake": v_fake.detach().mean(),
        }
        if self.loss.gradient_penalty:
            logs["wasserstein"] = v_real.detach().mean() - v_fake.detach().mean()
        if self.loss.gradient_penalty and self.gp_weight > 0:
            gp = gradient_penalty(D, real, fake, rand(real.shape[0]).to(real.device))
            loss = loss + self.gp_weight * gp
            logs.update(gradient_penalty=gp.detach(), critic_loss=loss.detach())
        return loss, logs

    def generator_loss(self, G, D, real, z, rand):
        log_prob, fake = G(x=real if self.lam > 0 else None, z=z)
        adv = self.loss.gen(D(fake)).mean()
        logs = {"generator_loss": adv.detach()}
        if self.lam > 0:
            nll = -log_prob.mean()
            logs["train_nll"] = nll.detach()
            return adv + self.lam * nll, logs
        return adv, logs


def _generator_module(G):
    """The flow model inside a (possibly compiled and/or DDP-wrapped) generator."""
    while True:
        inner = getattr(G, "_orig_mod", None) or getattr(G, "module", None)
        if inner is None:
            return G
        G = inner


def build_objective(objective: str, lam: float = 0.0, n_critic: int = 5, gp_weight: float = 10.0) -> Objective:
    if objective == "mle":
        return MaximumLikelihood()
    return Adversarial(objective, lam=lam, n_critic=n_critic, gp_weight=gp_weight)
