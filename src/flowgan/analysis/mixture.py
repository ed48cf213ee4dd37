r"""The exact, chunked log-density of an isotropic Gaussian mixture: the kernel of the mixture
baseline (:mod:`flowgan.analysis.gmm`, §3.4) and of the Parzen-window estimate (:mod:`flowgan.analysis.kde`).

.. math::

    \log p_σ(x) = \operatorname{logsumexp}_i\Big(-\frac{\lVert x-c_i\rVert^2}{2σ^2}\Big) - \log m
                  - \frac D2 \log(2πσ^2).

**Computation.** ``‖x − c‖² = ‖x‖² − 2x·c + ‖c‖²``: a matrix product of a block of held-out
points with a block of centres, followed by a running log-sum-exp over the centre blocks. Memory
is bounded by one ``rows × centres`` block whatever ``n`` and ``m`` are; every term is computed
(no approximation, no nearest-neighbour truncation).

**Precision.** With small ``σ`` the log-densities are huge (``‖x−c‖²/(2σ²)`` is ~10⁵ nats at
``σ = 0.01`` on MNIST) and what matters is the absolute error of the squared distances, which is
multiplied by ``1/(2σ²)``. ``precision="float64"`` does everything in float64 (the reference).
``precision="float32"`` (default; about twice as fast, see ``benchmarks/gmm_nll.py``) computes the
distance matrix in float32 after subtracting a common offset from points and centres (the centres'
mean rounded to a multiple of 2⁻⁹, so the shifted centres are exact in float32; distances are
translation invariant and the shift shrinks the magnitudes that cancel), takes the log-sum-exp
within a block in float32 relative to the block's minimum distance (terms in ``(0, 1]``), and
accumulates across blocks in float64. Finally the dominant term -- the nearest centre -- is
recomputed exactly in float64 and substituted. The remaining error is that of the non-dominant
terms, at most ``(1 − w_nearest)·ε/(2σ²)`` nats for a squared-distance error ``ε`` (≈1e-5 on
MNIST): it vanishes for small ``σ`` (one term dominates) and for large ``σ`` (``1/(2σ²)`` is small).
``tests/test_gmm.py`` checks float32 against float64 and scipy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

_LOG_2PI = math.log(2.0 * math.pi)
_EXP_FLOOR = -80.0


def compute_dtype(precision: str) -> torch.dtype:
    if precision == "float32":
        return torch.float32
    if precision == "float64":
        return torch.float64
    raise ValueError(f"precision must be 'float32' or 'float64', got {precision!r}")


def as_sigmas(sigmas) -> list[float]:
    out = [float(s) for s in (sigmas if isinstance(sigmas, (list, tuple, np.ndarray, torch.Tensor)) else [sigmas])]
    if not out or any(not (s > 0 and math.isfinite(s)) for s in out):
        raise ValueError(f"bandwidths must be positive and finite, got {out}")
    return out


@dataclass
class PreparedCentres:
    """Centres shifted by a common offset, in the compute dtype, with their squared norms."""

    centres: torch.Tensor  # (m, D) the original centres (float32 or float64), for the exact correction
    shifted: torch.Tensor  # (m, D) centres - offset, compute dtype
    sq_norms: torch.Tensor  # (m,) ‖centres - offset‖², compute dtype
    offset: torch.Tensor  # (D,) float64, a multiple of 2^-9
    dtype: torch.dtype


def prepare_centres(centres: torch.Tensor, precision: str = "float32") -> PreparedCentres:
    """Shift ``centres`` (m, D) by their mean rounded to a multiple of 2⁻⁹ and cache norms."""
    dtype = compute_dtype(precision)
    if centres.ndim != 2 or len(centres) == 0:
        raise ValueError(f"centres must be a non-empty (m, D) tensor, got shape {tuple(centres.shape)}")
    offset = torch.round(centres.double().mean(0) * 512.0) / 512.0
    shifted = (centres.double() - offset).to(dtype)
    sq_norms = shifted.double().square().sum(1).to(dtype)
    return PreparedCentres(centres, shifted.contiguous(), sq_norms, offset, dtype)


def mixture_log_prob(
    x: torch.Tensor,
    centres: torch.Tensor | PreparedCentres,
    sigmas,
    *,
    precision: str = "float32",
    chunk_rows: int = 1024,
    chunk_centres: int = 4096,
    progress: bool = False,
) -> torch.Tensor:
    r"""``log (1/m) Σ_i N(x; c_i, σ²I)`` for every point and every ``σ``: a float64 tensor ``(n, K)``.

    ``x`` is ``(n, D)`` (any float dtype), ``centres`` ``(m, D)`` or a :class:`PreparedCentres`,
    ``sigmas`` one bandwidth or a sequence of ``K``. All bandwidths share one pass over the
    distance matrix (one matrix product per block). See the module docstring for the precision
    scheme; ``chunk_rows × chunk_centres`` bounds the working memory.
    """
    prep = centres if isinstance(centres, PreparedCentres) else prepare_centres(centres, precision)
    dtype = prep.dtype
    sig = as_sigmas(sigmas)
    if x.ndim != 2 or x.shape[1] != prep.shifted.shape[1]:
        raise ValueError(f"points must be (n, {prep.shifted.shape[1]}), got {tuple(x.shape)}")
    n, d = x.shape
    m = prep.shifted.shape[0]
    k = len(sig)
    device = prep.shifted.device  # computed where the centres are; the result is on the CPU
    inv64 = torch.tensor([1.0 / (2.0 * s * s) for s in sig], dtype=torch.float64, device=device)
    const = torch.tensor(
        [-math.log(m) - 0.5 * d * (_LOG_2PI + 2.0 * math.log(s)) for s in sig], dtype=torch.float64, device=device
    )
    offset = prep.offset.to(device)
    out = torch.empty(n, k, dtype=torch.float64)
    chunk_rows, chunk_centres = max(1, int(chunk_rows)), max(1, int(chunk_centres))
    blocks = [(r, c) for r in range(0, n, chunk_rows) for c in range(0, m, chunk_centres)]
    bar = None
    if progress and len(blocks) > 1:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(blocks), desc="mixture log p", unit="block", leave=False)
    centres_t = prep.shifted.T  # (D, m) view; addmm handles the transpose without a copy
    for r0 in range(0, n, chunk_rows):
        xr64 = x[r0 : r0 + chunk_rows].to(device=device, dtype=torch.float64) - offset
        xr = xr64.to(dtype)
        b = xr.shape[0]
        x_sq = xr64.square().sum(1)  # float64
        run_min = torch.full((b,), math.inf, dtype=torch.float64, device=device)
        run_arg = torch.zeros(b, dtype=torch.long, device=device)
        run_lse = torch.full(
            (b, k), -math.inf, dtype=torch.float64, device=device
        )  # log Σ exp(-(d'_j)·inv), d' = ‖c‖² - 2x·c
        buf = None
        for c0 in range(0, m, chunk_centres):
            c1 = min(m, c0 + chunk_centres)
            dist = torch.addmm(prep.sq_norms[c0:c1].unsqueeze(0), xr, centres_t[:, c0:c1], beta=1.0, alpha=-2.0)
            bmin, barg = dist.min(dim=1)
            dist.sub_(bmin.unsqueeze(1))  # d' - min >= 0, exact enough (Sterbenz near the minimum)
            bmin64 = bmin.to(torch.float64)
            if buf is None or buf.shape != dist.shape:
                buf = torch.empty_like(dist)
            for j in range(k):
                # Σ_j exp(-(d'_j - min)·inv) in the compute dtype: terms in (0, 1], the min term is
                # exactly 1. Arguments are clamped at -80 (exp is ~20x slower below its normal
                # range): that adds at most m·e^-80 ≈ 1e-30 relative to the sum.
                rel = torch.mul(dist, -float(inv64[j]), out=buf).clamp_(min=_EXP_FLOOR).exp_().sum(1).to(torch.float64)
                run_lse[:, j] = torch.logaddexp(run_lse[:, j], rel.log() - bmin64 * inv64[j])
            better = bmin64 < run_min
            run_arg = torch.where(better, barg + c0, run_arg)
            run_min = torch.where(better, bmin64, run_min)
            if bar is not None:
                bar.update(1)
        if dtype == torch.float64:
            log_sum = run_lse - x_sq.unsqueeze(1) * inv64  # log Σ exp(-‖x-c‖²·inv)
        else:
            # Substitute the nearest centre's term, recomputed exactly in float64.
            nearest = prep.centres[run_arg].to(torch.float64) - offset
            d2_exact = (xr64 - nearest).square().sum(1)
            d2_approx = run_min + x_sq
            # A = log of (Σ_j exp(-(d'_j - min)·inv)) >= 0: the min term contributes exactly 1.
            a = (run_lse + run_min.unsqueeze(1) * inv64).clamp_min(0.0)
            others = torch.log(torch.expm1(a))  # log Σ_{j ≠ nearest} (relative), -inf if none
            delta = (d2_exact - d2_approx).unsqueeze(1) * inv64
            log_sum = -d2_exact.unsqueeze(1) * inv64 + torch.logaddexp(torch.zeros_like(others), others + delta)
        out[r0 : r0 + b] = (log_sum + const).cpu()
    if bar is not None:
        bar.close()
    return out
