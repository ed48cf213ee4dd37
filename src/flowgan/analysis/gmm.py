r"""The Gaussian-mixture baseline of §3.4 (Figures 3, 6 and 7): the model, the σ line search and sweep.

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

**Computation** (:mod:`flowgan.analysis.mixture`): every term of the log-sum-exp over the centres,
chunked so that memory is bounded whatever ``n`` and ``m`` are, in float32 with the nearest
centre's term recomputed in float64 (``precision="float32"``, default) or all in float64. The
comparison with a run (its best sample score and NLL as lines, the σ where the mixture beats it)
and the files of ``flowgan baseline gmm`` are in :mod:`flowgan.analysis.baseline`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..likelihood import dequantized
from .mixture import (
    PreparedCentres,
    as_sigmas,
    compute_dtype,
    mixture_log_prob,
    prepare_centres,
)

#: Coarse grid of the σ line search in (0, 1] (log-spaced, 0.01 … 1).
DEFAULT_GRID: tuple[float, ...] = tuple(float(s) for s in np.geomspace(0.01, 1.0, 13))


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
        compute_dtype(precision)
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
        self._sigma = as_sigmas(value)[0]

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
        if p is None or p.centres is not self.centres or p.dtype != compute_dtype(self.precision):
            p = self._prepared = prepare_centres(self.centres, self.precision)
        return p

    def _apply(self, fn, *args, **kwargs):  # .to(), .double(), ...: drop the cache
        self._prepared = None
        return super()._apply(fn, *args, **kwargs)

    @torch.no_grad()
    def log_prob_sigmas(self, x: torch.Tensor, sigmas, progress: bool = False) -> torch.Tensor:
        """``log p_σ(x)`` for several bandwidths at the cost of one pass: float64 ``(N, K)``."""
        return mixture_log_prob(
            _flat(x, self._shape),
            self._prep(),
            sigmas,
            precision=self.precision,
            chunk_rows=self.chunk_rows,
            chunk_centres=self.chunk_centres,
            progress=progress,
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
        return (
            f"m={self.num_components}, shape={self._shape}, sigma={self._sigma:g}, centre={self.centre}, "
            f"precision={self.precision}"
        )


# --------------------------------------------------------------------------------------------
# bandwidth line search


@dataclass
class SigmaSearch:
    """Result of :func:`search_sigma`: the best bandwidth and every bandwidth evaluated."""

    sigma: float
    nll: float  # mean -log p (nats) at sigma
    sigmas: list[float] = field(default_factory=list)  # sorted
    nlls: list[float] = field(default_factory=list)
    at_boundary: bool = False  # the optimum is at an end of the coarse grid

    def to_dict(self) -> dict[str, Any]:
        return {
            "sigma": self.sigma,
            "nll_nats": self.nll,
            "at_boundary": self.at_boundary,
            "evaluated": [[s, v] for s, v in zip(self.sigmas, self.nlls)],
        }


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
    grid = sorted(set(as_sigmas(list(grid))))
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
    sweep_sigmas = sorted(set(as_sigmas(list(sigmas))))
    search = search_sigma(
        gmm, x_val, sweep_sigmas, refine_rounds=refine_rounds, refine_points=refine_points, progress=progress
    )
    by_sigma = dict(zip(search.sigmas, search.nlls))
    rows = []
    steps = sweep_sigmas
    if progress and score_fn is not None:
        from tqdm.auto import tqdm

        steps = tqdm(sweep_sigmas, desc="mixture sample scores", unit="σ", leave=False)
    for i, s in enumerate(steps):
        row: dict[str, Any] = {
            "sigma": s,
            "val_nll_nats": by_sigma[s],
            "val_nll_bpd": float(nats_to_bpd(by_sigma[s], dim)),
        }
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
        "curve": [
            {"sigma": s, "val_nll_nats": v, "val_nll_bpd": float(nats_to_bpd(v, dim))}
            for s, v in zip(search.sigmas, search.nlls)
        ],
    }
    if test_images is not None:
        gmm.sigma = search.sigma
        test_nll = float(-gmm.log_prob_sigmas(dequantized(test_images), [search.sigma], progress=progress).mean())
        result.update(n_test=len(test_images), test_nll_nats=test_nll, test_nll_bpd=float(nats_to_bpd(test_nll, dim)))
    return result


def beats_regions(
    sigmas: Sequence[float],
    nll: Sequence[float],
    scores: Sequence[float | None] | None,
    run_nll: float | None,
    run_score: float | None,
) -> dict[str, list[float]]:
    """The σ of the sweep where the mixture beats a run (Figures 3 and 6): ``beats_nll`` where its
    NLL is lower than the run's, ``beats_score`` where its sample score is higher, ``beats_both``."""
    nll_ok = [s for s, v in zip(sigmas, nll) if run_nll is not None and v < run_nll]
    score_ok = []
    if scores is not None and run_score is not None:
        score_ok = [s for s, v in zip(sigmas, scores) if v is not None and v > run_score]
    both = [s for s in nll_ok if s in set(score_ok)]
    return {"beats_nll": nll_ok, "beats_score": score_ok, "beats_both": both}
