"""The trainer's evaluations: records, best checkpoints, sample grids, sample scores.

At step 0, every ``eval_every`` generator updates and at the end of a run the trainer
(:class:`flowgan.training.Trainer`) calls :func:`evaluate` and then :func:`record_evaluation`:

* the record (``kind: "eval"`` in ``metrics.jsonl``): the exact NLL (:mod:`flowgan.likelihood`,
  fixed dequantisation noise, Appendix A) of the validation images and of a fixed subset of
  training images, in nats and bits/dim; the training losses of the latest log line
  (:data:`EVAL_CARRIED`); the collapse diagnostics of ``collapse_samples`` samples
  (:mod:`flowgan.metrics.collapse`); the sample scores of ``score_metrics`` (the trainer's
  ``score_fn``, by default :func:`flowgan.metrics.training.score_hook`);
* a grid of the samples of the run's fixed latents, ``samples/step_<step>.png`` (Figure 1);
* ``checkpoints/latest.pt``, and ``best_<metric>.pt`` for the validation NLL (``best_nll``) and
  each score that improved, in the direction its metric declares
  (:func:`flowgan.metrics.registry.update_best`); the best values go in ``trainer.best`` (saved
  in every checkpoint, so a resumed run keeps choosing as an uninterrupted one).

With several processes the NLL is computed on shards and reduced; collapse diagnostics and
scores are computed by the main process and broadcast, so every process logs the same record.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from .checkpoint import link_or_copy
from .images import save_grid
from .likelihood import log_likelihoods, nats_to_bpd, nll_report
from .metrics.registry import best_checkpoint_metrics, update_best
from .nonfinite import check_parameters
from .runtime import mix_seed

if TYPE_CHECKING:
    from .training import Trainer

#: training logs repeated in every evaluation record (from the latest training log line)
EVAL_CARRIED = ("loss", "train_nll", "critic_loss", "wasserstein", "gradient_penalty", "generator_loss")


def _broadcast(trainer: Trainer, value):
    if trainer.world_size == 1:
        return value
    from .distributed import broadcast_object

    return broadcast_object(value)


@torch.no_grad()
def evaluate(trainer: Trainer) -> dict[str, Any]:
    """The evaluation record of ``trainer`` at its current step (see the module docstring); the
    main process also writes the sample grid. Non-finite parameters raise
    :class:`~flowgan.errors.NonFiniteError` before anything is computed."""
    cfg = trainer.config
    check_parameters(trainer)
    val = nll(trainer, trainer.val_images)
    train = nll(trainer, trainer.train_eval_images)
    record = {
        "kind": "eval",
        "step": trainer.step,
        "epoch": round(trainer.stream.progress, 4),
        "time": round(trainer.elapsed, 2),
        "val_nll_nats": val["nll_nats"],
        "val_nll_bpd": val["nll_bpd"],
        "train_nll_nats": train["nll_nats"],
        "train_nll_bpd": train["nll_bpd"],
        **trainer.last_train_logs,  # the training losses of the latest log line (critic, generator, ...)
    }
    if cfg.collapse_samples:  # is the generator collapsing? (MLE's values: the reference)
        record.update(_broadcast(trainer, collapse(trainer) if trainer.is_main else None))
    if trainer.score_fn is not None and cfg.score_metrics:
        record.update(_broadcast(trainer, trainer.score_fn(trainer) if trainer.is_main else None))
    if trainer.is_main:
        save_sample_grid(trainer)
    return record


def save_sample_grid(trainer: Trainer) -> None:
    """``samples/step_<step>.png``: the decoded fixed latents ``trainer.grid_z`` (eval mode)."""
    model = trainer.model
    was_training = model.training
    model.eval()
    grid = model.decode(trainer.grid_z.to(trainer.device)).clamp(0, 1)
    model.train(was_training)
    save_grid(grid, trainer.run_dir / "samples" / f"step_{trainer.step:07d}.png")


def collapse(trainer: Trainer) -> dict[str, Any]:
    """Collapse diagnostics (:mod:`flowgan.metrics.collapse`) of samples drawn with the run's
    fixed seed at every evaluation; ``classes_covered`` where the dataset has a classifier (the
    run's ``score_classifier`` when named)."""
    from .metrics.collapse import collapse_classifier, sample_collapse
    from .metrics.training import cached_classifier

    cfg = trainer.config
    classifier = collapse_classifier(trainer.dataset, cfg.score_classifier, find=cached_classifier)
    return sample_collapse(
        trainer.model, cfg.collapse_samples, seed=mix_seed(cfg.seed, 9), classifier=classifier, device=trainer.device
    )


def nll(trainer: Trainer, images: torch.Tensor) -> dict[str, float]:
    """Exact NLL of uint8 images; with several processes each takes a contiguous shard (its
    noise follows the global image index) and the sums are reduced."""
    batch_size = trainer.config.eval_batch_size
    if trainer.world_size == 1:
        return nll_report(trainer.model, images, batch_size=batch_size)
    from .distributed import all_reduce_sum

    n, rank, world = len(images), trainer.rank, trainer.world_size
    lo, hi = n * rank // world, n * (rank + 1) // world
    lp = log_likelihoods(trainer.model, images[lo:hi], batch_size=batch_size, index_offset=lo)
    total, count = all_reduce_sum([float(lp.sum()), float(len(lp))], trainer.device)
    nats = -total / count
    return {"nll_nats": nats, "nll_bpd": float(nats_to_bpd(nats, trainer.model.dim))}


def record_evaluation(trainer: Trainer, record: dict[str, Any]) -> None:
    """Log ``record``, fold it into ``trainer.best``, save ``latest`` and link (or copy) it to the
    ``best_<metric>`` checkpoints it improves: the same state, not serialised again."""
    trainer.dir.log(record)
    improved = update_best(trainer.best, record, best_checkpoint_metrics(trainer.config.score_metrics), trainer.step)
    trainer.last_eval_step = trainer.step
    trainer.save_checkpoint("latest")
    if trainer.is_main:
        ckdir = trainer.run_dir / "checkpoints"
        for name in improved:
            link_or_copy(ckdir / "latest.pt", ckdir / f"{name}.pt")
