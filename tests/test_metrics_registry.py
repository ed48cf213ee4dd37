"""The metric registry: declared keys are what the functions return, best checkpoints follow the
declared direction, and scores come out as computed by hand from known p(y|x)."""

import dataclasses
import math

import pytest
import torch
from torch import nn

import flowgan
from flowgan.data import ImageDataset, Split
from flowgan.errors import FlowganError
from flowgan.metrics.evaluate import score_images
from flowgan.metrics.registry import METRICS, SCORES, ScoreInputs, best_checkpoint_metrics, parse_metrics, update_best
from flowgan.metrics.score_classifier import ScoreClassifier


def _toy_dataset(n: int = 40, shape=(1, 28, 28), num_classes: int = 10) -> ImageDataset:
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, *shape), generator=gen, dtype=torch.uint8)
    labels = torch.arange(n) % num_classes
    split = Split(images, labels)
    return ImageDataset("toy", split, split, split, num_classes=num_classes)


def _linear_classifier(shape=(1, 28, 28), num_classes: int = 10) -> ScoreClassifier:
    torch.manual_seed(0)
    module = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(shape), num_classes)).float()
    return ScoreClassifier(
        module=module,
        name="toy-linear",
        source="path",
        path=None,
        trained_on="nothing",
        num_classes=num_classes,
        shape=shape,
        has_features=False,
    )


def test_every_metric_returns_exactly_its_declared_keys():
    model = flowgan.build_model("nice-small").float()
    data, clf = _toy_dataset(), _linear_classifier()
    gen = torch.Generator().manual_seed(1)
    logits, feats = (
        torch.randn(40, 10, generator=gen, dtype=torch.float64),
        torch.randn(40, 6, generator=gen, dtype=torch.float64),
    )
    inputs = ScoreInputs(logits, feats, data, clf, split="val", splits=2)
    inputs._reference = torch.randn(30, 6, generator=gen, dtype=torch.float64)  # the real images' features, given
    checked = set()
    for name, m in METRICS.items():
        if m.needs == "images":
            out = m.compute(model, data.test.images[:8], batch_size=4)
        elif m.needs == "samples":
            out = m.compute(model, 20, seed=0, classifier=clf)
        else:
            out = m.compute(inputs)
        assert set(out) == set(m.keys), f"{name}: {sorted(out)} != {sorted(m.keys)}"
        assert set(m.logged) <= set(m.keys) and (m.record_key is None or m.checkpoint is not None)
        checked.add(name)
    assert checked == {"nll", "collapse", "is", "mode", "fid", "kid"}
    assert SCORES == ("is", "mode", "fid", "kid")


def test_best_checkpoints_follow_the_declared_direction():
    # three evaluations on which the metrics disagree: the NLL is lowest at step 1, MODE highest
    # at step 2, FID lowest at step 3, KID (lower is better) lowest at step 1, IS highest at step 3
    records = [
        {"step": 1, "val_nll_nats": 10.0, "mode": 5.0, "fid": 30.0, "kid": 0.1, "is": 2.0},
        {"step": 2, "val_nll_nats": 12.0, "mode": 7.0, "fid": 20.0, "kid": 0.3, "is": 3.0},
        {"step": 3, "val_nll_nats": 11.0, "mode": 6.0, "fid": 10.0, "kid": 0.2, "is": 4.0},
    ]
    metrics = best_checkpoint_metrics(("mode", "fid", "kid", "is"))
    assert [m.checkpoint for m in metrics] == ["best_nll", "best_mode", "best_fid", "best_kid", "best_is"]
    best, improved = {}, []
    for r in records:
        improved.append(update_best(best, r, metrics, r["step"]))
    assert {k: v["step"] for k, v in best.items()} == {"val_nll_nats": 1, "mode": 2, "fid": 3, "kid": 1, "is": 3}
    assert best["mode"] == {"value": 7.0, "step": 2, "checkpoint": "best_mode"}
    assert improved == [
        ["best_nll", "best_mode", "best_fid", "best_kid", "best_is"],
        ["best_mode", "best_fid", "best_is"],
        ["best_fid", "best_is"],
    ]
    # the choice comes from the declaration: MODE declared lower-is-better keeps step 1
    flipped = [dataclasses.replace(METRICS["mode"], higher_is_better=False)]
    best = {}
    for r in records:
        update_best(best, r, flipped, r["step"])
    assert best["mode"]["step"] == 1


