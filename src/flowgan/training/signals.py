"""Stopping a run cleanly on SIGINT/SIGTERM: a checkpoint, an event in the log, :class:`Interrupted`.

While a run trains, :class:`StopSignals` replaces the handlers of SIGINT and SIGTERM by one that
only notes the signal; the loop asks :func:`received_signal` after every step (and after a
rollback), and on a signal saves ``latest.pt`` (unless the step was just evaluated and saved),
logs ``{"kind": "event", "event": "interrupted", "signal": ...}`` and raises :func:`interrupted`'s
:class:`~flowgan.errors.Interrupted` (exit status 130 on the command line). ``flowgan train --resume`` continues
the run as if it had not stopped. With several processes the decision is collective: a signal to
any process stops all of them at the same step.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import torch

from ..errors import Interrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """The stop signals received while a run trains (a context
    manager that installs the handlers and puts the previous ones back; outside the main thread
    it installs nothing)."""

    def __init__(self):
        self.received: str | None = None  #: the name of the signal, e.g. "SIGTERM"
        self._previous: dict = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():

            def handler(signum, frame):
                self.received = signal.Signals(signum).name

            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, handler)
        return self

    def __exit__(self, *exc) -> bool:
        for sig, h in self._previous.items():
            signal.signal(sig, h)
        self._previous = {}
        return False


def received_signal(signals: StopSignals, world_size: int = 1, device: torch.device | None = None) -> str | None:
    """The name of the stop signal this process (or, with several processes, any of them:
    ``SIGTERM`` for a signal to another one) received, or None."""
    if world_size > 1:
        from ..distributed import all_reduce_max

        if all_reduce_max([float(signals.received is not None)], device)[0] and not signals.received:
            return "SIGTERM"
    return signals.received


def interrupted(name: str, step: int, run_dir: Path) -> Interrupted:
    """The error that ends a run stopped by signal ``name`` at ``step`` (its checkpoint saved)."""
    return Interrupted(
        f"interrupted by {name} at step {step}; the latest checkpoint is saved: "
        f"continue with flowgan train --resume {run_dir}"
    )
