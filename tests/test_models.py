"""Whole models: the public API, round trip and log-det of the paper configurations."""

import math

import pytest
import torch
from helpers import brute_force_logdet, perturb

import flowgan
from flowgan.models import MODELS, model_config

# Small shapes keep the brute-force Jacobian cheap; the paper models keep their full width/depth.
CASES = {
    "nice-mnist": dict(shape=(1, 28, 28)),
    "nice-small": dict(shape=(1, 6, 6)),
    "nice-small-unnormalised": dict(shape=(1, 6, 6), norm="none"),
    "realnvp-cifar10": dict(shape=(3, 8, 8)),
    "realnvp-small": dict(shape=(1, 4, 4)),
    "realnvp-small-actnorm": dict(shape=(2, 4, 4), flow_norm="actnorm", norm="none"),
    "realnvp-small-batchnorm-3-scales": dict(shape=(1, 8, 8), flow_norm="batch", scales=3),
    "glow-cifar10": dict(shape=(3, 8, 8), steps=2, hidden=8),  # 3 levels, as the paper's
    "glow-mnist": dict(shape=(1, 4, 4), steps=2, hidden=8),
    "glow-small": dict(shape=(1, 4, 4)),
    "glow-small-plain-1x1-one-level": dict(shape=(2, 2, 2), levels=1, lu=False),
    "glow-small-no-scale-floor": dict(shape=(1, 4, 4), scale_floor=0.0),  # Glow's own coupling
}


def _build(case):
    overrides = dict(CASES[case])
    name = next(m for m in sorted(MODELS, key=len, reverse=True) if case.startswith(m))
    model = flowgan.build_model(name, **overrides)
    if overrides.get("flow_norm") == "actnorm" or name.startswith("glow"):  # data-dependent init, then perturb
        model.train()
        model.log_prob(0.1 + 0.8 * torch.rand(8, *model.shape))
    perturb(model, scale=0.02)
    return model.eval()


def _images(model, n=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return 0.02 + 0.96 * torch.rand((n, *model.shape), generator=gen)


def test_every_named_model_is_covered():
    assert set(MODELS) <= set(CASES)


@pytest.mark.parametrize("case", sorted(CASES))
def test_round_trip(case):
    model = _build(case)
    x = _images(model, n=4)
    z = model.encode(x)
    assert z.shape == x.shape
    assert torch.allclose(model.decode(z), x, atol=1e-9)


@pytest.mark.parametrize("case", sorted(CASES))
def test_log_prob_matches_brute_force_change_of_variables(case):
    model = _build(case)
    x = _images(model)
    z = model.encode(x)
    expected = model.prior.log_prob(z) + brute_force_logdet(model.encode, x)
    assert torch.allclose(model.log_prob(x), expected, atol=1e-7, rtol=1e-10)


@pytest.mark.parametrize("case", sorted(CASES))
def test_generator_logdet_cancels_flow_logdet(case):
    model = _build(case)
    z = model.encode(_images(model))
    x = model.decode(z)
    _, logdet_f = model.flow(x)
    brute = brute_force_logdet(model.decode, z)
    assert torch.allclose(brute, -logdet_f, atol=1e-7, rtol=1e-10)
    x2, logdet_g = model.decode_and_logdet(z)
    assert torch.allclose(x2, x) and torch.allclose(logdet_g, brute, atol=1e-7, rtol=1e-10)


def test_paper_architectures():
    nice = model_config("nice-mnist")
    assert (nice.couplings, nice.hidden, nice.depth, nice.prior, nice.alpha) == (4, 1000, 5, "logistic", 1e-7)
    model = flowgan.build_model("nice-mnist")
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 4 * 7
    assert [(m.in_features, m.out_features) for m in linears[:7]] == [(392, 1000)] + [(1000, 1000)] * 5 + [(1000, 392)]
    rnvp = model_config("realnvp-cifar10")
    assert (rnvp.scales, rnvp.channels, rnvp.blocks, rnvp.prior) == (2, 64, 8, "normal")
    couplings = [m for m in flowgan.build_model("realnvp-cifar10").modules() if type(m).__name__ == "AffineCoupling"]
    assert len(couplings) == 3 + 3 + 4


def test_public_api_shapes_and_ranges():
    model = flowgan.build_model("nice-small", shape=(1, 8, 8))
    assert model.shape == (1, 8, 8)
    x = _images(model, n=5)
    assert model.log_prob(x).shape == (5,)
    s = model.sample(7, generator=torch.Generator().manual_seed(0))
    assert s.shape == (7, 1, 8, 8) and s.min() >= 0 and s.max() <= 1
    with pytest.raises(ValueError, match="shape"):
        model.log_prob(torch.rand(2, 1, 9, 9))


def test_sample_and_decode_are_differentiable():
    model = perturb(flowgan.build_model("realnvp-small", shape=(1, 4, 4)), 0.05).eval()
    model.sample(4).sum().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)


