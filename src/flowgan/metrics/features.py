"""Real images as the scores see them, and the cached reference features of a dataset split.

Real images. A split's uint8 images ``k`` are scored as ``(k + u)/256`` with the *fixed*
evaluation noise ``u`` of :func:`flowgan.likelihood.dequantization_noise` (seed 0, a function of
the image's index): the continuous images whose density the flow models and whose distribution
its samples (continuous, in ``[0, 1]``) imitate, so real and generated images go through the
classifier on the same footing. The choice is deterministic: the same split always gives the same
numbers. (``k/255`` would put real images on a lattice the samples never sit on; the difference
for the offline classifiers, trained on dequantized images, is small either way.)

Reference features. FID and KID compare generated images with the real images of a split
(``test`` for ``flowgan evaluate``; ``val`` during training). Their classifier features are computed
once and cached in ``<cache>/reference/`` (``$FLOWGAN_CACHE``, else ``~/.cache/flowgan``) as float32
tensors, keyed by dataset name, split, a hash of the split's images, and a hash of the classifier
weights, so a changed dataset or classifier never reuses stale statistics. The features of all
images are kept (not only mean and covariance): KID needs them.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import torch

from ..errors import FlowganError

PREPROCESSING = "dequantized (k + u)/256, fixed evaluation noise (seed 0)"
_CACHE_VERSION = "v1"


def cache_root() -> Path:
    env = os.environ.get("FLOWGAN_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "flowgan"


def real_images(images: torch.Tensor, start: int = 0) -> torch.Tensor:
    """uint8 images ``(N, C, H, W)`` as the scores see them: float32 ``(k + u)/256`` with the fixed
    noise of image indices ``start … start+N-1`` (see the module docstring)."""
    from ..likelihood import dequantization_noise, dequantize

    if images.dtype != torch.uint8:
        raise ValueError("real_images expects uint8 images")
    noise = dequantization_noise(start, len(images), tuple(images.shape[1:]), 0, torch.float32)
    return dequantize(images, noise)


def images_key(images: torch.Tensor) -> str:
    """A short hash of a uint8 image tensor (its shape and bytes)."""
    h = hashlib.sha256(str(tuple(images.shape)).encode())
    h.update(images.contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def reference_path(dataset, split: str, clf) -> Path:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", dataset.name)
    images = dataset.split(split).images
    return cache_root() / "reference" / f"{name}-{split}-{images_key(images)}-{clf.key}-{_CACHE_VERSION}.pt"


def reference_features(
    dataset, split: str, clf, *, device=None, batch_size: int = 500, cache: bool = True
) -> torch.Tensor:
    """Classifier features ``(N, d)`` (float32, CPU) of the real images of ``dataset``'s ``split``,
    from the cache when present (computed and stored otherwise)."""
    images = dataset.split(split).images
    if len(images) < 2:
        raise FlowganError(f"the {split} split of {dataset.name} has {len(images)} images: FID/KID need at least 2")
    path = reference_path(dataset, split, clf) if cache and clf.key else None
    if path is not None and path.is_file():
        try:
            rec = torch.load(path, map_location="cpu", weights_only=True)
            feats = rec["features"]
            if isinstance(feats, torch.Tensor) and feats.shape[0] == len(images):
                return feats
        except Exception:  # a corrupt cache file is recomputed
            pass
    feats = []
    for start in range(0, len(images), batch_size):
        x = real_images(images[start : start + batch_size], start)
        _, f = clf.predict(x, features=True, batch_size=batch_size, device=device)
        feats.append(f.float())
    features = torch.cat(feats)
    if path is not None:
        from ..checkpoint import atomic_save

        try:
            atomic_save(
                {
                    "features": features,
                    "dataset": dataset.name,
                    "split": split,
                    "n": len(images),
                    "classifier": clf.describe(),
                    "preprocessing": PREPROCESSING,
                },
                path,
            )
        except OSError:  # a read-only cache is not an error
            pass
    return features
