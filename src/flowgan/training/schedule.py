"""How long a run trains and at which learning rate: plain functions of the config and the step."""

from __future__ import annotations

import math

from ..config import TrainConfig


def learning_rate(cfg: TrainConfig, step: int, lr_scale: float) -> float:
    """The generator's learning rate at ``step``: ``lr * lr_decay**step``, at least ``min_lr``,
    times the rollbacks' ``lr_scale``."""
    return max(cfg.lr * cfg.lr_decay**step, cfg.min_lr) * lr_scale


def total_steps(cfg: TrainConfig, objective, batches_per_epoch: int) -> int | None:
    """The generator updates of a run: ``max_steps``, or ``epochs`` of data (each update reads
    ``critic_steps`` + 1 batches when the generator loss uses data), whichever is fewer; None when
    only the time limit ends the run."""
    if cfg.epochs is None and cfg.max_steps is None:
        if cfg.time_limit is not None:
            return None
        epochs = 1.0
    else:
        epochs = cfg.epochs
    by_epochs = math.floor(epochs * batches_per_epoch / objective.batches_per_update) if epochs else None
    if cfg.max_steps is None:
        return by_epochs
    return cfg.max_steps if by_epochs is None else min(by_epochs, cfg.max_steps)
