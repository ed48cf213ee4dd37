"""Sampling as users of flows expect it: the prior's temperature (``flowgan sample --temperature``)."""

import math
import shutil

import numpy as np
import pytest
import torch
from helpers import perturb
from PIL import Image

import flowgan
from flowgan.cli import main
from flowgan.flows.priors import StandardLogistic, StandardNormal

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
        assert "--temperature must be a finite number >= 0" in err