def test_double_and_state_dict_round_trip():
    model = perturb(flowgan.build_model("realnvp-small", shape=(3, 4, 4)), 0.05).float().eval()
    x = _images(model).float()
    twin = flowgan.model_from_spec(model.spec).float()
    twin.load_state_dict(model.state_dict())
    twin.eval()
    assert torch.equal(twin.log_prob(x), model.log_prob(x))
    assert model.double().log_prob(x.double()).dtype == torch.float64


def test_unknown_names_and_options_are_rejected():
    with pytest.raises(ValueError, match="unknown model"):
        flowgan.build_model("dcgan")
    with pytest.raises(ValueError, match="no option"):
        flowgan.build_model("nice-small", widht=3)
    with pytest.raises(ValueError, match="divisible"):
        flowgan.build_model("realnvp-small", shape=(1, 5, 5))


def test_fresh_models_start_near_uniform():
    # Zero-initialised couplings: a fresh NICE is logit + diagonal scaling(0) + logistic prior,
    # i.e. exactly the uniform density on [0, 1]^D: log p = D log(1 - 2a).
    model = flowgan.build_model("nice-small", shape=(1, 4, 4))
    expected = 16 * math.log1p(-2e-7)
    assert torch.allclose(model.log_prob(_images(model)), torch.full((2,), expected), atol=1e-9)


def test_forward_returns_log_prob_and_decoded_latents():
    model = perturb(flowgan.build_model("nice-small", shape=(1, 4, 4)), 0.05).eval()
    x, z = _images(model), torch.randn(3, 1, 4, 4)
    lp, fake = model(x=x, z=z)
    assert torch.equal(lp, model.log_prob(x)) and torch.equal(fake, model.decode(z))
    assert model(x=x)[1] is None and model(z=z)[0] is None


def test_a_glow_checkpoint_from_before_the_scale_floor_loads_as_it_was_trained(tmp_path):
    """A version-2 spec (written before ``scale_floor``) means Glow's coupling without a floor."""
    from flowgan.checkpoint import atomic_save, load_model
    from flowgan.flows import GlowCoupling

    old = _build("glow-small-no-scale-floor")
    spec = {"name": "glow-small", "overrides": {"shape": [1, 4, 4]}, "version": 2}
    ckpt = {"format": "flowgan-checkpoint", "version": 1, "model_spec": spec, "model": old.state_dict(), "step": 3}
    atomic_save(ckpt, tmp_path / "old.pt")
    model, _ = load_model(tmp_path / "old.pt")
    assert {m.scale_floor for m in model.modules() if isinstance(m, GlowCoupling)} == {0.0}
    x = _images(model, n=3)
    # loaded as float32, then widened: equal up to float32 rounding of the weights
    torch.testing.assert_close(model.double().eval().log_prob(x), old.log_prob(x), rtol=1e-6, atol=1e-5)
    new = flowgan.build_model("glow-small", shape=(1, 4, 4))
    assert {m.scale_floor for m in new.modules() if isinstance(m, GlowCoupling)} == {0.05}
    new.load_state_dict(old.state_dict())  # the same weights with today's floor: another density
    assert (new.eval().log_prob(x) - old.log_prob(x)).abs().min() > 0.1