def test_a_nonfinite_value_never_becomes_the_best_and_a_finite_one_replaces_a_nonfinite_best():
    nll = METRICS["nll"]
    assert (
        not nll.improves(float("nan"), None) and nll.improves(3.0, float("nan")) and not nll.improves(float("inf"), 5.0)
    )
    with pytest.raises(FlowganError, match="no direction"):
        METRICS["collapse"].improves(1.0, 2.0)


def test_metric_names_are_checked_against_the_registry():
    assert parse_metrics(" nll, mode ,is") == ["nll", "mode", "is"]
    with pytest.raises(FlowganError, match=r"unknown score\(s\) nll; choose from is, mode, fid, kid"):
        parse_metrics("mode,nll", SCORES, what="score")
    with pytest.raises(FlowganError, match="none given"):
        parse_metrics(",")


class _KnownPosterior(nn.Module):
    """p(y|x) = (0.9, 0.1) for dark images (mean < 0.5), (0.2, 0.8) for bright ones."""

    def forward(self, x):
        bright = (x.flatten(1).mean(1) >= 0.5).double().unsqueeze(1)
        probs = (1 - bright) * torch.tensor([[0.9, 0.1]], dtype=torch.float64) + bright * torch.tensor(
            [[0.2, 0.8]], dtype=torch.float64
        )
        return probs.log()


def test_is_and_mode_of_known_posteriors_through_score_images():
    """Half dark, half bright images: p(y) = (0.55, 0.45), p*(y) = (0.5, 0.5) from balanced labels.
    IS = exp(mean KL(p(y|x) || p(y))), MODE = IS * exp(-KL(p(y) || p*))."""
    shape = (1, 2, 2)
    data = _toy_dataset(20, shape, num_classes=2)
    clf = ScoreClassifier(
        module=_KnownPosterior(),
        name="known",
        source="path",
        path=None,
        trained_on="nothing",
        num_classes=2,
        shape=shape,
        has_features=False,
    )
    images = torch.cat([torch.full((10, *shape), 0.1), torch.full((10, *shape), 0.9)])
    r = score_images(images, data, ["is", "mode"], classifier=clf, splits=1)
    kl_dark = 0.9 * math.log(0.9 / 0.55) + 0.1 * math.log(0.1 / 0.45)
    kl_bright = 0.2 * math.log(0.2 / 0.55) + 0.8 * math.log(0.8 / 0.45)
    expected_is = math.exp((kl_dark + kl_bright) / 2)  # = 1.31705...
    kl_marginal = 0.55 * math.log(0.55 / 0.5) + 0.45 * math.log(0.45 / 0.5)
    assert r["is"] == pytest.approx(expected_is, rel=1e-12) and r["is"] == pytest.approx(1.31705, abs=1e-5)
    assert r["mode_paper"] == pytest.approx(expected_is, rel=1e-12)
    assert r["mode"] == pytest.approx(expected_is * math.exp(-kl_marginal), rel=1e-12)
    assert r["kl_marginal"] == pytest.approx(kl_marginal, rel=1e-12)
    assert r["score_samples"] == 20 and r["classifier_name"] == "known" and r["is_std"] == 0.0


def test_nonfinite_images_give_every_logged_key_nan():
    data, clf = _toy_dataset(), _linear_classifier()
    images = torch.rand(20, 1, 28, 28)
    images[3] = float("nan")
    r = score_images(images, data, ["is", "mode"], classifier=clf)
    assert r["nonfinite_samples"] == 1
    for key in METRICS["is"].logged + METRICS["mode"].logged:
        assert math.isnan(r[key])
