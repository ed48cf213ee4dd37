"""``flowgan interpolate``: a figure of latent interpolations between test images of a run.

Registered through :data:`flowgan.cli.PLUGINS`. The command parses its flags, calls
:func:`flowgan.interpolation.interpolate` (through ``interpolation_rows``) and prints; torch is
imported inside the command so that ``flowgan --help`` stays fast.
"""

from __future__ import annotations

from .options import device, integer, seed

#: the most interpolation steps per row of the figure
MAX_STEPS = 256


def register(sub) -> None:
    """Add the ``interpolate`` subcommand to the ``flowgan`` parser."""
    p = sub.add_parser(
        "interpolate",
        help="decode interpolations between the latents of pairs of real images into a PNG",
        description="Pick --pairs pairs of images of the run's dataset (fixed by --seed), encode each image "
        "(8-bit pixels k at the centres of their bins, (k + 1/2)/256), interpolate the two latents and decode. "
        "One row per pair: the real x0, the --steps decoded images (the first and last reconstruct x0 and x1), "
        "the real x1.",
    )
    p.add_argument("run", metavar="RUN_OR_CKPT", help="a run directory or a checkpoint file")
    p.add_argument(
        "--checkpoint",
        default="best_nll",
        help="which checkpoint of a run (default best_nll; latest, best_mode, best_is, or auto: the best sample score)",
    )
    p.add_argument("--pairs", type=integer(1), default=8, help="pairs of images, one row each (default 8)")
    p.add_argument(
        "--steps", type=integer(2, MAX_STEPS), default=10, help=f"decoded images per row, 2 to {MAX_STEPS} (default 10)"
    )
    p.add_argument(
        "--split", default="test", choices=["train", "val", "test"], help="where the images come from (default test)"
    )
    p.add_argument("--seed", type=seed, default=0, help="which pairs (default 0)")
    p.add_argument(
        "--path",
        default="linear",
        choices=["linear", "slerp"],
        help="linear (default) or slerp: spherical, keeps the latent's norm (for Gaussian priors)",
    )
    p.add_argument(
        "-o",
        "--output",
        help="PNG file (default RUN/samples/interpolate_<checkpoint>_<split>_p<P>_s<S>_seed<seed>.png)",
    )
    p.add_argument("--device", type=device, default="auto")
    p.set_defaults(func=_cmd_interpolate)


def _cmd_interpolate(args) -> int:
    import torch

    from .cli import UsageError
    from .data import load_dataset
    from .images import save_grid
    from .interpolation import interpolation_rows, midpoint_dequantize, pair_indices
    from .runs import load_run
    from .runtime import resolve_device

    run = load_run(args.run, args.checkpoint, device=resolve_device(args.device))
    split = load_dataset(run.config.dataset, run.config.data_dir).split(args.split)
    try:
        first, second = pair_indices(len(split), args.pairs, args.seed)
    except ValueError as e:
        raise UsageError(f"--pairs {args.pairs}: {e}") from None
    images = midpoint_dequantize(split.images[first + second])
    with torch.no_grad():
        grid = interpolation_rows(run.model, images[: args.pairs], images[args.pairs :], args.steps, args.path)
    output = args.output
    if output is None:  # beside the run, never the current directory
        name = f"interpolate_{run.checkpoint.stem}_{args.split}_p{args.pairs}_s{args.steps}_seed{args.seed}"
        output = run.path / "samples" / f"{name}{'' if args.path == 'linear' else '_' + args.path}.png"
    path = save_grid(grid, output, nrow=args.steps + 2)
    print(f"wrote {args.pairs} interpolations of {args.steps} steps to {path}")
    return 0
