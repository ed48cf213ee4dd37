"""Non-finite values in training: refuse them in every update, then stop or roll back.

A NaN or Inf in a loss, a gradient or a parameter never reaches a checkpoint:

* :func:`checked_update` refuses an update whose loss (every update: a scalar, free) or gradient
  norm (on logging steps only: it reads every gradient) is not finite, and names the parameter
  an earlier update broke;
* :func:`check_parameters` runs before each evaluation (hence before each checkpoint);
* :func:`stop_or_roll_back` then either stops the run (``on_nonfinite="stop"``, exit status 3 on
  the command line), or reloads ``latest.pt`` with half the learning rate, at most
  :data:`MAX_ROLLBACKS` times over a whole run.

With several processes every decision is collective (an all-reduce of the flags), so all
processes stop or roll back together.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch

from .checkpoint import load_checkpoint
from .errors import NonFiniteError

if TYPE_CHECKING:
    from .training import Trainer

#: non-finite rollbacks allowed over a whole run (counted in the checkpoint, so resumes count too)
MAX_ROLLBACKS = 10


def named_parameters(trainer: Trainer) -> Iterator[tuple[str, torch.Tensor]]:
    """``generator.<name>`` and ``critic.<name>`` parameters of the trainer's modules."""
    for prefix, module in (("generator", trainer.model), ("critic", trainer.critic)):
        if module is not None:
            for name, p in module.named_parameters():
                yield f"{prefix}.{name}", p


def check_parameters(trainer: Trainer) -> None:
    """Raise :class:`NonFiniteError` naming the first non-finite parameter."""
    for name, p in named_parameters(trainer):
        if not torch.isfinite(p).all():
            raise NonFiniteError(f"non-finite parameter {name} at step {trainer.step}", step=trainer.step)


def checked_update(trainer: Trainer, opt, params, loss: torch.Tensor, what: str, measure: bool) -> torch.Tensor | None:
    """Backward and optimizer step, refusing non-finite values; returns the gradient norm on
    measuring (logging) steps, else None.

    The loss is checked at every update (a scalar: free). The gradient norm is measured,
    logged and checked on logging steps only: it reads every gradient (~6% of a NICE step on
    a CPU). A non-finite gradient between two logging steps turns the parameters non-finite
    in that update and the loss of the next one: the run then stops (or rolls back) one update
    later, naming the update that broke the parameters; checkpoints are never written from a
    broken state (parameters are checked before each evaluation).
    """
    opt.zero_grad(set_to_none=True)
    loss_value = float(loss.detach())
    bad_loss = not math.isfinite(loss_value)
    grad_norm, bad_grad = None, False
    if not bad_loss:
        loss.backward()
        if measure:
            grads = [p.grad for p in params if p.grad is not None]
            grad_norm = (
                torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))) if grads else loss.new_zeros(())
            )
            bad_grad = not math.isfinite(float(grad_norm))
    if trainer.world_size > 1:  # every process must take the same decision
        from .distributed import all_reduce_max

        bad_loss, bad_grad = (bool(v) for v in all_reduce_max([float(bad_loss), float(bad_grad)], trainer.device))
    if bad_loss or bad_grad:
        broken = [n for n, p in named_parameters(trainer) if not torch.isfinite(p).all()]
        if broken:
            raise NonFiniteError(f"non-finite parameter {broken[0]} after update {trainer.step}", step=trainer.step)
        bad = "loss" if bad_loss else "gradient"
        raise NonFiniteError(f"non-finite {what} {bad} at step {trainer.step + 1}", step=trainer.step + 1)
    opt.step()
    return grad_norm


def stop_or_roll_back(trainer: Trainer, error: NonFiniteError) -> None:
    """Stop (raise), or reload the last checkpoint with half the current learning rate. The
    rollback count and the rate are the run's, not the checkpoint's: they are kept across the
    reload and saved at once, so at most :data:`MAX_ROLLBACKS` happen over a whole run."""
    latest = trainer.run_dir / "checkpoints" / "latest.pt"
    cfg = trainer.config
    if cfg.on_nonfinite == "stop" or trainer.rollbacks >= MAX_ROLLBACKS:
        trainer.dir.log({"kind": "event", "step": trainer.step, "event": "nonfinite", "message": str(error)})
        why = (
            "stopped"
            if cfg.on_nonfinite == "stop"
            else f"stopped after {trainer.rollbacks} rollbacks (learning rate x{trainer.lr_scale:g})"
        )
        raise NonFiniteError(f"{error}; {why}, the last good checkpoint is {latest}", step=error.step)
    rollbacks, lr_scale = trainer.rollbacks + 1, trainer.lr_scale * 0.5
    failed_step = error.step
    trainer._restore(load_checkpoint(latest))
    trainer.rollbacks, trainer.lr_scale = rollbacks, lr_scale
    trainer.dir.log(
        {
            "kind": "event",
            "step": trainer.step,
            "event": "rollback",
            "message": str(error),
            "failed_step": failed_step,
            "lr_scale": trainer.lr_scale,
            "rollbacks": trainer.rollbacks,
        }
    )
    trainer.save_checkpoint("latest")  # the restored state with the new count and rate
