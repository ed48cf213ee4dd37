"""Annealed importance sampling for decoder models (Neal 2001; Wu et al. 2017)."""

import math

import pytest
import torch

import flowgan
from flowgan.analysis.ais import (
    DEFAULT_SIGMA,
    ais_estimate,
    ais_log_likelihood,
    gaussian_log_likelihood,
    linear_gaussian_log_marginal,
    sigmoid_schedule,
)
from flowgan.flows.priors import StandardNormal


@pytest.fixture(scope="module")
def linear_problem():
    """x = W z + b + σ ε with z ~ N(0, I_3), x in R^6: p(x) = N(b, W Wᵀ + σ² I) exactly."""
    g = torch.Generator().manual_seed(0)
    dz, dx, sigma = 3, 6, 0.3
    w = torch.randn(dx, dz, generator=g, dtype=torch.float64)
    b = 0.5 * torch.randn(dx, generator=g, dtype=torch.float64)
    z = torch.randn(24, dz, generator=g, dtype=torch.float64)
    x = z @ w.T + b + sigma * torch.randn(24, dx, generator=g, dtype=torch.float64)
    return w, b, sigma, x, linear_gaussian_log_marginal(x, w, b, sigma)


def _ais(problem, n_steps, seed=1, n_chains=16):
    w, b, sigma, x, _ = problem
    return ais_log_likelihood(
        lambda z: z @ w.T + b,
        StandardNormal(),
        x,
        (w.shape[1],),
        sigma=sigma,
        n_steps=n_steps,
        n_chains=n_chains,
        n_leapfrog=5,
        step_size=0.1,
        generator=torch.Generator().manual_seed(seed),
    )


def test_sigmoid_schedule():
    beta = sigmoid_schedule(100)
    assert len(beta) == 101 and beta[0] == 0 and beta[-1] == 1
    assert (beta[1:] > beta[:-1]).all()
    torch.testing.assert_close(beta, 1 - beta.flip(0))  # symmetric: dense near both ends
    steps = beta[1:] - beta[:-1]
    assert steps[0] < steps[50] and steps[-1] < steps[50]
    assert sigmoid_schedule(1).tolist() == [0.0, 1.0]


def test_closed_form_of_the_linear_gaussian_decoder_matches_monte_carlo():
    """Check the reference itself: the closed form equals a brute-force average over many z."""
    g = torch.Generator().manual_seed(3)
    w, b, sigma = torch.randn(2, 1, generator=g, dtype=torch.float64), torch.zeros(2, dtype=torch.float64), 0.7
    x = torch.tensor([[0.3, -0.2], [1.0, 0.5]], dtype=torch.float64)
    z = torch.randn(400_000, 1, generator=g, dtype=torch.float64)
    mc = torch.stack(
        [
            torch.logsumexp(gaussian_log_likelihood(z @ w.T + b, xi.expand(400_000, 2), sigma), 0) - math.log(400_000)
            for xi in x
        ]
    )
    torch.testing.assert_close(mc, linear_gaussian_log_marginal(x, w, b, sigma), atol=5e-3, rtol=0)


def test_ais_matches_the_closed_form_within_tolerance(linear_problem):
    """500 intermediate distributions x 16 chains: the mean error over 24 points is below 0.1 nats
    and no point is off by more than 1 nat (the marginals themselves are around -10 nats)."""
    exact = linear_problem[-1]
    result = _ais(linear_problem, 500)
    err = result.log_likelihood - exact
    assert abs(float(err.mean())) < 0.1
    assert float(err.abs().max()) < 1.0
    assert 0.5 < result.acceptance < 0.85  # the step size tracks the 0.65 target
    assert result.log_weights.shape == (24, 16) and result.log_likelihood.dtype == torch.float64


def test_ais_improves_with_more_steps_and_is_a_lower_bound(linear_problem):
    exact = linear_problem[-1]
    errors = [(_ais(linear_problem, t).log_likelihood - exact) for t in (5, 50, 500)]
    mean_abs = [float(e.abs().mean()) for e in errors]
    assert mean_abs[0] > mean_abs[1] > mean_abs[2]
    assert mean_abs[0] > 1.0 and mean_abs[2] < 0.3
    # E[log p̂] <= log p: with few steps the estimates are clearly below the truth
    assert float(errors[0].mean()) < -1.0 and float(errors[1].mean()) < 0


