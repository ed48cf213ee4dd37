"""``flowgan baseline gmm``, ``flowgan analyze likelihoods`` and ``flowgan analyze jacobian``.

Registered through :data:`flowgan.cli.PLUGINS`. Heavy imports (torch, matplotlib) happen inside
the command functions so that ``flowgan --help`` stays fast.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any


def _floats(text: str) -> list[float]:
    import argparse

    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one number")
    return values


def _grid(text: str) -> list[float]:
    """``LO:HI:N`` -> N log-spaced values from LO to HI."""
    import argparse

    parts = text.split(":")
    try:
        lo, hi, n = float(parts[0]), float(parts[1]), int(parts[2])
    except (ValueError, IndexError):
        raise argparse.ArgumentTypeError(f"expected LO:HI:N, got {text!r}") from None
    if not (0 < lo < hi) or n < 2:
        raise argparse.ArgumentTypeError(f"need 0 < LO < HI and N >= 2, got {text!r}")
    return [lo * (hi / lo) ** (i / (n - 1)) for i in range(n)]


def _positive(text: str) -> int:
    import argparse

    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def register(sub) -> None:
    _add_baseline(sub)
    _add_analyze(sub)


# ------------------------------------------------------------------------------------ helpers


def _usage(msg: str):
    from ..cli import UsageError

    return UsageError(msg)


def _out_dir(arg: str | None, kind: str) -> Path:
    out = Path(arg) if arg else Path("analysis") / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    return out


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(o):
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _run_config(run: str) -> dict:
    """The TrainConfig dict of a run directory (config.json) or checkpoint."""
    p = Path(run)
    if p.is_dir() and (p / "config.json").is_file():
        try:
            return json.loads((p / "config.json").read_text()).get("config", {})
        except json.JSONDecodeError:
            raise _usage(f"{p / 'config.json'} is not valid JSON") from None
    from ..checkpoint import load_checkpoint, resolve_checkpoint

    return load_checkpoint(resolve_checkpoint(p, "latest")).get("config", {})


def _pick_checkpoint(run: str, which: str) -> tuple[Path, str]:
    """``which == "auto"``: best_mode, then best_is, then best_nll, then latest (the paper evaluates
    the checkpoints with the best sample scores, §5)."""
    from ..checkpoint import resolve_checkpoint
    from ..errors import CheckpointError

    p = Path(run)
    if p.is_file():
        return p, p.stem
    if not p.is_dir():
        raise CheckpointError(f"{p} is neither a run directory nor a checkpoint file")
    names = ["best_mode", "best_is", "best_nll", "latest"] if which == "auto" else [which]
    for name in names:
        cand = p / "checkpoints" / f"{name}.pt"
        if cand.is_file():
            return cand, name
    if which != "auto":
        raise CheckpointError(f"{p} has no checkpoint {which!r} ({p / 'checkpoints' / (which + '.pt')})")
    path = resolve_checkpoint(p, "latest")
    return path, path.stem


def _labels(runs: list[str], labels: str | None) -> list[str]:
    if labels:
        out = [l.strip() for l in labels.split(",")]
        if len(out) != len(runs):
            raise _usage(f"--labels has {len(out)} names for {len(runs)} runs")
        return out
    names = [Path(r).name or str(r) for r in runs]
    if len(set(names)) != len(names):
        names = [str(r) for r in runs]
    return names


def _progress_default(args) -> bool:
    return not getattr(args, "no_progress", False)


def _load_dataset(name: str | None, data_dir: str | None):
    from ..data import load_dataset

    if not name:
        raise _usage("no dataset: pass --dataset (or a run with --against)")
    return load_dataset(name, data_dir)


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
    g.add_argument("--dataset", help="mnist, cifar10, mnist5k, digits, a .npz ... (default: the --against run's)")
    g.add_argument("--data-dir", help="folder with the dataset files (default: the run's, else $FLOWGAN_DATA)")
    g.add_argument("--against", metavar="RUN", help="a run directory whose best score and NLL are drawn as lines")
    g.add_argument("--sigmas", type=_floats, help="comma-separated sweep bandwidths (overrides --grid)")
    g.add_argument("--grid", type=_grid, default=None, help="log-spaced sweep grid LO:HI:N (default 0.01:1:13)")
    g.add_argument("--refine", type=int, default=3, help="line-search refinement rounds around the best sigma (default 3)")
    g.add_argument("--train-samples", type=_positive, help="use only the first N training images as centres (default all)")
    g.add_argument("--val-samples", type=_positive, help="validation images for the sweep (default all)")
    g.add_argument("--test-samples", type=_positive, help="test images for the test NLL at the best sigma (default all)")
    g.add_argument("--samples-for-scores", type=int, default=1000, help="mixture samples scored at each sigma (default 1000; 0 = no scores)")
    g.add_argument("--score", help="sample score to compare: mode (default for 1-channel data) or is")
    g.add_argument("--grid-sigmas", type=_floats, help="sigmas for Figure 7 sample grids (default: best sigma and the largest one beating the run on both)")
    g.add_argument("--grid-samples", type=int, default=64, help="images per sample grid (default 64)")
    g.add_argument("--unit", choices=["nats", "bpd"], help="unit of the figure (default nats for 1-channel data, bpd otherwise)")
    g.add_argument("--precision", choices=["float32", "float64"], default="float32", help="distance computation (see flowgan.analysis.gmm; default float32)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--out", help="output directory (default analysis/gmm-<dataset>-<time>)")
    g.add_argument("--no-progress", action="store_true")
    g.set_defaults(func=_cmd_baseline_gmm)


def _run_lines(run: str, score: str) -> dict[str, Any]:
    """The run's best sample score and the validation NLL at that evaluation (Figure 3's dashed lines)."""
    from ..training import read_metrics

    records = read_metrics(run, "eval")
    if not records:
        raise _usage(f"{run} has no evaluation records in metrics.jsonl")
    out: dict[str, Any] = {"run": str(run), "score_name": score}
    scored = [r for r in records if isinstance(r.get(score), (int, float)) and math.isfinite(r[score])]
    best_nll = min(records, key=lambda r: r.get("val_nll_nats", math.inf))
    out.update(best_val_nll_nats=best_nll.get("val_nll_nats"), best_val_nll_step=best_nll.get("step"))
    if scored:
        best = max(scored, key=lambda r: r[score])
        out.update(best_score=float(best[score]), best_score_std=best.get(f"{score}_std"), best_score_classifier=best.get("classifier"), best_score_step=best["step"], nll_nats=best.get("val_nll_nats"),
                   nll_bpd=best.get("val_nll_bpd"), nll_label=f"at its best {score} (step {best['step']})")
    else:
        out.update(best_score=None, nll_nats=best_nll.get("val_nll_nats"), nll_bpd=best_nll.get("val_nll_bpd"),
                   nll_label=f"best (step {best_nll.get('step')}; run has no {score} scores)")
    return out


def _cmd_baseline_gmm(args) -> int:
    import torch

    from ..images import save_grid
    from . import gmm as G
    from .plots import beats_regions, plot_mixture_vs_run

    progress = _progress_default(args)
    cfg: dict = {}
    if args.against:
        if not Path(args.against).is_dir():
            raise _usage(f"--against needs a run directory, got {args.against}")
        cfg = _run_config(args.against)
        if args.dataset and cfg.get("dataset") and Path(args.dataset).stem != Path(cfg["dataset"]).stem:
            raise _usage(f"--dataset {args.dataset} differs from the run's dataset {cfg['dataset']}")
    dataset = _load_dataset(args.dataset or cfg.get("dataset"), args.data_dir or cfg.get("data_dir"))
    channels = dataset.shape[0]
    score = args.score or ("mode" if channels == 1 else "is")
    unit = args.unit or ("nats" if channels == 1 else "bpd")
    sigmas = args.sigmas or args.grid or list(G.DEFAULT_GRID)
    if any(not (0 < s <= 1) for s in sigmas):
        raise _usage("bandwidths must lie in (0, 1]")
    if args.refine < 0:
        raise _usage("--refine must be >= 0")
    train = dataset.train.images[: args.train_samples]
    val = dataset.val.images[: args.val_samples]
    test = dataset.test.images[: args.test_samples]
    out = _out_dir(args.out, f"gmm-{Path(dataset.name).stem}")

    score_fn, note = None, None
    if args.samples_for_scores > 0:
        score_fn, note = G.default_score_fn(dataset, [score], split="test")
    else:
        note = "sample scores skipped (--samples-for-scores 0)"
    from ..cli import err

    if note:
        err(f"flowgan baseline gmm: {note}")
    err(f"flowgan baseline gmm: {dataset.describe()}; {len(train)} centres, sweep of {len(sigmas)} sigmas on {len(val)} validation images")
    t0 = time.perf_counter()
    result = G.mixture_sweep(
        train, val, test, sigmas=sigmas, refine_rounds=args.refine, score_fn=score_fn,
        score_samples=args.samples_for_scores, seed=args.seed, precision=args.precision, progress=progress,
    )
    result.update(dataset=dataset.name, unit=unit, score_name=score, scores_note=note, seconds=round(time.perf_counter() - t0, 2))
    if score_fn is not None:  # the classifier behind the sweep's scores (issue 11: every score names it)
        from ..errors import FlowganError
        from ..metrics.classifiers import find_classifier

        try:
            result.update(find_classifier(dataset).summary())
        except FlowganError:  # a scoring function without a shipped classifier (tests inject one)
            pass
    if args.against:
        lines = _run_lines(args.against, score)
        lines["run_val_eval_samples"] = cfg.get("eval_samples")
        result["against"] = lines
        rows = result["sweep"]
        scores = [r.get("scores", {}).get(score) for r in rows] if score_fn is not None else None
        key = "val_nll_bpd" if unit == "bpd" else "val_nll_nats"
        run_nll = lines.get("nll_bpd" if unit == "bpd" else "nll_nats")
        result.update(beats_regions([r["sigma"] for r in rows], [r[key] for r in rows], scores, run_nll, lines.get("best_score")))
    # Figure 7: sample grids
    grid_sigmas = args.grid_sigmas
    if not grid_sigmas:
        grid_sigmas = [result["best_sigma"]]
        if result.get("beats_both"):
            grid_sigmas.append(max(result["beats_both"]))
    mixture = G.GaussianMixtureBaseline(train, grid_sigmas[0])
    grids = []
    for s in grid_sigmas:
        mixture.sigma = s
        x = mixture.sample(args.grid_samples, generator=torch.Generator().manual_seed(args.seed))
        grids.append(str(save_grid(x, out / f"samples_sigma_{s:.4g}.png")))
    result["sample_grids"] = dict(zip([float(s) for s in grid_sigmas], grids))
    fig = plot_mixture_vs_run(result, out / "gmm_vs_run.png", unit=unit, score_name=score if score_fn is not None else None)
    result["figure"] = str(fig)
    _write_json(out / "gmm.json", result)
    (out / "gmm.md").write_text(_gmm_markdown(result))
    print(f"best sigma {result['best_sigma']:.4g}: validation NLL {result['best_val_nll_nats']:.2f} nats "
          f"({result['best_val_nll_bpd']:.4f} bits/dim)" + (f", test NLL {result['test_nll_nats']:.2f} nats" if "test_nll_nats" in result else ""))
    print(f"wrote {out / 'gmm.json'}, {fig}")
    return 0


def _gmm_markdown(r: dict[str, Any]) -> str:
    score = r.get("score_name")
    has_scores = any("scores" in row for row in r["sweep"])
    head = "| sigma | val NLL (nats) | val NLL (bits/dim) |" + (f" {score} |" if has_scores else "")
    lines = [f"# Gaussian-mixture baseline on {r.get('dataset')}", "",
             f"{r['n_components']} centres, {r['n_val']} validation images. Best sigma {r['best_sigma']:.4g}: "
             f"validation NLL {r['best_val_nll_nats']:.2f} nats ({r['best_val_nll_bpd']:.4f} bits/dim)"
             + (f"; test NLL {r['test_nll_nats']:.2f} nats on {r['n_test']} images." if "test_nll_nats" in r else "."), "",
             head, "|---|---|---|" + ("---|" if has_scores else "")]
    for row in r["sweep"]:
        cell = f" {row.get('scores', {}).get(score, float('nan')):.3f} |" if has_scores else ""
        lines.append(f"| {row['sigma']:.4g} | {row['val_nll_nats']:.2f} | {row['val_nll_bpd']:.4f} |{cell}")
    a = r.get("against")
    if a:
        def num(v, spec):
            return format(v, spec) if isinstance(v, (int, float)) else "—"

        lines += ["", f"Run {a['run']}: best {score} score {num(a.get('best_score'), '.3f')} (step {a.get('best_score_step')}), "
                  f"validation NLL {num(a.get('nll_nats'), '.2f')} nats {a.get('nll_label', '')}.",
                  f"Mixture better on NLL at sigma {', '.join(f'{s:.3g}' for s in r.get('beats_nll', [])) or 'none'}; "
                  f"on both at {', '.join(f'{s:.3g}' for s in r.get('beats_both', [])) or 'none'}."]
    if r.get("scores_note"):
        lines += ["", f"Note: {r['scores_note']}"]
    return "\n".join(lines) + "\n"


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
    lk.add_argument("--checkpoint", default="auto", help="which checkpoint: auto (best_mode, else best_is, else best_nll; the paper's choice), best_nll, latest, ...")
    lk.add_argument("--labels", help="comma-separated names of the runs (default: directory names)")
    lk.add_argument("--methods", default="exact,ais,kde", help="comma-separated subset of exact, ais, kde (default all)")
    lk.add_argument("--dataset", help="evaluate on this dataset instead of each run's")
    lk.add_argument("--data-dir")
    lk.add_argument("--n-test", type=_positive, default=100, help="test images for all three methods (default 100; the first N)")
    lk.add_argument("--ais-steps", type=_positive, default=100, help="AIS intermediate distributions (default 100)")
    lk.add_argument("--ais-chains", type=_positive, default=4, help="AIS chains per image (default 4)")
    lk.add_argument("--ais-leapfrog", type=_positive, default=5, help="leapfrog steps per HMC move (default 5)")
    lk.add_argument("--ais-sigma", default=None, help="observation noise std (default sqrt(0.025) = 0.158, Wu et al.'s MNIST value), "
                    "or 'auto': the best of 0.01,0.02,0.05,0.1,0.158,0.3 by AIS on --ais-val validation images (Wu et al.'s procedure)")
    lk.add_argument("--ais-val", type=_positive, default=20, help="validation images for --ais-sigma auto (default 20)")
    lk.add_argument("--ais-batch", type=_positive, default=50, help="test images per AIS batch (default 50)")
    lk.add_argument("--kde-samples", type=_positive, default=10000, help="model samples for the KDE (default 10,000)")
    lk.add_argument("--kde-val", type=_positive, default=1000, help="validation images for the KDE bandwidth (default 1000)")
    lk.add_argument("--seed", type=int, default=0)
    lk.add_argument("--device", default="auto", help="auto (default: cuda if available), cpu, cuda, cuda:1, ...")
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
    jc.add_argument("--checkpoint", default="auto", help="which checkpoint: auto (best_mode, else best_is, else best_nll), best_nll, latest, ...")
    jc.add_argument("--labels", help="comma-separated names of the runs (default: directory names)")
    jc.add_argument("-n", "--n-samples", dest="n", type=_positive, default=64, help="prior samples per run (default 64, as the paper)")
    jc.add_argument("--dtype", choices=["float32", "float64"], default="float32", help="Jacobian precision (SVD always float64; default float32)")
    jc.add_argument("--method", choices=["auto", "coupling", "autograd"], default="auto", help="auto: layer-wise for NICE, autograd otherwise")
    jc.add_argument("--svd", choices=["auto", "svd"], default="auto", help="auto: eigenvalues of J^T J when cond(J) <= 1e4, LAPACK SVD otherwise; svd: always the SVD")
    jc.add_argument("--seed", type=int, default=0)
    jc.add_argument("--device", default="auto", help="auto (default: cuda if available), cpu, cuda, ...")
    jc.add_argument("--title", help="figure title")
    jc.add_argument("--out", help="output directory (default analysis/jacobian-<time>)")
    jc.add_argument("--no-progress", action="store_true")
    jc.set_defaults(func=_cmd_jacobian)


def _ranking(values: dict[str, float]) -> list[str]:
    """Labels ordered by log-likelihood, best first (NaNs last)."""
    return sorted(values, key=lambda k: (not math.isfinite(values[k]), -values[k] if math.isfinite(values[k]) else 0.0))


def _cmd_likelihoods(args) -> int:
    import torch

    from ..checkpoint import load_model
    from ..cli import err
    from ..likelihood import log_likelihoods
    from ..training import resolve_device
    from .ais import DEFAULT_SIGMA, ais_estimate, select_sigma
    from .kde import kde_estimate
    from .plots import table3_markdown

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = set(methods) - {"exact", "ais", "kde"}
    if unknown or not methods:
        raise _usage(f"--methods must be a subset of exact, ais, kde (got {args.methods})")
    auto_sigma = args.ais_sigma == "auto"
    try:
        sigma = DEFAULT_SIGMA if args.ais_sigma is None or auto_sigma else float(args.ais_sigma)
    except ValueError:
        raise _usage(f"--ais-sigma must be a positive number or 'auto', got {args.ais_sigma!r}") from None
    if not sigma > 0:
        raise _usage("--ais-sigma must be positive")
    labels = _labels(args.runs, args.labels)
    device = resolve_device(args.device)
    progress = _progress_default(args)
    out = _out_dir(args.out, "likelihoods")
    rows, datasets = [], {}
    for run, label in zip(args.runs, labels):
        ckpt_path, ckpt_name = _pick_checkpoint(run, args.checkpoint)
        model, ckpt = load_model(ckpt_path, device=device)
        cfg = ckpt.get("config", {})
        name = args.dataset or cfg.get("dataset")
        key = (name, args.data_dir or cfg.get("data_dir"))
        if key not in datasets:
            datasets[key] = _load_dataset(*key)
        ds = datasets[key]
        if tuple(ds.shape) != tuple(model.shape):
            raise _usage(f"{run}: model shape {tuple(model.shape)} does not match dataset {ds.name} {tuple(ds.shape)}")
        test = ds.test.images[: args.n_test]
        row: dict[str, Any] = {"label": label, "run": str(run), "checkpoint": str(ckpt_path), "checkpoint_name": ckpt_name,
                               "step": ckpt.get("step"), "objective": cfg.get("objective"), "lam": cfg.get("lam"), "dataset": ds.name}
        err(f"flowgan analyze likelihoods: {label} ({ckpt_name}, step {ckpt.get('step')}) on {len(test)} {ds.name} test images")
        if "exact" in methods:
            t = time.perf_counter()
            ll = log_likelihoods(model, test, progress=progress)
            full = log_likelihoods(model, ds.test.images, progress=progress)
            row["exact"] = {"nll_nats": float(-ll.mean()), "sem": float(ll.std(correction=1) / math.sqrt(len(ll))) if len(ll) > 1 else None,
                            "nll_nats_full_test": float(-full.mean()), "n_full_test": len(full), "seconds": round(time.perf_counter() - t, 2)}
        if "ais" in methods:
            budget = dict(n_steps=args.ais_steps, n_chains=args.ais_chains, n_leapfrog=args.ais_leapfrog, batch_size=args.ais_batch, progress=progress)
            run_sigma, selection = sigma, None
            if auto_sigma:
                run_sigma, selection = select_sigma(model, ds.val.images[: args.ais_val], seed=args.seed, **budget)
            res = ais_estimate(model, test, seed=args.seed, sigma=run_sigma, **budget)
            d = res.to_dict()
            row["ais"] = {**d, "sem": d["ll_sem"]}
            if selection is not None:
                row["ais"]["sigma_selection"] = {"val_images": min(args.ais_val, len(ds.val.images)), "mean_val_ll": {str(k): v for k, v in selection.items()}}
        if "kde" in methods:
            res = kde_estimate(model, ds.val.images[: args.kde_val], test, n_samples=args.kde_samples, seed=args.seed, progress=progress)
            d = res.to_dict()
            row["kde"] = {**d, "nll_nats": d["test_nll_nats"], "sem": d["test_ll_sem"]}
        rows.append(row)
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    rankings, rankings_text, agree = {}, {}, {}
    for m in methods:
        values = {r["label"]: -r[m]["nll_nats"] for r in rows}
        rankings[m] = _ranking(values)
        text = rankings[m][0]
        for prev, cur in zip(rankings[m], rankings[m][1:]):
            text += (" = " if values[prev] == values[cur] else " > ") + cur
        rankings_text[m] = text
    for m in methods:
        if m != "exact" and "exact" in rankings:
            agree[m] = rankings[m] == rankings["exact"]
    table = {
        "dataset": ", ".join(sorted({r["dataset"] for r in rows})),
        "n_test": args.n_test,
        "units": "nats, continuous density on [0,1]^D (the paper's MNIST convention); lower is better",
        "settings": {"ais": {"sigma": "auto" if auto_sigma else sigma, "steps": args.ais_steps, "chains": args.ais_chains, "leapfrog": args.ais_leapfrog, "schedule": "sigmoid"},
                     "kde": {"samples": args.kde_samples, "val_images": args.kde_val}, "seed": args.seed},
        "runs": rows,
        "rankings": rankings,
        "rankings_text": rankings_text,
        "rankings_agree": agree,
        "notes": [
            "AIS estimates log p_sigma(x) of the Gaussian observation model N(G(z), sigma^2 I), a stochastic lower bound in expectation; "
            "KDE is a Parzen window on model samples; both are in the flows' units on the same dequantized test images.",
        ],
    }
    _write_json(out / "table3.json", table)
    (out / "table3.md").write_text(table3_markdown(table))
    print(table3_markdown(table), end="")
    print(f"wrote {out / 'table3.json'}, {out / 'table3.md'}")
    return 0


def _cmd_jacobian(args) -> int:
    import numpy as np
    import torch

    from ..checkpoint import load_model
    from ..cli import err
    from ..training import resolve_device
    from .jacobian import jacobian_spectra
    from .plots import plot_singular_value_cdf

    labels = _labels(args.runs, args.labels)
    device = resolve_device(args.device)
    progress = _progress_default(args)
    out = _out_dir(args.out, "jacobian")
    dtype = getattr(torch, args.dtype)
    results, curves, arrays = [], {}, {}
    for run, label in zip(args.runs, labels):
        ckpt_path, ckpt_name = _pick_checkpoint(run, args.checkpoint)
        model, ckpt = load_model(ckpt_path, device=device)
        err(f"flowgan analyze jacobian: {label} ({ckpt_name}, step {ckpt.get('step')}): {args.n} Jacobians of {tuple(model.shape)}")
        spectra = jacobian_spectra(model, args.n, seed=args.seed, dtype=dtype, method=args.method, svd=args.svd, progress=progress)
        summary = spectra.summary()
        results.append({"label": label, "run": str(run), "checkpoint": str(ckpt_path), "checkpoint_name": ckpt_name, "step": ckpt.get("step"),
                        "objective": ckpt.get("config", {}).get("objective"), "lam": ckpt.get("config", {}).get("lam"), **summary})
        # the legend carries the flow's exact log-det: the SVD resolves tiny singular values of an
        # ill-conditioned Jacobian only relative to the largest one, so their log-sum can be off
        exact = summary["mean_logdet_flow"]
        curves[label] = (spectra.singular_values.numpy(), exact if np.isfinite(exact) else summary["mean_logdet"])
        arrays[f"{len(arrays):02d}_{label}"] = spectra.singular_values.numpy()
    fig = plot_singular_value_cdf(curves, out / "figure4.png", title=args.title)
    np.savez_compressed(out / "spectra.npz", **arrays)
    table = {"n_samples": args.n, "seed": args.seed, "jacobian_dtype": args.dtype, "runs": results, "figure": str(fig),
             "spectra": str(out / "spectra.npz"),
             "note": "G includes the final sigmoid; mean_logdet = mean over samples of sum_i log s_i; mean_logdet_flow = log|det dG/dz| accumulated by the flow layer by layer from z (float64; finite where saturated pixels make singular values underflow)."}
    _write_json(out / "jacobian.json", table)
    md = ["# Singular values of dG/dz", "", f"{args.n} prior samples per run; log10 quantiles of the singular values pooled over samples.", "",
          "| run | mean log\\|det\\| | flow's log-det | max diff | q05 | q50 | q95 | median log10 cond |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        q = r["log10_singular_value_quantiles"]
        md.append(f"| {r['label']} | {r['mean_logdet']:.2f} | {r['mean_logdet_flow']:.2f} | {r['max_abs_logdet_diff']:.2g} | "
                  f"{q.get('q05', float('nan')):.2f} | {q.get('q50', float('nan')):.2f} | {q.get('q95', float('nan')):.2f} | {r['median_log10_condition_number']:.2f} |")
    (out / "jacobian.md").write_text("\n".join(md) + "\n")
    for r in results:
        print(f"{r['label']}: mean log|det| {r['mean_logdet']:.2f} (flow {r['mean_logdet_flow']:.2f}), "
              f"median singular value 10^{r['log10_singular_value_quantiles'].get('q50', float('nan')):.2f}")
    print(f"wrote {out / 'jacobian.json'}, {fig}")
    return 0
