"""flowgan.from_zuko / flowgan.from_normflows: library flows as flowgan generators, checked in float64
against brute force (the whole map x -> z as a function, its Jacobian's slogdet, the base density in
closed form), for zuko MAF/NSF and normflows Real-NVP-style models on images of shape (1, 3, 2)."""

import math
import sys

import pytest
import torch

import flowgan
from flowgan.adapters import from_normflows, from_zuko
from flowgan.errors import FlowganError
from flowgan.likelihood import dequantization_noise, dequantize

zuko = pytest.importorskip("zuko")
nf = pytest.importorskip("normflows")

SHAPE = (1, 3, 2)
D = 6
F64 = torch.float64
EXTRA = "pip install 'flowgan[flows]'"


def zuko_maf():
    return zuko.flows.MAF(features=D, transforms=2, hidden_features=[16]).to(F64)


def zuko_nsf():
    return zuko.flows.NSF(features=D, transforms=2, hidden_features=[16]).to(F64)


def nf_masked_affine():
    """Real-NVP with masked affine couplings and a trainable, non-standard diagonal Gaussian base."""
    mask = torch.tensor([1.0, 0.0] * 3, dtype=F64)
    flows = [
        nf.flows.MaskedAffineFlow(mask if i % 2 == 0 else 1 - mask, nf.nets.MLP([D, 16, D]), nf.nets.MLP([D, 16, D]))
        for i in range(4)
    ]
    base = nf.distributions.DiagGaussian(D)
    with torch.no_grad():
        base.loc.normal_()
        base.log_scale.uniform_(-0.5, 0.5)
    return nf.NormalizingFlow(base, flows).to(F64)


