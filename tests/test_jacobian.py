"""Exact Jacobian spectra of the generator (§5.1, Figure 4)."""

import math

import pytest
import torch
from helpers import perturb

import flowgan
from flowgan.analysis.jacobian import (
    flow_logdet_at,
    generator_jacobians,
    jacobian_spectra,
    singular_values,
    supports_coupling_method,
)


def _nice(shape=(1, 6, 6), scale=0.1, seed=0):
    return perturb(flowgan.build_model("nice-small", shape=shape), scale, seed).eval()


def _brute_force(model, z):
    """Reference: torch.autograd.functional.jacobian of G, one sample at a time (float64)."""
    m = model.double()
    out = []
    for zi in z.double():
        out.append(
            torch.autograd.functional.jacobian(lambda v: m.decode(v.reshape(1, *zi.shape)).reshape(-1), zi.reshape(-1))
        )
    return torch.stack(out)


@pytest.mark.parametrize("method", ["coupling", "autograd"])
def test_jacobians_equal_brute_force(method):
    model = _nice()
    z = model.sample_latent(4).double()
    reference = _brute_force(model, z)
    jac, used = generator_jacobians(model, z, dtype=torch.float64, method=method)
    assert used == method and jac.dtype == torch.float64 and jac.shape == (4, 36, 36)
    torch.testing.assert_close(jac, reference, rtol=1e-10, atol=1e-12)


def _with_batch_statistics(model, seed=1):
    """The coupling networks' batch norms with running statistics, gain and shift away from 1 and 0."""
    from flowgan.nets import ScalarBatchNorm

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, ScalarBatchNorm):
                m.running_mean.fill_(float(torch.randn((), generator=gen)))
                m.running_var.fill_(float(torch.rand((), generator=gen)) + 0.5)
                m.gain.fill_(float(torch.rand((), generator=gen)) + 0.5)
                m.shift.fill_(float(torch.randn((), generator=gen)))
    return model


def test_the_layerwise_jacobian_folds_the_coupling_batch_norm():
    model = _with_batch_statistics(_nice())
    z = model.sample_latent(3).double()
    reference = _brute_force(model, z)
    jac, used = generator_jacobians(model, z, dtype=torch.float64, method="coupling")
    assert used == "coupling"
    torch.testing.assert_close(jac, reference, rtol=1e-10, atol=1e-12)
    from flowgan.analysis.mlp_jacobian import is_layerwise_mlp
    from flowgan.nets import MLP

    nets = [m for m in model.modules() if isinstance(m, MLP)]
    assert nets and all(is_layerwise_mlp(net) for net in nets)  # the pushed-forward path, not vmap(jacfwd)


def test_coupling_method_applies_to_nice_only():
    assert supports_coupling_method(flowgan.build_model("nice-small", shape=(1, 4, 4)))
    assert not supports_coupling_method(flowgan.build_model("realnvp-small", shape=(1, 4, 4)))
    with pytest.raises(ValueError):
        generator_jacobians(
            flowgan.build_model("realnvp-small", shape=(1, 4, 4)), torch.zeros(1, 1, 4, 4), method="coupling"
        )


def test_logdet_from_singular_values_equals_the_flows_logdet():
    """Σ log s_i of ∂G/∂z = −log|det ∂f/∂x| at x = G(z): float64 to 1e-8, float32 Jacobian to 1e-3."""
    model = _nice(shape=(1, 8, 8), scale=0.05)
    exact = jacobian_spectra(model, 6, seed=1, dtype=torch.float64)
    assert exact.method == "coupling" and torch.isfinite(exact.logdet).all()
    torch.testing.assert_close(exact.logdet, exact.logdet_flow, rtol=0, atol=1e-8)
    fast = jacobian_spectra(model.float(), 6, seed=1, dtype=torch.float32)
    assert fast.summary()["max_abs_logdet_diff"] < 1e-3
    # the spectrum is not trivial: the generator squeezes some directions and stretches others
    s = exact.singular_values
    assert (s[:, 1:] <= s[:, :-1]).all() and (s > 0).all()
    assert float(torch.log10(s[:, 0] / s[:, -1]).min()) > 1.0


def test_fully_saturated_pixels_give_zero_singular_values_not_nan():
    model = _nice(shape=(1, 4, 4), scale=1.0)  # huge weights: some σ'(h) underflow even in float64
    spectra = jacobian_spectra(model, 3, dtype=torch.float64)
    s = spectra.summary()
    assert not torch.isnan(spectra.singular_values).any()
    assert s["zero_singular_values"] > 0 and s["mean_logdet"] == -math.inf


def test_logdet_check_on_real_nvp_via_autograd():
    model = perturb(flowgan.build_model("realnvp-small", shape=(1, 4, 4)), 0.05).eval()
    spectra = jacobian_spectra(model, 3, dtype=torch.float64)
    assert spectra.method == "autograd"
    torch.testing.assert_close(spectra.logdet, spectra.logdet_flow, rtol=0, atol=1e-8)


