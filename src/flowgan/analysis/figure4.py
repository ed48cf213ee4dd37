r"""Figure 4 of the paper (§5.1; Figure 8 for CIFAR-10): the singular values of ``∂G/∂z`` of several runs.

For each run, the exact singular values ``s_i`` of the generator's Jacobian at ``n`` prior samples
(:func:`flowgan.analysis.jacobian.jacobian_spectra`), their empirical CDF on a log axis (one curve
per run), ``mean log|det ∂G/∂z| = mean Σ_i log s_i`` and the flow's own layer-by-layer log-det,
which must agree (change of variables). The paper: ADV generators spread their singular values
over many decades and have a much lower log-det (−15588 vs −4170 nats for MLE on MNIST).
:func:`jacobian_analysis` computes a :class:`JacobianAnalysis`; ``flowgan analyze jacobian`` and
``flowgan reproduce`` (stage ``jacobian``) call it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import replacing, write_json, write_text
from ..errors import FlowganError
from .common import run_labels

NOTE = (
    "G includes the final sigmoid; mean_logdet = mean over samples of sum_i log s_i; mean_logdet_flow = log|det "
    "dG/dz| accumulated by the flow layer by layer from z (float64; finite where saturated pixels make singular "
    "values underflow)."
)


@dataclass(frozen=True)
class JacobianSettings:
    """What :func:`jacobian_analysis` computes: ``n`` prior samples per run (64 as the paper),
    drawn with ``seed``; the Jacobian in ``dtype`` (the SVD is always float64); ``method``:
    ``auto`` (layer-wise for NICE, autograd otherwise), ``coupling`` or ``autograd``; ``svd``:
    ``auto`` (eigenvalues of ``JᵀJ`` when cond(J) ≤ 1e4) or ``svd``; ``checkpoint``: which checkpoint
    of each run (:func:`flowgan.checkpoint.choose_checkpoint`; ``auto``: the best sample score)."""

    n: int = 64
    dtype: str = "float32"
    method: str = "auto"
    svd: str = "auto"
    seed: int = 0
    checkpoint: str = "auto"

    def __post_init__(self):
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise FlowganError(f"the number of prior samples must be a positive integer, got {self.n!r}")
        for name, allowed in (
            ("dtype", ("float32", "float64")),
            ("method", ("auto", "coupling", "autograd")),
            ("svd", ("auto", "svd")),
        ):
            if getattr(self, name) not in allowed:
                raise FlowganError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")


@dataclass
class JacobianAnalysis:
    """Per run (``rows``): label, run, checkpoint, checkpoint_name, step, objective, lam and the
    summary of :meth:`~flowgan.analysis.jacobian.JacobianSpectra.summary`; ``spectra``: all
    singular values of each run, ``(n, D)`` float64 arrays in the order of ``rows``."""

    settings: JacobianSettings
    rows: list[dict[str, Any]]
    spectra: list[Any]

    def curves(self) -> dict[str, tuple[Any, float]]:
        """What the figure draws: label -> (singular values, the log-det in the legend). The legend
        carries the flow's exact log-det: the SVD resolves tiny singular values of an
        ill-conditioned Jacobian only relative to the largest one, so their log-sum can be off."""
        import math

        out = {}
        for r, values in zip(self.rows, self.spectra):
            exact = r["mean_logdet_flow"]
            out[r["label"]] = (values, exact if math.isfinite(exact) else r["mean_logdet"])
        return out

    def to_dict(self, figure: str | Path, spectra: str | Path) -> dict[str, Any]:
        """What ``jacobian.json`` holds (with the paths of the figure and of the spectra file)."""
        s = self.settings
        return {
            "n_samples": s.n,
            "seed": s.seed,
            "jacobian_dtype": s.dtype,
            "runs": self.rows,
            "figure": str(figure),
            "spectra": str(spectra),
            "note": NOTE,
        }

    def markdown(self) -> str:
        md = [
            "# Singular values of dG/dz",
            "",
            f"{self.settings.n} prior samples per run; log10 quantiles of the singular values pooled over samples.",
            "",
            "| run | mean log\\|det\\| | flow's log-det | max diff | q05 | q50 | q95 | median log10 cond |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in self.rows:
            q = r["log10_singular_value_quantiles"]
            md.append(
                f"| {r['label']} | {r['mean_logdet']:.2f} | {r['mean_logdet_flow']:.2f} | "
                f"{r['max_abs_logdet_diff']:.2g} | {q.get('q05', float('nan')):.2f} | {q.get('q50', float('nan')):.2f} "
                f"| {q.get('q95', float('nan')):.2f} | {r['median_log10_condition_number']:.2f} |"
            )
        return "\n".join(md) + "\n"

    def write(self, out: str | Path, *, title: str | None = None) -> Path:
        """``OUT/figure4.png``, ``OUT/spectra.npz`` (all singular values), ``OUT/jacobian.json`` and
        ``OUT/jacobian.md``; returns the figure's path."""
        import numpy as np

        from .plots import plot_singular_value_cdf

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        fig = plot_singular_value_cdf(self.curves(), out / "figure4.png", title=title)
        with replacing(out / "spectra.npz") as tmp:
            np.savez_compressed(
                tmp, **{f"{i:02d}_{r['label']}": v for i, (r, v) in enumerate(zip(self.rows, self.spectra))}
            )
        write_text(out / "jacobian.md", self.markdown())
        write_json(out / "jacobian.json", self.to_dict(fig, out / "spectra.npz"))  # last: the record
        return fig


def jacobian_analysis(
    runs: Sequence[str | Path],
    settings: JacobianSettings = JacobianSettings(),
    *,
    labels: Sequence[str] | None = None,
    device: str = "auto",
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> JacobianAnalysis:
    """The Jacobian spectra of ``runs`` (run directories or checkpoint files) with ``settings``;
    ``log`` receives a line per run. Problems raise :class:`~flowgan.errors.FlowganError`."""
    import torch

    from ..generator import require
    from ..runs import load_run
    from ..runtime import resolve_device
    from .jacobian import JACOBIAN_NEEDS, jacobian_spectra

    names = run_labels(runs, labels)
    dev = resolve_device(device)
    s = settings
    rows, spectra = [], []
    for run_path, label in zip(runs, names):
        run = load_run(run_path, s.checkpoint, device=dev)
        require(run.model, *JACOBIAN_NEEDS, analysis=f"the Jacobian analysis of {label}")
        if log:
            log(f"{label} ({run.which}, step {run.step}): {s.n} Jacobians of {tuple(run.model.shape)}")
        result = jacobian_spectra(
            run.model, s.n, seed=s.seed, dtype=getattr(torch, s.dtype), method=s.method, svd=s.svd, progress=progress
        )
        rows.append(
            {
                "label": label,
                "run": str(run_path),
                "checkpoint": str(run.checkpoint),
                "checkpoint_name": run.which,
                "step": run.step,
                "objective": run.config.objective,
                "lam": run.config.lam,
                **result.summary(),
            }
        )
        spectra.append(result.singular_values.numpy())
    return JacobianAnalysis(s, rows, spectra)
