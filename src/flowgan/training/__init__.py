"""Training a Flow-GAN: the loop, its state, and the functions it calls.

======================  ===================================================================
``loop``                :class:`Trainer` and :func:`train`: the loop, the only code that
                        changes a run's state
``state``               :class:`RunState` (step, time, best values, log averages, random
                        generator, data position); checkpoint save and restore
``context``             :class:`RunContext`: config, data, device, evaluation material, hooks
``modules``             :class:`Modules`: flow, critic, objective, optimisers, wrappers
``evaluation``          evaluation records, best values, sample grids
``nonfinite``           refusing NaN/Inf in updates; the stop-or-rollback decision
``signals``             SIGINT/SIGTERM while training
``logs``                log lines and the progress bar
======================  ===================================================================

docs/architecture.md draws who may change what.
"""

from .loop import Trainer, train

__all__ = ["Trainer", "train"]
