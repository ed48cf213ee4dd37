"""Exact NLL: closed forms, units, determinism, dequantization."""

import math

import pytest
import scipy.stats
import torch
from helpers import perturb

import flowgan
from flowgan import flows as F
from flowgan.likelihood import dequantization_noise, log_likelihoods, nll_report
from flowgan.models import FlowModel


def _images(n=40, shape=(1, 4, 4), seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, *shape), generator=gen, dtype=torch.uint8)


def test_uniform_model_has_eight_bits_per_dim():
    # Logit step + logistic prior is the uniform density on y = a + (1-2a)x in [0, 1]:
    # log p(x) = D log(1 - 2a) exactly, i.e. ~0 nats and 8 - log2(1 - 2a) bits/dim.
    a = 1e-3
    model = FlowModel(F.FlowSequence(F.Logit(a)), F.StandardLogistic(), (1, 4, 4))
    data = _images()
    assert flowgan.nll(model, data, "nats") == pytest.approx(-16 * math.log1p(-2 * a), abs=1e-10)
    assert flowgan.nll(model, data, "bpd") == pytest.approx(8 - math.log2(1 - 2 * a), abs=1e-12)


def test_gaussian_model_matches_scipy():
    model = FlowModel(
        F.FlowSequence(F.Reshape((2, 3, 3), (18,)), F.Reshape((18,), (2, 3, 3))), F.StandardNormal(), (2, 3, 3)
    )
    data = _images(shape=(2, 3, 3))
    noise = dequantization_noise(0, len(data), (2, 3, 3), seed=0, dtype=torch.float64)
    x = (data.double() + noise) / 256
    expected = -scipy.stats.norm.logpdf(x.numpy()).reshape(len(data), -1).sum(1).mean()
    assert flowgan.nll(model, data, "nats") == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    "nats, dim, bpd", [(0.0, 784, 8.0), (-784 * math.log(2), 784, 7.0), (3072 * math.log(2), 3072, 9.0)]
)
def test_unit_conversion(nats, dim, bpd):
    assert flowgan.nats_to_bpd(nats, dim) == pytest.approx(bpd)
    assert flowgan.bpd_to_nats(bpd, dim) == pytest.approx(nats, abs=1e-9)


def test_paper_mnist_numbers_convert_to_plausible_bpd():
    # Table 1: NICE-MLE -3334.56 nats on MNIST is about 1.86 bits/dim.
    assert flowgan.nats_to_bpd(-3334.56, 784) == pytest.approx(1.8630, abs=1e-3)


def _model():
    return perturb(flowgan.build_model("realnvp-small", shape=(1, 4, 4)), 0.05).eval()


def test_evaluation_is_deterministic_and_batch_size_independent():
    model, data = _model(), _images(n=300)
    a = flowgan.nll(model, data, "bpd")
    assert flowgan.nll(model, data, "bpd") == a
    assert flowgan.nll(model, data, "bpd", batch_size=7) == pytest.approx(a, abs=1e-12)


def test_sharded_evaluation_equals_whole():
    model, data = _model(), _images(n=300)
    whole = log_likelihoods(model, data)
    parts = torch.cat([log_likelihoods(model, data[:123]), log_likelihoods(model, data[123:], index_offset=123)])
    assert torch.allclose(whole, parts, atol=1e-12)


def test_draws_average_over_seeds():
    model, data = _model(), _images(n=50)
    two = log_likelihoods(model, data, draws=2)
    one = (log_likelihoods(model, data, seed=0) + log_likelihoods(model, data, seed=1)) / 2
    assert torch.allclose(two, one, atol=1e-12)
    assert not torch.allclose(log_likelihoods(model, data, seed=0), log_likelihoods(model, data, seed=1))


def test_noise_is_uniform_and_fixed_per_index():
    noise = dequantization_noise(0, 1000, (3,), seed=4)
    assert noise.min() >= 0 and noise.max() < 1
    assert torch.equal(dequantization_noise(500, 10, (3,), seed=4), noise[500:510])
    assert scipy.stats.kstest(noise.flatten().numpy(), "uniform").pvalue > 1e-3


def test_dequantized_images_stay_in_their_bins():
    data = _images(n=100)
    x = flowgan.dequantize(data, dequantization_noise(0, 100, (1, 4, 4), dtype=torch.float64))
    assert torch.equal(torch.floor(x * 256).to(torch.uint8), data)


def test_report_has_both_units_and_model_mode_is_restored():
    model = _model().train()
    rep = nll_report(model, _images())
    assert set(rep) == {"nll_nats", "nll_bpd"}
    assert rep["nll_bpd"] == pytest.approx(flowgan.nats_to_bpd(rep["nll_nats"], 16))
    assert model.training


def test_nll_rejects_continuous_or_misshaped_images():
    model = _model()
    with pytest.raises(ValueError, match="uint8"):
        flowgan.nll(model, torch.rand(3, 1, 4, 4), "nats")
    with pytest.raises(ValueError, match="shape"):
        flowgan.nll(model, _images(shape=(1, 5, 5)), "nats")
    with pytest.raises(ValueError, match="unit"):
        flowgan.nll(model, _images(), "bits")
