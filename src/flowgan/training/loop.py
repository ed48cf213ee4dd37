"""The training loop: one loop for every objective (MLE, adversarial, hybrid), read top to bottom.

:class:`Trainer` holds three things, and only this module changes the third:

* the :class:`~flowgan.training.context.RunContext` (config, data, device, evaluation material,
  hooks: fixed for the run),
* the :class:`~flowgan.training.modules.Modules` (flow, critic, objective, optimisers: their
  parameters change by the optimisers' steps),
* the :class:`~flowgan.training.state.RunState` (step, time, best values, log averages, random
  generator, data-stream position, ...).

Everything else it calls takes values and returns values: :mod:`.evaluation` (records, best
values, sample grids), :mod:`.nonfinite` (refusing NaN/Inf, the stop-or-rollback decision),
:mod:`.signals` (SIGINT/SIGTERM), :mod:`.logs` (log lines, progress bar), :mod:`.state`
(checkpoint save and restore), :mod:`flowgan.rundir` (the run directory).

Exactness of resume: every source of randomness of training (data order, dequantization noise,
flips, prior samples, gradient-penalty interpolation) comes from the run's own CPU generator and a
data stream whose position is saved; model, critic, optimizers, learning-rate state and the
running averages of the logs are checkpointed too. A run interrupted (SIGINT/SIGTERM or
``max_steps``) and resumed ends with the same parameters as an uninterrupted one.

Global randomness for data parallelism: each process draws the noise of the *global* batch and
keeps its shard, so ``N`` processes see exactly the samples one process would.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import load_checkpoint, record_run_config
from ..config import TrainConfig
from ..data_input import as_dataset
from ..errors import FlowganError, NonFiniteError
from ..generator import draw_latents
from ..likelihood import dequantize
from ..rundir import RunDirectory
from ..runtime import resolve_precision
from .context import make_context, recorded_config, resumed_config, run_device, warn_if_slow_bf16
from .evaluation import evaluate, fold_best, link_best
from .logs import EVAL_CARRIED, Progress, train_record
from .modules import build_modules, run_info
from .nonfinite import check_parameters, checked_update, stop_error
from .schedule import learning_rate, total_steps
from .signals import StopSignals, interrupted, received_signal
from .state import checkpoint_state, fresh_state, restore_state


class Trainer:
    """Train a flow with ``config`` into ``run_dir``; :meth:`fit` runs to the end and returns a summary.

    ``resume=True`` continues the run in ``run_dir`` from its latest checkpoint, with its stored
    config (``config`` may then only change ``epochs``/``max_steps``/``time_limit``; ``None``
    keeps them; ``resume_changes`` sets fields outright, see :meth:`resume`).
    ``callbacks`` are called as ``cb(state, modules)`` after every generator step; they may read
    the state and touch the modules (tests plant faults that way), never change the state.
    ``model``, ``critic``: modules of one's own (a generator meeting :class:`flowgan.generator.Generator`,
    a critic mapping images to scores); ``None`` builds those of ``config.model``/``config.critic``
    (:mod:`flowgan.components`). ``data``: a dataset name or ``.npz`` path, an
    :class:`~flowgan.data.ImageDataset`, tensors or a ``torch.utils.data.Dataset``
    (:mod:`flowgan.data_input`); ``None`` loads ``config.dataset``. Modules and data passed in are
    recorded in the run's config as ``python:<what they are>``, and a resume needs them passed again.
    ``score_fn(model, dataset, config, step, device) -> dict`` computes sample scores at each
    evaluation when ``config.score_metrics`` is set; ``"auto"`` is
    :func:`flowgan.metrics.training.score_hook`. ``rank``/``world_size`` are set for data-parallel
    runs (see :mod:`flowgan.distributed`).
    """

    def __init__(
        self,
        config: TrainConfig | None,
        run_dir: str | Path,
        *,
        resume: bool = False,
        model: torch.nn.Module | None = None,
        critic: torch.nn.Module | None = None,
        data=None,
        callbacks=(),
        rank: int = 0,
        world_size: int = 1,
        progress: bool = True,
        score_fn="auto",
        resume_changes: dict[str, Any] | None = None,
    ):
        self.dir = RunDirectory(run_dir, active=rank == 0)
        checkpoint = None
        if resume:
            checkpoint = load_checkpoint(self.dir.resumable_checkpoint())
            self.stored_config = TrainConfig.from_dict(checkpoint["config"]).to_dict()
            config = resumed_config(checkpoint, config, resume_changes or {})
        elif config is None:
            raise FlowganError("a config is needed to start a run")
        else:
            self.dir.check_fresh()
            config = recorded_config(config, model, critic, data)
        device = run_device(config.device, config.batch_size, world_size)
        if config.precision == "auto":  # recorded as what it resolves to: config.json says what ran
            config = config.replace(precision=resolve_precision(config.precision, device))
        dataset = as_dataset(config.dataset if data is None else data, config.data_dir)
        recipe = None if checkpoint is None else checkpoint["model_spec"]
        self.modules = build_modules(
            config, dataset.shape, device, model=model, critic=critic, recipe=recipe, world_size=world_size
        )
        warn_if_slow_bf16(config, device)
        self.ctx = make_context(
            config,
            dataset,
            self.modules.model,
            device,
            rank=rank,
            world_size=world_size,
            score_fn=score_fn,
            callbacks=callbacks,
            progress=progress,
        )
        self.state = fresh_state(config.seed, len(dataset.train), config.batch_size)
        self.resumed = checkpoint is not None
        if checkpoint is not None:
            self.state = restore_state(checkpoint, self.modules, self.state)

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
    def config(self) -> TrainConfig:
        return self.ctx.config

    @property
    def run_dir(self) -> Path:
        """The run directory (a staging directory beside it until the first checkpoint)."""
        return self.dir.path

    # ------------------------------------------------------------------ the loop

    def fit(self) -> dict[str, Any]:
        """Train to the end (or until a signal stops it: :class:`~flowgan.errors.Interrupted`);
        returns :meth:`summary`."""
        cfg = self.ctx.config
        total = total_steps(cfg, self.modules.objective, self.state.stream.batches_per_epoch)
        show = self.ctx.show_progress
        with StopSignals() as signals, Progress(show, total, self.state.step, cfg.describe()) as progress:
            try:
                if self._start(total):
                    self._train(total, signals, progress)
            finally:
                self.dir.close_writer()
                self.dir.close()
        return self.summary()

    def _train(self, total: int | None, signals: StopSignals, progress: Progress) -> None:
        """Generator updates until ``total`` (or the time limit), with log lines, evaluations and
        checkpoints on their schedules; the last step is always evaluated."""
        cfg = self.ctx.config
        clock = window_start = time.perf_counter()
        window_steps = 0
        self.modules.model.train()
        if self.modules.critic is not None:
            self.modules.critic.train()
        while total is None or self.state.step < total:
            if cfg.time_limit is not None and self.state.elapsed >= cfg.time_limit:
                self.state.stopped_by = "time_limit"
                break
            try:
                self.train_step()
                for callback in self.ctx.callbacks:
                    callback(self.state, self.modules)
                now = time.perf_counter()
                self.state.elapsed += now - clock
                clock, window_steps = now, window_steps + 1
                progress.update()
                if self.state.step % cfg.log_every == 0 or self.state.step == total:
                    self._log_train(window_steps / max(now - window_start, 1e-9), progress)
                    window_start, window_steps = now, 0
                if self.state.step % cfg.eval_every == 0 or self.state.step == total:
                    progress.show_eval(self._evaluate_and_save())
                    now = time.perf_counter()
                    self.state.elapsed += now - clock  # training time includes evaluation ...
                    clock = window_start = now  # ... throughput does not
                    window_steps = 0
            except NonFiniteError as e:
                self._recover(e)
                clock = time.perf_counter()
            self._stop_on_signal(signals)
        if self.state.last_eval_step != self.state.step:
            self._evaluate_and_save()

    def _start(self, total: int | None) -> bool:
        """Open the run directory. A fresh run is built in a staging directory, evaluated at step 0,
        checkpointed and published (:meth:`flowgan.rundir.RunDirectory.create`); a resumed one is
        locked, reloads its checkpoint if another process went on before this one held the lock,
        and continues its log. False when a resumed run has nothing left to do."""
        ctx = self.ctx
        if not self.resumed:
            if ctx.is_main:
                m = self.modules
                self.dir.create(run_info(ctx.config, m, ctx.dataset, ctx.device, ctx.world_size))
            self._evaluate_and_save()
            self.dir.publish()
            return True
        reloaded = self.dir.reopen()
        if ctx.world_size > 1:
            from ..distributed import broadcast_object

            reloaded = broadcast_object(reloaded)
        if reloaded:
            self.state = restore_state(load_checkpoint(self.dir.latest), self.modules, self.state)
        self.dir.continue_log(self.state.step)
        if ctx.is_main:  # config.json follows the checkpoint: the one source of truth
            info = run_info(ctx.config, self.modules, ctx.dataset, ctx.device, ctx.world_size)
            record_run_config(self.dir.path, info, self.stored_config)
        state, limit = self.state, ctx.config.time_limit
        ended = (total is not None and state.step >= total) or (limit is not None and state.elapsed >= limit)
        if state.last_eval_step == state.step and ended:
            self.state.stopped_by = "finished"  # resuming a finished run: nothing to do, nothing logged
            return False
        return True

    def train_step(self) -> None:
        """One generator update, preceded by ``objective.critic_steps`` critic updates."""
        m, cfg = self.modules, self.ctx.config
        for group in m.opt.param_groups:
            group["lr"] = learning_rate(cfg, self.state.step, self.state.lr_scale)
        measure = (self.state.step + 1) % cfg.log_every == 0
        critic_params = [] if m.critic is None else list(m.critic.parameters())
        for _ in range(m.objective.critic_steps):
            with self._autocast():
                loss, logs = m.objective.critic_loss(m.G, m.D, self._real_batch(), self._latents(), self._rand)
            norm = self._update(m.critic_opt, critic_params, loss, "critic", measure)
            if norm is not None:
                logs["critic_grad_norm"] = norm
            self.state.averages.add(logs)
        real = self._real_batch() if m.objective.generator_uses_data else None
        with self._autocast():
            loss, logs = m.objective.generator_loss(m.G, m.D, real, self._latents(), self._rand)
        norm = self._update(m.opt, list(m.model.parameters()), loss, "generator", measure)
        if norm is not None:
            logs["grad_norm"] = norm
        logs["loss"] = loss.detach()
        self.state.averages.add(logs)
        self.state.step += 1

    # ------------------------------------------------------------------ the loop's steps

    def _update(self, opt, params, loss, what: str, measure: bool):
        ctx = self.ctx
        return checked_update(
            opt,
            params,
            loss,
            what=what,
            measure=measure,
            step=self.state.step,
            modules=self.modules,
            world_size=ctx.world_size,
            device=ctx.device,
        )

    def _real_batch(self) -> torch.Tensor:
        """The next global batch of training images, dequantized (and flipped where the dataset
        says so), this process's shard on the device."""
        ctx, rng = self.ctx, self.state.rng
        images = ctx.dataset.train.images[self.state.stream.next()]
        noise = torch.rand(images.shape, generator=rng, dtype=torch.float32)
        if ctx.dataset.flip:
            flip = torch.rand(len(images), generator=rng, dtype=torch.float32) < 0.5
            images = torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)
        x = dequantize(ctx.shard(images), ctx.shard(noise))
        if ctx.device.type == "cuda":
            x = x.pin_memory()  # asynchronous host-to-device copy
        return x.to(ctx.device, non_blocking=True)

    def _latents(self) -> torch.Tensor:
        ctx = self.ctx
        z = draw_latents(self.modules.model, ctx.config.batch_size, self.state.rng)
        return ctx.shard(z).to(ctx.device, non_blocking=True)

    def _rand(self, n_local: int) -> torch.Tensor:
        return self.ctx.shard(torch.rand(n_local * self.ctx.world_size, generator=self.state.rng, dtype=torch.float32))

    def _autocast(self):
        if self.ctx.config.precision == "bf16":
            return torch.autocast(self.ctx.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def _log_train(self, rate: float, progress: Progress) -> None:
        """The ``kind: "train"`` log line of the current window (``rate``: steps per second)."""
        cfg, state, objective = self.ctx.config, self.state, self.modules.objective
        # a log line forced by the end of the run keeps its window open, so that a run
        # stopped there and resumed logs the same averages as an uninterrupted one
        logs = state.averages.pop(reset=state.step % cfg.log_every == 0)
        state.last_train_logs = {k: v for k, v in logs.items() if k in EVAL_CARRIED}
        images = cfg.batch_size * objective.batches_per_update
        lr = learning_rate(cfg, state.step, state.lr_scale)
        self.dir.log(
            train_record(
                logs,
                step=state.step,
                epoch=state.stream.progress,
                elapsed=state.elapsed,
                lr=lr,
                rate=rate,
                images_per_step=images,
            )
        )
        progress.show_train(logs)

    def _evaluate_and_save(self) -> dict[str, Any]:
        """Evaluate (parameters checked first), log the record, fold it into the best values, save
        ``latest.pt`` and link the best checkpoints it improves; returns the record."""
        ctx, state = self.ctx, self.state
        check_parameters(self.modules.named_parameters(), state.step)
        record = evaluate(
            ctx,
            self.modules.model,
            step=state.step,
            epoch=state.stream.progress,
            elapsed=state.elapsed,
            last_train_logs=state.last_train_logs,
            sample_dir=self.dir.path / "samples",
        )
        self.dir.log(record)
        state.best, improved = fold_best(state.best, record, ctx.config.score_metrics, state.step)
        state.last_eval_step = state.step
        self.save_checkpoint()
        if ctx.is_main:
            link_best(self.dir.path, improved)
        return record

    def _recover(self, error: NonFiniteError) -> None:
        """Stop (raise), or reload the last checkpoint with half the current learning rate. The
        rollback count and the rate are the run's, not the checkpoint's: they are kept across the
        reload and saved at once, so at most ``MAX_ROLLBACKS`` happen over a whole run."""
        state, latest = self.state, self.dir.latest
        stop = stop_error(error, self.ctx.config.on_nonfinite, state.rollbacks, state.lr_scale, latest)
        if stop is not None:
            self.dir.log({"kind": "event", "step": state.step, "event": "nonfinite", "message": str(error)})
            raise stop
        rollbacks, lr_scale = state.rollbacks + 1, state.lr_scale * 0.5
        self.state = restore_state(load_checkpoint(latest), self.modules, state)
        self.state.rollbacks, self.state.lr_scale = rollbacks, lr_scale
        self.dir.log(
            {
                "kind": "event",
                "step": self.state.step,
                "event": "rollback",
                "message": str(error),
                "failed_step": error.step,
                "lr_scale": lr_scale,
                "rollbacks": rollbacks,
            }
        )
        self.save_checkpoint()  # the restored state with the new count and rate

    def _stop_on_signal(self, signals: StopSignals) -> None:
        """On a stop signal (to any process): save (unless this step was just saved), log the event
        and raise :class:`~flowgan.errors.Interrupted`."""
        name = received_signal(signals, self.ctx.world_size, self.ctx.device)
        if name:
            if self.state.last_eval_step != self.state.step:
                self.save_checkpoint()
            self.dir.log({"kind": "event", "step": self.state.step, "event": "interrupted", "signal": name})
            raise interrupted(name, self.state.step, self.dir.path)

    def save_checkpoint(self, name: str = "latest") -> None:
        ctx = self.ctx
        payload = checkpoint_state(ctx.config, self.modules, self.state, ctx.dataset.name) if ctx.is_main else {}
        self.dir.save(payload, name)
        if ctx.world_size > 1:
            from ..distributed import barrier

            barrier()

    # ------------------------------------------------------------------ after the loop

    def close(self) -> None:
        """Release what must not outlive training: the data-parallel wrappers and the TensorBoard
        writer. A ``DistributedDataParallel`` module holds the process group; without this the
        group's C++ threads could be torn down only by the garbage collector during interpreter
        shutdown, which aborts a process (SIGABRT, "terminate called without an active
        exception"). Idempotent."""
        self.modules = self.modules.unwrapped()
        self.dir.close_writer()

    def summary(self) -> dict[str, Any]:
        state = self.state
        return {
            "run_dir": str(self.run_dir),
            "step": state.step,
            "epoch": state.stream.progress,
            "time": state.elapsed,
            "best": state.best,
            "stopped_by": state.stopped_by,
        }


def train(
    config: TrainConfig | None,
    run_dir: str | Path,
    *,
    model: torch.nn.Module | None = None,
    critic: torch.nn.Module | None = None,
    data=None,
    **kwargs,
) -> dict[str, Any]:
    """Train a new run into ``run_dir`` (or continue it: ``resume=True``, ``config`` ``None``) and
    return its summary (``run_dir``, ``step``, ``epoch``, ``time``, ``best``, ``stopped_by``).

    ``model``: any generator meeting the protocol of :mod:`flowgan.generator` (flowgan's own,
    :func:`flowgan.from_zuko`, :func:`flowgan.from_normflows`, one's own ``nn.Module``);
    ``critic``: any ``nn.Module`` mapping images ``(N, C, H, W)`` to scores ``(N,)``; ``data``: a
    name, ``.npz`` path, tensors or a ``torch.utils.data.Dataset`` (:mod:`flowgan.data_input`).
    Left out, they are built from ``config`` (``config.model``, ``config.critic``,
    ``config.dataset``). Other keyword arguments as for :class:`Trainer`."""
    trainer = Trainer(config, run_dir, model=model, critic=critic, data=data, **kwargs)
    try:
        return trainer.fit()
    finally:
        trainer.close()
