"""The ``flowgan`` command line. Every subcommand has ``--help``.

Errors in the user's input (missing data, bad options, corrupt checkpoints) print one line on
stderr and exit with status 2; a training run stopped by a NaN/Inf exits with 3; an interrupted
run (Ctrl-C, SIGTERM) saves its state, prints how to resume and exits with 130.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable

from .atomic import write_text
from .options import classifier, dataset, device, integer, names, number, seed

EXIT_USAGE, EXIT_NONFINITE, EXIT_INTERRUPTED = 2, 3, 130


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# ------------------------------------------------------------------------------------ train


def _add_train(sub) -> None:
    from .options import add_config_flags

    p = sub.add_parser(
        "train",
        help="train a Flow-GAN (MLE, adversarial or hybrid)",
        description="Train a flow model into a fresh run directory "
        "(config.json, metrics.jsonl, checkpoints/, samples/).",
    )
    add_config_flags(p)  # one flag per TrainConfig field (flowgan.options)
    p.add_argument("--out", help="run directory (default runs/<dataset>-<model>-<objective>-<time>)")
    p.add_argument("--resume", metavar="RUN", help="continue the run in RUN from its latest checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args) -> int:
    from .config import resolve_config
    from .options import config_options, resumable_flags
    from .training import Trainer

    options = config_options(args)
    preset = options.pop("preset")
    resumable = resumable_flags()
    rank, world = _dist_rank_world()
    if args.resume:
        changed = sorted(k for k, v in options.items() if v is not None and k not in {f.field for f in resumable})
        if changed or preset:
            names = [f.name for f in resumable]
            raise _usage(
                f"--resume continues a run with its stored config; only {', '.join(names[:-1])} and {names[-1]} "
                f"may change (got {', '.join(changed) or '--preset'})"
            )
        run_dir, resume = Path(args.resume), True
    else:
        config = resolve_config(preset, **options)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        model = config.model.rpartition(":")[2]  # an import path's factory name
        run_dir = Path(args.out or Path("runs") / f"{Path(config.dataset).stem}-{model}-{config.objective}-{stamp}")
        resume = False
    with _distributed(rank, world):
        common = dict(rank=rank, world_size=world, progress=not args.no_progress)
        if resume:
            trainer = Trainer.resume(run_dir, **{f.field: options[f.field] for f in resumable}, **common)
        else:
            trainer = Trainer(config, run_dir, **common)
        if rank == 0:
            _err(
                f"flowgan: {'resuming' if resume else 'training'} {trainer.config.describe()} -> {run_dir} "
                f"({trainer.ctx.dataset.describe()})"
            )
        wall, time_limit = time.perf_counter(), trainer.config.time_limit
        try:
            summary = trainer.fit()
            wall = time.perf_counter() - wall
        finally:
            trainer.close()  # before the process group goes (see flowgan.training.Trainer.close)
            del trainer
    if rank == 0 and summary["stopped_by"] == "finished":
        print(
            f"run {run_dir} is already finished at step {summary['step']}; nothing to do "
            "(extend it with --epochs, --max-steps or --max-minutes)"
        )
    elif rank == 0:
        print(_done_line(summary, wall, time_limit))
    return 0


def _done_line(summary: dict, wall: float, time_limit: float | None) -> str:
    """The last line of ``flowgan train``: what stopped the run, and its times said plainly."""
    best = summary["best"].get("val_nll_nats", {})
    if summary.get("stopped_by") == "time_limit":
        why = f"stopped by the time limit (--max-minutes {time_limit / 60:g}), not by a step count"
    else:
        why = "all steps done"
    return (
        f"done: {summary['step']} generator updates ({why}); {_clock(wall)} wall in this process, "
        f"{_clock(summary['time'])} of training in all sessions of the run; best validation NLL "
        f"{best.get('value', float('nan')):.2f} nats at step {best.get('step', '?')}; run in {summary['run_dir']}"
    )


def _clock(seconds: float) -> str:
    """``m:ss`` (or ``h:mm:ss``), as the progress bar shows times."""
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _dist_rank_world() -> tuple[int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


class _distributed:
    """Initialise/destroy the process group when launched by torchrun."""

    def __init__(self, rank: int, world: int):
        self.rank, self.world = rank, world

    def __enter__(self):
        if self.world > 1:
            from .distributed import init_process_group

            init_process_group()
        return self

    def __exit__(self, exc_type, *exc):
        if self.world > 1:
            from .distributed import destroy_process_group

            destroy_process_group(clean=exc_type is None)
        return False


# ------------------------------------------------------------------------------------ evaluate


def _add_evaluate(sub) -> None:
    from .metrics.registry import METRICS

    p = sub.add_parser(
        "evaluate",
        help="score a run or checkpoint: exact NLL (nats, bits/dim) and sample metrics",
        description="Evaluate a checkpoint on a split; prints JSON and writes it next to the run (or to --output).",
    )
    p.add_argument("run", metavar="RUN_OR_CKPT", help="a run directory or a checkpoint file")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument(
        "--checkpoint",
        default="best_nll",
        help="which checkpoint of a run: best_nll (default), latest, best_mode, best_is, or auto (the best sample "
        "score: best_mode, else best_is, else best_nll)",
    )
    p.add_argument(
        "--metrics",
        type=names(tuple(METRICS), what="metric"),
        default=["nll", "collapse"],
        help="comma-separated: nll,collapse,is,mode,fid,kid (default nll,collapse)",
    )
    p.add_argument(
        "--collapse-samples",
        type=integer(2),
        default=1000,
        help="samples of the collapse diagnostics (default 1000, as logged in training)",
    )
    p.add_argument("--dataset", type=dataset, help="evaluate on another dataset than the run's")
    p.add_argument("--data-dir")
    p.add_argument(
        "--draws", type=integer(1), default=1, help="dequantization noise draws to average (default 1, seed fixed)"
    )
    p.add_argument("--seed", type=seed, default=0, help="dequantization noise seed (default 0)")
    p.add_argument(
        "--samples", type=integer(2), help="samples for sample scores (default: 50,000 on a GPU, 10,000 on a CPU)"
    )
    p.add_argument(
        "--classifier",
        type=classifier,
        help="classifier for scores (default: the shipped one of the dataset): a name from `flowgan classifier list`, "
        "a path (state dict or TorchScript) or 'inception'",
    )
    p.add_argument("--batch-size", type=integer(1), default=1000, help="images per batch for the NLL (default 1000)")
    p.add_argument("--device", type=device, default="auto")
    p.add_argument("--output", "-o", help="JSON file to write (default RUN/eval/<checkpoint>_<split>.json)")
    p.set_defaults(func=_cmd_evaluate)


def _cmd_evaluate(args) -> int:
    from .data import load_dataset
    from .likelihood import nll_report
    from .metrics.registry import METRICS
    from .runs import load_run
    from .runtime import resolve_device

    device = resolve_device(args.device)
    run = load_run(args.run, args.checkpoint, device=device)
    model, ckpt_path = run.model, run.checkpoint
    dataset = load_dataset(args.dataset or run.config.dataset, args.data_dir or run.config.data_dir)
    split = dataset.split(args.split)
    metrics = args.metrics
    result: dict[str, Any] = {
        "checkpoint": str(ckpt_path),
        "step": run.step,
        "dataset": dataset.name,
        "split": args.split,
        "n_images": len(split),
    }
    if "nll" in metrics:
        t = time.perf_counter()
        result.update(
            nll_report(model, split.images, batch_size=args.batch_size, seed=args.seed, draws=args.draws, progress=True)
        )
        result.update(nll_draws=args.draws, nll_seed=args.seed, nll_seconds=round(time.perf_counter() - t, 2))
    if "collapse" in metrics:
        result.update(_collapse(model, dataset, args, device))
    scores = [m for m in metrics if METRICS[m].is_score]
    if scores:
        from .metrics import evaluate_samples

        result.update(
            evaluate_samples(
                model,
                dataset,
                scores,
                n_samples=args.samples,
                classifier=args.classifier,
                device=device,
                split=args.split,
            )
        )
    out = Path(args.output) if args.output else _default_eval_path(args.run, ckpt_path, args.split)
    print(json.dumps(result, indent=2), flush=True)  # first: a file that cannot be written loses nothing
    write_text(out, json.dumps(result, indent=2) + "\n")
    _err(f"flowgan: wrote {out}")
    return 0


def _collapse(model, dataset, args, device) -> dict:
    """Collapse diagnostics of ``--collapse-samples`` samples (seed ``--seed``), with the dataset's
    score classifier where it has one (``--classifier`` to choose another)."""
    from .metrics.collapse import collapse_classifier, sample_collapse

    classifier = collapse_classifier(dataset, args.classifier)
    return sample_collapse(model, args.collapse_samples, seed=args.seed, classifier=classifier, device=device)


def _default_eval_path(run: str, ckpt_path: Path, split: str) -> Path:
    from .runs import run_base

    return run_base(run, ckpt_path) / "eval" / f"{ckpt_path.stem}_{split}.json"


# ------------------------------------------------------------------------------------ sample


def _add_sample(sub) -> None:
    p = sub.add_parser(
        "sample",
        help="draw samples G(z) from a run or checkpoint into a PNG grid",
        description="Draw n samples from a trained flow and write them as a grid.",
    )
    p.add_argument("run", metavar="RUN_OR_CKPT")
    p.add_argument(
        "-n",
        type=integer(1, MAX_SAMPLES),
        default=64,
        help=f"number of samples, 1 to {MAX_SAMPLES:,} (one PNG grid; default 64)",
    )
    p.add_argument("-o", "--output", help="PNG file (default RUN/samples/sample_<checkpoint>_n<N>_seed<S>[_T<T>].png)")
    p.add_argument(
        "--checkpoint",
        default="best_nll",
        help="which checkpoint of a run (default best_nll; auto: the best sample score)",
    )
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument(
        "--temperature",
        type=number(0),
        default=1.0,
        help="scale of the prior, >= 0 (default 1: the model itself; the std of a normal prior, the scale of a "
        "logistic one; 0: the generator's image of z = 0)",
    )
    p.add_argument("--nrow", type=integer(1), help="images per row")
    p.add_argument("--device", type=device, default="auto")
    p.set_defaults(func=_cmd_sample)


#: the most samples ``flowgan sample`` draws into its grid (one batch in memory)
MAX_SAMPLES = 10_000


def _cmd_sample(args) -> int:
    import torch

    from .images import save_grid
    from .runs import load_run
    from .runtime import resolve_device

    device = resolve_device(args.device)
    run = load_run(args.run, args.checkpoint, device=device)
    output = args.output
    if output is None:  # beside the run, never the current directory
        t = "" if args.temperature == 1.0 else f"_T{args.temperature:g}"
        output = run.path / "samples" / f"sample_{run.checkpoint.stem}_n{args.n}_seed{args.seed}{t}.png"
    with torch.no_grad():
        gen = torch.Generator().manual_seed(args.seed)
        x = run.model.sample(args.n, generator=gen, temperature=args.temperature)
    path = save_grid(x, output, nrow=args.nrow)
    print(f"wrote {args.n} samples to {path}")
    return 0


# ------------------------------------------------------------------------------------ main


class UsageError(Exception):
    """Raised by a command for bad arguments: printed as one line, exit status 2."""


def _usage(msg: str) -> UsageError:
    return UsageError(msg)


def err(msg: str) -> None:
    """Print a message for the user on stderr."""
    print(msg, file=sys.stderr, flush=True)


_err = err

COMMANDS: list[Callable] = [_add_train, _add_evaluate, _add_sample]

#: Modules that add subcommands with ``register(subparsers)``. They must import heavy libraries
#: (torch, matplotlib) inside their command functions, so that ``flowgan --help`` stays fast.
PLUGINS: list[str] = [
    "flowgan.metrics.cli",
    "flowgan.analysis.cli",
    "flowgan.reproduce.cli",
    "flowgan.interpolation_cli",
]


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(prog="flowgan", description="Flow-GANs: exact-likelihood GANs (Grover, Dhar & Ermon, AAAI 2018).")
    parser.add_argument("--version", action="version", version=f"flowgan {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for add in COMMANDS:
        add(sub)
    import importlib

    for name in PLUGINS:
        importlib.import_module(name).register(sub)
    return parser


def _check_outputs(args) -> None:
    """Before any work: no command's ``--output``/``--out`` may overwrite a file a run directory or
    a reproduction owns (:func:`flowgan.rundir.check_output`)."""
    from .rundir import check_output

    for attr, flag in (("output", "--output"), ("out", "--out")):
        check_output(getattr(args, attr, None), flag)


def _stop_on_sigterm():
    """SIGTERM stops every command as SIGINT does (one line, exit 130): a KeyboardInterrupt naming
    it. Training replaces this handler with its own while it trains (a checkpoint first, see
    :mod:`flowgan.training.signals`). Returns the previous handler (None off the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        raise KeyboardInterrupt("SIGTERM")

    return signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .errors import FlowganError, Interrupted, NonFiniteError

    debug = bool(os.environ.get("FLOWGAN_DEBUG"))
    previous = _stop_on_sigterm()
    formatwarning = warnings.formatwarning  # a warning is one line too: "flowgan: warning: ..."
    warnings.formatwarning = lambda message, *a, **k: f"flowgan: warning: {message}\n"
    try:
        _check_outputs(args)
        return args.func(args)
    except KeyboardInterrupt as e:
        _err(f"flowgan {args.command}: interrupted ({e.args[0] if e.args else 'SIGINT'})")
        return EXIT_INTERRUPTED
    except Exception as e:  # noqa: BLE001 - turned into one line below
        if debug:
            raise
        if isinstance(e, Interrupted):
            _err(f"flowgan: {e}")
            return EXIT_INTERRUPTED
        if isinstance(e, NonFiniteError):
            _err(f"flowgan: {e}")
            return EXIT_NONFINITE
        if isinstance(e, (FlowganError, UsageError, ValueError)):
            _err(f"flowgan {args.command}: error: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
            return EXIT_USAGE
        if isinstance(e, OSError):  # the environment: read-only, disk full, missing path, ...
            if e.errno is not None:
                what = f"{e.filename + ': ' if e.filename else ''}{e.strerror or os.strerror(e.errno)}"
            else:
                what = str(e).splitlines()[0] if str(e) else type(e).__name__
            _err(f"flowgan {args.command}: error: {what}")
            return EXIT_USAGE
        _err(
            f"flowgan {args.command}: internal error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} "
            "(set FLOWGAN_DEBUG=1 for the traceback)"
        )
        return 1
    finally:
        warnings.formatwarning = formatwarning
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
