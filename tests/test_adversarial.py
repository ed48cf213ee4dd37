"""Adversarial and hybrid training: losses against their formulas, gradients, NaN handling, resume."""

import math

import numpy as np
import pytest
import torch
from helpers import perturb
from torch import nn

import flowgan
from flowgan.checkpoint import load_checkpoint
from flowgan.config import PRESETS, TrainConfig, resolve_config
from flowgan.critics import build_critic
from flowgan.data import load_dataset
from flowgan.errors import NonFiniteError
from flowgan.objectives import LOSSES, Adversarial, MaximumLikelihood, gradient_penalty
from flowgan.rundir import read_metrics
from flowgan.training import Trainer


class LinearCritic(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.w = nn.Parameter(torch.linspace(-1, 1, math.prod(shape)).reshape(shape))
        self.b = nn.Parameter(torch.tensor(0.3))

    def forward(self, x):
        return (x * self.w).flatten(1).sum(1) + self.b


class QuadraticCritic(nn.Module):
    """D(x) = c·‖x‖²: ∇D(x) = 2c·x, so the per-sample gradient norm is 2|c|·‖x‖ over ALL axes."""

    def __init__(self, c):
        super().__init__()
        self.c = nn.Parameter(torch.tensor(float(c)))

    def forward(self, x):
        return self.c * (x**2).flatten(1).sum(1)


class FixedLogits(nn.Module):
    """A critic that returns given logits for real and fake inputs (told apart by their sign)."""

    def __init__(self, real, fake):
        super().__init__()
        self.real, self.fake = real, fake

    def forward(self, x):
        return self.real if x.flatten(1)[0, 0] > 0 else self.fake


def test_gradient_penalty_of_a_linear_critic_is_known():
    shape = (2, 3, 3)
    critic = LinearCritic(shape)
    real, fake = torch.rand(5, *shape), torch.rand(5, *shape)
    gp = gradient_penalty(critic, real, fake, torch.rand(5))
    expected = (critic.w.detach().norm() - 1) ** 2  # ∇D = w everywhere
    assert gp.item() == pytest.approx(expected.item(), rel=1e-12)


def test_gradient_penalty_norm_is_per_sample_over_all_pixels_and_channels():
    c = 0.7
    critic = QuadraticCritic(c)
    real, fake, alpha = torch.rand(4, 3, 2, 2), torch.rand(4, 3, 2, 2), torch.rand(4)
    x_hat = real + alpha.view(-1, 1, 1, 1) * (fake - real)
    norms = 2 * c * x_hat.flatten(1).norm(dim=1)
    expected = ((norms - 1) ** 2).mean()
    gp = gradient_penalty(critic, real, fake, alpha)
    assert gp.item() == pytest.approx(expected.item(), rel=1e-12)
    gp.backward()  # differentiable w.r.t. the critic's parameters
    assert critic.c.grad is not None and critic.c.grad != 0


# the original code's formulas, written out in numpy: (critic real term, critic fake term, generator)
FORMULAS = {
    "wgan-gp": (lambda r: -r, lambda f: f, lambda f: -f),
    "ce": (lambda r: np.log1p(np.exp(-r)), lambda f: np.log1p(np.exp(f)), lambda f: np.log1p(np.exp(-f))),
    "kl": (lambda r: -r, lambda f: np.exp(f - 1), lambda f: -f),
    "rkl": (lambda r: np.exp(r), lambda f: -f - 1, lambda f: f + 1),
    "hellinger": (lambda r: np.exp(-r), lambda f: np.exp(f) - 2, lambda f: np.exp(-f)),
    "tv": (lambda r: -0.5 * np.tanh(r), lambda f: 0.5 * np.tanh(f), lambda f: -0.5 * np.tanh(f)),
    "lsgan": (lambda r: 0.5 * (r - 1) ** 2, lambda f: 0.5 * f**2, lambda f: 0.5 * (f - 1) ** 2),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_adversarial_losses_equal_their_formulas(name):
    assert set(FORMULAS) == set(LOSSES)
    real_logits, fake_logits = torch.tensor([-1.5, 0.2, 2.0]), torch.tensor([0.7, -0.3, -2.2])
    critic = FixedLogits(real_logits, fake_logits)

    class Gen(nn.Module):  # G(z) = -1 (fake images are negative), log p(x) = 0
        def decode(self, z):
            return -torch.ones_like(z)

        def forward(self, x=None, z=None):
            return (None if x is None else torch.zeros(len(x))), (None if z is None else self.decode(z))

    real, z = torch.ones(3, 1, 2, 2), torch.zeros(3, 1, 2, 2)
    obj = Adversarial(name, gp_weight=0.0)
    d_loss, _ = obj.critic_loss(Gen(), critic, real, z, torch.rand)
    g_loss, _ = obj.generator_loss(Gen(), critic, real, z, torch.rand)
    f_real, f_fake, f_gen = FORMULAS[name]
    r, f = real_logits.numpy(), fake_logits.numpy()
    assert d_loss.item() == pytest.approx(f_real(r).mean() + f_fake(f).mean(), rel=1e-12)
    assert g_loss.item() == pytest.approx(f_gen(f).mean(), rel=1e-12)


def test_hybrid_gradient_is_adv_plus_lambda_mle():
    model = perturb(flowgan.build_model("nice-small", shape=(1, 8, 8)), 0.05)
    critic = build_critic("dcgan-small", (1, 8, 8))
    gen = torch.Generator().manual_seed(3)
    real = 0.02 + 0.96 * torch.rand(6, 1, 8, 8, generator=gen)
    z = model.prior.sample((6, 1, 8, 8), generator=gen, dtype=torch.float64)
    lam = 0.3

    def grads(objective):
        model.zero_grad()
        loss, _ = objective.generator_loss(model, critic, real, z, torch.rand)
        loss.backward()
        return [p.grad.clone() for p in model.parameters()]

    adv = grads(Adversarial("wgan-gp", lam=0.0))
    mle = grads(MaximumLikelihood())
    hybrid = grads(Adversarial("wgan-gp", lam=lam))
    assert any(g.abs().sum() > 0 for g in adv)
    for a, m, h in zip(adv, mle, hybrid):
        assert torch.allclose(h, a + lam * m, atol=1e-10, rtol=1e-9)


def test_every_named_model_has_a_default_critic_of_its_size():
    from flowgan.critics import default_critic
    from flowgan.models import MODELS

    assert default_critic((1, 28, 28), "nice-mnist") == "dcgan-mnist"
    assert default_critic((1, 28, 28), "nice-small") == "dcgan-small"
    assert default_critic((3, 32, 32), "realnvp-cifar10") == "dcgan-cifar10"
    assert default_critic((3, 32, 32), "realnvp-small") == "dcgan-cifar10-small"
    for name in MODELS:
        default_critic((1, 28, 28), name)  # no model without one
    with pytest.raises(ValueError, match="--critic"):
        default_critic((1, 28, 28), "my-small-flow")  # no guessing from the name


def test_critics_have_the_paper_architecture_and_no_batch_norm():
    mnist = build_critic("dcgan-mnist", (1, 28, 28))
    convs = [m for m in mnist.modules() if isinstance(m, nn.Conv2d)]
    shapes = [(c.in_channels, c.out_channels, c.kernel_size, c.stride) for c in convs]
    assert shapes == [(1, 1, (5, 5), (2, 2)), (1, 64, (5, 5), (2, 2))]
    linears = [m for m in mnist.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(64 * 7 * 7, 1024), (1024, 1)]
    cifar = build_critic("dcgan-cifar10", (3, 32, 32))
    assert [c.out_channels for c in cifar.modules() if isinstance(c, nn.Conv2d)] == [64, 128, 256, 512]
    assert len([m for m in cifar.modules() if isinstance(m, nn.LayerNorm)]) == 4
    for critic in (mnist, cifar):
        assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in critic.modules())
        assert all(m.negative_slope == 0.2 for m in critic.modules() if isinstance(m, nn.LeakyReLU))
    assert cifar(torch.rand(2, 3, 32, 32)).shape == (2,)


def test_presets_carry_the_papers_hyperparameters():
    adv, hybrid = resolve_config("mnist-adv"), resolve_config("mnist-hybrid")
    assert (adv.model, adv.lr, adv.beta1, adv.beta2, adv.batch_size, adv.n_critic, adv.lam) == (
        "nice-mnist",
        1e-4,
        0.5,
        0.9,
        100,
        5,
        0.0,
    )
    assert hybrid.lam == 0.1 and hybrid.objective == "wgan-gp"
    c_hybrid = resolve_config("cifar10-hybrid")
    assert (c_hybrid.model, c_hybrid.lam, c_hybrid.lr, c_hybrid.lr_decay, c_hybrid.batch_size) == (
        "realnvp-cifar10",
        1.0,
        1e-3,
        0.99999,
        64,
    )
    c_adv = resolve_config("cifar10-adv")
    assert (c_adv.lr, c_adv.beta1) == (1e-4, 0.5)
    assert resolve_config("mnist-hybrid", lam=1.0, lr=3e-4).lam == 1.0  # every value overridable
    assert set(PRESETS) == {f"{d}-{o}" for d in ("mnist", "cifar10") for o in ("mle", "adv", "hybrid")}


# ------------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def mnist5k():
    return load_dataset("mnist5k")


def _adv_cfg(**kw):
    base = dict(
        dataset="mnist5k",
        model="nice-small",
        objective="wgan-gp",
        n_critic=2,
        batch_size=50,
        max_steps=6,
        eval_every=3,
        train_eval_samples=100,
        eval_samples=100,
        log_every=1,
    )
    return TrainConfig(**{**base, **kw})


def test_a_few_adv_steps_change_the_generator_and_keep_log_prob_finite(tmp_path, mnist5k):
    trainer = Trainer(_adv_cfg(), tmp_path / "run", data=mnist5k, progress=False)
    model = trainer.modules.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer.fit()
    after = model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    x = flowgan.dequantize(mnist5k.val.images[:20], torch.rand(20, 1, 28, 28, dtype=torch.float32))
    assert torch.isfinite(model.eval().log_prob(x)).all()
    train_logs = read_metrics(tmp_path / "run", "train")
    for key in ("critic_loss", "wasserstein", "gradient_penalty", "generator_loss"):
        assert all(math.isfinite(r[key]) for r in train_logs)
    evals = read_metrics(tmp_path / "run", "eval")
    assert all(math.isfinite(r["val_nll_bpd"]) for r in evals)
    # collapse diagnostics at every evaluation of a run with an adversarial term
    for r in evals:
        assert 0 <= r["near_duplicate_share"] <= 1 and 0 <= r["saturated_share"] <= 1
        assert 1 <= r["classes_covered"] <= 10 and r["collapse_samples"] == 1000
    # the untrained flow samples uniform pixel noise: no two samples alike, (almost) nothing saturated
    assert evals[0]["near_duplicate_share"] == 0.0 and evals[0]["saturated_share"] < 1e-4


@pytest.mark.parametrize("lam", [0.0, 0.1], ids=["adv", "hybrid"])
def test_stopped_and_resumed_adversarial_training_equals_uninterrupted(tmp_path, mnist5k, lam):
    Trainer(_adv_cfg(lam=lam), tmp_path / "full", data=mnist5k, progress=False).fit()
    Trainer(_adv_cfg(lam=lam, max_steps=4), tmp_path / "part", data=mnist5k, progress=False).fit()
    Trainer(_adv_cfg(lam=lam), tmp_path / "part", resume=True, data=mnist5k, progress=False).fit()
    a, b = (load_checkpoint(tmp_path / d / "checkpoints" / "latest.pt") for d in ("full", "part"))
    for part in ("model", "critic", "optimizer", "critic_optimizer"):
        assert a[part] is not None
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key])
    for key in a["critic"]:
        assert torch.equal(a["critic"][key], b["critic"][key])
    assert a["step"] == b["step"] == 6


