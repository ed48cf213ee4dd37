"""Collapse diagnostics: a planted collapsed sampler and real digits read clearly differently."""

import math

import pytest
import torch

from flowgan.data import load_dataset
from flowgan.errors import FlowganError
from flowgan.metrics.collapse import collapse_stats, nearest_neighbour_distances, sample_collapse


@pytest.fixture(scope="module")
def digits():
    data = load_dataset("mnist5k")
    gen = torch.Generator().manual_seed(0)
    images = data.test.images[:500].to(torch.float64)
    return (images + torch.rand(images.shape, generator=gen, dtype=torch.float64)) / 256.0, data


def test_nearest_neighbour_distances_by_hand():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [3.0, 5.0], [10.0, 0.0]]).view(4, 1, 1, 2)
    d = nearest_neighbour_distances(x, block=3)  # a block boundary inside the set
    assert torch.allclose(d, torch.tensor([5.0, 1.0, 1.0, math.sqrt(49 + 16)], dtype=torch.float64))
    with pytest.raises(FlowganError):
        nearest_neighbour_distances(x[:1])


def test_collapsed_sampler_and_real_digits(digits):
    images, _ = digits
    gen = torch.Generator().manual_seed(1)
    template = images[0]
    # one image repeated with pixel noise (std 0.03: pairs ~0.03·sqrt(2·784) ≈ 1.2 apart), saturated
    collapsed = (
        template.round() + 0.03 * torch.randn((500, *template.shape), generator=gen, dtype=torch.float64)
    ).clamp(0, 1)
    bad = collapse_stats(collapsed)
    good = collapse_stats(images)
    assert bad["near_duplicate_share"] == 1.0
    assert good["near_duplicate_share"] < 0.02  # distinct real digits are ~5-10 apart
    assert bad["saturated_share"] > 0.4  # the rounded template's 0s and 1s, clamped noise
    assert good["saturated_share"] < 1e-3  # dequantised pixels are never exactly 0 or 1
    assert good["collapse_samples"] == bad["collapse_samples"] == 500


def test_classes_covered_counts_classes_with_at_least_one_percent():
    images = torch.rand(200, 1, 4, 4)
    labels = torch.tensor([0] * 150 + [1] * 46 + [2] * 2 + [3] * 2)  # 3 and 2 have exactly 1%
    logits = torch.nn.functional.one_hot(labels, 10).double()
    assert collapse_stats(images, logits)["classes_covered"] == 4
    assert collapse_stats(images, logits[:, [0] * 10])["classes_covered"] == 1  # all argmax 0
    assert "classes_covered" not in collapse_stats(images)


def test_nonfinite_samples_give_nan_not_a_crash():
    images = torch.rand(10, 1, 4, 4)
    images[3, 0, 0, 0] = float("nan")
    out = collapse_stats(images)
    assert math.isnan(out["near_duplicate_share"]) and out["nonfinite_samples"] == 1


def test_sample_collapse_of_a_model_is_deterministic_and_uses_the_classifier(digits):
    import flowgan
    from flowgan.metrics.classifiers import find_classifier

    _, data = digits
    model = flowgan.build_model("nice-small")
    clf = find_classifier(data)
    a = sample_collapse(model, 200, seed=3, classifier=clf)
    b = sample_collapse(model, 200, seed=3, classifier=clf)
    assert a == b and set(a) >= {"near_duplicate_share", "saturated_share", "classes_covered"}
    assert a["collapse_classifier"].startswith(clf.summary()["classifier_name"])
    # the classes the classifier gives the very samples drawn with seed 3
    from flowgan.metrics.sampling import sample_blocks

    images = torch.cat(list(sample_blocks(model, 200, 3)))
    logits, _ = clf.predict(images)
    assert a["classes_covered"] == collapse_stats(images, logits)["classes_covered"]
    counts = torch.bincount(logits.argmax(1), minlength=10)
    assert a["classes_covered"] == int((counts >= 2).sum())  # 1% of 200 samples
