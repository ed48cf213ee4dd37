"""What a run trains with and does not change: :class:`RunContext`; the device and config of a run.

The resolved config, the data, the device and the process's place in a data-parallel group, the
fixed evaluation material (validation images, a fixed subset of training images, the latents of
the sample grids) and the hooks. Built once by :func:`make_context`; frozen, so the functions the
loop calls may read it freely.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..components import is_import_path, python_label, recorded_path
from ..config import TrainConfig
from ..data import ImageDataset
from ..data_input import PYTHON_DATA
from ..errors import FlowganError
from ..generator import draw_latents
from ..runtime import cpu_has_fast_bf16, mix_seed, resolve_device

#: ``score_fn(model, dataset, config, step, device) -> dict``: sample scores at an evaluation
ScoreFn = Callable[..., dict]


@dataclass(frozen=True)
class RunContext:
    config: TrainConfig
    dataset: ImageDataset
    device: torch.device
    rank: int
    world_size: int
    val_images: torch.Tensor  #: uint8 validation images of every evaluation (``eval_samples`` of them)
    train_eval_images: torch.Tensor  #: a fixed subset of training images (``train_eval_samples``)
    grid_z: torch.Tensor  #: the latents of the sample grid of every evaluation (Figure 1)
    score_fn: ScoreFn | None = None
    callbacks: tuple[Callable, ...] = ()
    show_progress: bool = True

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def local_batch(self) -> int:
        return self.config.batch_size // self.world_size

    def shard(self, x: torch.Tensor) -> torch.Tensor:
        """This process's rows of a global batch ``x``."""
        if self.world_size == 1:
            return x
        n = self.local_batch
        return x[self.rank * n : (self.rank + 1) * n]


def run_device(name: str, batch_size: int, world_size: int) -> torch.device:
    """The device of ``name`` (``auto``, ``cpu``, ``cuda``, ...); under torchrun each process takes
    its local GPU (and a share of ``batch_size``, which must divide); TF32 matrix products on CUDA."""
    if world_size > 1 and batch_size % world_size:
        raise FlowganError(f"batch size {batch_size} is not divisible by {world_size} processes")
    device = resolve_device(name)
    if device.type == "cuda" and world_size > 1 and device.index is None:
        from ..distributed import local_rank

        device = torch.device("cuda", local_rank())
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device


def make_context(
    config: TrainConfig,
    dataset: ImageDataset,
    model,
    device: torch.device,
    *,
    rank: int = 0,
    world_size: int = 1,
    score_fn: ScoreFn | str | None = "auto",
    callbacks=(),
    progress: bool = True,
) -> RunContext:
    """The :class:`RunContext` of a run on ``device`` (:func:`run_device`). The grid's noise is
    drawn for ``model`` (:func:`flowgan.generator.draw_latents`, seeded from the run's seed); ``score_fn="auto"`` is
    :func:`flowgan.metrics.training.score_hook` when the config names score metrics."""
    if score_fn == "auto":
        score_fn = None
        if config.score_metrics:
            from ..metrics.training import score_hook

            score_fn = score_hook
    grid_z = draw_latents(model, config.grid_samples, torch.Generator().manual_seed(mix_seed(config.seed, 2)))
    val = dataset.val.images
    train = dataset.train.images
    pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[: config.train_eval_samples]
    return RunContext(
        config=config,
        dataset=dataset,
        device=device,
        rank=rank,
        world_size=world_size,
        val_images=val if config.eval_samples is None else val[: config.eval_samples],
        train_eval_images=train[pick.sort().values],
        grid_z=grid_z,
        score_fn=score_fn,
        callbacks=tuple(callbacks),
        show_progress=progress and rank == 0,
    )


def resumed_config(checkpoint: dict, config: TrainConfig | None, changes: dict[str, Any]) -> TrainConfig:
    """The config of a resumed run: the checkpoint's, with ``changes`` and the ``epochs``,
    ``max_steps`` and ``time_limit`` of ``config`` where it differs from the stored one."""
    stored = TrainConfig.from_dict(checkpoint["config"])
    overrides = dict(changes)
    if config is not None:
        for k in ("epochs", "max_steps", "time_limit"):
            if getattr(config, k) != getattr(stored, k):
                overrides[k] = getattr(config, k)
    return stored.replace(**overrides)


def recorded_config(config: TrainConfig, model, critic, data) -> TrainConfig:
    """The config a run records: a factory's file path made absolute; when modules or data are
    passed from Python, ``model``,
    ``critic``, ``dataset`` say ``python:<what it is>`` (:mod:`flowgan.components`), so that
    config.json never names a model or data set the run did not use (a data set passed by name,
    or an :class:`~flowgan.data.ImageDataset` of the name ``config.dataset`` gives, is kept)."""
    changes: dict[str, Any] = {}
    for field in ("model", "critic"):  # a factory's file recorded absolute: resumable from anywhere
        if is_import_path(getattr(config, field)):
            changes[field] = recorded_path(getattr(config, field))
    if model is not None:
        changes.update(model=python_label(model), model_options={})
    if critic is not None:
        changes.update(critic=python_label(critic), critic_options={})
    if isinstance(data, (str, Path)):
        changes.update(dataset=str(data))
    elif isinstance(data, ImageDataset):  # one that config.dataset names (as the reproduction passes) stays
        if data.name not in (config.dataset, Path(config.dataset).stem):
            changes.update(dataset=f"python:{data.name}")
    elif data is not None:
        changes.update(dataset=PYTHON_DATA)
    return config.replace(**changes) if changes else config


def warn_if_slow_bf16(cfg: TrainConfig, device: torch.device) -> None:
    if cfg.precision == "bf16" and device.type == "cpu" and not cpu_has_fast_bf16():
        warnings.warn(
            "bf16 on this CPU (no AMX or AVX512-BF16) runs slower than fp32; see benchmarks/README.md",
            RuntimeWarning,
            stacklevel=3,
        )
