r"""Annealed importance sampling (Neal 2001) for decoder models, as in Wu et al. (2017).

A decoder-based model -- a GAN generator, or a Flow-GAN's ``G`` -- is given the Gaussian
observation model of Wu et al. (2017), which the paper (§5, Table 3) evaluates against the exact
likelihood:

.. math:: p_σ(x) = \int p(z)\, \mathcal N(x;\, G(z),\, σ^2 I_D)\, dz .

**Path.** Geometric averages between the prior and the (unnormalised) posterior,
``f_t(z) = p(z)·p(x|z)^{β_t}``, ``0 = β_0 < … < β_T = 1``, with the sigmoid schedule of Wu et al.
(``β_t ∝ s(δ(2t/T − 1))`` rescaled to [0, 1], ``δ = 4``), which spends more distributions near
both ends.

**Weights.** Chains start from exact prior samples; at step ``t`` the log-weight gains
``(β_t − β_{t−1}) log p(x|z_{t−1})`` and ``z`` moves by one HMC transition that leaves ``f_t``
invariant (``n_leapfrog`` leapfrog steps, Metropolis correction). With ``C`` chains per data point,
``log p̂(x) = logmeanexp_c log w_c``. ``p̂`` is unbiased, so ``E[log p̂(x)] ≤ log p_σ(x)``
(Jensen): **the estimate is a stochastic lower bound** whose gap shrinks with more intermediate
distributions and chains.

**Step size.** A moving average ``ā`` (weight 0.9) of the acceptance rate steers the leapfrog
step size toward the target rate 0.65 (within [1e-4, 0.5]). Wu et al.'s code multiplies the step
size by 1.02 when ``ā`` is above the target and by 0.98 below (``adapt_rate=None`` here), which
needs hundreds of steps to move from the initial 0.01 to a useful size; the default here is the
proportional rule ``log ε ← log ε + rate·(ā − 0.65)`` with ``rate = 1``, which gets there within a
few steps and then moves by a few percent -- what short chains on a CPU need. The step size and
``ā`` are kept **per data point** (shared by its chains), not one for the whole batch, since
posteriors of different images differ in scale. Adapting on the chains' own history is the
standard practice of Wu et al.; it makes the transitions depend on the past, a small departure
from textbook AIS.

**Defaults vs. Wu et al.** Their MNIST evaluation used 16 chains, 10,000 intermediate
distributions, 10 leapfrog steps and the variance ``σ² = 0.025`` (GAN-10), chosen on validation
data. Our default ``σ = √0.025 ≈ 0.158`` follows them; the numbers of steps and chains are the
caller's choice (the CLI defaults are far smaller so that a CPU finishes in minutes).

Validation: for a linear-Gaussian decoder ``x = Wz + b``, ``z ~ N(0, I)``, the marginal is
``N(b, WWᵀ + σ²I)`` in closed form (:func:`linear_gaussian_log_marginal`; ``tests/test_ais.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch

#: Wu et al. (2017): observation variance 0.025 for GANs on MNIST, i.e. σ ≈ 0.158.
DEFAULT_SIGMA = math.sqrt(0.025)
_LOG_2PI = math.log(2.0 * math.pi)


def sigmoid_schedule(n_steps: int, delta: float = 4.0) -> torch.Tensor:
    """``β_0 … β_T`` (float64, ``T = n_steps``): ``s(δ(2t/T − 1))`` rescaled to run from 0 to 1."""
    if n_steps < 1:
        raise ValueError("n_steps must be >= 1")
    if n_steps == 1:
        return torch.tensor([0.0, 1.0], dtype=torch.float64)
    s = torch.sigmoid(delta * torch.linspace(-1.0, 1.0, n_steps + 1, dtype=torch.float64))
    beta = (s - s[0]) / (s[-1] - s[0])
    beta[0], beta[-1] = 0.0, 1.0
    return beta


def linear_schedule(n_steps: int) -> torch.Tensor:
    if n_steps < 1:
        raise ValueError("n_steps must be >= 1")
    return torch.linspace(0.0, 1.0, n_steps + 1, dtype=torch.float64)


SCHEDULES = {"sigmoid": sigmoid_schedule, "linear": linear_schedule}


def gaussian_log_likelihood(x_hat: torch.Tensor, x: torch.Tensor, sigma: float) -> torch.Tensor:
    """``log N(x; x̂, σ²I)`` per sample (flattening all but the first dimension)."""
    diff = (x - x_hat).reshape(x.shape[0], -1)
    d = diff.shape[1]
    return -0.5 * diff.square().sum(1) / (sigma * sigma) - 0.5 * d * (_LOG_2PI + 2.0 * math.log(sigma))


def linear_gaussian_log_marginal(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, sigma: float
) -> torch.Tensor:
    """Closed form ``log N(x; b, WWᵀ + σ²I)`` of the decoder ``x = Wz + b + σε``, ``z ~ N(0, I)``
    (float64, one value per row of ``x``)."""
    w, b = weight.double(), bias.double()
    cov = w @ w.T + sigma**2 * torch.eye(w.shape[0], dtype=torch.float64)
    dist = torch.distributions.MultivariateNormal(b, covariance_matrix=cov)
    return dist.log_prob(x.double().reshape(x.shape[0], -1))


@dataclass
class AISResult:
    log_likelihood: torch.Tensor  # (N,) float64: log-mean-exp of the chains' log-weights
    log_weights: torch.Tensor  # (N, C) float64
    acceptance: float  # mean Metropolis acceptance over steps, chains and points
    step_size: torch.Tensor  # (N,) final step sizes
    sigma: float
    n_steps: int
    n_chains: int
    n_leapfrog: int
    schedule: str
    seconds: float = float("nan")

    @property
    def mean(self) -> float:
        return float(self.log_likelihood.mean())

    @property
    def sem(self) -> float:
        n = len(self.log_likelihood)
        return float(self.log_likelihood.std(correction=1) / math.sqrt(n)) if n > 1 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "ais",
            "observation_sigma": self.sigma,
            "n_points": len(self.log_likelihood),
            "n_steps": self.n_steps,
            "n_chains": self.n_chains,
            "n_leapfrog": self.n_leapfrog,
            "schedule": self.schedule,
            "ll_nats": self.mean,
            "ll_sem": self.sem,
            "nll_nats": -self.mean,
            "acceptance": self.acceptance,
            "step_size_median": float(self.step_size.median()),
            "seconds": self.seconds,
            "lower_bound": "stochastic lower bound on log p_sigma(x) in expectation (Jensen)",
        }


def _evaluate(decoder, prior, z: torch.Tensor, x_rep: torch.Tensor, sigma: float):
    """``(log p(x|z), log p(z), ∇_z log p(x|z), ∇_z log p(z))`` for a batch of chains."""
    z = z.detach().requires_grad_(True)
    with torch.enable_grad():
        ll = gaussian_log_likelihood(decoder(z), x_rep, sigma)
        g_ll = torch.autograd.grad(ll.sum(), z)[0]
        lp = prior.log_prob(z)
        g_lp = torch.autograd.grad(lp.sum(), z)[0]
    return ll.detach(), lp.detach(), g_ll, g_lp


def _ais_batch(
    decoder,
    prior,
    x,
    latent_shape,
    *,
    sigma,
    betas,
    n_chains,
    n_leapfrog,
    step_size,
    target_accept,
    adapt_rate,
    generator,
    bar,
):
    b = x.shape[0]
    n = n_chains * b  # chain c of point i sits at row c*b + i
    dtype, device = x.dtype, x.device
    x_rep = x.repeat(n_chains, *([1] * (x.ndim - 1)))
    view = (n,) + (1,) * len(latent_shape)

    def randn(shape):
        return torch.randn(shape, generator=generator, dtype=dtype).to(device)

    z = prior.sample((n, *latent_shape), generator=generator, dtype=dtype).to(device)
    ll, lp, g_ll, g_lp = _evaluate(decoder, prior, z, x_rep, sigma)
    logw = torch.zeros(n, dtype=torch.float64, device=device)
    eps = torch.full((b,), float(step_size), dtype=dtype, device=device)
    avg_accept = torch.full((b,), float(target_accept), dtype=dtype, device=device)
    accepted_total = 0.0
    for t in range(1, len(betas)):
        beta_prev, beta = float(betas[t - 1]), float(betas[t])
        logw += (beta - beta_prev) * ll.double()
        # HMC transition leaving p(z) p(x|z)^beta invariant.
        e = eps.repeat(n_chains).reshape(view)
        p0 = randn(z.shape)
        u0 = -(lp + beta * ll)
        h0 = u0 + 0.5 * p0.reshape(n, -1).square().sum(1)
        p = p0 + 0.5 * e * (g_lp + beta * g_ll)  # p - ε/2 ∇U
        zn = z
        for step in range(n_leapfrog):
            zn = zn + e * p
            ll_n, lp_n, g_ll_n, g_lp_n = _evaluate(decoder, prior, zn, x_rep, sigma)
            grad_logf = g_lp_n + beta * g_ll_n
            p = p + (e if step < n_leapfrog - 1 else 0.5 * e) * grad_logf
        h1 = -(lp_n + beta * ll_n) + 0.5 * p.reshape(n, -1).square().sum(1)
        log_ratio = (h0 - h1).nan_to_num(nan=-math.inf)
        u = torch.rand(n, generator=generator, dtype=dtype).to(device)
        accept = torch.log(u) < log_ratio.clamp(max=0.0)
        accept &= torch.isfinite(ll_n) & torch.isfinite(lp_n)
        acc_v = accept.reshape(view)
        z = torch.where(acc_v, zn.detach(), z)
        g_ll = torch.where(acc_v, g_ll_n, g_ll)
        g_lp = torch.where(acc_v, g_lp_n, g_lp)
        ll = torch.where(accept, ll_n, ll)
        lp = torch.where(accept, lp_n, lp)
        rate = accept.to(dtype).reshape(n_chains, b).mean(0)
        accepted_total += float(rate.mean())
        avg_accept = 0.9 * avg_accept + 0.1 * rate
        if adapt_rate is None:  # Wu et al.: x1.02 above the target, x0.98 below
            eps = torch.where(avg_accept > target_accept, eps * 1.02, eps * 0.98)
        else:  # proportional: log ε += rate·(ā − target)
            eps = eps * torch.exp(adapt_rate * (avg_accept - target_accept))
        eps = eps.clamp(1e-4, 0.5)
        if bar is not None:
            bar.update(1)
    log_w = logw.reshape(n_chains, b).T.cpu()  # (b, C)
    log_lik = torch.logsumexp(log_w, dim=1) - math.log(n_chains)
    return log_lik, log_w, accepted_total / max(1, len(betas) - 1), eps.cpu()


def ais_log_likelihood(
    decoder: Callable[[torch.Tensor], torch.Tensor],
    prior,
    x: torch.Tensor,
    latent_shape: tuple[int, ...],
    *,
    sigma: float = DEFAULT_SIGMA,
    n_steps: int = 1000,
    n_chains: int = 16,
    n_leapfrog: int = 10,
    step_size: float = 0.01,
    target_accept: float = 0.65,
    adapt_rate: float | None = 1.0,
    schedule: str = "sigmoid",
    batch_size: int | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> AISResult:
    r"""AIS estimate of ``log p_σ(x) = log ∫ p(z) N(x; G(z), σ²I) dz`` for each row of ``x``.

    ``decoder``: ``z (n, *latent_shape) -> x̂ (n, *x.shape[1:])`` (for a Flow-GAN,
    ``model.decode``); ``prior``: has ``log_prob(z) -> (n,)`` and
    ``sample(shape, generator=, dtype=)`` (a model's ``.prior``). ``x`` is evaluated in its own
    dtype and device; ``batch_size`` data points (times ``n_chains`` chains) run together.
    Returns log-likelihoods in nats (float64) -- a stochastic lower bound in expectation.
    """
    import time

    if sigma <= 0:
        raise ValueError("sigma must be positive")
    if n_chains < 1 or n_leapfrog < 1:
        raise ValueError("n_chains and n_leapfrog must be >= 1")
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; choose from {', '.join(SCHEDULES)}")
    betas = SCHEDULES[schedule](int(n_steps))
    latent_shape = tuple(int(s) for s in latent_shape)
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    batch_size = int(batch_size or len(x))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=int(n_steps) * math.ceil(len(x) / batch_size), desc="AIS", unit="step", leave=False)
    t0 = time.perf_counter()
    lls, lws, accs, steps = [], [], [], []
    try:
        for start in range(0, len(x), batch_size):
            xb = x[start : start + batch_size].detach()
            ll, lw, acc, eps = _ais_batch(
                decoder,
                prior,
                xb,
                latent_shape,
                sigma=sigma,
                betas=betas,
                n_chains=n_chains,
                n_leapfrog=n_leapfrog,
                step_size=step_size,
                target_accept=target_accept,
                adapt_rate=adapt_rate,
                generator=generator,
                bar=bar,
            )
            lls.append(ll)
            lws.append(lw)
            accs.append(acc * len(xb))
            steps.append(eps)
    finally:
        if bar is not None:
            bar.close()
    return AISResult(
        torch.cat(lls),
        torch.cat(lws),
        sum(accs) / len(x),
        torch.cat(steps),
        float(sigma),
        int(n_steps),
        int(n_chains),
        int(n_leapfrog),
        schedule,
        time.perf_counter() - t0,
    )


def ais_estimate(model, images: torch.Tensor, *, seed: int = 0, **kwargs) -> AISResult:
    """AIS on uint8 ``images`` for a flow model: decoder ``model.decode`` (``G``, including the
    final sigmoid), prior ``model.prior``, points dequantized with the flows' fixed noise;
    keyword arguments go to :func:`ais_log_likelihood`."""
    from ..generator import require
    from ..likelihood import dequantized
    from ..models import device_dtype

    require(model, "decode", "prior", analysis="AIS (an estimate through the generator's latents)")

    device, dtype = device_dtype(model)
    was_training = model.training
    model.eval()
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:  # gradients are needed with respect to z only
        p.requires_grad_(False)
    try:
        x = dequantized(images, dtype=dtype).to(device)
        return ais_log_likelihood(
            model.decode, model.prior, x, tuple(model.shape), generator=torch.Generator().manual_seed(seed), **kwargs
        )
    finally:
        for p in params:
            p.requires_grad_(True)
        model.train(was_training)


#: Bandwidths tried by :func:`select_sigma` (observation noise std of the Gaussian decoder model).
SIGMA_GRID: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, DEFAULT_SIGMA, 0.3)


def select_sigma(
    model, val_images: torch.Tensor, sigmas=SIGMA_GRID, *, seed: int = 0, **kwargs
) -> tuple[float, dict[float, float]]:
    """Wu et al. (2017) chose the observation noise on validation data: run AIS with the same
    budget (keyword arguments of :func:`ais_log_likelihood`) for every ``σ`` on ``val_images``
    and keep the one with the highest mean estimated log-likelihood. Returns ``(σ, {σ: mean})``.

    The best ``σ`` depends on the budget: with more intermediate distributions the estimate of
    the sharper small-``σ`` posteriors improves, and ``p_σ`` approaches the flow's own density
    as ``σ → 0``."""
    results = {float(s): ais_estimate(model, val_images, seed=seed, sigma=float(s), **kwargs).mean for s in sigmas}
    finite = {s: v for s, v in results.items() if math.isfinite(v)}
    if not finite:
        raise ValueError("AIS gave no finite estimate for any sigma")
    return max(finite, key=finite.get), results
