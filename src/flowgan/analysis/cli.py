"""``flowgan baseline gmm``, ``flowgan analyze likelihoods`` and ``flowgan analyze jacobian``.

Registered through :data:`flowgan.cli.PLUGINS`. The commands only parse their flags, call the
analyses (:func:`flowgan.analysis.baseline.gmm_baseline`, :func:`flowgan.analysis.table3.likelihood_table`,
:func:`flowgan.analysis.figure4.jacobian_analysis`) and print; heavy imports (torch, matplotlib)
happen inside the command functions so that ``flowgan --help`` stays fast.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from ..options import dataset, device, integer, names, seed


def _floats(text: str) -> list[float]:
    """Comma-separated positive numbers (bandwidths)."""
    import argparse

    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one number")
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"every value must be a positive number, got {text!r}")
    return values


def _grid(text: str) -> list[float]:
    """``LO:HI:N`` -> N log-spaced values from LO to HI."""
    import argparse

    parts = text.split(":")
    try:
        lo, hi, n = float(parts[0]), float(parts[1]), int(parts[2])
    except (ValueError, IndexError):
        raise argparse.ArgumentTypeError(f"expected LO:HI:N, got {text!r}") from None
    if len(parts) != 3 or not (0 < lo < hi < math.inf) or n < 2:
        raise argparse.ArgumentTypeError(f"need 0 < LO < HI and N >= 2, got {text!r}")
    return [lo * (hi / lo) ** (i / (n - 1)) for i in range(n)]


def _ais_sigma(text: str) -> float | str:
    """``--ais-sigma``: a positive number or ``auto``."""
    import argparse

    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number or 'auto', got {text!r}")
    return value


def register(sub) -> None:
    _add_baseline(sub)
    _add_analyze(sub)


# ------------------------------------------------------------------------------------ helpers


def _say(command: str):
    from ..cli import err

    return lambda line: err(f"flowgan {command}: {line}")


def _out_dir(arg: str | None, kind: str) -> Path:
    out = Path(arg) if arg else Path("analysis") / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    return out


def _labels(text: str | None) -> list[str] | None:
    return [label.strip() for label in text.split(",")] if text else None


# ------------------------------------------------------------------------------------ baseline gmm


def _add_baseline(sub) -> None:
    p = sub.add_parser(
        "baseline",
        help="baselines to compare runs against (the Gaussian mixture of §3.4)",
        description="Baselines for Flow-GAN runs. `flowgan baseline gmm --help` for the Gaussian-mixture baseline.",
    )
    bsub = p.add_subparsers(dest="baseline", metavar="BASELINE", parser_class=type(p))
    bsub.required = True
    g = bsub.add_parser(
        "gmm",
        help="Gaussian mixture at the training points: NLL and sample score vs sigma (Figures 3, 6, 7)",
        description=(
            "The baseline of §3.4: one isotropic Gaussian N(c_i, sigma^2 I) at every training image "
            "(centres (k+1/2)/256), exact chunked log-likelihoods in the flows' units and dequantization. "
            "Sweeps sigma on a grid in (0, 1], refines the best validation NLL by line search, scores "
            "mixture samples at every grid sigma (when flowgan.metrics is installed), and with --against "
            "draws the run's best sample score and its validation NLL, shading where the mixture beats "
            "the run on both (Figures 3 and 6). Writes gmm.json, gmm.md, gmm_vs_run.png and sample grids "
            "samples_sigma_<s>.png (Figure 7)."
        ),
    )
    g.add_argument(
        "--dataset", type=dataset, help="mnist, cifar10, mnist5k, digits, a .npz ... (default: the --against run's)"
    )
    g.add_argument("--data-dir", help="folder with the dataset files (default: the run's, else $FLOWGAN_DATA)")
    g.add_argument("--against", metavar="RUN", help="a run directory whose best score and NLL are drawn as lines")
    g.add_argument("--sigmas", type=_floats, help="comma-separated sweep bandwidths (overrides --grid)")
    g.add_argument("--grid", type=_grid, default=None, help="log-spaced sweep grid LO:HI:N (default 0.01:1:13)")
    g.add_argument(
        "--refine", type=integer(0), default=3, help="line-search refinement rounds around the best sigma (default 3)"
    )
    g.add_argument(
        "--train-samples", type=integer(1), help="use only the first N training images as centres (default all)"
    )
    g.add_argument("--val-samples", type=integer(1), help="validation images for the sweep (default all)")
    g.add_argument(
        "--test-samples", type=integer(1), help="test images for the test NLL at the best sigma (default all)"
    )
    g.add_argument(
        "--samples-for-scores",
        type=integer(0),
        default=1000,
        help="mixture samples scored at each sigma (default 1000; 0 = no scores)",
    )
    g.add_argument(
        "--score", choices=["mode", "is"], help="sample score to compare: mode (default for 1-channel data) or is"
    )
    g.add_argument(
        "--grid-sigmas",
        type=_floats,
        help="sigmas for Figure 7 sample grids (default: best sigma and the largest one beating the run on both)",
    )
    g.add_argument("--grid-samples", type=integer(1), default=64, help="images per sample grid (default 64)")
    g.add_argument(
        "--unit", choices=["nats", "bpd"], help="unit of the figure (default nats for 1-channel data, bpd otherwise)"
    )
    g.add_argument(
        "--precision",
        choices=["float32", "float64"],
        default="float32",
        help="distance computation (see flowgan.analysis.gmm; default float32)",
    )
    g.add_argument("--seed", type=seed, default=0)
    g.add_argument("--out", help="output directory (default analysis/gmm-<dataset>-<time>)")
    g.add_argument("--no-progress", action="store_true")
    g.set_defaults(func=_cmd_baseline_gmm)


def _cmd_baseline_gmm(args) -> int:
    from .baseline import GmmSettings, gmm_baseline

    settings = GmmSettings(
        sigmas=args.sigmas or args.grid,
        refine=args.refine,
        train_samples=args.train_samples,
        val_samples=args.val_samples,
        test_samples=args.test_samples,
        samples_for_scores=args.samples_for_scores,
        score=args.score,
        grid_sigmas=args.grid_sigmas,
        grid_samples=args.grid_samples,
        unit=args.unit,
        precision=args.precision,
        seed=args.seed,
    )
    result = gmm_baseline(
        args.dataset,
        settings,
        against=args.against,
        data_dir=args.data_dir,
        progress=not args.no_progress,
        log=_say("baseline gmm"),
    )
    out = _out_dir(args.out, f"gmm-{Path(result.record['dataset']).stem}")
    fig = result.write(out)
    r = result.record
    print(
        f"best sigma {r['best_sigma']:.4g}: validation NLL {r['best_val_nll_nats']:.2f} nats "
        f"({r['best_val_nll_bpd']:.4f} bits/dim)"
        + (f", test NLL {r['test_nll_nats']:.2f} nats" if "test_nll_nats" in r else "")
    )
    print(f"wrote {out / 'gmm.json'}, {fig}")
    return 0


# ------------------------------------------------------------------------------------ analyze


def _add_analyze(sub) -> None:
    p = sub.add_parser(
        "analyze",
        help="analyses of saved runs: Table 3 (exact NLL vs AIS, KDE), Jacobian spectra (Figure 4)",
        description="Analyses of saved runs. `flowgan analyze likelihoods --help`, `flowgan analyze jacobian --help`.",
    )
    asub = p.add_subparsers(dest="analysis", metavar="ANALYSIS", parser_class=type(p))
    asub.required = True

    lk = asub.add_parser(
        "likelihoods",
        help="Table 3: exact NLL next to AIS and KDE estimates, with the ranking each implies",
        description=(
            "For each run: the exact test NLL of the flow, the AIS estimate with a Gaussian observation "
            "model (Wu et al. 2017) and the KDE/Parzen estimate from model samples (Goodfellow et al. 2014), "
            "all in nats on the same dequantized test images, and the ranking of the runs each method "
            "implies (Table 3). Defaults are sized for a CPU (minutes per run): 100 test images, AIS with "
            "100 intermediate distributions x 4 chains x 5 leapfrog steps, KDE with 10,000 samples. Wu et "
            "al. used 10,000 distributions, 16 chains and 10 leapfrog steps; raise --ais-steps/--ais-chains "
            "on a GPU. Writes table3.json and table3.md."
        ),
    )
    lk.add_argument("runs", nargs="+", metavar="RUN", help="run directories (or checkpoint files)")
    lk.add_argument(
        "--checkpoint",
        default="auto",
        help="which checkpoint: auto (best_mode, else best_is, else best_nll; the paper's choice), "
        "best_nll, latest, ...",
    )
    lk.add_argument("--labels", help="comma-separated names of the runs (default: directory names)")
    lk.add_argument(
        "--methods",
        type=names(("exact", "ais", "kde"), what="method"),
        default=["exact", "ais", "kde"],
        help="comma-separated subset of exact, ais, kde (default all)",
    )
    lk.add_argument("--dataset", type=dataset, help="evaluate on this dataset instead of each run's")
    lk.add_argument("--data-dir")
    lk.add_argument(
        "--n-test", type=integer(1), default=100, help="test images for all three methods (default 100; the first N)"
    )
    lk.add_argument("--ais-steps", type=integer(1), default=100, help="AIS intermediate distributions (default 100)")
    lk.add_argument("--ais-chains", type=integer(1), default=4, help="AIS chains per image (default 4)")
    lk.add_argument("--ais-leapfrog", type=integer(1), default=5, help="leapfrog steps per HMC move (default 5)")
    lk.add_argument(
        "--ais-sigma",
        type=_ais_sigma,
        default=None,
        help="observation noise std (default sqrt(0.025) = 0.158, Wu et al.'s MNIST value), or 'auto': the best of "
        "0.01,0.02,0.05,0.1,0.158,0.3 by AIS on --ais-val validation images (Wu et al.'s procedure)",
    )
    lk.add_argument(
        "--ais-val", type=integer(1), default=20, help="validation images for --ais-sigma auto (default 20)"
    )
    lk.add_argument("--ais-batch", type=integer(1), default=50, help="test images per AIS batch (default 50)")
    lk.add_argument("--kde-samples", type=integer(1), default=10000, help="model samples for the KDE (default 10,000)")
    lk.add_argument(
        "--kde-val", type=integer(1), default=1000, help="validation images for the KDE bandwidth (default 1000)"
    )
    lk.add_argument("--seed", type=seed, default=0)
    lk.add_argument(
        "--device", type=device, default="auto", help="auto (default: cuda if available), cpu, cuda, cuda:1, ..."
    )
    lk.add_argument("--out", help="output directory (default analysis/likelihoods-<time>)")
    lk.add_argument("--no-progress", action="store_true")
    lk.set_defaults(func=_cmd_likelihoods)

    jc = asub.add_parser(
        "jacobian",
        help="Figure 4: CDF of the singular values of dG/dz for several runs, mean log|det|",
        description=(
            "Exact singular values of the generator's Jacobian dG/dz at K prior samples per run (§5.1), "
            "their CDF on a log axis, one curve per run (Figure 4/8), and the mean log|det| checked "
            "against the flow's own log-determinant. Writes figure4.png, jacobian.json, jacobian.md and "
            "spectra.npz (all singular values)."
        ),
    )
    jc.add_argument("runs", nargs="+", metavar="RUN", help="run directories (or checkpoint files)")
    jc.add_argument(
        "--checkpoint",
        default="auto",
        help="which checkpoint: auto (best_mode, else best_is, else best_nll), best_nll, latest, ...",
    )
    jc.add_argument("--labels", help="comma-separated names of the runs (default: directory names)")
    jc.add_argument(
        "-n",
        "--n-samples",
        dest="n",
        type=integer(1),
        default=64,
        help="prior samples per run (default 64, as the paper)",
    )
    jc.add_argument(
        "--dtype",
        choices=["float32", "float64"],
        default="float32",
        help="Jacobian precision (SVD always float64; default float32)",
    )
    jc.add_argument(
        "--method",
        choices=["auto", "coupling", "autograd"],
        default="auto",
        help="auto: layer-wise for NICE, autograd otherwise",
    )
    jc.add_argument(
        "--svd",
        choices=["auto", "svd"],
        default="auto",
        help="auto: eigenvalues of J^T J when cond(J) <= 1e4, LAPACK SVD otherwise; svd: always the SVD",
    )
    jc.add_argument("--seed", type=seed, default=0)
    jc.add_argument("--device", type=device, default="auto", help="auto (default: cuda if available), cpu, cuda, ...")
    jc.add_argument("--title", help="figure title")
    jc.add_argument("--out", help="output directory (default analysis/jacobian-<time>)")
    jc.add_argument("--no-progress", action="store_true")
    jc.set_defaults(func=_cmd_jacobian)


def _cmd_likelihoods(args) -> int:
    from .table3 import LikelihoodSettings, likelihood_table

    settings = LikelihoodSettings(
        methods=tuple(args.methods),
        n_test=args.n_test,
        ais_steps=args.ais_steps,
        ais_chains=args.ais_chains,
        ais_leapfrog=args.ais_leapfrog,
        ais_sigma=args.ais_sigma,
        ais_val=args.ais_val,
        ais_batch=args.ais_batch,
        kde_samples=args.kde_samples,
        kde_val=args.kde_val,
        seed=args.seed,
        checkpoint=args.checkpoint,
    )
    out = _out_dir(args.out, "likelihoods")
    table = likelihood_table(
        args.runs,
        settings,
        labels=_labels(args.labels),
        dataset=args.dataset,
        data_dir=args.data_dir,
        device=args.device,
        progress=not args.no_progress,
        log=_say("analyze likelihoods"),
    )
    path = table.write(out)
    print(table.markdown(), end="")
    print(f"wrote {path}, {out / 'table3.md'}")
    return 0


def _cmd_jacobian(args) -> int:
    from .figure4 import JacobianSettings, jacobian_analysis

    settings = JacobianSettings(
        n=args.n, dtype=args.dtype, method=args.method, svd=args.svd, seed=args.seed, checkpoint=args.checkpoint
    )
    out = _out_dir(args.out, "jacobian")
    result = jacobian_analysis(
        args.runs,
        settings,
        labels=_labels(args.labels),
        device=args.device,
        progress=not args.no_progress,
        log=_say("analyze jacobian"),
    )
    fig = result.write(out, title=args.title)
    for r in result.rows:
        print(
            f"{r['label']}: mean log|det| {r['mean_logdet']:.2f} (flow {r['mean_logdet_flow']:.2f}), "
            f"median singular value 10^{r['log10_singular_value_quantiles'].get('q50', float('nan')):.2f}"
        )
    print(f"wrote {out / 'jacobian.json'}, {fig}")
    return 0
