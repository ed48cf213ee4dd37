"""Data passed from Python: tensors, arrays or a ``torch.utils.data.Dataset`` of images, made into
an :class:`~flowgan.data.ImageDataset` with the same checks as the data files (``flowgan.train(
config, out, data=...)``).

``data`` may be

* a name or ``.npz`` path, as ``--dataset`` takes (:func:`flowgan.data.load_dataset`);
* an :class:`~flowgan.data.ImageDataset`;
* images: a tensor or array ``(N, C, H, W)`` (or ``(N, H, W)``, or ``(N, H, W, C)`` with C = 1 or 3)
  of uint8 (0..255) or floats in ``[0, 1]`` (read as ``round(255·x)``: the inverse of
  torchvision's ``ToTensor``), or a ``torch.utils.data.Dataset`` whose items are an image or an
  ``(image, label)`` pair;
* ``(images, labels)``: labels an integer vector of the same length, class ids ``0..K-1``;
* ``{"train": ..., "val": ..., "test": ...}`` of either of the above (``val`` optional).

Without a ``test`` split, 10% of the images are held out as test and 10% as validation (at
random, seed 0); without ``val``, 10% of ``train``. Every split must be non-empty with one image
shape; labels must be given for every split or none. Each problem is one line naming the split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data import ImageDataset, Split, check_labels, load_dataset, validate_dataset
from .errors import DataError

#: the name a run records for data passed from Python
PYTHON_DATA = "python:data"


def as_dataset(data: Any, data_dir: str | Path | None = None) -> ImageDataset:
    """The :class:`~flowgan.data.ImageDataset` of ``data`` (see the module docstring)."""
    if isinstance(data, ImageDataset):
        return validate_dataset(data, data.name)
    if isinstance(data, (str, Path)):
        return load_dataset(str(data), data_dir)
    if isinstance(data, dict):
        unknown = set(data) - {"train", "val", "test"}
        if unknown or "train" not in data:
            raise DataError(f"data as a dict needs a 'train' split (and 'val', 'test'); got keys {sorted(data)}")
        splits = {k: _split(v, k) for k, v in data.items()}
    else:
        splits = {"train": _split(data, "data")}
    splits = _held_out(splits)
    return validate_dataset(ImageDataset(PYTHON_DATA, splits["train"], splits["val"], splits["test"]), "data")


def _split(value: Any, what: str) -> Split:
    """One split from images, ``(images, labels)`` or a Dataset."""
    if isinstance(value, torch.utils.data.Dataset) and not isinstance(value, torch.Tensor):
        value = _from_dataset(value, what)
    if isinstance(value, (tuple, list)) and len(value) == 2:
        images, labels = value
    else:
        images, labels = value, None
    x = images_uint8(images, what)
    return Split(x, None if labels is None else check_labels(labels, len(x), what))


def _from_dataset(ds, what: str):
    try:
        n = len(ds)
    except TypeError:
        raise DataError(f"{what}: a Dataset passed as data needs a length (a map-style dataset)") from None
    if n == 0:
        raise DataError(f"{what}: the dataset is empty")
    items = [ds[i] for i in range(n)]
    if isinstance(items[0], (tuple, list)):
        if any(len(item) < 2 for item in items):
            raise DataError(f"{what}: dataset items must all be images or all be (image, label) pairs")
        return torch.stack([torch.as_tensor(np.asarray(i[0])) for i in items]), torch.as_tensor(
            [int(i[1]) for i in items]
        )
    return torch.stack([torch.as_tensor(np.asarray(i)) for i in items])


def images_uint8(images: Any, what: str) -> torch.Tensor:
    """Images as uint8 ``(N, C, H, W)``; floats must lie in ``[0, 1]``."""
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images).detach().cpu()
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[1] not in (1, 3) and x.shape[-1] in (1, 3):
        x = x.permute(0, 3, 1, 2)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise DataError(
            f"{what}: images must be (N, C, H, W) with 1 or 3 channels (or NHW, NHWC), got {tuple(x.shape)}"
        )
    if len(x) == 0:
        raise DataError(f"{what}: no images")
    if x.dtype == torch.uint8:
        return x.contiguous()
    if not x.is_floating_point():
        raise DataError(f"{what}: images must be uint8 (0..255) or floats in [0, 1], got {x.dtype}")
    if not bool(torch.isfinite(x).all()) or float(x.min()) < 0 or float(x.max()) > 1:
        raise DataError(
            f"{what}: float images must be finite and lie in [0, 1] (min {float(x.min()):g}, max {float(x.max()):g})"
        )
    return torch.round(x.double() * 255).to(torch.uint8).contiguous()


def _held_out(splits: dict[str, Split]) -> dict[str, Split]:
    """Hold out 10% of ``train`` (at random, seed 0) for each of test and val not given."""
    missing = [name for name in ("test", "val") if name not in splits]
    train = splits["train"]
    if not missing:
        return splits
    if len(train) <= len(missing):
        raise DataError(f"{len(train)} images cannot be split into train, val and test: pass the splits as a dict")
    perm = np.random.default_rng(0).permutation(len(train))
    k = max(1, len(train) // 10)
    for i, name in enumerate(missing):
        splits[name] = _take(train, np.sort(perm[i * k : (i + 1) * k]))
    splits["train"] = _take(train, np.sort(perm[len(missing) * k :]))
    return splits


def _take(split: Split, idx: np.ndarray) -> Split:
    index = torch.from_numpy(idx)
    return Split(split.images[index], None if split.labels is None else split.labels[index])
