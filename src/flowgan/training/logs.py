"""The training log lines: running averages of the step logs, and the progress bar.

Every ``log_every`` generator updates the loop writes a ``kind: "train"`` record to
``metrics.jsonl`` (:func:`train_record`): the means over the window of each logged scalar
(losses, gradient norms, critic outputs), the learning rate and the throughput.
:class:`RunningAverages` keeps the sums (detached tensors, so no device sync per step) and is
saved in checkpoints, so a resumed run logs the same averages as an uninterrupted one.
:class:`Progress` is the tqdm bar of the main process.
"""

from __future__ import annotations

from typing import Any

import torch


class RunningAverages:
    """Running sums of detached scalar logs between two log lines (tensors: no sync per step)."""

    def __init__(self):
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self._pending: list[dict[str, torch.Tensor]] = []

    def add(self, logs: dict[str, torch.Tensor]) -> None:
        self._pending.append(logs)

    def _flush(self) -> None:
        for logs in self._pending:
            for k, v in logs.items():
                self.sums[k] = self.sums.get(k, 0.0) + float(v)
                self.counts[k] = self.counts.get(k, 0) + 1
        self._pending = []

    def pop(self, reset: bool = True) -> dict[str, float]:
        """The means since the last reset; ``reset=False`` keeps the window open."""
        self._flush()
        out = {k: self.sums[k] / self.counts[k] for k in self.sums}
        if reset:
            self.sums, self.counts = {}, {}
        return out

    def state_dict(self) -> dict:
        self._flush()
        return {"sums": dict(self.sums), "counts": dict(self.counts)}

    def load_state_dict(self, state: dict) -> None:
        self.sums, self.counts, self._pending = dict(state["sums"]), dict(state["counts"]), []


class Progress:
    """A tqdm bar of generator updates (nothing when ``show`` is false); a context manager."""

    def __init__(self, show: bool, total: int | None, initial: int, desc: str):
        self.bar = None
        if show:  # total None: only a time limit ends the run
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> bool:
        if self.bar is not None:
            self.bar.close()
        return False

    def update(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def show_train(self, logs: dict[str, Any]) -> None:
        if self.bar is not None:
            shown = {k: f"{logs[k]:.4g}" for k in ("train_nll", "critic_loss", "generator_loss") if k in logs}
            self.bar.set_postfix(shown, refresh=False)

    def show_eval(self, record: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.set_postfix({"val_nll": f"{record['val_nll_nats']:.1f}"}, refresh=False)


#: training logs repeated in every evaluation record (from the latest training log line)
EVAL_CARRIED = ("loss", "train_nll", "critic_loss", "wasserstein", "gradient_penalty", "generator_loss")


def train_record(
    logs: dict[str, float], *, step: int, epoch: float, elapsed: float, lr: float, rate: float, images_per_step: int
) -> dict[str, Any]:
    """The ``kind: "train"`` line: the window's mean ``logs``, where the run is, the learning rate
    and the throughput (``rate``: generator updates per second, timed without evaluations)."""
    return {
        "kind": "train",
        "step": step,
        "epoch": round(epoch, 4),
        "time": round(elapsed, 2),
        "lr": lr,
        "steps_per_s": rate,
        "images_per_s": rate * images_per_step,
        **logs,
    }
