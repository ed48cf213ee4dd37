"""Parzen-window (KDE) estimates (Goodfellow et al. 2014)."""

import math

import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch

import flowgan
from flowgan.analysis.gmm import GaussianMixtureBaseline
from flowgan.analysis.kde import draw_samples, kde_estimate, parzen_log_likelihood
from flowgan.likelihood import dequantized


def _direct_kde(x: np.ndarray, samples: np.ndarray, h: float) -> np.ndarray:
    """The textbook Parzen window: mean of Gaussian kernels, with scipy, float64."""
    logk = scipy.stats.norm.logpdf(x[:, None, :], loc=samples[None], scale=h).sum(-1)
    return scipy.special.logsumexp(logk, axis=1) - math.log(samples.shape[0])


def test_kde_matches_direct_computation_for_a_fixed_bandwidth():
    gen = torch.Generator().manual_seed(0)
    samples = torch.rand(300, 1, 3, 3, generator=gen)
    x = torch.rand(40, 1, 3, 3, generator=gen)
    for h in (0.02, 0.1, 0.7):
        kde = GaussianMixtureBaseline(samples, h)
        expected = _direct_kde(x.reshape(40, -1).double().numpy(), samples.reshape(300, -1).double().numpy(), h)
        np.testing.assert_allclose(kde.log_prob(x).numpy(), expected, rtol=1e-6, atol=1e-5)


def test_bandwidth_is_chosen_on_validation_and_test_ll_is_reported_at_it():
    gen = torch.Generator().manual_seed(1)
    mean = torch.rand(1, 1, 2, 3, generator=gen)
    draw = lambda n: mean + 0.15 * torch.randn(n, 1, 2, 3, generator=gen)  # noqa: E731
    samples, x_val, x_test = draw(500), draw(200), draw(100)
    r = parzen_log_likelihood(samples, x_val, x_test)
    # the chosen bandwidth is the best of everything evaluated on the validation points
    assert -r.val_ll == pytest.approx(min(r.search.nlls))
    assert r.bandwidth == r.search.sigma
    expected = _direct_kde(
        x_test.reshape(100, -1).double().numpy(), samples.reshape(500, -1).double().numpy(), r.bandwidth
    )
    np.testing.assert_allclose(r.test_ll.numpy(), expected, rtol=1e-6, atol=1e-5)
    # with Gaussian data of scale 0.15 the best kernel is narrower than the data but not tiny
    assert 0.03 < r.bandwidth < 0.15
    d = r.to_dict()
    assert d["test_nll_nats"] == pytest.approx(-float(r.test_ll.mean())) and d["n_samples"] == 500
    assert d["test_ll_sem"] == pytest.approx(float(r.test_ll.std()) / 10)


def test_kde_of_a_mixture_recovers_its_density_with_many_samples():
    """KDE of samples from a known density (a 2-component Gaussian mixture in 2 dims) approaches
    its true log-likelihood as the number of samples grows."""
    centres = torch.tensor([[0.3, 0.3], [0.7, 0.6]]).reshape(2, 1, 1, 2)
    truth = GaussianMixtureBaseline(centres, 0.08, precision="float64")
    gen = torch.Generator().manual_seed(2)
    x_val = truth.sample(500, generator=gen, clamp=False)
    x_test = truth.sample(500, generator=gen, clamp=False)
    exact = float(truth.log_prob(x_test).mean())
    errors = []
    for n in (50, 5000):
        r = parzen_log_likelihood(truth.sample(n, generator=gen, clamp=False), x_val, x_test)
        errors.append(abs(r.mean - exact))
    assert errors[1] < errors[0] and errors[1] < 0.05


def test_kde_estimate_of_a_flow_model():
    data = flowgan.load_dataset("digits")
    model = flowgan.build_model("nice-small", shape=(1, 8, 8)).float().eval()
    r = kde_estimate(model, data.val.images[:50], data.test.images[:30], n_samples=300, seed=3)
    assert r.n_samples == 300 and len(r.test_ll) == 30 and torch.isfinite(r.test_ll).all()
    samples = draw_samples(model, 300, seed=3)
    again = parzen_log_likelihood(samples, dequantized(data.val.images[:50]), dequantized(data.test.images[:30]))
    assert again.bandwidth == r.bandwidth and torch.equal(again.test_ll, r.test_ll)  # deterministic given the seed