def nf_coupling_blocks():
    """Real-NVP with AffineCouplingBlock (channel split) and swaps, a fixed standard normal base."""
    flows = []
    for _ in range(2):
        flows += [nf.flows.AffineCouplingBlock(nf.nets.MLP([D // 2, 16, D])), nf.flows.Permute(D, mode="swap")]
    return nf.NormalizingFlow(nf.distributions.DiagGaussian(D, trainable=False), flows).to(F64)


CASES = {
    "zuko-maf": (from_zuko, zuko_maf),
    "zuko-nsf": (from_zuko, zuko_nsf),
    "normflows-masked-affine": (from_normflows, nf_masked_affine),
    "normflows-coupling-block": (from_normflows, nf_coupling_blocks),
}


def build(case, alpha=1e-7):
    adapt, make = CASES[case]
    lib = make()
    return adapt(lib, SHAPE, alpha=alpha), lib


def images(n=5):
    return 0.05 + 0.9 * torch.rand(n, *SHAPE, dtype=F64)


def library_map(lib):
    """The library's own x -> z on vectors (N, D), called directly, not through the adapter."""
    if isinstance(lib, nf.NormalizingFlow):
        return lambda h: lib.inverse_and_log_det(h)[0]
    return lambda h: lib().transform(h)


def base_log_density(lib, z):
    """Closed-form log-density of the base at z (N, D): a diagonal Gaussian with the base's loc and
    scale (zuko's DiagNormal buffers, normflows' loc/log_scale)."""
    if isinstance(lib, nf.NormalizingFlow):
        loc, scale = lib.q0.loc.reshape(-1), lib.q0.log_scale.exp().reshape(-1)
    else:
        loc, scale = lib.base.loc, lib.base.scale
        assert torch.equal(loc, torch.zeros(D, dtype=F64)) and torch.equal(scale, torch.ones(D, dtype=F64))
    u = (z - loc) / scale
    return (-0.5 * u * u - scale.log() - 0.5 * math.log(2 * math.pi)).sum(-1)


@pytest.mark.parametrize("case", CASES)
def test_round_trip(case):
    model, _ = build(case)
    x = images()
    z = model.encode(x)
    assert z.shape == x.shape and z.dtype == F64
    torch.testing.assert_close(model.decode(z), x, atol=1e-9, rtol=0)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("alpha", [1e-7, 0.05])
def test_log_prob_is_the_change_of_variables_by_brute_force(case, alpha):
    model, lib = build(case, alpha)
    f = library_map(lib)

    def full_map(x_flat):  # (D,) image pixels -> (D,) latent: logit written out here, then the library
        y = alpha + (1 - 2 * alpha) * x_flat
        return f((torch.log(y) - torch.log1p(-y))[None])[0]

    x = images(3)
    expected = []
    for xi in x.reshape(3, D):
        jac = torch.autograd.functional.jacobian(full_map, xi)
        sign, logabsdet = torch.linalg.slogdet(jac)
        assert sign != 0
        expected.append(base_log_density(lib, full_map(xi)[None])[0] + logabsdet)
    torch.testing.assert_close(model.log_prob(x).detach(), torch.stack(expected).detach(), atol=1e-8, rtol=1e-10)
    assert model.spec == {
        "adapter": case.split("-")[0],
        "class": type(lib).__qualname__,
        "shape": [1, 3, 2],
        "alpha": alpha,
    }


@pytest.mark.parametrize("case", CASES)
def test_decode_and_logdet_is_minus_the_forward_logdet(case):
    model, _ = build(case)
    z = model.encode(images())
    x, logdet = model.decode_and_logdet(z)
    torch.testing.assert_close(x, model.decode(z), atol=1e-12, rtol=0)
    torch.testing.assert_close(logdet, -model.flow(x)[1], atol=1e-8, rtol=1e-10)


@pytest.mark.parametrize("case", CASES)
def test_sampling_is_reproducible_and_temperature_scales_the_std(case):
    model, lib = build(case)
    model.requires_grad_(False)
    draw = lambda seed, n=4: model.sample(n, torch.Generator().manual_seed(seed))  # noqa: E731
    rng = torch.get_rng_state()
    assert torch.equal(draw(7), draw(7)) and not torch.equal(draw(7), draw(8))
    assert torch.equal(torch.get_rng_state(), rng)  # Gaussian bases draw on the generator only

    def latent(t, seed=3):
        return model.prior.sample((4, *SHAPE), generator=torch.Generator().manual_seed(seed), temperature=t)

    if isinstance(lib, nf.NormalizingFlow):
        loc, scale = lib.q0.loc.reshape(-1), lib.q0.log_scale.exp().reshape(-1)
    else:
        loc, scale = lib.base.loc, lib.base.scale
    mean = loc.reshape(1, *SHAPE).expand(4, *SHAPE)
    eps = torch.randn((4, D), generator=torch.Generator().manual_seed(3), dtype=F64)
    torch.testing.assert_close(latent(1.0), (loc + scale * eps).reshape(4, *SHAPE))
    torch.testing.assert_close(latent(0.0), mean)
    torch.testing.assert_close(latent(0.5) - mean, 0.5 * (latent(1.0) - mean))
    torch.testing.assert_close(model.decode(latent(0.0)), model.decode(mean))  # T = 0: the image of the mean
    assert latent(1.0).dtype == F64 and model.sample_latent(3).shape == (3, *SHAPE)


def test_a_non_gaussian_base_samples_reproducibly_under_fork_rng():
    maf = zuko_maf()
    low, high = -torch.ones(D, dtype=F64), 2 * torch.ones(D, dtype=F64)
    base = zuko.flows.UnconditionalDistribution(zuko.distributions.BoxUniform, low, high, buffer=True)
    model = from_zuko(zuko.flows.Flow(maf.transform, base), SHAPE)
    rng = torch.get_rng_state()
    z = [model.sample_latent(64, torch.Generator().manual_seed(s)) for s in (1, 1, 2)]
    assert torch.equal(z[0], z[1]) and not torch.equal(z[0], z[2])
    assert torch.equal(torch.get_rng_state(), rng)
    assert z[0].min() >= -1 and z[0].max() <= 2 and z[0].std() > 0.5
    hot = model.prior.sample((64, *SHAPE), generator=torch.Generator().manual_seed(1), temperature=0.5)
    torch.testing.assert_close(hot - 0.5, 0.5 * (z[0] - 0.5))  # about the mean 0.5
    torch.testing.assert_close(model.prior.log_prob(z[0]), torch.full((64,), -D * math.log(3), dtype=F64))

    mixture = nf.NormalizingFlow(nf.distributions.GaussianMixture(2, D), nf_coupling_blocks().flows).to(F64)
    model = from_normflows(mixture, SHAPE)
    draw = lambda seed: model.sample_latent(8, torch.Generator().manual_seed(seed))  # noqa: E731
    assert torch.equal(draw(4), draw(4)) and not torch.equal(draw(4), draw(5))
    with pytest.raises(FlowganError, match="temperature"):
        model.prior.sample((2, *SHAPE), temperature=0.5)


@pytest.mark.parametrize("case", CASES)
def test_training_steps_move_the_library_parameters_and_lower_the_nll(case):
    model, lib = build(case)
    assert {id(p) for p in model.parameters()} == {id(p) for p in lib.parameters()}
    before = {name: p.detach().clone() for name, p in lib.named_parameters()}
    x = 0.5 + 0.3 * torch.sin(torch.arange(64, dtype=F64)[:, None] + torch.arange(D)).reshape(64, *SHAPE)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(8):
        loss = -model.log_prob(x).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    unchanged = [name for name, p in lib.named_parameters() if torch.equal(p, before[name])]
    assert not unchanged, f"parameters that did not train: {unchanged}"
    if case == "normflows-masked-affine":
        assert {"q0.loc", "q0.log_scale"} <= set(before)  # the trainable base is trained


def test_the_nll_of_uint8_images_uses_flowgans_dequantisation():
    model, _ = build("zuko-maf")
    data = torch.randint(0, 256, (7, *SHAPE), dtype=torch.uint8)
    x = dequantize(data, dequantization_noise(0, 7, SHAPE, 0, F64))
    assert flowgan.nll(model, data) == pytest.approx(-model.log_prob(x).mean().item(), rel=1e-12)


@pytest.mark.parametrize("adapt", [from_zuko, from_normflows])
def test_a_shape_mismatch_is_a_one_line_error(adapt):
    lib = zuko_maf() if adapt is from_zuko else nf_masked_affine()
    with pytest.raises(FlowganError) as err:
        adapt(lib, (1, 3, 3))
    assert "\n" not in str(err.value) and "D = 9" in str(err.value) and "(6,)" in str(err.value)
    for bad in [(1, 6), (1, 3, 0), (1, 3, 2.5), "abc"]:
        with pytest.raises(FlowganError, match=r"\(C, H, W\)"):
            adapt(lib, bad)
    with pytest.raises(FlowganError, match="alpha"):
        adapt(lib, SHAPE, alpha=0.5)


def test_a_base_over_other_features_is_caught_by_the_probe():
    mixture = nf.NormalizingFlow(nf.distributions.GaussianMixture(2, 8), nf_coupling_blocks().flows).to(F64)
    with pytest.raises(FlowganError) as err:
        from_normflows(mixture, SHAPE)
    assert "\n" not in str(err.value) and "D = 6" in str(err.value)


def test_conditional_and_foreign_flows_are_refused():
    with pytest.raises(FlowganError, match="conditional") as err:
        from_zuko(zuko.flows.MAF(features=D, context=2, hidden_features=[16]).to(F64), SHAPE)
    assert "\n" not in str(err.value)
    cond = nf.ConditionalNormalizingFlow(nf.distributions.DiagGaussian(D), nf_coupling_blocks().flows)
    with pytest.raises(FlowganError, match="unconditional"):
        from_normflows(cond, SHAPE)
    with pytest.raises(FlowganError, match="zuko flow"):
        from_zuko(nf_coupling_blocks(), SHAPE)
    with pytest.raises(FlowganError, match="NormalizingFlow"):
        from_normflows(zuko_maf(), SHAPE)


def test_the_probe_leaves_data_dependent_initialisation_alone():
    lib = nf_coupling_blocks()
    actnorm = nf.flows.ActNorm((D,))
    lib.flows.append(actnorm)
    from_normflows(lib, SHAPE)
    assert actnorm.data_dep_init_done.item() == 0 and lib.training


@pytest.mark.parametrize(("adapt", "package"), [(from_zuko, "zuko"), (from_normflows, "normflows")])
def test_a_missing_package_names_the_extra(monkeypatch, adapt, package):
    monkeypatch.setitem(sys.modules, package, None)
    with pytest.raises(FlowganError) as err:
        adapt(object(), SHAPE)
    assert str(err.value) == f"{adapt.__name__} needs {package}: {EXTRA}"


def test_the_adapters_are_public_api():
    assert flowgan.from_zuko is from_zuko and flowgan.from_normflows is from_normflows
    assert {"from_zuko", "from_normflows"} <= set(flowgan.__all__)
