r"""The Gaussian-mixture baseline of §3.4 (Figures 3, 6 and 7) and the chunked kernel it shares with KDE.

**Model.** ``m`` isotropic Gaussians of equal weight, one at each training point ``c_i``, with a
shared bandwidth ``σ`` (Grover et al. 2018, §3.4):

.. math::

    p_σ(x) = \frac1m \sum_{i=1}^m \mathcal N(x;\, c_i,\, σ^2 I_D), \qquad
    \log p_σ(x) = \operatorname{logsumexp}_i\Big(-\frac{\lVert x-c_i\rVert^2}{2σ^2}\Big) - \log m
                  - \frac D2 \log(2πσ^2).

The same formula with model samples as centres is the Parzen-window estimate of Goodfellow et al.
(2014) (:mod:`flowgan.analysis.kde`), which reuses :func:`mixture_log_prob`.

**Centres.** A training image with pixel values ``k ∈ {0..255}`` is placed at ``(k + ½)/256``: the
mean of its dequantized pixel ``(k + U)/256`` (Appendix A), so the baseline treats a training
image and the cell of continuous images it stands for symmetrically. (``centre="low"`` uses
``k/256``, the lower corner of the cell.) Held-out images are dequantized exactly as for the
flows (:func:`flowgan.likelihood.log_likelihoods`: ``x = (k+u)/256`` with fixed noise per index),
so NLLs are in the same units as the flows': nats of the continuous density on ``[0,1]^D``
(``bpd = (nats + D ln 256)/(D ln 2)``). The mixture is a density on all of ``R^D``; on ``[0,1]^D``
it integrates to less than one, which only makes the baseline look worse than it could.

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
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

#: Coarse grid of the σ line search in (0, 1] (log-spaced, 0.01 … 1).
DEFAULT_GRID: tuple[float, ...] = tuple(float(s) for s in np.geomspace(0.01, 1.0, 13))

_LOG_2PI = math.log(2.0 * math.pi)
_EXP_FLOOR = -80.0


def _compute_dtype(precision: str) -> torch.dtype:
    if precision == "float32":
        return torch.float32
    if precision == "float64":
        return torch.float64
    raise ValueError(f"precision must be 'float32' or 'float64', got {precision!r}")


def _as_sigmas(sigmas) -> list[float]:
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
    dtype = _compute_dtype(precision)
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
    sig = _as_sigmas(sigmas)
    if x.ndim != 2 or x.shape[1] != prep.shifted.shape[1]:
        raise ValueError(f"points must be (n, {prep.shifted.shape[1]}), got {tuple(x.shape)}")
    n, d = x.shape
    m = prep.shifted.shape[0]
    k = len(sig)
    device = prep.shifted.device  # computed where the centres are; the result is on the CPU
    inv64 = torch.tensor([1.0 / (2.0 * s * s) for s in sig], dtype=torch.float64, device=device)
    const = torch.tensor([-math.log(m) - 0.5 * d * (_LOG_2PI + 2.0 * math.log(s)) for s in sig], dtype=torch.float64, device=device)
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
        run_lse = torch.full((b, k), -math.inf, dtype=torch.float64, device=device)  # log Σ exp(-(d'_j)·inv), d' = ‖c‖² - 2x·c
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


def _flat(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    if tuple(x.shape[1:]) != tuple(shape):
        raise ValueError(f"images must have shape (N, {', '.join(map(str, shape))}), got {tuple(x.shape)}")
    return x.reshape(x.shape[0], -1)


class GaussianMixtureBaseline(nn.Module):
    r"""The baseline of §3.4: one Gaussian ``N(c_i, σ²I)`` at each of the ``m`` training points.

    ``train_images``: uint8 images ``(m, C, H, W)`` (centres at ``(k + ½)/256``, or ``k/256``
    with ``centre="low"``) or float images (used as they are, e.g. model samples for KDE).
    ``log_prob(x)`` takes continuous images in ``[0, 1]`` shaped like the flows' input and
    returns nats (float64, shape ``(N,)``), so :func:`flowgan.nll` and
    :func:`flowgan.likelihood.log_likelihoods` work on the mixture unchanged (same
    dequantization, same units). ``sample(n)`` draws ``c_I + σ ε`` with ``I`` uniform.
    """

    def __init__(
        self,
        train_images: torch.Tensor,
        sigma: float = 0.1,
        *,
        centre: str = "mid",
        precision: str = "float32",
        chunk_rows: int = 1024,
        chunk_centres: int = 4096,
    ):
        super().__init__()
        if not isinstance(train_images, torch.Tensor) or train_images.ndim < 2 or len(train_images) == 0:
            raise ValueError("train_images must be a non-empty tensor (m, C, H, W)")
        if train_images.dtype == torch.uint8:
            if centre not in ("mid", "low"):
                raise ValueError(f"centre must be 'mid' or 'low', got {centre!r}")
            offset = 0.5 if centre == "mid" else 0.0
            centres = (train_images.to(torch.float32) + offset) / 256.0  # exact in float32
        elif train_images.is_floating_point():
            centres = train_images.detach().to(torch.float64 if train_images.dtype == torch.float64 else torch.float32)
        else:
            raise ValueError(f"train_images must be uint8 or floating point, got {train_images.dtype}")
        _compute_dtype(precision)
        self._shape = tuple(int(s) for s in train_images.shape[1:])
        self.register_buffer("centres", centres.reshape(len(centres), -1).contiguous())
        self.centre = centre if train_images.dtype == torch.uint8 else "given"
        self.precision = precision
        self.chunk_rows, self.chunk_centres = int(chunk_rows), int(chunk_centres)
        self.sigma = sigma
        self._prepared: PreparedCentres | None = None

    @property
    def sigma(self) -> float:
        return self._sigma

    @sigma.setter
    def sigma(self, value: float) -> None:
        self._sigma = _as_sigmas(value)[0]

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape ``(C, H, W)`` of one image."""
        return self._shape

    @property
    def dim(self) -> int:
        return math.prod(self._shape)

    @property
    def num_components(self) -> int:
        return int(self.centres.shape[0])

    def _prep(self) -> PreparedCentres:
        p = self._prepared
        if p is None or p.centres is not self.centres or p.dtype != _compute_dtype(self.precision):
            p = self._prepared = prepare_centres(self.centres, self.precision)
        return p

    def _apply(self, fn, *args, **kwargs):  # .to(), .double(), ...: drop the cache
        self._prepared = None
        return super()._apply(fn, *args, **kwargs)

    @torch.no_grad()
    def log_prob_sigmas(self, x: torch.Tensor, sigmas, progress: bool = False) -> torch.Tensor:
        """``log p_σ(x)`` for several bandwidths at the cost of one pass: float64 ``(N, K)``."""
        return mixture_log_prob(
            _flat(x, self._shape), self._prep(), sigmas, precision=self.precision,
            chunk_rows=self.chunk_rows, chunk_centres=self.chunk_centres, progress=progress,
        )

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact ``log p_σ(x)`` in nats of continuous images ``x`` ``(N, C, H, W)``; float64 ``(N,)``."""
        return self.log_prob_sigmas(x, [self._sigma])[:, 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.log_prob(x)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        *,
        clamp: bool = True,
        return_index: bool = False,
    ):
        """``n`` images ``c_I + σ·ε`` (``I`` uniform, ``ε ~ N(0, I)``), clamped to ``[0, 1]`` unless
        ``clamp=False`` (as the flows' ``sample``); with ``return_index`` also the ``I``."""
        m, device = self.num_components, self.centres.device
        idx = torch.randint(0, m, (int(n),), generator=generator)
        eps = torch.randn((int(n), self.centres.shape[1]), generator=generator, dtype=self.centres.dtype).to(device)
        x = (self.centres[idx.to(device)] + self._sigma * eps).reshape(int(n), *self._shape)
        if clamp:
            x = x.clamp(0.0, 1.0)
        return (x, idx) if return_index else x

    def extra_repr(self) -> str:
        return f"m={self.num_components}, shape={self._shape}, sigma={self._sigma:g}, centre={self.centre}, precision={self.precision}"


# --------------------------------------------------------------------------------------------
# bandwidth line search


def dequantized(images: torch.Tensor, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The continuous images the flows are evaluated on: ``(k + u)/256`` with the fixed noise of
    :func:`flowgan.likelihood.dequantization_noise` (index ``i`` of ``images`` gets the noise of
    index ``i``), so the mixture and a flow see identical held-out points."""
    from ..likelihood import dequantization_noise, dequantize

    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8:
        raise ValueError("dequantized expects uint8 images")
    noise = dequantization_noise(0, len(images), tuple(images.shape[1:]), seed, dtype)
    return dequantize(images, noise)


@dataclass
class SigmaSearch:
    """Result of :func:`search_sigma`: the best bandwidth and every bandwidth evaluated."""

    sigma: float
    nll: float  # mean -log p (nats) at sigma
    sigmas: list[float] = field(default_factory=list)  # sorted
    nlls: list[float] = field(default_factory=list)
    at_boundary: bool = False  # the optimum is at an end of the coarse grid

    def to_dict(self) -> dict[str, Any]:
        return {"sigma": self.sigma, "nll_nats": self.nll, "at_boundary": self.at_boundary,
                "evaluated": [[s, v] for s, v in zip(self.sigmas, self.nlls)]}


def search_sigma(
    mixture: GaussianMixtureBaseline,
    x: torch.Tensor,
    grid: Sequence[float] = DEFAULT_GRID,
    *,
    refine_rounds: int = 3,
    refine_points: int = 8,
    progress: bool = False,
) -> SigmaSearch:
    r"""Line search of ``σ`` on the mean NLL of continuous points ``x`` (validation data).

    A coarse pass evaluates every ``σ`` of ``grid`` (one pass over the distance matrix for all of
    them); each of ``refine_rounds`` rounds then evaluates ``refine_points`` log-spaced bandwidths
    strictly between the neighbours of the best one so far, shrinking the bracket by a factor of
    about ``(refine_points + 1)/2`` per round. Bandwidths stay in ``(0, max(grid)]``. The NLL
    need not be unimodal in σ; the search finds the best point of the grid and refines around it.
    """
    grid = sorted(set(_as_sigmas(list(grid))))
    results: dict[float, float] = {}

    def evaluate(sigmas: list[float]) -> None:
        new = [s for s in sigmas if s not in results]
        if new:
            lp = mixture.log_prob_sigmas(x, new, progress=progress)
            for s, v in zip(new, (-lp.mean(0)).tolist()):
                results[s] = float(v)

    evaluate(grid)
    best = min(results, key=results.get)
    at_boundary = best in (grid[0], grid[-1]) and len(grid) > 1
    lo_limit = 0.0
    hi_limit = grid[-1]
    for _ in range(max(0, int(refine_rounds))):
        ordered = sorted(results)
        i = ordered.index(best)
        lo = ordered[i - 1] if i > 0 else max(best / 2.0, lo_limit)
        hi = ordered[i + 1] if i + 1 < len(ordered) else min(best * 2.0, hi_limit)
        if hi <= lo or refine_points < 1:
            break
        pts = np.geomspace(lo, hi, int(refine_points) + 2)[1:-1]
        evaluate([float(p) for p in pts if 0 < p <= hi_limit])
        best = min(results, key=results.get)
    ordered = sorted(results)
    return SigmaSearch(best, results[best], ordered, [results[s] for s in ordered], at_boundary)


# --------------------------------------------------------------------------------------------
# the σ sweep of Figures 3 and 6


ScoreFn = Callable[[torch.Tensor], dict]


def default_score_fn(dataset, metrics: Sequence[str], split: str = "test") -> tuple[ScoreFn | None, str | None]:
    """``(score_fn, note)``: sample scores from :func:`flowgan.metrics.score_images` when the
    metrics package is installed (``note`` is ``None``), else ``(None, why)``."""
    try:
        from ..metrics import score_images  # type: ignore[attr-defined]
    except ImportError as e:
        return None, f"sample scores skipped: flowgan.metrics is not available ({e})"

    def score(images: torch.Tensor) -> dict:
        return dict(score_images(images, dataset, list(metrics), split=split))

    return score, None


def mixture_sweep(
    train_images: torch.Tensor,
    val_images: torch.Tensor,
    test_images: torch.Tensor | None = None,
    *,
    sigmas: Sequence[float] = DEFAULT_GRID,
    refine_rounds: int = 3,
    refine_points: int = 8,
    score_fn: ScoreFn | None = None,
    score_samples: int = 1000,
    seed: int = 0,
    centre: str = "mid",
    precision: str = "float32",
    progress: bool = False,
) -> dict[str, Any]:
    """NLL (and sample scores) of the mixture versus ``σ``, the σ line search, test NLL at the best σ.

    ``*_images`` are uint8 ``(N, C, H, W)``; validation and test points are dequantized with the
    flows' fixed noise (seed 0). ``score_fn(images) -> dict`` scores ``score_samples`` samples
    (clamped to [0, 1]) at every σ of ``sigmas``; ``None`` skips scores. Returns a JSON-ready dict.
    """
    from ..likelihood import nats_to_bpd

    gmm = GaussianMixtureBaseline(train_images, sigmas[0], centre=centre, precision=precision)
    dim = gmm.dim
    x_val = dequantized(val_images)
    sweep_sigmas = sorted(set(_as_sigmas(list(sigmas))))
    search = search_sigma(gmm, x_val, sweep_sigmas, refine_rounds=refine_rounds, refine_points=refine_points, progress=progress)
    by_sigma = dict(zip(search.sigmas, search.nlls))
    rows = []
    steps = sweep_sigmas
    if progress and score_fn is not None:
        from tqdm.auto import tqdm

        steps = tqdm(sweep_sigmas, desc="mixture sample scores", unit="σ", leave=False)
    for i, s in enumerate(steps):
        row: dict[str, Any] = {"sigma": s, "val_nll_nats": by_sigma[s], "val_nll_bpd": float(nats_to_bpd(by_sigma[s], dim))}
        if score_fn is not None:
            gmm.sigma = s
            samples = gmm.sample(score_samples, generator=torch.Generator().manual_seed(seed * 1000 + i))
            row["scores"] = {k: float(v) for k, v in score_fn(samples.float()).items() if isinstance(v, (int, float))}
        rows.append(row)
    result: dict[str, Any] = {
        "model": "gaussian-mixture",
        "centre": gmm.centre,
        "precision": precision,
        "n_components": gmm.num_components,
        "n_val": len(val_images),
        "dim": dim,
        "sweep": rows,
        "search": search.to_dict(),
        "best_sigma": search.sigma,
        "best_val_nll_nats": search.nll,
        "best_val_nll_bpd": float(nats_to_bpd(search.nll, dim)),
        "curve": [{"sigma": s, "val_nll_nats": v, "val_nll_bpd": float(nats_to_bpd(v, dim))} for s, v in zip(search.sigmas, search.nlls)],
    }
    if test_images is not None:
        gmm.sigma = search.sigma
        test_nll = float(-gmm.log_prob_sigmas(dequantized(test_images), [search.sigma], progress=progress).mean())
        result.update(n_test=len(test_images), test_nll_nats=test_nll, test_nll_bpd=float(nats_to_bpd(test_nll, dim)))
    return result
