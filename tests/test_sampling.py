"""Sampling as users of flows expect it: the prior's temperature, and latent interpolation
(the function and ``flowgan sample --temperature`` / ``flowgan interpolate``)."""

import math
import shutil

import numpy as np
import pytest
import torch
from helpers import perturb
from PIL import Image

import flowgan
from flowgan.cli import main
from flowgan.errors import CapabilityError, FlowganError
from flowgan.flows.priors import StandardLogistic, StandardNormal
from flowgan.interpolation import interpolate, mix_latents, pair_indices

SHAPE = (1, 8, 8)


def run(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as e:  # argparse usage errors
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err):
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err


@pytest.fixture(scope="module", params=["nice-small", "realnvp-small"])
def model(request):
    """A random, non-trivial flow on 8x8 images (logistic prior for NICE, normal for Real-NVP)."""
    torch.manual_seed(0)
    return perturb(flowgan.build_model(request.param, shape=SHAPE).double(), scale=0.02).eval()


def _old_draw(prior, shape, gen, dtype):
    """The draws of the priors before temperatures existed, computed directly."""
    if isinstance(prior, StandardNormal):
        return torch.randn(shape, generator=gen, dtype=dtype)
    u = torch.rand(shape, generator=gen, dtype=dtype)
    info = torch.finfo(dtype)
    u = u.clamp(info.tiny, 1.0 - info.eps)
    return torch.log(u) - torch.log1p(-u)


# ----------------------------------------------------------------------------- temperature


@pytest.mark.parametrize("prior, std1", [(StandardNormal(), 1.0), (StandardLogistic(), math.pi / math.sqrt(3))])
@pytest.mark.parametrize("temperature", [0.25, 0.7, 1.5])
def test_temperature_scales_the_prior(prior, std1, temperature):
    z1 = prior.sample((400_000,), generator=torch.Generator().manual_seed(1))
    zt = prior.sample((400_000,), generator=torch.Generator().manual_seed(1), temperature=temperature)
    assert torch.equal(zt, z1 * temperature)  # the same random stream, scaled
    assert float(zt.std()) == pytest.approx(temperature * std1, rel=0.01)
    assert abs(float(zt.mean())) < 0.01 * temperature * std1


@pytest.mark.parametrize("prior", [StandardNormal(), StandardLogistic()])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_temperature_one_is_bit_identical_to_the_old_draws(prior, dtype):
    old = _old_draw(prior, (5, 3, 4), torch.Generator().manual_seed(7), dtype)
    for kwargs in ({}, {"temperature": 1.0}, {"temperature": 1}):
        new = prior.sample((5, 3, 4), generator=torch.Generator().manual_seed(7), dtype=dtype, **kwargs)
        assert torch.equal(new, old)


def test_model_samples_at_temperature_one_are_the_old_samples(model):
    gen = torch.Generator().manual_seed(3)
    z_old = _old_draw(model.prior, (6, *SHAPE), gen, torch.float64)
    x_old = model.decode(_old_draw(model.prior, (6, *SHAPE), gen, torch.float64)).clamp(0, 1)
    gen = torch.Generator().manual_seed(3)
    assert torch.equal(model.sample_latent(6, gen), z_old)
    assert torch.equal(model.sample(6, gen, temperature=1.0), x_old)
    gen = torch.Generator().manual_seed(3)
    assert torch.equal(model.sample_latent(6, generator=gen, temperature=0.5), 0.5 * z_old)


def test_temperature_zero_gives_the_image_of_the_mode(model):
    with torch.no_grad():
        x = model.sample(3, torch.Generator().manual_seed(0), temperature=0.0)
        mode = model.decode(torch.zeros(1, *SHAPE, dtype=torch.float64)).clamp(0, 1)
    assert torch.equal(model.sample_latent(3, temperature=0), torch.zeros(3, *SHAPE, dtype=torch.float64))
    torch.testing.assert_close(x, mode.expand(3, *SHAPE), rtol=0, atol=1e-12)  # batch sizes differ: float error


@pytest.mark.parametrize("bad", [-1.0, -1e-12, math.nan, math.inf, -math.inf, "warm"])
def test_bad_temperatures_are_a_one_line_value_error(model, bad):
    for draw in (lambda: model.prior.sample((2, 3), temperature=bad), lambda: model.sample(2, temperature=bad)):
        with pytest.raises(ValueError, match="temperature must be a finite number >= 0") as e:
            draw()
        assert "\n" not in str(e.value)


