"""The modules a run trains: the generator, the critic, the objective, their optimisers and
their data-parallel and compiled wrappers, held together in :class:`Modules`.

:func:`build_modules` takes the generator and critic passed in (``flowgan.train(..., model=,
critic=)``: checked against the generator protocol, :mod:`flowgan.generator`, and the critic's
contract) or has :mod:`flowgan.components` build them from the names or import paths of the
config (on resume the generator from the recipe stored in the checkpoint: runs of older flowgan
versions keep their architecture); then the objective
(:func:`flowgan.objectives.build_objective`) and, when the objective has critic steps, the
critic (``auto``: the paper's DCGAN critic for the data shape,
:func:`flowgan.critics.default_critic`). The global generator is seeded with ``config.seed``
first, so built-in parameters depend on the seed only. :func:`wrap` adds
``DistributedDataParallel`` under ``torchrun`` and ``torch.compile`` when asked (not for a critic
whose gradient penalty needs a double backward). :func:`run_info` is what a run's ``config.json``
records about them, its data and its environment.

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
from ..components import (
    build_critic_module,
    build_generator,
    check_critic,
    generator_from_recipe,
    python_recipe,
)
from ..config import TrainConfig
from ..errors import FlowganError
from ..generator import check_generator, training_view
from ..models import MODELS, model_config
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
    #: how the generator and critic were made (:mod:`flowgan.components`): stored in checkpoints
    model_recipe: dict
    critic_recipe: dict | None = None

    def named_parameters(self) -> Iterator[tuple[str, torch.Tensor]]:
        """``generator.<name>`` and ``critic.<name>`` parameters."""
        for prefix, module in (("generator", self.model), ("critic", self.critic)):
            if module is not None:
                for name, p in module.named_parameters():
                    yield f"{prefix}.{name}", p

    def unwrapped(self) -> Modules:
        """The same modules without data-parallel or compiled wrappers: a ``DistributedDataParallel``
        module holds the process group, and must go before it does (see :func:`flowgan.training.train`)."""
        m = self
        return Modules(
            m.model, m.critic, m.objective, m.model, m.critic, m.opt, m.critic_opt, m.model_recipe, m.critic_recipe
        )


def build_modules(
    cfg: TrainConfig,
    shape,
    device: torch.device,
    *,
    model: torch.nn.Module | None = None,
    critic: torch.nn.Module | None = None,
    recipe: dict | None = None,
    world_size: int = 1,
) -> Modules:
    """The :class:`Modules` of ``cfg`` for images of ``shape`` (float32 on ``device``, wrapped as
    ``cfg`` asks, with their Adam optimisers). ``model``/``critic``: modules passed in (checked
    against the generator protocol and the critic's contract); otherwise built from the names or
    import paths of ``cfg`` (:mod:`flowgan.components`), the generator from ``recipe`` (a
    checkpoint's ``model_spec``) on resume."""
    model, critic, objective, recipes = build_networks(cfg, shape, device, model, critic, recipe, world_size)
    G, D = wrap(model, critic, objective, cfg, device, world_size)
    opt = make_adam(model.parameters(), cfg.lr, (cfg.beta1, cfg.beta2))
    critic_opt = None
    if critic is not None:
        beta1 = cfg.beta1 if cfg.critic_beta1 is None else cfg.critic_beta1
        critic_opt = make_adam(critic.parameters(), cfg.critic_lr or cfg.lr, (beta1, cfg.critic_beta2))
    return Modules(model, critic, objective, G, D, opt, critic_opt, *recipes)


def build_networks(cfg: TrainConfig, shape, device: torch.device, model, critic, recipe, world_size: int):
    """``(model, critic or None, objective, (model recipe, critic recipe))``, float32 on ``device``.
    The global generator is seeded with ``cfg.seed`` first: built-in parameters depend on the seed only."""
    torch.manual_seed(cfg.seed)  # parameter initialisation
    if model is not None:
        check_generator(model, shape)
        model_recipe = python_recipe(model)
    elif recipe is not None:
        model, model_recipe = generator_from_recipe(recipe), recipe
    else:
        model, model_recipe = build_generator(cfg.model, cfg.model_options, shape)
    if cfg.sync_batchnorm and world_size > 1:
        model = sync_batchnorm(model, device)
    model = model.to(device, torch.float32)
    objective = build_objective(cfg.objective, cfg.lam, cfg.n_critic, cfg.gp_weight)
    critic_recipe = None
    if not objective.critic_steps:
        critic = None
    elif critic is not None:
        critic_recipe = python_recipe(critic)
    else:
        critic, critic_recipe = build_critic_module(cfg.critic, cfg.critic_options, shape, cfg.model)
    if critic is not None:
        critic = critic.to(device, torch.float32)
        if "name" not in critic_recipe:
            check_critic(critic, shape, device)
    return model, critic, objective, (model_recipe, critic_recipe)


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
    G, D = parallel(training_view(model), device, world_size), parallel(critic, device, world_size)
    if cfg.compile:
        G = torch.compile(G)
        if D is not None and not objective.double_backward:
            D = torch.compile(D)
    return G, D


def run_info(cfg: TrainConfig, modules: Modules, dataset, device: torch.device, world_size: int) -> dict:
    """What config.json holds: the config, how the model and critic were made, data, sizes, environment."""
    model, critic = modules.model, modules.critic
    resolved = None
    if cfg.model in MODELS:
        resolved = jsonable(model_config(cfg.model, shape=dataset.shape, **cfg.model_options))
    return {
        "config": cfg.to_dict(),
        "model": {"spec": modules.model_recipe, "resolved": resolved},
        "critic": modules.critic_recipe,
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