def _plant_nan_once(at_step):
    planted = []

    def callback(state, modules):
        if state.step == at_step and not planted:
            planted.append(True)
            with torch.no_grad():
                next(modules.model.parameters()).fill_(float("nan"))

    return callback


def test_planted_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, mnist5k):
    trainer = Trainer(_adv_cfg(), tmp_path / "run", data=mnist5k, progress=False, callbacks=(_plant_nan_once(4),))
    with pytest.raises(NonFiniteError, match="non-finite parameter generator.* after update 4"):
        trainer.fit()
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    assert ckpt["step"] == 3
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())
    assert read_metrics(tmp_path / "run", "event")[-1]["event"] == "nonfinite"


def test_planted_nan_with_rollback_restores_halves_lr_and_goes_on(tmp_path, mnist5k):
    cfg = _adv_cfg(on_nonfinite="rollback")
    trainer = Trainer(cfg, tmp_path / "run", data=mnist5k, progress=False, callbacks=(_plant_nan_once(4),))
    summary = trainer.fit()
    assert summary["step"] == 6 and trainer.state.lr_scale == 0.5
    assert all(torch.isfinite(p).all() for p in trainer.modules.model.parameters())
    events = read_metrics(tmp_path / "run", "event")
    assert events[0]["event"] == "rollback" and events[0]["step"] == 3 and events[0]["failed_step"] == 4
    assert read_metrics(tmp_path / "run", "train")[-1]["lr"] == pytest.approx(0.5 * cfg.lr)


