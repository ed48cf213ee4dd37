r"""Normalization layers used as flows: batch normalization and actnorm.

Both are per-channel affine maps ``y = (x - μ) / σ · exp(log γ) + β`` (dimension 1 is the
channel or feature dimension; all further dimensions share the statistics), so
``log|det| = Σ_c S · (log γ_c - log σ_c)`` with ``S`` the number of positions per channel.
"""

from __future__ import annotations

import torch
from torch import nn

from ..distributed import global_moments, is_distributed
from .base import Flow


def _broadcast_shape(x: torch.Tensor) -> tuple[int, ...]:
    return (1, x.shape[1]) + (1,) * (x.dim() - 2)


class BatchNormFlow(Flow):
    r"""Batch normalization as an invertible layer (Real-NVP, Dinh et al. 2017, §3.7).

    In training mode the batch statistics are used (and the running averages updated); the
    log-determinant is that of the per-sample affine map with those statistics held fixed, as in
    Real-NVP. In evaluation mode the running statistics are used, so the layer is an exact,
    sample-independent bijection: use ``model.eval()`` for likelihood evaluation. ``inverse``
    always uses the running statistics (there is no batch of ``x`` to take statistics from).
    """

    def __init__(self, num_features: int, momentum: float = 0.05, eps: float = 1e-5):
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.log_gamma = nn.Parameter(torch.zeros(num_features))
        self.beta = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def _stats(self, x):
        if self.training:
            dims = [0] + list(range(2, x.dim()))
            mean = x.mean(dim=dims)
            var = x.var(dim=dims, unbiased=False)
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), self.momentum)
                self.running_var.lerp_(var.detach().to(self.running_var.dtype), self.momentum)
            return mean, var
        return self.running_mean, self.running_var

    def forward(self, x):
        mean, var = self._stats(x)
        shape = _broadcast_shape(x)
        log_scale = self.log_gamma - 0.5 * torch.log(var + self.eps)
        y = (x - mean.view(shape)) * torch.exp(log_scale).view(shape) + self.beta.view(shape)
        positions = x[0, 0].numel()
        return y, (positions * log_scale.sum()).expand(x.shape[0])

    def inverse(self, z):
        shape = _broadcast_shape(z)
        log_scale = self.log_gamma - 0.5 * torch.log(self.running_var + self.eps)
        return (z - self.beta.view(shape)) * torch.exp(-log_scale).view(shape) + self.running_mean.view(shape)


class ActNorm(Flow):
    r"""Activation normalization (Glow, Kingma & Dhariwal 2018): ``y = (x + b) ⊙ exp(s)``.

    ``b`` and ``s`` are initialised from the first training batch so that each channel of ``y``
    has zero mean and unit variance; after that they are ordinary parameters. ``initialized``
    is a buffer, so a loaded checkpoint does not re-initialise. Under data parallelism
    (``torch.distributed`` initialised, several processes) the statistics are those of the
    global batch, summed over all processes in two passes: every process initialises to the same
    values, the ones a single process would compute on the whole batch.
    """

    def __init__(self, num_features: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.log_scale = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def _initialize(self, x):
        dims = [0] + list(range(2, x.dim()))
        if is_distributed():  # the global batch's statistics
            mean, var = global_moments(x, dims)
            std = var.sqrt()
        else:
            mean, std = x.mean(dim=dims), x.std(dim=dims, unbiased=False)
        self.bias.copy_(-mean)
        self.log_scale.copy_(-torch.log(std + self.eps))
        self.initialized.fill_(True)

    def forward(self, x):
        if self.training and not bool(self.initialized):
            self._initialize(x)
        shape = _broadcast_shape(x)
        y = (x + self.bias.view(shape)) * torch.exp(self.log_scale).view(shape)
        positions = x[0, 0].numel()
        return y, (positions * self.log_scale.sum()).expand(x.shape[0])

    def inverse(self, z):
        shape = _broadcast_shape(z)
        return z * torch.exp(-self.log_scale).view(shape) - self.bias.view(shape)
