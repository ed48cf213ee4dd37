"""Scores during training: best_<metric>.pt checkpoints, and no effect on the training itself."""

import pytest
import torch

from flowgan.checkpoint import load_checkpoint
from flowgan.config import TrainConfig
from flowgan.data import load_dataset
from flowgan.errors import FlowganError
from flowgan.metrics.training import score_hook
from flowgan.rundir import read_metrics
from flowgan.training import Trainer


@pytest.fixture(autouse=True)
def _isolated_cache(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("FLOWGAN_CACHE", str(tmp_path_factory.getbasetemp() / "flowgan-cache-training"))


@pytest.fixture(scope="module")
def mnist5k():
    return load_dataset("mnist5k")


def _config(**kw):
    base = dict(
        dataset="mnist5k",
        model="nice-small",
        max_steps=4,
        eval_every=2,
        score_metrics=("mode",),
        score_samples=200,
        train_eval_samples=100,
    )
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def runs(tmp_path_factory, mnist5k):
    """The same 4-step run with MODE scores at every evaluation and without any."""
    base = tmp_path_factory.mktemp("hook")
    mp = pytest.MonkeyPatch()
    mp.setenv("FLOWGAN_CACHE", str(base / "cache"))
    try:
        Trainer(_config(), base / "scored", data=mnist5k, progress=False, score_fn=score_hook).fit()
        Trainer(_config(score_metrics=()), base / "plain", data=mnist5k, progress=False).fit()
    finally:
        mp.undo()
    return base / "scored", base / "plain"


def test_training_with_mode_scores_keeps_best_mode_checkpoint(runs):
    scored, _ = runs
    evals = read_metrics(scored, "eval")
    assert [e["step"] for e in evals] == [0, 2, 4]
    for e in evals:
        assert e["score_seconds"] > 0
    best = max(evals, key=lambda e: e["mode"])
    ckpt = scored / "checkpoints" / "best_mode.pt"
    assert ckpt.is_file()
    assert load_checkpoint(ckpt)["step"] == best["step"]
    # the logged scores are those of the library on the checkpoint's model: 200 samples drawn
    # with the seed of (run seed, step), scored against the validation split
    from flowgan.checkpoint import load_model
    from flowgan.metrics import evaluate_samples
    from flowgan.runtime import mix_seed

    model, state = load_model(scored, "best_mode")
    cfg = _config()
    again = evaluate_samples(
        model,
        load_dataset("mnist5k"),
        ["mode"],
        n_samples=cfg.score_samples,
        split="val",
        seed=mix_seed(cfg.seed, state["step"], 5),
    )
    assert {k: again[k] for k in ("mode", "mode_std", "mode_paper")} == {
        k: best[k] for k in ("mode", "mode_std", "mode_paper")
    }
    assert load_checkpoint(scored / "checkpoints" / "latest.pt")["best"]["mode"]["value"] == pytest.approx(best["mode"])


def test_scores_do_not_perturb_training(runs):
    scored, plain = runs
    a, b = load_checkpoint(scored / "checkpoints" / "latest.pt"), load_checkpoint(plain / "checkpoints" / "latest.pt")
    assert a["model"].keys() == b["model"].keys()
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
    assert torch.equal(a["rng"], b["rng"]) and a["stream"] == b["stream"]
    plain_evals = read_metrics(plain, "eval")
    assert all("mode" not in e for e in plain_evals)
    assert [e["val_nll_nats"] for e in plain_evals] == [e["val_nll_nats"] for e in read_metrics(scored, "eval")]


def _hook(model, data, step=7, **cfg):
    return score_hook(model, data, _config(**cfg), step, torch.device("cpu"))


def test_hook_restores_the_model_mode_and_leaves_random_states_alone(mnist5k):
    from flowgan.models import build_model

    model = build_model("nice-small").to(torch.float32)
    cfg = dict(score_metrics=("is", "mode", "fid"), score_samples=100)
    for training in (True, False):
        global_state = torch.get_rng_state()
        out = _hook(model.train(training), mnist5k, **cfg)
        assert model.training is training
        assert set(out) == {"is", "is_std", "mode", "mode_std", "mode_paper", "fid", "score_seconds", "classifier"}
        assert torch.equal(global_state, torch.get_rng_state())
    again = _hook(model, mnist5k, **cfg)
    assert {k: v for k, v in again.items() if k != "score_seconds"} == {
        k: v for k, v in out.items() if k != "score_seconds"
    }
    assert _hook(model, mnist5k, step=8, **cfg)["is"] != out["is"]  # fresh samples at every evaluation step


def test_hook_without_a_classifier_says_how_to_get_one():
    from flowgan.models import build_model

    digits = load_dataset("digits")
    with pytest.raises(FlowganError, match="flowgan classifier train --dataset digits"):
        _hook(build_model("nice-small", shape=(1, 8, 8)).float(), digits, dataset="digits")


def test_hook_uses_a_cached_classifier_only_when_named(mnist5k, tmp_path, monkeypatch):
    from flowgan.metrics.classifier_nets import build_classifier
    from flowgan.metrics.classifiers import find_classifier, save_classifier
    from flowgan.models import build_model

    monkeypatch.setenv("FLOWGAN_CACHE", str(tmp_path))
    meta = {
        "arch": "cnn",
        "arch_options": {},
        "family": "mnist",
        "trained_on": "mnist5k (untrained)",
        "shape": [1, 28, 28],
        "num_classes": 10,
        "normalization": {"mean": [0.1], "std": [0.3]},
        "test_accuracy": 0.1,
    }
    save_classifier(
        tmp_path / "classifiers" / "mnist5k.pt", build_classifier("cnn", (1, 28, 28), 10, [0.1], [0.3]), meta
    )
    model = build_model("nice-small").float()
    default = find_classifier(mnist5k)
    out = _hook(model, mnist5k, score_samples=100)
    assert out["classifier"] == f"{default.name}@{default.sha256}"
    named = _hook(model, mnist5k, score_samples=100, score_classifier="mnist5k")
    assert named["classifier"].startswith("mnist5k@") and named["mode"] != out["mode"]


def test_hook_rejects_unknown_scores(mnist5k):
    from flowgan.models import build_model

    cfg = _config()
    object.__setattr__(cfg, "score_metrics", ("bleu",))  # TrainConfig itself refuses it
    with pytest.raises(FlowganError, match="unknown score"):
        score_hook(build_model("nice-small").float(), mnist5k, cfg, 7, torch.device("cpu"))


def test_a_resumed_run_keeps_scoring(tmp_path, mnist5k):
    """The score hook comes from the run's own config, also when it is resumed from the CLI."""
    from flowgan.cli import main

    argv = [
        "train",
        "--dataset",
        "mnist5k",
        "--model",
        "nice-small",
        "--scores",
        "mode",
        "--score-samples",
        "100",
        "--eval-every",
        "2",
        "--max-steps",
        "2",
        "--out",
        str(tmp_path / "run"),
        "--no-progress",
    ]
    assert main(argv) == 0
    assert main(["train", "--resume", str(tmp_path / "run"), "--max-steps", "4", "--no-progress"]) == 0
    evals = read_metrics(tmp_path / "run", "eval")
    assert [r["step"] for r in evals] == [0, 2, 4] and all("mode" in r for r in evals)
