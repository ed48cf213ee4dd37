"""The analyses' figures (matplotlib, Agg backend).

* :func:`plot_mixture_vs_run` -- Figures 3 and 6: the mixture's validation NLL and sample score
  versus σ, the run's best score and its NLL as dashed lines, green where the mixture beats the
  run on both;
* :func:`plot_singular_value_cdf` -- Figures 4 and 8: CDF of the singular values of ``∂G/∂z`` on a
  log axis, one curve per run, mean ``log|det|`` in the legend.

Table 3's Markdown is :func:`flowgan.analysis.table3.table3_markdown`; the σ where the mixture beats
a run, :func:`flowgan.analysis.gmm.beats_regions`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

from ..atomic import save_figure


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _shade(ax, sigmas: Sequence[float], selected: Sequence[float], **kwargs) -> None:
    """Shade the σ intervals around the selected grid points (half-way to the neighbours, in log σ)."""
    sel = set(selected)
    ordered = sorted(sigmas)
    label = kwargs.pop("label", None)
    for i, s in enumerate(ordered):
        if s not in sel:
            continue
        lo = math.sqrt(ordered[i - 1] * s) if i > 0 else s
        hi = math.sqrt(ordered[i + 1] * s) if i + 1 < len(ordered) else s
        ax.axvspan(lo, hi, lw=0, label=label, **kwargs)
        label = None


def plot_mixture_vs_run(
    sweep: dict[str, Any],
    path: str | Path,
    *,
    unit: str = "nats",
    score_name: str | None = None,
    title: str | None = None,
) -> Path:
    """Figures 3/6 from the JSON of ``flowgan baseline gmm`` (:func:`flowgan.analysis.gmm.mixture_sweep`
    plus an optional ``"against"`` entry with the run's lines)."""
    plt = _pyplot()
    key = "val_nll_bpd" if unit == "bpd" else "val_nll_nats"
    curve = sweep["curve"]
    cs = [r["sigma"] for r in curve]
    cv = [r[key] for r in curve]
    rows = sweep["sweep"]
    sigmas = [r["sigma"] for r in rows]
    nll = [r[key] for r in rows]
    scores = None
    if score_name and any(score_name in r.get("scores", {}) for r in rows):
        scores = [r.get("scores", {}).get(score_name) for r in rows]
    against = sweep.get("against") or {}
    run_nll = against.get("nll_bpd" if unit == "bpd" else "nll_nats")
    run_score = against.get("best_score")

    fig, ax = plt.subplots(figsize=(7.0, 4.5))
    ax.set_xscale("log")
    ax.plot(cs, cv, "-", color="tab:blue", lw=1.5, label=f"mixture validation NLL ({unit})")
    ax.plot(sigmas, nll, "o", color="tab:blue", ms=3)
    finite = [v for v in cv if math.isfinite(v)]
    best = min(finite)
    span = max(finite) - best
    if span > 20 * max(1.0, abs(best)):
        ax.set_yscale("symlog", linthresh=max(1.0, abs(best)))
    if run_nll is not None:
        ax.axhline(run_nll, ls="--", color="c", label=f"run NLL {against.get('nll_label', '')}".strip())
    ax.axvline(sweep["best_sigma"], ls=":", color="gray", lw=1)
    ax.set_xlabel("bandwidth σ")
    ax.set_ylabel(f"NLL ({unit}, lower is better)")
    handles, labels = ax.get_legend_handles_labels()
    if scores is not None:
        ax2 = ax.twinx()
        pts = [(s, v) for s, v in zip(sigmas, scores) if v is not None]
        ax2.plot(
            [p[0] for p in pts],
            [p[1] for p in pts],
            "s-",
            color="tab:red",
            ms=3,
            lw=1.5,
            label=f"mixture {score_name} score",
        )
        if run_score is not None:
            ax2.axhline(run_score, ls="--", color="maroon", label=f"run best {score_name} score")
        ax2.set_ylabel(f"{score_name} score (higher is better)")
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    from .gmm import beats_regions

    regions = beats_regions(sigmas, nll, scores, run_nll, run_score)
    if scores is not None and run_score is not None and run_nll is not None:
        _shade(ax, sigmas, regions["beats_both"], color="green", alpha=0.2, label="mixture better on both")
    elif run_nll is not None:
        _shade(
            ax,
            sigmas,
            regions["beats_nll"],
            color="green",
            alpha=0.1,
            label="mixture better NLL (no scores to compare)",
        )
    h3, l3 = ax.get_legend_handles_labels()
    extra = [(h, lab) for h, lab in zip(h3, l3) if lab not in labels]
    handles += [h for h, _ in extra]
    labels += [lab for _, lab in extra]
    top = ax2 if scores is not None else ax  # the legend goes on the top-most axes, above every line
    top.legend(handles, labels, fontsize=8, loc="best", framealpha=0.9)
    ax.set_title(title or f"Gaussian mixture baseline on {sweep.get('dataset', '')}".strip())
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)


def plot_singular_value_cdf(curves: dict[str, Any], path: str | Path, *, title: str | None = None) -> Path:
    """Figures 4/8: ``curves`` maps a label to ``(singular_values, mean_logdet)`` (the legend shows
    the log-det as given: ``flowgan analyze jacobian`` passes the flow's exact one); the empirical
    CDF of all singular values of that run (pooled over its samples) on a log x-axis."""
    import numpy as np

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.0, 4.5))
    for label, (values, mean_logdet) in curves.items():
        s = np.sort(np.asarray(values, dtype=np.float64).ravel())
        s = s[s > 0]
        if len(s) == 0:
            continue
        cdf = np.arange(1, len(s) + 1) / len(s)
        ax.step(s, cdf, where="post", lw=1.5, label=f"{label} (mean log|det| {mean_logdet:.1f})")
    ax.set_xscale("log")
    ax.set_ylim(0, 1.0)
    ax.set_xlabel("singular value of ∂G/∂z")
    ax.set_ylabel("CDF (fraction of singular values ≤ s)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(title or "Singular values of the generator's Jacobian")
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)