# ----------------------------------------------------------------------------- interpolation


def _images(seed):
    gen = torch.Generator().manual_seed(seed)
    return 0.3 + 0.4 * torch.rand(2, *SHAPE, generator=gen, dtype=torch.float64)  # well inside (0, 1)


def test_interpolation_starts_and_ends_at_the_inputs(model):
    x0, x1 = _images(0)
    for path in ("linear", "slerp"):
        out = interpolate(model, x0, x1[None], 6, path=path)  # (C, H, W) and (1, C, H, W) inputs
        assert out.shape == (6, *SHAPE) and out.dtype == torch.float64
        assert 0 <= float(out.min()) and float(out.max()) <= 1
        torch.testing.assert_close(out[0], x0, rtol=0, atol=1e-9)
        torch.testing.assert_close(out[-1], x1, rtol=0, atol=1e-9)
        assert float((out[1:-1] - out[:1]).abs().max()) > 1e-4  # it moves


def test_interpolation_mixes_the_latents_linearly(model):
    x0, x1 = _images(1)
    out = interpolate(model, x0, x1, steps=3)
    assert 0 < float(out[1].min()) and float(out[1].max()) < 1  # no clamping at the midpoint
    with torch.no_grad():
        z = model.encode(torch.stack([x0, x1]))
        torch.testing.assert_close(model.encode(out[1:2])[0], z.mean(0), rtol=0, atol=1e-8)
    five = interpolate(model, x0, x1, steps=5)
    torch.testing.assert_close(five[2], out[1], rtol=0, atol=1e-10)  # t = 1/2 in both


def test_slerp_keeps_the_norm_between_orthogonal_latents():
    z0 = torch.tensor([[3.0, 0.0]], dtype=torch.float64)
    z1 = torch.tensor([[0.0, 3.0]], dtype=torch.float64)
    zs = mix_latents(z0, z1, 5, "slerp")
    torch.testing.assert_close(zs.norm(dim=1), torch.full((5,), 3.0, dtype=torch.float64))
    torch.testing.assert_close(zs[2], torch.tensor([3.0, 3.0], dtype=torch.float64) / math.sqrt(2))
    assert torch.equal(zs[0], z0[0]) and torch.equal(zs[-1], z1[0])
    torch.testing.assert_close(mix_latents(z0, z0, 3, "slerp"), z0.expand(3, 2))  # parallel: linear


def test_interpolation_needs_encode_and_decode():
    class DecodeOnly:
        def decode(self, z):
            return z

    for obj, missing in ((object(), "encode"), (DecodeOnly(), "encode"), (type("E", (), {"encode": 1})(), "encode")):
        with pytest.raises(CapabilityError) as e:
            interpolate(obj, torch.rand(*SHAPE), torch.rand(*SHAPE))
        assert isinstance(e.value, FlowganError) and "\n" not in str(e.value)
        assert f"{type(obj).__name__} has no {missing}" in str(e.value)
    assert flowgan.interpolate is interpolate and flowgan.CapabilityError is CapabilityError


def test_interpolation_refuses_bad_input(model):
    x0, x1 = _images(2)
    for kwargs, match in (
        (dict(steps=1), "steps must be an integer >= 2"),
        (dict(path="cubic"), "unknown interpolation path"),
        (dict(x0=x0 * 2), r"x0 must be in \[0, 1\]"),
        (dict(x1=(x1 * 255).to(torch.uint8)), "floating-point"),
        (dict(x1=x1[:, :4]), "same shape"),
    ):
        args = {"x0": x0, "x1": x1, "steps": 3, **kwargs}
        with pytest.raises(ValueError, match=match):
            interpolate(model, args.pop("x0"), args.pop("x1"), **args)
    model.train()
    try:
        interpolate(model, x0, x1, 3)
        assert all(m.training for m in model.modules())  # evaluated in eval mode, mode restored
    finally:
        model.eval()


def test_pairs_are_fixed_by_the_seed_and_distinct():
    a, b = pair_indices(10, 5, seed=0)
    assert (a, b) == pair_indices(10, 5, seed=0) and (a, b) != pair_indices(10, 5, seed=1)
    assert len(set(a + b)) == 10
    with pytest.raises(ValueError, match="3 pairs need 6 images"):
        pair_indices(5, 3, seed=0)


# ----------------------------------------------------------------------------- the commands


@pytest.fixture
def digit_run(two_digit_runs, tmp_path):
    """A copy of the short digits run (the commands write beside it by default)."""
    return shutil.copytree(two_digit_runs[0], tmp_path / "run")


