"""The reproduction's evaluation of one training run: the numbers of the paper's Tables 1-2.

:func:`evaluate_run` scores a run directory the way every table of a reproduction does: the exact
test NLL (with its standard error over the test images) of the best-validated checkpoint, and the
sample score (MODE or Inception, ± its 10-split standard deviation) of the best-score checkpoint,
re-scored on more samples than during training. Used for the three objectives and for each point
of the λ frontier (:mod:`.frontier`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


def evaluate_run(
    run: Path,
    ds,
    score: str,
    *,
    n_samples: int,
    device,
    progress: bool,
    grid: Path | None = None,
) -> dict[str, Any]:
    """``{"run", "dataset", "shape", "best_nll", "best_score"}`` of a run directory; ``grid``: where
    to write 64 samples of the best-score checkpoint (fixed noise, seed 0)."""
    import torch

    from ..images import save_grid
    from ..likelihood import nll_report
    from ..metrics import evaluate_samples
    from ..runs import load_run

    loaded = load_run(run, "best_nll", device=device)
    model = loaded.model
    best_nll = {
        "checkpoint": "best_nll",
        "step": loaded.step,
        **_prefixed(nll_report(model, ds.val.images, progress=progress), "val_"),
        **_prefixed(nll_with_sem(model, ds.test.images, progress=progress), "test_"),
    }
    which = f"best_{score}" if (run / "checkpoints" / f"best_{score}.pt").is_file() else "best_nll"
    loaded = load_run(run, which, device=device)
    model = loaded.model
    scores = evaluate_samples(model, ds, [score], n_samples=n_samples, device=device, split="test")
    best_score = {
        "checkpoint": which,
        "step": loaded.step,
        "score_name": score,
        "score": scores.get(score),
        "scores": scores,
        **_prefixed(nll_report(model, ds.test.images, progress=progress), "test_"),
    }
    if grid is not None:
        with torch.no_grad():
            samples = model.sample(64, generator=torch.Generator().manual_seed(0))
        save_grid(samples, grid)
    return {
        "run": str(run),
        "dataset": ds.name,
        "shape": list(model.shape),
        "best_nll": best_nll,
        "best_score": best_score,
    }


def nll_with_sem(model, images, **kwargs) -> dict[str, float]:
    """``nll_nats``, ``nll_bpd`` and their standard errors over the images (``nll_sem_nats``,
    ``nll_sem_bpd``): the uncertainty of a test NLL that the claims use."""
    from ..likelihood import LN2, log_likelihoods, nats_to_bpd

    ll = -log_likelihoods(model, images, **kwargs).double()
    dim = math.prod(model.shape)
    nats = float(ll.mean())
    sem = float(ll.std(correction=1) / math.sqrt(len(ll))) if len(ll) > 1 else 0.0
    return {
        "nll_nats": nats,
        "nll_bpd": float(nats_to_bpd(nats, dim)),
        "nll_sem_nats": sem,
        "nll_sem_bpd": sem / (dim * LN2),
    }


def _prefixed(d: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {prefix + k: v for k, v in d.items()}
