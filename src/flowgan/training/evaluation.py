"""The evaluations of a run: records, best values, sample grids, sample scores.

At step 0, every ``eval_every`` generator updates and at the end of a run the loop calls
:func:`evaluate`, then logs the record, folds it into the best values (:func:`fold_best`), saves
``latest.pt`` and links it to the best checkpoints it improved (:func:`link_best`):

* the record (``kind: "eval"`` in ``metrics.jsonl``): the exact NLL (:mod:`flowgan.likelihood`,
  fixed dequantisation noise, Appendix A) of the validation images and of a fixed subset of
  training images, in nats and bits/dim; the training losses of the latest log line
  (:data:`~flowgan.training.logs.EVAL_CARRIED`); the collapse diagnostics of ``collapse_samples``
  samples (:mod:`flowgan.metrics.collapse`); the sample scores of ``score_metrics`` (the
  context's ``score_fn``, by default :func:`flowgan.metrics.training.score_hook`);
* a grid of the samples of the run's fixed latents, ``samples/step_<step>.png`` (Figure 1);
* ``checkpoints/latest.pt``, and ``best_<metric>.pt`` for the validation NLL (``best_nll``) and
  each score that improved, in the direction its metric declares
  (:func:`flowgan.metrics.registry.update_best`); the best values are run state, saved in every
  checkpoint, so a resumed run keeps choosing as an uninterrupted one.

With several processes the NLL is computed on shards and reduced; collapse diagnostics and
scores are computed by the main process and broadcast, so every process logs the same record.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import checkpoint_path, link_or_copy
from ..generator import decode_latents, image_dim
from ..images import save_grid
from ..likelihood import log_likelihoods, nats_to_bpd, nll_report
from ..metrics.registry import best_checkpoint_metrics, update_best
from ..runtime import mix_seed
from .context import RunContext


def _broadcast(ctx: RunContext, value):
    if ctx.world_size == 1:
        return value
    from ..distributed import broadcast_object

    return broadcast_object(value)


@torch.no_grad()
def evaluate(
    ctx: RunContext, model, *, step: int, epoch: float, elapsed: float, last_train_logs: dict, sample_dir: Path
) -> dict[str, Any]:
    """The evaluation record of ``model`` at ``step`` (see the module docstring); the main process
    also writes the sample grid into ``sample_dir``."""
    cfg = ctx.config
    val = nll(ctx, model, ctx.val_images)
    train = nll(ctx, model, ctx.train_eval_images)
    record = {
        "kind": "eval",
        "step": step,
        "epoch": round(epoch, 4),
        "time": round(elapsed, 2),
        "val_nll_nats": val["nll_nats"],
        "val_nll_bpd": val["nll_bpd"],
        "train_nll_nats": train["nll_nats"],
        "train_nll_bpd": train["nll_bpd"],
        **last_train_logs,  # the training losses of the latest log line (critic, generator, ...)
    }
    if cfg.collapse_samples:  # is the generator collapsing? (MLE's values: the reference)
        record.update(_broadcast(ctx, collapse(ctx, model) if ctx.is_main else None))
    if ctx.score_fn is not None and cfg.score_metrics:
        scores = ctx.score_fn(model, ctx.dataset, cfg, step, ctx.device) if ctx.is_main else None
        record.update(_broadcast(ctx, scores))
    if ctx.is_main:
        save_sample_grid(model, ctx.grid_z.to(ctx.device), sample_dir / f"step_{step:07d}.png")
    return record


def save_sample_grid(model, z: torch.Tensor, path: Path) -> None:
    """A grid of the fakes of the noise ``z`` (:func:`flowgan.generator.draw_latents`; eval mode,
    the model's mode is put back)."""
    was_training = model.training
    model.eval()
    grid = decode_latents(model, z).clamp(0, 1)
    model.train(was_training)
    save_grid(grid, path)


def collapse(ctx: RunContext, model) -> dict[str, Any]:
    """Collapse diagnostics (:mod:`flowgan.metrics.collapse`) of samples drawn with the run's
    fixed seed at every evaluation; ``classes_covered`` where the dataset has a classifier (the
    run's ``score_classifier`` when named)."""
    from ..metrics.collapse import collapse_classifier, sample_collapse
    from ..metrics.training import cached_classifier

    cfg = ctx.config
    classifier = collapse_classifier(ctx.dataset, cfg.score_classifier, find=cached_classifier)
    return sample_collapse(
        model, cfg.collapse_samples, seed=mix_seed(cfg.seed, 9), classifier=classifier, device=ctx.device
    )


def nll(ctx: RunContext, model, images: torch.Tensor) -> dict[str, float]:
    """Exact NLL of uint8 images; with several processes each takes a contiguous shard (its
    noise follows the global image index) and the sums are reduced."""
    batch_size = ctx.config.eval_batch_size
    if ctx.world_size == 1:
        return nll_report(model, images, batch_size=batch_size)
    from ..distributed import all_reduce_sum

    n, rank, world = len(images), ctx.rank, ctx.world_size
    lo, hi = n * rank // world, n * (rank + 1) // world
    lp = log_likelihoods(model, images[lo:hi], batch_size=batch_size, index_offset=lo)
    total, count = all_reduce_sum([float(lp.sum()), float(len(lp))], ctx.device)
    nats = -total / count
    return {"nll_nats": nats, "nll_bpd": float(nats_to_bpd(nats, image_dim(model)))}


def fold_best(best: dict[str, dict], record: dict[str, Any], score_metrics, step: int) -> tuple[dict, list[str]]:
    """``(best values after record, names of the best checkpoints it improves)``; ``best`` itself
    is not changed."""
    new = copy.deepcopy(best)
    improved = update_best(new, record, best_checkpoint_metrics(score_metrics), step)
    return new, improved


def link_best(run_dir: Path, improved: list[str]) -> None:
    """Link (or copy) ``latest.pt`` to each ``<name>.pt`` of ``improved``: the same state, not
    serialised again."""
    for name in improved:
        link_or_copy(checkpoint_path(run_dir), checkpoint_path(run_dir, name))
