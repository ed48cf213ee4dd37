"""Every flow layer: round trip, log-det against a brute-force Jacobian, forward/inverse cancel."""

import math

import numpy as np
import pytest
import scipy.stats
import torch
from helpers import brute_force_logdet, perturb

from flowgan import flows as F
from flowgan.nets import MLP, GlowNet, ResNet


def _mlp(n_in, n_out):
    return MLP(n_in, n_out, hidden=8, depth=1)


def _resnet(c_in, c_out, norm="none"):
    return ResNet(c_in, c_out, channels=4, blocks=1, norm=norm)


# name -> (factory, input shape of one sample, input domain)
LAYERS = {
    "logit": (lambda: F.Logit(1e-7), (6,), "unit"),
    "logit-real-nvp-alpha": (lambda: F.Logit(0.05), (2, 2, 2), "unit"),
    "diagonal-scaling": (lambda: F.DiagonalScaling((6,)), (6,), "real"),
    "additive-alternating-0": (lambda: F.AdditiveCoupling(F.AlternatingHalves(0), _mlp(3, 3)), (6,), "real"),
    "additive-alternating-1-odd": (lambda: F.AdditiveCoupling(F.AlternatingHalves(1), _mlp(2, 3)), (5,), "real"),
    "affine-alternating-0": (lambda: F.AffineCoupling(F.AlternatingHalves(0), _mlp(3, 6), (3,)), (6,), "real"),
    "affine-alternating-0-odd": (lambda: F.AffineCoupling(F.AlternatingHalves(0), _mlp(3, 4), (2,)), (5,), "real"),
    "affine-checkerboard-0": (lambda: F.AffineCoupling(F.Checkerboard(0), _resnet(2, 4), (2, 1, 1)), (2, 4, 4), "real"),
    "affine-checkerboard-1-bn": (
        lambda: F.AffineCoupling(F.Checkerboard(1), _resnet(1, 2, "batch"), (1, 1, 1)),
        (1, 4, 4),
        "real",
    ),
    "additive-checkerboard-1": (lambda: F.AdditiveCoupling(F.Checkerboard(1), _resnet(1, 1)), (1, 4, 4), "real"),
    "affine-channel-0": (lambda: F.AffineCoupling(F.ChannelHalves(0), _resnet(2, 4), (2, 1, 1)), (4, 2, 2), "real"),
    "affine-channel-1-odd": (lambda: F.AffineCoupling(F.ChannelHalves(1), _resnet(3, 4), (2, 1, 1)), (5, 2, 2), "real"),
    "squeeze": (lambda: F.Squeeze(), (2, 4, 4), "real"),
    "unsqueeze": (lambda: F.InverseFlow(F.Squeeze()), (8, 2, 2), "real"),
    "reshape": (lambda: F.Reshape((2, 2, 2), (8,)), (2, 2, 2), "real"),
    "factor-out": (
        lambda: F.FactorOut(F.AffineCoupling(F.Checkerboard(0), _resnet(2, 4), (2, 1, 1))),
        (4, 2, 2),
        "real",
    ),
    "batchnorm-image": (lambda: F.BatchNormFlow(3), (3, 2, 2), "real"),
    "batchnorm-vector": (lambda: F.BatchNormFlow(5), (5,), "real"),
    "actnorm": (lambda: F.ActNorm(3), (3, 2, 2), "real"),
    "invertible-1x1-lu": (lambda: F.InvertibleConv1x1(3), (3, 2, 2), "real"),
    "invertible-1x1-plain": (lambda: F.InvertibleConv1x1(4, lu=False), (4, 2, 1), "real"),
    "glow-coupling-0": (lambda: F.GlowCoupling(GlowNet(2, 4, hidden=5), parity=0), (4, 2, 2), "real"),
    "glow-coupling-1-odd": (lambda: F.GlowCoupling(GlowNet(3, 4, hidden=5), parity=1), (5, 2, 2), "real"),
    "glow-coupling-floor": (
        lambda: F.GlowCoupling(GlowNet(2, 4, hidden=5), parity=0, scale_floor=0.2),
        (4, 2, 2),
        "real",
    ),
    "sequence": (
        lambda: F.FlowSequence(
            F.Logit(1e-3),
            F.AffineCoupling(F.Checkerboard(0), _resnet(1, 2), (1, 1, 1)),
            F.Squeeze(),
            F.AffineCoupling(F.ChannelHalves(1), _resnet(2, 4), (2, 1, 1)),
            F.FactorOut(F.AdditiveCoupling(F.Checkerboard(1), _resnet(2, 2))),
            F.InverseFlow(F.Squeeze()),
        ),
        (1, 4, 4),
        "unit",
    ),
}


