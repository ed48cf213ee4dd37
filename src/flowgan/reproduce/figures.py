"""The report's own figures (matplotlib, Agg backend), drawn from a reproduction's logs.

* :func:`figure_samples` -- Figure 1 analog: samples of each objective's best-score checkpoint;
* :func:`figure_curves` -- Figure 2 analog: exact validation and training NLL during training (and
  the critic loss, whose settling next to a rising NLL is the paper's §3.3 observation);
* :func:`figure_scores` -- Figure 5 analog: the sample score during training;
* :func:`figure_tradeoff` -- test NLL against the sample score, one point per run with its
  uncertainty (the λ frontier, and the seed-to-seed spread of a multi-seed reproduction).

The analyses' figures (3/6, 4, 7) are drawn by :mod:`flowgan.analysis.plots` and copied
(:func:`copy_figure`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..atomic import replacing, save_figure
from .inputs import ReproductionData
from .presets import LABELS, OBJECTIVES


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def figure_samples(d: ReproductionData, path: Path) -> Path | None:
    grids = [(LABELS[o], d.root / "eval" / f"{o}_samples.png") for o in OBJECTIVES]
    grids = [(label, p) for label, p in grids if p.is_file()]
    if not grids:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(grids), figsize=(4 * len(grids), 4.3))
    axes = [axes] if len(grids) == 1 else axes
    for ax, (label, p) in zip(axes, grids):
        ax.imshow(plt.imread(p), cmap="gray")
        ax.set_title(label)
        ax.axis("off")
    fig.suptitle(f"Figure 1 analog: samples of the best-{d.score.upper()} checkpoints")
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def figure_curves(d: ReproductionData, path: Path) -> Path | None:
    objs = [o for o in OBJECTIVES if d.evals[o]]
    if not objs:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(objs), figsize=(5 * len(objs), 4), squeeze=False)
    unit = d.unit
    for ax, obj in zip(axes[0], objs):
        ev = d.evals[obj]
        steps = [r["step"] for r in ev]
        ax.plot(
            steps,
            [d.nll_in_unit(r["val_nll_nats"]) for r in ev],
            "o-",
            color="tab:blue",
            ms=3,
            label="validation NLL (exact)",
        )
        ax.plot(
            steps,
            [d.nll_in_unit(r.get("train_nll_nats")) for r in ev],
            "s--",
            color="tab:red",
            ms=3,
            label="train NLL (exact)",
        )
        # the training batches' NLL of every log line: more points than the evaluations
        batch = [
            (r["step"], d.nll_in_unit(r["train_nll"]))
            for r in d.trains[obj]
            if isinstance(r.get("train_nll"), (int, float))
        ]
        if batch:
            ax.plot(
                [b[0] for b in batch],
                [b[1] for b in batch],
                "-",
                color="tab:orange",
                lw=0.8,
                alpha=0.8,
                label="training-batch NLL (logged)",
            )
        ax.set_xlabel("generator step")
        ax.set_ylabel(f"NLL ({unit})")
        ax.set_title(LABELS[obj])
        vals = [d.nll_in_unit(r["val_nll_nats"]) for r in ev]
        if unit == "bpd" and vals and min(vals) > 0 and max(vals) / min(vals) > 10:
            ax.set_yscale("log")
        crit = [(r["step"], r["critic_loss"]) for r in d.trains[obj] if isinstance(r.get("critic_loss"), (int, float))]
        lines, labels = ax.get_legend_handles_labels()
        if crit:
            ax2 = ax.twinx()
            ax2.plot([c[0] for c in crit], [c[1] for c in crit], "-", color="tab:green", lw=1, label="critic loss")
            ax2.set_ylabel("critic loss (WGAN-GP)")
            l2, lab2 = ax2.get_legend_handles_labels()
            lines, labels = lines + l2, labels + lab2
        ax.legend(lines, labels, fontsize=8, loc="best")
        ax.grid(alpha=0.3)
    fig.suptitle(
        "Figure 2 analog: NLL learning curves (lower is better) and the critic loss; each panel has its own y-scale"
    )
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def figure_scores(d: ReproductionData, path: Path) -> Path | None:
    series = {
        o: [(r["step"], r[d.score]) for r in d.evals[o] if isinstance(r.get(d.score), (int, float))] for o in OBJECTIVES
    }
    series = {o: s for o, s in series.items() if s}
    if not series:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for o, s in series.items():
        ax.plot([x for x, _ in s], [y for _, y in s], "o-", ms=3, label=LABELS[o])
    ax.set_xlabel("generator step")
    ax.set_ylabel(f"{d.score.upper()} score")
    ax.set_title(f"Figure 5 analog: {d.score.upper()} score during training (higher is better)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def figure_tradeoff(
    points: list[dict],
    path: Path,
    *,
    title: str,
    score_name: str,
    unit: str,
    paper: list[dict] | None = None,
    paper_label: str = "paper",
) -> Path | None:
    """Test NLL (y, lower is better) against the sample score (x, higher is better): each point
    ``{label, score, score_std, nll, nll_sem}`` with its error bars (omitted where unknown), an
    optional ``group`` (one colour and legend entry per group; else per label) and ``connect``
    (points of a group with ``connect`` are joined in order: a frontier); ``paper``: points
    ``{label, score, nll}`` drawn as hollow stars."""
    if not points:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5))
    groups: dict[str, list[dict]] = {}
    for p in points:
        groups.setdefault(p.get("group") or p["label"], []).append(p)
    for i, (group, pts) in enumerate(groups.items()):
        color = plt.cm.tab10(i % 10)
        for j, p in enumerate(pts):
            ax.errorbar(
                p["score"],
                p["nll"],
                xerr=p.get("score_std") or None,
                yerr=p.get("nll_sem") or None,
                fmt=p.get("marker", "o"),
                color=color,
                ms=6,
                capsize=3,
                label=group if j == 0 else None,
            )
            if p.get("annotate", True):
                ax.annotate(p["label"], (p["score"], p["nll"]), textcoords="offset points", xytext=(5, 5), fontsize=8)
        if any(p.get("connect") for p in pts):
            ax.plot([p["score"] for p in pts], [p["nll"] for p in pts], "-", color=color, lw=0.8, alpha=0.6)
    for p in paper or []:
        ax.plot(p["score"], p["nll"], "*", ms=13, mfc="none", mec="black", label=None)
        ax.annotate(p["label"], (p["score"], p["nll"]), textcoords="offset points", xytext=(6, -10), fontsize=8)
    if paper:
        ax.plot([], [], "*", ms=11, mfc="none", mec="black", label=paper_label)
    ax.set_xlabel(f"{score_name.upper()} score (higher is better)")
    ax.set_ylabel(f"test NLL ({'bits/dim' if unit == 'bpd' else 'nats'}; lower is better)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def copy_figure(src: Path, dst: Path) -> Path | None:
    """Copy a figure an analysis wrote into the report's folder (``None`` if there is none)."""
    if not src.is_file():
        return None
    with replacing(dst) as tmp:
        shutil.copyfile(src, tmp)
    return dst
