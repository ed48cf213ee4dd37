r"""Pixel noise: the augmentation of the noise-robust score classifier, and the noisy real digits
that check it (``flowgan classifier check``).

Why. The MODE and Inception scores (§3.2 of the paper) read a flow's samples through a classifier
``p(y|x)``. Samples of a flow trained for a short time -- and the Gaussian-mixture baseline of
§3.4 -- are *noisy* digits: the right strokes on a speckled background. A classifier trained on
clean digits only can call every such image one class (MODE ≈ 0.1, the floor), although a reader
sees ten classes. The default MNIST classifier is therefore trained on digits with the kinds of
noise flow samples show (:func:`flow_augment`), and checked on real test digits with fixed,
reproducible noise (:func:`noisy_uint8`).

Noise kinds (``x`` in ``[0, 1]``; all results clipped to ``[0, 1]``):

=============== ===================================================================================
``gaussian``    ``x + σ·ε``, ε ~ N(0, 1) per pixel (level = σ)
``salt-pepper`` a fraction ``level`` of the pixels set to 0 or 1 (half each)
``logit``       ``sigmoid(logit(x) + s·ε)`` with ``x`` clamped to ``[1/512, 1 - 1/512]`` (level = s):
                noise in the flow's own logit space (the first layer of every flow here)
``blur``        a 3×3 Gaussian blur of width ``level`` pixels
``clean``       no noise
=============== ===================================================================================

:func:`noisy_uint8` applies one kind to uint8 images ``k`` as ``k/255``, then re-quantises to uint8
(``round(255·x)``): the noisy image is again an 8-bit image and is scored like any real split (then
dequantized as ``(k + u)/256``). Its noise is a function of ``(seed, image index)`` only.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

KINDS = ("clean", "gaussian", "salt-pepper", "logit", "blur")

#: The check of ``flowgan classifier check``: (label, kind, level)
CHECK_LEVELS = (
    ("clean", "clean", 0.0),
    ("gaussian σ=0.15", "gaussian", 0.15),
    ("gaussian σ=0.30", "gaussian", 0.30),
    ("salt-and-pepper 15%", "salt-pepper", 0.15),
    ("logit-space s=2.0", "logit", 2.0),
    ("blur 1 px", "blur", 1.0),
)

_EPS = 1.0 / 512.0


def _per_sample(level, n: int, x: torch.Tensor) -> torch.Tensor:
    """``level`` (a number or an ``(n,)`` tensor) broadcastable against ``(n, C, H, W)``."""
    t = torch.as_tensor(level, dtype=x.dtype)
    return (t.expand(n) if t.dim() == 0 else t).view(n, 1, 1, 1)


def gaussian(x: torch.Tensor, sigma, gen: torch.Generator | None = None) -> torch.Tensor:
    eps = torch.randn(x.shape, generator=gen, dtype=x.dtype)
    return (x + _per_sample(sigma, len(x), x) * eps).clamp(0.0, 1.0)


def salt_pepper(x: torch.Tensor, fraction, gen: torch.Generator | None = None) -> torch.Tensor:
    u = torch.rand(x.shape, generator=gen, dtype=x.dtype)
    salt = torch.rand(x.shape, generator=gen, dtype=x.dtype) < 0.5
    hit = u < _per_sample(fraction, len(x), x)
    return torch.where(hit, salt.to(x.dtype), x)


def logit_noise(x: torch.Tensor, scale, gen: torch.Generator | None = None) -> torch.Tensor:
    h = torch.logit(x.clamp(_EPS, 1.0 - _EPS))
    eps = torch.randn(x.shape, generator=gen, dtype=x.dtype)
    return torch.sigmoid(h + _per_sample(scale, len(x), x) * eps)


def blur(x: torch.Tensor, width) -> torch.Tensor:
    """3×3 Gaussian blur, per-sample width (pixels), reflect padding; channels blurred alike."""
    n, c, h, w = x.shape
    s = _per_sample(width, n, x).view(n).clamp_min(1e-3)
    k1 = torch.exp(-torch.tensor([1.0, 0.0, 1.0], dtype=x.dtype).view(1, 3) / (2 * s.view(n, 1) ** 2))
    k1 = k1 / k1.sum(1, keepdim=True)  # (n, 3)
    k2 = (k1.view(n, 3, 1) * k1.view(n, 1, 3)).view(n, 1, 3, 3)
    xp = F.pad(x.reshape(1, n * c, h, w), (1, 1, 1, 1), mode="reflect")
    out = F.conv2d(xp, k2.repeat_interleave(c, 0), groups=n * c)
    return out.view(n, c, h, w).clamp(0.0, 1.0)


def apply(x: torch.Tensor, kind: str, level, gen: torch.Generator | None = None) -> torch.Tensor:
    """``x`` (float, ``[0, 1]``) with noise ``kind`` at ``level`` (see the module docstring)."""
    if kind == "clean":
        return x
    if kind == "gaussian":
        return gaussian(x, level, gen)
    if kind == "salt-pepper":
        return salt_pepper(x, level, gen)
    if kind == "logit":
        return logit_noise(x, level, gen)
    if kind == "blur":
        return blur(x, level)
    raise ValueError(f"unknown noise {kind!r}; choose from {', '.join(KINDS)}")


def noisy_uint8(images: torch.Tensor, kind: str, level: float, seed: int = 0, block: int = 1000) -> torch.Tensor:
    """uint8 images with noise: ``round(255·noise(k/255))``. Deterministic: block ``b`` of
    ``block`` images draws from a generator seeded with ``(seed, b)``."""
    if images.dtype != torch.uint8:
        raise ValueError("noisy_uint8 expects uint8 images")
    out = []
    for b, start in enumerate(range(0, len(images), block)):
        gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + b)
        x = images[start : start + block].to(torch.float32) / 255.0
        out.append((apply(x, kind, level, gen) * 255.0).round().clamp(0, 255).to(torch.uint8))
    return torch.cat(out) if out else images.clone()


# ------------------------------------------------------------------------------ training augmentation

_FLOW = {
    "kinds": {"clean": 0.25, "gaussian": 0.30, "salt-pepper": 0.20, "logit": 0.25},
    "gaussian_sigma": (0.02, 0.45),
    "salt_pepper_fraction": (0.01, 0.25),
    "logit_scale": (0.5, 4.0),
    "blur_probability": 0.15,
    "blur_width": (0.4, 1.0),
    "requantize_probability": 0.5,
}
#: What :func:`flow_augment` draws per image, by recipe (probabilities of the kinds, ranges of
#: the levels). ``flow`` trained ``mnist-robust``, ``cifar10-robust`` and ``cifar10-distilled``;
#: ``flow-logit`` draws strong logit-space noise half the time: in colour, noise in the flow's
#: logit space is what a classifier trained with ``flow`` reads worst (its score kept 0.67 of the
#: clean score at s = 2, every other noise of the check at least 0.78). Measured at width 40, 120
#: epochs: 40% logit noise with s ~ U(0.5, 3.5) kept 0.68 (64.5% clean accuracy), this recipe
#: 0.71 (59.8%): more logit noise buys little and costs clean accuracy (weights/README.md).
FLOW_AUGMENT = {
    "flow": _FLOW,
    # the same, but the kinds' probabilities and the logit-space scales
    "flow-logit": {
        **_FLOW,
        "kinds": {"clean": 0.15, "gaussian": 0.20, "salt-pepper": 0.15, "logit": 0.50},
        "logit_scale": (1.0, 3.0),
    },
}


def describe_flow_augment(recipe: str = "flow") -> str:
    a = FLOW_AUGMENT[recipe]
    kinds = ", ".join(f"{k} {100 * p:.0f}%" for k, p in a["kinds"].items())
    return (
        f"per image one of: {kinds} (Gaussian σ ~ U{a['gaussian_sigma']}, salt-and-pepper fraction ~ "
        f"U{a['salt_pepper_fraction']}, logit-space noise scale ~ U{a['logit_scale']}); then a 3×3 blur (width ~ "
        f"U{a['blur_width']} px) with probability {a['blur_probability']}, re-quantisation to 8 bits with probability "
        f"{a['requantize_probability']}; on dequantized, shifted images"
    )


def flow_augment(x: torch.Tensor, gen: torch.Generator, recipe: str = "flow") -> torch.Tensor:
    """Flow-like noise for a batch ``x`` (float32 in ``[0, 1]``, already dequantized and shifted):
    recipe ``recipe`` of :data:`FLOW_AUGMENT`. Every random number comes from ``gen``."""
    a = FLOW_AUGMENT[recipe]
    n = len(x)
    names = list(a["kinds"])
    probs = torch.tensor([a["kinds"][k] for k in names], dtype=torch.float64)
    which = torch.multinomial(probs, n, replacement=True, generator=gen)

    def uniform(lo_hi):
        lo, hi = lo_hi
        return lo + (hi - lo) * torch.rand(n, generator=gen, dtype=x.dtype)

    sigma, frac, scale = uniform(a["gaussian_sigma"]), uniform(a["salt_pepper_fraction"]), uniform(a["logit_scale"])
    candidates = {
        "clean": x,
        "gaussian": gaussian(x, sigma, gen),
        "salt-pepper": salt_pepper(x, frac, gen),
        "logit": logit_noise(x, scale, gen),
    }
    out = x.clone()
    for i, k in enumerate(names):
        m = (which == i).view(n, 1, 1, 1)
        out = torch.where(m, candidates[k], out)
    b = torch.rand(n, generator=gen) < a["blur_probability"]
    if bool(b.any()):
        out = torch.where(b.view(n, 1, 1, 1), blur(out, uniform(a["blur_width"])), out)
    q = torch.rand(n, generator=gen) < a["requantize_probability"]
    if bool(q.any()):
        u = torch.rand(x.shape, generator=gen, dtype=x.dtype)
        requant = ((out * 255.0).round() + u) / 256.0
        out = torch.where(q.view(n, 1, 1, 1), requant, out)
    return out.clamp(0.0, 1.0)


def mode_floor(num_classes: int = 10) -> float:
    """Below this MODE, (nearly) every sample is classified as one class: one class gives
    ``exp(-KL(δ_c || p*)) = p*(c) ≈ 1/K``; 1.5/K leaves room for the estimate's noise."""
    return 1.5 / num_classes


