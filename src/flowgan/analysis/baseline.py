r"""The Gaussian-mixture baseline against a run (§3.4; Figures 3, 6 and 7): ``flowgan baseline gmm``.

The mixture ``p_σ(x) = (1/m) Σ_i N(x; c_i, σ²I)`` at the training images
(:class:`~flowgan.analysis.gmm.GaussianMixtureBaseline`) is swept over σ
(:func:`~flowgan.analysis.gmm.mixture_sweep`: validation NLL at every grid σ and in a line search
around the best one, test NLL at the best σ, sample scores at every grid σ). Against a run, the
run's best sample score and its validation NLL at that evaluation are the dashed lines of
Figure 3 (:func:`run_lines`), and the σ where the mixture beats the run on NLL, on the score and on
both are recorded (:func:`~flowgan.analysis.gmm.beats_regions`): the paper's point is that a
trivial mixture beats an adversarially trained Flow-GAN on both for a range of σ. Samples of the
mixture at the best σ (and the largest σ beating the run on both) are Figure 7.

:func:`gmm_baseline` computes a :class:`GmmBaseline` from :class:`GmmSettings`; its
:meth:`~GmmBaseline.write` writes ``gmm.json``, ``gmm.md``, ``gmm_vs_run.png`` and
``samples_sigma_<σ>.png``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import write_json, write_text
from ..errors import FlowganError


@dataclass(frozen=True)
class GmmSettings:
    """What :func:`gmm_baseline` computes.

    ``sigmas``: the sweep's bandwidths in (0, 1] (``None``: :data:`~flowgan.analysis.gmm.DEFAULT_GRID`,
    13 log-spaced values from 0.01 to 1); ``refine``: line-search rounds around the best σ;
    ``train_samples``/``val_samples``/``test_samples``: the first N images of each split (``None``:
    all; the training images are the centres); ``samples_for_scores``: mixture samples scored at
    each grid σ (0: no scores); ``score``: ``mode`` or ``is`` (``None``: MODE for one-channel data,
    IS otherwise); ``grid_sigmas``: the σ of the Figure 7 grids (``None``: the best σ and the
    largest one beating the run on both); ``unit`` of the figure (``None``: nats for one channel,
    bits/dim otherwise); ``precision`` of the distances (:mod:`flowgan.analysis.mixture`).
    """

    sigmas: tuple[float, ...] | None = None
    refine: int = 3
    train_samples: int | None = None
    val_samples: int | None = None
    test_samples: int | None = None
    samples_for_scores: int = 1000
    score: str | None = None
    grid_sigmas: tuple[float, ...] | None = None
    grid_samples: int = 64
    unit: str | None = None
    precision: str = "float32"
    seed: int = 0

    def __post_init__(self):
        for name in ("sigmas", "grid_sigmas"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, tuple(float(s) for s in getattr(self, name)))
        if self.sigmas is not None and (not self.sigmas or any(not (0 < s <= 1) for s in self.sigmas)):
            raise FlowganError(
                f"bandwidths must lie in (0, 1], got {', '.join(f'{s:g}' for s in self.sigmas) or 'none'}"
            )
        if self.refine < 0:
            raise FlowganError(f"the number of refinement rounds (--refine) must be >= 0, got {self.refine}")
        for name in ("train_samples", "val_samples", "test_samples"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise FlowganError(f"{name} must be a positive number of images, got {getattr(self, name)}")
        if self.samples_for_scores < 0 or self.grid_samples < 1:
            raise FlowganError("samples_for_scores must be >= 0 and grid_samples >= 1")
        if self.unit not in (None, "nats", "bpd") or self.precision not in ("float32", "float64"):
            raise FlowganError(
                f"unit must be nats or bpd and precision float32 or float64, got {self.unit!r}, {self.precision!r}"
            )


def run_lines(run: str | Path, score: str) -> dict[str, Any]:
    """The run's best sample score and the validation NLL at that evaluation (Figure 3's dashed
    lines); without scores, its best validation NLL."""
    from ..rundir import read_metrics

    records = read_metrics(run, "eval")
    if not records:
        raise FlowganError(f"{run} has no evaluation records in metrics.jsonl")
    out: dict[str, Any] = {"run": str(run), "score_name": score}
    scored = [r for r in records if isinstance(r.get(score), (int, float)) and math.isfinite(r[score])]
    best_nll = min(records, key=lambda r: r.get("val_nll_nats", math.inf))
    out.update(best_val_nll_nats=best_nll.get("val_nll_nats"), best_val_nll_step=best_nll.get("step"))
    if scored:
        best = max(scored, key=lambda r: r[score])
        out.update(
            best_score=float(best[score]),
            best_score_std=best.get(f"{score}_std"),
            best_score_classifier=best.get("classifier"),
            best_score_step=best["step"],
            nll_nats=best.get("val_nll_nats"),
            nll_bpd=best.get("val_nll_bpd"),
            nll_label=f"at its best {score} (step {best['step']})",
        )
    else:
        out.update(
            best_score=None,
            nll_nats=best_nll.get("val_nll_nats"),
            nll_bpd=best_nll.get("val_nll_bpd"),
            nll_label=f"best (step {best_nll.get('step')}; run has no {score} scores)",
        )
    return out


@dataclass
class GmmBaseline:
    """The sweep (``record``: what ``gmm.json`` holds, less the paths of the files written), the
    Figure 7 sample grids (σ, images), the figure's unit and score (``None``: no scores)."""

    record: dict[str, Any]
    grids: list[tuple[float, Any]]
    unit: str
    score_name: str | None

    @property
    def best_sigma(self) -> float:
        return self.record["best_sigma"]

    @property
    def against(self) -> dict[str, Any] | None:
        return self.record.get("against")

    def markdown(self) -> str:
        return gmm_markdown(self.record)

    def write(self, out: str | Path) -> Path:
        """``OUT/samples_sigma_<σ>.png``, ``OUT/gmm_vs_run.png``, ``OUT/gmm.json`` and ``OUT/gmm.md``;
        returns the figure's path (the JSON then names the figure and the grids)."""
        from ..images import save_grid
        from .plots import plot_mixture_vs_run

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        record = dict(self.record)
        record["sample_grids"] = {s: str(save_grid(x, out / f"samples_sigma_{s:.4g}.png")) for s, x in self.grids}
        fig = plot_mixture_vs_run(record, out / "gmm_vs_run.png", unit=self.unit, score_name=self.score_name)
        record["figure"] = str(fig)
        write_text(out / "gmm.md", gmm_markdown(record))
        write_json(out / "gmm.json", record)  # last: the record
        self.record = record
        return fig


