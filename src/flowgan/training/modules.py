"""The modules a run trains: the flow (generator), the critic, the objective, their optimisers and
their data-parallel and compiled wrappers, held together in :class:`Modules`.

:func:`build_modules` builds the flow of ``config.model`` (or, on resume, from the model spec
stored in the checkpoint: runs of older flowgan versions keep their architecture), the objective
(:func:`flowgan.objectives.build_objective`) and, when the objective has critic steps, the critic
of ``config.critic`` (``auto``: the paper's DCGAN critic for the data shape,
:func:`flowgan.critics.default_critic`). Parameters are initialised from the global generator
seeded with ``config.seed``, in that order, so a run's initial parameters depend on its seed only.
:func:`wrap` adds ``DistributedDataParallel`` under ``torchrun`` and ``torch.compile`` when
asked (not for a critic whose gradient penalty needs a double backward). :func:`run_info` is
what a run's ``config.json`` records about them, its data and its environment.

Modules are not run state (:class:`flowgan.training.state.RunState`): their parameters change in
place by the optimisers, and a checkpoint restores them in place.
"""

from __future__ import annotations

import platform
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from .. import __version__
from ..config import TrainConfig
from ..critics import build_critic, default_critic
from ..errors import FlowganError
from ..models import build_model, model_config, model_from_spec
from ..objectives import Objective, build_objective
from ..rundir import jsonable
from ..runtime import make_adam


@dataclass(frozen=True)
class Modules:
    """The networks of a run and what updates them. ``G`` and ``D`` are what the objective calls:
    ``model`` and ``critic`` themselves, or their data-parallel / compiled wrappers."""

    model: torch.nn.Module
    critic: torch.nn.Module | None
    objective: Objective
    G: torch.nn.Module
    D: torch.nn.Module | None
    opt: torch.optim.Optimizer
    critic_opt: torch.optim.Optimizer | None

    def named_parameters(self) -> Iterator[tuple[str, torch.Tensor]]:
        """``generator.<name>`` and ``critic.<name>`` parameters."""
        for prefix, module in (("generator", self.model), ("critic", self.critic)):
            if module is not None:
                for name, p in module.named_parameters():
                    yield f"{prefix}.{name}", p

    def unwrapped(self) -> Modules:
        """The same modules without data-parallel or compiled wrappers: a ``DistributedDataParallel``
        module holds the process group, and must go before it does (see :func:`flowgan.training.train`)."""
        return Modules(self.model, self.critic, self.objective, self.model, self.critic, self.opt, self.critic_opt)


def build_modules(
    cfg: TrainConfig, shape, device: torch.device, *, model_spec: dict | None = None, world_size: int = 1
) -> Modules:
    """The :class:`Modules` of ``cfg`` for images of ``shape`` (float32 on ``device``, wrapped as
    ``cfg`` asks, with their Adam optimisers)."""
    model, objective, critic = build_networks(cfg, shape, device, model_spec=model_spec, world_size=world_size)
    G, D = wrap(model, critic, objective, cfg, device, world_size)
    opt = make_adam(model.parameters(), cfg.lr, (cfg.beta1, cfg.beta2))
    critic_opt = None
    if critic is not None:
        beta1 = cfg.beta1 if cfg.critic_beta1 is None else cfg.critic_beta1
        critic_opt = make_adam(critic.parameters(), cfg.critic_lr or cfg.lr, (beta1, cfg.critic_beta2))
    return Modules(model, critic, objective, G, D, opt, critic_opt)


def build_networks(
    cfg: TrainConfig, shape, device: torch.device, *, model_spec: dict | None = None, world_size: int = 1
):
    """``(model, objective, critic or None)`` of ``cfg`` for images of ``shape``, float32 on
    ``device``; one line naming the option for a model or critic that cannot be built."""
    torch.manual_seed(cfg.seed)  # parameter initialisation
    try:
        model = (
            model_from_spec(model_spec)
            if model_spec is not None
            else build_model(cfg.model, shape=shape, **cfg.model_options)
        )
    except (RuntimeError, ValueError, TypeError) as e:  # e.g. a negative width: torch's own message
        opts = ", ".join(f"{k}={v}" for k, v in cfg.model_options.items()) or "its defaults"
        raise FlowganError(
            f"model {cfg.model} cannot be built for shape {tuple(shape)} with {opts}: {str(e).splitlines()[0][:200]}"
        ) from None
    if cfg.sync_batchnorm and world_size > 1:
        model = sync_batchnorm(model, device)
    model = model.to(device, torch.float32)
    objective = build_objective(cfg.objective, cfg.lam, cfg.n_critic, cfg.gp_weight)
    critic = None
    if objective.critic_steps:
        critic_name = default_critic(shape, cfg.model) if cfg.critic == "auto" else cfg.critic
        try:
            critic = build_critic(critic_name, shape, **cfg.critic_options).to(device, torch.float32)
        except (RuntimeError, ValueError, TypeError) as e:
            raise FlowganError(
                f"critic {critic_name} cannot be built for shape {tuple(shape)}: {str(e).splitlines()[0][:200]}"
            ) from None
    return model, objective, critic


def sync_batchnorm(model, device: torch.device):
    """Global-batch statistics in every batch-norm layer of the model (``--sync-batchnorm``)."""
    from ..nets import set_sync_batchnorm

    set_sync_batchnorm(model)
    if any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()):
        if device.type != "cuda":
            raise FlowganError(
                "--sync-batchnorm of Real-NVP's ResNet batch norm needs CUDA (torch's SyncBatchNorm); "
                "leave it out on CPUs"
            )
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


def parallel(module, device: torch.device, world_size: int):
    """``module`` in ``DistributedDataParallel`` with several processes (itself otherwise, or None)."""
    if module is None or world_size == 1:
        return module
    from torch.nn.parallel import DistributedDataParallel as DDP

    # conv weight gradients of single-channel inputs come with unusual strides: harmless
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    device_ids = [device.index] if device.type == "cuda" else None
    return DDP(module, device_ids=device_ids)


def wrap(model, critic, objective: Objective, cfg: TrainConfig, device: torch.device, world_size: int):
    """``(G, D)``: what the objective calls, the model and critic data-parallel and compiled as
    ``cfg`` asks; a gradient penalty needs a double backward, which compiled modules do not
    support, so such a critic is not compiled."""
    G, D = parallel(model, device, world_size), parallel(critic, device, world_size)
    if cfg.compile:
        G = torch.compile(G)
        if D is not None and not objective.double_backward:
            D = torch.compile(D)
    return G, D


def run_info(cfg: TrainConfig, model, critic, dataset, device: torch.device, world_size: int) -> dict:
    """What config.json holds: the config, the resolved model, data, sizes, environment."""
    return {
        "config": cfg.to_dict(),
        "model": {
            "spec": model.spec,
            "resolved": jsonable(model_config(cfg.model, shape=dataset.shape, **cfg.model_options)),
        },
        "critic": None if critic is None else critic.spec,
        "dataset": {
            "name": dataset.name,
            "shape": list(dataset.shape),
            "train": len(dataset.train),
            "val": len(dataset.val),
            "test": len(dataset.test),
        },
        "parameters": {
            "model": sum(p.numel() for p in model.parameters()),
            "critic": 0 if critic is None else sum(p.numel() for p in critic.parameters()),
        },
        "environment": {
            "flowgan": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "device": str(device),
            "world_size": world_size,
            "threads": torch.get_num_threads(),
        },
    }
