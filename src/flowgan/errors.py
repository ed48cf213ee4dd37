"""Errors meant for the user: the CLI prints them as one line and exits with status 2."""


class FlowganError(Exception):
    """A problem with the user's input (data, checkpoint, options), not a bug in flowgan."""


class DataError(FlowganError):
    """Missing or malformed dataset."""


class CheckpointError(FlowganError):
    """Missing, corrupt or incompatible checkpoint or run directory."""


class NonFiniteError(FlowganError):
    """A NaN or Inf appeared in training, at generator step ``step``."""

    def __init__(self, message: str, step: int | None = None):
        super().__init__(message)
        self.step = step


class Interrupted(FlowganError):
    """Training was stopped by a signal (SIGINT, SIGTERM); its latest checkpoint holds the state
    of the step it stopped at, and ``flowgan train --resume`` continues it."""


class CapabilityError(FlowganError):
    """An object lacks what an operation needs (e.g. a generator without ``encode()``/``decode()``
    for latent interpolation); the message names the missing method."""