def _all_tiles_equal(png) -> bool:
    """Whether the four 8x8 images of a 2x2 grid of ``save_grid`` (padding 2, enlarged 2x) are equal."""
    a = np.asarray(Image.open(png))
    tiles = [a[2 * (2 + 10 * r) :][:16, 2 * (2 + 10 * q) :][:, :16] for r in range(2) for q in range(2)]
    return all(np.array_equal(t, tiles[0]) for t in tiles)


def test_sample_with_a_temperature(capsys, digit_run, tmp_path):
    code, out, _ = run(capsys, "sample", str(digit_run), "-n", "4", "--temperature", "0.7")
    expected = digit_run / "samples" / "sample_best_nll_n4_seed0_T0.7.png"
    assert code == 0 and expected.is_file() and str(expected) in out
    code, _, _ = run(capsys, "sample", str(digit_run), "-n", "4", "--temperature", "0", "-o", str(tmp_path / "0.png"))
    assert code == 0 and Image.open(tmp_path / "0.png").size == Image.open(expected).size
    assert _all_tiles_equal(tmp_path / "0.png") and not _all_tiles_equal(expected)  # T = 0: four times decode(0)
    for bad in ("-1", "nan", "inf"):
        code, _, err = run(capsys, "sample", str(digit_run), "-n", "4", "--temperature", bad)
        assert_one_line_error(code, err)
        assert f"argument --temperature: must be >= 0, got {bad}" in err


def test_interpolate_writes_a_figure(capsys, digit_run, tmp_path):
    code, out, _ = run(
        capsys, "interpolate", str(digit_run), "--pairs", "3", "--steps", "4", "-o", str(tmp_path / "i.png")
    )
    assert code == 0 and str(tmp_path / "i.png") in out
    img = Image.open(tmp_path / "i.png")
    # save_grid: 2-pixel padding, 2x enlargement; a row is x0, 4 steps, x1 of 8x8 digits
    assert img.size == (2 * ((4 + 2) * (8 + 2) + 2), 2 * (3 * (8 + 2) + 2)) and img.mode == "L"
    code, out, _ = run(capsys, "interpolate", str(digit_run), "--pairs", "2", "--path", "slerp")
    default = digit_run / "samples" / "interpolate_best_nll_test_p2_s10_seed0_slerp.png"
    assert code == 0 and default.is_file() and str(default) in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--pairs", "0"], "argument --pairs: must be >= 1, got 0"),
        (["--steps", "1"], "argument --steps: must be in [2, 256], got 1"),
        (["--checkpoint", "nope"], "no checkpoint 'nope'"),
        (["--pairs", "1000"], "1000 pairs need 2000 images"),
    ],
)
def test_interpolate_refuses_bad_input_in_one_line(capsys, digit_run, argv, message):
    code, _, err = run(capsys, "interpolate", str(digit_run), *argv)
    assert_one_line_error(code, err)
    assert message in err


def test_scores_at_a_sampling_temperature():
    """``evaluate_samples(..., temperature=T)`` scores the samples ``model.sample(temperature=T)``
    draws with the same fixed per-block generators; T = 1 is the default path."""
    from flowgan.data import load_dataset
    from flowgan.metrics import evaluate_samples
    from flowgan.metrics.sampling import mix_seed, sample_blocks

    model = perturb(flowgan.build_model("nice-small", shape=(1, 28, 28)), scale=0.05).eval()
    cold = torch.cat(list(sample_blocks(model, 300, 0, 200, temperature=0.5)))
    ref = [model.sample(n, generator=torch.Generator().manual_seed(mix_seed(0, b, 11)), temperature=0.5) for b, n in
           enumerate((200, 100))]  # fmt: skip
    torch.testing.assert_close(cold, torch.cat(ref).float(), rtol=0, atol=0)
    warm = torch.cat(list(sample_blocks(model, 300, 0, 200)))
    torch.testing.assert_close(warm, torch.cat(list(sample_blocks(model, 300, 0, 200, temperature=1.0))))
    assert (cold - warm).abs().max() > 1e-3
    ds = load_dataset("mnist5k")
    at_half = evaluate_samples(model, ds, ["is"], n_samples=300, temperature=0.5)
    at_one = evaluate_samples(model, ds, ["is"], n_samples=300)
    assert at_half["temperature"] == 0.5 and "temperature" not in at_one and at_half["is"] != at_one["is"]
