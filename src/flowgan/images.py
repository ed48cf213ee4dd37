"""Sample grids as PNG files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from .atomic import replacing


def image_grid(images: torch.Tensor, nrow: int | None = None, pad: int = 2) -> np.ndarray:
    """Tile ``(N, C, H, W)`` images in ``[0, 1]`` into one ``uint8`` array ``(H', W', C)``."""
    x = images.detach().float().clamp(0, 1).cpu()
    n, c, h, w = x.shape
    nrow = nrow or max(1, int(math.ceil(math.sqrt(n))))
    ncol = int(math.ceil(n / nrow))
    grid = torch.ones(c, ncol * (h + pad) + pad, nrow * (w + pad) + pad)
    for i in range(n):
        r, q = divmod(i, nrow)
        top, left = pad + r * (h + pad), pad + q * (w + pad)
        grid[:, top : top + h, left : left + w] = x[i]
    arr = (grid * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()
    return arr[:, :, 0] if c == 1 else arr


def save_grid(images: torch.Tensor, path: str | Path, nrow: int | None = None, scale: int = 2) -> Path:
    """Write a grid of images to ``path`` (PNG; another suffix PIL knows, such as ``.jpg``, picks its
    format), each pixel enlarged ``scale`` times; atomically (:mod:`flowgan.atomic`)."""
    from PIL import Image

    arr = image_grid(images, nrow)
    if scale > 1:
        arr = arr.repeat(scale, axis=0).repeat(scale, axis=1)
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower(), "PNG")  # the suffix's format, as PIL chooses
    with replacing(path) as tmp:
        Image.fromarray(arr).save(tmp, format=fmt)
    return path