def test_generator_includes_the_sigmoid():
    """A flow that is just the logit step: G(z) = (σ(z) − a)/(1 − 2a), a diagonal Jacobian with
    entries σ'(z)/(1 − 2a); its singular values are those entries, sorted."""
    from flowgan import flows as F
    from flowgan.models import FlowModel

    a = 1e-3
    model = FlowModel(
        F.FlowSequence(F.Logit(a), F.Reshape((1, 2, 3), (6,)), F.DiagonalScaling((6,)), F.Reshape((6,), (1, 2, 3))),
        F.StandardLogistic(),
        (1, 2, 3),
    )
    z = torch.tensor([[-30.0, -5.0, 0.0, 1.0, 5.0, 40.0]]).reshape(1, 1, 2, 3)
    spectra = jacobian_spectra(model, z=z, dtype=torch.float32)
    deriv = torch.sigmoid(z.double()) * torch.sigmoid(-z.double()) / (1 - 2 * a)
    torch.testing.assert_close(
        spectra.singular_values[0], deriv.reshape(-1).sort(descending=True).values, rtol=1e-12, atol=0
    )
    # saturated pixels (z = -30, 40) give tiny singular values, kept exactly (float64 row scaling)
    assert spectra.singular_values.min() < 1e-16
    assert spectra.logdet[0].item() == pytest.approx(float(torch.log(deriv).sum()), rel=1e-12)


def test_parallel_singular_values_equal_serial():
    jac = torch.randn(5, 20, 20, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(singular_values(jac, threads=2), singular_values(jac, threads=1), rtol=1e-13, atol=0)
    torch.testing.assert_close(singular_values(jac, threads=1, method="svd"), torch.linalg.svdvals(jac))
    torch.testing.assert_close(singular_values(jac, threads=2, method="svd"), torch.linalg.svdvals(jac))


def _with_condition(kappa, d=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    s = torch.logspace(0, -math.log10(kappa), d, dtype=torch.float64)
    return (u * s) @ v.T, s


@pytest.mark.parametrize("kappa", [1e2, 8e3])
def test_gram_path_is_accurate_for_well_conditioned_matrices(kappa):
    jac, s = _with_condition(kappa)
    values = singular_values(jac.unsqueeze(0), threads=1)
    # taken from the eigenvalues of JᵀJ: "auto" gives exactly what the forced Gram path gives
    assert torch.equal(values, singular_values(jac.unsqueeze(0), threads=1, method="gram"))
    rel = ((values[0] - s) / s).abs().max()
    assert rel < 1e-6 if kappa < 1e3 else rel < 1e-5


def test_ill_conditioned_matrices_take_the_svd():
    jac, s = _with_condition(1e9)
    values = singular_values(jac.unsqueeze(0), threads=1)
    assert torch.equal(values[0], torch.linalg.svdvals(jac))  # "auto" fell back to LAPACK's SVD
    assert ((values[0] - s) / s).abs().max() < 1e-5  # the SVD keeps relative accuracy here
    gram = singular_values(jac.unsqueeze(0), threads=1, method="gram")
    assert ((gram[0] - s) / s).abs().max() > 1e-2  # what squaring would have cost


def test_spectra_count_the_samples_taken_from_the_gram_matrix():
    """A NICE generator near the identity is well conditioned: every sample takes the Gram path,
    and forcing the SVD gives the same spectrum within the Gram path's accuracy."""
    model = _nice(scale=0.01)
    auto = jacobian_spectra(model, 3, seed=0, dtype=torch.float64)
    svd = jacobian_spectra(model, 3, seed=0, dtype=torch.float64, svd="svd")
    assert auto.summary()["singular_values_from_gram"] == 3 and svd.summary()["singular_values_from_gram"] == 0
    torch.testing.assert_close(auto.singular_values, svd.singular_values, rtol=1e-6, atol=0)


def test_summary_is_json_ready_and_sane():
    import json

    spectra = jacobian_spectra(_nice(), 4, seed=0)
    s = spectra.summary()
    json.dumps(s)
    assert s["n_samples"] == 4 and s["dim"] == 36 and s["zero_singular_values"] == 0
    q = list(s["log10_singular_value_quantiles"].values())
    assert q == sorted(q) and s["log10_singular_value_min"] <= q[0] and q[-1] <= s["log10_singular_value_max"]
    assert s["mean_logdet"] == pytest.approx(float(spectra.logdet.mean()))
    assert s["mean_log_singular_value"] == pytest.approx(s["mean_logdet"] / 36)
    assert math.isfinite(s["mean_logdet_flow"]) and set(s["seconds"]) == {"jacobian", "svd", "check", "total"}


def test_flow_logdet_at_matches_log_prob_identity():
    """−log|det ∂f/∂x| at G(z) = log p_Z(z) − log p(G(z)) (change of variables)."""
    model = _nice().double()
    z = model.sample_latent(3)
    x = model.decode(z)
    expected = model.prior.log_prob(model.encode(x)) - model.log_prob(x)
    torch.testing.assert_close(flow_logdet_at(model, z), expected, rtol=1e-10, atol=1e-10)