def gmm_baseline(
    dataset: str | None = None,
    settings: GmmSettings = GmmSettings(),
    *,
    against: str | Path | None = None,
    data_dir: str | None = None,
    score_fn: Callable | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> GmmBaseline:
    """The mixture baseline on ``dataset`` (default: the ``against`` run's), compared with the run
    directory ``against`` when given. ``score_fn(images) -> dict`` scores mixture samples
    (default: :func:`~flowgan.analysis.gmm.default_score_fn` of the dataset). Problems raise
    :class:`~flowgan.errors.FlowganError`."""
    import torch

    from ..checkpoint import read_run_config
    from ..data import load_dataset
    from ..runs import load_run
    from . import gmm as G

    s = settings
    cfg = None
    if against is not None:
        if not Path(against).is_dir():
            raise FlowganError(f"the run to compare with (--against) must be a run directory, got {against}")
        cfg = read_run_config(against) or load_run(against, "latest").config
        if dataset and cfg.dataset and Path(dataset).stem != Path(cfg.dataset).stem:
            raise FlowganError(f"dataset {dataset} differs from the run's dataset {cfg.dataset}")
    name = dataset or (cfg.dataset if cfg else None)
    if not name:
        raise FlowganError("no dataset: name one (--dataset) or a run to compare with (--against)")
    ds = load_dataset(name, data_dir or (cfg.data_dir if cfg else None))
    channels = ds.shape[0]
    score = s.score or ("mode" if channels == 1 else "is")
    unit = s.unit or ("nats" if channels == 1 else "bpd")
    sigmas = list(s.sigmas or G.DEFAULT_GRID)
    train = ds.train.images[: s.train_samples]
    val = ds.val.images[: s.val_samples]
    test = ds.test.images[: s.test_samples]

    note = None
    if s.samples_for_scores <= 0:
        score_fn, note = None, "sample scores skipped (--samples-for-scores 0)"
    elif score_fn is None:
        score_fn, note = G.default_score_fn(ds, [score], split="test")
    if log and note:
        log(note)
    if log:
        log(f"{ds.describe()}; {len(train)} centres, sweep of {len(sigmas)} sigmas on {len(val)} validation images")
    t0 = time.perf_counter()
    result = G.mixture_sweep(
        train,
        val,
        test,
        sigmas=sigmas,
        refine_rounds=s.refine,
        score_fn=score_fn,
        score_samples=s.samples_for_scores,
        seed=s.seed,
        precision=s.precision,
        progress=progress,
    )
    result.update(
        dataset=ds.name, unit=unit, score_name=score, scores_note=note, seconds=round(time.perf_counter() - t0, 2)
    )
    if score_fn is not None:  # the classifier behind the sweep's scores (issue 11: every score names it)
        from ..metrics.classifiers import find_classifier

        try:
            result.update(find_classifier(ds).summary())
        except FlowganError:  # a scoring function without a shipped classifier (tests inject one)
            pass
    if against is not None:
        lines = run_lines(against, score)
        lines["run_val_eval_samples"] = cfg.eval_samples
        result["against"] = lines
        rows = result["sweep"]
        scores = [r.get("scores", {}).get(score) for r in rows] if score_fn is not None else None
        key = "val_nll_bpd" if unit == "bpd" else "val_nll_nats"
        run_nll = lines.get("nll_bpd" if unit == "bpd" else "nll_nats")
        result.update(
            G.beats_regions(
                [r["sigma"] for r in rows], [r[key] for r in rows], scores, run_nll, lines.get("best_score")
            )
        )
    # Figure 7: sample grids
    grid_sigmas = list(s.grid_sigmas or ())
    if not grid_sigmas:
        grid_sigmas = [result["best_sigma"]]
        if result.get("beats_both"):
            grid_sigmas.append(max(result["beats_both"]))
    mixture = G.GaussianMixtureBaseline(train, grid_sigmas[0])
    grids = []
    for sigma in grid_sigmas:
        mixture.sigma = sigma
        grids.append((float(sigma), mixture.sample(s.grid_samples, generator=torch.Generator().manual_seed(s.seed))))
    return GmmBaseline(result, grids, unit, score if score_fn is not None else None)


def gmm_markdown(r: dict[str, Any]) -> str:
    """``gmm.md``: the sweep as a table, the best σ, and the comparison with the run."""
    score = r.get("score_name")
    has_scores = any("scores" in row for row in r["sweep"])
    head = "| sigma | val NLL (nats) | val NLL (bits/dim) |" + (f" {score} |" if has_scores else "")
    lines = [
        f"# Gaussian-mixture baseline on {r.get('dataset')}",
        "",
        f"{r['n_components']} centres, {r['n_val']} validation images. Best sigma {r['best_sigma']:.4g}: "
        f"validation NLL {r['best_val_nll_nats']:.2f} nats ({r['best_val_nll_bpd']:.4f} bits/dim)"
        + (f"; test NLL {r['test_nll_nats']:.2f} nats on {r['n_test']} images." if "test_nll_nats" in r else "."),
        "",
        head,
        "|---|---|---|" + ("---|" if has_scores else ""),
    ]
    for row in r["sweep"]:
        cell = f" {row.get('scores', {}).get(score, float('nan')):.3f} |" if has_scores else ""
        lines.append(f"| {row['sigma']:.4g} | {row['val_nll_nats']:.2f} | {row['val_nll_bpd']:.4f} |{cell}")
    a = r.get("against")
    if a:

        def num(v, spec):
            return format(v, spec) if isinstance(v, (int, float)) else "—"

        lines += [
            "",
            (
                f"Run {a['run']}: best {score} score {num(a.get('best_score'), '.3f')} (step "
                f"{a.get('best_score_step')}), validation NLL {num(a.get('nll_nats'), '.2f')} nats "
                f"{a.get('nll_label', '')}."
            ),
            (
                f"Mixture better on NLL at sigma {', '.join(f'{s:.3g}' for s in r.get('beats_nll', [])) or 'none'}; "
                f"on both at {', '.join(f'{s:.3g}' for s in r.get('beats_both', [])) or 'none'}."
            ),
        ]
    if r.get("scores_note"):
        lines += ["", f"Note: {r['scores_note']}"]
    return "\n".join(lines) + "\n"
