"""The state of a run: one dataclass, changed only by the loop (:mod:`flowgan.training.loop`).

Everything that moves while a run trains is a field of :class:`RunState`: the step, the training
time, the learning-rate scale of non-finite rollbacks, the best values and their steps, the
running averages of the log lines, the run's random generator and the position of its data
stream, the step of the latest evaluation, and why the run stopped. The modules being trained
(flow, critic, optimisers) are not state: they live in :class:`flowgan.training.modules.Modules`.

:func:`checkpoint_state` turns modules and state into a checkpoint (the format of
:mod:`flowgan.checkpoint`, unchanged since version 1); :func:`restore_state` loads one into the
modules and returns the state it holds. Together they are what makes resume exact: a run stopped
and resumed ends with the same parameters as an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from .. import __version__
from ..checkpoint import FORMAT, VERSION
from ..errors import CheckpointError
from ..runtime import BatchStream, mix_seed
from .logs import RunningAverages


@dataclass
class RunState:
    """What changes while a run trains (see the module docstring). ``stopped_by`` is ``"steps"``
    (the step or epoch count), ``"time_limit"`` or ``"finished"`` (a resume of a run that had
    nothing left to do)."""

    rng: torch.Generator  #: every random draw of training: dequantisation, flips, latents, penalty
    stream: BatchStream  #: the order of the training images and the position in it
    step: int = 0  #: generator updates done
    elapsed: float = 0.0  #: seconds of training (evaluations included) over all sessions of the run
    lr_scale: float = 1.0  #: halved by each non-finite rollback
    rollbacks: int = 0  #: non-finite rollbacks over the whole run
    best: dict[str, dict] = field(default_factory=dict)  #: {metric: {"value", "step"}} of the best checkpoints
    averages: RunningAverages = field(default_factory=RunningAverages)  #: the open window of the log line
    last_train_logs: dict[str, float] = field(default_factory=dict)  #: losses repeated in evaluation records
    last_eval_step: int | None = None  #: the step of the latest evaluation (and checkpoint)
    stopped_by: str = "steps"


def fresh_state(seed: int, n_train: int, batch_size: int) -> RunState:
    """The state of a run at step 0: its generator and data stream seeded from ``seed``."""
    return RunState(
        rng=torch.Generator().manual_seed(mix_seed(seed, 1)),
        stream=BatchStream(n_train, batch_size, seed),
    )


def checkpoint_state(config, modules, state: RunState, dataset_name: str) -> dict[str, Any]:
    """The checkpoint of a run: format and versions, the resolved config, model and critic (spec
    and weights), optimisers, ``state`` (generator, data-stream position, step, learning-rate
    scale, elapsed time, best values, log averages, rollbacks, the step of the last evaluation)."""
    critic = modules.critic
    return {
        "format": FORMAT,
        "version": VERSION,
        "flowgan_version": __version__,
        "config": config.to_dict(),
        "model_spec": modules.model_recipe,
        "model": modules.model.state_dict(),
        "critic_spec": modules.critic_recipe,
        "critic": None if critic is None else critic.state_dict(),
        "optimizer": modules.opt.state_dict(),
        "critic_optimizer": None if modules.critic_opt is None else modules.critic_opt.state_dict(),
        "rng": state.rng.get_state(),
        "stream": state.stream.state_dict(),
        "step": state.step,
        "epoch": state.stream.progress,
        "lr_scale": state.lr_scale,
        "elapsed": state.elapsed,
        "best": state.best,
        "averages": state.averages.state_dict(),
        "last_train_logs": dict(state.last_train_logs),
        "rollbacks": state.rollbacks,
        "last_eval_step": state.last_eval_step,
        "dataset": dataset_name,
    }


def restore_state(ckpt: dict, modules, fresh: RunState) -> RunState:
    """Load the weights and optimiser states of ``ckpt`` into ``modules`` and return its run
    state (``fresh`` gives the data stream's size and seed); a checkpoint of another run is a
    :class:`~flowgan.errors.CheckpointError`."""
    try:
        modules.model.load_state_dict(ckpt["model"])
        modules.opt.load_state_dict(ckpt["optimizer"])
        if modules.critic is not None:
            modules.critic.load_state_dict(ckpt["critic"])
            modules.critic_opt.load_state_dict(ckpt["critic_optimizer"])
        rng = torch.Generator()
        rng.set_state(ckpt["rng"])
        stream = BatchStream(fresh.stream.n, fresh.stream.batch_size, fresh.stream.seed)
        stream.load_state_dict(ckpt["stream"])
        averages = RunningAverages()
        averages.load_state_dict(ckpt["averages"])
        return RunState(
            rng=rng,
            stream=stream,
            step=int(ckpt["step"]),
            elapsed=float(ckpt["elapsed"]),
            lr_scale=float(ckpt["lr_scale"]),
            rollbacks=int(ckpt.get("rollbacks", 0)),
            best=dict(ckpt["best"]),
            averages=averages,
            last_train_logs=dict(ckpt.get("last_train_logs", {})),
            last_eval_step=ckpt.get("last_eval_step"),
        )
    except (KeyError, RuntimeError, ValueError, TypeError) as e:
        raise CheckpointError(f"checkpoint does not match this run: {str(e).splitlines()[0][:200]}") from None