def _sample(shape, domain, n=3, seed=1):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand((n, *shape), generator=gen)
    return 0.05 + 0.9 * x if domain == "unit" else 2 * torch.randn((n, *shape), generator=gen)


def _layer(name):
    factory, shape, domain = LAYERS[name]
    layer = perturb(factory(), scale=0.3)
    if isinstance(layer, F.ActNorm):  # data-dependent initialisation, then parameters move on
        layer.train()
        layer(_sample(shape, domain, n=16, seed=5))
        perturb(layer, scale=0.3, seed=3)
    layer.eval()
    return layer, shape, domain


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_round_trip(name):
    layer, shape, domain = _layer(name)
    x = _sample(shape, domain)
    z, logdet = layer(x)
    assert logdet.shape == (x.shape[0],)
    assert torch.allclose(layer.inverse(z), x, atol=1e-10, rtol=0)
    w = torch.randn_like(z)
    assert torch.allclose(layer(layer.inverse(w))[0], w, atol=1e-9, rtol=0)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_logdet_matches_brute_force_jacobian(name):
    layer, shape, domain = _layer(name)
    x = _sample(shape, domain)
    _, logdet = layer(x)
    expected = brute_force_logdet(layer, x)
    assert torch.allclose(logdet, expected, atol=1e-8, rtol=1e-9), (logdet, expected)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_forward_and_inverse_logdets_cancel(name):
    layer, shape, domain = _layer(name)
    x = _sample(shape, domain)
    z, logdet = layer(x)
    inverse_logdet = brute_force_logdet(layer.inverse, z)
    assert torch.allclose(logdet + inverse_logdet, torch.zeros_like(logdet), atol=1e-8)
    x_back, reported = layer.inverse_and_logdet(z)
    assert torch.allclose(x_back, x, atol=1e-10) and torch.allclose(reported, inverse_logdet, atol=1e-8)


def test_logit_inverse_logdet_stays_finite_where_pixels_saturate():
    logit = F.Logit(1e-7)
    h = torch.tensor([[-800.0, 0.0, 900.0]])
    x, logdet = logit.inverse_and_logdet(h)
    assert torch.equal(x.clamp(0, 1), torch.tensor([[0.0, 0.5, 1.0]]))  # sigmoid saturated
    expected = -800.0 + 2 * math.log(0.5) - 900.0 - 3 * math.log1p(-2e-7)
    assert torch.isfinite(logdet).all() and logdet.item() == pytest.approx(expected, rel=1e-12)


def test_coupling_changes_only_one_half():
    layer, shape, _ = _layer("affine-checkerboard-0")
    x = _sample(shape, "real")
    z, _ = layer(x)
    mask = F.Checkerboard(0).mask(x).bool().expand_as(x)
    assert torch.equal(z[mask], x[mask])
    assert not torch.allclose(z[~mask], x[~mask])


def test_batchnorm_training_mode_uses_batch_statistics_and_updates_running_ones():
    bn = F.BatchNormFlow(2, momentum=0.5)
    x = 3 + 2 * torch.randn(64, 2, 3, 3)
    y, logdet = bn(x)  # training mode
    assert torch.allclose(y.mean(dim=(0, 2, 3)), torch.zeros(2), atol=1e-10)
    assert torch.allclose(y.var(dim=(0, 2, 3), unbiased=False), torch.ones(2), atol=1e-3)
    var = x.var(dim=(0, 2, 3), unbiased=False)
    assert torch.allclose(logdet, (-0.5 * torch.log(var + bn.eps)).sum().expand(64) * 9)
    assert torch.allclose(bn.running_mean, 0.5 * x.mean(dim=(0, 2, 3)))


def test_actnorm_initialises_from_first_batch_only():
    an = F.ActNorm(2)
    x = 1 + 4 * torch.randn(128, 2, 2, 2)
    y, _ = an(x)
    assert torch.allclose(y.mean(dim=(0, 2, 3)), torch.zeros(2), atol=1e-10)
    assert torch.allclose(y.std(dim=(0, 2, 3), unbiased=False), torch.ones(2), atol=1e-5)
    before = an.bias.detach().clone()
    an(x + 10)
    assert torch.equal(an.bias.detach(), before)
    restored = F.ActNorm(2)
    restored.load_state_dict(an.state_dict())
    assert bool(restored.initialized)


