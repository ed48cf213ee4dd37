"""Stopping a run cleanly on SIGINT/SIGTERM: a checkpoint, an event in the log, :class:`Interrupted`.

While :meth:`flowgan.training.Trainer.fit` runs, :class:`StopSignals` replaces the handlers of
SIGINT and SIGTERM by one that only notes the signal; the loop asks :meth:`StopSignals.check`
after every step (and after a rollback), which then saves ``latest.pt`` (unless the step was just
evaluated and saved), logs ``{"kind": "event", "event": "interrupted", "signal": ...}`` and
raises :class:`Interrupted` (exit status 130 on the command line). ``flowgan train --resume``
continues the run as if it had not stopped. With several processes the decision is collective:
a signal to any process stops all of them at the same step.
"""

from __future__ import annotations

import signal
import threading
from typing import TYPE_CHECKING

from .errors import FlowganError

if TYPE_CHECKING:
    from .training import Trainer

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(FlowganError):
    """Training was stopped by a signal; the latest checkpoint holds the state at ``step``."""


class StopSignals:
    """The stop signals received during :meth:`~flowgan.training.Trainer.fit` (a context
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

    def check(self, trainer: Trainer, last_eval_step: int | None) -> None:
        """Save and raise :class:`Interrupted` if a stop signal came (a collective decision)."""
        if trainer.world_size > 1:
            from .distributed import all_reduce_max

            if all_reduce_max([float(self.received is not None)], trainer.device)[0] and not self.received:
                self.received = "SIGTERM"
        if self.received:
            if last_eval_step != trainer.step:
                trainer.save_checkpoint("latest")
            trainer.dir.log({"kind": "event", "step": trainer.step, "event": "interrupted", "signal": self.received})
            raise Interrupted(
                f"interrupted by {self.received} at step {trainer.step}; the latest checkpoint is saved: "
                f"continue with flowgan train --resume {trainer.run_dir}"
            )
