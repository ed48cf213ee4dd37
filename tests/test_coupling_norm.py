"""NICE's coupling-network batch normalisation (the Flow-GAN code's) and loading older runs."""

import json
import math

import pytest
import torch
from helpers import perturb

import flowgan
from flowgan.checkpoint import atomic_save, load_checkpoint, load_model
from flowgan.models import model_from_spec
from flowgan.nets import MLP, ScalarBatchNorm, set_sync_batchnorm


def test_training_mode_normalises_over_batch_and_features_together():
    norm = ScalarBatchNorm()
    with torch.no_grad():
        norm.gain.fill_(2.0)
        norm.shift.fill_(0.5)
    h = 3.0 + 4.0 * torch.randn(64, 10) + torch.arange(10.0)  # features with different means
    y = norm.train()(h)
    # one mean and one (biased) variance over all 640 entries, not per feature
    expected = (h - h.mean()) / torch.sqrt(h.var(unbiased=False) + 1e-6) * 2.0 + 0.5
    assert torch.allclose(y, expected, atol=1e-10)
    assert not torch.allclose(y.mean(0), torch.full((10,), 0.5), atol=0.1)  # per-feature means survive
    # running averages move 10% of the way to the batch's statistics (the original's decay 0.1)
    assert norm.running_mean.item() == pytest.approx(0.1 * h.mean().item())
    assert norm.running_var.item() == pytest.approx(0.9 + 0.1 * h.var(unbiased=False).item())


def test_eval_mode_uses_running_statistics_and_is_per_sample():
    norm = ScalarBatchNorm()
    with torch.no_grad():
        norm.running_mean.fill_(1.5)
        norm.running_var.fill_(4.0)
    h = torch.randn(5, 7)
    y = norm.eval()(h)
    assert torch.allclose(y, (h - 1.5) / math.sqrt(4.0 + 1e-6), atol=1e-12)
    assert torch.equal(norm(h[:1]), y[:1])  # one sample alone: the same output
    assert norm.running_mean.item() == 1.5  # evaluation does not move the averages


def test_mlp_norm_sits_before_every_linear_layer_and_none_keeps_old_names():
    net = MLP(6, 4, 8, depth=2, norm="batch")
    kinds = [type(m).__name__ for m in net]
    assert kinds == ["ScalarBatchNorm", "Linear", "ReLU"] * 3 + ["ScalarBatchNorm", "Linear"]
    plain = MLP(6, 4, 8, depth=2, norm="none")
    assert set(plain.state_dict()) == {f"{i}.{p}" for i in (0, 2, 4, 6) for p in ("weight", "bias")}
    with pytest.raises(ValueError, match="normalization"):
        MLP(6, 4, 8, depth=1, norm="layer")
    assert set_sync_batchnorm(net) == 4 and all(m.sync for m in net if isinstance(m, ScalarBatchNorm))


def test_normalised_nice_is_the_default_and_exact_in_eval_mode():
    model = perturb(flowgan.build_model("nice-small", shape=(1, 6, 6)), scale=0.05).eval()
    assert any(isinstance(m, ScalarBatchNorm) for m in model.modules())
    x = 0.05 + 0.9 * torch.rand(6, 1, 6, 6)
    # eval mode: each image's density does not depend on the others in its batch
    together = model.log_prob(x)
    alone = torch.cat([model.log_prob(x[i : i + 1]) for i in range(len(x))])
    assert torch.allclose(together, alone, atol=1e-10)
    # training mode: batch statistics, so the batch matters (what the original trained with)
    model.train()
    assert not torch.allclose(model.log_prob(x)[:3], model.log_prob(x[:3]), atol=1e-6)
    # the exact NLL helpers evaluate in eval mode, whatever mode the model is in
    model.train()
    images = (x * 255).round().to(torch.uint8)
    assert flowgan.nll(model, images) == pytest.approx(flowgan.nll(model.eval(), images), abs=1e-9)


def test_a_checkpoint_from_before_the_normalisation_loads_unchanged(tmp_path):
    old = perturb(flowgan.build_model("nice-small", shape=(1, 6, 6), norm="none"))
    spec = {"name": "nice-small", "overrides": {"shape": [1, 6, 6]}}  # as flowgan 0.1.0 wrote it: no version
    ckpt = {"format": "flowgan-checkpoint", "version": 1, "model_spec": spec, "model": old.state_dict(), "step": 7}
    atomic_save(ckpt, tmp_path / "old.pt")
    model, stored = load_model(tmp_path / "old.pt")
    assert not any(isinstance(m, ScalarBatchNorm) for m in model.modules())
    x = 0.05 + 0.9 * torch.rand(3, 1, 6, 6)
    assert torch.allclose(model.double().log_prob(x), old.eval().log_prob(x), atol=1e-9)
    assert model_from_spec({**spec, "version": 2}).spec["overrides"] == {"shape": [1, 6, 6]}  # new specs: the default
    assert load_checkpoint(tmp_path / "old.pt")["step"] == 7


def test_an_old_run_resumes_with_its_unnormalised_architecture(tmp_path):
    from flowgan.config import TrainConfig
    from flowgan.training import Trainer

    cfg = TrainConfig(
        dataset="digits", model="nice-small", model_options={"norm": "none"}, batch_size=50, max_steps=2, eval_every=2
    )
    Trainer(cfg, tmp_path / "run", progress=False).fit()
    # rewrite the checkpoint as an older flowgan did: no norm option, no spec version
    path = tmp_path / "run" / "checkpoints" / "latest.pt"
    ckpt = load_checkpoint(path)
    ckpt["config"]["model_options"] = {}
    ckpt["model_spec"] = {"name": "nice-small", "overrides": {"shape": [1, 8, 8]}}
    atomic_save(ckpt, path)
    info = json.loads((tmp_path / "run" / "config.json").read_text())  # written by that flowgan too
    info["config"]["model_options"] = {}
    (tmp_path / "run" / "config.json").write_text(json.dumps(info))
    trainer = Trainer(TrainConfig(dataset="digits", max_steps=4), tmp_path / "run", resume=True, progress=False)
    assert not any(isinstance(m, ScalarBatchNorm) for m in trainer.modules.model.modules())
    assert trainer.fit()["step"] == 4


@pytest.mark.parametrize("depth", [0, 2])
def test_evaluation_without_gradients_folds_each_batch_norm_into_its_linear_layer(depth):
    """MLP.forward in eval mode under no_grad (one addmm per layer) is the same function as the
    layer-by-layer forward (float64, to rounding), and training mode is untouched."""
    torch.manual_seed(0)
    net = MLP(6, 5, 7, depth, norm="batch").double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn_like(p))
        for m in net.modules():
            if isinstance(m, ScalarBatchNorm):
                m.running_mean.fill_(0.3)
                m.running_var.fill_(2.5)
    x = torch.randn(9, 6, dtype=torch.float64)
    net.eval()
    layer_by_layer = net(x)  # gradients enabled: the layers one after another
    with torch.no_grad():
        folded = net(x)
    torch.testing.assert_close(folded, layer_by_layer.detach(), rtol=1e-12, atol=1e-12)
    assert layer_by_layer.requires_grad and not folded.requires_grad