def test_wu_et_al_step_size_rule_also_converges(linear_problem):
    """``adapt_rate=None``: the original x1.02 / x0.98 rule, slower to adapt but just as valid."""
    w, b, sigma, x, exact = linear_problem
    r = ais_log_likelihood(
        lambda z: z @ w.T + b,
        StandardNormal(),
        x,
        (3,),
        sigma=sigma,
        n_steps=500,
        n_chains=16,
        n_leapfrog=5,
        step_size=0.1,
        adapt_rate=None,
        generator=torch.Generator().manual_seed(1),
    )
    err = r.log_likelihood - exact
    assert abs(float(err.mean())) < 0.1 and float(err.abs().max()) < 1.0


def test_step_size_reaches_the_target_acceptance_quickly(linear_problem):
    """From a 100x too small initial step size, the proportional rule reaches ~0.65 acceptance."""
    w, b, sigma, x, _ = linear_problem
    r = ais_log_likelihood(
        lambda z: z @ w.T + b,
        StandardNormal(),
        x,
        (3,),
        sigma=sigma,
        n_steps=60,
        n_chains=8,
        n_leapfrog=5,
        step_size=0.001,
        generator=torch.Generator().manual_seed(2),
    )
    assert float(r.step_size.min()) > 0.02  # grew by more than 20x within 60 steps
    assert 0.5 < r.acceptance < 0.85


def test_ais_is_deterministic_given_the_generator(linear_problem):
    a, b = _ais(linear_problem, 20, seed=5), _ais(linear_problem, 20, seed=5)
    assert torch.equal(a.log_likelihood, b.log_likelihood)
    c = _ais(linear_problem, 20, seed=6)
    assert not torch.equal(a.log_likelihood, c.log_likelihood)


def test_ais_batches_give_the_same_kind_of_answer(linear_problem):
    w, b, sigma, x, exact = linear_problem
    r = ais_log_likelihood(
        lambda z: z @ w.T + b,
        StandardNormal(),
        x,
        (3,),
        sigma=sigma,
        n_steps=100,
        n_chains=16,
        n_leapfrog=5,
        step_size=0.1,
        batch_size=10,
        generator=torch.Generator().manual_seed(1),
    )
    assert r.log_likelihood.shape == (24,) and r.step_size.shape == (24,)
    assert float((r.log_likelihood - exact).abs().mean()) < 0.6


def test_ais_estimate_on_a_flow_model():
    data = flowgan.load_dataset("digits")
    model = flowgan.build_model("nice-small", shape=(1, 8, 8)).float().eval()
    r = ais_estimate(model, data.test.images[:6], n_steps=10, n_chains=3, n_leapfrog=2, sigma=DEFAULT_SIGMA, seed=0)
    assert r.log_likelihood.shape == (6,) and torch.isfinite(r.log_likelihood).all()
    assert all(p.requires_grad for p in model.parameters())  # restored
    d = r.to_dict()
    assert d["nll_nats"] == pytest.approx(-float(r.log_likelihood.mean())) and d["n_chains"] == 3


def test_input_checks(linear_problem):
    w, b, sigma, x, _ = linear_problem
    with pytest.raises(ValueError):
        ais_log_likelihood(lambda z: z @ w.T + b, StandardNormal(), x, (3,), sigma=-1.0)
    with pytest.raises(ValueError):
        ais_log_likelihood(lambda z: z @ w.T + b, StandardNormal(), x, (3,), schedule="cosine")


@pytest.mark.slow
def test_ais_converges_with_many_steps(linear_problem):
    """3,000 intermediate distributions x 32 chains: every point within 0.3 nats, mean within 0.03."""
    exact = linear_problem[-1]
    err = _ais(linear_problem, 3000, n_chains=32).log_likelihood - exact
    assert abs(float(err.mean())) < 0.03 and float(err.abs().max()) < 0.3
