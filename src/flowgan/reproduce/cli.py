"""``flowgan reproduce`` and ``flowgan report`` (registered through :data:`flowgan.cli.PLUGINS`)."""

from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    from ..options import device, integer, names, number, parse_kv
    from .frontier import DEFAULT_LAMBDAS, parse_lambdas
    from .pipeline import SKIPPABLE

    p = sub.add_parser(
        "reproduce",
        help="train MLE, ADV and Hybrid Flow-GANs, run the analyses and write report.md with the paper's tables, "
        "figures and claims",
        description=(
            "Reproduce the paper end to end: train MLE, ADV and Hybrid Flow-GANs (the same fixed number of generator "
            "updates each, so the same command gives the same tables on a busy and an idle machine), evaluate them "
            "(exact test NLL, sample scores), fit the Gaussian-mixture baseline, compare exact NLL with AIS and KDE "
            "(Table 3), compute the generator's Jacobian spectra (Figure 4), and write DIR/report.md with figures and "
            "PASS/FAIL/INCONCLUSIVE verdicts on the paper's claims. Presets: quick (mnist5k, small nets, offline, 750 "
            "updates, <= 15 minutes on a 2-core CPU), mnist (full MNIST, the paper's NICE, 3,000 updates), cifar10 "
            "(Real-NVP, 10,000 updates, a GPU is advised). A short calibration prints the expected duration first. "
            "Re-running the same command reuses finished stages and continues an interrupted one."
        ),
    )
    p.add_argument("--preset", required=True, choices=["quick", "mnist", "cifar10-5k", "cifar10"])
    p.add_argument(
        "--steps",
        type=integer(1),
        help="generator updates per objective (default by preset: quick 750, mnist 3000, cifar10-5k 400, "
        "cifar10 10000)",
    )
    p.add_argument(
        "--budget-minutes", type=number(0, low_open=True),
        help="safety net for the whole reproduction (default by preset: quick 60, mnist 720, cifar10-5k 150, cifar10 "
        "1440): a training stage still running when it is spent stops, and the report says INCOMPLETE; re-run with a "
        "larger value to finish it",
    )  # fmt: skip
    p.add_argument("--out", help="output directory (default runs/reproduce-<preset>)")
    p.add_argument("--data-dir", help="folder with the dataset files (mnist, cifar10-5k, cifar10 presets)")
    p.add_argument("--device", type=device, default="auto", help="auto (default), cpu, cuda, ...")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument(
        "--skip",
        type=names(SKIPPABLE, what="analysis"),
        default=[],
        help="comma-separated analyses to leave out: gmm, table3, jacobian (their claims say N/A)",
    )
    p.add_argument(
        "--seeds",
        type=integer(1),
        default=1,
        help="train each objective N times, with seeds 0..N-1 (default 1): DIR/seed-K holds each seed's reproduction "
        "and DIR/report.md shows every number as mean ± standard deviation across seeds and judges each claim on the "
        "seeds together",
    )
    p.add_argument(
        "--frontier",
        nargs="?",
        const=",".join(f"{v:g}" for v in DEFAULT_LAMBDAS),
        type=parse_lambdas,
        metavar="LAMBDAS",
        help="also train the hybrid at these comma-separated values of λ (default "
        + ",".join(f"{v:g}" for v in DEFAULT_LAMBDAS)
        + ") and draw the λ frontier, test NLL against the sample score beside MLE and ADV; finished runs are reused",
    )
    for what in ("model", "critic"):
        p.add_argument(
            f"--{what}",
            help=f"the {what} of every run instead of the preset's: a built-in name or an import path "
            "pkg.module:factory (docs/generators.md)",
        )
        p.add_argument(
            f"--{what}-option",
            action="append",
            type=parse_kv,
            default=[],
            metavar="KEY=VALUE",
            help=f"a keyword argument of the {what} (value read as JSON; repeatable)",
        )
    p.set_defaults(func=_cmd_reproduce)

    r = sub.add_parser(
        "report",
        help="rebuild report.md, its figures and the claim verdicts of a reproduction directory from its logs",
        description="Rebuild DIR/report.md, DIR/figures/ and DIR/claims.json from what DIR holds, without training.",
    )
    r.add_argument("dir", metavar="DIR", help="a directory written by flowgan reproduce")
    r.set_defaults(func=_cmd_report)


def _cmd_reproduce(args) -> int:
    import time

    from .pipeline import Reproduction
    from .seeds import SeedReproduction

    out = args.out or str(Path("runs") / f"reproduce-{args.preset}")
    start = time.perf_counter()
    options = dict(
        budget_minutes=args.budget_minutes,
        data_dir=args.data_dir,
        device=args.device,
        progress=not args.no_progress,
        steps=args.steps,
        modules=_modules(args),
        frontier=args.frontier,
    )
    if args.seeds > 1:
        rep = SeedReproduction(args.preset, out, seeds=args.seeds, **options)
    else:
        rep = Reproduction(args.preset, out, **options)
    path = rep.run(skip=tuple(args.skip))
    print(f"reproduction finished in {(time.perf_counter() - start) / 60:.1f} min: {path}")
    return 0


def _modules(args) -> dict:
    """``--model``/``--critic`` and their options as run-config fields (None: the preset's)."""
    from ..components import is_import_path, recorded_path

    out: dict = {}
    for what in ("model", "critic"):
        name = getattr(args, what)
        if name:
            out[what] = recorded_path(name) if is_import_path(name) else name
        options = dict(getattr(args, f"{what}_option"))
        if options:
            out[f"{what}_options"] = options
    return out


def _cmd_report(args) -> int:
    from ..errors import FlowganError
    from .report import build_report

    root = Path(args.dir)
    if not root.is_dir():
        raise FlowganError(f"{root} is not a directory")
    if not (root / "reproduce.json").is_file() and not (root / "runs").is_dir():
        raise FlowganError(f"{root} is not a reproduction directory (no reproduce.json or runs/)")
    from .inputs import read_reproduction_meta

    if (read_reproduction_meta(root / "reproduce.json")[0].get("seeds") or 0) > 1:
        from .seed_report import build_seed_report

        path = build_seed_report(root)
    else:
        path = build_report(root)
    print(f"wrote {path}")
    return 0
