"""The trainer's checkpoint state: what :class:`flowgan.training.Trainer` saves and restores.

Exact resume (see :mod:`flowgan.training`) needs the run's own random generator and the data
stream's position next to the weights and optimiser states; a run resumed from this state ends
with the same parameters as an uninterrupted one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import __version__
from .checkpoint import FORMAT, VERSION
from .errors import CheckpointError

if TYPE_CHECKING:
    from .training import Trainer


def trainer_state(t: Trainer) -> dict[str, Any]:
    """The checkpoint of a trainer: format and versions, the resolved config, model and critic
    (spec and weights), optimisers, the run's random generator and data-stream position, the
    step, learning-rate scale, elapsed time, best values, running log averages, rollbacks and
    the step of the last evaluation: everything an exact resume needs."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "flowgan_version": __version__,
        "config": t.config.to_dict(),
        "model_spec": t.model.spec,
        "model": t.model.state_dict(),
        "critic_spec": None if t.critic is None else t.critic.spec,
        "critic": None if t.critic is None else t.critic.state_dict(),
        "optimizer": t.opt.state_dict(),
        "critic_optimizer": None if t.critic_opt is None else t.critic_opt.state_dict(),
        "rng": t.rng.get_state(),
        "stream": t.stream.state_dict(),
        "step": t.step,
        "epoch": t.stream.progress,
        "lr_scale": t.lr_scale,
        "elapsed": t.elapsed,
        "best": t.best,
        "averages": t.averages.state_dict(),
        "last_train_logs": dict(t.last_train_logs),
        "rollbacks": t.rollbacks,
        "last_eval_step": t.last_eval_step,
        "dataset": t.dataset.name,
    }


def restore_trainer(t: Trainer, ckpt: dict) -> None:
    """Load :func:`trainer_state`'s checkpoint into ``t``; a checkpoint of another run is a
    :class:`~flowgan.errors.CheckpointError`."""
    try:
        t.model.load_state_dict(ckpt["model"])
        t.opt.load_state_dict(ckpt["optimizer"])
        if t.critic is not None:
            t.critic.load_state_dict(ckpt["critic"])
            t.critic_opt.load_state_dict(ckpt["critic_optimizer"])
        t.rng.set_state(ckpt["rng"])
        t.stream.load_state_dict(ckpt["stream"])
        t.step = int(ckpt["step"])
        t.lr_scale = float(ckpt["lr_scale"])
        t.elapsed = float(ckpt["elapsed"])
        t.best = dict(ckpt["best"])
        t.averages.load_state_dict(ckpt["averages"])
        t.last_train_logs = dict(ckpt.get("last_train_logs", {}))
        t.rollbacks = int(ckpt.get("rollbacks", 0))
        t.last_eval_step = ckpt.get("last_eval_step")
    except (KeyError, RuntimeError, ValueError, TypeError) as e:
        raise CheckpointError(f"checkpoint does not match this run: {str(e).splitlines()[0][:200]}") from None
