"""Collapse diagnostics: does a generator make many different images, or one template?

The paper's Figure 1 / Tables 1-2 read ADV's samples as *good*; a collapsed adversarial run
(every sample one saturated template) can still score a finite MODE or Inception score on a
classifier that happens to call the template one class. These three numbers say what the sample
grid shows, and are logged next to the scores at every evaluation of a run with an adversarial
term (``Trainer.evaluate``) and by ``flowgan evaluate --metrics collapse``:

* ``near_duplicate_share`` -- the share of samples whose nearest *other* sample lies closer than
  ``duplicate_distance`` (L2, pixels in ``[0, 1]``; default 1.5). Two different real MNIST digits
  are typically 5-10 apart (a 0.55 share, one template plus noise, was seen in a collapsed NICE);
  the same image with pixel noise of standard deviation ``s`` is about ``s·sqrt(2·D)`` apart.
  The share depends on the number of samples (more samples, more close pairs): compare runs at
  the same ``collapse_samples``.
* ``saturated_share`` -- the share of pixels at 0 or 1 within ``saturation`` (default 1e-6): a
  NICE generator ends in a sigmoid, and a saturated pixel passes no gradient back. Real MNIST
  digits have many exact 0s after quantisation, but samples of a flow are continuous: of the
  *dequantised* real digits ``(x + u) / 256`` only about 3 in 10,000 pixels fall below 1e-6.
* ``classes_covered`` -- with a classifier for the dataset: the number of classes that receive at
  least ``class_share`` (1%) of the samples' predicted labels (10 for real MNIST digits, 1 for a
  collapsed generator).
"""

from __future__ import annotations

import torch

from ..errors import FlowganError

DUPLICATE_DISTANCE = 1.5
SATURATION = 1e-6
CLASS_SHARE = 0.01
DEFAULT_SAMPLES = 1000
#: the keys of :func:`collapse_stats` (and of evaluation records)
KEYS = ("near_duplicate_share", "saturated_share", "classes_covered")


def nearest_neighbour_distances(x: torch.Tensor, block: int = 1024) -> torch.Tensor:
    """L2 distance of each row of ``x`` ``(N, ...)`` to its nearest *other* row (float64, ``(N,)``)."""
    flat = x.reshape(len(x), -1).to(torch.float64)
    if len(flat) < 2:
        raise FlowganError("nearest-neighbour distances need at least 2 images")
    out = torch.empty(len(flat), dtype=torch.float64)
    for start in range(0, len(flat), block):
        d = torch.cdist(flat[start : start + block], flat)
        rows = torch.arange(d.shape[0])
        d[rows, start + rows] = float("inf")  # not the image itself
        out[start : start + block] = d.min(dim=1).values
    return out


def collapse_stats(
    images: torch.Tensor,
    logits: torch.Tensor | None = None,
    *,
    duplicate_distance: float = DUPLICATE_DISTANCE,
    saturation: float = SATURATION,
    class_share: float = CLASS_SHARE,
) -> dict:
    """The collapse diagnostics (module docstring) of float ``images`` ``(N, C, H, W)`` in
    ``[0, 1]``; ``classes_covered`` only when a classifier's ``logits`` ``(N, K)`` are given."""
    if not images.is_floating_point():
        raise FlowganError("collapse_stats expects float images in [0, 1]")
    finite = torch.isfinite(images.reshape(len(images), -1)).all(1)
    if not bool(finite.all()):
        nan = float("nan")
        out = {"near_duplicate_share": nan, "saturated_share": nan}
        if logits is not None:
            out["classes_covered"] = nan
        return {**out, "collapse_samples": len(images), "nonfinite_samples": int((~finite).sum())}
    nn_dist = nearest_neighbour_distances(images)
    saturated = (images <= saturation) | (images >= 1.0 - saturation)
    out = {
        "near_duplicate_share": float((nn_dist < duplicate_distance).double().mean()),
        "saturated_share": float(saturated.double().mean()),
    }
    if logits is not None:
        counts = torch.bincount(logits.argmax(dim=1), minlength=logits.shape[1])
        out["classes_covered"] = int((counts >= class_share * len(images)).sum())
    out["collapse_samples"] = len(images)
    return out


def collapse_classifier(dataset, classifier=None, *, find=None):
    """The classifier that counts ``classes_covered`` for ``dataset``: ``classifier`` when one is
    named (a loaded one, a name or a path; a failure to load it is an error), else the dataset's
    default score classifier, else ``None`` (no class count for data without one). ``find``:
    the lookup, :func:`~.classifiers.find_classifier` by default (the trainer passes its
    once-per-process cache)."""
    if find is None:
        from .classifiers import find_classifier as find
    if classifier is not None:
        return find(dataset, classifier)
    try:
        return find(dataset, None)
    except FlowganError:  # no classifier for this dataset: no class count
        return None


def sample_collapse(model, n: int = DEFAULT_SAMPLES, *, seed: int = 0, classifier=None, device=None) -> dict:
    """:func:`collapse_stats` of ``n`` samples of ``model`` (eval mode, fixed ``seed``; see
    :func:`~.sampling.sample_blocks`); ``classifier`` a loaded
    :class:`~.classifiers.ScoreClassifier` or ``None`` (no ``classes_covered``)."""
    from .sampling import sample_blocks

    if n < 2:
        raise FlowganError("collapse diagnostics need at least 2 samples")
    images = torch.cat(list(sample_blocks(model, n, seed)))
    logits = None
    if classifier is not None and bool(torch.isfinite(images).all()):
        logits, _ = classifier.predict(images, device=device)
    out = collapse_stats(images, logits)
    if classifier is not None:  # which classifier counted the classes: name@hash
        info = classifier.summary()
        out["collapse_classifier"] = info["classifier_name"] + (
            f"@{info['classifier_sha256']}" if info.get("classifier_sha256") else ""
        )
    return out