def test_squeeze_layout():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    z, _ = F.Squeeze()(x)
    assert z.shape == (1, 4, 2, 2)
    # channel 2i + j holds pixel (2h + i, 2w + j)
    assert torch.equal(z[0, :, 0, 0], torch.tensor([0.0, 1.0, 4.0, 5.0]))
    assert torch.equal(z[0, 1], torch.tensor([[1.0, 3.0], [9.0, 11.0]]))


def test_logit_domain_errors():
    with pytest.raises(ValueError):
        F.Logit(0.5)


@pytest.mark.parametrize(
    "prior, reference",
    [(F.StandardNormal(), scipy.stats.norm), (F.StandardLogistic(), scipy.stats.logistic)],
)
def test_prior_log_prob_matches_scipy(prior, reference):
    z = 3 * torch.randn(5, 2, 3, 3)
    expected = reference.logpdf(z.numpy()).reshape(5, -1).sum(axis=1)
    np.testing.assert_allclose(prior.log_prob(z).numpy(), expected, rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize(
    "prior, reference",
    [(F.StandardNormal(), scipy.stats.norm), (F.StandardLogistic(), scipy.stats.logistic)],
)
def test_prior_samples_follow_the_distribution(prior, reference):
    gen = torch.Generator().manual_seed(0)
    z = prior.sample((20000,), generator=gen, dtype=torch.float64)
    assert scipy.stats.kstest(z.numpy(), reference.cdf).pvalue > 1e-3
    assert torch.isfinite(z).all()


def test_logistic_prior_extremes_are_finite():
    z = torch.tensor([[-800.0, 800.0, 0.0]])
    lp = F.StandardLogistic().log_prob(z)
    assert torch.isfinite(lp).all()
    assert math.isclose(float(lp), -1600 - 2 * math.log(2), rel_tol=1e-12)


@pytest.mark.parametrize("lu", [True, False])
def test_invertible_1x1_starts_as_a_rotation_and_its_logdet_is_log_det_w(lu):
    layer = F.InvertibleConv1x1(4, lu=lu)
    with torch.no_grad():
        weight, logdet = layer.matrix()
    torch.testing.assert_close(weight @ weight.T, torch.eye(4), rtol=0, atol=1e-12)  # a rotation
    assert abs(logdet.item()) < 1e-12
    perturb(layer, scale=0.3)
    weight, logdet = layer.matrix()
    # perturb also moved the entries the LU factors mask out: the log-det (Σ v) stays log|det W|
    torch.testing.assert_close(logdet, torch.linalg.slogdet(weight)[1], rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match=r"expected images \(N, 4, H, W\), got shape \(2, 3, 2, 2\)"):
        layer(torch.zeros(2, 3, 2, 2))


def test_a_fresh_glow_coupling_scales_by_sigmoid_of_two():
    """The zero-initialised last layer: shift 0 and scale σ(2) ≈ 0.88 on the changed half."""
    layer = F.GlowCoupling(GlowNet(2, 4, hidden=3), parity=0)
    x = torch.randn(3, 4, 2, 2)
    y, logdet = layer(x)
    s = torch.sigmoid(torch.tensor(2.0))
    torch.testing.assert_close(y[:, :2], x[:, :2])
    torch.testing.assert_close(y[:, 2:], x[:, 2:] * s)
    torch.testing.assert_close(logdet, torch.full((3,), 2 * 2 * 2 * float(torch.log(s))))


def test_glow_coupling_scale_floor_bounds_the_generating_gain():
    """``scale = f + (1 − f)·σ(ŝ + 2)``: with a raw scale driven to −∞ Glow's coupling divides by
    (nearly) zero when generating; the floor caps the division at ``1/f`` (issue 24)."""
    for floor in (0.0, 0.05, 0.5):
        layer = F.GlowCoupling(GlowNet(2, 4, hidden=3), parity=0, scale_floor=floor)
        with torch.no_grad():
            layer.net[-1].conv.bias[1::2] = -60.0  # raw scale ŝ = -60 everywhere, shift 0
        z = torch.ones(2, 4, 2, 2)
        x, logdet = layer.inverse_and_logdet(z)
        gain = float(x[:, 2:].abs().max())
        if floor:
            assert gain == pytest.approx(1.0 / (floor + (1 - floor) * torch.sigmoid(torch.tensor(-58.0)).item()))
            torch.testing.assert_close(logdet, torch.full((2,), -8 * math.log(floor)), rtol=1e-9, atol=1e-9)
        else:
            assert gain > 1e24  # 1/σ(-58): Glow's own coupling
    with pytest.raises(ValueError, match=r"scale_floor must be in \[0, 1\), got 1.0"):
        F.GlowCoupling(GlowNet(2, 4, hidden=3), scale_floor=1.0)
