"""Non-finite values in training: refuse them in every update, then stop or roll back.

A NaN or Inf in a loss, a gradient or a parameter never reaches a checkpoint:

* :func:`checked_update` refuses an update whose loss (every update: a scalar, free) or gradient
  norm (on logging steps only: it reads every gradient) is not finite, and names the parameter
  an earlier update broke;
* :func:`check_parameters` runs before each evaluation (hence before each checkpoint);
* the loop then either stops the run (``on_nonfinite="stop"``, exit status 3 on the command
  line), or reloads ``latest.pt`` with half the learning rate, at most :data:`MAX_ROLLBACKS`
  times over a whole run: :func:`stop_error` decides which.

With several processes every decision is collective (an all-reduce of the flags), so all
processes stop or roll back together.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import torch

from ..errors import NonFiniteError

#: non-finite rollbacks allowed over a whole run (counted in the checkpoint, so resumes count too)
MAX_ROLLBACKS = 10


def check_parameters(named: Iterable[tuple[str, torch.Tensor]], step: int) -> None:
    """Raise :class:`NonFiniteError` naming the first non-finite parameter of ``named``."""
    for name, p in named:
        if not torch.isfinite(p).all():
            raise NonFiniteError(f"non-finite parameter {name} at step {step}", step=step)


def checked_update(
    opt,
    params,
    loss: torch.Tensor,
    *,
    what: str,
    measure: bool,
    step: int,
    modules,
    world_size: int = 1,
    device: torch.device | None = None,
) -> torch.Tensor | None:
    """Backward and optimizer step of update ``step + 1``, refusing non-finite values; returns
    the gradient norm on measuring (logging) steps, else None. ``modules`` names a parameter that
    an earlier update broke (:meth:`~flowgan.training.modules.Modules.named_parameters`).

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
    if world_size > 1:  # every process must take the same decision
        from ..distributed import all_reduce_max

        bad_loss, bad_grad = (bool(v) for v in all_reduce_max([float(bad_loss), float(bad_grad)], device))
    if bad_loss or bad_grad:
        broken = [n for n, p in modules.named_parameters() if not torch.isfinite(p).all()]
        if broken:
            raise NonFiniteError(f"non-finite parameter {broken[0]} after update {step}", step=step)
        bad = "loss" if bad_loss else "gradient"
        raise NonFiniteError(f"non-finite {what} {bad} at step {step + 1}", step=step + 1)
    opt.step()
    return grad_norm


def stop_error(
    error: NonFiniteError, on_nonfinite: str, rollbacks: int, lr_scale: float, latest: Path
) -> NonFiniteError | None:
    """The error that stops the run after ``error``, or None when the run rolls back to
    ``latest`` (``on_nonfinite="rollback"`` and fewer than :data:`MAX_ROLLBACKS` so far)."""
    if on_nonfinite != "stop" and rollbacks < MAX_ROLLBACKS:
        return None
    why = "stopped" if on_nonfinite == "stop" else f"stopped after {rollbacks} rollbacks (learning rate x{lr_scale:g})"
    return NonFiniteError(f"{error}; {why}, the last good checkpoint is {latest}", step=error.step)
