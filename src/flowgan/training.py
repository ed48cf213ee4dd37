"""The trainer: one loop for every objective (MLE, adversarial, hybrid), exact resume, run directories.

Run directories (config.json, metrics.jsonl, checkpoints/, samples/, tb/, the lock, atomic
creation) are :mod:`flowgan.rundir`'s; the device, seeds, optimiser and data stream are
:mod:`flowgan.runtime`'s.

The trainer's other jobs live beside it, one per module: :mod:`flowgan.evaluation` (evaluation
records, best checkpoints, sample grids, sample scores), :mod:`flowgan.nonfinite` (refusing
NaN/Inf, stop or rollback), :mod:`flowgan.signals` (SIGINT/SIGTERM), :mod:`flowgan.train_logs`
(running averages of the log lines, the progress bar), :mod:`flowgan.train_modules` (the flow,
the critic, their data-parallel and compiled wrappers), :mod:`flowgan.train_state` (the
checkpoint state of exact resume).

Exactness of resume: every source of randomness of training (data order, dequantization noise,
flips, prior samples, gradient-penalty interpolation) comes from the run's own CPU generator
and a data stream whose position is saved; model, critic, optimizers, learning-rate state and the
running averages of the logs are checkpointed too. A run interrupted (SIGINT/SIGTERM or
``max_steps``) and resumed with ``--resume`` ends with the same parameters as an uninterrupted
one.

Global randomness for data parallelism: each process draws the noise of the *global* batch and
keeps its shard, so ``N`` processes see exactly the samples one process would.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from . import evaluation
from .checkpoint import load_checkpoint
from .config import TrainConfig
from .data import ImageDataset, load_dataset
from .errors import FlowganError, NonFiniteError
from .evaluation import EVAL_CARRIED
from .likelihood import dequantize
from .nonfinite import MAX_ROLLBACKS, checked_update, stop_or_roll_back  # noqa: F401 - MAX_ROLLBACKS: public here too
from .rundir import RunDirectory, RunLock, read_metrics  # noqa: F401 - RunLock, read_metrics: public here too
from .runtime import BatchStream, cpu_has_fast_bf16, make_adam, mix_seed, resolve_device
from .signals import Interrupted, StopSignals  # noqa: F401 - Interrupted: public here too
from .train_logs import Progress, RunningAverages
from .train_modules import build_modules, run_info, wrap
from .train_state import restore_trainer, trainer_state

_Averages = RunningAverages  # the name of earlier versions


class Trainer:
    """Train a flow with ``config`` into ``run_dir``; ``fit()`` runs to the end and returns a summary.

    ``resume=True`` continues the run in ``run_dir`` from its latest checkpoint (``config`` then
    only overrides ``epochs``/``max_steps``/``time_limit``; pass ``None`` to keep the stored config);
    :meth:`resume` says the same with keywords, as ``flowgan train --resume`` does.
    ``callbacks`` are called as ``cb(trainer)`` after every generator step (tests use them to plant
    faults). ``score_fn(trainer) -> dict`` computes sample scores at each evaluation when
    ``config.score_metrics`` is set; ``"auto"`` uses :func:`flowgan.metrics.training.score_hook`.
    ``rank``/``world_size`` are set for data-parallel runs (see :mod:`flowgan.distributed`).
    """

    def __init__(
        self,
        config: TrainConfig | None,
        run_dir: str | Path,
        *,
        resume: bool = False,
        dataset: ImageDataset | None = None,
        callbacks: tuple[Callable[[Trainer], None], ...] = (),
        rank: int = 0,
        world_size: int = 1,
        progress: bool = True,
        score_fn: Callable[..., dict] | str | None = "auto",
        resume_changes: dict[str, Any] | None = None,
    ):
        self.rank, self.world_size = rank, world_size
        self.is_main = rank == 0
        self.dir = RunDirectory(run_dir, active=self.is_main)
        self.callbacks = tuple(callbacks)
        self.show_progress = progress and self.is_main
        self._checkpoint: dict | None = None
        if resume:
            self._checkpoint = load_checkpoint(self.dir.resumable_checkpoint())
            stored = TrainConfig.from_dict(self._checkpoint["config"])
            overrides = dict(resume_changes or {})
            if config is not None:
                overrides.update(
                    {
                        k: getattr(config, k)
                        for k in ("epochs", "max_steps", "time_limit")
                        if getattr(config, k) != getattr(stored, k)
                    }
                )
            config = stored.replace(**overrides)
        elif config is None:
            raise FlowganError("a config is needed to start a run")
        else:
            self.dir.check_fresh()
        self.config = cfg = config

        if world_size > 1 and cfg.batch_size % world_size:
            raise FlowganError(f"batch size {cfg.batch_size} is not divisible by {world_size} processes")
        self.local_batch = cfg.batch_size // world_size
        self.device = resolve_device(cfg.device)
        if self.device.type == "cuda" and world_size > 1 and self.device.index is None:
            from .distributed import local_rank

            self.device = torch.device("cuda", local_rank())
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True

        self.dataset = dataset or load_dataset(cfg.dataset, cfg.data_dir)
        shape = self.dataset.shape
        spec = None if self._checkpoint is None else self._checkpoint["model_spec"]
        self.model, self.objective, self.critic = build_modules(
            cfg, shape, self.device, model_spec=spec, world_size=world_size
        )
        self.G, self.D = wrap(self.model, self.critic, self.objective, cfg, self.device, world_size)
        if cfg.precision == "bf16" and self.device.type == "cpu" and not cpu_has_fast_bf16():
            warnings.warn(
                "bf16 on this CPU (no AMX or AVX512-BF16) runs slower than fp32; see benchmarks/README.md",
                RuntimeWarning,
                stacklevel=2,
            )
        self.opt = make_adam(self.model.parameters(), cfg.lr, (cfg.beta1, cfg.beta2))
        self.critic_opt = None
        if self.critic is not None:
            self.critic_opt = make_adam(
                self.critic.parameters(),
                cfg.critic_lr or cfg.lr,
                (cfg.beta1 if cfg.critic_beta1 is None else cfg.critic_beta1, cfg.critic_beta2),
            )

        self.rng = torch.Generator().manual_seed(mix_seed(cfg.seed, 1))
        self.stream = BatchStream(len(self.dataset.train), cfg.batch_size, cfg.seed)
        self.step = 0
        self.lr_scale = 1.0  # halved by non-finite rollbacks
        self.elapsed = 0.0
        self.best: dict[str, dict] = {}
        self.averages = RunningAverages()
        self.last_train_logs: dict[str, float] = {}
        self.rollbacks = 0
        self.last_eval_step: int | None = None  # the step of the latest evaluation (saved in checkpoints)
        self._reloaded = False  # a resume found a newer checkpoint once it held the lock
        self.signals = StopSignals()  # the stop signals received during fit()
        self.stopped_by = "steps"  # or "time_limit"
        if score_fn == "auto":
            score_fn = None
            if cfg.score_metrics:
                from .metrics.training import score_hook

                score_fn = score_hook
        self.score_fn = score_fn

        # fixed evaluation material
        self.grid_z = self.model.prior.sample(
            (cfg.grid_samples, *shape),
            generator=torch.Generator().manual_seed(mix_seed(cfg.seed, 2)),
            dtype=torch.float32,
        )
        val = self.dataset.val.images
        self.val_images = val if cfg.eval_samples is None else val[: cfg.eval_samples]
        train = self.dataset.train.images
        pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[: cfg.train_eval_samples]
        self.train_eval_images = train[pick.sort().values]

        if self._checkpoint is not None:
            self._restore(self._checkpoint)

    # ------------------------------------------------------------------ set-up helpers

    @classmethod
    def resume(
        cls,
        run_dir: str | Path,
        *,
        epochs: float | None = None,
        max_steps: int | None = None,
        time_limit: float | None = None,
        **kwargs,
    ) -> Trainer:
        """A trainer that continues the run in ``run_dir`` from its latest checkpoint, with its stored
        config. ``epochs`` extends the run by epochs (and drops a stored step limit);
        ``max_steps`` alone keeps the stored epochs; ``time_limit`` (seconds) replaces the stored
        one. Other keyword arguments as for the constructor."""
        changes: dict[str, Any] = {}
        if epochs is not None:
            changes = {"epochs": epochs, "max_steps": max_steps}
        elif max_steps is not None:
            changes = {"max_steps": max_steps}
        if time_limit is not None:
            changes["time_limit"] = time_limit
        return cls(None, run_dir, resume=True, resume_changes=changes, **kwargs)

    @property
    def run_dir(self) -> Path:
        """The run directory (a staging directory beside it until the first checkpoint)."""
        return self.dir.path

    @property
    def writer(self):
        """The TensorBoard writer (None without tensorboard or before the run directory exists)."""
        return self.dir.writer

    def _shard(self, x: torch.Tensor) -> torch.Tensor:
        if self.world_size == 1:
            return x
        return x[self.rank * self.local_batch : (self.rank + 1) * self.local_batch]

    def _real_batch(self) -> torch.Tensor:
        idx = self.stream.next()
        images = self.dataset.train.images[idx]
        noise = torch.rand(images.shape, generator=self.rng, dtype=torch.float32)
        if self.dataset.flip:
            flip = torch.rand(len(images), generator=self.rng, dtype=torch.float32) < 0.5
            images = torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)
        x = dequantize(self._shard(images), self._shard(noise))
        if self.device.type == "cuda":
            x = x.pin_memory()  # asynchronous host-to-device copy
        return x.to(self.device, non_blocking=True)

    def _latents(self) -> torch.Tensor:
        z = self.model.prior.sample(
            (self.config.batch_size, *self.model.shape), generator=self.rng, dtype=torch.float32
        )
        return self._shard(z).to(self.device, non_blocking=True)

    def _rand(self, n_local: int) -> torch.Tensor:
        return self._shard(torch.rand(n_local * self.world_size, generator=self.rng, dtype=torch.float32))

    def _autocast(self):
        if self.config.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def current_lr(self) -> float:
        cfg = self.config
        return max(cfg.lr * cfg.lr_decay**self.step, cfg.min_lr) * self.lr_scale

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        """Everything an exact resume needs (:func:`flowgan.train_state.trainer_state`)."""
        return trainer_state(self)

    def _restore(self, ckpt: dict) -> None:
        restore_trainer(self, ckpt)

    def save_checkpoint(self, name: str = "latest") -> None:
        self.dir.save(self.state_dict() if self.is_main else {}, name)
        if self.world_size > 1:
            from .distributed import barrier

            barrier()

    # ------------------------------------------------------------------ logging

    def _log(self, record: dict[str, Any]) -> None:
        self.dir.log(record)

    def _open_run_dir(self, fresh: bool) -> None:
        """Lock the run directory; a fresh run is built in a staging directory (see
        :meth:`flowgan.rundir.RunDirectory.create`), a resumed one reloads its checkpoint if another
        process went on before this one held the lock, and continues its log."""
        if fresh:
            if self.is_main:
                self.dir.create(
                    run_info(self.config, self.model, self.critic, self.dataset, self.device, self.world_size)
                )
            return
        if self.dir.reopen():
            self._restore(load_checkpoint(self.dir.latest))
            self._reloaded = True
        self.dir.continue_log(self.step)

    # ------------------------------------------------------------------ training

    def train_step(self) -> None:
        """One generator update, preceded by ``objective.critic_steps`` critic updates."""
        obj = self.objective
        lr = self.current_lr()
        for group in self.opt.param_groups:
            group["lr"] = lr
        measure = (self.step + 1) % self.config.log_every == 0
        critic_params = [] if self.critic is None else list(self.critic.parameters())
        for _ in range(obj.critic_steps):
            with self._autocast():
                loss, logs = obj.critic_loss(self.G, self.D, self._real_batch(), self._latents(), self._rand)
            norm = checked_update(self, self.critic_opt, critic_params, loss, "critic", measure)
            if norm is not None:
                logs["critic_grad_norm"] = norm
            self.averages.add(logs)
        real = self._real_batch() if obj.generator_uses_data else None
        with self._autocast():
            loss, logs = obj.generator_loss(self.G, self.D, real, self._latents(), self._rand)
        norm = checked_update(self, self.opt, list(self.model.parameters()), loss, "generator", measure)
        if norm is not None:
            logs["grad_norm"] = norm
        logs["loss"] = loss.detach()
        self.averages.add(logs)
        self.step += 1

    def total_steps(self) -> int:
        cfg = self.config
        per_step = self.objective.critic_steps + int(self.objective.generator_uses_data)
        if cfg.epochs is None and cfg.max_steps is None:
            if cfg.time_limit is not None:
                return 2**62  # only the time limit ends the run
            epochs = 1.0
        else:
            epochs = cfg.epochs
        by_epochs = math.floor(epochs * self.stream.batches_per_epoch / max(per_step, 1)) if epochs else None
        if cfg.max_steps is None:
            return by_epochs
        return cfg.max_steps if by_epochs is None else min(by_epochs, cfg.max_steps)

    # ------------------------------------------------------------------ evaluation

    def evaluate(self) -> dict[str, Any]:
        """The evaluation record at the current step (:func:`flowgan.evaluation.evaluate`)."""
        return evaluation.evaluate(self)

    def _after_eval(self, record: dict[str, Any]) -> None:
        evaluation.record_evaluation(self, record)

    # ------------------------------------------------------------------ main loop

    def fit(self) -> dict[str, Any]:
        """Train to the end (or until interrupted by a signal: :class:`Interrupted`); returns a
        summary of the run."""
        total = self.total_steps()
        with (
            StopSignals() as self.signals,
            Progress(self.show_progress, total, self.step, self.config.describe()) as progress,
        ):
            try:
                self._loop(total, progress)
            finally:
                self.dir.close_writer()
                self.dir.close()
        return self.summary()

    def _loop(self, total: int, progress: Progress) -> None:
        cfg = self.config
        fresh = self._checkpoint is None
        self._open_run_dir(fresh)
        if self.world_size > 1 and not fresh:
            from .distributed import broadcast_object

            if broadcast_object(self._reloaded) and not self.is_main:
                self._restore(load_checkpoint(self.run_dir / "checkpoints" / "latest.pt"))
        if fresh:
            self._after_eval(self.evaluate())
            self.dir.publish()
        elif self.last_eval_step == self.step and (
            self.step >= total or (cfg.time_limit is not None and self.elapsed >= cfg.time_limit)
        ):
            self.stopped_by = "finished"  # resuming a finished run: nothing to do, nothing logged
            return
        last_eval_step = self.last_eval_step
        clock = time.perf_counter()
        window_start, window_steps = clock, 0
        self.model.train()
        if self.critic is not None:
            self.critic.train()
        while self.step < total:
            if cfg.time_limit is not None and self.elapsed >= cfg.time_limit:
                self.stopped_by = "time_limit"
                break
            try:
                self.train_step()
                for cb in self.callbacks:
                    cb(self)
            except NonFiniteError as e:
                stop_or_roll_back(self, e)
                self.signals.check(self, last_eval_step)
                clock = time.perf_counter()
                continue
            now = time.perf_counter()
            self.elapsed += now - clock
            clock = now
            window_steps += 1
            progress.update()
            if self.step % cfg.log_every == 0 or self.step == total:
                self._log_train(window_steps / max(now - window_start, 1e-9), progress)
                window_start, window_steps = now, 0
            if self.step % cfg.eval_every == 0 or self.step == total:
                try:
                    record = self.evaluate()
                except NonFiniteError as e:
                    stop_or_roll_back(self, e)
                    self.signals.check(self, last_eval_step)
                    clock = time.perf_counter()
                    continue
                self._after_eval(record)
                last_eval_step = self.step
                progress.show_eval(record)
                now = time.perf_counter()
                self.elapsed += now - clock  # wall time includes evaluation
                clock = window_start = now  # ... throughput does not
                window_steps = 0
            self.signals.check(self, last_eval_step)
        if last_eval_step != self.step:
            self._after_eval(self.evaluate())

    def _log_train(self, rate: float, progress: Progress) -> None:
        """The ``kind: "train"`` log line of the current window (``rate``: steps per second)."""
        cfg = self.config
        # a log line forced by the end of the run keeps its window open, so that a run
        # stopped there and resumed logs the same averages as an uninterrupted one
        logs = self.averages.pop(reset=self.step % cfg.log_every == 0)
        self.last_train_logs = {k: v for k, v in logs.items() if k in EVAL_CARRIED}
        per_step = self.objective.critic_steps + int(self.objective.generator_uses_data)
        record = {
            "kind": "train",
            "step": self.step,
            "epoch": round(self.stream.progress, 4),
            "time": round(self.elapsed, 2),
            "lr": self.current_lr(),
            "steps_per_s": rate,
            "images_per_s": rate * cfg.batch_size * max(per_step, 1),
            **logs,
        }
        self._log(record)
        progress.show_train(logs)

    def close(self) -> None:
        """Release what must not outlive training: the data-parallel wrappers and the TensorBoard
        writer. A ``DistributedDataParallel`` module holds the process group; a Trainer sits in
        reference cycles, so without this the group's C++ threads could be torn down only by the
        garbage collector during interpreter shutdown, which aborts a process (SIGABRT,
        "terminate called without an active exception"). Idempotent."""
        self.G, self.D = self.model, self.critic
        self.dir.close_writer()

    def summary(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir),
            "step": self.step,
            "epoch": self.stream.progress,
            "time": self.elapsed,
            "best": self.best,
            "stopped_by": self.stopped_by,
        }


def train(config: TrainConfig, run_dir: str | Path, **kwargs) -> dict[str, Any]:
    """Train a new run (library entry point); see :class:`Trainer`."""
    return Trainer(config, run_dir, **kwargs).fit()
