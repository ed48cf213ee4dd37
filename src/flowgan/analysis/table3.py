r"""Table 3 of the paper (§5): the exact NLL of each run next to the AIS and KDE estimates.

For every run, on the same first ``n_test`` dequantized test images (the fixed noise of
:func:`flowgan.likelihood.dequantized`), in nats of the continuous density on ``[0,1]^D``:

* **exact** -- ``-log p(x)`` of the flow by the change of variables (:func:`flowgan.likelihood.log_likelihoods`),
  also on the whole test split;
* **AIS** -- annealed importance sampling with the Gaussian observation model
  ``p_σ(x) = ∫ p(z) N(x; G(z), σ²I) dz`` of Wu et al. (2017) (:mod:`flowgan.analysis.ais`): a
  stochastic lower bound on ``log p_σ``, not on ``log p``;
* **KDE** -- the Parzen window of Goodfellow et al. (2014) on model samples, bandwidth chosen on
  validation images (:mod:`flowgan.analysis.kde`);

and the ranking of the runs that each method implies (best first, by estimated log-likelihood).
The paper's point (Table 3): AIS and KDE are far from the exact NLL and rank MLE, Hybrid and ADV
differently from it. :func:`likelihood_table` computes a :class:`LikelihoodTable`;
``flowgan analyze likelihoods`` and ``flowgan reproduce`` (stage ``table3``) call it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from ..atomic import write_json, write_text
from ..errors import FlowganError
from .common import run_labels

METHODS = ("exact", "ais", "kde")
NAMES = {"exact": "Flow-GAN NLL (exact)", "ais": "AIS", "kde": "KDE"}
NOTE = (
    "AIS estimates log p_sigma(x) of the Gaussian observation model N(G(z), sigma^2 I), a stochastic lower bound in "
    "expectation; KDE is a Parzen window on model samples; both are in the flows' units on the same dequantized test "
    "images."
)


@dataclass(frozen=True)
class LikelihoodSettings:
    """What :func:`likelihood_table` computes; the defaults are sized for a CPU (minutes per run).

    ``ais_sigma``: the observation noise of AIS, ``None`` for √0.025 (Wu et al.'s MNIST value) or
    ``"auto"``: the best of :data:`flowgan.analysis.ais.SIGMA_GRID` by AIS on ``ais_val``
    validation images (Wu et al.'s procedure). Wu et al. used 10,000 distributions, 16 chains
    and 10 leapfrog steps. ``checkpoint``: which checkpoint of each run
    (:func:`flowgan.checkpoint.choose_checkpoint`; ``auto``: the best sample score, as §5).
    """

    methods: tuple[str, ...] = METHODS
    n_test: int = 100
    ais_steps: int = 100
    ais_chains: int = 4
    ais_leapfrog: int = 5
    ais_sigma: float | str | None = None
    ais_val: int = 20
    ais_batch: int = 50
    kde_samples: int = 10000
    kde_val: int = 1000
    seed: int = 0
    checkpoint: str = "auto"

    def __post_init__(self):
        methods = tuple(self.methods)
        object.__setattr__(self, "methods", methods)
        if not methods or set(methods) - set(METHODS):
            raise FlowganError(f"methods must be a subset of exact, ais, kde (got {','.join(methods) or 'none'})")
        for name in (
            "n_test",
            "ais_steps",
            "ais_chains",
            "ais_leapfrog",
            "ais_val",
            "ais_batch",
            "kde_samples",
            "kde_val",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise FlowganError(f"{name} must be a positive integer, got {value!r}")
        s = self.ais_sigma
        if not (
            s is None
            or s == "auto"
            or (isinstance(s, (int, float)) and not isinstance(s, bool) and s > 0 and math.isfinite(s))
        ):
            raise FlowganError(f"the AIS observation sigma must be a positive number or 'auto', got {s!r}")

    @property
    def sigma(self) -> float:
        """The fixed AIS sigma (the default when ``ais_sigma`` is ``None`` or ``"auto"``)."""
        from .ais import DEFAULT_SIGMA

        return DEFAULT_SIGMA if self.ais_sigma in (None, "auto") else float(self.ais_sigma)

    def to_dict(self) -> dict[str, Any]:
        """The ``settings`` entry of ``table3.json``."""
        return {
            "ais": {
                "sigma": "auto" if self.ais_sigma == "auto" else self.sigma,
                "steps": self.ais_steps,
                "chains": self.ais_chains,
                "leapfrog": self.ais_leapfrog,
                "schedule": "sigmoid",
            },
            "kde": {"samples": self.kde_samples, "val_images": self.kde_val},
            "seed": self.seed,
        }


def ranking(values: dict[str, float]) -> list[str]:
    """Labels ordered by log-likelihood, best first (NaNs last)."""
    return sorted(values, key=lambda k: (not math.isfinite(values[k]), -values[k] if math.isfinite(values[k]) else 0.0))


@dataclass
class LikelihoodTable:
    """Table 3: one row per run (``label``, ``run``, ``checkpoint``, ``checkpoint_name``, ``step``,
    ``objective``, ``lam``, ``dataset`` and an entry per method with ``nll_nats`` and ``sem``),
    and the ranking each method implies."""

    settings: LikelihoodSettings
    rows: list[dict[str, Any]]
    rankings: dict[str, list[str]] = field(init=False)
    rankings_text: dict[str, str] = field(init=False)
    rankings_agree: dict[str, bool] = field(init=False)

    def __post_init__(self):
        self.rankings, self.rankings_text, self.rankings_agree = {}, {}, {}
        for m in self.settings.methods:
            values = {r["label"]: -r[m]["nll_nats"] for r in self.rows}
            order = self.rankings[m] = ranking(values)
            text = order[0]
            for prev, cur in pairwise(order):
                text += (" = " if values[prev] == values[cur] else " > ") + cur
            self.rankings_text[m] = text
        for m in self.settings.methods:
            if m != "exact" and "exact" in self.rankings:
                self.rankings_agree[m] = self.rankings[m] == self.rankings["exact"]

    def to_dict(self) -> dict[str, Any]:
        """What ``table3.json`` holds."""
        return {
            "dataset": ", ".join(sorted({r["dataset"] for r in self.rows})),
            "n_test": self.settings.n_test,
            "units": "nats, continuous density on [0,1]^D (the paper's MNIST convention); lower is better",
            "settings": self.settings.to_dict(),
            "runs": self.rows,
            "rankings": self.rankings,
            "rankings_text": self.rankings_text,
            "rankings_agree": self.rankings_agree,
            "notes": [NOTE],
        }

    def markdown(self) -> str:
        return table3_markdown(self.to_dict())

    def write(self, out: str | Path) -> Path:
        """``OUT/table3.json`` and ``OUT/table3.md``; returns the JSON's path."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / "table3.md", self.markdown())
        return write_json(out / "table3.json", self.to_dict())  # last: the record


def likelihood_table(
    runs: Sequence[str | Path],
    settings: LikelihoodSettings = LikelihoodSettings(),
    *,
    labels: Sequence[str] | None = None,
    dataset: str | None = None,
    data_dir: str | None = None,
    device: str = "auto",
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> LikelihoodTable:
    """Table 3 for ``runs`` (run directories or checkpoint files): the exact NLL, AIS and KDE
    estimates of ``settings.methods`` on each run's dataset (or ``dataset``), one row per run.
    ``log`` receives a line per run. Problems (a missing run, a model that does not fit the
    data) raise :class:`~flowgan.errors.FlowganError`."""
    import torch

    from ..data import load_dataset
    from ..likelihood import log_likelihoods
    from ..runs import load_run
    from ..runtime import resolve_device
    from .ais import ais_estimate, select_sigma
    from .kde import kde_estimate

    names = run_labels(runs, labels)
    dev = resolve_device(device)
    s = settings
    rows, datasets = [], {}
    for run_path, label in zip(runs, names):
        run = load_run(run_path, s.checkpoint, device=dev)
        model, cfg = run.model, run.config
        key = (dataset or cfg.dataset, data_dir or cfg.data_dir)
        if key not in datasets:
            datasets[key] = load_dataset(*key)
        ds = datasets[key]
        if tuple(ds.shape) != tuple(model.shape):
            raise FlowganError(
                f"{run_path}: model shape {tuple(model.shape)} does not match dataset {ds.name} {tuple(ds.shape)}"
            )
        test = ds.test.images[: s.n_test]
        row: dict[str, Any] = {
            "label": label,
            "run": str(run_path),
            "checkpoint": str(run.checkpoint),
            "checkpoint_name": run.which,
            "step": run.step,
            "objective": cfg.objective,
            "lam": cfg.lam,
            "dataset": ds.name,
        }
        if log:
            log(f"{label} ({run.which}, step {run.step}) on {len(test)} {ds.name} test images")
        if "exact" in s.methods:
            t = time.perf_counter()
            ll = log_likelihoods(model, test, progress=progress)
            full = log_likelihoods(model, ds.test.images, progress=progress)
            row["exact"] = {
                "nll_nats": float(-ll.mean()),
                "sem": float(ll.std(correction=1) / math.sqrt(len(ll))) if len(ll) > 1 else None,
                "nll_nats_full_test": float(-full.mean()),
                "n_full_test": len(full),
                "seconds": round(time.perf_counter() - t, 2),
            }
        if "ais" in s.methods:
            budget = {
                "n_steps": s.ais_steps,
                "n_chains": s.ais_chains,
                "n_leapfrog": s.ais_leapfrog,
                "batch_size": s.ais_batch,
                "progress": progress,
            }
            run_sigma, selection = s.sigma, None
            if s.ais_sigma == "auto":
                run_sigma, selection = select_sigma(model, ds.val.images[: s.ais_val], seed=s.seed, **budget)
            d = ais_estimate(model, test, seed=s.seed, sigma=run_sigma, **budget).to_dict()
            row["ais"] = {**d, "sem": d["ll_sem"]}
            if selection is not None:
                row["ais"]["sigma_selection"] = {
                    "val_images": min(s.ais_val, len(ds.val.images)),
                    "mean_val_ll": {str(k): v for k, v in selection.items()},
                }
        if "kde" in s.methods:
            d = kde_estimate(
                model, ds.val.images[: s.kde_val], test, n_samples=s.kde_samples, seed=s.seed, progress=progress
            ).to_dict()
            row["kde"] = {**d, "nll_nats": d["test_nll_nats"], "sem": d["test_ll_sem"]}
        rows.append(row)
        del model, run
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    return LikelihoodTable(settings, rows)


def _fmt(v, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.{digits}f}"


def table3_markdown(table: dict[str, Any]) -> str:
    """Table 3 (exact NLL vs AIS and KDE estimates, in nats) with the ranking each method implies,
    from the dict of ``table3.json`` (:meth:`LikelihoodTable.to_dict`)."""
    runs = table["runs"]
    methods = [m for m in METHODS if any(m in r for r in runs)]
    lines = [
        f"# Table 3: negative log-likelihood estimates (nats) on {table.get('dataset', '')}, "
        f"{table.get('n_test', '?')} test images",
        "",
        "| run | checkpoint | " + " | ".join(NAMES[m] for m in methods) + " |",
        "|---|---|" + "---|" * len(methods),
    ]
    for r in runs:
        cells = []
        for m in methods:
            v = r.get(m, {})
            cell = _fmt(v.get("nll_nats"))
            if v.get("sem") is not None and math.isfinite(v.get("sem", float("nan"))):
                cell += f" ± {_fmt(v['sem'])}"
            cells.append(cell)
        lines.append(
            f"| {r['label']} | {r.get('checkpoint_name', '')} (step {r.get('step', '?')}) | " + " | ".join(cells) + " |"
        )
    lines += ["", "Ranking implied by each method (best first, by estimated log-likelihood):", ""]
    for m in methods:
        rk = table["rankings"].get(m)
        if rk:
            agree = (
                ""
                if m == "exact"
                else (" (agrees with exact)" if table["rankings_agree"].get(m) else " (differs from exact)")
            )
            text = table.get("rankings_text", {}).get(m) or " > ".join(rk)
            lines.append(f"* {NAMES[m]}: {text}{agree}")
    notes = table.get("notes") or []
    if notes:
        lines += ["", *[f"* {n}" for n in notes]]
    return "\n".join(lines) + "\n"