def is_floor() -> float:
    """Below this Inception score the classifier sees (nearly) a single class in every sample."""
    return 1.1


def at_floor(score_name: str, value, num_classes: int = 10) -> bool:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    if score_name in ("mode",):
        return value <= mode_floor(num_classes)
    if score_name in ("is", "mode_paper"):
        return value <= is_floor()
    return False


# ------------------------------------------------------------------------------ the check


def check_classifier(
    dataset,
    classifier=None,
    *,
    split: str = "test",
    levels=CHECK_LEVELS,
    n_images: int | None = None,
    splits: int = 10,
    device=None,
    seed: int = 0,
) -> dict:
    """Accuracy, Inception score and MODE of ``classifier`` (default: the dataset's shipped one)
    on the real images of ``split`` with each noise of ``levels`` (``(label, kind, level)``),
    what ``flowgan classifier check`` prints. Noisy images are 8-bit (:func:`noisy_uint8`) and
    then scored exactly like real images (dequantized with the fixed evaluation noise)."""
    from .classifiers import find_classifier
    from .features import real_images
    from .inception_score import inception_score
    from .mode_score import dataset_label_marginal, mode_score

    clf = find_classifier(dataset, classifier)
    data = dataset.split(split)
    images, labels = data.images, data.labels
    if n_images is not None and n_images < len(images):
        pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[:n_images].sort().values
        images = images[pick]
        labels = labels[pick] if labels is not None else None
    rows = []
    for label, kind, level in levels:
        noisy = noisy_uint8(images, kind, level, seed=seed)
        logits, _ = clf.predict(real_images(noisy), device=device)
        row = {"noise": label, "kind": kind, "level": level}
        if labels is not None and logits.shape[1] == (dataset.num_classes or -1):
            row["accuracy"] = float((logits.argmax(1) == labels.long()).double().mean())
        r = inception_score(logits, splits)
        row.update(**{"is": r["is"], "is_std": r["is_std"]})
        if dataset.train.labels is not None:
            m = mode_score(logits, dataset_label_marginal(dataset, logits.shape[1]), splits)
            row.update(mode=m["mode"], mode_std=m["mode_std"])
        rows.append(row)
    return {
        "dataset": dataset.name,
        "split": split,
        "images": len(images),
        "noise_seed": seed,
        "noise": (
            "k/255 + noise, clipped to [0, 1], re-quantised to 8 bits, scored as (k + u)/256 (fixed evaluation noise)"
        ),
        **clf.summary(),
        "rows": rows,
    }


def noise_card(check: dict) -> dict:
    """What a classifier's card keeps of :func:`check_classifier`: per noise the accuracy, the
    Inception score and the share of the clean score it keeps (``is_retained``)."""
    rows = check["rows"]
    clean = next((r["is"] for r in rows if r["kind"] == "clean"), None)
    keep = ("noise", "accuracy", "is", "is_std", "mode", "mode_std")
    return {
        "split": check["split"],
        "images": check["images"],
        "noise_seed": check["noise_seed"],
        "rows": [
            {**{k: r[k] for k in keep if k in r}, "is_retained": r["is"] / clean if clean else None} for r in rows
        ],
    }
