r"""Latent interpolation: walk from one image to another through the flow's latent space.

:func:`interpolate` encodes two images ``x0, x1`` with the model (``z = f(x)``), mixes the
latents and decodes every mix with the generator ``G = f⁻¹``:

* ``path="linear"`` (default): ``z_t = (1 - t)·z0 + t·z1`` for ``t = 0, 1/(steps-1), …, 1``;
* ``path="slerp"``: spherical interpolation (Shoemake 1985; White 2016 for generative models),
  ``z_t = sin((1-t)Ω)/sin Ω · z0 + sin(tΩ)/sin Ω · z1`` with ``Ω`` the angle between the
  flattened latents. Meant for the Gaussian prior of Real-NVP: in ``D`` dimensions a standard
  normal latent has norm close to ``√D``, and the linear midpoint of two independent ones has norm
  close to ``√(D/2)``, a region the prior almost never draws from; slerp keeps the norm near
  ``√D`` all the way. (It runs for the logistic prior too, whose norms concentrate likewise.)
  Where ``sin Ω`` is tiny (latents nearly parallel or opposite) it falls back to ``linear``.

The endpoints ``t = 0, 1`` are ``z0`` and ``z1`` exactly, so the first and last images are
``G(f(x0))`` and ``G(f(x1))``: the inputs up to the float error of inverting the flow.

The model is evaluated in eval mode (running batch-norm statistics, as every likelihood and sample
of flowgan), under ``torch.no_grad()``; its modes are restored afterwards.
"""

from __future__ import annotations

import torch

from .generator import require
from .models import device_dtype

__all__ = ["PATHS", "interpolate", "interpolation_rows", "midpoint_dequantize", "mix_latents", "pair_indices"]

#: the interpolation paths :func:`interpolate` knows
PATHS = ("linear", "slerp")


def _image(x, what: str, like: torch.Tensor | None) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError(
            f"{what} must be a floating-point tensor in [0, 1] (dequantize uint8 images first), "
            f"got {getattr(x, 'dtype', type(x).__name__)}"
        )
    if x.dim() == 4 and x.shape[0] == 1:
        x = x[0]
    if x.dim() != 3:
        raise ValueError(f"{what} must have shape (C, H, W) or (1, C, H, W), got {tuple(x.shape)}")
    if like is not None and x.shape != like.shape:
        raise ValueError(f"x0 and x1 must have the same shape, got {tuple(like.shape)} and {tuple(x.shape)}")
    if bool(torch.isnan(x).any()) or float(x.min()) < 0.0 or float(x.max()) > 1.0:
        raise ValueError(f"{what} must be in [0, 1]")
    return x


def _weights(steps: int, like: torch.Tensor) -> torch.Tensor:
    """``steps`` values of ``t`` from 0 to 1, shaped to broadcast against a batch of latents."""
    t = torch.linspace(0.0, 1.0, steps, dtype=like.dtype, device=like.device)
    return t.view(steps, *([1] * (like.dim() - 1)))


def mix_latents(z0: torch.Tensor, z1: torch.Tensor, steps: int, path: str = "linear") -> torch.Tensor:
    """``(steps, *shape)`` latents from ``z0`` to ``z1`` (each of shape ``(1, *shape)``) along ``path``."""
    t = _weights(steps, z0)
    if path == "slerp":
        a, b = z0.flatten(), z1.flatten()
        cos = (a @ b) / (a.norm() * b.norm()).clamp_min(torch.finfo(a.dtype).tiny)
        omega = torch.arccos(cos.clamp(-1.0, 1.0))
        sin = torch.sin(omega)
        if float(sin) > 1e-6:
            return torch.sin((1.0 - t) * omega) / sin * z0 + torch.sin(t * omega) / sin * z1
    return (1.0 - t) * z0 + t * z1


def interpolate(model, x0: torch.Tensor, x1: torch.Tensor, steps: int = 8, *, path: str = "linear") -> torch.Tensor:
    """Decoded interpolation between the latents of images ``x0`` and ``x1``.

    ``model`` needs ``encode(x) -> z`` and ``decode(z) -> x`` (a :class:`~flowgan.models.FlowModel`);
    without them a :class:`~flowgan.errors.CapabilityError`. ``x0``, ``x1``: continuous images in
    ``[0, 1]`` of shape ``(C, H, W)`` or ``(1, C, H, W)`` (for 8-bit data, dequantize first, e.g.
    ``(k + 0.5) / 256``). ``steps >= 2`` images are returned, ``(steps, C, H, W)`` clamped to
    ``[0, 1]``, on the model's device and dtype; the first and last reproduce ``x0`` and ``x1`` up
    to float error. ``path``: ``"linear"`` or ``"slerp"`` (module docstring).
    """
    require(model, "encode", "decode", analysis="interpolation")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise ValueError(f"steps must be an integer >= 2, got {steps!r}")
    if path not in PATHS:
        raise ValueError(f"unknown interpolation path {path!r}; choose {' or '.join(PATHS)}")
    x0 = _image(x0, "x0", None)
    x1 = _image(x1, "x1", x0)
    modules = list(model.modules()) if isinstance(model, torch.nn.Module) else []
    modes = [m.training for m in modules]
    if modules:
        device, dtype = device_dtype(model)
        x0, x1 = x0.to(device, dtype), x1.to(device, dtype)
        model.eval()
    try:
        with torch.no_grad():
            z = model.encode(torch.stack([x0, x1]))
            zs = mix_latents(z[:1], z[1:], steps, path)
            return model.decode(zs).clamp(0.0, 1.0)
    finally:
        for m, mode in zip(modules, modes):
            m.training = mode


def interpolation_rows(model, x0s: torch.Tensor, x1s: torch.Tensor, steps: int, path: str = "linear") -> torch.Tensor:
    """One figure row per pair: ``x0``, the ``steps`` decoded images, ``x1``; all rows stacked into
    ``(pairs·(steps + 2), C, H, W)`` for :func:`flowgan.images.save_grid` with ``nrow=steps + 2``."""
    rows = []
    for a, b in zip(x0s, x1s):
        mid = interpolate(model, a, b, steps, path=path).to(a.device, a.dtype)
        rows.append(torch.cat([a[None], mid, b[None]]))
    return torch.cat(rows)


def midpoint_dequantize(images: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(k + 1/2) / 256`` of uint8 pixel values ``k``: each pixel at the centre of its bin, the
    deterministic dequantization the interpolation figure encodes (no noise in the picture)."""
    from .likelihood import dequantize

    return dequantize(images, torch.full(images.shape, 0.5, dtype=dtype))


def pair_indices(n: int, pairs: int, seed: int) -> tuple[list[int], list[int]]:
    """``pairs`` disjoint pairs of distinct indices in ``range(n)``, fixed by ``seed``."""
    if 2 * pairs > n:
        raise ValueError(f"{pairs} pairs need {2 * pairs} images, the split has {n}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return order[:pairs], order[pairs : 2 * pairs]