def test_nan_in_a_loss_is_caught_before_the_update(tmp_path, mnist5k):
    cfg = _adv_cfg(objective="mle", max_steps=4)
    trainer = Trainer(cfg, tmp_path / "run", data=mnist5k, progress=False)
    model, objective = trainer.modules.model, trainer.modules.objective
    original = objective.generator_loss
    calls = []

    def poisoned(*args):
        loss, logs = original(*args)
        calls.append(1)
        return (loss * float("nan"), logs) if len(calls) == 2 else (loss, logs)

    objective.generator_loss = poisoned
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(NonFiniteError, match="generator loss at step 2"):
        trainer.fit()
    assert trainer.state.step == 1
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())  # step 1 applied
    assert all(torch.isfinite(p).all() for p in model.parameters())  # step 2 was not


def test_nan_gradient_between_logging_steps_stops_at_the_next_update(tmp_path, mnist5k):
    # log_every=10: the gradient norm is not measured at update 3, whose gradient is poisoned;
    # the NaN parameters it produces are caught at update 4 and the update that broke them named.
    cfg = _adv_cfg(objective="mle", max_steps=6, log_every=10, eval_every=10)
    trainer = Trainer(cfg, tmp_path / "run", data=mnist5k, progress=False)
    param = next(trainer.modules.model.parameters())
    param.register_hook(lambda g: g * float("nan") if trainer.state.step == 2 else g)
    with pytest.raises(NonFiniteError, match="after update 3"):
        trainer.fit()
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")["step"] == 0


def test_nan_gradient_on_a_logging_step_is_caught_before_the_update(tmp_path, mnist5k):
    cfg = _adv_cfg(objective="mle", max_steps=6, log_every=3, eval_every=10)
    trainer = Trainer(cfg, tmp_path / "run", data=mnist5k, progress=False)
    param = next(trainer.modules.model.parameters())
    param.register_hook(lambda g: g * float("nan") if trainer.state.step == 2 else g)
    with pytest.raises(NonFiniteError, match="non-finite generator gradient at step 3"):
        trainer.fit()
    assert all(torch.isfinite(p).all() for p in trainer.modules.model.parameters())
