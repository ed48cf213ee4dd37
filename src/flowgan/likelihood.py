r"""Exact negative log-likelihood of discrete 8-bit images under a flow, in nats and bits/dim.

Dequantization (Appendix A, after Uria et al. 2013): a pixel value ``k ∈ {0, …, 255}`` becomes
``x = (k + u) / 256`` with ``u ~ U(0, 1)``, a continuous image in ``[0, 1]``.

Units, both reported for every dataset:

* **nats** -- the paper's MNIST convention (Tables 1 and 3): ``-log p(x)`` of the continuous
  density on ``[0, 1]^D``, without the ``D·ln 256`` term, so good models are negative
  (NICE-MLE on MNIST: about -3300 nats).
* **bits/dim** -- the standard discrete convention (Table 2): the density on ``[0, 256]^D``, per
  dimension in bits, ``bpd = (nats + D·ln 256) / (D·ln 2)``. With uniform dequantization this is
  an upper bound on the discrete model's bits/dim (Theis et al. 2016).

Determinism (the original code drew fresh noise at every evaluation): the noise of sample ``i``
is a fixed function of ``(seed, i)``. It comes from a CPU generator seeded per block of
:data:`NOISE_BLOCK` consecutive samples, so the number does not depend on the batch size, the
device or how the data are sharded across processes. ``draws=K`` averages ``-log p`` over ``K``
such noise draws (seeds ``seed, seed+1, …``); the default is one draw with seed 0.
"""

from __future__ import annotations

import math
from typing import Iterator

import torch

from .runtime import mix_seed

LN2 = math.log(2.0)
LN256 = math.log(256.0)
NOISE_BLOCK = 256
UNITS = ("nats", "bpd")


def nats_to_bpd(nats, dim: int):
    """``bpd = (nats + D·ln 256) / (D·ln 2)`` for a per-image NLL in the paper's nats."""
    return (nats + dim * LN256) / (dim * LN2)


def bpd_to_nats(bpd, dim: int):
    """Inverse of :func:`nats_to_bpd`."""
    return bpd * dim * LN2 - dim * LN256


def dequantize(images: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """``(k + u) / 256`` for uint8 pixel values ``k`` and noise ``u ∈ [0, 1)`` of the same shape."""
    return (images.to(noise.dtype) + noise) / 256.0


def dequantization_noise(
    start: int, count: int, shape: tuple[int, ...], seed: int = 0, dtype=torch.float32
) -> torch.Tensor:
    """The fixed noise of samples ``start … start+count-1`` (CPU tensor ``(count, *shape)``)."""
    if count <= 0:
        return torch.empty((0, *shape), dtype=dtype)
    first, last = start // NOISE_BLOCK, (start + count - 1) // NOISE_BLOCK
    blocks = []
    for b in range(first, last + 1):
        # The CPU generator uses 32 bits of its seed: mix (seed, block) with a SeedSequence.
        gen = torch.Generator().manual_seed(mix_seed(seed, b))
        blocks.append(torch.rand((NOISE_BLOCK, *shape), generator=gen, dtype=dtype))
    noise = torch.cat(blocks) if len(blocks) > 1 else blocks[0]
    offset = start - first * NOISE_BLOCK
    return noise[offset : offset + count]


def dequantized(
    images: torch.Tensor, seed: int = 0, dtype: torch.dtype = torch.float32, start: int = 0
) -> torch.Tensor:
    """The continuous images the flows are evaluated on: ``(k + u)/256`` for uint8 ``images`` with
    the fixed noise of :func:`dequantization_noise` (image ``i`` gets the noise of index
    ``start + i``), so every estimate (exact NLL, mixture, KDE, AIS) sees identical points."""
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8:
        raise ValueError("dequantized expects uint8 images")
    return dequantize(images, dequantization_noise(start, len(images), tuple(images.shape[1:]), seed, dtype))


def _check_images(model, data: torch.Tensor) -> None:
    if not isinstance(data, torch.Tensor) or data.dtype != torch.uint8:
        raise ValueError(
            "nll expects discrete 8-bit images (a uint8 tensor); for continuous images in [0, 1] use model.log_prob"
        )
    if tuple(data.shape[1:]) != tuple(model.shape):
        raise ValueError(f"images have shape {tuple(data.shape[1:])}, the model expects {tuple(model.shape)}")


def _batches(n: int, batch_size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, batch_size):
        yield start, min(batch_size, n - start)


@torch.no_grad()
def log_likelihoods(
    model,
    data: torch.Tensor,
    *,
    seed: int = 0,
    draws: int = 1,
    batch_size: int = 1000,
    index_offset: int = 0,
    progress: bool = False,
) -> torch.Tensor:
    """Per-image ``log p(x)`` in nats (continuous convention), averaged over ``draws`` noise draws.

    ``data`` is a uint8 tensor ``(N, C, H, W)``. ``index_offset`` is the index of ``data[0]`` in
    the whole split (for sharded evaluation: the noise follows the global index). The model is
    evaluated in eval mode (batch-norm running statistics) and restored to its previous mode.
    Returns a float64 CPU tensor of shape ``(N,)``.
    """
    _check_images(model, data)
    if draws < 1:
        raise ValueError("draws must be >= 1")
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    from .models import device_dtype

    device, param_dtype = device_dtype(model)
    # Never evaluate the likelihood in reduced precision: float32 at least.
    dtype = param_dtype if param_dtype in (torch.float32, torch.float64) else torch.float32
    was_training = model.training
    model.eval()
    out = torch.zeros(len(data), dtype=torch.float64)
    steps = [(d, s, c) for d in range(draws) for s, c in _batches(len(data), batch_size)]
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc="exact NLL", unit="batch", leave=False)
    try:
        for d, start, count in steps:
            noise = dequantization_noise(index_offset + start, count, tuple(model.shape), seed + d, dtype)
            x = dequantize(data[start : start + count].to(device), noise.to(device))
            with torch.autocast(device.type, enabled=False):
                lp = model.log_prob(x)
            out[start : start + count] += lp.double().cpu()
    finally:
        model.train(was_training)
    return out / draws


def nll(model, data: torch.Tensor, unit: str = "nats", **kwargs) -> float:
    """Mean exact negative log-likelihood of uint8 images ``data`` in ``unit`` ("nats" or "bpd").

    Deterministic: see the module docstring (fixed noise per sample index; ``seed=0``,
    ``draws=1`` by default). Keyword arguments go to :func:`log_likelihoods`.
    """
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
    nats = float(-log_likelihoods(model, data, **kwargs).mean())
    return nats if unit == "nats" else float(nats_to_bpd(nats, math.prod(model.shape)))


def nll_report(model, data: torch.Tensor, **kwargs) -> dict[str, float]:
    """``{"nll_nats": …, "nll_bpd": …}`` from one pass over ``data``."""
    nats = float(-log_likelihoods(model, data, **kwargs).mean())
    return {"nll_nats": nats, "nll_bpd": float(nats_to_bpd(nats, math.prod(model.shape)))}
