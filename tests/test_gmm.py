"""The Gaussian-mixture baseline (§3.4): exact log-density, chunking, precision, σ search, sampling."""

import math
import sys

import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch

import flowgan
from flowgan.analysis.gmm import GaussianMixtureBaseline, default_score_fn, mixture_sweep, search_sigma
from flowgan.analysis.mixture import mixture_log_prob
from flowgan.likelihood import dequantized


def _direct(x: np.ndarray, centres: np.ndarray, sigma: float) -> np.ndarray:
    """log (1/m) Σ_i N(x; c_i, σ²I), straight from scipy, float64, no tricks."""
    logpdf = scipy.stats.norm.logpdf(x[:, None, :], loc=centres[None, :, :], scale=sigma).sum(-1)
    return scipy.special.logsumexp(logpdf, axis=1) - math.log(len(centres))


def _uint8(n, shape, seed):
    return torch.randint(0, 256, (n, *shape), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


@pytest.mark.parametrize("precision", ["float64", "float32"])
@pytest.mark.parametrize("sigma", [0.003, 0.03, 0.2, 1.0])
def test_log_prob_equals_direct_scipy_computation(precision, sigma):
    train = _uint8(60, (1, 3, 3), 0)
    x = torch.rand(25, 1, 3, 3, generator=torch.Generator().manual_seed(1))
    gmm = GaussianMixtureBaseline(train, sigma, precision=precision)
    centres = ((train.double() + 0.5) / 256).reshape(60, -1).numpy()
    expected = _direct(x.reshape(25, -1).double().numpy(), centres, sigma)
    got = gmm.log_prob(x).numpy()
    assert got.dtype == np.float64 and got.shape == (25,)
    # float64: rounding only; float32: the nearest term is exact, the others carry ~1e-7 relative error
    np.testing.assert_allclose(
        got, expected, rtol=1e-10 if precision == "float64" else 1e-7, atol=1e-8 if precision == "float64" else 1e-5
    )


def test_centre_conventions():
    train = _uint8(5, (1, 2, 2), 2)
    mid = GaussianMixtureBaseline(train, 0.1).centres
    low = GaussianMixtureBaseline(train, 0.1, centre="low").centres
    assert torch.equal(mid, ((train.float() + 0.5) / 256).reshape(5, -1))
    assert torch.equal(low, (train.float() / 256).reshape(5, -1))
    with pytest.raises(ValueError):
        GaussianMixtureBaseline(train, 0.1, centre="middle")
    with pytest.raises(ValueError):
        GaussianMixtureBaseline(train, 0.0)


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_chunking_does_not_change_results(precision):
    train = _uint8(300, (1, 4, 4), 3)
    x = dequantized(_uint8(70, (1, 4, 4), 4))
    sigmas = [0.01, 0.1, 0.5]
    ref = GaussianMixtureBaseline(train, 0.1, precision=precision).log_prob_sigmas(x, sigmas)
    for rows, cols in [(1, 300), (7, 13), (70, 1), (1000, 17)]:
        got = GaussianMixtureBaseline(
            train, 0.1, precision=precision, chunk_rows=rows, chunk_centres=cols
        ).log_prob_sigmas(x, sigmas)
        torch.testing.assert_close(
            got, ref, rtol=1e-12 if precision == "float64" else 1e-7, atol=1e-9 if precision == "float64" else 1e-5
        )


def test_several_bandwidths_in_one_pass_equal_separate_passes():
    train = _uint8(100, (1, 3, 3), 5)
    x = dequantized(_uint8(30, (1, 3, 3), 6))
    gmm = GaussianMixtureBaseline(train, 0.1, precision="float64")
    together = gmm.log_prob_sigmas(x, [0.05, 0.3])
    for j, s in enumerate([0.05, 0.3]):
        gmm.sigma = s
        torch.testing.assert_close(together[:, j], gmm.log_prob(x), rtol=1e-13, atol=0)


def test_float32_matches_float64_on_mnist_within_stated_tolerance():
    """The fast path (float32 distances, float64 accumulation, exact nearest term) against the
    float64 reference on real MNIST digits (D = 784): within 1e-3 nats for σ from 0.003 to 1."""
    data = flowgan.load_dataset("mnist5k")
    train, x = data.train.images[:1500], dequantized(data.val.images[:200])
    sigmas = [0.003, 0.01, 0.03, 0.1, 0.2, 0.5, 1.0]
    ref = GaussianMixtureBaseline(train, 0.1, precision="float64").log_prob_sigmas(x, sigmas)
    fast = GaussianMixtureBaseline(train, 0.1, precision="float32").log_prob_sigmas(x, sigmas)
    assert (fast - ref).abs().max() < 1e-3
    assert ref[:, 0].abs().min() > 1e4  # small σ: huge log-densities, still exact to 1e-3 nats


def test_nll_works_through_the_flows_evaluation_path():
    """``flowgan.nll`` on the mixture: same dequantization and units as the flows."""
    train, test = _uint8(80, (1, 4, 4), 7), _uint8(40, (1, 4, 4), 8)
    gmm = GaussianMixtureBaseline(train, 0.07, precision="float64")
    from flowgan.likelihood import dequantization_noise

    x = (test.double() + dequantization_noise(0, 40, (1, 4, 4), 0, torch.float32).double()) / 256
    centres = ((train.double() + 0.5) / 256).reshape(80, -1).numpy()
    expected = -_direct(x.reshape(40, -1).numpy(), centres, 0.07).mean()
    assert flowgan.nll(gmm, test, "nats") == pytest.approx(expected, rel=1e-6)
    assert flowgan.nll(gmm, test, "bpd") == pytest.approx(flowgan.nats_to_bpd(expected, 16), rel=1e-6)
    assert flowgan.nll(gmm, test, "nats", batch_size=7) == flowgan.nll(gmm, test, "nats")


def test_sigma_search_finds_the_known_optimum():
    """Two centres far apart, validation points near them: every point's density is dominated by
    its centre, so NLL(σ) = mean d²/(2σ²) + (D/2) log(2πσ²) + log 2, minimised at σ² = mean d²/D."""
    d = 20
    gen = torch.Generator().manual_seed(9)
    centres = torch.zeros(2, 1, 1, d)
    centres[1] += 50.0
    noise = 0.237 * torch.randn(400, 1, 1, d, generator=gen)
    x = torch.cat([centres[0] + noise[:200], centres[1] + noise[200:]])
    sq = noise.reshape(400, -1).square().sum(1).mean().item()
    optimum = math.sqrt(sq / d)
    result = search_sigma(GaussianMixtureBaseline(centres, 1.0, precision="float64"), x)
    assert result.sigma == pytest.approx(optimum, rel=0.01)
    expected_nll = sq / (2 * optimum**2) + d / 2 * math.log(2 * math.pi * optimum**2) + math.log(2)
    assert result.nll == pytest.approx(expected_nll, abs=0.05)
    assert result.nll == min(result.nlls) and not result.at_boundary
    assert result.sigmas == sorted(result.sigmas) and max(result.sigmas) <= 1.0


def test_sigma_search_reports_an_optimum_at_the_grid_edge():
    centres = torch.zeros(1, 1, 1, 4)
    x = 3.0 * torch.randn(100, 1, 1, 4, generator=torch.Generator().manual_seed(0))  # optimum σ ≈ 3 > 1
    result = search_sigma(GaussianMixtureBaseline(centres, 1.0), x)
    assert result.at_boundary and result.sigma == pytest.approx(1.0)


def test_samples_are_training_points_plus_gaussian_noise():
    train = _uint8(50, (1, 3, 3), 10)
    sigma = 0.05
    gmm = GaussianMixtureBaseline(train, sigma)
    x, idx = gmm.sample(20000, generator=torch.Generator().manual_seed(0), clamp=False, return_index=True)
    assert x.shape == (20000, 1, 3, 3)
    residual = ((x.reshape(20000, -1).double() - gmm.centres[idx].double()) / sigma).reshape(-1).numpy()
    assert scipy.stats.kstest(residual, "norm").pvalue > 1e-3
    counts = np.bincount(idx.numpy(), minlength=50)
    assert scipy.stats.chisquare(counts).pvalue > 1e-3
    clamped = gmm.sample(500, generator=torch.Generator().manual_seed(1))
    assert clamped.min() >= 0 and clamped.max() <= 1


def test_exported_from_the_package():
    assert flowgan.GaussianMixtureBaseline is GaussianMixtureBaseline
    assert GaussianMixtureBaseline(_uint8(3, (1, 2, 2), 0), 0.1).shape == (1, 2, 2)


def test_input_checks():
    gmm = GaussianMixtureBaseline(_uint8(3, (1, 2, 2), 0), 0.1)
    with pytest.raises(ValueError):
        gmm.log_prob(torch.rand(2, 1, 3, 3))
    with pytest.raises(ValueError):
        mixture_log_prob(torch.rand(2, 4), torch.rand(3, 4), [0.1, -1.0])
    with pytest.raises(ValueError):
        GaussianMixtureBaseline(torch.zeros(2, 1, 2, 2, dtype=torch.int64), 0.1)


def test_sweep_with_an_injected_score_function():
    data = flowgan.load_dataset("digits")
    seen = []

    def score_fn(images):
        seen.append(images)
        # a fake score that prefers sharp samples: minus the mean distance to {0, 1}
        return {"mode": float(-torch.minimum(images, 1 - images).mean()), "note": "ignored"}

    sigmas = [0.02, 0.1, 0.5]
    r = mixture_sweep(
        data.train.images,
        data.val.images[:60],
        data.test.images[:40],
        sigmas=sigmas,
        refine_rounds=1,
        score_fn=score_fn,
        score_samples=30,
        precision="float64",
    )
    assert [row["sigma"] for row in r["sweep"]] == sigmas
    assert len(seen) == 3 and all(s.shape == (30, 1, 8, 8) and s.min() >= 0 and s.max() <= 1 for s in seen)
    scores = [row["scores"]["mode"] for row in r["sweep"]]
    assert scores[0] > scores[1] > scores[2] and "note" not in r["sweep"][0]["scores"]
    assert r["best_val_nll_nats"] == min(v["val_nll_nats"] for v in r["curve"])
    assert 0.02 <= r["best_sigma"] <= 0.5 and math.isfinite(r["test_nll_nats"])
    gmm = GaussianMixtureBaseline(data.train.images, r["best_sigma"], precision="float64")
    assert r["test_nll_nats"] == pytest.approx(flowgan.nll(gmm, data.test.images[:40], "nats"), rel=1e-9)


def test_default_score_fn_without_metrics(monkeypatch):
    monkeypatch.setitem(sys.modules, "flowgan.metrics", None)  # import raises ImportError
    fn, note = default_score_fn(None, ["mode"])
    assert fn is None and "not available" in note


@pytest.mark.slow
def test_mixture_on_full_mnist(shared_data_dir):
    """The §3.4 baseline on the paper's MNIST split (50,000 centres, 10,000 validation images):
    the validation optimum lies inside (0, 1] and the held-out NLL is of the order of −300 nats."""
    data = flowgan.load_dataset("mnist", data_dir=shared_data_dir, download=False)
    r = mixture_sweep(data.train.images, data.val.images, data.test.images[:2000], refine_rounds=2)
    assert not r["search"]["at_boundary"] and 0.1 < r["best_sigma"] < 0.25
    assert -400 < r["best_val_nll_nats"] < -250 and -400 < r["test_nll_nats"] < -250
