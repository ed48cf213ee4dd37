"""Errors meant for the user: the CLI prints them as one line and exits with status 2."""


class FlowganError(Exception):
    """A problem with the user's input (data, checkpoint, options), not a bug in flowgan."""


class DataError(FlowganError):
    """Missing or malformed dataset."""


class CheckpointError(FlowganError):
    """Missing, corrupt or incompatible checkpoint or run directory."""


class NonFiniteError(FlowganError):
    """A NaN or Inf appeared in training."""
